//! A job, an event of its history, and a job with its events.

use super::{redact_value, schema, Redact};
use chrono::{DateTime, Utc};
use errand_core::{DerivedState, Event, EventKind, Job, JobId, JobStatus};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// The entity a job is about (`reference` of an enqueue).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "Reference")]
pub struct ReferenceView {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// A job, every field: its stored `status` and the `derived` view it is in now, if any.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "Job")]
pub struct JobView {
    pub id: JobId,
    pub queue: String,
    pub kind: String,
    #[schemars(schema_with = "schema::status")]
    pub status: JobStatus,
    /// `scheduled` (queued, waiting for `run_at`), `retrying` (queued after an attempt) or
    /// `stuck` (running with an expired lease); null when in none.
    #[schemars(schema_with = "schema::derived_or_null")]
    pub derived: Option<DerivedState>,
    /// Higher runs first.
    pub priority: i32,
    /// Times started so far.
    pub attempt: i32,
    pub max_attempts: i32,
    /// Earliest start.
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub unique_key: Option<String>,
    /// The entity the job is about, or null.
    pub reference: Option<ReferenceView>,
    /// A JSON object; values under secret-looking keys are `[redacted]` unless the reader
    /// may see secrets.
    #[schemars(schema_with = "schema::any")]
    pub args: Value,
    /// What a successful handler returned (redacted as `args` is).
    #[schemars(schema_with = "schema::any_or_null")]
    pub result: Option<Value>,
    /// What the handler last reported about how far it has come: any JSON value of at most
    /// 8 KiB, by convention `{"done": 40, "total": 100, "message": "..."}` (redacted as
    /// `result` is). Cleared when an attempt starts, kept after the job finishes.
    #[schemars(schema_with = "schema::any_or_null")]
    pub progress: Option<Value>,
    /// When `progress` was written.
    pub progress_at: Option<DateTime<Utc>>,
    /// The latest failure's message; the events hold every one.
    pub last_error: Option<String>,
    /// Execution limit of one attempt in milliseconds: null for the task's default, 0 for none.
    pub timeout_ms: Option<i64>,
    /// The worker holding the job (or that ran its last attempt).
    pub worker_id: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// When someone asked the running job to stop.
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// Jobs sharing this key (within the queue) run at most `key_concurrency` at a time;
    /// null when the job has none. Redacted when it is the value of a secret-looking
    /// argument.
    pub concurrency_key: Option<String>,
    /// The job's own limit for its key; null takes the queue's, else 1.
    pub key_concurrency: Option<i32>,
}

impl JobView {
    /// The view of `job` at `now` (which decides its derived view).
    pub fn new(job: &Job, now: DateTime<Utc>) -> JobView {
        JobView {
            id: job.id,
            queue: job.queue.clone(),
            kind: job.kind.clone(),
            status: job.status,
            derived: job.derived_state(now),
            priority: job.priority,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            run_at: job.run_at,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            updated_at: job.updated_at,
            unique_key: job.unique_key.clone(),
            reference: match (&job.reference_type, &job.reference_id) {
                (Some(kind), Some(id)) => Some(ReferenceView {
                    kind: kind.clone(),
                    id: id.clone(),
                }),
                _ => None,
            },
            args: job.args.to_value(),
            result: job.result.clone(),
            progress: job.progress.clone(),
            progress_at: job.progress_at,
            last_error: job.last_error.clone(),
            timeout_ms: job.timeout_ms,
            worker_id: job.worker_id.clone(),
            lease_expires_at: job.lease_expires_at,
            cancel_requested_at: job.cancel_requested_at,
            concurrency_key: job.concurrency_key.clone(),
            key_concurrency: job.key_concurrency,
        }
    }

    /// The word a person should see first: the derived view if any, else the status.
    pub fn state_word(&self) -> &'static str {
        super::state_word(self.status, self.derived)
    }
}

impl Redact for JobView {
    fn redacted(mut self) -> Self {
        if let Some(key) = &mut self.concurrency_key {
            if errand_core::redact::secret_values(&self.args).contains(key) {
                *key = errand_core::redact::REDACTED.to_string();
            }
        }
        redact_value(&mut self.args);
        // A progress report is handler output as a result is, redacted the same way.
        for v in [&mut self.result, &mut self.progress].into_iter().flatten() {
            redact_value(v);
        }
        self
    }
}

/// One event of a job's history.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "Event")]
pub struct EventView {
    pub id: i64,
    pub job_id: JobId,
    pub at: DateTime<Utc>,
    #[schemars(schema_with = "schema::event_kind")]
    pub kind: EventKind,
    /// The job's attempt when it happened.
    pub attempt: i32,
    pub worker_id: Option<String>,
    /// The error text, or the operator's reason.
    pub message: Option<String>,
    /// Structured detail (redacted as a job's `args` is), e.g. `{"next": "retry"}`.
    #[schemars(schema_with = "schema::any_or_null")]
    pub data: Option<Value>,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> EventView {
        EventView {
            id: e.id,
            job_id: e.job_id,
            at: e.at,
            kind: e.kind,
            attempt: e.attempt,
            worker_id: e.worker_id.clone(),
            message: e.message.clone(),
            data: e.data.clone(),
        }
    }
}

impl Redact for EventView {
    fn redacted(mut self) -> Self {
        if let Some(d) = &mut self.data {
            redact_value(d);
        }
        self
    }
}

/// A job with its events, oldest first (`jobs show`, `GET /v1/jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "JobWithEvents")]
pub struct JobDetailView {
    pub job: JobView,
    pub events: Vec<EventView>,
}

impl JobDetailView {
    pub fn new(job: &Job, events: &[Event], now: DateTime<Utc>) -> JobDetailView {
        JobDetailView {
            job: JobView::new(job, now),
            events: events.iter().map(EventView::from).collect(),
        }
    }
}

impl Redact for JobDetailView {
    fn redacted(self) -> Self {
        JobDetailView {
            job: self.job.redacted(),
            events: self.events.redacted(),
        }
    }
}

/// A page of jobs, newest first, and the cursor of the next page (null on the last).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "JobPage")]
pub struct JobPageView {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` (`--cursor`) for the next page.
    pub next_cursor: Option<JobId>,
}

impl JobPageView {
    pub fn new(page: &errand_store::JobPage, now: DateTime<Utc>) -> JobPageView {
        JobPageView {
            jobs: page.jobs.iter().map(|j| JobView::new(j, now)).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

impl Redact for JobPageView {
    fn redacted(self) -> Self {
        JobPageView {
            jobs: self.jobs.redacted(),
            next_cursor: self.next_cursor,
        }
    }
}
