//! The jobs endpoints: enqueue (one or a batch), list with filters and cursor paging, one job
//! with its events, and the operator actions (cancel, retry, purge), one or in bulk.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{duration, Body, IdParam, Query};
use crate::{views, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use errand_core::schema::{self, forbid, given, none_given};
use errand_core::{JobId, JobStatus, NewJob};
use errand_store::{CancelOutcome, JobList, JobPage, RetryOutcome, StateFilter};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{json, Value};

/// Most jobs one batch may hold.
pub const MAX_BATCH: usize = 1000;
/// Most ids one bulk action may name.
const MAX_IDS: usize = 10_000;
/// Largest page of a list.
const MAX_LIMIT: u32 = JobList::MAX_LIMIT;

type JsonResult = Result<Json<Value>, ApiError>;

fn empty_object() -> Value {
    json!({})
}

/// `POST /v1/jobs` and each item of a batch.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = run_at_or_delay)]
pub struct EnqueueRequest {
    /// The task kind: which handler runs the job. A kind no configured task knows is 422
    /// (unless no task is configured).
    #[schemars(schema_with = "schema::name")]
    kind: String,
    #[serde(default = "empty_object")]
    #[schemars(schema_with = "schema::args")]
    args: Value,
    /// The queue (default `default`).
    #[serde(default)]
    #[schemars(schema_with = "schema::name_or_null")]
    queue: Option<String>,
    /// Higher runs first (default 0).
    #[serde(default)]
    #[schemars(schema_with = "schema::int32_or_null")]
    priority: Option<i32>,
    /// Run no earlier than this instant; exclusive with `delay`.
    run_at: Option<DateTime<Utc>>,
    /// Run no earlier than this long from now (`30s`, `5m`); exclusive with `run_at`.
    #[serde(default)]
    #[schemars(schema_with = "schema::duration_or_null")]
    delay: Option<String>,
    /// While a job with this key is queued or running, enqueueing another inserts nothing
    /// (200 with the live job's id).
    #[serde(default)]
    #[schemars(schema_with = "schema::key_or_null")]
    unique_key: Option<String>,
    /// The entity the job is about.
    reference: Option<Reference>,
    /// Attempts before the job fails for good (default 4).
    #[serde(default)]
    #[schemars(schema_with = "schema::attempts_or_null")]
    max_attempts: Option<i32>,
    /// Execution limit of one attempt, `0` for none (default: the task's).
    #[serde(default)]
    #[schemars(schema_with = "schema::duration_or_null")]
    timeout: Option<String>,
    /// Jobs sharing this key (within the queue) run at most `key_concurrency` at a time
    /// across every worker; the others wait queued (default: the task's argument, if it
    /// names one).
    #[serde(default)]
    #[schemars(schema_with = "schema::key_or_null")]
    concurrency_key: Option<String>,
    /// How many jobs of this key may run at once (default: the task's, else the queue's,
    /// else 1). Only with a `concurrency_key`.
    #[serde(default)]
    #[schemars(schema_with = "schema::limit_or_null")]
    key_concurrency: Option<i32>,
}

/// `run_at` or `delay`, not both; `key_concurrency` only with a `concurrency_key`.
fn run_at_or_delay(schema: &mut Schema) {
    forbid(
        schema,
        vec![
            given(&[("run_at", "string"), ("delay", "string")]),
            serde_json::json!({"allOf": [
                given(&[("key_concurrency", "integer")]),
                schema::none_given(&[("concurrency_key", "string")]),
            ]}),
        ],
    );
}

/// The entity a job is about.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "JobReference")]
struct Reference {
    #[serde(rename = "type")]
    #[schemars(schema_with = "schema::name")]
    kind: String,
    #[schemars(schema_with = "reference_id")]
    id: ReferenceId,
}

/// A reference id: a key, or an integer (read as its decimal text).
fn reference_id(g: &mut SchemaGenerator) -> Schema {
    json_schema!({"oneOf": [
        schema::key(g),
        {"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX},
    ]})
}

/// An entity id as a string or a number (`"42"` or `42`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ReferenceId {
    Text(String),
    Number(i64),
}

impl EnqueueRequest {
    /// The library's description of the job; `prefix` names the item in a batch.
    fn into_new_job(self, prefix: &str) -> Result<NewJob, ApiError> {
        if self.run_at.is_some() && self.delay.is_some() {
            return Err(ApiError::invalid(
                format!("{prefix}delay"),
                "give run_at or delay, not both",
            ));
        }
        let delay_ms = match &self.delay {
            Some(d) => Some(millis(duration(&format!("{prefix}delay"), d)?)),
            None => None,
        };
        let timeout_ms = match &self.timeout {
            Some(t) => Some(millis(duration(&format!("{prefix}timeout"), t)?)),
            None => None,
        };
        let (reference_type, reference_id) = match self.reference {
            Some(r) => (
                Some(r.kind),
                Some(match r.id {
                    ReferenceId::Text(s) => s,
                    ReferenceId::Number(n) => n.to_string(),
                }),
            ),
            None => (None, None),
        };
        Ok(NewJob {
            kind: self.kind,
            // The body was read as a tree (to name a bad field); its args are encoded once here.
            args: self.args.into(),
            queue: self.queue,
            priority: self.priority,
            run_at: self.run_at,
            delay_ms,
            max_attempts: self.max_attempts,
            unique_key: self.unique_key,
            reference_type,
            reference_id,
            timeout_ms,
            concurrency_key: self.concurrency_key,
            key_concurrency: self.key_concurrency,
        })
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The API's name of a field the library's validation names.
fn api_field(field: &str) -> &str {
    match field {
        "delay_ms" => "delay",
        "timeout_ms" => "timeout",
        "reference_type" => "reference.type",
        "reference_id" => "reference.id",
        other => other,
    }
}

fn invalid_job(e: errand::Error) -> ApiError {
    match e {
        errand::Error::Invalid(v) => {
            ApiError::rejected(api_field(v.field), v.to_string(), v.rejection)
        }
        errand::Error::InvalidInBatch { index, source } => ApiError::rejected(
            format!("jobs[{index}].{}", api_field(source.field)),
            format!("job {index} of the batch: {source}"),
            source.rejection,
        ),
        other => other.into(),
    }
}

pub async fn enqueue(
    State(s): State<AppState>,
    Body(req): Body<EnqueueRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let job = req.into_new_job("")?;
    let out = s
        .client
        .enqueue_many(std::slice::from_ref(&job))
        .await
        .map_err(|e| match e {
            errand::Error::InvalidInBatch { source, .. } => invalid_job(source.into()),
            other => invalid_job(other),
        })?;
    let e = out[0];
    if e.inserted {
        s.config.metrics.enqueued(1);
    }
    let status = if e.inserted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({"id": e.id, "inserted": e.inserted}))))
}

