//! Claims under flow control (`errand_core::flow`): SQLite's steps of the shared limited claim
//! (`errand_store::steps::claim_limited`), and whether a queue needs it.
//!
//! Every claim runs on the one writer, so no two claims overlap and every read sees the last
//! claim's writes: the limits are exact without a lock of their own. Whether a queue needs the
//! limited claim is asked afresh at each claim ([`needs_limited`]: two index probes, a few
//! microseconds), so there is nothing to cache or invalidate.

use crate::error::OpError;
use crate::rows::{add_duration, job_columns, job_from_row, micros_to_time};
use crate::worker_path::start_set;
use errand_core::flow::{key_limit, Candidate, QueueLimits, RateLimit};
use errand_core::{Job, JobId};
use errand_store::steps::{Candidates, FlowClaimTx, QueueState};
use errand_store::JobClaim;
use rusqlite::{params, OptionalExtension, Transaction};

/// Whether `queue` has a global or rate limit, or ready jobs with a key (at `now`).
pub(crate) fn needs_limited(tx: &Transaction<'_>, queue: &str, now: i64) -> rusqlite::Result<bool> {
    tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM errand_queues
                        WHERE name = ?1
                          AND (global_concurrency IS NOT NULL OR rate_limit IS NOT NULL))
             OR EXISTS (SELECT 1 FROM errand_jobs INDEXED BY errand_jobs_claim_keyed
                        WHERE status = 'queued' AND queue = ?1 AND concurrency_key IS NOT NULL
                          AND run_at <= ?2)",
    )?
    .query_row(params![queue, now], |r| r.get(0))
}

/// A job of `queue` ended: if the queue is under flow control, its freed slot is a wake-up
/// for this process's claimers of the queue (one that found every slot taken waits for one),
/// sent after the commit. Claimers in other processes find the slot at their next poll.
pub(crate) fn slot_freed(
    tx: &Transaction<'_>,
    queue: &str,
    now: i64,
    ready: &mut crate::notify::ReadyQueues,
) -> rusqlite::Result<()> {
    if !ready.contains(queue) && needs_limited(tx, queue, now)? {
        ready.insert(queue.to_owned());
    }
    Ok(())
}

/// SQLite's steps, inside the writer's transaction, at the operation's `now`.
pub(crate) struct LimitedClaim<'a, 'c> {
    pub(crate) tx: &'a Transaction<'c>,
    pub(crate) now: i64,
}

impl FlowClaimTx for LimitedClaim<'_, '_> {
    type Error = OpError;

    async fn lock_and_read(
        &mut self,
        queue: &str,
        limit: usize,
    ) -> Result<(QueueState, Candidates), OpError> {
        // The writer is the lock: no other claim runs until this transaction ends.
        let state = self.queue_state(queue)?;
        let found = self.candidates(queue, limit, &state.limits)?;
        Ok((state, found))
    }

    async fn start(&mut self, ids: &[JobId], claim: &JobClaim) -> Result<Vec<Job>, OpError> {
        self.start_jobs(ids, claim)
    }

    async fn record_starts(
        &mut self,
        queue: &str,
        n: usize,
        window: std::time::Duration,
    ) -> Result<(), OpError> {
        let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
        self.tx
            .prepare_cached("DELETE FROM errand_queue_starts WHERE queue = ?1 AND at <= ?2")?
            .execute(params![queue, self.now.saturating_sub(window_us)])?;
        let mut insert = self
            .tx
            .prepare_cached("INSERT INTO errand_queue_starts (queue, at) VALUES (?1, ?2)")?;
        for _ in 0..n {
            insert.execute(params![queue, self.now])?;
        }
        Ok(())
    }
}

impl LimitedClaim<'_, '_> {
    fn queue_state(&mut self, queue: &str) -> Result<QueueState, OpError> {
        let row = self
            .tx
            .prepare_cached(
                "SELECT paused_at IS NOT NULL, global_concurrency, key_concurrency, rate_limit,
                        rate_window_ms
                 FROM errand_queues WHERE name = ?1",
            )?
            .query_row([queue], |r| {
                Ok((
                    r.get::<_, bool>(0)?,
                    QueueLimits {
                        global_concurrency: r.get(1)?,
                        key_concurrency: r.get(2)?,
                        rate_limit: RateLimit::from_parts(r.get(3)?, r.get(4)?),
                    },
                ))
            })
            .optional()?;
        let (paused, limits) = row.unwrap_or_default();
        let recent_starts = match limits.rate_limit {
            Some(r) => {
                let since = self.now.saturating_sub(r.per_ms().saturating_mul(1_000));
                self.tx
                    .prepare_cached(
                        "DELETE FROM errand_queue_starts WHERE queue = ?1 AND at <= ?2",
                    )?
                    .execute(params![queue, since])?;
                self.tx
                    .prepare_cached(
                        "SELECT count(*) FROM errand_queue_starts WHERE queue = ?1 AND at > ?2",
                    )?
                    .query_row(params![queue, since], |r| r.get(0))?
            }
            None => 0,
        };
        let running: i64 = self
            .tx
            .prepare_cached(
                "SELECT count(*) FROM errand_jobs WHERE status = 'running' AND queue = ?1",
            )?
            .query_row([queue], |r| r.get(0))?;
        Ok(QueueState {
            paused,
            limits,
            running,
            recent_starts,
        })
    }

