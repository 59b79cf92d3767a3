//! The worker path: claim, and the fenced acknowledgements (complete, fail, heartbeat,
//! progress, cancel ack, release, rescue). Each function runs inside the caller's IMMEDIATE
//! transaction and is given the operation's "now" in microseconds.

use crate::error::OpError;
use crate::notify::ReadyQueues;
use crate::rows::{add_duration, job_columns, job_from_row, json_text};
use errand_core::{ClaimedJob, EventKind, FailAction, Fence, Job, RescueAction};
use errand_store::{
    Ack, JobClaim, JobComplete, JobFail, JobHeartbeat, JobProgress, JobRescue, LeaseState,
    StoreError,
};
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};

/// `UPDATE errand_jobs SET <set> WHERE <fence> RETURNING <all columns>`: the fence is
/// `?1` id, `?2` attempt, `?3` worker id, and the job must still be running. Further
/// parameters start at `?4`.
macro_rules! fenced_update {
    ($set:literal) => {
        concat!(
            "UPDATE errand_jobs SET ",
            $set,
            " WHERE id = ?1 AND attempt = ?2 AND worker_id = ?3 AND status = 'running' RETURNING ",
            job_columns!()
        )
    };
}

/// One event row. `at` is the operation's now.
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_event(
    tx: &Transaction<'_>,
    now: i64,
    job_id: i64,
    kind: EventKind,
    attempt: i32,
    worker_id: Option<&str>,
    message: Option<&str>,
    data: Option<&serde_json::Value>,
) -> rusqlite::Result<i64> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO errand_events (job_id, at, kind, attempt, worker_id, message, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
    )?;
    stmt.query_row(
        params![
            job_id,
            now,
            kind.as_str(),
            attempt,
            worker_id,
            message,
            data.map(json_text)
        ],
        |r| r.get(0),
    )
}

/// What a claim sets on each job it starts (`?1` worker, `?2` now, `?3` lease end): the one
/// text of the plain claim and of the limited claim (`flow`). A new attempt starts without
/// progress.
macro_rules! start_set {
    () => {
        "status = 'running', attempt = attempt + 1, worker_id = ?1, started_at = ?2, \
         lease_expires_at = ?3, progress = NULL, progress_at = NULL, updated_at = ?2"
    };
}
pub(crate) use start_set;

/// The plain claim (a queue without flow control). The subquery walks the partial index
/// `errand_jobs_claim` (queue, priority DESC, run_at, id WHERE status = 'queued' AND
/// concurrency_key IS NULL) in claim order and stops after `?5` ready rows. `INDEXED BY` pins
/// that plan: the planner would pick it today, but the claim must never turn into a scan if
/// statistics (`ANALYZE`) ever change its mind. `OR ROLLBACK` for the reason given at
/// [`COMPLETE_SQL`].
pub(crate) const CLAIM_SQL: &str = concat!(
    "UPDATE OR ROLLBACK errand_jobs SET ",
    start_set!(),
    " WHERE id IN (SELECT id FROM errand_jobs INDEXED BY errand_jobs_claim \
         WHERE status = 'queued' AND queue = ?4 AND concurrency_key IS NULL AND run_at <= ?2 \
         AND NOT EXISTS (SELECT 1 FROM errand_queues WHERE name = ?4 AND paused_at IS NOT NULL) \
         ORDER BY priority DESC, run_at, id LIMIT ?5) \
     RETURNING ",
    job_columns!()
);

/// [`errand_store::Store::job_claim`]: the limited claim for a queue under flow control
/// (`flow`), else the plain one.
pub(crate) fn claim(
    tx: &Transaction<'_>,
    now: i64,
    claim: &JobClaim,
) -> Result<Vec<ClaimedJob>, OpError> {
    if claim.limit == 0 {
        return Ok(Vec::new());
    }
    if crate::flow::needs_limited(tx, &claim.queue, now)? {
        let mut steps = crate::flow::LimitedClaim { tx, now };
        return errand_store::steps::run_now(errand_store::steps::claim_limited(&mut steps, claim));
    }
    let mut stmt = tx.prepare_cached(CLAIM_SQL)?;
    let rows = stmt.query_map(
        params![
            claim.worker_id,
            now,
            add_duration(now, claim.lease),
            claim.queue,
            claim.limit
        ],
        job_from_row,
    )?;
    let jobs = rows.collect::<rusqlite::Result<Vec<Job>>>()?;
    move_counts(tx, &claim.queue, "queued", "running", jobs.len())?;
    Ok(errand_store::steps::claimed(jobs)?)
}

