//! What monitoring reads: `/health` and `/health/ready` (database reachability),
//! `/health/live` (the process answers), `/metrics`
//! (Prometheus text), and `/v1/me` (who the caller is). `/health/scheduler` is
//! `scheduler_health`.

use crate::auth::Caller;
use crate::metrics::Exposition;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use errand_core::JobStatus;
use serde_json::{json, Value};
use std::time::Duration;

/// A worker whose registry row was refreshed this recently counts as live.
const LIVE_WORKER: Duration = Duration::from_secs(60);

/// How long `/health` waits for the database before answering that it is unavailable: a
/// probe must hear back in time even when the database hangs (a pool waiting for a connection
/// to a server that is down waits 30 s).
pub const DATABASE_DEADLINE: Duration = Duration::from_secs(2);

/// `/health`: 200 `ok` when the database answers within [`DATABASE_DEADLINE`] with the schema
/// this build needs and writes are not failing; 503 `unavailable` (no answer, an error, a
/// schema behind) or `degraded` (the database answers but writes fail, e.g. its disk is full).
pub async fn health(State(s): State<AppState>) -> Response {
    let unavailable = |database: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "database": database})),
        )
            .into_response()
    };
    // The cheapest read every backend has that needs the database.
    let status = tokio::time::timeout(DATABASE_DEADLINE, s.client.migration_status()).await;
    match status {
        Err(_) => {
            tracing::warn!(
                "health check: the database did not answer within {DATABASE_DEADLINE:?}"
            );
            unavailable(format!("no answer within {DATABASE_DEADLINE:?}"))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            unavailable(e.to_string())
        }
        Ok(Ok(m)) if !m.pending.is_empty() => unavailable(format!(
            "schema at version {}, this build needs {}: run `errand migrate`",
            m.current_version, m.latest_version
        )),
        Ok(Ok(_)) => match s.client.write_problem() {
            Some(problem) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"status": "degraded", "database": format!("writes failing: {problem}")}),
                ),
            )
                .into_response(),
            None => Json(json!({"status": "ok", "database": "ok"})).into_response(),
        },
    }
}

/// `/health/live`: the process answers. No database call, so an orchestrator's liveness
/// probe does not restart servers for a database outage (`/health/ready` reports that).
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn me(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(json!({"role": caller.role, "auth": caller.authenticated}))
}

pub async fn metrics(State(s): State<AppState>) -> Response {
    let mut out = Exposition::default();
    s.config.metrics.render(&mut out);
    let stats = s.client.queue_stats().await;
    let workers = s.client.workers().await;
    let up = stats.is_ok() && workers.is_ok();
    out.family(
        "errand_database_up",
        "gauge",
        "1 when the last scrape could read the database.",
    );
    out.sample("errand_database_up", &[], if up { 1.0 } else { 0.0 });
    if let Ok(stats) = &stats {
        out.family("errand_jobs", "gauge", "Jobs by queue and state (scheduled: queued with a future run_at, also counted in queued).");
        for q in stats {
            for (state, n) in [
                (JobStatus::Queued.as_str(), q.queued),
                (JobStatus::Running.as_str(), q.running),
                (JobStatus::Succeeded.as_str(), q.succeeded),
                (JobStatus::Failed.as_str(), q.failed),
                (JobStatus::Cancelled.as_str(), q.cancelled),
                ("scheduled", q.scheduled),
            ] {
                out.sample(
                    "errand_jobs",
                    &[("queue", &q.queue), ("state", state)],
                    n as f64,
                );
            }
        }
        out.family(
            "errand_queue_depth",
            "gauge",
            "Jobs ready to run now (queued, run_at passed).",
        );
        for q in stats {
            out.sample(
                "errand_queue_depth",
                &[("queue", &q.queue)],
                q.queued.saturating_sub(q.scheduled) as f64,
            );
        }
        out.family(
            "errand_queue_oldest_age_seconds",
            "gauge",
            "Age of the oldest ready job (0 when none).",
        );
        for q in stats {
            let age = q
                .oldest_ready_run_at
                .map(|t| (q.as_of - t).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            out.sample(
                "errand_queue_oldest_age_seconds",
                &[("queue", &q.queue)],
                age,
            );
        }
        out.family(
            "errand_queue_paused",
            "gauge",
            "1 when the queue is paused.",
        );
        for q in stats {
            out.sample(
                "errand_queue_paused",
                &[("queue", &q.queue)],
                if q.paused { 1.0 } else { 0.0 },
            );
        }
    }
    if let Ok(workers) = &workers {
        let cutoff = Utc::now() - chrono::Duration::from_std(LIVE_WORKER).unwrap_or_default();
        let live = workers.iter().filter(|w| w.last_seen_at >= cutoff).count();
        out.family(
            "errand_workers_live",
            "gauge",
            "Registered worker processes seen in the last minute.",
        );
        out.sample("errand_workers_live", &[], live as f64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out.finish(),
    )
        .into_response()
}