/// `POST /v1/jobs/batch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "EnqueueBatchRequest")]
pub struct BatchRequest {
    /// The jobs, inserted all or none.
    #[schemars(length(max = MAX_BATCH))]
    jobs: Vec<EnqueueRequest>,
}

pub async fn enqueue_batch(State(s): State<AppState>, Body(req): Body<BatchRequest>) -> JsonResult {
    if req.jobs.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "jobs",
            format!(
                "a batch holds at most {MAX_BATCH} jobs, got {}",
                req.jobs.len()
            ),
        ));
    }
    let jobs = req
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, j)| j.into_new_job(&format!("jobs[{i}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let out = s.client.enqueue_many(&jobs).await.map_err(invalid_job)?;
    s.config
        .metrics
        .enqueued(out.iter().filter(|e| e.inserted).count() as u64);
    let results: Vec<Value> = out
        .iter()
        .map(|e| json!({"id": e.id, "inserted": e.inserted}))
        .collect();
    Ok(Json(json!({ "results": results })))
}

/// `GET /v1/jobs`. Numbers are read as text so a bad one is reported by name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    #[schemars(schema_with = "status_list")]
    status: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "derived_list")]
    derived: Option<String>,
    /// Queue name.
    #[serde(default)]
    #[schemars(schema_with = "schema::filter")]
    queue: Option<String>,
    /// Task kind.
    #[serde(default)]
    #[schemars(schema_with = "schema::filter")]
    kind: Option<String>,
    /// `type` or `type:id` of the entity the jobs are about.
    #[serde(default)]
    #[schemars(schema_with = "schema::filter")]
    reference: Option<String>,
    /// Created at or after: RFC 3339, or a duration ago (`1h`).
    #[serde(default)]
    #[schemars(schema_with = "instant_schema")]
    since: Option<String>,
    /// Created before: RFC 3339, or a duration ago.
    #[serde(default)]
    #[schemars(schema_with = "instant_schema")]
    until: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[serde(default)]
    #[schemars(schema_with = "page_size")]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    #[schemars(schema_with = "cursor")]
    cursor: Option<String>,
}

