//! The Python app's declarations (tasks, queues, schedules, worker timings), handed over as
//! JSON text and read into `errand-runtime`'s settings types, so a task declared with
//! `@app.task(...)` is the same `TaskDefinition` (and so the same `TaskCatalog` entry) as a
//! `[tasks.KIND]` table: its defaults and its backoff apply whichever way its jobs arrive.

use errand::{Backoff, ScheduleSpec};
use errand_runtime::{Handler, TaskDefinition, WorkerSettings};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Reads JSON text the Python layer wrote.
pub(crate) fn parse(what: &str, text: &str) -> PyResult<Value> {
    serde_json::from_str(text).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

fn millis(v: &Value, key: &str) -> Option<Duration> {
    v.get(key)
        .and_then(Value::as_u64)
        .map(Duration::from_millis)
}

/// `{"KIND": {"queue": .., "max_attempts": .., "timeout_ms": .., "backoff": {"base_ms",
/// "cap_ms", "jitter"}, "concurrency_key": "ARG", "key_concurrency": ..}}`: each task is an
/// in-process task; unset fields take [`TaskDefinition::new`]'s defaults.
pub(crate) fn definitions(tasks: &Value) -> PyResult<BTreeMap<String, TaskDefinition>> {
    let mut out = BTreeMap::new();
    let Some(map) = tasks.as_object() else {
        return Err(PyValueError::new_err("tasks: expected an object"));
    };
    for (kind, t) in map {
        let mut def = TaskDefinition::new(Handler::InProcess);
        if let Some(q) = t.get("queue").and_then(Value::as_str) {
            def.queue = q.to_string();
        }
        if let Some(n) = t.get("max_attempts").and_then(Value::as_i64) {
            def.max_attempts = i32::try_from(n).map_err(|_| {
                PyValueError::new_err(format!("task {kind}: max_attempts {n} is out of range"))
            })?;
        }
        if let Some(d) = millis(t, "timeout_ms") {
            def.timeout = d;
        }
        if let Some(b) = t.get("backoff").filter(|b| b.is_object()) {
            let default = Backoff::default();
            def.backoff = Backoff {
                base: millis(b, "base_ms").unwrap_or(default.base),
                cap: millis(b, "cap_ms").unwrap_or(default.cap),
                jitter: b
                    .get("jitter")
                    .and_then(Value::as_f64)
                    .unwrap_or(default.jitter),
            };
        }
        if let Some(arg) = t.get("concurrency_key").filter(|v| !v.is_null()) {
            match arg.as_str() {
                Some(a) if !a.is_empty() => def.concurrency_key = Some(a.to_string()),
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "task {kind}: concurrency_key must name an argument, got {arg}"
                    )))
                }
            }
        }
        if let Some(n) = t.get("key_concurrency").filter(|v| !v.is_null()) {
            def.key_concurrency = Some(
                n.as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        PyValueError::new_err(format!(
                            "task {kind}: key_concurrency must be a positive integer, got {n}"
                        ))
                    })?,
            );
        }
        out.insert(kind.clone(), def);
    }
    Ok(out)
}

/// `{"NAME": {a [schedules.NAME] table as JSON}}`, each checked by the scheduler's own rules.
pub(crate) fn schedules(v: &Value) -> PyResult<BTreeMap<String, ScheduleSpec>> {
    let mut out = BTreeMap::new();
    if let Some(map) = v.as_object() {
        for (name, spec) in map {
            out.insert(name.clone(), schedule(name, spec)?);
        }
    }
    Ok(out)
}

fn schedule(name: &str, spec: &Value) -> PyResult<ScheduleSpec> {
    let spec: ScheduleSpec = serde_json::from_value(spec.clone())
        .map_err(|e| PyValueError::new_err(format!("schedule {name}: {e}")))?;
    spec.validate(name)
        .map_err(|e| PyValueError::new_err(crate::error_text(&e)))?;
    Ok(spec)
}

