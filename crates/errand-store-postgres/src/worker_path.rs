//! The worker path: claim, complete, fail, heartbeat, progress, cancel-ack, release, and the
//! rescuer's reads and writes. Every acknowledgement is fenced by job id, attempt, worker id and
//! `status = 'running'`; batches are one statement over `unnest` arrays, and the event rows
//! are written by a data-modifying CTE of the same statement. Release and rescue-requeue
//! also send wake-up hints from that statement (see `notify`).
//!
//! The fences say `status = (SELECT 'running')`, not `status = 'running'`: a constant would
//! let the planner walk `errand_jobs_lease` (partial on that status) for the job rows. Once
//! statistics were taken with no job running it estimates one row there, and with a thousand
//! running jobs a batch of 200 then joined every running row with every item (~100 ms per
//! completion, over a second under load, measured with 1,000,000 finished jobs). The
//! sub-select hides the constant from index matching, leaving the primary key, one lookup
//! per item, as the only way in.

use crate::claim_cursor::{Position, Start};
use crate::error::map;
use crate::flow::Plan;
use crate::rows;
use crate::sql::{limit, micros, rfc3339};
use crate::PgStore;
use errand_core::{ClaimedJob, FailAction, Fence, Job, JobId, RescueAction};
use errand_store::{
    Ack, JobClaim, JobComplete, JobFail, JobHeartbeat, JobProgress, JobRescue, LeaseState,
    StoreError, StoreResult,
};
use sqlx::postgres::PgRow;
use sqlx::Row;
use std::collections::HashSet;
use std::sync::LazyLock;

/// Starts the jobs of a claim's `picked` CTE, the same way whichever part of the queue they
/// were read from: `$2` worker, `$4` now, `$5` lease in microseconds. A new attempt starts
/// without progress.
macro_rules! start_picked {
    () => {
        "UPDATE errand_jobs j
    SET status = 'running',
        attempt = j.attempt + 1,
        worker_id = $2,
        started_at = coalesce($4::timestamptz, now()),
        lease_expires_at = coalesce($4::timestamptz, now()) + $5 * interval '1 microsecond',
        progress = NULL, progress_at = NULL,
        updated_at = coalesce($4::timestamptz, now())
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.*"
    };
}
pub(crate) use start_picked;

/// Picks ready jobs without a `concurrency_key` over the partial index `errand_jobs_claim`,
/// skipping rows other claimers hold, and starts them; nothing from a queue with a global or
/// rate limit (those go through `flow`). `$4` is the injected now (or NULL for the database's).
pub(crate) const CLAIM: &str = concat!(
    "WITH picked AS (
        SELECT id FROM errand_jobs
        WHERE status = 'queued' AND queue = $1 AND concurrency_key IS NULL
          AND run_at <= coalesce($4::timestamptz, now())
          AND NOT EXISTS (SELECT 1 FROM errand_queues q
                          WHERE q.name = $1
                            AND (q.paused_at IS NOT NULL OR q.global_concurrency IS NOT NULL
                                 OR q.rate_limit IS NOT NULL))
        ORDER BY priority DESC, run_at, id
        LIMIT $3
        FOR UPDATE SKIP LOCKED
    )
    ",
    start_picked!()
);

/// The claim from a queue's cursor (`$6` priority, `$7` run_at, `$8` id; see `claim_cursor`):
/// higher priorities from the head, the cursor's priority after it, then at or before it,
/// then lower priorities; each part is read only if the ones before it came up short. Each
/// part is its own index range, so none walks the entries of jobs claimed before the cursor
/// unless the queue ran short.
pub(crate) const CLAIM_AFTER: &str = concat!(
    "WITH picked AS (
        SELECT id FROM (
            SELECT id FROM (
                SELECT id FROM errand_jobs
                WHERE status = 'queued' AND queue = $1 AND concurrency_key IS NULL AND priority > $6
                  AND run_at <= coalesce($4::timestamptz, now())
                ORDER BY priority DESC, run_at, id
                LIMIT $3 FOR UPDATE SKIP LOCKED) higher
            UNION ALL
            SELECT id FROM (
                SELECT id FROM errand_jobs
                WHERE status = 'queued' AND queue = $1 AND concurrency_key IS NULL AND priority = $6
                  AND (run_at, id) > ($7::timestamptz, $8::bigint)
                  AND run_at <= coalesce($4::timestamptz, now())
                ORDER BY run_at, id
                LIMIT $3 FOR UPDATE SKIP LOCKED) after_cursor
            UNION ALL
            SELECT id FROM (
                SELECT id FROM errand_jobs
                WHERE status = 'queued' AND queue = $1 AND concurrency_key IS NULL AND priority = $6
                  AND (run_at, id) <= ($7::timestamptz, $8::bigint)
                  AND run_at <= coalesce($4::timestamptz, now())
                ORDER BY run_at, id
                LIMIT $3 FOR UPDATE SKIP LOCKED) behind_cursor
            UNION ALL
            SELECT id FROM (
                SELECT id FROM errand_jobs
                WHERE status = 'queued' AND queue = $1 AND concurrency_key IS NULL AND priority < $6
                  AND run_at <= coalesce($4::timestamptz, now())
                ORDER BY priority DESC, run_at, id
                LIMIT $3 FOR UPDATE SKIP LOCKED) lower
        ) parts
        WHERE NOT EXISTS (SELECT 1 FROM errand_queues q
                          WHERE q.name = $1
                            AND (q.paused_at IS NOT NULL OR q.global_concurrency IS NOT NULL
                                 OR q.rate_limit IS NOT NULL))
        LIMIT $3
    )
    ",
    start_picked!()
);