/// Comma-separated state words (empty items are skipped).
fn state_list(description: &str) -> Schema {
    let words = errand_core::DerivedState::state_words().join("|");
    json_schema!({
        "type": "string",
        "pattern": format!("^(?:{words})?(?:,(?:{words})?)*$"),
        "description": description,
    })
}

fn status_list(_: &mut SchemaGenerator) -> Schema {
    state_list(&crate::routes::STATUS_HELP)
}

fn derived_list(_: &mut SchemaGenerator) -> Schema {
    state_list(&crate::routes::DERIVED_HELP)
}

/// An instant: RFC 3339, or a duration before now.
fn instant_schema(g: &mut SchemaGenerator) -> Schema {
    json_schema!({"anyOf": [
        {"type": "string", "format": "date-time"},
        schema::duration(g),
    ]})
}

fn page_size(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50})
}

fn cursor(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX})
}

/// The states a list asks for: stored or derived words, comma-separated, in both fields.
fn states(q: &ListQuery) -> Result<Vec<StateFilter>, ApiError> {
    let mut out = Vec::new();
    for (field, value) in [("status", &q.status), ("derived", &q.derived)] {
        for word in value.iter().flat_map(|v| v.split(',')) {
            let word = word.trim();
            if word.is_empty() {
                continue;
            }
            let state: StateFilter = word
                .parse()
                .map_err(|e: String| ApiError::invalid(field, format!("`{field}`: {e}")))?;
            if !out.contains(&state) {
                out.push(state);
            }
        }
    }
    Ok(out)
}

/// An instant given as RFC 3339 or as a duration before now.
fn instant(field: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    match errand_core::parse_duration(raw) {
        Ok(d) => chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| Utc::now().checked_sub_signed(d))
            .ok_or_else(|| ApiError::invalid(field, format!("`{field}`: {raw} is too far back"))),
        Err(_) => Err(ApiError::invalid(
            field,
            format!("`{field}`: expected an RFC 3339 time (2026-01-31T12:00:00Z) or a duration ago (1h), got `{raw}`"),
        )),
    }
}

fn reference(raw: Option<&str>) -> (Option<String>, Option<String>) {
    match raw {
        None => (None, None),
        Some(r) => match r.split_once(':') {
            Some((t, id)) => (Some(t.to_string()), Some(id.to_string())),
            None => (Some(r.to_string()), None),
        },
    }
}

fn number<T: std::str::FromStr>(field: &str, raw: &str) -> Result<T, ApiError> {
    raw.trim().parse().map_err(|_| {
        ApiError::invalid(
            field,
            format!("`{field}`: expected an integer, got `{raw}`"),
        )
    })
}

fn name_filter(field: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match v {
        Some(s) if s.is_empty() => Err(ApiError::invalid(
            field,
            format!("`{field}` must not be empty when given"),
        )),
        other => Ok(other),
    }
}

