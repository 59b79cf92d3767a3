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

/// Parameters of [`crate::Store::job_finished_stats`]: jobs that finished at or after `since`,
/// optionally of one queue and/or kind.
#[derive(Debug, Clone)]
pub struct JobFinishedStats {
    pub since: DateTime<Utc>,
    pub queue: Option<String>,
    pub kind: Option<String>,
}

/// What finished in one queue since a time: counts by outcome, and how long the successful
/// runs took.
///
/// A run's duration is `finished_at - started_at` of a succeeded job, i.e. its successful
/// attempt (earlier failed attempts and backoff waits are not included). The p95 is the
/// nearest-rank percentile: the smallest duration such that at least 95% of the runs took
/// no longer; the same definition on every backend.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FinishedStats {
    pub queue: String,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Mean duration of the succeeded runs, in milliseconds; `None` without any.
    pub duration_avg_ms: Option<f64>,
    /// Nearest-rank 95th percentile of the succeeded runs' durations, in milliseconds.
    pub duration_p95_ms: Option<f64>,
    /// Longest succeeded run, in milliseconds.
    pub duration_max_ms: Option<f64>,
}

/// Parameters of [`crate::Store::job_throughput`].
#[derive(Debug, Clone)]
pub struct JobThroughput {
    /// Jobs that finished at or after this instant.
    pub since: DateTime<Utc>,
    /// Width of a bucket; at least one millisecond. Buckets are aligned to multiples of it
    /// since the Unix epoch, so the same instant falls in the same bucket on every call.
    pub bucket: Duration,
    pub queue: Option<String>,
    pub kind: Option<String>,
}

/// Jobs of one queue that finished within one bucket of time. Only non-empty buckets are
/// returned by the store; `errand::Client::throughput` fills the gaps with zeros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThroughputBucket {
    /// Start of the bucket (inclusive); it ends one bucket width later (exclusive).
    pub start: DateTime<Utc>,
    pub queue: String,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

/// The start of the `width`-wide bucket (aligned to the Unix epoch) that holds `t`.
pub fn bucket_start(t: DateTime<Utc>, width: Duration) -> DateTime<Utc> {
    let w = i64::try_from(width.as_micros()).unwrap_or(i64::MAX).max(1000);
    let us = t.timestamp_micros();
    DateTime::<Utc>::from_timestamp_micros(us.div_euclid(w) * w).unwrap_or(t)
}

/// A dense series from the sparse rows of [`crate::Store::job_throughput`]: for every queue
/// in `rows` (and each of `queues`, so a quiet queue still shows), one bucket per `width`
/// from the bucket holding `since` to the one holding `until`, zero where nothing finished.
/// Ordered by bucket, then queue, like the store's rows.
pub fn fill_throughput(
    rows: &[ThroughputBucket],
    queues: &[String],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    width: Duration,
) -> Vec<ThroughputBucket> {
    let mut names: Vec<&str> = rows
        .iter()
        .map(|r| r.queue.as_str())
        .chain(queues.iter().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    let step = chrono::TimeDelta::from_std(width).unwrap_or(chrono::TimeDelta::MAX);
    let step = step.max(chrono::TimeDelta::milliseconds(1));
    let mut out = Vec::new();
    let mut start = bucket_start(since, width);
    let last = bucket_start(until.max(since), width);
    while start <= last {
        for q in &names {
            let found = rows.iter().find(|r| r.start == start && r.queue == *q);
            out.push(found.cloned().unwrap_or_else(|| ThroughputBucket {
                start,
                queue: q.to_string(),
                succeeded: 0,
                failed: 0,
                cancelled: 0,
            }));
        }
        match start.checked_add_signed(step) {
            Some(next) => start = next,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn throughput_gaps_are_filled_with_zeros_per_queue() {
        let t = |m: u32, s: u32| Utc.with_ymd_and_hms(2026, 11, 23, 13, m, s).unwrap();
        let minute = Duration::from_secs(60);
        assert_eq!(bucket_start(t(2, 59), minute), t(2, 0));
        let row = |m, q: &str, n| ThroughputBucket {
            start: t(m, 0),
            queue: q.into(),
            succeeded: n,
            failed: 0,
            cancelled: 0,
        };
        let rows = vec![row(1, "email", 3), row(3, "default", 1)];
        let filled = fill_throughput(&rows, &["idle".into()], t(0, 30), t(3, 10), minute);
        let got: Vec<(u32, &str, u64)> = filled
            .iter()
            .map(|b| (chrono::Timelike::minute(&b.start), b.queue.as_str(), b.succeeded))
            .collect();
        let mut expected = Vec::new();
        for m in 0..=3 {
            for q in ["default", "email", "idle"] {
                let n = match (m, q) {
                    (1, "email") => 3,
                    (3, "default") => 1,
                    _ => 0,
                };
                expected.push((m, q, n));
            }
        }
        assert_eq!(got, expected);
    }
}