pub(crate) const COMPLETE: &str = "UPDATE errand_jobs j
    SET status = 'succeeded',
        result = u.result,
        finished_at = coalesce($5::timestamptz, now()),
        lease_expires_at = NULL,
        updated_at = coalesce($5::timestamptz, now())
    FROM unnest($1::bigint[], $2::int[], $3::text[], $4::jsonb[])
         AS u(id, attempt, worker_id, result)
    WHERE j.id = u.id AND j.attempt = u.attempt AND j.worker_id = u.worker_id
      AND j.status = (SELECT 'running')
    RETURNING u.id, u.attempt, u.worker_id, j.queue, j.concurrency_key IS NOT NULL AS keyed";

/// `$4`: retry? `$5`: delay in microseconds, `$6`: now, `$7`: error text.
pub(crate) static FAIL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH upd AS (
            UPDATE errand_jobs
            SET status = CASE WHEN $4::boolean THEN 'queued' ELSE 'failed' END,
                run_at = CASE WHEN $4::boolean
                              THEN coalesce($6::timestamptz, now()) + $5 * interval '1 microsecond'
                              ELSE run_at END,
                finished_at = CASE WHEN $4::boolean THEN NULL
                                   ELSE coalesce($6::timestamptz, now()) END,
                last_error = $7,
                lease_expires_at = NULL,
                updated_at = coalesce($6::timestamptz, now())
            WHERE id = $1 AND attempt = $2 AND worker_id = $3 AND status = (SELECT 'running')
            RETURNING *
        ), ev AS (
            INSERT INTO errand_events (job_id, at, kind, attempt, worker_id, message, data)
            SELECT id, coalesce($6::timestamptz, now()), 'error', attempt, worker_id, $7,
                   CASE WHEN status = 'queued'
                        THEN jsonb_build_object('next', 'retry', 'run_at', {run_at})
                        ELSE jsonb_build_object('next', 'failed') END
            FROM upd
        )
        SELECT * FROM upd",
        run_at = rfc3339("run_at")
    )
});

pub(crate) const HEARTBEAT: &str = "UPDATE errand_jobs j
    SET lease_expires_at = coalesce($5::timestamptz, now()) + $4 * interval '1 microsecond',
        updated_at = coalesce($5::timestamptz, now())
    FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(id, attempt, worker_id)
    WHERE j.id = u.id AND j.attempt = u.attempt AND j.worker_id = u.worker_id
      AND j.status = (SELECT 'running')
    RETURNING u.id, u.attempt, u.worker_id, j.cancel_requested_at IS NOT NULL AS cancel_requested";

/// `$4`: the progress as compact JSON text, `$5`: now.
pub(crate) const PROGRESS: &str = "UPDATE errand_jobs
    SET progress = $4::jsonb,
        progress_at = coalesce($5::timestamptz, now()),
        updated_at = coalesce($5::timestamptz, now())
    WHERE id = $1 AND attempt = $2 AND worker_id = $3 AND status = (SELECT 'running')";

