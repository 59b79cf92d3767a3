//! End-to-end tests of the `errand` binary on both backends: each case runs the real binary
//! (`env!("CARGO_BIN_EXE_errand")`) against its own database and checks the outcome with the
//! library client. `cargo test -p errand-cli --test e2e sqlite` (or `postgres`) runs one
//! backend.

mod common;

mod cli;
mod command;
mod http;
mod lifecycle;
