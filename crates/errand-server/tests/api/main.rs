//! The HTTP API served over a real store on both backends (`sqlite::case`, `postgres::case`),
//! called over loopback HTTP: every endpoint, the auth matrix from the route table, bad input,
//! the remote-worker protocol and the OpenAPI document.

mod common;

mod auth;
mod hardening;
mod jobs;
mod remote;
mod schedules;
mod service;