const CANCEL_ACK: &str = "WITH upd AS (
        UPDATE errand_jobs
        SET status = 'cancelled',
            finished_at = coalesce($5::timestamptz, now()),
            lease_expires_at = NULL,
            updated_at = coalesce($5::timestamptz, now())
        WHERE id = $1 AND attempt = $2 AND worker_id = $3 AND status = (SELECT 'running')
        RETURNING *
    ), ev AS (
        INSERT INTO errand_events (job_id, at, kind, attempt, worker_id, message, data)
        SELECT id, coalesce($5::timestamptz, now()), 'cancelled', attempt, worker_id, $4, NULL
        FROM upd
    )
    SELECT * FROM upd";

const RELEASE: &str = concat!(
    "WITH upd AS (
        UPDATE errand_jobs j
        SET status = 'queued',
            attempt = j.attempt - 1,
            run_at = coalesce($4::timestamptz, now()),
            lease_expires_at = NULL,
            updated_at = coalesce($4::timestamptz, now())
        FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(id, attempt, worker_id)
        WHERE j.id = u.id AND j.attempt = u.attempt AND j.worker_id = u.worker_id
          AND j.status = (SELECT 'running')
        RETURNING u.id, u.attempt, u.worker_id, j.queue
    ), ev AS (
        INSERT INTO errand_events (job_id, at, kind, attempt, worker_id, message, data)
        SELECT id, coalesce($4::timestamptz, now()), 'released', attempt, worker_id, NULL, NULL
        FROM upd
    ), ",
    crate::notify::notify_cte!("upd"),
    "
    SELECT id, attempt, worker_id FROM upd CROSS JOIN notified"
);

const STUCK: &str = "SELECT * FROM errand_jobs
    WHERE status = 'running' AND lease_expires_at < coalesce($1::timestamptz, now())
    ORDER BY lease_expires_at, id
    LIMIT $2";

/// Requeued jobs send a wake-up hint for their queue.
const RESCUE: &str = concat!(
    "WITH upd AS (
        UPDATE errand_jobs j
        SET status = CASE u.action WHEN 'requeue' THEN 'queued'
                                   WHEN 'fail' THEN 'failed'
                                   ELSE 'cancelled' END,
            finished_at = CASE WHEN u.action = 'requeue' THEN NULL
                               ELSE coalesce($6::timestamptz, now()) END,
            last_error = CASE WHEN u.action = 'fail' THEN u.message ELSE j.last_error END,
            lease_expires_at = NULL,
            updated_at = coalesce($6::timestamptz, now())
        FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[])
             AS u(id, attempt, worker_id, action, message)
        WHERE j.id = u.id AND j.attempt = u.attempt AND j.worker_id = u.worker_id
          AND j.status = (SELECT 'running')
          AND j.lease_expires_at < coalesce($6::timestamptz, now())
        RETURNING u.id, u.attempt, u.worker_id, u.action, u.message, j.queue
    ), ev AS (
        INSERT INTO errand_events (job_id, at, kind, attempt, worker_id, message, data)
        SELECT id, coalesce($6::timestamptz, now()), 'rescued', attempt, worker_id, message,
               jsonb_build_object('action', action)
        FROM upd
    ), ",
    crate::notify::notify_cte!("upd WHERE action = 'requeue'"),
    "
    SELECT id, attempt, worker_id FROM upd CROSS JOIN notified"
);

/// The word stored in a `rescued` event's `data.action`.
fn rescue_word(a: RescueAction) -> &'static str {
    match a {
        RescueAction::Requeue => "requeue",
        RescueAction::Fail => "fail",
        RescueAction::Cancel => "cancel",
    }
}

/// The fences (id, attempt, worker) a batch statement reports as written.
fn written(rows: &[PgRow]) -> StoreResult<HashSet<(JobId, i32, String)>> {
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("id").map_err(map)?,
                r.try_get("attempt").map_err(map)?,
                r.try_get("worker_id").map_err(map)?,
            ))
        })
        .collect()
}

/// One [`Ack`] per fence, in input order.
fn acks<'a>(
    fences: impl Iterator<Item = &'a Fence>,
    done: &HashSet<(JobId, i32, String)>,
) -> Vec<Ack> {
    fences
        .map(|f| {
            if done.contains(&(f.job_id, f.attempt, f.worker_id.clone())) {
                Ack::Done
            } else {
                Ack::Stale
            }
        })
        .collect()
}

/// Splits fences into the three arrays the batch statements take.
fn fence_arrays<'a>(fences: impl Iterator<Item = &'a Fence>) -> (Vec<i64>, Vec<i32>, Vec<&'a str>) {
    let mut ids = Vec::new();
    let mut attempts = Vec::new();
    let mut workers = Vec::new();
    for f in fences {
        ids.push(f.job_id);
        attempts.push(f.attempt);
        workers.push(f.worker_id.as_str());
    }
    (ids, attempts, workers)
}

