//! Queues (statistics, pause, resume) and the worker registry.

use crate::error::ApiError;
use crate::extract::{duration, Body, Query, QueueName};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use chrono::Utc;
use errand::views::{QueueView, WorkerView};
use errand_core::schema;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

type JsonResult = Result<Json<Value>, ApiError>;

pub async fn list(State(s): State<AppState>) -> JsonResult {
    Ok(Json(json!({ "queues": queue_views(&s).await? })))
}

/// How far back a queue's `recent` figures look.
fn window() -> chrono::TimeDelta {
    chrono::TimeDelta::hours(1)
}

/// Every queue's view, with what finished in the last hour.
async fn queue_views(s: &AppState) -> Result<Vec<QueueView>, ApiError> {
    let stats = s.client.queue_stats().await?;
    let settings = s.client.queues().await?;
    let since = stats.first().map_or_else(Utc::now, |q| q.as_of) - window();
    let finished = s.client.finished_stats(since, None, None).await?;
    Ok(QueueView::list(&stats, &settings, &finished, window()))
}

/// `GET /v1/stats/throughput`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThroughputQuery {
    #[serde(default)]
    #[schemars(schema_with = "window_schema")]
    window: Option<String>,
    /// Bucket width, at least 1s (default 1m).
    #[serde(default)]
    #[schemars(schema_with = "schema::duration_at_least_1s")]
    bucket: Option<String>,
    /// Only this queue.
    #[serde(default)]
    #[schemars(schema_with = "schema::filter")]
    queue: Option<String>,
    /// Only this task kind.
    #[serde(default)]
    #[schemars(schema_with = "schema::filter")]
    kind: Option<String>,
}

/// Most buckets one series may hold.
const MAX_BUCKETS: u128 = 10_000;

/// How far back: the document promises up to [`MAX_BUCKETS`] seconds, which holds at most
/// that many buckets of any width the server takes.
fn window_schema(_: &mut SchemaGenerator) -> Schema {
    let max = Duration::from_secs(MAX_BUCKETS as u64);
    schemars::json_schema!({
        "type": "string",
        "pattern": schema::duration_range_pattern(Duration::from_secs(1), max),
        "description": format!(
            "How far back: a duration (default 1h) holding at most {MAX_BUCKETS} buckets; \
             written in one unit here, from 1s to {MAX_BUCKETS}s"
        ),
    })
}

pub async fn throughput(State(s): State<AppState>, Query(q): Query<ThroughputQuery>) -> JsonResult {
    let window = duration("window", q.window.as_deref().unwrap_or("1h"))?;
    let bucket = duration("bucket", q.bucket.as_deref().unwrap_or("1m"))?;
    if bucket < Duration::from_secs(1) {
        return Err(ApiError::invalid("bucket", "`bucket` must be at least 1s"));
    }
    if window.is_zero() || window.as_millis() / bucket.as_millis() > MAX_BUCKETS {
        return Err(ApiError::invalid(
            "window",
            format!("`window` must be positive and hold at most {MAX_BUCKETS} buckets"),
        ));
    }
    let now = Utc::now();
    let since = chrono::Duration::from_std(window)
        .ok()
        .and_then(|w| now.checked_sub_signed(w))
        .ok_or_else(|| ApiError::invalid("window", "`window` is too long"))?;
    for (field, v) in [("queue", &q.queue), ("kind", &q.kind)] {
        if v.as_deref().is_some_and(str::is_empty) {
            return Err(ApiError::invalid(
                field,
                format!("`{field}` must not be empty when given"),
            ));
        }
    }
    let rows = s
        .client
        .throughput(since, now, bucket, q.queue.as_deref(), q.kind.as_deref())
        .await?;
    // One series over the queues asked for: the rows come per bucket, then per queue.
    let mut buckets: Vec<Value> = Vec::new();
    let mut last: Option<chrono::DateTime<Utc>> = None;
    for r in &rows {
        if last != Some(r.start) {
            buckets.push(json!({"start": r.start, "succeeded": 0, "failed": 0, "cancelled": 0}));
            last = Some(r.start);
        }
        let b = buckets.last_mut().expect("pushed above");
        for (k, n) in [
            ("succeeded", r.succeeded),
            ("failed", r.failed),
            ("cancelled", r.cancelled),
        ] {
            b[k] = json!(b[k].as_u64().unwrap_or(0) + n);
        }
    }
    Ok(Json(json!({ "buckets": buckets })))
}

