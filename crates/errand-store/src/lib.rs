//! The storage boundary of Errand: one [`Store`] trait, its parameter types and its errors.
//!
//! Two crates implement it, `errand-store-sqlite` and `errand-store-postgres`, and they are the
//! only crates that depend on a database driver, so "no SQL outside the store" is enforced by
//! the compiler. Both pass the same behaviour suite (`errand-store-tests`).
//!
//! Operations are named noun-then-verb (`job_claim`, `queue_pause`); the same name is used for
//! the SQL of each backend and for the suite's test of it, so one grep shows all of it.
//!
//! **The store applies, it does not decide.** Retry-or-fail, backoff and rescue are decided in
//! `errand-core`; the store writes the decision only if the job's [`Fence`] still matches,
//! else it reports [`StoreError::Stale`] (or a stale entry in a batch result).
//!
//! **Time.** Every operation reads "now" once from the store's clock. A store built without
//! an explicit clock uses the database's clock on PostgreSQL (`now()`, so hosts with skewed
//! clocks agree) and the system clock on SQLite (one host). Tests inject a
//! [`errand_core::ManualClock`] to move time without sleeping.

mod error;
mod params;
pub mod steps;
mod transaction;

pub use error::{StoreError, StoreResult};
pub use params::*;
pub use transaction::CallerTransaction;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use errand_core::{ClaimedJob, Event, Fence, Job, JobId, JobInsert, NewEvent};

/// How many fire records each schedule keeps (the newest): enough for run history and
/// duration figures, bounded so a per-second schedule does not grow the table forever.
pub const FIRE_HISTORY_KEPT: u32 = 1000;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How the worker pool drives a store: what overlaps well on its engine. Each store reports
/// its own ([`Store::tuning`]), so no code outside the stores branches on the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreTuning {
    /// Claims one queue's claim loop may have in flight at once.
    pub claims_in_flight: usize,
    /// Success batches (`job_complete_many`) a pool may be writing at once.
    pub completions_in_flight: usize,
}