impl PgStore {
    /// `Store::job_claim`: the plain claim, the limited claim, or both (see `flow`).
    pub(crate) async fn claim_impl(&self, claim: &JobClaim) -> StoreResult<Vec<ClaimedJob>> {
        if claim.limit == 0 {
            return Ok(Vec::new());
        }
        let started = std::time::Instant::now();
        let plan = self.flow.plan(&claim.queue, started);
        let mut claimed = match plan {
            Plan::Limited => self.claim_limited(claim).await?,
            Plan::Plain => self.claim_plain(claim, started).await?,
            Plan::PlainAndProbe => {
                let (plain, limited) = tokio::join!(
                    self.claim_plain(claim, started),
                    self.flow_probe(&claim.queue)
                );
                // The plain claim committed: its jobs are this worker's now and must be
                // returned whatever happens to the probe or the limited claim after it.
                let mut plain = plain?;
                let limited = match limited {
                    Ok(limited) => {
                        self.flow.probed(&claim.queue, limited, started);
                        limited
                    }
                    Err(e) if !plain.is_empty() => {
                        tracing::warn!(queue = %claim.queue, error = %e, "flow-control probe failed; claiming again later");
                        false
                    }
                    Err(e) => return Err(e),
                };
                let rest = claim.limit.saturating_sub(plain.len() as u32);
                if limited && rest > 0 {
                    let more = JobClaim {
                        limit: rest,
                        ..claim.clone()
                    };
                    match self.claim_limited(&more).await {
                        Ok(jobs) => plain.extend(jobs),
                        Err(e) if !plain.is_empty() => {
                            tracing::warn!(queue = %claim.queue, error = %e, "limited claim failed; claiming again later");
                        }
                        Err(e) => return Err(e),
                    }
                }
                plain
            }
        };
        self.flow
            .claimed(&claim.queue, claimed.len() < claim.limit as usize);
        if plan == Plan::PlainAndProbe {
            claimed = errand_store::steps::claimed(claimed.into_iter().map(|c| c.job).collect())?;
        }
        Ok(claimed)
    }