/// `POST /v1/queues/{name}/pause` and `/resume`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseQuery {
    /// Also a queue that nothing declares or knows yet (refused otherwise as a likely typo;
    /// default false).
    #[serde(default)]
    force: bool,
}

/// A library error about the queue `name` of the path, as the API reports it.
fn named_error(name: &str, e: errand::Error) -> ApiError {
    match e {
        errand::Error::Invalid(v) => {
            ApiError::invalid("name", format!("queue name `{name}` {}", v.problem))
        }
        e @ errand::Error::UnknownQueue { .. } => ApiError::not_found(format!(
            "{e}; nothing was changed: add force=true to the query to use it anyway"
        )),
        other => other.into(),
    }
}

async fn set_paused(s: &AppState, name: &str, paused: bool, force: bool) -> JsonResult {
    let named = |e: errand::Error| named_error(name, e);
    if !force {
        s.client
            .check_queue_known(name, &s.config.queues)
            .await
            .map_err(named)?;
    }
    let result = if paused {
        s.client.pause_queue(name).await
    } else {
        s.client.resume_queue(name).await
    };
    result.map_err(named)?;
    let queue = match queue_views(s).await?.into_iter().find(|q| q.name == name) {
        Some(q) => q,
        None => QueueView::empty(name, paused, window()),
    };
    Ok(Json(json!({ "queue": queue })))
}

pub async fn pause(
    State(s): State<AppState>,
    QueueName(name): QueueName,
    Query(q): Query<PauseQuery>,
) -> JsonResult {
    set_paused(&s, &name, true, q.force).await
}

pub async fn resume(
    State(s): State<AppState>,
    QueueName(name): QueueName,
    Query(q): Query<PauseQuery>,
) -> JsonResult {
    set_paused(&s, &name, false, q.force).await
}

/// `PUT /v1/queues/{name}/limits`: both limits, each null (or left out) for none.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "QueueLimitsRequest")]
pub struct LimitsBody {
    /// At most this many of the queue's jobs run at once across every worker process.
    #[serde(default)]
    #[schemars(schema_with = "schema::limit_or_null")]
    global_concurrency: Option<i32>,
    /// At most this many running jobs per `concurrency_key`, for keyed jobs with no limit of
    /// their own (none: 1).
    #[serde(default)]
    #[schemars(schema_with = "schema::limit_or_null")]
    key_concurrency: Option<i32>,
    /// At most N starts in any window of the duration (`100/1m`), across every worker
    /// process.
    #[serde(default)]
    #[schemars(schema_with = "schema::rate_limit_or_null")]
    rate_limit: Option<String>,
}

pub async fn set_limits(
    State(s): State<AppState>,
    QueueName(name): QueueName,
    Query(q): Query<PauseQuery>,
    Body(body): Body<LimitsBody>,
) -> JsonResult {
    let rate_limit = match &body.rate_limit {
        Some(text) => Some(
            text.parse::<errand_core::flow::RateLimit>()
                .map_err(|e| ApiError::invalid("rate_limit", e))?,
        ),
        None => None,
    };
    let limits = errand::QueueLimits {
        global_concurrency: body.global_concurrency,
        key_concurrency: body.key_concurrency,
        rate_limit,
    };
    if let Err(e) = limits.check() {
        return Err(ApiError::invalid(e.field, e.to_string()));
    }
    if !q.force {
        s.client
            .check_queue_known(&name, &s.config.queues)
            .await
            .map_err(|e| named_error(&name, e))?;
    }
    s.client
        .set_queue_limits(&name, limits)
        .await
        .map_err(|e| named_error(&name, e))?;
    let queue = match queue_views(&s).await?.into_iter().find(|q| q.name == name) {
        Some(q) => q,
        None => {
            let mut v = QueueView::empty(&name, false, window());
            v.global_concurrency = limits.global_concurrency;
            v.key_concurrency = limits.key_concurrency;
            v.rate_limit = limits.rate_limit.map(|r| r.to_string());
            v
        }
    };
    Ok(Json(json!({ "queue": queue })))
}

pub async fn workers(State(s): State<AppState>) -> JsonResult {
    let workers = s.client.workers().await?;
    let now = Utc::now();
    let workers: Vec<WorkerView> = workers.iter().map(|w| WorkerView::new(w, now)).collect();
    Ok(Json(json!({ "workers": workers })))
}