/// Checks a periodic task's schedule when it is declared (not first at the worker's start).
#[pyfunction]
pub(crate) fn check_schedule(name: &str, spec: &str) -> PyResult<()> {
    schedule(name, &parse("schedule", spec)?).map(|_| ())
}

/// `{"lease_ms", "poll_interval_ms", "shutdown_grace_ms", "cancel_grace_ms"}`, each optional.
pub(crate) fn worker_settings(v: &Value) -> WorkerSettings {
    let d = WorkerSettings::default();
    WorkerSettings {
        enabled: true,
        lease: millis(v, "lease_ms").unwrap_or(d.lease),
        poll_interval: millis(v, "poll_interval_ms").unwrap_or(d.poll_interval),
        shutdown_grace: millis(v, "shutdown_grace_ms").unwrap_or(d.shutdown_grace),
        cancel_grace: millis(v, "cancel_grace_ms").unwrap_or(d.cancel_grace),
    }
}

/// A queue's limits from `{"global_concurrency": N, "key_concurrency": N, "rate_limit":
/// "100/1m"}` (each optional; absent or null is no limit), checked by the engine's rules
/// (`QueueLimits::check`, `RateLimit`'s reader); the error names the field.
pub(crate) fn limits_from(v: &Value) -> Result<errand::QueueLimits, String> {
    let int = |key: &str| -> Result<Option<i32>, String> {
        match v.get(key).filter(|n| !n.is_null()) {
            None => Ok(None),
            Some(n) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| format!("`{key}` must be an integer, got {n}")),
        }
    };
    let rate_limit = match v.get("rate_limit").filter(|r| !r.is_null()) {
        None => None,
        Some(Value::String(text)) => Some(
            text.parse::<errand_core::flow::RateLimit>()
                .map_err(|e| format!("`rate_limit`: {e}"))?,
        ),
        Some(other) => {
            return Err(format!(
                "`rate_limit` must be a string such as \"100/1m\", got {other}"
            ))
        }
    };
    let limits = errand::QueueLimits {
        global_concurrency: int("global_concurrency")?,
        key_concurrency: int("key_concurrency")?,
        rate_limit,
    };
    limits.check()?;
    Ok(limits)
}

/// One queue's declared limits (see [`limits_from`]), and its name checked.
fn one_queue_limits(name: &str, v: &Value) -> PyResult<errand::QueueLimits> {
    errand_core::validate::validate_queue_name(name)
        .map_err(|e| PyValueError::new_err(format!("queue {name}: {}", crate::error_text(&e))))?;
    limits_from(v).map_err(|m| PyValueError::new_err(format!("queue {name}: {m}")))
}

/// `{"QUEUE": {"global_concurrency": .., "key_concurrency": .., "rate_limit": ..}}`: the
/// limits the app declares (`app.queue(...)`), which the runtime writes at start where they
/// differ.
pub(crate) fn queue_limits(v: &Value) -> PyResult<BTreeMap<String, errand::QueueLimits>> {
    let mut out = BTreeMap::new();
    if let Some(map) = v.as_object() {
        for (name, limits) in map {
            out.insert(name.clone(), one_queue_limits(name, limits)?);
        }
    }
    Ok(out)
}

/// Checks a queue's declared limits when they are declared (not first at the worker's start).
#[pyfunction]
pub(crate) fn check_queue_limits(name: &str, limits: &str) -> PyResult<()> {
    one_queue_limits(name, &parse("queue", limits)?).map(|_| ())
}

/// `{"QUEUE": concurrency}`.
pub(crate) fn queues(v: &Value) -> PyResult<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    if let Some(map) = v.as_object() {
        for (q, n) in map {
            let n = n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "queues: the concurrency of `{q}` must be a positive integer, got {n}"
                    ))
                })?;
            out.insert(q.clone(), n);
        }
    }
    Ok(out)
}
