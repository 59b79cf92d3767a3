//! The job record, its five stored states, the derived views people ask for, and the fence
//! that makes acknowledgements safe.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A job's id: a 64-bit integer that only increases and is never reused.
pub type JobId = i64;

/// Reads a job id as people and URLs write it: decimal digits only (no sign, no spaces, no
/// leading `+` that `i64::from_str` would take), a positive value. `None` otherwise. The CLI
/// and the HTTP API both read ids with this.
pub fn parse_job_id(text: &str) -> Option<JobId> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<JobId>().ok().filter(|id| *id > 0)
}

/// The five stored states of a job (design.md, States).
///
/// `queued -> running -> succeeded | failed | cancelled`; a retry puts a running job back to
/// `queued` with a later `run_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting to run once `run_at` has passed and its queue is not paused.
    Queued,
    /// Claimed by a worker that holds a lease on it.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Attempts used up, or a permanent error.
    Failed,
    /// Cancelled by an operator or the application.
    Cancelled,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The word used for this status everywhere (SQL, CLI, API, dashboard).
    pub const fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// True for the states a job never leaves by itself.
    pub const fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status word that is not one of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job status `{0}` (expected one of: {list})", list = words(&JobStatus::ALL.map(JobStatus::as_str)))]
pub struct UnknownStatus(pub String);

/// `a, b, c`: a list of state words for a message or a help text.
pub fn words(words: &[&str]) -> String {
    words.join(", ")
}

impl FromStr for JobStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// Views of the stored states that people ask about; never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DerivedState {
    /// Queued with `run_at` in the future (a delayed job or a retry waiting for its backoff).
    Scheduled,
    /// Queued after at least one attempt.
    Retrying,
    /// Running with an expired lease: its worker is presumed dead and the rescuer will take it.
    Stuck,
}

impl DerivedState {
    /// Every derived view.
    pub const ALL: [DerivedState; 3] = [
        DerivedState::Scheduled,
        DerivedState::Retrying,
        DerivedState::Stuck,
    ];

    /// The word for this view.
    pub const fn as_str(self) -> &'static str {
        match self {
            DerivedState::Scheduled => "scheduled",
            DerivedState::Retrying => "retrying",
            DerivedState::Stuck => "stuck",
        }
    }

    /// Every word a state filter takes: the stored statuses, then the derived views.
    pub fn state_words() -> Vec<&'static str> {
        JobStatus::ALL
            .map(JobStatus::as_str)
            .into_iter()
            .chain(DerivedState::ALL.map(DerivedState::as_str))
            .collect()
    }
}

impl FromStr for DerivedState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DerivedState::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown derived state `{s}`"))
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub queue: String,
    pub kind: String,
    /// Always a JSON object, as the JSON text the store holds (decoded by the handler).
    pub args: crate::JobArgs,
    pub status: JobStatus,
    /// Higher runs first.
    pub priority: i32,
    /// Earliest start.
    pub run_at: DateTime<Utc>,
    /// Times started so far.
    pub attempt: i32,
    pub max_attempts: i32,
    pub unique_key: Option<String>,
    pub reference_type: Option<String>,
    pub reference_id: Option<String>,
    /// What a successful handler returned.
    pub result: Option<serde_json::Value>,
    /// Message of the latest failure; the full history is in the events.
    pub last_error: Option<String>,
    /// Execution limit in milliseconds; `None` means the task's default, `Some(0)` none at all.
    pub timeout_ms: Option<i64>,
    /// Holder of a running job (and, after it finishes, the worker that ran the last attempt).
    pub worker_id: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Set when someone asked a running job to stop; its worker sees it at the next heartbeat.
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// What the handler last reported about how far it has come ([`crate::Progress`]):
    /// cleared when an attempt starts, kept after the job finishes.
    #[serde(default)]
    pub progress: Option<serde_json::Value>,
    /// When `progress` was written.
    #[serde(default)]
    pub progress_at: Option<DateTime<Utc>>,
    /// Jobs sharing a key (within the queue) run at most `key_concurrency` at a time
    /// ([`crate::flow`]).
    #[serde(default)]
    pub concurrency_key: Option<String>,
    /// The job's own limit for its key; `None` takes the queue's, else 1.
    #[serde(default)]
    pub key_concurrency: Option<i32>,
}

