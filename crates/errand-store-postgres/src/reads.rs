//! Reads (one job, filtered lists, queue statistics), events, and queue settings.

use crate::error::{code_of, map};
use crate::rows;
use crate::PgStore;
use chrono::{DateTime, Utc};
use errand_core::{DerivedState, Event, Job, JobId, NewEvent};
use errand_store::{
    FinishedStats, JobFinishedStats, JobList, JobPage, JobThroughput, QueueInfo, QueueStats,
    StateFilter, StoreError, StoreResult, ThroughputBucket,
};
use sqlx::{Postgres, QueryBuilder, Row};

/// Per-queue counts by status from the trigger-kept counters (migration 7: the folded
/// counts plus the deltas not folded yet, a few rows however many jobs there are), the
/// scheduled count and oldest ready job from the queued rows (`errand_jobs_claim` for jobs
/// without a key, `errand_jobs_claim_keyed` for keyed ones), and every
/// queue that has a settings row.
const STATS: &str = "WITH t AS (SELECT coalesce($1::timestamptz, now()) AS now),
    by_status AS (
        SELECT queue,
               sum(n) FILTER (WHERE status = 'queued')::bigint AS queued,
               sum(n) FILTER (WHERE status = 'running')::bigint AS running,
               sum(n) FILTER (WHERE status = 'succeeded')::bigint AS succeeded,
               sum(n) FILTER (WHERE status = 'failed')::bigint AS failed,
               sum(n) FILTER (WHERE status = 'cancelled')::bigint AS cancelled
        FROM (SELECT queue, status, n FROM errand_queue_counts
              UNION ALL
              SELECT queue, status, n FROM errand_queue_count_deltas) c
        GROUP BY queue
        HAVING sum(n) <> 0
    ),
    ready AS (
        SELECT queue, sum(scheduled)::bigint AS scheduled,
               min(oldest_ready_run_at) AS oldest_ready_run_at
        FROM (SELECT queue,
                     count(*) FILTER (WHERE run_at > t.now) AS scheduled,
                     min(run_at) FILTER (WHERE run_at <= t.now) AS oldest_ready_run_at
              FROM errand_jobs, t
              WHERE status = 'queued' AND concurrency_key IS NULL
              GROUP BY queue
              UNION ALL
              SELECT queue,
                     count(*) FILTER (WHERE run_at > t.now),
                     min(run_at) FILTER (WHERE run_at <= t.now)
              FROM errand_jobs, t
              WHERE status = 'queued' AND concurrency_key IS NOT NULL
              GROUP BY queue) parts
        GROUP BY queue
    ),
    names AS (SELECT queue AS name FROM by_status UNION SELECT name FROM errand_queues)
    SELECT n.name AS queue,
           coalesce(q.paused_at IS NOT NULL, false) AS paused,
           coalesce(s.queued, 0) AS queued,
           coalesce(r.scheduled, 0) AS scheduled,
           coalesce(s.running, 0) AS running,
           coalesce(s.succeeded, 0) AS succeeded,
           coalesce(s.failed, 0) AS failed,
           coalesce(s.cancelled, 0) AS cancelled,
           r.oldest_ready_run_at,
           t.now AS as_of
    FROM names n
    CROSS JOIN t
    LEFT JOIN by_status s ON s.queue = n.name
    LEFT JOIN ready r ON r.queue = n.name
    LEFT JOIN errand_queues q ON q.name = n.name
    ORDER BY n.name";

/// Folds the counters' deltas into `errand_queue_counts` (migration 7). The DELETE takes each
/// delta once even when two readers fold at the same time (the second skips rows the first
/// deleted), so nothing is counted twice; deltas written meanwhile wait for the next fold.
const FOLD_COUNTS: &str =
    "WITH moved AS (DELETE FROM errand_queue_count_deltas RETURNING queue, status, n)
    INSERT INTO errand_queue_counts AS c (queue, status, n)
    SELECT queue, status, sum(n) FROM moved GROUP BY queue, status
    ON CONFLICT (queue, status) DO UPDATE SET n = c.n + EXCLUDED.n";

