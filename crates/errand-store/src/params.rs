//! Parameter and result types of the [`crate::Store`] operations, one per operation.

use chrono::{DateTime, Utc};
use errand_core::{DerivedState, FailAction, Fence, Job, JobId, JobStatus, RescueAction};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Result of inserting one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueued {
    /// The new job, or the existing one that holds the same unique key.
    pub id: JobId,
    /// False when a job with the same unique key was already queued or running.
    pub inserted: bool,
}

/// Parameters of [`crate::Store::job_claim`].
#[derive(Debug, Clone)]
pub struct JobClaim {
    pub queue: String,
    pub worker_id: String,
    pub limit: u32,
    pub lease: Duration,
}

/// One success to record.
#[derive(Debug, Clone)]
pub struct JobComplete {
    pub fence: Fence,
    pub result: Option<serde_json::Value>,
}

/// Outcome of one fenced item in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ack {
    /// Written.
    Done,
    /// The fence no longer matched; nothing written.
    Stale,
}

/// Parameters of [`crate::Store::job_fail`].
#[derive(Debug, Clone)]
pub struct JobFail {
    pub fence: Fence,
    /// Error text, including a stderr tail or traceback.
    pub error: String,
    pub action: FailAction,
}

/// Parameters of [`crate::Store::job_heartbeat_many`].
#[derive(Debug, Clone)]
pub struct JobHeartbeat {
    pub worker_id: String,
    pub lease: Duration,
    /// (job id, attempt) of each running job the worker holds.
    pub jobs: Vec<(JobId, i32)>,
}

/// What a heartbeat learned about one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseState {
    pub job_id: JobId,
    /// False when the worker lost the job (rescued, or cancelled and acknowledged elsewhere):
    /// it must stop the handler and record nothing.
    pub held: bool,
    /// Someone asked the job to stop.
    pub cancel_requested: bool,
}

/// One rescue decision.
#[derive(Debug, Clone)]
pub struct JobRescue {
    pub fence: Fence,
    pub action: RescueAction,
    pub message: String,
}

/// Per-id result of [`crate::Store::job_cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CancelOutcome {
    /// Was queued; now cancelled.
    Cancelled { id: JobId },
    /// Was running; its worker has been asked to stop.
    CancelRequested { id: JobId },
    /// Already finished (or already asked to stop); nothing changed.
    Unchanged { id: JobId, status: JobStatus },
    NotFound { id: JobId },
}

/// Per-id result of [`crate::Store::job_retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RetryOutcome {
    /// Was failed or cancelled; now queued.
    Retried { id: JobId },
    /// Not failed or cancelled; nothing changed.
    Unchanged { id: JobId, status: JobStatus },
    NotFound { id: JobId },
}

/// Parameters of [`crate::Store::job_retry_failed`].
#[derive(Debug, Clone, Default)]
pub struct RetryFailed {
    pub queue: Option<String>,
    pub kind: Option<String>,
    pub limit: u32,
}

/// Parameters of [`crate::Store::job_purge`].
#[derive(Debug, Clone)]
pub struct JobPurge {
    /// Finished statuses only (`succeeded`, `failed`, `cancelled`); others are ignored.
    pub statuses: Vec<JobStatus>,
    pub finished_before: DateTime<Utc>,
    pub limit: u32,
}

/// A state filter: a stored status or a derived view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StateFilter {
    Status(JobStatus),
    Derived(DerivedState),
}

impl std::str::FromStr for StateFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(st) = s.parse::<JobStatus>() {
            return Ok(StateFilter::Status(st));
        }
        match s {
            "scheduled" => Ok(StateFilter::Derived(DerivedState::Scheduled)),
            "retrying" => Ok(StateFilter::Derived(DerivedState::Retrying)),
            "stuck" => Ok(StateFilter::Derived(DerivedState::Stuck)),
            _ => Err(format!(
                "unknown state `{s}` (expected one of: queued, running, succeeded, failed, \
                 cancelled, scheduled, retrying, stuck)"
            )),
        }
    }
}

/// Parameters of [`crate::Store::job_list`]. Every filter is optional; all given ones apply.
#[derive(Debug, Clone)]
pub struct JobList {
    pub state: Option<StateFilter>,
    pub queue: Option<String>,
    pub kind: Option<String>,
    pub reference_type: Option<String>,
    pub reference_id: Option<String>,
    /// `created_at >= since`.
    pub since: Option<DateTime<Utc>>,
    /// `created_at < until`.
    pub until: Option<DateTime<Utc>>,
    /// Only jobs with `id < before_id` (the previous page's `next_cursor`).
    pub before_id: Option<JobId>,
    pub limit: u32,
}

impl Default for JobList {
    fn default() -> Self {
        JobList {
            state: None,
            queue: None,
            kind: None,
            reference_type: None,
            reference_id: None,
            since: None,
            until: None,
            before_id: None,
            limit: 50,
        }
    }
}

/// A page of [`crate::Store::job_list`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Pass as `before_id` for the next page; `None` on the last page.
    pub next_cursor: Option<JobId>,
}

/// Counts for one queue.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QueueStats {
    pub queue: String,
    pub paused: bool,
    /// All queued jobs, including scheduled ones.
    pub queued: u64,
    /// Queued with `run_at` in the future.
    pub scheduled: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// `run_at` of the oldest job that is ready to run now (queued, `run_at <= now`).
    pub oldest_ready_run_at: Option<DateTime<Utc>>,
    /// The store's now when the stats were read, to compute ages against.
    pub as_of: DateTime<Utc>,
}

/// A queue's stored settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueInfo {
    pub name: String,
    pub paused: bool,
    pub paused_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Applied and pending schema migrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationStatus {
    /// Highest applied version, 0 for an empty database.
    pub current_version: i64,
    /// Highest version this build knows.
    pub latest_version: i64,
    pub applied: Vec<AppliedMigration>,
    /// (version, name) of migrations not yet applied.
    pub pending: Vec<(i64, String)>,
}

/// One applied migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMigration {
    pub version: i64,
    pub name: String,
    pub applied_at: DateTime<Utc>,
}

/// What a worker process says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRegistration {
    /// Unique per process run, e.g. `host-pid-random`.
    pub id: String,
    pub host: String,
    pub pid: i64,
    /// Errand version of the process.
    pub version: String,
    /// Queues it claims from, with the concurrency of each.
    pub queues: Vec<WorkerQueue>,
}

/// One queue a worker serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerQueue {
    pub name: String,
    pub concurrency: u32,
}

/// A registered worker, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub queues: Vec<WorkerQueue>,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// A wake-up hint: jobs became ready in this queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobsReady {
    /// The queue, or `"*"`: anything may be ready, claim from every queue now. A store
    /// sends `"*"` when it cannot know which hints it missed, e.g. after the PostgreSQL
    /// listener reconnected (notifications sent while it was away are lost).
    pub queue: String,
}