impl Job {
    /// The derived view this job is in at `now`, if any. A job is in at most one: a stuck job
    /// is running; a queued job that has been attempted is *retrying* (waiting out its
    /// backoff or ready again); one never attempted that waits for its `run_at` is
    /// *scheduled*. The stores' list filters spell the same rule.
    pub fn derived_state(&self, now: DateTime<Utc>) -> Option<DerivedState> {
        match self.status {
            JobStatus::Queued if self.attempt >= 1 => Some(DerivedState::Retrying),
            JobStatus::Queued if self.run_at > now => Some(DerivedState::Scheduled),
            JobStatus::Running if self.lease_expires_at.is_some_and(|l| l < now) => {
                Some(DerivedState::Stuck)
            }
            _ => None,
        }
    }

    /// The fence a worker holding this job presents with its acknowledgements.
    pub fn fence(&self) -> Option<Fence> {
        self.worker_id.as_ref().map(|w| Fence {
            job_id: self.id,
            attempt: self.attempt,
            worker_id: w.clone(),
        })
    }
}

/// What a lease holder presents when it records an outcome: the job, the attempt it was
/// given and its own id. A store writes the outcome only if all three still match a running
/// job, so an acknowledgement from a worker that lost its lease changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fence {
    pub job_id: JobId,
    pub attempt: i32,
    pub worker_id: String,
}

/// A job as a claim hands it to its worker: the job, and the fence the worker presents from
/// then on (the registry of running jobs is keyed by it, the heartbeat sends it and gets it
/// back, and every acknowledgement carries it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimedJob {
    pub fence: Fence,
    pub job: Job,
}

/// A claimed job reads as its job (`claimed.kind`, `&claimed` where a `&Job` is taken).
impl std::ops::Deref for ClaimedJob {
    type Target = Job;

    fn deref(&self) -> &Job {
        &self.job
    }
}

impl ClaimedJob {
    /// A claimed job: it is running under a worker, so it has a fence. `None` otherwise.
    pub fn new(job: Job) -> Option<ClaimedJob> {
        Some(ClaimedJob {
            fence: job.fence()?,
            job,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn status_words_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let err = "doing".parse::<JobStatus>().unwrap_err();
        assert!(err.to_string().contains("`doing`"));
    }

    #[test]
    fn derived_states() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let mut job = sample(now);
        assert_eq!(job.derived_state(now), None);
        job.run_at = now + chrono::Duration::seconds(5);
        assert_eq!(job.derived_state(now), Some(DerivedState::Scheduled));
        job.run_at = now;
        job.attempt = 1;
        assert_eq!(job.derived_state(now), Some(DerivedState::Retrying));
        // Waiting out its backoff: still retrying, as `--state retrying` lists it.
        job.run_at = now + chrono::Duration::seconds(5);
        assert_eq!(job.derived_state(now), Some(DerivedState::Retrying));
        job.status = JobStatus::Running;
        job.lease_expires_at = Some(now + chrono::Duration::seconds(1));
        assert_eq!(job.derived_state(now), None);
        job.lease_expires_at = Some(now - chrono::Duration::seconds(1));
        assert_eq!(job.derived_state(now), Some(DerivedState::Stuck));
    }

    pub(crate) fn sample(now: DateTime<Utc>) -> Job {
        Job {
            id: 1,
            queue: "default".into(),
            kind: "k".into(),
            args: crate::JobArgs::empty(),
            status: JobStatus::Queued,
            priority: 0,
            run_at: now,
            attempt: 0,
            max_attempts: 4,
            unique_key: None,
            reference_type: None,
            reference_id: None,
            result: None,
            last_error: None,
            timeout_ms: None,
            worker_id: None,
            lease_expires_at: None,
            cancel_requested_at: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            progress: None,
            progress_at: None,
            concurrency_key: None,
            key_concurrency: None,
        }
    }
}

#[cfg(test)]
mod id_tests {
    use super::parse_job_id;

    #[test]
    fn ids_are_plain_positive_decimals() {
        assert_eq!(parse_job_id("42"), Some(42));
        assert_eq!(parse_job_id("007"), Some(7));
        for bad in [
            "",
            "+1",
            "-1",
            "0",
            " 1",
            "1 ",
            "1e3",
            "0x10",
            "9223372036854775808",
            "١",
        ] {
            assert_eq!(parse_job_id(bad), None, "{bad:?}");
        }
    }
}
