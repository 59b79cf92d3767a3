//! The remote-worker protocol: a worker in any language claims jobs with a lease (waiting
//! up to `wait` for one to arrive), heartbeats while it runs them, may report their progress,
//! and completes or fails each under the fence (job id, attempt, worker id) it was given.
//!
//! A long-polling claim does not spin: it subscribes to the store's wake-up hints before its
//! first try, sleeps until a hint for one of its queues (or the poll interval, since hints do
//! not cross processes on SQLite), and claims again. Claims, heartbeats and outcomes register
//! the worker in the worker registry and keep its `last_seen_at` fresh.
//!
//! Outcomes are recorded by `errand_worker::record`, the recorder the in-process pool uses:
//! a failure reported for a job someone asked to cancel ends it `cancelled`; otherwise
//! retry-or-fail is decided with the kind's backoff from the task settings; results and error
//! texts lose the job's secrets and what a store cannot hold, the same way.

use crate::error::ApiError;
use crate::extract::{duration, Body, IdParam};
use crate::{views, AppState};
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use errand::worker::record;
use errand_core::schema::{self, forbid};
use errand_core::storable::check_text;
use errand_core::validate::validate_queue_name;
use errand_core::{
    AfterError, ClaimedJob, FailAction, Fence, HandlerError, Job, JobArgs, JobId, Progress,
};
use errand_store::{
    Ack, JobClaim, JobHeartbeat, JobProgress, StoreError, WorkerQueue, WorkerRegistration,
};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

type JsonResult = Result<Json<Value>, ApiError>;

/// Most jobs one claim may take.
const MAX_CLAIM: u32 = 100;
const MIN_LEASE: Duration = Duration::from_secs(1);
const MAX_LEASE: Duration = Duration::from_secs(3600);
/// Most queues one claim may name.
const MAX_QUEUES: usize = 50;

/// Most characters of a worker id, host and version.
const MAX_WORKER_TEXT: usize = 200;

fn check_worker_id(id: &str) -> Result<(), ApiError> {
    let n = id.chars().count();
    if n == 0 || n > MAX_WORKER_TEXT || id.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "worker_id",
            "`worker_id` must be 1 to 200 characters without control characters",
        ));
    }
    Ok(())
}

/// A worker id: 1 to 200 characters, none a control character (`char::is_control`: U+0000
/// to U+001F and U+007F to U+009F).
fn worker_id(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_WORKER_TEXT,
        "pattern": r"^[^\u0000-\u001f\u007f-\u009f]*$",
        "description": "The worker's id, 1 to 200 characters without control characters: the fence of every job it claims",
    })
}

/// Describes the worker in the registry: at most 200 characters, without NUL; or null.
fn worker_text(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "nullable": true,
        "maxLength": MAX_WORKER_TEXT,
        "pattern": schema::TEXT_PATTERN,
    })
}

/// A lease: 1s to 1h.
fn lease_or_null(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "nullable": true,
        "pattern": schema::duration_range_pattern(MIN_LEASE, MAX_LEASE),
        "description": "The lease of each job, 1s to 1h (default 30s, `ServerConfig::default_lease`), written in one unit here (90s, 5m, 1h); heartbeat every third of it",
    })
}

/// A claim's wait: 0 to 30s.
fn wait_or_null(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "nullable": true,
        "pattern": schema::duration_range_pattern(Duration::ZERO, crate::DEFAULT_MAX_WAIT),
        "description": "Wait this long for a job when none is ready: default 0 (answer at once), at most 30s (`ServerConfig::max_wait` when embedding), written in one unit here (0, 500ms, 20s)",
    })
}

fn lease(s: &AppState, raw: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = raw else {
        return Ok(s.config.default_lease);
    };
    let d = duration("lease", raw)?;
    if !(MIN_LEASE..=MAX_LEASE).contains(&d) {
        return Err(ApiError::invalid(
            "lease",
            format!("`lease` must be between 1s and 1h, got {raw}"),
        ));
    }
    Ok(d)
}