fn ack(updated: bool) -> Ack {
    if updated {
        Ack::Done
    } else {
        Ack::Stale
    }
}

/// The completion statement: one `UPDATE` for the whole batch. `?1` is a JSON array of
/// `[id, attempt, worker_id, result]` items (`result` is the result's JSON text, or null),
/// `?2` now. Each item is fenced like any acknowledgement; `RETURNING` names the fences that
/// held. One statement for the batch instead of one per job: each statement inside a
/// transaction pays its own start, end and statement journal (a copy of every page it
/// touches, so that it alone can be undone). `OR ROLLBACK` because no constraint can fail
/// here (the new status is valid, no NOT NULL column is touched); a statement that cannot
/// abort on its own keeps no statement journal. With both, the W1 drain under
/// `synchronous=normal` went from about 25,000 to 45,000 jobs/s (docs/benchmarks.md).
pub(crate) const COMPLETE_SQL: &str = "UPDATE OR ROLLBACK errand_jobs \
     SET status = 'succeeded', result = item.result, finished_at = ?2, \
         lease_expires_at = NULL, updated_at = ?2 \
     FROM (SELECT value ->> 0 AS id, value ->> 1 AS attempt, value ->> 2 AS worker_id, \
                  value ->> 3 AS result \
           FROM json_each(?1)) AS item \
     WHERE errand_jobs.id = item.id AND errand_jobs.attempt = item.attempt \
       AND errand_jobs.worker_id = item.worker_id AND errand_jobs.status = 'running' \
     RETURNING errand_jobs.id, errand_jobs.attempt, errand_jobs.worker_id, errand_jobs.queue";

/// Moves `n` jobs of `queue` from status `from` to `to` in `errand_queue_counts`: the claim
/// and the completion count their batch here, once, because the row trigger of migration 7
/// leaves those two transitions out (migration 9).
pub(crate) fn move_counts(
    tx: &Transaction<'_>,
    queue: &str,
    from: &str,
    to: &str,
    n: usize,
) -> rusqlite::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "UPDATE errand_queue_counts SET n = n - ?3 WHERE queue = ?1 AND status = ?2",
    )?
    .execute(params![queue, from, n])?;
    tx.prepare_cached(
        "INSERT INTO errand_queue_counts (queue, status, n) VALUES (?1, ?2, ?3) \
         ON CONFLICT (queue, status) DO UPDATE SET n = n + excluded.n",
    )?
    .execute(params![queue, to, n])?;
    Ok(())
}

/// [`errand_store::Store::job_complete_many`]. No event: the job's own timestamps are the
/// history of a success.
pub(crate) fn complete_many(
    tx: &Transaction<'_>,
    now: i64,
    items: &[JobComplete],
    ready: &mut ReadyQueues,
) -> Result<Vec<Ack>, OpError> {
    let batch: Vec<serde_json::Value> = items
        .iter()
        .map(|item| {
            let f = &item.fence;
            json!([
                f.job_id,
                f.attempt,
                f.worker_id,
                item.result.as_ref().map(json_text)
            ])
        })
        .collect();
    let mut stmt = tx.prepare_cached(COMPLETE_SQL)?;
    let mut updated = HashSet::with_capacity(items.len());
    let mut per_queue: BTreeMap<String, usize> = BTreeMap::new();
    let rows = stmt.query_map(
        params![json_text(&serde_json::Value::Array(batch)), now],
        |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get::<_, String>(3)?)),
    )?;
    for row in rows {
        let (fence, queue): ((i64, i32, String), String) = row?;
        updated.insert(fence);
        *per_queue.entry(queue).or_default() += 1;
    }
    for (queue, n) in &per_queue {
        move_counts(tx, queue, "running", "succeeded", *n)?;
        crate::flow::slot_freed(tx, queue, now, ready)?;
    }
    Ok(items
        .iter()
        .map(|item| {
            let f = &item.fence;
            ack(updated.contains(&(f.job_id, f.attempt, f.worker_id.clone())))
        })
        .collect())
}