pub async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> JsonResult {
    let states = states(&q)?;
    let limit = match &q.limit {
        Some(l) => number::<i64>("limit", l)?,
        None => 50,
    };
    let limit = JobList::check_limit(limit)
        .map_err(|v| ApiError::invalid(v.field, format!("`limit` {}", v.problem)))?;
    let before_id = match &q.cursor {
        Some(c) => Some(number::<JobId>("cursor", c)?),
        None => None,
    };
    let (reference_type, reference_id) =
        reference(name_filter("reference", q.reference.clone())?.as_deref());
    let base = JobList {
        state: None,
        queue: name_filter("queue", q.queue.clone())?,
        kind: name_filter("kind", q.kind.clone())?,
        reference_type,
        reference_id,
        since: q
            .since
            .as_deref()
            .map(|r| instant("since", r))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|r| instant("until", r))
            .transpose()?,
        before_id,
        limit,
    };
    let page = list_union(&s, &states, base).await?;
    Ok(Json(json!(views::page(&page, &caller, Utc::now()))))
}

/// One page of the jobs in any of `states` (all jobs when empty): one list per state,
/// merged newest first. Each list returns the newest `limit` of its state, so the newest
/// `limit` of the union are among them.
async fn list_union(
    s: &AppState,
    states: &[StateFilter],
    base: JobList,
) -> Result<JobPage, ApiError> {
    if states.len() <= 1 {
        let filter = JobList {
            state: states.first().copied(),
            ..base
        };
        return Ok(s.client.list(&filter).await?);
    }
    let limit = base.limit as usize;
    let mut more = false;
    let mut jobs = Vec::new();
    for state in states {
        let filter = JobList {
            state: Some(*state),
            ..base.clone()
        };
        let page = s.client.list(&filter).await?;
        more |= page.next_cursor.is_some();
        jobs.extend(page.jobs);
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
    jobs.dedup_by_key(|j| j.id);
    more |= jobs.len() > limit;
    jobs.truncate(limit);
    let next_cursor = if more {
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    Ok(JobPage { jobs, next_cursor })
}

pub async fn get(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    IdParam(id): IdParam,
) -> JsonResult {
    let (job, events) = s.client.job_with_events(id).await?;
    Ok(Json(json!(views::detail(
        &job,
        &events,
        &caller,
        Utc::now()
    ))))
}

async fn job_envelope(s: &AppState, caller: &Caller, id: JobId) -> JsonResult {
    let job = s
        .client
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))?;
    Ok(Json(json!({"job": views::job(&job, caller, Utc::now())})))
}

pub async fn cancel_one(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    IdParam(id): IdParam,
) -> JsonResult {
    match s
        .client
        .cancel(&[id], Some("cancelled over the HTTP API"))
        .await?[0]
    {
        CancelOutcome::Cancelled { .. } | CancelOutcome::CancelRequested { .. } => {
            job_envelope(&s, &caller, id).await
        }
        CancelOutcome::Unchanged { status, .. } => Err(ApiError::conflict(
            "not_cancellable",
            format!("job {id} is {status}: only queued or running jobs can be cancelled"),
        )),
        CancelOutcome::NotFound { .. } => Err(ApiError::not_found(format!("job {id} not found"))),
    }
}

pub async fn retry_one(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    IdParam(id): IdParam,
) -> JsonResult {
    match s.client.retry(&[id]).await?[0] {
        RetryOutcome::Retried { .. } => job_envelope(&s, &caller, id).await,
        RetryOutcome::Unchanged { status, .. } => Err(ApiError::conflict(
            "not_retryable",
            format!("job {id} is {status}: only failed or cancelled jobs can be retried"),
        )),
        RetryOutcome::NotFound { .. } => Err(ApiError::not_found(format!("job {id} not found"))),
    }
}

fn check_ids(ids: &[JobId]) -> Result<(), ApiError> {
    if ids.len() > MAX_IDS {
        return Err(ApiError::invalid(
            "ids",
            format!("at most {MAX_IDS} ids per call, got {}", ids.len()),
        ));
    }
    if let Some((i, bad)) = ids.iter().enumerate().find(|(_, id)| **id <= 0) {
        return Err(ApiError::invalid(
            format!("ids[{i}]"),
            format!("job id {bad} is not a positive integer"),
        ));
    }
    Ok(())
}

