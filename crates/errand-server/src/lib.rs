//! Errand's HTTP API: what `errand serve` answers on its `[server] listen` address.
//!
//! ```no_run
//! # async fn demo(client: errand::Client) -> std::io::Result<()> {
//! let app = errand_server::router(client, errand_server::ServerConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7070").await?;
//! let (_stop, stopped) = tokio::sync::watch::channel(false);
//! errand_server::serve(listener, app, errand_server::ServeOptions::default(), stopped).await
//! # }
//! ```
//!
//! | module | owns |
//! | --- | --- |
//! | `routes` | **the route table**: every endpoint's method, path, required role, handler and documentation, in one list that builds both the router and the OpenAPI document |
//! | `auth` | bearer tokens, the four roles and which role may call what |
//! | `error` | the one JSON error shape, and the mapping of library errors to status codes |
//! | `extract` | request bodies, queries and ids read with errors that name the bad field |
//! | `views` | the JSON of jobs, events, queues and workers (with redaction for read-only roles) |
//! | `jobs`, `queues`, `schedules`, `remote` | the handlers: operators' endpoints and the remote-worker protocol |
//! | `health` | `/health` and `/metrics` |
//! | `scheduler_health` | `/health/scheduler`: healthy or degraded with the reasons, on the rules of `errand_scheduler::health` |
//! | `metrics` | the process's counters and run-duration histogram, and the Prometheus text writer |
//! | `openapi` | the OpenAPI 3 document built from the route table: request schemas generated from the handlers' own request types, response schemas from `errand::views` and the envelopes here |
//! | `request_doc` | what each handler's extractors read (path, query, body), for the document |
//! | `serve` | the connection loop `errand serve` runs: header, body and idle timeouts, and a cap on open connections that pushes out the longest-waiting idle ones first |
//! | `dashboard` | the web dashboard: the files under `assets/`, embedded, served at `/` and `/assets/*` (see docs/dashboard.md) |
//!
//! Every handler goes through [`errand::Client`] (the store underneath it is not reachable
//! from here, and this crate has no database driver): there is no SQL here. Arguments are never logged; values under secret-looking keys are redacted
//! for every role but `admin`.

mod auth;
mod dashboard;
mod error;
mod extract;
mod health;
mod jobs;
mod metrics;
mod openapi;
mod queues;
mod remote;
mod request_doc;
mod routes;
mod scheduler_health;
mod schedules;
mod serve;
mod views;

pub use auth::{ApiToken, Role, UnknownRole};
pub use error::ApiError;
pub use metrics::Metrics;
pub use openapi::document as openapi_document;
pub use routes::{routes, Access, Route, Verb};
pub use serve::{serve, ServeOptions, MAX_CONNECTIONS_LIMIT};

use axum::Router;
use errand::Client;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// [`ServerConfig::max_wait`] unless set: the longest wait the OpenAPI document states.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

/// How the API behaves. `Default` is loopback-style: no tokens (everything allowed).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Accepted bearer tokens. Empty: no authentication at all, every caller is `admin`
    /// (the binary then refuses to listen on anything but loopback).
    pub tokens: Vec<ApiToken>,
    /// Largest accepted request body in bytes (a batch of jobs included). Default 8 MiB.
    pub max_body_bytes: usize,
    /// Longest a claim may long-poll (`wait`). Default 30 s.
    pub max_wait: Duration,
    /// Lease of remote workers' jobs when a claim or heartbeat names none. Default 30 s.
    pub default_lease: Duration,
    /// How often a long-polling claim retries without a wake-up hint (hints from other
    /// processes do not reach an SQLite store). Default 1 s.
    pub poll_interval: Duration,
    /// Counters shared with the rest of the process (the worker pool feeds them too).
    pub metrics: Arc<Metrics>,
    /// Long-polls end early when this turns true, so a graceful stop is not held up.
    pub shutdown: watch::Receiver<bool>,
    /// This process's scheduler loop, as `/health/scheduler` reports it (the default: none
    /// started, which reports degraded).
    pub scheduler: errand::SchedulerStatus,
    /// The queues the configuration declares: with those the store knows, the names a pause
    /// or resume may use without `force=true`.
    pub queues: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            tokens: Vec::new(),
            max_body_bytes: 8 * 1024 * 1024,
            max_wait: DEFAULT_MAX_WAIT,
            default_lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            metrics: Arc::new(Metrics::default()),
            shutdown: watch::channel(false).1,
            scheduler: errand::SchedulerStatus::default(),
            queues: Vec::new(),
        }
    }
}

/// What every handler gets: the client and the configuration.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub client: Client,
    pub config: Arc<ServerConfig>,
}

/// The whole API as an axum router: every entry of [`routes`], each behind its role check,
/// with the body limit and JSON errors for unknown paths.
pub fn router(client: Client, config: ServerConfig) -> Router {
    let state = AppState {
        client,
        config: Arc::new(config),
    };
    routes::build(state)
}
