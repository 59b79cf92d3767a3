//! Operator actions that write: cancel, retry, bulk retry, purge, events, queue pause and
//! resume. Each function runs inside the caller's IMMEDIATE transaction, so a read followed
//! by a write (look at the status, then change it) cannot race another writer.

use crate::error::OpError;
use crate::notify::ReadyQueues;
use crate::rows::{micros_to_time, to_micros};
use crate::worker_path::insert_event;
use errand_core::{Event, EventKind, JobId, JobStatus, NewEvent};
use errand_store::steps::{self, LockedJob, OperatorTx};
use errand_store::{CancelOutcome, JobPurge, RetryFailed, RetryOutcome, StoreError};
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// SQLite's steps of the shared cancel and retry (`errand_store::steps`), inside the
/// caller's write transaction. Keeps what [`OperatorTx::lock_jobs`] read for the events.
struct Operator<'a, 't> {
    tx: &'a Transaction<'t>,
    now: i64,
    locked: HashMap<JobId, LockedJob>,
    ready: Option<&'a mut ReadyQueues>,
}

impl OperatorTx for Operator<'_, '_> {
    type Error = OpError;

    async fn lock_jobs(&mut self, ids: &[JobId]) -> Result<HashMap<JobId, LockedJob>, OpError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT status, attempt, worker_id, cancel_requested_at IS NOT NULL, unique_key \
             FROM errand_jobs WHERE id = ?1",
        )?;
        for &id in ids {
            let row = stmt
                .query_row([id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                })
                .optional()?;
            let Some((status, attempt, worker_id, cancel_requested, unique_key)) = row else {
                continue;
            };
            let status = status
                .parse::<JobStatus>()
                .map_err(|e| StoreError::Database(format!("job {id}: {e}")))?;
            self.locked.insert(
                id,
                LockedJob {
                    status,
                    attempt,
                    worker_id,
                    cancel_requested,
                    unique_key,
                },
            );
        }
        Ok(self.locked.clone())
    }

    async fn apply_cancel(
        &mut self,
        cancel: &[JobId],
        stop: &[JobId],
        reason: Option<&str>,
    ) -> Result<(), OpError> {
        let (tx, now) = (self.tx, self.now);
        for &id in cancel {
            tx.prepare_cached(
                "UPDATE errand_jobs SET status = 'cancelled', finished_at = ?2, updated_at = ?2 \
                 WHERE id = ?1",
            )?
            .execute(params![id, now])?;
            let attempt = self.locked[&id].attempt;
            insert_event(
                tx,
                now,
                id,
                EventKind::Cancelled,
                attempt,
                None,
                reason,
                None,
            )?;
        }
        for &id in stop {
            tx.prepare_cached(
                "UPDATE errand_jobs SET cancel_requested_at = ?2, updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, now])?;
            let job = &self.locked[&id];
            insert_event(
                tx,
                now,
                id,
                EventKind::CancelRequested,
                job.attempt,
                job.worker_id.as_deref(),
                reason,
                None,
            )?;
        }
        Ok(())
    }

    async fn live_keys(&mut self, keys: &[&str]) -> Result<HashSet<String>, OpError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT 1 FROM errand_jobs WHERE unique_key = ?1 AND status IN ('queued', 'running')",
        )?;
        let mut live = HashSet::new();
        for &key in keys {
            if stmt.query_row([key], |_| Ok(())).optional()?.is_some() {
                live.insert(key.to_string());
            }
        }
        Ok(live)
    }

    async fn apply_retry(&mut self, ids: &[JobId]) -> Result<(), OpError> {
        for &id in ids {
            let previous = &self.locked[&id];
            let mut none = ReadyQueues::default();
            let ready = self.ready.as_deref_mut().unwrap_or(&mut none);
            retry_one(
                self.tx,
                self.now,
                id,
                previous.status,
                previous.attempt,
                ready,
            )?;
        }
        Ok(())
    }
}

