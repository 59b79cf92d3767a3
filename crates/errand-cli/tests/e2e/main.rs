//! End-to-end tests of the `errand` binary on both backends: each case runs the real binary
//! (`env!("CARGO_BIN_EXE_errand")`) against its own database and checks the outcome with the
//! library client. `cargo test -p errand-cli --test e2e sqlite` (or `postgres`) runs one
//! backend. `postgres_only` holds what needs several processes on one PostgreSQL database
//! or a private PostgreSQL server to restart.

mod certs;
mod common;
mod private_pg;
mod sink;

mod api;
mod cli;
mod command;
mod compose;
mod connections;
mod crash_storm;
mod demo;
mod disk;
mod docs;
mod edges;
mod fixture;
mod flow_control;
mod golden;
mod guard;
mod hardening;
mod health;
mod http;
mod lifecycle;
mod listen;
mod ops;
mod postgres_only;
mod schedule_ops;
mod schedules;
mod tls_https;
mod tls_postgres;
