//! The JSON shapes of the operator commands' results (what `jobs retry` and `jobs cancel` did
//! to each id). Resources (jobs, schedules, queues, workers) print the views the HTTP API
//! answers with too, from `errand::views` (documented in docs/cli-json.md; golden files under
//! tests/golden check them).

use chrono::{DateTime, Utc};
use errand::{CancelOutcome, Job, RetryOutcome};
use serde_json::{json, Value};

/// The state word a person should see first: the derived view if any, else the status.
pub fn state_word(job: &Job, now: DateTime<Utc>) -> &'static str {
    errand::views::state_word(job.status, job.derived_state(now))
}

/// The per-id result of `jobs retry`.
pub fn retry_outcome(o: &RetryOutcome) -> Value {
    match o {
        RetryOutcome::Retried { id } => json!({"id": id, "outcome": "retried", "status": "queued"}),
        RetryOutcome::Unchanged { id, status } => {
            json!({"id": id, "outcome": "unchanged", "status": status.as_str()})
        }
        RetryOutcome::NotFound { id } => json!({"id": id, "outcome": "not_found", "status": null}),
    }
}

/// The per-id result of `jobs cancel`.
pub fn cancel_outcome(o: &CancelOutcome) -> Value {
    match o {
        CancelOutcome::Cancelled { id } => {
            json!({"id": id, "outcome": "cancelled", "status": "cancelled"})
        }
        CancelOutcome::CancelRequested { id } => {
            json!({"id": id, "outcome": "cancel_requested", "status": "running"})
        }
        CancelOutcome::Unchanged { id, status } => {
            json!({"id": id, "outcome": "unchanged", "status": status.as_str()})
        }
        CancelOutcome::NotFound { id } => {
            json!({"id": id, "outcome": "not_found", "status": null})
        }
    }
}