fn stale(f: &Fence) -> OpError {
    StoreError::Stale {
        job_id: f.job_id,
        attempt: f.attempt,
    }
    .into()
}

/// [`errand_store::Store::job_fail`].
pub(crate) fn fail(
    tx: &Transaction<'_>,
    now: i64,
    fail: &JobFail,
    ready: &mut ReadyQueues,
) -> Result<Job, OpError> {
    let f = &fail.fence;
    let job = match fail.action {
        FailAction::Retry { delay } => {
            let mut stmt = tx.prepare_cached(fenced_update!(
                "status = 'queued', run_at = ?4, last_error = ?5, lease_expires_at = NULL, \
                 updated_at = ?6"
            ))?;
            stmt.query_row(
                params![
                    f.job_id,
                    f.attempt,
                    f.worker_id,
                    add_duration(now, delay),
                    fail.error,
                    now
                ],
                job_from_row,
            )
            .optional()?
        }
        FailAction::Fail => {
            let mut stmt = tx.prepare_cached(fenced_update!(
                "status = 'failed', finished_at = ?4, last_error = ?5, lease_expires_at = NULL, \
                 updated_at = ?4"
            ))?;
            stmt.query_row(
                params![f.job_id, f.attempt, f.worker_id, now, fail.error],
                job_from_row,
            )
            .optional()?
        }
    };
    let job = job.ok_or_else(|| stale(f))?;
    let data = match fail.action {
        FailAction::Retry { .. } => json!({"next": "retry", "run_at": job.run_at}),
        FailAction::Fail => json!({"next": "failed"}),
    };
    insert_event(
        tx,
        now,
        f.job_id,
        EventKind::Error,
        f.attempt,
        Some(&f.worker_id),
        Some(&fail.error),
        Some(&data),
    )?;
    crate::flow::slot_freed(tx, &job.queue, now, ready)?;
    Ok(job)
}

/// [`errand_store::Store::job_heartbeat_many`].
pub(crate) fn heartbeat_many(
    tx: &Transaction<'_>,
    now: i64,
    beat: &JobHeartbeat,
) -> Result<Vec<LeaseState>, OpError> {
    let mut stmt = tx.prepare_cached(
        "UPDATE errand_jobs SET lease_expires_at = ?4, updated_at = ?5 \
         WHERE id = ?1 AND attempt = ?2 AND worker_id = ?3 AND status = 'running' \
         RETURNING cancel_requested_at IS NOT NULL",
    )?;
    let lease = add_duration(now, beat.lease);
    let mut out = Vec::with_capacity(beat.fences.len());
    for fence in &beat.fences {
        let cancel: Option<bool> = stmt
            .query_row(
                params![fence.job_id, fence.attempt, fence.worker_id, lease, now],
                |r| r.get(0),
            )
            .optional()?;
        out.push(LeaseState {
            fence: fence.clone(),
            held: cancel.is_some(),
            cancel_requested: cancel.unwrap_or(false),
        });
    }
    Ok(out)
}

/// [`errand_store::Store::job_progress`].
pub(crate) fn progress(tx: &Transaction<'_>, now: i64, p: &JobProgress) -> Result<Ack, OpError> {
    let f = &p.fence;
    let n = tx
        .prepare_cached(
            "UPDATE errand_jobs SET progress = ?4, progress_at = ?5, updated_at = ?5 \
             WHERE id = ?1 AND attempt = ?2 AND worker_id = ?3 AND status = 'running'",
        )?
        .execute(params![
            f.job_id,
            f.attempt,
            f.worker_id,
            p.progress.json(),
            now
        ])?;
    Ok(ack(n == 1))
}