/// What finished per queue since $1 (optionally of queue $2 / kind $3): counts by outcome and
/// the succeeded runs' durations in microseconds. The p95 is nearest-rank in exact integer
/// arithmetic (`rn * 20 >= n * 19` is `rn >= 0.95 n`), the same as on SQLite, rather than
/// `percentile_disc`, whose float rank could differ at the edges.
const FINISHED_STATS: &str = "WITH d AS (
        SELECT queue, status,
               CASE WHEN status = 'succeeded' AND started_at IS NOT NULL
                    THEN (extract(epoch FROM finished_at - started_at) * 1000000)::bigint END AS us
        FROM errand_jobs
        WHERE finished_at >= $1 AND finished_at IS NOT NULL
          AND ($2::text IS NULL OR queue = $2) AND ($3::text IS NULL OR kind = $3)
    ),
    r AS (
        SELECT queue, status, us,
               row_number() OVER (PARTITION BY queue ORDER BY us NULLS LAST) AS rn,
               count(us) OVER (PARTITION BY queue) AS n
        FROM d
    )
    SELECT queue,
           count(*) FILTER (WHERE status = 'succeeded')::bigint AS succeeded,
           count(*) FILTER (WHERE status = 'failed')::bigint AS failed,
           count(*) FILTER (WHERE status = 'cancelled')::bigint AS cancelled,
           (avg(us) / 1000)::float8 AS avg_ms,
           (min(us) FILTER (WHERE us IS NOT NULL AND rn * 20 >= n * 19) / 1000.0)::float8 AS p95_ms,
           (max(us) / 1000.0)::float8 AS max_ms
    FROM r GROUP BY queue ORDER BY queue";

/// Finished jobs per bucket of $2 microseconds (aligned to the epoch) and queue.
const THROUGHPUT: &str = "SELECT
        (floor(extract(epoch FROM finished_at) * 1000000 / $2) * $2)::bigint AS bucket_us,
        queue,
        count(*) FILTER (WHERE status = 'succeeded')::bigint AS succeeded,
        count(*) FILTER (WHERE status = 'failed')::bigint AS failed,
        count(*) FILTER (WHERE status = 'cancelled')::bigint AS cancelled
    FROM errand_jobs
    WHERE finished_at >= $1 AND finished_at IS NOT NULL
      AND ($3::text IS NULL OR queue = $3) AND ($4::text IS NULL OR kind = $4)
    GROUP BY 1, 2 ORDER BY 1, 2";

