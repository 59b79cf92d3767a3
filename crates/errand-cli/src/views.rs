//! The JSON shapes of the operator commands, built in one place so they stay stable whatever
//! the library's own types become (documented in docs/cli-json.md; golden files under
//! tests/golden check them). Arguments are redacted: values under secret-looking keys never
//! reach a terminal or a script's output.

use crate::output::rfc3339;
use chrono::{DateTime, Utc};
use errand::{CancelOutcome, Event, FinishedStats, Job, QueueStats, RetryOutcome, WorkerRecord};
use errand_core::redact::redact;
use serde_json::{json, Value};

fn time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

/// The state word a person should see first: the derived view if any, else the status.
pub fn state_word(job: &Job, now: DateTime<Utc>) -> &'static str {
    match job.derived_state(now) {
        Some(d) => d.as_str(),
        None => job.status.as_str(),
    }
}

/// A job, every field, arguments redacted.
pub fn job(job: &Job, now: DateTime<Utc>) -> Value {
    json!({
        "id": job.id,
        "queue": job.queue,
        "kind": job.kind,
        "status": job.status.as_str(),
        "derived_state": job.derived_state(now).map(|d| d.as_str()),
        "priority": job.priority,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "run_at": rfc3339(job.run_at),
        "created_at": rfc3339(job.created_at),
        "started_at": time(job.started_at),
        "finished_at": time(job.finished_at),
        "updated_at": rfc3339(job.updated_at),
        "unique_key": job.unique_key,
        "reference": match (&job.reference_type, &job.reference_id) {
            (Some(t), Some(i)) => json!({"type": t, "id": i}),
            _ => Value::Null,
        },
        "args": redact(&job.args),
        "result": job.result,
        "last_error": job.last_error,
        "timeout_ms": job.timeout_ms,
        "worker_id": job.worker_id,
        "lease_expires_at": time(job.lease_expires_at),
        "cancel_requested_at": time(job.cancel_requested_at),
    })
}

/// One event of a job's history.
pub fn event(e: &Event) -> Value {
    json!({
        "id": e.id,
        "at": rfc3339(e.at),
        "kind": e.kind.as_str(),
        "attempt": e.attempt,
        "worker_id": e.worker_id,
        "message": e.message,
        "data": e.data,
    })
}

/// One queue of `errand stats`: counts now, and what finished in the window.
pub fn queue_stats(
    s: &QueueStats,
    finished: Option<&FinishedStats>,
    window: chrono::TimeDelta,
) -> Value {
    let minutes = (window.num_milliseconds() as f64 / 60_000.0).max(f64::MIN_POSITIVE);
    let done = finished.map_or(0, |f| f.succeeded + f.failed);
    json!({
        "queue": s.queue,
        "paused": s.paused,
        "queued": s.queued,
        "scheduled": s.scheduled,
        "running": s.running,
        "succeeded": s.succeeded,
        "failed": s.failed,
        "cancelled": s.cancelled,
        "oldest_ready_run_at": time(s.oldest_ready_run_at),
        "oldest_ready_age_ms": s.oldest_ready_run_at.map(|t| (s.as_of - t).num_milliseconds().max(0)),
        "recent": {
            "succeeded": finished.map_or(0, |f| f.succeeded),
            "failed": finished.map_or(0, |f| f.failed),
            "cancelled": finished.map_or(0, |f| f.cancelled),
            "throughput_per_min": done as f64 / minutes,
            "duration_avg_ms": finished.and_then(|f| f.duration_avg_ms),
            "duration_p95_ms": finished.and_then(|f| f.duration_p95_ms),
            "duration_max_ms": finished.and_then(|f| f.duration_max_ms),
        },
    })
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

/// A registered worker process.
pub fn worker(w: &WorkerRecord, now: DateTime<Utc>) -> Value {
    json!({
        "id": w.id,
        "host": w.host,
        "pid": w.pid,
        "version": w.version,
        "queues": w.queues.iter().map(|q| json!({"name": q.name, "concurrency": q.concurrency})).collect::<Vec<_>>(),
        "started_at": rfc3339(w.started_at),
        "last_seen_at": rfc3339(w.last_seen_at),
        "last_seen_age_ms": (now - w.last_seen_at).num_milliseconds().max(0),
    })
}
