//! Example: Errand's worker pool embedded beside a web server, in one process.
//!
//! ```sh
//! cargo run -p errand-example-embed            # jobs in ./errand-embed.db (or ERRAND_DATABASE_URL)
//! curl -X POST localhost:3000/signup -H 'content-type: application/json' -d '{"email":"ada@example.com"}'
//! curl localhost:3000/jobs/1
//! ```
//!
//! `POST /signup` enqueues a `send_welcome` job and answers at once with its id; the pool in
//! the same process runs it. On SIGTERM or Ctrl-C the server stops accepting requests, then the
//! pool stops claiming, lets running jobs finish (30 s), and hands the rest back to the queue.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use errand::{Client, HandlerError, JobContext, Task};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// The job: a typed task, its args stored as JSON.
#[derive(Debug, Serialize, Deserialize)]
struct SendWelcome {
    email: String,
}

impl Task for SendWelcome {
    const KIND: &'static str = "send_welcome";
}

#[derive(Debug, Deserialize)]
struct Signup {
    email: String,
}

type ApiError = (StatusCode, String);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let url = std::env::var("ERRAND_DATABASE_URL").unwrap_or_else(|_| "errand-embed.db".into());
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let client = Client::connect(&url).await?;

    let worker = client
        .worker()
        .queue("default", 4)
        .register(|ctx: JobContext, job: SendWelcome| async move {
            if !job.email.contains('@') {
                return Err(HandlerError::permanent("not an email address"));
            }
            // Log the job, never its args: they may hold personal data or secrets.
            tracing::info!(job_id = ctx.id(), attempt = ctx.attempt(), "sending a welcome email");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                reason = ctx.cancelled() => {
                    return Err(HandlerError::retry_after(format!("stopped: {reason:?}"), Duration::from_secs(5)));
                }
            }
            Ok(json!({ "sent": true }))
        })
        .start()
        .await?;

    let app = Router::new()
        .route("/signup", post(signup))
        .route("/jobs/{id}", get(show_job))
        .with_state(client);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    let report = worker.shutdown().await;
    tracing::info!(released = report.released, "worker pool stopped");
    Ok(())
}

/// Enqueues the welcome email and answers with the job's id.
async fn signup(
    State(client): State<Client>,
    Json(body): Json<Signup>,
) -> Result<Json<Value>, ApiError> {
    let job = client
        .enqueue(SendWelcome {
            email: body.email.clone(),
        })
        .unique_key(format!("welcome:{}", body.email))
        .send()
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({ "job_id": job.id, "new": job.inserted })))
}

/// A job's state, without its args.
async fn show_job(
    State(client): State<Client>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let job = client
        .job(id)
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .ok_or((StatusCode::NOT_FOUND, format!("no job {id}")))?;
    Ok(Json(json!({
        "id": job.id,
        "kind": job.kind,
        "status": job.status.as_str(),
        "attempt": job.attempt,
        "result": job.result,
        "last_error": job.last_error,
    })))
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