/// `POST /v1/worker/claim`. `host`, `pid` and `version` describe the worker in the registry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    #[schemars(schema_with = "worker_id")]
    worker_id: String,
    /// The queues to claim from, in order: 1 to 50 names.
    #[schemars(schema_with = "queue_list")]
    queues: Vec<String>,
    /// Most jobs to take, 1 to 100 (default 1).
    #[serde(default)]
    #[schemars(schema_with = "claim_limit")]
    limit: Option<u32>,
    #[serde(default)]
    #[schemars(schema_with = "lease_or_null")]
    lease: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "wait_or_null")]
    wait: Option<String>,
    /// The worker's host name.
    #[serde(default)]
    #[schemars(schema_with = "worker_text")]
    host: Option<String>,
    /// The worker's process id.
    #[serde(default)]
    #[schemars(schema_with = "pid")]
    pid: Option<i64>,
    /// The worker's version.
    #[serde(default)]
    #[schemars(schema_with = "worker_text")]
    version: Option<String>,
}

fn queue_list(g: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "minItems": 1, "maxItems": MAX_QUEUES, "items": schema::name(g)})
}

fn claim_limit(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "format": "int32", "nullable": true, "minimum": 1, "maximum": MAX_CLAIM, "default": 1})
}

fn pid(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "format": "int64", "nullable": true, "minimum": 0, "maximum": i64::MAX})
}

/// Refreshes the worker's registry row, creating it when missing (first call, or pruned).
async fn register(
    s: &AppState,
    id: &str,
    describe: impl FnOnce() -> WorkerRegistration,
) -> Result<(), ApiError> {
    if !s.client.worker_heartbeat(id).await? {
        s.client.worker_register(&describe()).await?;
    }
    Ok(())
}

fn remote_registration(id: &str, queues: &[String], limit: u32) -> WorkerRegistration {
    WorkerRegistration {
        id: id.to_string(),
        host: "remote".into(),
        pid: 0,
        version: "remote".into(),
        queues: queues
            .iter()
            .map(|q| WorkerQueue {
                name: q.clone(),
                concurrency: limit,
            })
            .collect(),
    }
}

pub async fn claim(
    State(s): State<AppState>,
    Body(req): Body<ClaimRequest>,
) -> Result<Json<Claimed>, ApiError> {
    check_worker_id(&req.worker_id)?;
    if req.queues.is_empty() || req.queues.len() > MAX_QUEUES {
        return Err(ApiError::invalid(
            "queues",
            format!("`queues` must name 1 to {MAX_QUEUES} queues"),
        ));
    }
    for (i, q) in req.queues.iter().enumerate() {
        validate_queue_name(q).map_err(|e| {
            ApiError::invalid(format!("queues[{i}]"), format!("queue `{q}` {}", e.problem))
        })?;
    }
    let limit = req.limit.unwrap_or(1);
    if !(1..=MAX_CLAIM).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("`limit` must be between 1 and {MAX_CLAIM}, got {limit}"),
        ));
    }
    let lease = lease(&s, req.lease.as_deref())?;
    let wait = match &req.wait {
        Some(w) => duration("wait", w)?,
        None => Duration::ZERO,
    };
    if wait > s.config.max_wait {
        return Err(ApiError::invalid(
            "wait",
            format!(
                "`wait` must be at most {}s, got {}",
                s.config.max_wait.as_secs(),
                req.wait.as_deref().unwrap_or_default()
            ),
        ));
    }
    if let Some(pid) = req.pid {
        if pid < 0 {
            return Err(ApiError::invalid("pid", "`pid` must not be negative"));
        }
    }
    for (field, value) in [("host", &req.host), ("version", &req.version)] {
        if let Some(v) = value {
            if v.chars().count() > MAX_WORKER_TEXT {
                return Err(ApiError::invalid(
                    field,
                    format!("`{field}` must be at most {MAX_WORKER_TEXT} characters"),
                ));
            }
            check_text(field, v)
                .map_err(|e| ApiError::invalid(field, format!("`{field}` {}", e.problem)))?;
        }
    }
    let registration = || WorkerRegistration {
        host: req.host.clone().unwrap_or_else(|| "remote".into()),
        pid: req.pid.unwrap_or(0),
        version: req.version.clone().unwrap_or_else(|| "remote".into()),
        ..remote_registration(&req.worker_id, &req.queues, limit)
    };
    if req.host.is_some() || req.pid.is_some() || req.version.is_some() {
        // The worker describes itself: keep the registry row up to date.
        s.client.worker_register(&registration()).await?;
    } else {
        register(&s, &req.worker_id, registration).await?;
    }

    // Subscribe before the first try, so a job enqueued between it and the wait is not missed.
    let mut hints = s.client.subscribe();
    let mut shutdown = s.config.shutdown.clone();
    let deadline = Instant::now() + wait;
    loop {
        let jobs = claim_round(&s, &req, limit, lease).await?;
        let now = Instant::now();
        if !jobs.is_empty() || now >= deadline || *shutdown.borrow() {
            return Ok(Json(Claimed {
                jobs: jobs.into_iter().map(claimed).collect(),
            }));
        }
        let nap = deadline.min(now + s.config.poll_interval);
        tokio::select! {
            () = hint_for(&mut hints, &req.queues) => {}
            () = tokio::time::sleep_until(nap) => {}
            () = stopped(&mut shutdown) => {}
        }
    }
}

