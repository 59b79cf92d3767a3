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
use crate::extract::{Body, Query, ScheduleName};
use crate::{views, AppState};
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use errand::views::{ScheduleDetailView, ScheduleView};
use errand::ScheduleInfo;
use errand_core::{Job, JobId};
use errand_scheduler::{Schedule, ScheduleSpec};
use errand_store::ScheduleRecord;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{json, Map, Value};

type JsonResult = Result<Json<Value>, ApiError>;

/// Most next fires one request may ask for.
const MAX_NEXT: usize = 100;

fn spec(record: &ScheduleRecord) -> Option<Schedule> {
    let spec: ScheduleSpec = serde_json::from_value(record.spec.clone()).ok()?;
    spec.validate(&record.name).ok()
}

/// The next fire of a stored schedule after `now`, if it is unpaused and readable.
pub(crate) fn next_fire_of(record: &ScheduleRecord, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if record.paused {
        return None;
    }
    spec(record)?.next_after(now.max(record.last_fire_at))
}

/// The job of a schedule's latest run, when it still exists.
pub(crate) async fn last_job(s: &AppState, id: Option<JobId>) -> Result<Option<Job>, ApiError> {
    match id {
        Some(id) => Ok(s.client.job(id).await?),
        None => Ok(None),
    }
}

/// A schedule as `caller` may see it.
async fn view(
    s: &AppState,
    caller: &Caller,
    info: &ScheduleInfo,
) -> Result<ScheduleView, ApiError> {
    let last = last_job(s, info.last_job_id).await?;
    Ok(views::for_caller(
        ScheduleView::new(info, last.as_ref()),
        caller,
    ))
}

async fn info(s: &AppState, name: &str) -> Result<ScheduleInfo, ApiError> {
    Ok(s.client.schedule(name, 0).await?.info)
}

pub async fn list(State(s): State<AppState>, Extension(caller): Extension<Caller>) -> JsonResult {
    let mut out = Vec::new();
    for info in s.client.schedules().await? {
        out.push(view(&s, &caller, &info).await?);
    }
    Ok(Json(json!({ "schedules": out })))
}

/// `GET /v1/schedules/{name}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    /// How many next fire times to list, 0 to 100 (default 5).
    #[serde(default)]
    #[schemars(schema_with = "next_count")]
    next: Option<String>,
}

fn next_count(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "minimum": 0, "maximum": MAX_NEXT, "default": 5})
}

pub async fn get(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ScheduleName(name): ScheduleName,
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
    let detail = s.client.schedule(&name, n).await?;
    let last = last_job(&s, detail.info.last_job_id).await?;
    let view = ScheduleDetailView::new(&detail, last.as_ref());
    Ok(Json(json!(views::for_caller(view, &caller))))
}

async fn envelope(s: &AppState, caller: &Caller, info: ScheduleInfo) -> JsonResult {
    Ok(Json(json!({ "schedule": view(s, caller, &info).await? })))
}

pub async fn pause(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ScheduleName(name): ScheduleName,
) -> JsonResult {
    let info = s.client.schedule_pause(&name).await?;
    envelope(&s, &caller, info).await
}

pub async fn resume(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ScheduleName(name): ScheduleName,
) -> JsonResult {
    let info = s.client.schedule_resume(&name).await?;
    envelope(&s, &caller, info).await
}

/// `POST /v1/schedules/{name}/trigger?force=true`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerQuery {
    /// Run it even while its previous run is queued or running (default false).
    #[serde(default)]
    #[schemars(schema_with = "flag")]
    force: Option<String>,
}

/// `true` or `false`.
fn flag(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "boolean", "default": false})
}

/// Enqueues the schedule's job now (`errand::Client::schedule_trigger`: its own unique key,
/// the schedule's reference; the next fire does not move), under its overlap policy: a skip
/// is 409 `overlap_skipped` with the reason; `force=true` overrides the policy.
pub async fn trigger(
    State(s): State<AppState>,
    ScheduleName(name): ScheduleName,
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
    Body(NamedSchedule { name, spec }): Body<NamedSchedule>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let spec = spec_body(spec)?;
    s.client.schedule_create(&name, &spec).await?;
    let info = info(&s, &name).await?;
    let Json(v) = envelope(&s, &caller, info).await?;
    Ok((axum::http::StatusCode::CREATED, Json(v)))
}

/// `PUT /v1/schedules/{name}`: replaces a run-time schedule's definition (its history and
/// fires already handled stay). 404 if missing; 409 if it comes from errand.toml.
pub async fn update(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ScheduleName(name): ScheduleName,
    Body(spec): Body<ScheduleSpec>,
) -> JsonResult {
    s.client.schedule_update(&name, &spec).await?;
    let info = info(&s, &name).await?;
    envelope(&s, &caller, info).await
}

/// `DELETE /v1/schedules/{name}`: deletes a run-time schedule and its fire history (its jobs
/// stay). 404 if missing; 409 if it comes from errand.toml.
pub async fn delete(State(s): State<AppState>, ScheduleName(name): ScheduleName) -> JsonResult {
    if !s.client.schedule_delete(&name).await? {
        return Err(ApiError::not_found(format!("schedule `{name}` not found")));
    }
    Ok(Json(json!({ "deleted": name })))
}

/// `POST /v1/schedules`: `name` and the fields of a `[schedules.NAME]` table
/// ([`ScheduleSpec`]); its schema is the spec's with `name` added. The fields are read as a
/// spec by [`spec_body`], so an error names the field (`cron`, `args`) or the unknown one.
#[derive(Debug, Deserialize)]
pub struct NamedSchedule {
    name: String,
    #[serde(flatten)]
    spec: Map<String, Value>,
}

/// The fields of a `[schedules.NAME]` table, read with errors naming the field.
fn spec_body(body: Map<String, Value>) -> Result<ScheduleSpec, ApiError> {
    let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
    crate::extract::parse(&bytes)
}

impl JsonSchema for NamedSchedule {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ScheduleCreateRequest".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = ScheduleSpec::json_schema(generator);
        let name = errand_scheduler::schema::name(generator);
        let properties = schema
            .ensure_object()
            .entry("properties")
            .or_insert_with(|| json!({}));
        let mut all = Map::new();
        all.insert("name".into(), name.to_value());
        all.extend(properties.as_object().cloned().unwrap_or_default());
        *properties = Value::Object(all);
        let required = schema
            .ensure_object()
            .entry("required")
            .or_insert_with(|| json!([]));
        if let Some(list) = required.as_array_mut() {
            list.insert(0, json!("name"));
        }
        schema
    }
}
