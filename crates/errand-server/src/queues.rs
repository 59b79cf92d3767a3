//! Queues (statistics, pause, resume) and the worker registry.

use crate::error::ApiError;
use crate::extract::NameParam;
use crate::{views, AppState};
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

type JsonResult = Result<Json<Value>, ApiError>;

pub async fn list(State(s): State<AppState>) -> JsonResult {
    let stats = s.client.queue_stats().await?;
    let queues: Vec<Value> = stats.iter().map(views::queue).collect();
    Ok(Json(json!({ "queues": queues })))
}

async fn set_paused(s: &AppState, name: &str, paused: bool) -> JsonResult {
    let result = if paused {
        s.client.pause_queue(name).await
    } else {
        s.client.resume_queue(name).await
    };
    result.map_err(|e| match e {
        errand::Error::Invalid(v) => {
            ApiError::invalid("name", format!("queue name `{name}` {}", v.problem))
        }
        other => other.into(),
    })?;
    let stats = s.client.queue_stats().await?;
    let queue = match stats.iter().find(|q| q.queue == name) {
        Some(q) => views::queue(q),
        None => json!({"name": name, "paused": paused}),
    };
    Ok(Json(json!({ "queue": queue })))
}

pub async fn pause(State(s): State<AppState>, NameParam(name): NameParam) -> JsonResult {
    set_paused(&s, &name, true).await
}

pub async fn resume(State(s): State<AppState>, NameParam(name): NameParam) -> JsonResult {
    set_paused(&s, &name, false).await
}

pub async fn workers(State(s): State<AppState>) -> JsonResult {
    let workers = s.client.store().worker_list().await?;
    let workers: Vec<Value> = workers.iter().map(views::worker).collect();
    Ok(Json(json!({ "workers": workers })))
}