/// One claim per queue, in the order given, until `limit` jobs are held.
async fn claim_round(
    s: &AppState,
    req: &ClaimRequest,
    limit: u32,
    lease: Duration,
) -> Result<Vec<ClaimedJob>, ApiError> {
    let mut out = Vec::new();
    for queue in &req.queues {
        let want = limit - out.len() as u32;
        if want == 0 {
            break;
        }
        let jobs = s
            .client
            .claim(&JobClaim {
                queue: queue.clone(),
                worker_id: req.worker_id.clone(),
                limit: want,
                lease,
            })
            .await?;
        out.extend(jobs);
    }
    Ok(out)
}

/// The answer to a claim.
#[derive(Debug, Serialize)]
pub struct Claimed {
    jobs: Vec<ClaimedView>,
}

/// A claimed job as a remote worker gets it: its fence is the id, the attempt and the worker
/// id it claimed with, which it sends back with every heartbeat and outcome. The args are
/// written as the JSON text the store returned (not decoded and encoded again). Fields in
/// alphabetical order, as the object always printed.
#[derive(Debug, Serialize)]
struct ClaimedView {
    args: JobArgs,
    attempt: i32,
    id: JobId,
    kind: String,
    lease_expires_at: Option<DateTime<Utc>>,
    queue: String,
    timeout_ms: Option<i64>,
}

fn claimed(j: ClaimedJob) -> ClaimedView {
    ClaimedView {
        attempt: j.fence.attempt,
        id: j.fence.job_id,
        args: j.job.args,
        kind: j.job.kind,
        lease_expires_at: j.job.lease_expires_at,
        queue: j.job.queue,
        timeout_ms: j.job.timeout_ms,
    }
}

/// Returns when a hint names one of `queues` (or anything may be ready).
async fn hint_for(hints: &mut broadcast::Receiver<errand_store::JobsReady>, queues: &[String]) {
    loop {
        match hints.recv().await {
            Ok(h) if h.queue == "*" || queues.contains(&h.queue) => return,
            Ok(_) => continue,
            // Missed some: any queue may be ready.
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// Returns when the server is stopping (never, if nobody can tell it to).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// `POST /v1/worker/heartbeat`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    #[schemars(schema_with = "worker_id")]
    worker_id: String,
    /// The jobs the worker holds, at most 1000 (default none: the worker only says it lives).
    #[serde(default)]
    #[schemars(length(max = MAX_HELD))]
    jobs: Vec<HeldJob>,
    /// The new lease from now, 1s to 1h (default 30s).
    #[serde(default)]
    #[schemars(schema_with = "lease_or_null")]
    lease: Option<String>,
}

/// Most jobs one heartbeat may name.
const MAX_HELD: usize = 1000;

/// A job a worker holds: its id and the attempt it claimed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HeldJob {
    #[schemars(schema_with = "job_id")]
    id: JobId,
    #[schemars(schema_with = "schema::int32")]
    attempt: i32,
}

/// A job id as a body gives it: any integer the store's ids can be (one that names no job
/// is `lost`, or 404 on a report).
fn job_id(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX})
}

