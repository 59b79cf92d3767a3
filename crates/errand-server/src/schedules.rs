//! Schedules: list with next and last run, one schedule with its next fires, run history,
//! duration figures and skipped fires, and pause, resume, trigger now.
//!
//! Next fires are computed here from the stored spec with `errand-scheduler` (pure
//! arithmetic), starting after the later of now and the schedule's `last_fire_at`.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{NameParam, Query};
use crate::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use errand_core::Job;
use errand_scheduler::{Schedule, ScheduleSpec};
use errand_store::{FireKind, FireRecord, ScheduleFireList, ScheduleRecord};
use serde::Deserialize;
use serde_json::{json, Value};

type JsonResult = Result<Json<Value>, ApiError>;

/// Most next fires one request may ask for.
const MAX_NEXT: usize = 100;
/// Fires of the history a schedule's page shows.
const HISTORY: u32 = 100;

fn spec(record: &ScheduleRecord) -> Option<(ScheduleSpec, Option<Schedule>)> {
    let spec: ScheduleSpec = serde_json::from_value(record.spec.clone()).ok()?;
    let checked = spec.validate(&record.name).ok();
    Some((spec, checked))
}

fn duration_ms(started: Option<DateTime<Utc>>, finished: Option<DateTime<Utc>>) -> Option<i64> {
    Some((finished? - started?).num_milliseconds().max(0))
}

fn next_fire(
    record: &ScheduleRecord,
    checked: Option<&Schedule>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if record.paused {
        return None;
    }
    checked?.next_after(now.max(record.last_fire_at))
}

/// A schedule as JSON; `last` is the job of its latest run, when it still exists.
fn schedule_json(
    record: &ScheduleRecord,
    last: Option<&Job>,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Value {
    let parsed = spec(record);
    let (spec, checked) = match &parsed {
        Some((s, c)) => (Some(s), c.as_ref()),
        None => (None, None),
    };
    let mut args = spec.map(|s| s.args.clone()).unwrap_or(Value::Null);
    if !caller.role.sees_secrets() {
        args = errand_core::redact::redact(&args);
    }
    json!({
        "name": record.name,
        "cron": spec.and_then(|s| s.cron.clone()),
        "every": spec.and_then(|s| s.every.clone()),
        "timezone": spec.map(|s| s.timezone.clone().unwrap_or_else(|| "UTC".into())),
        "kind": record.kind,
        "queue": record.queue,
        "args": args,
        "overlap": checked.map(|c| c.overlap.as_str()),
        "paused": record.paused,
        "source": record.source,
        "next_fire_at": next_fire(record, checked, now),
        "last_fire_at": record.last_fire_at,
        "last_run": record.last_job_id.map(|id| json!({
            "job_id": id,
            "status": last.map(|j| j.status).or(record.last_job_status),
            "duration_ms": last.and_then(|j| duration_ms(j.started_at, j.finished_at)),
        })),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    })
}

/// The next fire of a stored schedule after `now`, if it is unpaused and readable.
pub(crate) fn next_fire_of(record: &ScheduleRecord, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let checked = spec(record).and_then(|(_, c)| c);
    next_fire(record, checked.as_ref(), now)
}

async fn last_job(s: &AppState, record: &ScheduleRecord) -> Result<Option<Job>, ApiError> {
    match record.last_job_id {
        Some(id) => Ok(s.client.job(id).await?),
        None => Ok(None),
    }
}

async fn record(s: &AppState, name: &str) -> Result<ScheduleRecord, ApiError> {
    s.client
        .store()
        .schedule_get(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("schedule `{name}` not found")))
}

pub async fn list(State(s): State<AppState>, Extension(caller): Extension<Caller>) -> JsonResult {
    let now = Utc::now();
    let mut out = Vec::new();
    for r in s.client.store().schedule_list().await? {
        let last = last_job(&s, &r).await?;
        out.push(schedule_json(&r, last.as_ref(), &caller, now));
    }
    Ok(Json(json!({ "schedules": out })))
}

/// `GET /v1/schedules/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    next: Option<String>,
}

fn fire_json(f: &FireRecord) -> Value {
    json!({
        "fire_at": f.fire_at,
        "outcome": f.outcome.as_str(),
        "job_id": f.job_id,
        "status": f.job_status,
        "duration_ms": duration_ms(f.job_started_at, f.job_finished_at),
    })
}

pub async fn get(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    NameParam(name): NameParam,
    Query(q): Query<ShowQuery>,
) -> JsonResult {
    let n = match &q.next {
        Some(raw) => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_NEXT)
            .ok_or_else(|| {
                ApiError::invalid(
                    "next",
                    format!("`next` must be an integer from 0 to {MAX_NEXT}, got `{raw}`"),
                )
            })?,
        None => 5,
    };
    let r = record(&s, &name).await?;
    let now = Utc::now();
    let last = last_job(&s, &r).await?;
    let checked = spec(&r).and_then(|(_, c)| c);
    let next_fires = match (&checked, r.paused) {
        (Some(c), false) => c.preview(n, now.max(r.last_fire_at)),
        _ => Vec::new(),
    };
    let store = s.client.store();
    let runs = store
        .schedule_fire_list(&ScheduleFireList {
            name: name.clone(),
            skipped: false,
            limit: HISTORY,
        })
        .await?;
    let skipped = store
        .schedule_fire_list(&ScheduleFireList {
            name: name.clone(),
            skipped: true,
            limit: HISTORY,
        })
        .await?;
    // The figures the CLI and the library give: over the succeeded runs.
    let stats = errand::run_stats(&runs);
    Ok(Json(json!({
        "schedule": schedule_json(&r, last.as_ref(), &caller, now),
        "next_fires": next_fires,
        "history": runs.iter().filter(|f| f.outcome != FireKind::Skipped).map(fire_json).collect::<Vec<_>>(),
        "stats": {
            "runs": stats.timed,
            "avg_ms": stats.avg_ms,
            "p95_ms": stats.p95_ms,
            "max_ms": stats.max_ms,
        },
        "skipped": skipped.iter().map(|f| json!({"fire_at": f.fire_at, "reason": f.reason})).collect::<Vec<_>>(),
    })))
}

async fn envelope(s: &AppState, caller: &Caller, r: ScheduleRecord) -> JsonResult {
    let last = last_job(s, &r).await?;
    Ok(Json(
        json!({ "schedule": schedule_json(&r, last.as_ref(), caller, Utc::now()) }),
    ))
}

pub async fn pause(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    NameParam(name): NameParam,
) -> JsonResult {
    let r = s.client.store().schedule_pause(&name).await?;
    envelope(&s, &caller, r).await
}

pub async fn resume(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    NameParam(name): NameParam,
) -> JsonResult {
    let r = s.client.store().schedule_resume(&name).await?;
    envelope(&s, &caller, r).await
}

/// Enqueues the schedule's job now (`errand::Client::schedule_trigger`: its own unique key,
/// the schedule's reference; the next fire does not move).
pub async fn trigger(State(s): State<AppState>, NameParam(name): NameParam) -> JsonResult {
    let enqueued = s.client.schedule_trigger(&name).await?;
    s.config.metrics.enqueued(u64::from(enqueued.inserted));
    Ok(Json(json!({ "job_id": enqueued.id })))
}
