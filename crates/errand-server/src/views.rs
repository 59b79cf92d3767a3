//! The JSON the API answers with. A job is the serde form of [`errand_core::Job`] plus its
//! `derived` view; for every role but `admin`, values under secret-looking keys in `args`,
//! `result` and event `data` are replaced by `[redacted]`.

use crate::auth::Caller;
use chrono::{DateTime, Utc};
use errand_core::redact::redact;
use errand_core::{Event, Job};
use errand_store::{FinishedStats, QueueStats, WorkerRecord};
use serde_json::{json, Value};

/// One job as JSON, as `caller` may see it, with its derived view at `now`.
pub fn job(job: &Job, caller: &Caller, now: DateTime<Utc>) -> Value {
    let mut v = serde_json::to_value(job).unwrap_or(Value::Null);
    v["derived"] = json!(job.derived_state(now).map(|d| d.as_str()));
    if !caller.role.sees_secrets() {
        v["args"] = redact(&job.args);
        if let Some(r) = &job.result {
            v["result"] = redact(r);
        }
    }
    v
}

/// One event as JSON.
pub fn event(event: &Event, caller: &Caller) -> Value {
    let mut v = serde_json::to_value(event).unwrap_or(Value::Null);
    if !caller.role.sees_secrets() {
        if let Some(d) = &event.data {
            v["data"] = redact(d);
        }
    }
    v
}

/// A queue's counts, as `GET /v1/queues` lists them, with what finished in the last hour
/// (`finished`: throughput and run durations) when known.
pub fn queue(s: &QueueStats, finished: Option<&FinishedStats>) -> Value {
    let age_ms = s
        .oldest_ready_run_at
        .map(|t| (s.as_of - t).num_milliseconds().max(0));
    json!({
        "name": s.queue,
        "paused": s.paused,
        "counts": {
            "queued": s.queued,
            "running": s.running,
            "succeeded": s.succeeded,
            "failed": s.failed,
            "cancelled": s.cancelled,
            "scheduled": s.scheduled,
        },
        "oldest_queued_at": s.oldest_ready_run_at,
        "oldest_queued_age_ms": age_ms,
        "throughput_1h": {
            "succeeded": finished.map_or(0, |f| f.succeeded),
            "failed": finished.map_or(0, |f| f.failed),
            "cancelled": finished.map_or(0, |f| f.cancelled),
        },
        "duration_ms": {
            "avg": finished.and_then(|f| f.duration_avg_ms),
            "p95": finished.and_then(|f| f.duration_p95_ms),
            "max": finished.and_then(|f| f.duration_max_ms),
        },
    })
}

/// A registered worker process.
pub fn worker(w: &WorkerRecord) -> Value {
    let queues: Vec<Value> = w
        .queues
        .iter()
        .map(|q| json!({"name": q.name, "concurrency": q.concurrency}))
        .collect();
    json!({
        "id": w.id,
        "host": w.host,
        "pid": w.pid,
        "version": w.version,
        "queues": queues,
        "concurrency": w.queues.iter().map(|q| u64::from(q.concurrency)).sum::<u64>(),
        "started_at": w.started_at,
        "last_seen_at": w.last_seen_at,
    })
}