    fn candidates(
        &mut self,
        queue: &str,
        want: usize,
        limits: &QueueLimits,
    ) -> Result<Candidates, OpError> {
        let want = i64::try_from(want).unwrap_or(i64::MAX);
        let mut out = Candidates::default();
        let candidate = |key: Option<String>| {
            move |r: &rusqlite::Row<'_>| {
                Ok(Candidate {
                    id: r.get(0)?,
                    priority: r.get(1)?,
                    run_at: micros_to_time(r.get(2)?),
                    concurrency_key: key.clone(),
                    key_concurrency: r.get(3)?,
                })
            }
        };
        let mut unkeyed = self.tx.prepare_cached(
            "SELECT id, priority, run_at, key_concurrency
             FROM errand_jobs INDEXED BY errand_jobs_claim
             WHERE status = 'queued' AND queue = ?1 AND concurrency_key IS NULL AND run_at <= ?2
             ORDER BY priority DESC, run_at, id LIMIT ?3",
        )?;
        for c in unkeyed.query_map(params![queue, self.now, want], candidate(None))? {
            out.jobs.push(c?);
        }
        // Every key with queued jobs, one index descent each.
        let keys: Vec<String> = self
            .tx
            .prepare_cached(
                "WITH RECURSIVE keys(k) AS (
                     SELECT (SELECT concurrency_key FROM errand_jobs
                             WHERE status = 'queued' AND queue = ?1 AND concurrency_key IS NOT NULL
                             ORDER BY concurrency_key LIMIT 1)
                     UNION ALL
                     SELECT (SELECT concurrency_key FROM errand_jobs
                             WHERE status = 'queued' AND queue = ?1 AND concurrency_key IS NOT NULL
                               AND concurrency_key > keys.k
                             ORDER BY concurrency_key LIMIT 1)
                     FROM keys WHERE keys.k IS NOT NULL)
                 SELECT k FROM keys WHERE k IS NOT NULL",
            )?
            .query_map([queue], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut running = self.tx.prepare_cached(
            "SELECT count(*) FROM errand_jobs
             WHERE status = 'running' AND queue = ?1 AND concurrency_key = ?2",
        )?;
        let mut head = self.tx.prepare_cached(
            "SELECT key_concurrency FROM errand_jobs INDEXED BY errand_jobs_claim_keyed
             WHERE status = 'queued' AND queue = ?1 AND concurrency_key = ?2
             ORDER BY priority DESC, run_at, id LIMIT 1",
        )?;
        let mut first = self.tx.prepare_cached(
            "SELECT id, priority, run_at, key_concurrency
             FROM errand_jobs INDEXED BY errand_jobs_claim_keyed
             WHERE status = 'queued' AND queue = ?1 AND concurrency_key = ?2 AND run_at <= ?3
             ORDER BY priority DESC, run_at, id LIMIT ?4",
        )?;
        for key in keys {
            let busy: i64 = running.query_row(params![queue, key], |r| r.get(0))?;
            let own: Option<i32> = head.query_row(params![queue, key], |r| r.get(0))?;
            let room = (i64::from(key_limit(own, limits)) - busy).min(want);
            out.running_by_key.insert(key.clone(), busy);
            if room <= 0 {
                continue;
            }
            for c in first.query_map(
                params![queue, key, self.now, room],
                candidate(Some(key.clone())),
            )? {
                out.jobs.push(c?);
            }
        }
        Ok(out)
    }

    fn start_jobs(&mut self, ids: &[JobId], claim: &JobClaim) -> Result<Vec<Job>, OpError> {
        let ids_json = serde_json::to_string(ids)
            .map_err(|e| errand_store::StoreError::Database(e.to_string()))?;
        let mut stmt = self.tx.prepare_cached(concat!(
            "UPDATE errand_jobs SET ",
            start_set!(),
            " WHERE id IN (SELECT value FROM json_each(?4)) AND queue = ?5 AND status = 'queued' \
             RETURNING ",
            job_columns!()
        ))?;
        let jobs = stmt
            .query_map(
                params![
                    claim.worker_id,
                    self.now,
                    add_duration(self.now, claim.lease),
                    ids_json,
                    claim.queue
                ],
                job_from_row,
            )?
            .collect::<rusqlite::Result<Vec<Job>>>()?;
        crate::worker_path::move_counts(self.tx, &claim.queue, "queued", "running", jobs.len())?;
        Ok(jobs)
    }
}
