//! Claims under flow control (`errand_core::flow`), and which claim a queue needs.
//!
//! A queue needs the limited claim when it has a `global_concurrency` or a `rate_limit`, or
//! queued jobs with a `concurrency_key`. The plain claim (`worker_path::CLAIM`, the hot path)
//! can never break a limit on its own: it reads only jobs without a key (`errand_jobs_claim`
//! holds no others) and takes nothing from a queue with a global or rate limit (its queue
//! check says so). What this
//! module decides is only *when* a queue's claims go the limited way, from a per-queue probe
//! ([`PROBE`]) this process caches for [`PROBE_EVERY`]:
//!
//! - a queue the probe found limited is claimed the limited way until a later probe says
//!   otherwise;
//! - otherwise the plain claim runs, and the probe runs beside it (on another connection, so
//!   it adds no round trip) when the cached answer is older than [`PROBE_EVERY`], or older
//!   than [`PROBE_SHORT_EVERY`] after a short claim (the queue looked drained: a new keyed
//!   job's wake-up should find it soon, not a second later). If it finds the queue limited,
//!   the limited claim takes the rest of what was asked for. A plain claim's jobs are
//!   returned even if the probe or the limited claim after it fails.
//!
//! So keyed jobs and a new global limit are seen within [`PROBE_EVERY`] while a backlog of
//! unkeyed jobs drains, and at once by an idle queue. This process's own keyed enqueues and
//! limit changes mark the queue at once ([`Flow::mark`]).
//!
//! The limited claim is `errand_store::steps::claim_limited` in one transaction of four round
//! trips: `BEGIN` with a transaction-scoped advisory lock per schema and queue (a statement of
//! its own, so that every later read takes its snapshot after the previous limited claim
//! committed); the queue's state and the candidates in one statement; the start; `COMMIT`. No two limited claims of a queue overlap,
//! which is what makes the limits exact across processes; claims of other queues do not wait.

use crate::error::map;
use crate::sql::micros;
use crate::worker_path::start_picked;
use crate::PgStore;
use chrono::{DateTime, Utc};
use errand_core::flow::{Candidate, QueueLimits, RateLimit};
use errand_core::{ClaimedJob, Job, JobId};
use errand_store::steps::{Candidates, FlowClaimTx, QueueState};
use errand_store::{JobClaim, StoreError, StoreResult};
use sqlx::{Postgres, Row, Transaction};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a probe's answer stands while a queue's claims come back full.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long it stands after a short claim: a lightly loaded queue's claims come back short
/// nearly every time, and each need not cost a second query.
pub(crate) const PROBE_SHORT_EVERY: Duration = Duration::from_millis(250);

/// Whether queue `$1` needs the limited claim: a global or rate limit, or a ready job with a
/// key (one due later does not: the probe runs again within [`PROBE_EVERY`]) (one descent of `errand_jobs_claim_keyed`).
const PROBE: &str =
    "SELECT coalesce((SELECT global_concurrency IS NOT NULL OR rate_limit IS NOT NULL
                                      FROM errand_queues WHERE name = $1), false)
        OR EXISTS (SELECT 1 FROM errand_jobs
                   WHERE status = 'queued' AND queue = $1 AND concurrency_key IS NOT NULL
                     AND run_at <= now())
        AS limited";

