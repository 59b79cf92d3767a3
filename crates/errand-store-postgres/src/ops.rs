//! Operator actions: cancel, retry (by id and in bulk) and purge.
//!
//! Cancel and retry by id lock the named rows first (`FOR UPDATE`, in id order) and then
//! write every change and event in one statement, so a job claimed or finished concurrently
//! is judged by its current state. A retried job must not make two live jobs share a
//! `unique_key`: a failed job whose key is held by a live job is left alone (reported
//! unchanged), and of several with one key only one is retried.

use crate::error::map;
use crate::rows;
use crate::sql::limit;
use crate::PgStore;
use chrono::{DateTime, Utc};
use errand_core::JobId;
use errand_store::steps::{self, LockedJob, OperatorTx};
use errand_store::{CancelOutcome, JobPurge, RetryFailed, RetryOutcome, StoreError, StoreResult};
use sqlx::{Postgres, Row, Transaction};
use std::collections::{HashMap, HashSet};

const LOCK: &str = "SELECT id, status, attempt, worker_id, unique_key,
           cancel_requested_at IS NOT NULL AS cancel_requested
    FROM errand_jobs WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE";

const CANCEL: &str = "WITH q AS (
        UPDATE errand_jobs
        SET status = 'cancelled',
            finished_at = coalesce($4::timestamptz, now()),
            updated_at = coalesce($4::timestamptz, now())
        WHERE id = ANY($1::bigint[]) AND status = 'queued'
        RETURNING id, attempt
    ), r AS (
        UPDATE errand_jobs
        SET cancel_requested_at = coalesce($4::timestamptz, now()),
            updated_at = coalesce($4::timestamptz, now())
        WHERE id = ANY($2::bigint[]) AND status = (SELECT 'running')
        RETURNING id, attempt, worker_id
    ), ev AS (
        INSERT INTO errand_events (job_id, at, kind, attempt, worker_id, message, data)
        SELECT id, coalesce($4::timestamptz, now()), 'cancelled', attempt, NULL::text, $3::text,
               NULL::jsonb
        FROM q
        UNION ALL
        SELECT id, coalesce($4::timestamptz, now()), 'cancel_requested', attempt, worker_id,
               $3::text, NULL::jsonb
        FROM r
    )
    SELECT (SELECT count(*) FROM q) + (SELECT count(*) FROM r) AS n";

/// Puts the rows of `prev` back in the queue with a fresh budget, writes their `retried`
/// events and sends a wake-up hint per queue; `prev` must select `id, status, attempt` of
/// locked failed/cancelled jobs.
fn retry_sql(prev: &str, now: &str) -> String {
    format!(
        "WITH prev AS MATERIALIZED ({prev}),
        upd AS (
            UPDATE errand_jobs j
            SET status = 'queued',
                attempt = 0,
                run_at = {now},
                finished_at = NULL,
                result = NULL,
                worker_id = NULL,
                lease_expires_at = NULL,
                cancel_requested_at = NULL,
                updated_at = {now}
            FROM prev
            WHERE j.id = prev.id
            RETURNING j.id, j.queue, prev.status AS previous_status,
                      prev.attempt AS previous_attempt
        ), ev AS (
            INSERT INTO errand_events (job_id, at, kind, attempt, worker_id, message, data)
            SELECT id, {now}, 'retried', previous_attempt, NULL, NULL,
                   jsonb_build_object('previous_status', previous_status,
                                      'previous_attempt', previous_attempt)
            FROM upd
        ), {notified}
        SELECT count(*) AS n FROM upd CROSS JOIN notified",
        notified = crate::notify::notify_cte!("upd")
    )
}

/// PostgreSQL's steps of the shared cancel and retry (`errand_store::steps`), in one
/// transaction.
struct Operator {
    tx: Transaction<'static, Postgres>,
    now: Option<DateTime<Utc>>,
}

impl OperatorTx for Operator {
    type Error = StoreError;