/// Puts one failed or cancelled job back to `queued` with a `retried` event and adds its
/// queue to `ready`. Returns false when the job is in another state, or when another live
/// (queued or running) job now holds its unique key: `UPDATE OR IGNORE` skips a row that
/// would break the live-unique index.
fn retry_one(
    tx: &Transaction<'_>,
    now: i64,
    id: JobId,
    previous_status: JobStatus,
    previous_attempt: i32,
    ready: &mut ReadyQueues,
) -> Result<bool, OpError> {
    let queue: Option<String> = tx
        .prepare_cached(
            "UPDATE OR IGNORE errand_jobs SET status = 'queued', attempt = 0, run_at = ?2, \
             finished_at = NULL, result = NULL, worker_id = NULL, cancel_requested_at = NULL, \
             lease_expires_at = NULL, updated_at = ?2 \
             WHERE id = ?1 AND status IN ('failed', 'cancelled') RETURNING queue",
        )?
        .query_row(params![id, now], |r| r.get(0))
        .optional()?;
    let Some(queue) = queue else {
        return Ok(false);
    };
    ready.insert(queue);
    let data = json!({
        "previous_status": previous_status.as_str(),
        "previous_attempt": previous_attempt,
    });
    insert_event(
        tx,
        now,
        id,
        EventKind::Retried,
        previous_attempt,
        None,
        None,
        Some(&data),
    )?;
    Ok(true)
}

/// [`errand_store::Store::job_cancel`].
pub(crate) fn cancel(
    tx: &Transaction<'_>,
    now: i64,
    ids: &[JobId],
    reason: Option<&str>,
) -> Result<Vec<CancelOutcome>, OpError> {
    let mut op = Operator {
        tx,
        now,
        locked: HashMap::new(),
        ready: None,
    };
    steps::run_now(steps::job_cancel(&mut op, ids, reason))
}

/// [`errand_store::Store::job_retry`]. Adds the queues of retried jobs to `ready`.
pub(crate) fn retry(
    tx: &Transaction<'_>,
    now: i64,
    ids: &[JobId],
    ready: &mut ReadyQueues,
) -> Result<Vec<RetryOutcome>, OpError> {
    let mut op = Operator {
        tx,
        now,
        locked: HashMap::new(),
        ready: Some(ready),
    };
    steps::run_now(steps::job_retry(&mut op, ids))
}

