//! Errand: a durable job queue and cron scheduler, on an embedded SQLite file or PostgreSQL.
//!
//! ```no_run
//! use errand::{Client, Task};
//! use serde::{Deserialize, Serialize};
//! use std::time::Duration;
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendEmail { to: String }
//!
//! impl Task for SendEmail {
//!     const KIND: &'static str = "send_email";
//!     const QUEUE: &'static str = "email";
//! }
//!
//! # async fn demo() -> Result<(), errand::Error> {
//! // A file path (or `sqlite:PATH`) uses the embedded store; `postgres://...` uses PostgreSQL.
//! let client = Client::connect("errand.db").await?;
//! let job = client
//!     .enqueue(SendEmail { to: "ada@example.com".into() })
//!     .delay(Duration::from_secs(60))
//!     .unique_key("welcome:ada")
//!     .reference("user", "42")
//!     .send()
//!     .await?;
//! println!("job {} (new: {})", job.id, job.inserted);
//! # Ok(()) }
//! ```
//!
//! [`Client`] enqueues and administers jobs; [`Enqueue::send_in`] enqueues inside your own
//! PostgreSQL transaction, so the job exists only if that transaction commits.
//!
//! Cargo features (both on by default): `sqlite` (the embedded store) and `postgres`
//! (PostgreSQL, and [`postgres`] for the caller's transaction). A URL of a backend left out
//! of the build is refused with [`Error::BackendNotBuilt`].
//! [`Client::worker`] starts an in-process worker pool beside your server (see [`worker`]).

mod client;
mod enqueue;
mod error;
mod queues;
mod remote;
pub mod scheduler;
mod schedules;
pub mod views;

pub use client::{Client, ClientBuilder};
pub use enqueue::Enqueue;
pub use error::Error;
pub use scheduler::{SchedulerHandle, SchedulerOptions, SchedulerStatus};
pub use schedules::{
    run_stats, Reconciled, RunStats, ScheduleDetail, ScheduleInfo, Triggered, HISTORY_RUNS,
};

/// Schedules as written and checked (`[schedules.NAME]`), fire times, misfire and overlap
/// rules: the pure part of the scheduler.
pub use errand_scheduler as schedule;
pub use errand_scheduler::{OverlapPolicy, ScheduleSpec, SpecError};
pub use errand_store::{FireKind, FireRecord, ScheduleSource};

pub use errand_core::{
    Backoff, DerivedState, Event, EventKind, Fence, HandlerError, Job, JobArgs, JobId, JobStatus,
    Limits, NewJob, Progress, ProgressError, QueueLimits, Rejection, Task, TaskCatalog,
    TaskSettings, ValidationError, MAX_PROGRESS_BYTES,
};
pub use errand_store::{
    Backend, CancelOutcome, Enqueued, FinishedStats, JobList, JobPage, JobProgress,
    MigrationStatus, QueueInfo, QueueStats, RetryOutcome, StateFilter, Store, StoreError,
    ThroughputBucket, WorkerQueue, WorkerRecord,
};

/// The in-process worker pool: handlers, per-queue concurrency, leases, graceful shutdown.
pub use errand_worker as worker;
pub use errand_worker::{JobContext, Worker, WorkerHandle};

/// What a store implements so that [`Enqueue::send_in`] can write into the caller's own
/// transaction.
pub use errand_store::CallerTransaction;

/// PostgreSQL specifics (the `postgres` feature): the sqlx Errand is built on, whose
/// `Transaction<Postgres>` and `PgConnection` implement [`CallerTransaction`], so
/// [`Enqueue::send_in`] takes them. Use this sqlx (or the same version) for the pool your
/// application enqueues in. [`PgTls`](postgres::PgTls) and [`SslMode`](postgres::SslMode)
/// are the TLS settings of [`ClientBuilder::postgres_tls`] (libpq's `sslmode`,
/// `sslrootcert`, `sslcert`, `sslkey`).
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use errand_store_postgres::sqlx;
    pub use errand_store_postgres::{PgTls, SslMode, UnknownSslMode};
}

/// Not part of the API and not covered by semver: the store underneath a client, for
/// Errand's own tests, which put jobs in states no public call makes (a claim by a fake
/// worker, a failure at a chosen attempt). It exists only with the `internal` feature,
/// which only the workspace's test builds turn on (`[dev-dependencies]`), so the compiler
/// keeps applications, the server, the runtime and the binary on [`Client`].
#[cfg(feature = "internal")]
#[doc(hidden)]
pub mod __private {
    use crate::{Client, Store};
    use std::sync::Arc;

    /// The client's store.
    pub fn store(client: &Client) -> &Arc<dyn Store> {
        client.store()
    }
}
