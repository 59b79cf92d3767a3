//! The registry of worker processes (`errand_workers`): register, heartbeat, list, remove,
//! prune. One row per live worker process; its jobs are tracked by their leases, not here.
//! (The worker *path* of jobs, claim to complete, is in `worker_path`.)

use crate::error::map;
use crate::PgStore;
use chrono::{DateTime, Utc};
use errand_store::{StoreError, StoreResult, WorkerQueue, WorkerRecord, WorkerRegistration};
use sqlx::postgres::PgRow;
use sqlx::Row;

/// `started_at` is set on insert only; `$6` is the injected now (NULL: the database's).
const REGISTER: &str = "INSERT INTO errand_workers
        (id, host, pid, version, queues, started_at, last_seen_at)
    VALUES ($1, $2, $3, $4, $5, coalesce($6::timestamptz, now()), coalesce($6::timestamptz, now()))
    ON CONFLICT (id) DO UPDATE
    SET host = EXCLUDED.host,
        pid = EXCLUDED.pid,
        version = EXCLUDED.version,
        queues = EXCLUDED.queues,
        last_seen_at = EXCLUDED.last_seen_at";

const HEARTBEAT: &str =
    "UPDATE errand_workers SET last_seen_at = coalesce($2::timestamptz, now()) WHERE id = $1";

const LIST: &str = "SELECT id, host, pid, version, queues, started_at, last_seen_at
    FROM errand_workers ORDER BY started_at, id";

fn record(row: &PgRow) -> StoreResult<WorkerRecord> {
    let queues: serde_json::Value = row.try_get("queues").map_err(map)?;
    let queues: Vec<WorkerQueue> = serde_json::from_value(queues)
        .map_err(|e| StoreError::Database(format!("invalid worker queues: {e}")))?;
    Ok(WorkerRecord {
        id: row.try_get("id").map_err(map)?,
        host: row.try_get("host").map_err(map)?,
        pid: row.try_get("pid").map_err(map)?,
        version: row.try_get("version").map_err(map)?,
        queues,
        started_at: row.try_get("started_at").map_err(map)?,
        last_seen_at: row.try_get("last_seen_at").map_err(map)?,
    })
}

impl PgStore {
    pub(crate) async fn worker_register_impl(&self, w: &WorkerRegistration) -> StoreResult<()> {
        let queues = serde_json::to_value(&w.queues)
            .map_err(|e| StoreError::Database(format!("cannot encode worker queues: {e}")))?;
        sqlx::query(REGISTER)
            .bind(&w.id)
            .bind(&w.host)
            .bind(w.pid)
            .bind(&w.version)
            .bind(queues)
            .bind(self.now())
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(())
    }

    pub(crate) async fn worker_heartbeat_impl(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query(HEARTBEAT)
            .bind(id)
            .bind(self.now())
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn worker_list_impl(&self) -> StoreResult<Vec<WorkerRecord>> {
        let rows = sqlx::query(LIST).fetch_all(&self.pool).await.map_err(map)?;
        rows.iter().map(record).collect()
    }

    pub(crate) async fn worker_remove_impl(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM errand_workers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(())
    }

    pub(crate) async fn worker_prune_impl(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM errand_workers WHERE last_seen_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(done.rows_affected())
    }
}
