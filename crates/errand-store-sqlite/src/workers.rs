//! The registry of worker processes (`errand_workers`): register, heartbeat, list, remove,
//! prune. One row per live worker process; its jobs are tracked by their leases, not here.

use crate::error::OpError;
use crate::rows::{time, to_micros};
use chrono::{DateTime, Utc};
use errand_store::{StoreError, WorkerQueue, WorkerRecord, WorkerRegistration};
use rusqlite::types::Type;
use rusqlite::{params, Row, Transaction};

/// The `queues` column: a JSON array of `{"name", "concurrency"}` objects.
fn queues_text(queues: &[WorkerQueue]) -> Result<String, OpError> {
    serde_json::to_string(queues)
        .map_err(|e| StoreError::Database(format!("cannot encode worker queues: {e}")).into())
}

fn record(row: &Row<'_>) -> rusqlite::Result<WorkerRecord> {
    let queues: String = row.get(4)?;
    let queues = serde_json::from_str(&queues).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            Type::Text,
            format!("invalid worker queues: {e}").into(),
        )
    })?;
    Ok(WorkerRecord {
        id: row.get(0)?,
        host: row.get(1)?,
        pid: row.get(2)?,
        version: row.get(3)?,
        queues,
        started_at: time(row, 5)?,
        last_seen_at: time(row, 6)?,
    })
}

/// [`errand_store::Store::worker_register`]: `started_at` is kept on a re-registration.
pub(crate) fn register(
    tx: &Transaction<'_>,
    now: i64,
    w: &WorkerRegistration,
) -> Result<(), OpError> {
    tx.prepare_cached(
        "INSERT INTO errand_workers (id, host, pid, version, queues, started_at, last_seen_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
         ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
         version = excluded.version, queues = excluded.queues, \
         last_seen_at = excluded.last_seen_at",
    )?
    .execute(params![
        w.id,
        w.host,
        w.pid,
        w.version,
        queues_text(&w.queues)?,
        now
    ])?;
    Ok(())
}

/// [`errand_store::Store::worker_heartbeat`].
pub(crate) fn heartbeat(tx: &Transaction<'_>, now: i64, id: &str) -> Result<bool, OpError> {
    let n = tx
        .prepare_cached("UPDATE errand_workers SET last_seen_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(n == 1)
}

/// [`errand_store::Store::worker_list`]: oldest `started_at` first, then by id.
pub(crate) fn list(tx: &Transaction<'_>) -> Result<Vec<WorkerRecord>, OpError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, host, pid, version, queues, started_at, last_seen_at \
         FROM errand_workers ORDER BY started_at, id",
    )?;
    let rows = stmt.query_map([], record)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// [`errand_store::Store::worker_remove`].
pub(crate) fn remove(tx: &Transaction<'_>, id: &str) -> Result<(), OpError> {
    tx.prepare_cached("DELETE FROM errand_workers WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// [`errand_store::Store::worker_prune`].
pub(crate) fn prune(tx: &Transaction<'_>, last_seen_before: DateTime<Utc>) -> Result<u64, OpError> {
    let n = tx
        .prepare_cached("DELETE FROM errand_workers WHERE last_seen_at < ?1")?
        .execute([to_micros(last_seen_before)])?;
    Ok(n as u64)
}