/// Reads, under the queue's claim lock, the queue's state and the claim's candidates in one
/// statement (`$1` queue, `$2` how many, `$3` now): its settings, its running jobs, with a rate
/// limit the starts within the window; the first `$2` ready jobs without a key in claim
/// order; then every key with queued jobs (a skip scan of `errand_jobs_claim_keyed`, one
/// descent per key), its running count, and its first ready jobs up to the room its limit
/// leaves (the limit of its first job, else the queue's, else 1). One row per candidate, each
/// with the state; one row of state alone when there is no candidate.
const READ: &str = "WITH RECURSIVE q AS (
        SELECT q.paused_at IS NOT NULL AS paused, q.global_concurrency,
               q.key_concurrency AS queue_key_concurrency, q.rate_limit, q.rate_window_ms
        FROM (SELECT 1) one LEFT JOIN errand_queues q ON q.name = $1
    ), st AS (
        SELECT q.*,
               (SELECT count(*) FROM errand_jobs
                WHERE status = 'running' AND queue = $1) AS running,
               CASE WHEN q.rate_limit IS NULL THEN 0
                    ELSE (SELECT count(*) FROM errand_queue_starts s
                          WHERE s.queue = $1
                            AND s.at > coalesce($3::timestamptz, statement_timestamp())
                                       - q.rate_window_ms * interval '1 millisecond')
               END AS recent_starts
        FROM q
    ), keys(k) AS (
        (SELECT concurrency_key FROM errand_jobs
         WHERE status = 'queued' AND queue = $1 AND concurrency_key IS NOT NULL
         ORDER BY concurrency_key LIMIT 1)
        UNION ALL
        SELECT (SELECT concurrency_key FROM errand_jobs
                WHERE status = 'queued' AND queue = $1 AND concurrency_key IS NOT NULL
                  AND concurrency_key > keys.k
                ORDER BY concurrency_key LIMIT 1)
        FROM keys WHERE keys.k IS NOT NULL
    ), keyed AS (
        SELECT c.*
        FROM keys
        CROSS JOIN LATERAL (SELECT count(*) AS n FROM errand_jobs r
                            WHERE r.status = 'running' AND r.queue = $1
                              AND r.concurrency_key IS NOT NULL
                              AND r.concurrency_key = keys.k) run
        CROSS JOIN LATERAL (
            SELECT j.id, j.priority, j.run_at, j.concurrency_key, j.key_concurrency,
                   run.n AS key_running
            FROM errand_jobs j
            WHERE j.status = 'queued' AND j.queue = $1 AND j.concurrency_key IS NOT NULL
              AND j.concurrency_key = keys.k
              AND j.run_at <= coalesce($3::timestamptz, now())
            ORDER BY j.priority DESC, j.run_at, j.id
            LIMIT (SELECT greatest(0, least($2::bigint,
                                            coalesce(h.key_concurrency,
                                                     (SELECT queue_key_concurrency FROM q),
                                                     1) - run.n))
                   FROM (SELECT key_concurrency FROM errand_jobs
                         WHERE status = 'queued' AND queue = $1
                           AND concurrency_key IS NOT NULL AND concurrency_key = keys.k
                         ORDER BY priority DESC, run_at, id LIMIT 1) h)) c
        WHERE keys.k IS NOT NULL
    ), candidates AS (
        (SELECT id, priority, run_at, NULL::text AS concurrency_key,
                NULL::int AS key_concurrency, 0::bigint AS key_running
         FROM errand_jobs
         WHERE status = 'queued' AND queue = $1 AND concurrency_key IS NULL
           AND run_at <= coalesce($3::timestamptz, now())
         ORDER BY priority DESC, run_at, id
         LIMIT $2)
        UNION ALL
        SELECT * FROM keyed
    )
    SELECT st.*, c.id, c.priority, c.run_at, c.concurrency_key, c.key_concurrency,
           c.key_running
    FROM st LEFT JOIN candidates c ON true";

/// `$2` starts of queue `$1` now (`$3`), and the queue's starts older than its window (`$4`
/// milliseconds) forgotten. "Now" of the rate window is the statement's time, not the
/// transaction's (`now()`): the transaction began before the wait for the claim lock, and
/// starts logged at that earlier time would leave the window early.
const RECORD_STARTS: &str = "WITH gone AS (
        DELETE FROM errand_queue_starts
        WHERE queue = $1
          AND at <= coalesce($3::timestamptz, statement_timestamp())
                    - $4 * interval '1 millisecond'
    )
    INSERT INTO errand_queue_starts (queue, at)
    SELECT $1, coalesce($3::timestamptz, statement_timestamp()) FROM generate_series(1, $2::int)";