/// Everything Errand persists goes through this trait.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// How the worker pool should drive this store (writes in flight).
    fn tuning(&self) -> StoreTuning;

    // ---- schema -------------------------------------------------------------------------

    /// Applies every pending migration, in order, each in its own transaction, guarded so
    /// that concurrent callers (many processes starting at once) apply each exactly once.
    async fn migrate(&self) -> StoreResult<MigrationStatus>;

    /// The applied and pending migrations, without changing anything.
    async fn migration_status(&self) -> StoreResult<MigrationStatus>;

    // ---- health and backup --------------------------------------------------------------

    /// Why writes are failing, when they fail for a reason an operator must fix (the disk
    /// holding the database is full): set by the write that failed, cleared by the next
    /// write that changes something. `None` otherwise. No database call.
    fn write_problem(&self) -> Option<String>;

    /// Copies the whole database, as of one moment, into a new file at `to` while other
    /// connections keep reading and writing, and returns the copy's size. `to` must not
    /// exist; on failure nothing is left there. [`StoreError::Unsupported`] where the
    /// database has its own tools (PostgreSQL: `pg_dump`).
    async fn backup(&self, to: &std::path::Path) -> StoreResult<BackupReport>;

    // ---- enqueue ------------------------------------------------------------------------

    /// Inserts validated jobs in one round trip, all or nothing, and returns one
    /// [`Enqueued`] per input in input order.
    ///
    /// A job whose `unique_key` matches a `queued` or `running` job is not inserted: its
    /// entry carries the existing job's id and `inserted: false`. Two inputs of one batch
    /// with the same key give one job. Holds under concurrent callers.
    async fn job_insert_many(&self, jobs: &[JobInsert]) -> StoreResult<Vec<Enqueued>>;

    // ---- worker path --------------------------------------------------------------------

    /// Claims up to `limit` jobs of one queue for a worker: `queued`, `run_at <= now`, the
    /// queue not paused; highest priority first, then earliest `run_at`, then lowest id.
    /// Each becomes `running` with `attempt + 1`, `worker_id`, `started_at = now` and
    /// `lease_expires_at = now + lease`. Returned in that order, each with the [`Fence`] its
    /// worker acknowledges it under. Never hands one job to two concurrent claimers.
    async fn job_claim(&self, claim: &JobClaim) -> StoreResult<Vec<ClaimedJob>>;

    /// Records successes: `running -> succeeded` with the result, `finished_at = now`,
    /// lease cleared, for every item whose fence still holds. Writes no event. Returns one
    /// [`Ack`] per item, in input order.
    async fn job_complete_many(&self, items: &[JobComplete]) -> StoreResult<Vec<Ack>>;

    /// Records a failed attempt as decided by `errand_core::decide_failure`: back to `queued`
    /// with `run_at = now + delay`, or to `failed` with `finished_at = now`; sets `last_error`,
    /// clears the lease, and appends an `error` event (attempt, worker, message, and
    /// `data = {"next": "retry", "run_at": ...}` or `{"next": "failed"}`).
    /// [`StoreError::Stale`] if the fence no longer holds (nothing written).
    async fn job_fail(&self, fail: &JobFail) -> StoreResult<Job>;

    /// Extends the leases of running jobs in one statement, to `now + lease`, each only
    /// under its fence. Returns one [`LeaseState`] per fence, carrying it: whether the lease
    /// is still held (fence matched) and whether someone asked the job to stop.
    async fn job_heartbeat_many(&self, beat: &JobHeartbeat) -> StoreResult<Vec<LeaseState>>;

    /// Writes a running job's progress report: `progress` and `progress_at = now`, only
    /// under its fence (as a heartbeat is). [`Ack::Stale`] when the fence no longer holds
    /// (the job was rescued, released, cancelled or finished, or another attempt runs):
    /// nothing written. A claim clears both columns; a finished job keeps the last value.
    async fn job_progress(&self, progress: &JobProgress) -> StoreResult<Ack>;

    /// A running job that was asked to stop (or whose handler gave up on cancellation) ends
    /// `cancelled`: `finished_at = now`, lease cleared, a `cancelled` event. Fenced.
    async fn job_cancel_ack(&self, fence: &Fence, message: Option<&str>) -> StoreResult<Job>;

    /// Hands running jobs back on graceful shutdown without spending the attempt:
    /// `running -> queued`, `attempt - 1`, `run_at = now`, lease cleared, a `released` event.
    /// Fenced per item; one [`Ack`] per item.
    async fn job_release_many(&self, fences: &[Fence]) -> StoreResult<Vec<Ack>>;

    // ---- rescue -------------------------------------------------------------------------

    /// Running jobs whose lease expired before now (the derived *stuck* state), oldest lease
    /// first, at most `limit`.
    async fn job_list_stuck(&self, limit: u32) -> StoreResult<Vec<Job>>;

    /// Applies rescue decisions (`errand_core::decide_rescue`) to stuck jobs. Each item
    /// applies only if the job is still `running` under the same fence and its lease is
    /// still expired, so a job whose worker came back to life is left alone.
    /// Requeue: `queued`, keeping its `run_at` (so it keeps its place in the claim order); Fail: `failed`, `finished_at = now`, `last_error`
    /// set to the message; Cancel: `cancelled`, `finished_at = now`. Lease cleared, one
    /// `rescued` event each (`data = {"action": "requeue"|"fail"|"cancel"}`).
    async fn job_rescue_many(&self, items: &[JobRescue]) -> StoreResult<Vec<Ack>>;

    // ---- operator actions ---------------------------------------------------------------

    /// Cancels jobs by id. A `queued` job becomes `cancelled` at once (`finished_at = now`,
    /// `cancelled` event); a `running` job gets `cancel_requested_at = now` and a
    /// `cancel_requested` event, and its worker stops it. One [`CancelOutcome`] per id.
    async fn job_cancel(
        &self,
        ids: &[JobId],
        reason: Option<&str>,
    ) -> StoreResult<Vec<CancelOutcome>>;

    /// Operator retry: a `failed` or `cancelled` job goes back to `queued` with a fresh
    /// attempt budget (`attempt = 0`), `run_at = now`, `finished_at`, `result`, `worker_id`,
    /// `cancel_requested_at` cleared, and a `retried` event whose data records the previous
    /// status and attempt. One [`RetryOutcome`] per id.
    async fn job_retry(&self, ids: &[JobId]) -> StoreResult<Vec<RetryOutcome>>;

    /// Bulk operator retry of failed jobs matching the filter, at most `limit` per call
    /// (callers loop until it returns 0). Same effect per job as [`Store::job_retry`].
    async fn job_retry_failed(&self, filter: &RetryFailed) -> StoreResult<u64>;

    /// Deletes one batch (at most `limit`) of finished jobs in the given statuses whose
    /// `finished_at` is before the cut-off, with their events. Callers loop until 0, so no
    /// statement holds locks for long.
    async fn job_purge(&self, purge: &JobPurge) -> StoreResult<u64>;

    // ---- reads --------------------------------------------------------------------------

    /// One job.
    async fn job_get(&self, id: JobId) -> StoreResult<Option<Job>>;

    /// Jobs matching a filter, newest first (id descending), with a cursor for the next page.
    async fn job_list(&self, list: &JobList) -> StoreResult<JobPage>;

    /// Per-queue counts by status and the oldest ready job, for every queue that has jobs
    /// or a queue row (a paused empty queue still shows).
    async fn queue_stats(&self) -> StoreResult<Vec<QueueStats>>;

    /// Per queue, what finished (`finished_at >= since`): counts of succeeded, failed and
    /// cancelled jobs, and the avg / p95 / max duration of the succeeded runs (see
    /// [`FinishedStats`]). Only queues with at least one finished job, sorted by name. Reads
    /// the `finished_at` index, so the cost follows the window, not the table's history.
    async fn job_finished_stats(
        &self,
        params: &JobFinishedStats,
    ) -> StoreResult<Vec<FinishedStats>>;

    /// Finished jobs counted per time bucket and queue (a throughput series), oldest bucket
    /// first, then by queue. Buckets with nothing finished are left out.
    async fn job_throughput(&self, params: &JobThroughput) -> StoreResult<Vec<ThroughputBucket>>;

    // ---- events -------------------------------------------------------------------------

    /// Appends an event (operator notes and actions that are not a transition above).
    async fn event_insert(&self, event: &NewEvent) -> StoreResult<Event>;

    /// A job's events, oldest first.
    async fn event_list(&self, job_id: JobId) -> StoreResult<Vec<Event>>;

    // ---- queues -------------------------------------------------------------------------

    /// Pauses a queue: claims skip it until resumed. Idempotent; the queue need not have jobs.
    async fn queue_pause(&self, name: &str) -> StoreResult<()>;

    /// Resumes a paused queue. Idempotent.
    async fn queue_resume(&self, name: &str) -> StoreResult<()>;

    /// Queues that have a row (were ever paused or resumed, or given limits).
    async fn queue_list(&self) -> StoreResult<Vec<QueueInfo>>;

    /// Sets a queue's flow-control limits (`errand_core::flow`), replacing all three; creates the
    /// queue's row if it has none. The limits must have passed `QueueLimits::check`.
    async fn queue_limits_set(
        &self,
        name: &str,
        limits: errand_core::QueueLimits,
    ) -> StoreResult<()>;

    // ---- workers ------------------------------------------------------------------------

    /// Registers a worker process, or refreshes its row if the id exists: `started_at = now`
    /// on insert only, `last_seen_at = now` always, the other fields overwritten.
    async fn worker_register(&self, worker: &WorkerRegistration) -> StoreResult<()>;

    /// `last_seen_at = now` for a registered worker. False if no row has this id (it was
    /// pruned while the worker was unreachable): the caller registers again.
    async fn worker_heartbeat(&self, id: &str) -> StoreResult<bool>;

    /// Registered workers, oldest `started_at` first.
    async fn worker_list(&self) -> StoreResult<Vec<WorkerRecord>>;

    /// Removes a worker's row (clean shutdown). Idempotent.
    async fn worker_remove(&self, id: &str) -> StoreResult<()>;

    /// Removes the rows of workers not seen since the cut-off (they died without a clean
    /// shutdown; their jobs are rescued by lease, not by this). Returns how many.
    async fn worker_prune(&self, last_seen_before: DateTime<Utc>) -> StoreResult<u64>;

    // ---- schedules ----------------------------------------------------------------------

    /// Stores a new schedule with `last_fire_at = now` (a new schedule does not fire for its
    /// past) and `due_at = now` (the scheduler looks at it at once). [`StoreError::Conflict`] if the name is taken.
    async fn schedule_create(&self, schedule: &ScheduleWrite) -> StoreResult<ScheduleRecord>;

    /// Replaces a schedule's spec, kind, queue, paused flag and source; `updated_at = now`,
    /// `due_at = now` (the scheduler recomputes it). Leaves `last_fire_at` alone, unless the
    /// schedule goes from paused to unpaused (then `last_fire_at = now`, as on resume).
    /// [`StoreError::ScheduleNotFound`] if missing.
    async fn schedule_update(&self, schedule: &ScheduleWrite) -> StoreResult<ScheduleRecord>;

    /// Deletes a schedule and its fire records (its jobs stay). False if it did not exist.
    async fn schedule_delete(&self, name: &str) -> StoreResult<bool>;

    /// One schedule, or `None`.
    async fn schedule_get(&self, name: &str) -> StoreResult<Option<ScheduleRecord>>;

    /// Every schedule, by name.
    async fn schedule_list(&self) -> StoreResult<Vec<ScheduleRecord>>;

    /// Pauses a schedule: the scheduler stops looking at it. Idempotent.
    /// [`StoreError::ScheduleNotFound`] if missing.
    async fn schedule_pause(&self, name: &str) -> StoreResult<ScheduleRecord>;

    /// Resumes a paused schedule with `last_fire_at = due_at = now`, so the paused
    /// span does not count as missed. A no-op on an unpaused one.
    /// [`StoreError::ScheduleNotFound`] if missing.
    async fn schedule_resume(&self, name: &str) -> StoreResult<ScheduleRecord>;

    /// The unpaused schedules to look at now (`due_at` at or before now), at most
    /// `limit`, with the store's now and the next `due_at` after it. Reads only due rows
    /// (an index on `due_at`), so its cost does not grow with idle schedules.
    async fn schedule_list_due(&self, limit: u32) -> StoreResult<DueSchedules>;

    /// Applies a scheduler's decision, in one transaction, only if the schedule is still
    /// unpaused with the `last_fire_at` and `updated_at` the decision was taken on: moves
    /// `last_fire_at` and `due_at`, inserts the run jobs (unique keys as in
    /// [`Store::job_insert_many`]), records one fire row per run and per skip, points
    /// `last_job_id` at the last run's job, and keeps the latest [`FIRE_HISTORY_KEPT`] fire
    /// rows of the schedule. Otherwise writes nothing and returns [`FireOutcome::Lost`]: of
    /// concurrent callers with the same expectation, exactly one applies.
    async fn schedule_fire(&self, fire: &ScheduleFire) -> StoreResult<FireOutcome>;

    /// "Trigger now": inserts the job, records a `triggered` fire at now and points
    /// `last_job_id` at it, in one transaction; `last_fire_at` does not move.
    /// [`StoreError::ScheduleNotFound`] if missing (nothing inserted).
    async fn schedule_trigger(&self, name: &str, job: &JobInsert) -> StoreResult<Enqueued>;

    /// A schedule's recorded fires, newest first, at most `limit`: runs (enqueued and
    /// triggered, with their job's status and times) or skipped fires.
    async fn schedule_fire_list(&self, list: &ScheduleFireList) -> StoreResult<Vec<FireRecord>>;

    // ---- wake-ups -----------------------------------------------------------------------

    /// A stream of "jobs became ready in queue Q" hints, so idle workers start a job within
    /// milliseconds instead of waiting for their next poll. Sent after commit when jobs
    /// become ready now: an insert with `run_at <= now` (also through `enqueue_in` in a
    /// caller's transaction, delivered when it commits), an operator retry, a release and a
    /// rescue requeue.
    ///
    /// Hints may be lost, duplicated or spurious (PostgreSQL delivers NOTIFY to every
    /// listener; a listener reconnecting after a database restart misses what was sent
    /// meanwhile), so workers still poll; a hint never replaces a claim. On PostgreSQL the
    /// hints cross processes and hosts (LISTEN/NOTIFY, on a channel named after the schema);
    /// on SQLite they reach subscribers of the same store in this process only, and other
    /// processes rely on their poll.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<JobsReady>;
}
