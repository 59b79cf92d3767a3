//! The JSON shapes of the operator commands, built in one place so they stay stable whatever
//! the library's own types become (documented in docs/cli-json.md; golden files under
//! tests/golden check them). Arguments are redacted: values under secret-looking keys never
//! reach a terminal or a script's output.

use crate::output::rfc3339;
use chrono::{DateTime, SecondsFormat, Utc};
use errand::schedule::{Schedule, Trigger};
use errand::{
    CancelOutcome, Event, FinishedStats, FireRecord, Job, QueueStats, RetryOutcome, RunStats,
    ScheduleInfo, ScheduleSpec, WorkerRecord,
};
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

/// A stored schedule read back: as written, and checked. Either is `None` when the stored
/// spec cannot be read by this build (then [`ScheduleInfo::problem`] says why).
pub struct Written {
    pub spec: Option<ScheduleSpec>,
    pub checked: Option<Schedule>,
}

pub fn written(info: &ScheduleInfo) -> Written {
    let spec: Option<ScheduleSpec> = serde_json::from_value(info.spec.clone()).ok();
    let checked = spec.as_ref().and_then(|s| s.validate(&info.name).ok());
    Written { spec, checked }
}

/// The zone a `cron` schedule is read in (as written, else UTC); `None` for `every`, which
/// counts in UTC from the epoch.
pub fn timezone(spec: &ScheduleSpec) -> Option<String> {
    spec.cron
        .as_ref()
        .map(|_| spec.timezone.clone().unwrap_or_else(|| "UTC".into()))
}

/// A fire time on the wall clock of the schedule's zone (`cron` only): RFC 3339 with the
/// offset for scripts, and `2026-11-24 02:00:00 GMT` for people (the abbreviation shows on
/// which side of a DST change it falls).
pub fn local(checked: Option<&Schedule>, at: DateTime<Utc>) -> Option<(String, String)> {
    match &checked?.trigger {
        Trigger::Cron { timezone, .. } => {
            let l = at.with_timezone(timezone);
            Some((
                l.to_rfc3339_opts(SecondsFormat::Micros, false),
                l.format("%Y-%m-%d %H:%M:%S %Z").to_string(),
            ))
        }
        Trigger::Every(_) => None,
    }
}

fn run_ms(started: Option<DateTime<Utc>>, finished: Option<DateTime<Utc>>) -> Option<i64> {
    Some((finished? - started?).num_milliseconds().max(0))
}

/// A schedule (in `schedules list` and `show`): the spec as written (arguments redacted),
/// its state, next fire, and last run; `last` is the job of its last run, if it still exists.
pub fn schedule(info: &ScheduleInfo, last: Option<&Job>) -> Value {
    let w = written(info);
    let spec = w.spec.as_ref();
    let last_run = info.last_job_id.map(|id| {
        json!({
            "job_id": id,
            "status": last.map(|j| j.status).or(info.last_job_status).map(|s| s.as_str()),
            "created_at": time(last.map(|j| j.created_at)),
            "started_at": time(last.and_then(|j| j.started_at)),
            "finished_at": time(last.and_then(|j| j.finished_at)),
            "duration_ms": last.and_then(|j| run_ms(j.started_at, j.finished_at)),
            // What it returned (the runbook's stats), or the error it failed with.
            "result": last.and_then(|j| j.result.clone()),
            "last_error": last.and_then(|j| j.last_error.clone()),
        })
    });
    json!({
        "name": info.name,
        "cron": spec.and_then(|s| s.cron.clone()),
        "every": spec.and_then(|s| s.every.clone()),
        "timezone": spec.and_then(timezone),
        "kind": info.kind,
        "queue": info.queue,
        "args": spec.map(|s| redact(&s.args)),
        "priority": spec.and_then(|s| s.priority),
        "max_attempts": spec.and_then(|s| s.max_attempts),
        "overlap": spec.map(|s| s.overlap.as_str()),
        "misfire_grace_ms": w.checked.as_ref().map(|c| c.misfire_grace.as_millis() as u64),
        "coalesce": spec.map(|s| s.coalesce),
        "paused": info.paused,
        "problem": info.problem,
        "source": info.source.as_str(),
        "next_fire_at": time(info.next_fire_at),
        "last_fire_at": rfc3339(info.last_fire_at),
        "last_run": last_run,
        "created_at": rfc3339(info.created_at),
        "updated_at": rfc3339(info.updated_at),
    })
}

/// A fire time to come: UTC, and on the schedule's wall clock (`null` for `every`).
pub fn next_fire(checked: Option<&Schedule>, at: DateTime<Utc>) -> Value {
    json!({"at": rfc3339(at), "local": local(checked, at).map(|(rfc, _)| rfc)})
}

/// A run of a schedule (a fire that enqueued a job, or a trigger) and its job now.
pub fn schedule_run(f: &FireRecord) -> Value {
    json!({
        "job_id": f.job_id,
        "fire_at": rfc3339(f.fire_at),
        "outcome": f.outcome.as_str(),
        "status": f.job_status.map(|s| s.as_str()),
        "started_at": time(f.job_started_at),
        "finished_at": time(f.job_finished_at),
        "duration_ms": run_ms(f.job_started_at, f.job_finished_at),
    })
}

/// A fire that enqueued nothing, and why.
pub fn skipped_fire(f: &FireRecord) -> Value {
    json!({
        "fire_at": rfc3339(f.fire_at),
        "recorded_at": rfc3339(f.recorded_at),
        "reason": f.reason,
    })
}

/// Run-time figures over a schedule's recent runs.
pub fn run_stats(s: &RunStats) -> Value {
    json!({
        "runs": s.runs,
        "finished": s.finished,
        "succeeded": s.succeeded,
        "failed": s.failed,
        "timed": s.timed,
        "avg_ms": s.avg_ms,
        "p95_ms": s.p95_ms,
        "max_ms": s.max_ms,
    })
}