/// Starts the chosen jobs (`$3`) of queue `$1` that are still queued.
const START: &str = concat!(
    "WITH picked AS (
        SELECT id FROM errand_jobs
        WHERE id = ANY($3::bigint[]) AND queue = $1 AND status = 'queued'
        FOR UPDATE SKIP LOCKED
    )
    ",
    start_picked!()
);

/// What this process knows of each queue's need for the limited claim.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    queues: Mutex<HashMap<String, Probed>>,
}

#[derive(Debug, Clone, Copy)]
struct Probed {
    limited: bool,
    at: Instant,
    /// The queue's last claim came back short.
    short: bool,
}

/// How the next claim of a queue goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The limited claim only.
    Limited,
    /// The plain claim, and the probe beside it.
    PlainAndProbe,
    /// The plain claim alone.
    Plain,
}

impl Flow {
    /// How to claim from `queue` now.
    pub(crate) fn plan(&self, queue: &str, now: Instant) -> Plan {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        match queues.get(queue) {
            Some(p) if p.limited && now.duration_since(p.at) < PROBE_EVERY => Plan::Limited,
            Some(p) if !p.short && now.duration_since(p.at) < PROBE_EVERY => Plan::Plain,
            Some(p) if p.short && now.duration_since(p.at) < PROBE_SHORT_EVERY => Plan::Plain,
            _ => Plan::PlainAndProbe,
        }
    }

    /// A probe's answer, taken at `at`.
    pub(crate) fn probed(&self, queue: &str, limited: bool, at: Instant) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let short = queues.get(queue).is_some_and(|p| p.short);
        queues.insert(queue.to_owned(), Probed { limited, at, short });
    }

    /// Whether the queue's last claim came back short.
    pub(crate) fn claimed(&self, queue: &str, short: bool) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = queues.get_mut(queue) {
            p.short = short;
        }
    }

    /// This process gave the queue keyed jobs or limits: claim it the limited way now.
    pub(crate) fn mark(&self, queue: &str) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.insert(
            queue.to_owned(),
            Probed {
                limited: true,
                at: Instant::now(),
                short: true,
            },
        );
    }

    /// Whether this process claims `queue` the limited way now.
    pub(crate) fn is_limited(&self, queue: &str) -> bool {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.get(queue).is_some_and(|p| p.limited)
    }

    /// The queue's limits changed in a way that may need no limited claim: probe again.
    pub(crate) fn forget(&self, queue: &str) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.remove(queue);
    }
}

/// PostgreSQL's steps of the shared limited claim, in one transaction.
struct LimitedClaim {
    tx: Transaction<'static, Postgres>,
    now: Option<DateTime<Utc>>,
}

impl FlowClaimTx for LimitedClaim {
    type Error = StoreError;