fn count(row: &sqlx::postgres::PgRow, name: &str) -> StoreResult<u64> {
    let n: i64 = row.try_get(name).map_err(map)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

impl PgStore {
    pub(crate) async fn get_impl(&self, id: JobId) -> StoreResult<Option<Job>> {
        let row = sqlx::query("SELECT * FROM errand_jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        row.as_ref().map(rows::job).transpose()
    }

    pub(crate) async fn list_impl(&self, list: &JobList) -> StoreResult<JobPage> {
        if list.limit == 0 {
            return Ok(JobPage {
                jobs: Vec::new(),
                next_cursor: None,
            });
        }
        let now: Option<DateTime<Utc>> = self.now();
        let mut qb = QueryBuilder::<Postgres>::new("SELECT * FROM errand_jobs WHERE true");
        match list.state {
            None => {}
            Some(StateFilter::Status(s)) => {
                // A literal, not bound: the status indexes are partial (migration 8), and a
                // plan can use a partial index only for a status it sees. `as_str` gives one of
                // five fixed lowercase words.
                qb.push(format_args!(" AND status = '{}'", s.as_str()));
            }
            Some(StateFilter::Derived(DerivedState::Scheduled)) => {
                qb.push(" AND status = 'queued' AND attempt = 0 AND run_at > coalesce(")
                    .push_bind(now)
                    .push("::timestamptz, now())");
            }
            Some(StateFilter::Derived(DerivedState::Retrying)) => {
                qb.push(" AND status = 'queued' AND attempt >= 1");
            }
            Some(StateFilter::Derived(DerivedState::Stuck)) => {
                qb.push(" AND status = 'running' AND lease_expires_at < coalesce(")
                    .push_bind(now)
                    .push("::timestamptz, now())");
            }
        }
        if let Some(queue) = &list.queue {
            qb.push(" AND queue = ").push_bind(queue);
        }
        if let Some(kind) = &list.kind {
            qb.push(" AND kind = ").push_bind(kind);
        }
        if let Some(t) = &list.reference_type {
            qb.push(" AND reference_type = ").push_bind(t);
        }
        if let Some(r) = &list.reference_id {
            qb.push(" AND reference_id = ").push_bind(r);
        }
        if let Some(since) = list.since {
            qb.push(" AND created_at >= ").push_bind(since);
        }
        if let Some(until) = list.until {
            qb.push(" AND created_at < ").push_bind(until);
        }
        if let Some(before) = list.before_id {
            qb.push(" AND id < ").push_bind(before);
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(list.limit) + 1);
        let rows = qb.build().fetch_all(&self.pool).await.map_err(map)?;
        let mut jobs = rows::jobs(&rows)?;
        let more = jobs.len() > list.limit as usize;
        jobs.truncate(list.limit as usize);
        let next_cursor = if more {
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        Ok(JobPage { jobs, next_cursor })
    }

    /// Folds the queue counters' deltas into their counts (see `FOLD_COUNTS`).
    pub(crate) async fn fold_queue_counts(&self) -> StoreResult<()> {
        sqlx::query(FOLD_COUNTS)
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(())
    }

    pub(crate) async fn stats_impl(&self) -> StoreResult<Vec<QueueStats>> {
        self.fold_queue_counts().await?;
        let rows = sqlx::query(STATS)
            .bind(self.now())
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter()
            .map(|r| {
                Ok(QueueStats {
                    queue: r.try_get("queue").map_err(map)?,
                    paused: r.try_get("paused").map_err(map)?,
                    queued: count(r, "queued")?,
                    scheduled: count(r, "scheduled")?,
                    running: count(r, "running")?,
                    succeeded: count(r, "succeeded")?,
                    failed: count(r, "failed")?,
                    cancelled: count(r, "cancelled")?,
                    oldest_ready_run_at: r.try_get("oldest_ready_run_at").map_err(map)?,
                    as_of: r.try_get("as_of").map_err(map)?,
                })
            })
            .collect()
    }

    pub(crate) async fn finished_stats_impl(
        &self,
        p: &JobFinishedStats,
    ) -> StoreResult<Vec<FinishedStats>> {
        let rows = sqlx::query(FINISHED_STATS)
            .bind(p.since)
            .bind(&p.queue)
            .bind(&p.kind)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter()
            .map(|r| {
                Ok(FinishedStats {
                    queue: r.try_get("queue").map_err(map)?,
                    succeeded: count(r, "succeeded")?,
                    failed: count(r, "failed")?,
                    cancelled: count(r, "cancelled")?,
                    duration_avg_ms: r.try_get("avg_ms").map_err(map)?,
                    duration_p95_ms: r.try_get("p95_ms").map_err(map)?,
                    duration_max_ms: r.try_get("max_ms").map_err(map)?,
                })
            })
            .collect()
    }

    pub(crate) async fn throughput_impl(
        &self,
        p: &JobThroughput,
    ) -> StoreResult<Vec<ThroughputBucket>> {
        let bucket_us = i64::try_from(p.bucket.as_micros())
            .unwrap_or(i64::MAX)
            .max(1000);
        let rows = sqlx::query(THROUGHPUT)
            .bind(p.since)
            .bind(bucket_us)
            .bind(&p.queue)
            .bind(&p.kind)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter()
            .map(|r| {
                let us: i64 = r.try_get("bucket_us").map_err(map)?;
                Ok(ThroughputBucket {
                    start: DateTime::<Utc>::from_timestamp_micros(us).ok_or_else(|| {
                        StoreError::Database(format!("bucket start {us} out of range"))
                    })?,
                    queue: r.try_get("queue").map_err(map)?,
                    succeeded: count(r, "succeeded")?,
                    failed: count(r, "failed")?,
                    cancelled: count(r, "cancelled")?,
                })
            })
            .collect()
    }

    pub(crate) async fn event_insert_impl(&self, event: &NewEvent) -> StoreResult<Event> {
        let row = sqlx::query(
            "INSERT INTO errand_events (job_id, at, kind, attempt, worker_id, message, data)
             VALUES ($1, coalesce($2::timestamptz, now()), $3, $4, $5, $6, $7)
             RETURNING *",
        )
        .bind(event.job_id)
        .bind(self.now())
        .bind(event.kind.as_str())
        .bind(event.attempt)
        .bind(&event.worker_id)
        .bind(&event.message)
        .bind(&event.data)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            // foreign_key_violation: no such job.
            if code_of(&e).as_deref() == Some("23503") {
                StoreError::NotFound(event.job_id)
            } else {
                map(e)
            }
        })?;
        rows::event(&row)
    }

    pub(crate) async fn event_list_impl(&self, job_id: JobId) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query("SELECT * FROM errand_events WHERE job_id = $1 ORDER BY id")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter().map(rows::event).collect()
    }

    pub(crate) async fn queue_pause_impl(&self, name: &str) -> StoreResult<()> {
        // Pausing a paused queue keeps its original `paused_at`.
        sqlx::query(
            "INSERT INTO errand_queues (name, paused_at, updated_at)
             VALUES ($1, coalesce($2::timestamptz, now()), coalesce($2::timestamptz, now()))
             ON CONFLICT (name) DO UPDATE
             SET paused_at = coalesce(errand_queues.paused_at, excluded.paused_at),
                 updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(self.now())
        .execute(&self.pool)
        .await
        .map_err(map)?;
        Ok(())
    }

    pub(crate) async fn queue_resume_impl(&self, name: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO errand_queues (name, paused_at, updated_at)
             VALUES ($1, NULL, coalesce($2::timestamptz, now()))
             ON CONFLICT (name) DO UPDATE
             SET paused_at = NULL, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(self.now())
        .execute(&self.pool)
        .await
        .map_err(map)?;
        Ok(())
    }

    pub(crate) async fn queue_list_impl(&self) -> StoreResult<Vec<QueueInfo>> {
        let rows = sqlx::query(
            "SELECT name, paused_at, updated_at, global_concurrency, key_concurrency,
                    rate_limit, rate_window_ms
             FROM errand_queues ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map)?;
        rows.iter()
            .map(|r| {
                let paused_at: Option<DateTime<Utc>> = r.try_get("paused_at").map_err(map)?;
                Ok(QueueInfo {
                    name: r.try_get("name").map_err(map)?,
                    paused: paused_at.is_some(),
                    paused_at,
                    updated_at: r.try_get("updated_at").map_err(map)?,
                    limits: errand_core::QueueLimits {
                        global_concurrency: r.try_get("global_concurrency").map_err(map)?,
                        key_concurrency: r.try_get("key_concurrency").map_err(map)?,
                        rate_limit: errand_core::flow::RateLimit::from_parts(
                            r.try_get("rate_limit").map_err(map)?,
                            r.try_get("rate_window_ms").map_err(map)?,
                        ),
                    },
                })
            })
            .collect()
    }

    pub(crate) async fn queue_limits_set_impl(
        &self,
        name: &str,
        limits: errand_core::QueueLimits,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO errand_queues (name, paused_at, updated_at, global_concurrency,
                                        key_concurrency, rate_limit, rate_window_ms)
             VALUES ($1, NULL, coalesce($2::timestamptz, now()), $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE
             SET global_concurrency = excluded.global_concurrency,
                 key_concurrency = excluded.key_concurrency,
                 rate_limit = excluded.rate_limit,
                 rate_window_ms = excluded.rate_window_ms,
                 updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(self.now())
        .bind(limits.global_concurrency)
        .bind(limits.key_concurrency)
        .bind(limits.rate_limit.map(|r| r.limit))
        .bind(limits.rate_limit.map(|r| r.per_ms()))
        .execute(&self.pool)
        .await
        .map_err(map)?;
        Ok(())
    }
}