pub async fn heartbeat(State(s): State<AppState>, Body(req): Body<HeartbeatRequest>) -> JsonResult {
    check_worker_id(&req.worker_id)?;
    if req.jobs.len() > MAX_HELD {
        return Err(ApiError::invalid("jobs", "at most 1000 jobs per heartbeat"));
    }
    let lease = lease(&s, req.lease.as_deref())?;
    register(&s, &req.worker_id, || {
        remote_registration(&req.worker_id, &[], 0)
    })
    .await?;
    if req.jobs.is_empty() {
        return Ok(Json(json!({ "jobs": [] })));
    }
    let states = s
        .client
        .heartbeat(&JobHeartbeat {
            lease,
            fences: req
                .jobs
                .iter()
                .map(|j| Fence {
                    job_id: j.id,
                    attempt: j.attempt,
                    worker_id: req.worker_id.clone(),
                })
                .collect(),
        })
        .await?;
    let jobs: Vec<Value> = states
        .iter()
        .map(|st| {
            let state = match (st.held, st.cancel_requested) {
                (false, _) => "lost",
                (true, true) => "cancel_requested",
                (true, false) => "held",
            };
            json!({"id": st.fence.job_id, "state": state})
        })
        .collect();
    Ok(Json(json!({ "jobs": jobs })))
}

/// The job a worker reports on, or 404.
async fn reported_job(s: &AppState, id: JobId) -> Result<Job, ApiError> {
    s.client
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))
}

fn stale(id: JobId, attempt: i32, worker_id: &str) -> ApiError {
    ApiError::conflict(
        "stale",
        format!(
            "worker `{worker_id}` does not hold job {id} attempt {attempt} (its lease expired, or \
             the job was rescued, cancelled or finished): nothing was recorded; drop the job"
        ),
    )
}

fn run_seconds(job: &Job) -> Option<f64> {
    job.started_at
        .map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
}

/// `POST /v1/worker/jobs/{id}/complete`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    #[schemars(schema_with = "worker_id")]
    worker_id: String,
    /// The attempt the job was claimed with.
    #[schemars(schema_with = "schema::int32")]
    attempt: i32,
    /// What the job produced: any JSON value (NUL characters are replaced, see the job's
    /// events).
    #[serde(default)]
    #[schemars(schema_with = "any_or_null")]
    result: Option<Value>,
}

fn any_or_null(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"nullable": true})
}

pub async fn complete(
    State(s): State<AppState>,
    IdParam(id): IdParam,
    Body(req): Body<CompleteRequest>,
) -> JsonResult {
    check_worker_id(&req.worker_id)?;
    let job = reported_job(&s, id).await?;
    let fence = Fence {
        job_id: id,
        attempt: req.attempt,
        worker_id: req.worker_id.clone(),
    };
    let success = record::success(&job, fence, req.result.as_ref());
    let answer = s.client.record_success(&success).await?;
    match answer {
        Ack::Done => {
            s.config.metrics.succeeded(run_seconds(&job));
            Ok(Json(json!({ "ok": true })))
        }
        Ack::Stale => Err(stale(id, req.attempt, &req.worker_id)),
    }
}

