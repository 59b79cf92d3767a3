//! The enqueue path: `job_insert_many` (unique keys within the batch and against live jobs,
//! the wake-up hint of every ready job's queue). Runs inside the caller's IMMEDIATE
//! transaction and is given the operation's "now" in microseconds.

use crate::error::OpError;
use crate::notify::ReadyQueues;
use crate::rows::{add_duration, to_micros};
use errand_core::{JobInsert, RunAt};
use errand_store::{Enqueued, StoreError};
use rusqlite::{params, OptionalExtension, Transaction};

/// [`errand_store::Store::job_insert_many`]. Adds the queue of every inserted job that is
/// ready now (`run_at <= now`) to `ready`.
pub(crate) fn insert_many(
    tx: &Transaction<'_>,
    now: i64,
    jobs: &[JobInsert],
    ready: &mut ReadyQueues,
) -> Result<Vec<Enqueued>, OpError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO errand_jobs (queue, kind, args, status, priority, run_at, attempt, \
         max_attempts, unique_key, reference_type, reference_id, timeout_ms, created_at, updated_at, \
         concurrency_key, key_concurrency) \
         VALUES (?1, ?2, ?3, 'queued', ?4, ?5, 0, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13) \
         ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') \
         DO NOTHING RETURNING id",
    )?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let run_at = match job.run_at {
            RunAt::Now => now,
            RunAt::At(t) => to_micros(t),
            RunAt::After(d) => add_duration(now, d),
        };
        let id: Option<i64> = insert
            .query_row(
                params![
                    job.queue,
                    job.kind,
                    job.args.get(),
                    job.priority,
                    run_at,
                    job.max_attempts,
                    job.unique_key,
                    job.reference_type,
                    job.reference_id,
                    job.timeout_ms,
                    now,
                    job.concurrency_key,
                    job.key_concurrency,
                ],
                |r| r.get(0),
            )
            .optional()?;
        let enqueued = match (id, &job.unique_key) {
            (Some(id), _) => {
                if run_at <= now {
                    ready.insert(job.queue.clone());
                }
                Enqueued { id, inserted: true }
            }
            (None, Some(key)) => {
                // We hold the write lock, so the live job that blocked the insert still exists.
                let mut existing = tx.prepare_cached(
                    "SELECT id FROM errand_jobs WHERE unique_key = ?1 \
                     AND unique_key IS NOT NULL AND status IN ('queued', 'running')",
                )?;
                let id = existing.query_row([key], |r| r.get(0))?;
                Enqueued {
                    id,
                    inserted: false,
                }
            }
            (None, None) => {
                return Err(StoreError::Database(
                    "insert without a unique key returned no id".into(),
                )
                .into())
            }
        };
        out.push(enqueued);
    }
    Ok(out)
}