    /// The plain claim (`CLAIM`, or `CLAIM_AFTER` from the queue's cursor).
    async fn claim_plain(
        &self,
        claim: &JobClaim,
        started: std::time::Instant,
    ) -> StoreResult<Vec<ClaimedJob>> {
        let ticket = self.cursors.start(&claim.queue, started);
        let query = match ticket.start {
            Start::Head => sqlx::query(CLAIM),
            Start::After(_) => sqlx::query(CLAIM_AFTER),
        }
        .bind(&claim.queue)
        .bind(&claim.worker_id)
        .bind(limit(claim.limit))
        .bind(self.now())
        .bind(micros(claim.lease));
        let query = match ticket.start {
            Start::Head => query,
            Start::After(p) => query.bind(p.priority).bind(p.run_at).bind(p.id),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(map)?;
        let claimed = errand_store::steps::claimed(rows::jobs(&rows)?)?;
        self.cursors
            .record(&claim.queue, ticket, started, Position::last_of(&claimed));
        Ok(claimed)
    }

    pub(crate) async fn complete_many_impl(&self, items: &[JobComplete]) -> StoreResult<Vec<Ack>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, attempts, workers) = fence_arrays(items.iter().map(|i| &i.fence));
        let results: Vec<Option<&serde_json::Value>> =
            items.iter().map(|i| i.result.as_ref()).collect();
        let rows = sqlx::query(COMPLETE)
            .bind(ids)
            .bind(attempts)
            .bind(workers)
            .bind(results)
            .bind(self.now())
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        let mut freed = std::collections::BTreeSet::new();
        for r in &rows {
            let queue: &str = r.try_get("queue").map_err(map)?;
            if r.try_get::<bool, _>("keyed").map_err(map)? || self.flow.is_limited(queue) {
                freed.insert(queue.to_owned());
            }
        }
        self.slots_freed(freed);
        Ok(acks(items.iter().map(|i| &i.fence), &written(&rows)?))
    }

    pub(crate) async fn fail_impl(&self, fail: &JobFail) -> StoreResult<Job> {
        let (retry, delay) = match fail.action {
            FailAction::Retry { delay } => (true, micros(delay)),
            FailAction::Fail => (false, 0),
        };
        let row = sqlx::query(&FAIL)
            .bind(fail.fence.job_id)
            .bind(fail.fence.attempt)
            .bind(&fail.fence.worker_id)
            .bind(retry)
            .bind(delay)
            .bind(self.now())
            .bind(&fail.error)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        match row {
            Some(r) => {
                let job = rows::job(&r)?;
                self.job_freed_a_slot(&job);
                Ok(job)
            }
            None => Err(stale(&fail.fence)),
        }
    }

    pub(crate) async fn heartbeat_many_impl(
        &self,
        beat: &JobHeartbeat,
    ) -> StoreResult<Vec<LeaseState>> {
        if beat.fences.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, attempts, workers) = fence_arrays(beat.fences.iter());
        let rows = sqlx::query(HEARTBEAT)
            .bind(ids)
            .bind(attempts)
            .bind(workers)
            .bind(micros(beat.lease))
            .bind(self.now())
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        let mut held = std::collections::HashMap::new();
        for r in &rows {
            let id: i64 = r.try_get("id").map_err(map)?;
            let attempt: i32 = r.try_get("attempt").map_err(map)?;
            let worker: String = r.try_get("worker_id").map_err(map)?;
            let cancel: bool = r.try_get("cancel_requested").map_err(map)?;
            held.insert((id, attempt, worker), cancel);
        }
        Ok(beat
            .fences
            .iter()
            .map(|fence| {
                let cancel = held.get(&(fence.job_id, fence.attempt, fence.worker_id.clone()));
                LeaseState {
                    fence: fence.clone(),
                    held: cancel.is_some(),
                    cancel_requested: cancel.copied().unwrap_or(false),
                }
            })
            .collect())
    }

    pub(crate) async fn progress_impl(&self, p: &JobProgress) -> StoreResult<Ack> {
        let done = sqlx::query(PROGRESS)
            .bind(p.fence.job_id)
            .bind(p.fence.attempt)
            .bind(&p.fence.worker_id)
            .bind(p.progress.json())
            .bind(self.now())
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(if done.rows_affected() == 1 {
            Ack::Done
        } else {
            Ack::Stale
        })
    }

    pub(crate) async fn cancel_ack_impl(
        &self,
        fence: &Fence,
        message: Option<&str>,
    ) -> StoreResult<Job> {
        let row = sqlx::query(CANCEL_ACK)
            .bind(fence.job_id)
            .bind(fence.attempt)
            .bind(&fence.worker_id)
            .bind(message)
            .bind(self.now())
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        match row {
            Some(r) => {
                let job = rows::job(&r)?;
                self.job_freed_a_slot(&job);
                Ok(job)
            }
            None => Err(stale(fence)),
        }
    }

    pub(crate) async fn release_many_impl(&self, fences: &[Fence]) -> StoreResult<Vec<Ack>> {
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, attempts, workers) = fence_arrays(fences.iter());
        let rows = sqlx::query(RELEASE)
            .bind(ids)
            .bind(attempts)
            .bind(workers)
            .bind(self.now())
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        Ok(acks(fences.iter(), &written(&rows)?))
    }

    pub(crate) async fn list_stuck_impl(&self, n: u32) -> StoreResult<Vec<Job>> {
        // Every worker process's rescuer calls this every few seconds: fold the queue
        // counters' deltas here too, so they stay a handful of rows even where nobody reads
        // queue statistics (migration 7). Its own statement, never inside a caller's transaction.
        self.fold_queue_counts().await?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(STUCK)
            .bind(self.now())
            .bind(limit(n))
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows::jobs(&rows)
    }

    pub(crate) async fn rescue_many_impl(&self, items: &[JobRescue]) -> StoreResult<Vec<Ack>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, attempts, workers) = fence_arrays(items.iter().map(|i| &i.fence));
        let actions: Vec<&str> = items.iter().map(|i| rescue_word(i.action)).collect();
        let messages: Vec<&str> = items.iter().map(|i| i.message.as_str()).collect();
        let rows = sqlx::query(RESCUE)
            .bind(ids)
            .bind(attempts)
            .bind(workers)
            .bind(actions)
            .bind(messages)
            .bind(self.now())
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        if items.iter().any(|i| i.action == RescueAction::Requeue) && !rows.is_empty() {
            // Requeued jobs keep their place in the claim order, behind the cursors.
            self.cursors.forget_all();
        }
        Ok(acks(items.iter().map(|i| &i.fence), &written(&rows)?))
    }
}

fn stale(fence: &Fence) -> StoreError {
    StoreError::Stale {
        job_id: fence.job_id,
        attempt: fence.attempt,
    }
}