/// `POST /v1/worker/jobs/{id}/progress`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressRequest {
    #[schemars(schema_with = "worker_id")]
    worker_id: String,
    /// The attempt the job was claimed with.
    #[schemars(schema_with = "schema::int32")]
    attempt: i32,
    /// How far the job has come: any JSON value of at most 8 KiB as compact JSON, by
    /// convention `{"done": 40, "total": 100, "message": "..."}`; replaces the last one.
    #[schemars(schema_with = "any_or_null")]
    progress: Value,
}

/// Writes a held job's progress under its fence, as the in-process pool's
/// `JobContext::progress` does: refused whole (400) when the value is beyond the limit, 409
/// when the caller no longer holds the job, 404 when there is no such job.
pub async fn progress(
    State(s): State<AppState>,
    IdParam(id): IdParam,
    Body(req): Body<ProgressRequest>,
) -> JsonResult {
    check_worker_id(&req.worker_id)?;
    let progress =
        Progress::new(req.progress).map_err(|e| ApiError::invalid("progress", e.to_string()))?;
    let write = JobProgress {
        fence: Fence {
            job_id: id,
            attempt: req.attempt,
            worker_id: req.worker_id.clone(),
        },
        progress,
    };
    match s.client.progress(&write).await? {
        Ack::Done => Ok(Json(json!({ "ok": true }))),
        // Only a refused write pays for telling a missing job from a lost lease.
        Ack::Stale => {
            reported_job(&s, id).await?;
            Err(stale(id, req.attempt, &req.worker_id))
        }
    }
}

/// `POST /v1/worker/jobs/{id}/fail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = retry_after_or_permanent)]
pub struct FailRequest {
    #[schemars(schema_with = "worker_id")]
    worker_id: String,
    /// The attempt the job was claimed with.
    #[schemars(schema_with = "schema::int32")]
    attempt: i32,
    /// What went wrong (NUL characters are replaced).
    error: String,
    /// Retry after this long (`30s`), whatever the backoff says; still spends the attempt.
    #[serde(default)]
    #[schemars(schema_with = "schema::duration_or_null")]
    retry_after: Option<String>,
    /// Never retry (default false); exclusive with `retry_after`.
    #[serde(default)]
    permanent: bool,
}

/// `retry_after` or `permanent: true`, not both.
fn retry_after_or_permanent(schema: &mut Schema) {
    forbid(
        schema,
        vec![json!({
            "required": ["retry_after", "permanent"],
            "properties": {
                "retry_after": {"type": "string"},
                "permanent": {"type": "boolean", "enum": [true]},
            },
        })],
    );
}

pub async fn fail(
    State(s): State<AppState>,
    Extension(caller): Extension<crate::auth::Caller>,
    IdParam(id): IdParam,
    Body(req): Body<FailRequest>,
) -> JsonResult {
    check_worker_id(&req.worker_id)?;
    if req.permanent && req.retry_after.is_some() {
        return Err(ApiError::invalid(
            "retry_after",
            "give retry_after or permanent, not both",
        ));
    }
    let error = match &req.retry_after {
        Some(raw) => HandlerError::retry_after(req.error.clone(), duration("retry_after", raw)?),
        None if req.permanent => HandlerError::permanent(req.error.clone()),
        None => HandlerError::Error {
            message: req.error.clone(),
        },
    };
    let job = reported_job(&s, id).await?;
    let fence = Fence {
        job_id: id,
        attempt: req.attempt,
        worker_id: req.worker_id.clone(),
    };
    let seconds = run_seconds(&job);
    let done = match s.client.record_failure(&job, &fence, &error).await {
        Ok(done) => done,
        Err(errand::Error::Store(StoreError::Stale { .. })) => {
            return Err(stale(id, req.attempt, &req.worker_id))
        }
        Err(e) => return Err(e.into()),
    };
    match done.decision {
        AfterError::Apply(FailAction::Retry { .. }) => s.config.metrics.retried(seconds),
        AfterError::Apply(FailAction::Fail) => s.config.metrics.failed(seconds),
        AfterError::Cancel => s.config.metrics.cancelled(),
    }
    Ok(Json(
        json!({ "job": views::job(&done.job, &caller, Utc::now()) }),
    ))
}
