//! `/health/scheduler`: whether scheduling is healthy, as a probe asks, with what monitoring
//! reads beside it (the next fire, the latest run with its result and error, pending jobs).
//!
//! `status` is `healthy` (200) or `degraded` (503, the same body) with one entry in
//! `problems` per reason; the rules are `errand_scheduler::health`: this process's scheduler
//! loop ([`errand::SchedulerStatus`], given in [`crate::ServerConfig::scheduler`]) is not
//! running, is switched off, failing or has not passed recently; or an unpaused schedule's fire
//! is older than its misfire grace and unhandled. Overdue is judged by the store's clock, the
//! one the scheduler fires by; the loop's passes by the wall clock it records them with.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use errand::views::{LastRunView, Redact};
use errand_scheduler::{health, LoopState, ScheduleSpec};
use serde_json::json;

pub async fn scheduler(State(s): State<AppState>) -> Result<Response, ApiError> {
    let stats = s.client.queue_stats().await?;
    let pending: u64 = stats.iter().map(|q| q.queued).sum();
    let schedules = s.client.schedule_records().await?;
    // The store's now: what the scheduler decides with.
    let store_now = s.client.scheduler_now().await?;
    let state = s.config.scheduler.state();

    let mut problems = Vec::new();
    problems.extend(health::loop_problem(&state, Utc::now()));
    for r in schedules.iter().filter(|r| !r.paused) {
        let checked = serde_json::from_value::<ScheduleSpec>(r.spec.clone())
            .ok()
            .and_then(|spec| spec.validate(&r.name).ok());
        if let Some(checked) = checked {
            problems.extend(health::overdue(&checked, r.last_fire_at, store_now));
        }
    }

    let next_run = schedules
        .iter()
        .filter_map(|r| crate::schedules::next_fire_of(r, store_now).map(|at| (at, &r.name)))
        .min();
    let mut last: Option<(
        DateTime<Utc>,
        &errand_store::ScheduleRecord,
        errand_core::Job,
    )> = None;
    for r in &schedules {
        let Some(job) = crate::schedules::last_job(&s, r.last_job_id).await? else {
            continue;
        };
        let at = job.started_at.unwrap_or(job.created_at);
        if last.as_ref().is_none_or(|(t, _, _)| at > *t) {
            last = Some((at, r, job));
        }
    }
    let last_execution = last.map(|(at, r, job)| {
        // The same fields as a schedule's `last_run`; public, so results are redacted.
        let run = LastRunView::new(job.id, r.last_job_status, Some(&job)).redacted();
        let mut v = json!(run);
        v["schedule"] = json!(r.name);
        v["at"] = json!(at);
        v
    });
    let (started_at, last_pass_at) = match &state {
        LoopState::Running {
            started_at,
            last_pass_at,
            ..
        } => (Some(*started_at), *last_pass_at),
        _ => (None, None),
    };
    let body = json!({
        "status": health::status(&problems),
        "problems": problems,
        "scheduler": {"state": state.as_str(), "started_at": started_at, "last_pass_at": last_pass_at},
        "next_run": next_run.map(|(at, name)| json!({"schedule": name, "at": at})),
        "last_execution": last_execution,
        "pending_jobs": pending,
    });
    let code = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((code, Json(body)).into_response())
}
