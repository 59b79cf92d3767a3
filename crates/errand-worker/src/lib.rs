//! Errand's in-process worker pool: claims jobs from a [`Store`], runs their handlers, and
//! records the outcomes, with the delivery guarantees of design.md, Delivery guarantees.
//!
//! ```no_run
//! use errand_worker::{HandlerError, JobContext, Store, Task, TaskOptions, Worker};
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//! use std::{sync::Arc, time::Duration};
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendEmail { to: String }
//! impl Task for SendEmail { const KIND: &'static str = "send_email"; }
//!
//! async fn run(store: Arc<dyn Store>) -> Result<(), Box<dyn std::error::Error>> {
//!     let worker = Worker::builder(store)
//!         .queue("default", 10)
//!         .queue("email", 4)
//!         .register(|ctx: JobContext, email: SendEmail| async move {
//!             if email.to.is_empty() {
//!                 return Err(HandlerError::permanent("no recipient"));
//!             }
//!             tokio::select! {
//!                 _ = ctx.cancelled() => return Err(HandlerError::retry_after("stopped", Duration::from_secs(1))),
//!                 _ = tokio::time::sleep(Duration::from_millis(10)) => {} // send it
//!             }
//!             Ok(json!({ "sent": true, "attempt": ctx.attempt() }))
//!         })
//!         .register_kind("ping", |_ctx, _args: serde_json::Value| async move { Ok(()) })
//!         .task_options("send_email", TaskOptions { timeout: Some(Duration::from_secs(60)), backoff: None })
//!         .start()
//!         .await?;
//!     // ... until SIGTERM:
//!     let report = worker.shutdown().await;
//!     println!("released {} unfinished jobs", report.released);
//!     Ok(())
//! }
//! ```
//!
//! # Roles
//!
//! One background role per file, each started by [`WorkerBuilder::start`] and stopped by
//! [`WorkerHandle::shutdown`]:
//!
//! | role | does |
//! | --- | --- |
//! | `producer` | one claim loop per queue, bounded by the queue's concurrency; claims ahead of free slots about one round trip's worth of work when handlers are short; woken by store hints and a poll interval |
//! | `executor` | runs one job in its own task: timeout, stop signal, panic capture; records the outcome |
//! | `progress` | a job's progress reports ([`JobContext::progress`]): at most one write in flight, the newest value pending, the last one written before the outcome |
//! | `completer` | writes successes in batches with one `job_complete_many` |
//! | `heartbeat` | extends the leases of every held job (lease/3), learns of cancels and lost leases; refreshes the worker row |
//! | `rescuer` | requeues (or fails, or cancels) jobs whose lease expired; prunes dead workers' rows (the [`maintenance`] chores, for a pool on its own) |
//! | `handle` | graceful shutdown |
//!
//! # Guarantees
//!
//! - **At least once.** A claimed job stays `running` with a lease until a fenced outcome is
//!   written. When the store cannot be reached to record an outcome, the pool retries for
//!   10 leases and then gives up; the lease then expires and a rescuer requeues the job, which
//!   runs again. Handlers should therefore be idempotent.
//! - **Never twice at once.** Every outcome is fenced by (job id, attempt, worker id). A worker
//!   that lost a job's lease stops its handler and records nothing; a late acknowledgement is
//!   reported stale by the store and dropped.
//! - **Stop means stop.** Once a handler is asked to stop (cancel, lost lease, timeout,
//!   shutdown), its return value is not recorded: the reason decides the outcome (see
//!   [`StopReason`]). A handler that ignores the request is aborted after `cancel_grace`.
//! - **No secrets in logs.** Logs carry `job_id`, `kind` and `attempt`, never the args.
//!
//! Handlers return `Result<R, HandlerError>` with `R: Serialize`; `?` converts any
//! `std::error::Error` into an ordinary, retryable [`HandlerError`].

#![warn(missing_docs)]

mod builder;
mod completer;
mod event;
mod executor;
mod handle;
mod handler;
mod heartbeat;
pub mod maintenance;
mod pool;
mod producer;
mod progress;
pub mod record;
mod rescuer;
mod retry;
mod signal;

pub use builder::{host_name, StartError, TaskOptions, WorkerBuilder};
pub use errand_core::{Backoff, HandlerError, Job, JobArgs, JobId, Task};
pub use errand_store::Store;
pub use event::{JobOutcome, WorkerEvent};
pub use handle::{ShutdownReport, WorkerHandle};
pub use handler::{JobContext, KindArgs};
pub use signal::StopReason;

use std::sync::Arc;

/// The entry point: `Worker::builder(store)...start().await`.
#[derive(Debug, Clone, Copy)]
pub struct Worker;

impl Worker {
    /// A pool over `store`. Add at least one queue, register handlers, then
    /// [`WorkerBuilder::start`].
    pub fn builder(store: Arc<dyn Store>) -> WorkerBuilder {
        WorkerBuilder::new(store)
    }
}
