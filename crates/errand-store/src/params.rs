//! Parameter and result types of the [`crate::Store`] operations, one per operation.

use chrono::{DateTime, Utc};
use errand_core::{DerivedState, FailAction, Fence, Job, JobId, JobStatus, Progress, RescueAction};
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
    pub lease: Duration,
    /// The fence of each running job the worker holds, as its claim gave it.
    pub fences: Vec<Fence>,
}

/// Parameters of [`crate::Store::job_progress`]: a running job's progress report, under the
/// fence of the worker holding it.
#[derive(Debug, Clone)]
pub struct JobProgress {
    pub fence: Fence,
    /// Checked by `errand_core::Progress::new` (size, storability).
    pub progress: Progress,
}

/// What a heartbeat learned about one job, named by the fence it was sent with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseState {
    pub fence: Fence,
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
    Cancelled {
        id: JobId,
    },
    /// Was running; its worker has been asked to stop.
    CancelRequested {
        id: JobId,
    },
    /// Already finished (or already asked to stop); nothing changed.
    Unchanged {
        id: JobId,
        status: JobStatus,
    },
    NotFound {
        id: JobId,
    },
}

/// Per-id result of [`crate::Store::job_retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RetryOutcome {
    /// Was failed or cancelled; now queued.
    Retried {
        id: JobId,
    },
    /// Not failed or cancelled; nothing changed.
    Unchanged {
        id: JobId,
        status: JobStatus,
    },
    NotFound {
        id: JobId,
    },
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
        match s.parse::<DerivedState>() {
            Ok(d) => Ok(StateFilter::Derived(d)),
            Err(_) => Err(format!(
                "unknown state `{s}` (expected one of: {})",
                errand_core::job::words(&DerivedState::state_words())
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

impl JobList {
    /// Largest page an interface's list asks for (HTTP, Python); the library's own
    /// `Client::list` takes any page size.
    pub const MAX_LIMIT: u32 = 500;

    /// The rule interfaces apply to a page size they were given: 1 to [`Self::MAX_LIMIT`].
    /// Signed, so that a negative request is reported as given.
    pub fn check_limit(limit: i64) -> Result<u32, errand_core::ValidationError> {
        match u32::try_from(limit) {
            Ok(n) if (1..=Self::MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(errand_core::ValidationError {
                field: "limit",
                problem: format!("must be between 1 and {}, got {limit}", Self::MAX_LIMIT),
                rejection: errand_core::Rejection::Invalid,
            }),
        }
    }
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
    /// Its flow-control limits across every worker process (`errand_core::flow`).
    pub limits: errand_core::QueueLimits,
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

// ---- schedules ------------------------------------------------------------------------------

/// Where a schedule came from. `config` schedules are reconciled with `errand.toml` when
/// `errand serve` starts (added, changed, removed); `api` ones are left alone by that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleSource {
    Config,
    Api,
}

impl ScheduleSource {
    /// Every source.
    pub const ALL: [ScheduleSource; 2] = [ScheduleSource::Config, ScheduleSource::Api];

    /// The stored word: `config` or `api`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ScheduleSource::Config => "config",
            ScheduleSource::Api => "api",
        }
    }
}

impl std::str::FromStr for ScheduleSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "config" => Ok(ScheduleSource::Config),
            "api" => Ok(ScheduleSource::Api),
            _ => Err(format!(
                "unknown schedule source `{s}` (expected config or api)"
            )),
        }
    }
}

/// Parameters of [`crate::Store::schedule_create`] and [`crate::Store::schedule_update`]:
/// the schedule as written (checked by the caller) and the columns the store queries.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleWrite {
    pub name: String,
    /// The schedule as written (`errand_scheduler::ScheduleSpec` as JSON). The store keeps it
    /// whole and never reads inside it.
    pub spec: serde_json::Value,
    /// The task kind and queue its fires enqueue, for listing.
    pub kind: String,
    pub queue: String,
    pub paused: bool,
    pub source: ScheduleSource,
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub name: String,
    pub spec: serde_json::Value,
    pub kind: String,
    pub queue: String,
    pub paused: bool,
    pub source: ScheduleSource,
    /// The latest fire handled (enqueued or skipped), or the time the schedule was created or
    /// resumed: fires at or before it are never considered again. Triggers do not move it.
    pub last_fire_at: DateTime<Utc>,
    /// When the scheduler must look at this schedule next: its next fire as the scheduler
    /// last computed it, or the time it was created, changed or resumed (look at once).
    pub due_at: DateTime<Utc>,
    /// The job of the latest run (fire or trigger), and its status now (`None` if it was
    /// purged): what the overlap policy looks at.
    pub last_job_id: Option<JobId>,
    pub last_job_status: Option<JobStatus>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ScheduleRecord {
    /// The latest run is still queued or running.
    pub fn last_run_live(&self) -> bool {
        matches!(
            self.last_job_status,
            Some(JobStatus::Queued | JobStatus::Running)
        )
    }
}

