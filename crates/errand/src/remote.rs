//! What the HTTP API's remote-worker protocol and health endpoints need from the store,
//! through the client: the write problem, backup, maintenance, the stored schedules with the
//! store's now, the worker registry, wake-up hints, claims, lease heartbeats and progress
//! reports of remote workers, and the one outcome recorder (`errand_worker::record`) the in-process pool uses
//! too. With these, no crate outside the library calls the store itself.

use crate::client::Client;
use crate::error::Error;
use chrono::{DateTime, Utc};
use errand_core::{Backoff, Fence};
use errand_core::{ClaimedJob, HandlerError, Job};
use errand_store::{
    Ack, BackupReport, JobClaim, JobHeartbeat, JobProgress, JobsReady, LeaseState, ScheduleRecord,
    WorkerRegistration,
};
use errand_worker::maintenance::{self, MaintenanceHandle, MaintenanceOptions};
use errand_worker::record::{self, Failure, Success};
use tokio::sync::broadcast;

impl Client {
    // ---- health and backup --------------------------------------------------------------

    /// Why writes are failing, when they fail for a reason an operator must fix (the disk
    /// holding the database is full); `None` otherwise. No database call.
    pub fn write_problem(&self) -> Option<String> {
        self.store().write_problem()
    }

    /// Copies the whole database, as of one moment, into a new file at `to` while others
    /// keep reading and writing ([`errand_store::StoreError::Unsupported`] on PostgreSQL: use
    /// `pg_dump`; `Conflict` if `to` exists).
    pub async fn backup(&self, to: &std::path::Path) -> Result<BackupReport, Error> {
        Ok(self.store().backup(to).await?)
    }

    /// Starts the maintenance service on this client's store: rescue of expired leases,
    /// pruning of dead workers' registry rows, retention.
    pub fn start_maintenance(&self, options: MaintenanceOptions) -> MaintenanceHandle {
        maintenance::start(self.store().clone(), options)
    }

    // ---- scheduler health ---------------------------------------------------------------

    /// Every stored schedule as written (no next fires or run figures computed), by name:
    /// for checks over the raw rows, such as `/health/scheduler`'s overdue fires.
    pub async fn schedule_records(&self) -> Result<Vec<ScheduleRecord>, Error> {
        Ok(self.store().schedule_list().await?)
    }

    /// The store's now, which the scheduler decides with (on PostgreSQL the database's
    /// clock, so hosts agree), unless the client was given a clock.
    pub async fn scheduler_now(&self) -> Result<DateTime<Utc>, Error> {
        Ok(self.store().schedule_list_due(1).await?.now)
    }

    // ---- the worker registry ------------------------------------------------------------

    /// Adds or replaces a worker process's registry row (its queues, host, version).
    pub async fn worker_register(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        Ok(self.store().worker_register(worker).await?)
    }

    /// Refreshes a worker's `last_seen_at`; false if it has no row (never registered, or
    /// pruned), so the caller registers it.
    pub async fn worker_heartbeat(&self, id: &str) -> Result<bool, Error> {
        Ok(self.store().worker_heartbeat(id).await?)
    }

    // ---- the remote-worker protocol -----------------------------------------------------

    /// Hints that jobs became ready, per queue (`*`: any queue may be). Best effort: a
    /// waiting claimer still polls.
    pub fn subscribe(&self) -> broadcast::Receiver<JobsReady> {
        self.store().subscribe()
    }

    /// Claims up to `claim.limit` ready jobs of one queue for a worker, each under a lease
    /// and with the fence the worker acknowledges it under (see
    /// [`errand_store::Store::job_claim`]).
    pub async fn claim(&self, claim: &JobClaim) -> Result<Vec<ClaimedJob>, Error> {
        Ok(self.store().job_claim(claim).await?)
    }

    /// Extends the leases of a worker's running jobs, each under its fence; per fence,
    /// whether the job is still held and whether someone asked it to stop.
    pub async fn heartbeat(&self, beat: &JobHeartbeat) -> Result<Vec<LeaseState>, Error> {
        Ok(self.store().job_heartbeat_many(beat).await?)
    }

    /// Writes a held job's progress report under its fence: [`Ack::Stale`] if the worker no
    /// longer holds the job (nothing written). The value was checked when the
    /// [`errand_core::Progress`] was made.
    pub async fn progress(&self, progress: &JobProgress) -> Result<Ack, Error> {
        Ok(self.store().job_progress(progress).await?)
    }

    /// Records a success under its fence (what the pool's completer does for one job):
    /// [`Ack::Stale`] if the worker no longer holds the job.
    pub async fn record_success(&self, success: &Success) -> Result<Ack, Error> {
        let mut answers =
            record::write_isolated(self.store().as_ref(), std::slice::from_ref(success)).await;
        Ok(answers.remove(0)?)
    }

    /// Records a failed attempt of `job` under `fence`: cancelled if someone asked, else
    /// retried with the kind's backoff (from the task settings) or failed for good.
    /// `StoreError::Stale` (inside [`Error::Store`]) if the worker no longer holds the job.
    pub async fn record_failure(
        &self,
        job: &Job,
        fence: &Fence,
        error: &HandlerError,
    ) -> Result<Failure, Error> {
        let backoff = self.tasks().backoff(&job.kind);
        Ok(record::failure(
            self.store().as_ref(),
            fence,
            error,
            &backoff,
            Backoff::random_unit(),
        )
        .await?)
    }
}