/// [`errand_store::Store::job_cancel_ack`].
pub(crate) fn cancel_ack(
    tx: &Transaction<'_>,
    now: i64,
    fence: &Fence,
    message: Option<&str>,
    ready: &mut ReadyQueues,
) -> Result<Job, OpError> {
    let mut stmt = tx.prepare_cached(fenced_update!(
        "status = 'cancelled', finished_at = ?4, lease_expires_at = NULL, updated_at = ?4"
    ))?;
    let job = stmt
        .query_row(
            params![fence.job_id, fence.attempt, fence.worker_id, now],
            job_from_row,
        )
        .optional()?
        .ok_or_else(|| stale(fence))?;
    insert_event(
        tx,
        now,
        fence.job_id,
        EventKind::Cancelled,
        fence.attempt,
        Some(&fence.worker_id),
        message,
        None,
    )?;
    crate::flow::slot_freed(tx, &job.queue, now, ready)?;
    Ok(job)
}

/// [`errand_store::Store::job_release_many`]. Adds the queues of released jobs to `ready`.
pub(crate) fn release_many(
    tx: &Transaction<'_>,
    now: i64,
    fences: &[Fence],
    ready: &mut ReadyQueues,
) -> Result<Vec<Ack>, OpError> {
    let mut stmt = tx.prepare_cached(
        "UPDATE errand_jobs SET status = 'queued', attempt = attempt - 1, run_at = ?4, \
         lease_expires_at = NULL, updated_at = ?4 \
         WHERE id = ?1 AND attempt = ?2 AND worker_id = ?3 AND status = 'running' \
         RETURNING queue",
    )?;
    let mut out = Vec::with_capacity(fences.len());
    for f in fences {
        let queue: Option<String> = stmt
            .query_row(params![f.job_id, f.attempt, f.worker_id, now], |r| r.get(0))
            .optional()?;
        let done = queue.is_some();
        if let Some(queue) = queue {
            ready.insert(queue);
            insert_event(
                tx,
                now,
                f.job_id,
                EventKind::Released,
                f.attempt,
                Some(&f.worker_id),
                None,
                None,
            )?;
        }
        out.push(ack(done));
    }
    Ok(out)
}

/// [`errand_store::Store::job_rescue_many`]. Each update also requires the lease to be
/// expired still (`?4` is now), so a worker that heartbeated in time keeps its job. Adds the
/// queues of requeued jobs to `ready`.
pub(crate) fn rescue_many(
    tx: &Transaction<'_>,
    now: i64,
    items: &[JobRescue],
    ready: &mut ReadyQueues,
) -> Result<Vec<Ack>, OpError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let f = &item.fence;
        let (sql, word) = match item.action {
            RescueAction::Requeue => (
                "UPDATE errand_jobs SET status = 'queued', \
                 lease_expires_at = NULL, updated_at = ?4 \
                 WHERE id = ?1 AND attempt = ?2 AND worker_id = ?3 AND status = 'running' \
                 AND lease_expires_at < ?4 RETURNING queue",
                "requeue",
            ),
            RescueAction::Fail => (
                "UPDATE errand_jobs SET status = 'failed', finished_at = ?4, last_error = ?5, \
                 lease_expires_at = NULL, updated_at = ?4 \
                 WHERE id = ?1 AND attempt = ?2 AND worker_id = ?3 AND status = 'running' \
                 AND lease_expires_at < ?4 RETURNING queue",
                "fail",
            ),
            RescueAction::Cancel => (
                "UPDATE errand_jobs SET status = 'cancelled', finished_at = ?4, \
                 lease_expires_at = NULL, updated_at = ?4 \
                 WHERE id = ?1 AND attempt = ?2 AND worker_id = ?3 AND status = 'running' \
                 AND lease_expires_at < ?4 RETURNING queue",
                "cancel",
            ),
        };
        let mut stmt = tx.prepare_cached(sql)?;
        let queue: Option<String> = match item.action {
            RescueAction::Fail => stmt.query_row(
                params![f.job_id, f.attempt, f.worker_id, now, item.message],
                |r| r.get(0),
            ),
            _ => stmt.query_row(params![f.job_id, f.attempt, f.worker_id, now], |r| r.get(0)),
        }
        .optional()?;
        let done = queue.is_some();
        if let Some(queue) = queue {
            if item.action == RescueAction::Requeue {
                ready.insert(queue);
            }
            insert_event(
                tx,
                now,
                f.job_id,
                EventKind::Rescued,
                f.attempt,
                Some(&f.worker_id),
                Some(&item.message),
                Some(&json!({ "action": word })),
            )?;
        }
        out.push(ack(done));
    }
    Ok(out)
}