/// Ids of every job matching a filter, newest first (for bulk actions the store has no
/// filtered form of).
async fn ids_matching(
    s: &AppState,
    state: StateFilter,
    base: JobList,
) -> Result<Vec<JobId>, ApiError> {
    let mut filter = JobList {
        state: Some(state),
        limit: MAX_LIMIT,
        ..base
    };
    let mut ids = Vec::new();
    loop {
        let page = s.client.list(&filter).await?;
        ids.extend(page.jobs.iter().map(|j| j.id));
        match page.next_cursor {
            Some(c) => filter.before_id = Some(c),
            None => return Ok(ids),
        }
    }
}

/// `POST /v1/jobs/retry`: ids, or a filter over failed jobs (none: every failed job).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = ids_or_filter)]
pub struct RetryRequest {
    /// These jobs (those not failed or cancelled are left); exclusive with the filter.
    #[serde(default)]
    #[schemars(schema_with = "ids")]
    ids: Option<Vec<JobId>>,
    /// Retry every failed job of this queue.
    #[serde(default)]
    #[schemars(schema_with = "schema::filter_or_null")]
    queue: Option<String>,
    /// ... of this kind.
    #[serde(default)]
    #[schemars(schema_with = "schema::filter_or_null")]
    kind: Option<String>,
    /// ... about this entity: `type` or `type:id`.
    #[serde(default)]
    #[schemars(schema_with = "schema::filter_or_null")]
    reference: Option<String>,
}

/// Job ids, at most [`MAX_IDS`], each positive; or null.
fn ids(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "nullable": true,
        "maxItems": MAX_IDS,
        "items": {"type": "integer", "format": "int64", "minimum": 1, "maximum": JobId::MAX},
    })
}

/// `ids` or a filter, not both.
fn ids_or_filter(schema: &mut Schema) {
    forbid(schema, ids_with_any_of(&["queue", "kind", "reference"]));
}

/// `ids` given with any of `filters`, one case each.
fn ids_with_any_of(filters: &[&str]) -> Vec<Value> {
    filters
        .iter()
        .map(|f| given(&[("ids", "array"), (f, "string")]))
        .collect()
}

pub async fn retry_many(State(s): State<AppState>, Body(req): Body<RetryRequest>) -> JsonResult {
    let has_filter = req.queue.is_some() || req.kind.is_some() || req.reference.is_some();
    let retried = match req.ids {
        Some(_) if has_filter => {
            return Err(ApiError::invalid(
                "ids",
                "give ids or a filter (queue, kind, reference), not both",
            ))
        }
        Some(ids) => {
            check_ids(&ids)?;
            let out = s.client.retry(&ids).await?;
            out.iter()
                .filter(|o| matches!(o, RetryOutcome::Retried { .. }))
                .count() as u64
        }
        None if req.reference.is_none() => {
            let queue = name_filter("queue", req.queue)?;
            let kind = name_filter("kind", req.kind)?;
            s.client
                .retry_failed(queue.as_deref(), kind.as_deref(), |_| {})
                .await?
        }
        None => {
            let (reference_type, reference_id) =
                reference(name_filter("reference", req.reference)?.as_deref());
            let base = JobList {
                queue: name_filter("queue", req.queue)?,
                kind: name_filter("kind", req.kind)?,
                reference_type,
                reference_id,
                ..Default::default()
            };
            let ids = ids_matching(&s, StateFilter::Status(JobStatus::Failed), base).await?;
            let mut n = 0;
            for chunk in ids.chunks(1000) {
                let out = s.client.retry(chunk).await?;
                n += out
                    .iter()
                    .filter(|o| matches!(o, RetryOutcome::Retried { .. }))
                    .count() as u64;
            }
            n
        }
    };
    Ok(Json(json!({ "retried": retried })))
}