    async fn lock_jobs(&mut self, ids: &[JobId]) -> StoreResult<HashMap<JobId, LockedJob>> {
        let locked = sqlx::query(LOCK)
            .bind(ids)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map)?;
        locked
            .iter()
            .map(|r| {
                let status = rows::status(r.try_get::<&str, _>("status").map_err(map)?)?;
                let job = LockedJob {
                    status,
                    attempt: r.try_get("attempt").map_err(map)?,
                    worker_id: r.try_get("worker_id").map_err(map)?,
                    cancel_requested: r.try_get("cancel_requested").map_err(map)?,
                    unique_key: r.try_get("unique_key").map_err(map)?,
                };
                Ok((r.try_get("id").map_err(map)?, job))
            })
            .collect()
    }

    async fn apply_cancel(
        &mut self,
        cancel: &[JobId],
        stop: &[JobId],
        reason: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(CANCEL)
            .bind(cancel)
            .bind(stop)
            .bind(reason)
            .bind(self.now)
            .execute(&mut *self.tx)
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn live_keys(&mut self, keys: &[&str]) -> StoreResult<HashSet<String>> {
        let live = sqlx::query_scalar::<_, String>(
            "SELECT unique_key FROM errand_jobs \
             WHERE unique_key = ANY($1::text[]) AND status IN ('queued', 'running')",
        )
        .bind(keys)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map)?;
        Ok(live.into_iter().collect())
    }

    async fn apply_retry(&mut self, ids: &[JobId]) -> StoreResult<()> {
        let sql = retry_sql(
            "SELECT id, status, attempt FROM errand_jobs WHERE id = ANY($1::bigint[])",
            "coalesce($2::timestamptz, now())",
        );
        sqlx::query(&sql)
            .bind(ids)
            .bind(self.now)
            .execute(&mut *self.tx)
            .await
            .map_err(map)?;
        Ok(())
    }
}

impl PgStore {
    pub(crate) async fn cancel_impl(
        &self,
        ids: &[JobId],
        reason: Option<&str>,
    ) -> StoreResult<Vec<CancelOutcome>> {
        let mut op = self.operator().await?;
        let out = steps::job_cancel(&mut op, ids, reason).await?;
        op.tx.commit().await.map_err(map)?;
        Ok(out)
    }

    pub(crate) async fn retry_impl(&self, ids: &[JobId]) -> StoreResult<Vec<RetryOutcome>> {
        let mut op = self.operator().await?;
        let out = steps::job_retry(&mut op, ids).await?;
        op.tx.commit().await.map_err(map)?;
        Ok(out)
    }

    async fn operator(&self) -> StoreResult<Operator> {
        Ok(Operator {
            tx: self.pool.begin().await.map_err(map)?,
            now: self.now(),
        })
    }

    pub(crate) async fn retry_failed_impl(&self, filter: &RetryFailed) -> StoreResult<u64> {
        if filter.limit == 0 {
            return Ok(0);
        }
        let mut cand = String::from(
            "SELECT id, status, attempt, unique_key FROM errand_jobs j
             WHERE status = 'failed'
               AND (unique_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM errand_jobs l
                    WHERE l.unique_key = j.unique_key AND l.status IN ('queued', 'running')))",
        );
        let mut next = 3;
        if filter.queue.is_some() {
            cand.push_str(&format!(" AND queue = ${next}"));
            next += 1;
        }
        if filter.kind.is_some() {
            cand.push_str(&format!(" AND kind = ${next}"));
        }
        cand.push_str(" ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED");
        // Of several candidates with one key, only the oldest is retried (as on SQLite).
        let prev = format!(
            "WITH cand AS MATERIALIZED ({cand})
             SELECT c.id, c.status, c.attempt FROM cand c
             WHERE c.unique_key IS NULL
                OR c.id = (SELECT min(c2.id) FROM cand c2 WHERE c2.unique_key = c.unique_key)"
        );
        let sql = retry_sql(&prev, "coalesce($1::timestamptz, now())");
        let mut q = sqlx::query_scalar::<_, i64>(&sql)
            .bind(self.now())
            .bind(limit(filter.limit));
        if let Some(queue) = &filter.queue {
            q = q.bind(queue);
        }
        if let Some(kind) = &filter.kind {
            q = q.bind(kind);
        }
        let n = q.fetch_one(&self.pool).await.map_err(map)?;
        Ok(n as u64)
    }

    pub(crate) async fn purge_impl(&self, purge: &JobPurge) -> StoreResult<u64> {
        let statuses: Vec<&str> = purge
            .statuses
            .iter()
            .filter(|s| s.is_finished())
            .map(|s| s.as_str())
            .collect();
        if statuses.is_empty() || purge.limit == 0 {
            return Ok(0);
        }
        let done = sqlx::query(
            // `= ANY(ARRAY(...))` makes the delete a primary-key lookup of the batch rather
            // than a join against the whole table.
            "DELETE FROM errand_jobs WHERE id = ANY(ARRAY(
                SELECT id FROM errand_jobs
                WHERE status = ANY($1::text[]) AND finished_at < $2
                LIMIT $3
                FOR UPDATE SKIP LOCKED))",
        )
        .bind(statuses)
        .bind(purge.finished_before)
        .bind(limit(purge.limit))
        .execute(&self.pool)
        .await
        .map_err(map)?;
        Ok(done.rows_affected())
    }
}