/// [`errand_store::Store::job_retry_failed`]. Oldest first. Jobs whose unique key is held by
/// a live job are left failed and not selected, so callers looping until 0 terminate. Adds
/// the queues of retried jobs to `ready`. The `status NOT IN` term repeats the WHERE of the
/// partial index `errand_jobs_status_id` (migration 8): SQLite uses it only then.
pub(crate) fn retry_failed(
    tx: &Transaction<'_>,
    now: i64,
    filter: &RetryFailed,
    ready: &mut ReadyQueues,
) -> Result<u64, OpError> {
    if filter.limit == 0 {
        return Ok(0);
    }
    let ids = {
        let mut stmt = tx.prepare_cached(
            "SELECT j.id, j.attempt FROM errand_jobs j \
             WHERE j.status = 'failed' AND j.status NOT IN ('running', 'succeeded') \
             AND (?1 IS NULL OR j.queue = ?1) AND (?2 IS NULL OR j.kind = ?2) \
             AND (j.unique_key IS NULL OR NOT EXISTS (SELECT 1 FROM errand_jobs l \
                  WHERE l.unique_key = j.unique_key AND l.unique_key IS NOT NULL \
                  AND l.status IN ('queued', 'running'))) \
             ORDER BY j.id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![filter.queue, filter.kind, filter.limit], |r| {
            Ok((r.get::<_, JobId>(0)?, r.get::<_, i32>(1)?))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let mut retried = 0;
    for (id, attempt) in ids {
        if retry_one(tx, now, id, JobStatus::Failed, attempt, ready)? {
            retried += 1;
        }
    }
    Ok(retried)
}

/// [`errand_store::Store::job_purge`]. Events go with their jobs (`ON DELETE CASCADE`).
pub(crate) fn purge(tx: &Transaction<'_>, purge: &JobPurge) -> Result<u64, OpError> {
    let mut statuses: Vec<&'static str> = purge
        .statuses
        .iter()
        .filter(|s| s.is_finished())
        .map(|s| s.as_str())
        .collect();
    statuses.sort_unstable();
    statuses.dedup();
    if statuses.is_empty() || purge.limit == 0 {
        return Ok(0);
    }
    // The words come from `JobStatus::as_str`, never from the caller.
    let list = statuses
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "DELETE FROM errand_jobs WHERE id IN (SELECT id FROM errand_jobs \
         WHERE status IN ({list}) AND finished_at < ?1 LIMIT ?2)"
    );
    let n = tx
        .prepare_cached(&sql)?
        .execute(params![to_micros(purge.finished_before), purge.limit])?;
    Ok(n as u64)
}

/// [`errand_store::Store::event_insert`]. [`StoreError::NotFound`] if the job does not exist.
pub(crate) fn event_insert(tx: &Transaction<'_>, now: i64, e: &NewEvent) -> Result<Event, OpError> {
    let exists = tx
        .prepare_cached("SELECT 1 FROM errand_jobs WHERE id = ?1")?
        .query_row([e.job_id], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Err(StoreError::NotFound(e.job_id).into());
    }
    let id = insert_event(
        tx,
        now,
        e.job_id,
        e.kind,
        e.attempt,
        e.worker_id.as_deref(),
        e.message.as_deref(),
        e.data.as_ref(),
    )?;
    Ok(Event {
        id,
        job_id: e.job_id,
        at: micros_to_time(now),
        kind: e.kind,
        attempt: e.attempt,
        worker_id: e.worker_id.clone(),
        message: e.message.clone(),
        data: e.data.clone(),
    })
}

/// [`errand_store::Store::queue_pause`]: keeps the first pause time when already paused.
pub(crate) fn queue_pause(tx: &Transaction<'_>, now: i64, name: &str) -> Result<(), OpError> {
    tx.prepare_cached(
        "INSERT INTO errand_queues (name, paused_at, updated_at) VALUES (?1, ?2, ?2) \
         ON CONFLICT (name) DO UPDATE SET paused_at = excluded.paused_at, \
         updated_at = excluded.updated_at WHERE errand_queues.paused_at IS NULL",
    )?
    .execute(params![name, now])?;
    Ok(())
}

/// [`errand_store::Store::queue_resume`]: creates the row (not paused) for an unknown queue.
pub(crate) fn queue_resume(tx: &Transaction<'_>, now: i64, name: &str) -> Result<(), OpError> {
    tx.prepare_cached(
        "INSERT INTO errand_queues (name, paused_at, updated_at) VALUES (?1, NULL, ?2) \
         ON CONFLICT (name) DO UPDATE SET paused_at = NULL, updated_at = excluded.updated_at \
         WHERE errand_queues.paused_at IS NOT NULL",
    )?
    .execute(params![name, now])?;
    Ok(())
}

/// [`errand_store::Store::queue_limits_set`]: replaces both limits, creating the row.
pub(crate) fn queue_limits_set(
    tx: &Transaction<'_>,
    now: i64,
    name: &str,
    limits: errand_core::QueueLimits,
) -> Result<(), OpError> {
    tx.prepare_cached(
        "INSERT INTO errand_queues (name, paused_at, updated_at, global_concurrency, \
         key_concurrency, rate_limit, rate_window_ms) VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (name) DO UPDATE SET global_concurrency = excluded.global_concurrency, \
         key_concurrency = excluded.key_concurrency, rate_limit = excluded.rate_limit, \
         rate_window_ms = excluded.rate_window_ms, updated_at = excluded.updated_at",
    )?
    .execute(params![
        name,
        now,
        limits.global_concurrency,
        limits.key_concurrency,
        limits.rate_limit.map(|r| r.limit),
        limits.rate_limit.map(|r| r.per_ms()),
    ])?;
    Ok(())
}
