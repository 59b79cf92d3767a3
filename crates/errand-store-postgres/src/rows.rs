//! Rows to values: `errand_jobs` rows to [`Job`], `errand_events` rows to [`Event`].

use errand_core::{Event, EventKind, Job, JobArgs, JobStatus};
use errand_store::{StoreError, StoreResult};
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;

fn col<'r, T>(row: &'r PgRow, name: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(name)
        .map_err(|e| StoreError::Database(format!("reading column `{name}`: {e}")))
}

/// Parses a stored status word.
pub(crate) fn status(word: &str) -> StoreResult<JobStatus> {
    word.parse()
        .map_err(|e: errand_core::UnknownStatus| StoreError::Database(e.to_string()))
}

/// A job from a row holding every `errand_jobs` column (by name).
pub(crate) fn job(row: &PgRow) -> StoreResult<Job> {
    Ok(Job {
        id: col(row, "id")?,
        queue: col(row, "queue")?,
        kind: col(row, "kind")?,
        // The jsonb as PostgreSQL prints it, syntax checked, no tree built: the handler
        // decodes it.
        args: JobArgs::from_raw(col::<Json<Box<RawValue>>>(row, "args")?.0),
        status: status(col::<&str>(row, "status")?)?,
        priority: col(row, "priority")?,
        run_at: col(row, "run_at")?,
        attempt: col(row, "attempt")?,
        max_attempts: col(row, "max_attempts")?,
        unique_key: col(row, "unique_key")?,
        reference_type: col(row, "reference_type")?,
        reference_id: col(row, "reference_id")?,
        result: col(row, "result")?,
        last_error: col(row, "last_error")?,
        timeout_ms: col(row, "timeout_ms")?,
        worker_id: col(row, "worker_id")?,
        lease_expires_at: col(row, "lease_expires_at")?,
        cancel_requested_at: col(row, "cancel_requested_at")?,
        created_at: col(row, "created_at")?,
        started_at: col(row, "started_at")?,
        finished_at: col(row, "finished_at")?,
        updated_at: col(row, "updated_at")?,
        progress: col(row, "progress")?,
        progress_at: col(row, "progress_at")?,
        concurrency_key: col(row, "concurrency_key")?,
        key_concurrency: col(row, "key_concurrency")?,
    })
}

/// Jobs from rows.
pub(crate) fn jobs(rows: &[PgRow]) -> StoreResult<Vec<Job>> {
    rows.iter().map(job).collect()
}

/// An event from a row holding every `errand_events` column (by name).
pub(crate) fn event(row: &PgRow) -> StoreResult<Event> {
    let kind: &str = col(row, "kind")?;
    Ok(Event {
        id: col(row, "id")?,
        job_id: col(row, "job_id")?,
        at: col(row, "at")?,
        kind: kind.parse::<EventKind>().map_err(StoreError::Database)?,
        attempt: col(row, "attempt")?,
        worker_id: col(row, "worker_id")?,
        message: col(row, "message")?,
        data: col(row, "data")?,
    })
}