    async fn lock_and_read(
        &mut self,
        queue: &str,
        limit: usize,
    ) -> StoreResult<(QueueState, Candidates)> {
        // The claim lock was taken when the transaction began (`claim_limited`).
        let rows = sqlx::query(READ)
            .bind(queue)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(self.now)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map)?;
        let first = rows
            .first()
            .ok_or_else(|| StoreError::Database("the claim's read returned no row".into()))?;
        let state = QueueState {
            paused: first.try_get::<Option<bool>, _>("paused").map_err(map)? == Some(true),
            limits: QueueLimits {
                global_concurrency: first.try_get("global_concurrency").map_err(map)?,
                key_concurrency: first.try_get("queue_key_concurrency").map_err(map)?,
                rate_limit: RateLimit::from_parts(
                    first.try_get("rate_limit").map_err(map)?,
                    first.try_get("rate_window_ms").map_err(map)?,
                ),
            },
            running: first.try_get("running").map_err(map)?,
            recent_starts: first.try_get("recent_starts").map_err(map)?,
        };
        let mut out = Candidates::default();
        for r in &rows {
            let Some(id) = r.try_get::<Option<JobId>, _>("id").map_err(map)? else {
                continue;
            };
            let key: Option<String> = r.try_get("concurrency_key").map_err(map)?;
            if let Some(k) = &key {
                let n: i64 = r.try_get("key_running").map_err(map)?;
                out.running_by_key.insert(k.clone(), n);
            }
            out.jobs.push(Candidate {
                id,
                priority: r.try_get("priority").map_err(map)?,
                run_at: r.try_get("run_at").map_err(map)?,
                concurrency_key: key,
                key_concurrency: r.try_get("key_concurrency").map_err(map)?,
            });
        }
        Ok((state, out))
    }

    async fn start(&mut self, ids: &[JobId], claim: &JobClaim) -> StoreResult<Vec<Job>> {
        let rows = sqlx::query(START)
            .bind(&claim.queue)
            .bind(&claim.worker_id)
            .bind(ids)
            .bind(self.now)
            .bind(micros(claim.lease))
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map)?;
        crate::rows::jobs(&rows)
    }

    async fn record_starts(&mut self, queue: &str, n: usize, window: Duration) -> StoreResult<()> {
        sqlx::query(RECORD_STARTS)
            .bind(queue)
            .bind(i32::try_from(n).unwrap_or(i32::MAX))
            .bind(self.now)
            .bind(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
            .execute(&mut *self.tx)
            .await
            .map_err(map)?;
        Ok(())
    }
}

impl PgStore {
    /// A job of a limited queue ended (or went back to waiting): its slot is free. A claim
    /// of that queue that found every slot taken, in this process, waits for a wake-up or
    /// its poll; this is the wake-up, sent in-process (the queue's claims in other processes
    /// find the slot at their next poll, or at their own jobs' ends).
    pub(crate) fn slots_freed(&self, queues: std::collections::BTreeSet<String>) {
        for queue in queues {
            self.wake.local(queue);
        }
    }

    /// [`PgStore::slots_freed`] for one job, if it was keyed or its queue is limited.
    pub(crate) fn job_freed_a_slot(&self, job: &Job) {
        if job.concurrency_key.is_some() || self.flow.is_limited(&job.queue) {
            self.wake.local(job.queue.clone());
        }
    }

    /// The advisory lock key of `queue`'s limited claims in this store's schema.
    fn claim_lock_key(&self, queue: &str) -> i64 {
        let schema = self.schema.as_deref().unwrap_or("");
        crate::migrate::fnv1a(format!("errand.claim.{schema}.{queue}").as_bytes())
    }

    /// Whether `queue` needs the limited claim now ([`PROBE`]).
    pub(crate) async fn flow_probe(&self, queue: &str) -> StoreResult<bool> {
        sqlx::query_scalar(PROBE)
            .bind(queue)
            .fetch_one(&self.pool)
            .await
            .map_err(map)
    }

    /// The limited claim (`errand_store::steps::claim_limited`) in one transaction.
    pub(crate) async fn claim_limited(&self, claim: &JobClaim) -> StoreResult<Vec<ClaimedJob>> {
        if claim.limit == 0 {
            return Ok(Vec::new());
        }
        // The claim lock is taken by the transaction's first round trip, before any read;
        // READ COMMITTED whatever the database's default, so that each later statement takes
        // its snapshot after the lock was granted.
        let lock = format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({})",
            self.claim_lock_key(&claim.queue)
        );
        let mut steps = LimitedClaim {
            tx: self.pool.begin_with(lock).await.map_err(map)?,
            now: self.now(),
        };
        let claimed = errand_store::steps::claim_limited(&mut steps, claim).await?;
        steps.tx.commit().await.map_err(map)?;
        Ok(claimed)
    }
}
