//! Schedules: list with next and last run (its result and error), one schedule with its next
//! fires, run history, duration figures and skipped fires; create, update and delete
//! run-time schedules; pause, resume, trigger now.
//!
//! Next fires are computed here from the stored spec with `errand-scheduler` (pure
//! arithmetic), starting after the later of now and the schedule's `last_fire_at`.
//!
//! Schedules from `errand.toml` (source `config`) are owned by the file: they may be paused,
//! resumed and triggered here, but changing or deleting one is a 409 naming the file
//! (`errand::Error::ConfigOwned`). Schedules created here have source `api`; `errand serve`'s
//! reconciliation leaves them alone, unless the file declares the same name, which then takes
//! it over. A trigger follows the schedule's overlap policy: while its previous run is live,
//! `skip` and `queue` answer 409 `overlap_skipped` and enqueue nothing; `force=true` runs it
//! anyway.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Body, NameParam, Query};
use crate::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use errand_core::Job;
use errand_scheduler::{Schedule, ScheduleSpec};
use errand_store::{FireKind, FireRecord, ScheduleFireList, ScheduleRecord};
use serde::Deserialize;
use serde_json::{json, Map, Value};

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
    let secrets = caller.role.sees_secrets();
    let mut args = spec.map(|s| s.args.clone()).unwrap_or(Value::Null);
    if !secrets {
        args = errand_core::redact::redact(&args);
    }
    json!({
        "name": record.name,
        "cron": spec.and_then(|s| s.cron.clone()),
        "every": spec.and_then(|s| s.every.clone()),
        // The zone `cron` is read in; `every` counts in UTC from the epoch and has none.
        "timezone": spec.and_then(|s| s.cron.as_ref().map(|_| s.timezone.clone().unwrap_or_else(|| "UTC".into()))),
        "kind": record.kind,
        "queue": record.queue,
        "args": args,
        "priority": spec.and_then(|s| s.priority),
        "max_attempts": spec.and_then(|s| s.max_attempts),
        "overlap": checked.map(|c| c.overlap.as_str()),
        "misfire_grace_ms": checked.map(|c| c.misfire_grace.as_millis() as u64),
        "coalesce": spec.map(|s| s.coalesce),
        "paused": record.paused,
        "problem": parse_problem(record),
        "source": record.source,
        "next_fire_at": next_fire(record, checked, now),
        "last_fire_at": record.last_fire_at,
        "last_run": record.last_job_id.map(|id| last_run(id, record, last, secrets)),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    })
}

/// Why the stored spec cannot be read, if so (the schedule then does not fire).
fn parse_problem(record: &ScheduleRecord) -> Option<String> {
    let spec: ScheduleSpec = match serde_json::from_value(record.spec.clone()) {
        Ok(s) => s,
        Err(e) => return Some(e.to_string()),
    };
    spec.validate(&record.name).err().map(|e| e.to_string())
}

/// A schedule's latest run: its job's state and times, and what it returned or the error it
/// failed with (`result`, `last_error`, as on the job). `/health/scheduler` shows the same.
pub(crate) fn last_run(
    id: errand_core::JobId,
    record: &ScheduleRecord,
    last: Option<&Job>,
    secrets: bool,
) -> Value {
    let result = last.and_then(|j| j.result.as_ref()).map(|r| {
        if secrets {
            r.clone()
        } else {
            errand_core::redact::redact(r)
        }
    });
    json!({
        "job_id": id,
        "status": last.map(|j| j.status).or(record.last_job_status),
        "created_at": last.map(|j| j.created_at),
        "started_at": last.and_then(|j| j.started_at),
        "finished_at": last.and_then(|j| j.finished_at),
        "duration_ms": last.and_then(|j| duration_ms(j.started_at, j.finished_at)),
        "result": result,
        "last_error": last.and_then(|j| j.last_error.clone()),
    })
}

/// The next fire of a stored schedule after `now`, if it is unpaused and readable.
pub(crate) fn next_fire_of(record: &ScheduleRecord, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let checked = spec(record).and_then(|(_, c)| c);
    next_fire(record, checked.as_ref(), now)
}

pub(crate) async fn last_job(
    s: &AppState,
    record: &ScheduleRecord,
) -> Result<Option<Job>, ApiError> {
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

/// `POST /v1/schedules/{name}/trigger?force=true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerQuery {
    force: Option<String>,
}

/// Enqueues the schedule's job now (`errand::Client::schedule_trigger`: its own unique key,
/// the schedule's reference; the next fire does not move), under its overlap policy: a skip
/// is 409 `overlap_skipped` with the reason; `force=true` overrides the policy.
pub async fn trigger(
    State(s): State<AppState>,
    NameParam(name): NameParam,
    Query(q): Query<TriggerQuery>,
) -> JsonResult {
    let force = match q.force.as_deref().map(str::trim) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "force",
                format!("`force` must be true or false, got `{other}`"),
            ))
        }
    };
    let triggered = s.client.schedule_trigger(&name, force).await?;
    match &triggered {
        errand::Triggered::Enqueued(enqueued) => {
            s.config.metrics.enqueued(u64::from(enqueued.inserted));
            Ok(Json(json!({ "job_id": enqueued.id })))
        }
        errand::Triggered::Skipped { reason, .. } => {
            let message = triggered.skip_message(&name).unwrap_or_default();
            Err(ApiError::conflict(
                reason.as_str(),
                format!("{message} (force=true)"),
            ))
        }
    }
}

/// `POST /v1/schedules`: a run-time schedule (source `api`): `name` and the fields of a
/// `[schedules.NAME]` table. 201; 400 naming the bad field; 409 if the name is taken.
pub async fn create(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(mut body): Body<Map<String, Value>>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let name = match body.remove("name") {
        Some(Value::String(n)) => n,
        Some(_) => return Err(ApiError::invalid("name", "`name` must be a string")),
        None => {
            return Err(ApiError::invalid(
                "name",
                "`name` is required: the schedule's name",
            ))
        }
    };
    let spec = spec_body(body)?;
    s.client.schedule_create(&name, &spec).await?;
    let r = record(&s, &name).await?;
    let Json(v) = envelope(&s, &caller, r).await?;
    Ok((axum::http::StatusCode::CREATED, Json(v)))
}

/// `PUT /v1/schedules/{name}`: replaces a run-time schedule's definition (its history and
/// fires already handled stay). 404 if missing; 409 if it comes from errand.toml.
pub async fn update(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    NameParam(name): NameParam,
    Body(body): Body<Map<String, Value>>,
) -> JsonResult {
    let spec = spec_body(body)?;
    s.client.schedule_update(&name, &spec).await?;
    let r = record(&s, &name).await?;
    envelope(&s, &caller, r).await
}

/// `DELETE /v1/schedules/{name}`: deletes a run-time schedule and its fire history (its jobs
/// stay). 404 if missing; 409 if it comes from errand.toml.
pub async fn delete(State(s): State<AppState>, NameParam(name): NameParam) -> JsonResult {
    if !s.client.schedule_delete(&name).await? {
        return Err(ApiError::not_found(format!("schedule `{name}` not found")));
    }
    Ok(Json(json!({ "deleted": name })))
}

/// The fields of a `[schedules.NAME]` table, read with errors naming the field.
fn spec_body(body: Map<String, Value>) -> Result<ScheduleSpec, ApiError> {
    let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
    crate::extract::parse(&bytes)
}