/// What [`crate::Store::schedule_list_due`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSchedules {
    /// The store's now, which the caller decides with (so hosts agree on what is due).
    pub now: DateTime<Utc>,
    /// Unpaused schedules with `due_at` at or before now, earliest first.
    pub schedules: Vec<ScheduleRecord>,
    /// The earliest `due_at` after now among unpaused schedules: when to look again.
    pub next_due_at: Option<DateTime<Utc>>,
}

/// Parameters of [`crate::Store::schedule_fire`]: a decision taken on a schedule row as read,
/// applied only if the row is unchanged (the compare-and-set).
#[derive(Debug, Clone)]
pub struct ScheduleFire {
    pub name: String,
    /// `last_fire_at` and `updated_at` as read: the compare of the compare-and-set.
    pub expected_last_fire_at: DateTime<Utc>,
    pub expected_updated_at: DateTime<Utc>,
    /// The new `last_fire_at` (the latest fire this decision covers; equal to the expected
    /// one when nothing was due).
    pub last_fire_at: DateTime<Utc>,
    /// The new `due_at`.
    pub due_at: DateTime<Utc>,
    /// One job per fire to enqueue, with its fire time, oldest first.
    pub runs: Vec<(DateTime<Utc>, errand_core::JobInsert)>,
    /// Fires not enqueued, with the reason (`missed_beyond_grace`, `coalesced`,
    /// `overlap_skipped`), oldest first.
    pub skipped: Vec<(DateTime<Utc>, String)>,
}

/// Result of [`crate::Store::schedule_fire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
    /// Applied: one [`Enqueued`] per run, in order.
    Fired { enqueued: Vec<Enqueued> },
    /// The schedule changed since it was read (another process fired it, or it was paused,
    /// changed or deleted): nothing was written.
    Lost,
}

/// What became of one fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FireKind {
    /// A fire that enqueued a job.
    Enqueued,
    /// A fire that did not (see the reason).
    Skipped,
    /// An operator's "trigger now".
    Triggered,
}

impl FireKind {
    /// Every outcome.
    pub const ALL: [FireKind; 3] = [FireKind::Enqueued, FireKind::Skipped, FireKind::Triggered];

    /// The stored word.
    pub const fn as_str(self) -> &'static str {
        match self {
            FireKind::Enqueued => "enqueued",
            FireKind::Skipped => "skipped",
            FireKind::Triggered => "triggered",
        }
    }
}

impl std::str::FromStr for FireKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "enqueued" => Ok(FireKind::Enqueued),
            "skipped" => Ok(FireKind::Skipped),
            "triggered" => Ok(FireKind::Triggered),
            _ => Err(format!("unknown fire outcome `{s}`")),
        }
    }
}

/// One recorded fire, with its job's status and times (joined; `None` once purged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FireRecord {
    pub id: i64,
    pub schedule: String,
    /// The fire time (for a trigger: when it was triggered).
    pub fire_at: DateTime<Utc>,
    /// When the fire was handled.
    pub recorded_at: DateTime<Utc>,
    pub outcome: FireKind,
    pub reason: Option<String>,
    pub job_id: Option<JobId>,
    pub job_status: Option<JobStatus>,
    pub job_started_at: Option<DateTime<Utc>>,
    pub job_finished_at: Option<DateTime<Utc>>,
}

/// Parameters of [`crate::Store::schedule_fire_list`].
#[derive(Debug, Clone)]
pub struct ScheduleFireList {
    pub name: String,
    /// `false`: runs (enqueued and triggered); `true`: skipped fires.
    pub skipped: bool,
    pub limit: u32,
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
    let w = i64::try_from(width.as_micros())
        .unwrap_or(i64::MAX)
        .max(1000);
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
            .map(|b| {
                (
                    chrono::Timelike::minute(&b.start),
                    b.queue.as_str(),
                    b.succeeded,
                )
            })
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

/// What [`crate::Store::backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The copy's size in bytes.
    pub bytes: u64,
}