/// `POST /v1/jobs/cancel`: ids, or every job in a state matching a filter.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = ids_or_status)]
pub struct CancelRequest {
    /// These jobs (those not queued or running are left); exclusive with the filter.
    #[serde(default)]
    #[schemars(schema_with = "ids")]
    ids: Option<Vec<JobId>>,
    #[serde(default)]
    #[schemars(schema_with = "cancel_status")]
    status: Option<String>,
    /// ... of this queue.
    #[serde(default)]
    #[schemars(schema_with = "schema::filter_or_null")]
    queue: Option<String>,
    /// ... of this kind.
    #[serde(default)]
    #[schemars(schema_with = "schema::filter_or_null")]
    kind: Option<String>,
    /// ... about this entity: `type` or `type:id`.
    #[serde(default)]
    #[schemars(schema_with = "schema::filter_or_null")]
    reference: Option<String>,
}

/// One state word.
fn cancel_status(_: &mut SchemaGenerator) -> Schema {
    let words = errand_core::DerivedState::state_words();
    json_schema!({
        "type": "string",
        "nullable": true,
        "enum": words,
        "description": format!(
            "Cancel every job in this state: {} (those in a state that cannot be cancelled are left); needed without `ids`",
            errand_core::job::words(&words)
        ),
    })
}

/// `ids` alone, or `status` with the other filters.
fn ids_or_status(schema: &mut Schema) {
    let mut cases = ids_with_any_of(&["status", "queue", "kind", "reference"]);
    cases.push(none_given(&[("ids", "array"), ("status", "string")]));
    forbid(schema, cases);
}

pub async fn cancel_many(State(s): State<AppState>, Body(req): Body<CancelRequest>) -> JsonResult {
    let has_filter = req.status.is_some()
        || req.queue.is_some()
        || req.kind.is_some()
        || req.reference.is_some();
    let ids = match req.ids {
        Some(_) if has_filter => {
            return Err(ApiError::invalid(
                "ids",
                "give ids or a filter (status, queue, kind, reference), not both",
            ))
        }
        Some(ids) => {
            check_ids(&ids)?;
            ids
        }
        None => {
            let Some(status) = req.status else {
                return Err(ApiError::invalid(
                    "status",
                    "give `ids`, or a filter with `status` (e.g. queued) and optionally queue, kind, reference",
                ));
            };
            let state: StateFilter = status
                .parse()
                .map_err(|e: String| ApiError::invalid("status", format!("`status`: {e}")))?;
            let (reference_type, reference_id) =
                reference(name_filter("reference", req.reference)?.as_deref());
            let base = JobList {
                queue: name_filter("queue", req.queue)?,
                kind: name_filter("kind", req.kind)?,
                reference_type,
                reference_id,
                ..Default::default()
            };
            ids_matching(&s, state, base).await?
        }
    };
    let mut cancelled = 0u64;
    for chunk in ids.chunks(1000) {
        let out = s
            .client
            .cancel(chunk, Some("cancelled over the HTTP API"))
            .await?;
        cancelled += out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    CancelOutcome::Cancelled { .. } | CancelOutcome::CancelRequested { .. }
                )
            })
            .count() as u64;
    }
    Ok(Json(json!({ "cancelled": cancelled })))
}

/// `POST /v1/jobs/purge`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Finished longer ago than this.
    #[schemars(schema_with = "schema::duration")]
    older_than: String,
    /// Failed jobs too (default: only succeeded and cancelled ones).
    #[serde(default)]
    include_failed: bool,
}

pub async fn purge(State(s): State<AppState>, Body(req): Body<PurgeRequest>) -> JsonResult {
    let age = duration("older_than", &req.older_than)?;
    let before = chrono::Duration::from_std(age)
        .ok()
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .ok_or_else(|| {
            ApiError::invalid(
                "older_than",
                format!("`older_than`: {} is too long", req.older_than),
            )
        })?;
    let purged = s.client.purge(before, req.include_failed, |_| {}).await?;
    Ok(Json(json!({ "purged": purged })))
}
