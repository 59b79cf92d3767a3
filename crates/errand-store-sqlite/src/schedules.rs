//! Schedules (`errand_schedules`) and their fire records (`errand_schedule_fires`): the
//! stored side of the scheduler. The decisions (what is due, what is skipped and why) are
//! taken by the caller; the steps of applying one are shared (`errand_store::steps`), and
//! here are SQLite's: the compare-and-set is race-free in the single write transaction.

use crate::enqueue;
use crate::error::OpError;
use crate::notify::ReadyQueues;
use crate::rows::{json, json_text, micros_to_time, opt_time, time, to_micros};
use chrono::{DateTime, Utc};
use errand_core::{JobId, JobInsert, JobStatus};
use errand_store::steps::{self, FireRow, ScheduleTx};
use errand_store::{
    DueSchedules, Enqueued, FireOutcome, FireRecord, ScheduleFire, ScheduleFireList,
    ScheduleRecord, ScheduleWrite, StoreError, FIRE_HISTORY_KEPT,
};
use rusqlite::types::Type;
use rusqlite::{params, OptionalExtension, Row, Transaction};

/// The columns [`record`] reads, with the latest run's status joined.
const SELECT: &str = "SELECT s.name, s.spec, s.kind, s.queue, s.paused, s.source, \
     s.last_fire_at, s.due_at, s.last_job_id, j.status, s.created_at, s.updated_at \
     FROM errand_schedules s LEFT JOIN errand_jobs j ON j.id = s.last_job_id";

fn conversion(idx: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, msg.into())
}

fn status(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<JobStatus>> {
    row.get::<_, Option<String>>(idx)?
        .map(|s| {
            s.parse::<JobStatus>()
                .map_err(|e| conversion(idx, e.to_string()))
        })
        .transpose()
}

fn record(row: &Row<'_>) -> rusqlite::Result<ScheduleRecord> {
    let source: String = row.get(5)?;
    Ok(ScheduleRecord {
        name: row.get(0)?,
        spec: json(row, 1)?,
        kind: row.get(2)?,
        queue: row.get(3)?,
        paused: row.get(4)?,
        source: source.parse().map_err(|e: String| conversion(5, e))?,
        last_fire_at: time(row, 6)?,
        due_at: time(row, 7)?,
        last_job_id: row.get(8)?,
        last_job_status: status(row, 9)?,
        created_at: time(row, 10)?,
        updated_at: time(row, 11)?,
    })
}

/// One schedule by name.
pub(crate) fn get(tx: &Transaction<'_>, name: &str) -> Result<Option<ScheduleRecord>, OpError> {
    let sql = format!("{SELECT} WHERE s.name = ?1");
    Ok(tx
        .prepare_cached(&sql)?
        .query_row([name], record)
        .optional()?)
}

fn must_get(tx: &Transaction<'_>, name: &str) -> Result<ScheduleRecord, OpError> {
    get(tx, name)?.ok_or_else(|| StoreError::ScheduleNotFound(name.to_string()).into())
}

/// [`errand_store::Store::schedule_list`].
pub(crate) fn list(tx: &Transaction<'_>) -> Result<Vec<ScheduleRecord>, OpError> {
    let sql = format!("{SELECT} ORDER BY s.name");
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map([], record)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// [`errand_store::Store::schedule_create`].
pub(crate) fn create(
    tx: &Transaction<'_>,
    now: i64,
    s: &ScheduleWrite,
) -> Result<ScheduleRecord, OpError> {
    let sql = "INSERT INTO errand_schedules (name, spec, kind, queue, paused, source, \
               last_fire_at, due_at, created_at, updated_at) \
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7, ?7) ON CONFLICT (name) DO NOTHING";
    write(tx, sql, now, s, || {
        StoreError::Conflict(format!("schedule `{}` already exists", s.name))
    })
}

/// [`errand_store::Store::schedule_update`].
pub(crate) fn update(
    tx: &Transaction<'_>,
    now: i64,
    s: &ScheduleWrite,
) -> Result<ScheduleRecord, OpError> {
    let sql = "UPDATE errand_schedules SET spec = ?2, kind = ?3, queue = ?4, source = ?6, \
               last_fire_at = CASE WHEN paused = 1 AND ?5 = 0 THEN ?7 ELSE last_fire_at END, \
               paused = ?5, due_at = ?7, updated_at = ?7 WHERE name = ?1";
    write(tx, sql, now, s, || {
        StoreError::ScheduleNotFound(s.name.clone())
    })
}

/// Runs the create or update statement (the same parameters) and reads the row back; `none`
/// is the error when the statement wrote no row.
fn write(
    tx: &Transaction<'_>,
    sql: &str,
    now: i64,
    s: &ScheduleWrite,
    none: impl FnOnce() -> StoreError,
) -> Result<ScheduleRecord, OpError> {
    let n = tx.prepare_cached(sql)?.execute(params![
        s.name,
        json_text(&s.spec),
        s.kind,
        s.queue,
        s.paused,
        s.source.as_str(),
        now
    ])?;
    if n == 0 {
        return Err(none().into());
    }
    must_get(tx, &s.name)
}

/// [`errand_store::Store::schedule_delete`].
pub(crate) fn delete(tx: &Transaction<'_>, name: &str) -> Result<bool, OpError> {
    // Explicit, not only the foreign key's cascade: it must not depend on the pragma.
    tx.prepare_cached("DELETE FROM errand_schedule_fires WHERE schedule = ?1")?
        .execute([name])?;
    let n = tx
        .prepare_cached("DELETE FROM errand_schedules WHERE name = ?1")?
        .execute([name])?;
    Ok(n == 1)
}

/// [`errand_store::Store::schedule_pause`] and [`errand_store::Store::schedule_resume`].
pub(crate) fn set_paused(
    tx: &Transaction<'_>,
    now: i64,
    name: &str,
    paused: bool,
) -> Result<ScheduleRecord, OpError> {
    let sql = if paused {
        "UPDATE errand_schedules SET paused = 1, updated_at = ?2 WHERE name = ?1 AND paused = 0"
    } else {
        "UPDATE errand_schedules SET paused = 0, last_fire_at = ?2, due_at = ?2, \
         updated_at = ?2 WHERE name = ?1 AND paused = 1"
    };
    tx.prepare_cached(sql)?.execute(params![name, now])?;
    must_get(tx, name)
}

/// [`errand_store::Store::schedule_list_due`].
pub(crate) fn list_due(
    tx: &Transaction<'_>,
    now: i64,
    limit: u32,
) -> Result<DueSchedules, OpError> {
    let sql = format!(
        "{SELECT} WHERE s.paused = 0 AND s.due_at <= ?1 ORDER BY s.due_at, s.name LIMIT ?2"
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let schedules = stmt
        .query_map(params![now, limit], record)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next: Option<i64> = tx
        .prepare_cached(
            "SELECT min(due_at) FROM errand_schedules WHERE paused = 0 AND due_at > ?1",
        )?
        .query_row([now], |r| r.get(0))?;
    Ok(DueSchedules {
        now: crate::rows::micros_to_time(now),
        schedules,
        next_due_at: next.map(crate::rows::micros_to_time),
    })
}

/// SQLite's steps of the shared fire and trigger (`errand_store::steps`), inside the
/// caller's write transaction.
struct Firing<'a, 't> {
    tx: &'a Transaction<'t>,
    now: i64,
    ready: &'a mut ReadyQueues,
}

impl ScheduleTx for Firing<'_, '_> {
    type Error = OpError;

    async fn move_fire_times(&mut self, f: &ScheduleFire) -> Result<bool, OpError> {
        let moved = self
            .tx
            .prepare_cached(
                "UPDATE errand_schedules SET last_fire_at = ?4, due_at = ?5 \
                 WHERE name = ?1 AND last_fire_at = ?2 AND updated_at = ?3 AND paused = 0",
            )?
            .execute(params![
                f.name,
                to_micros(f.expected_last_fire_at),
                to_micros(f.expected_updated_at),
                to_micros(f.last_fire_at),
                to_micros(f.due_at)
            ])?;
        Ok(moved == 1)
    }

    async fn lock_schedule(&mut self, name: &str) -> Result<bool, OpError> {
        // The write transaction holds the only write lock already.
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM errand_schedules WHERE name = ?1")?
            .query_row([name], |_| Ok(()))
            .optional()?
            .is_some())
    }

    async fn insert_jobs(&mut self, jobs: &[JobInsert]) -> Result<Vec<Enqueued>, OpError> {
        enqueue::insert_many(self.tx, self.now, jobs, self.ready)
    }

    async fn now(&mut self) -> Result<DateTime<Utc>, OpError> {
        Ok(micros_to_time(self.now))
    }

    async fn record_fires(&mut self, name: &str, fires: &[FireRow<'_>]) -> Result<(), OpError> {
        let mut insert = self.tx.prepare_cached(
            "INSERT INTO errand_schedule_fires (schedule, fire_at, recorded_at, outcome, \
             reason, job_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for f in fires {
            insert.execute(params![
                name,
                to_micros(f.fire_at),
                self.now,
                f.outcome.as_str(),
                f.reason,
                f.job_id
            ])?;
        }
        self.tx
            .prepare_cached(
                "DELETE FROM errand_schedule_fires WHERE schedule = ?1 AND id < (\
                 SELECT id FROM errand_schedule_fires WHERE schedule = ?1 \
                 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )?
            .execute(params![name, FIRE_HISTORY_KEPT - 1])?;
        Ok(())
    }

    async fn set_last_job(&mut self, name: &str, job: JobId) -> Result<(), OpError> {
        self.tx
            .prepare_cached("UPDATE errand_schedules SET last_job_id = ?2 WHERE name = ?1")?
            .execute(params![name, job])?;
        Ok(())
    }
}

/// [`errand_store::Store::schedule_fire`], in the caller's (one) transaction.
pub(crate) fn fire(
    tx: &Transaction<'_>,
    now: i64,
    f: &ScheduleFire,
    ready: &mut ReadyQueues,
) -> Result<FireOutcome, OpError> {
    steps::run_now(steps::schedule_fire(&mut Firing { tx, now, ready }, f))
}

/// [`errand_store::Store::schedule_trigger`].
pub(crate) fn trigger(
    tx: &Transaction<'_>,
    now: i64,
    name: &str,
    job: &JobInsert,
    ready: &mut ReadyQueues,
) -> Result<Enqueued, OpError> {
    steps::run_now(steps::schedule_trigger(
        &mut Firing { tx, now, ready },
        name,
        job,
    ))
}

/// [`errand_store::Store::schedule_fire_list`].
pub(crate) fn fire_list(
    tx: &Transaction<'_>,
    l: &ScheduleFireList,
) -> Result<Vec<FireRecord>, OpError> {
    // `?3`: the skipped fires, or the runs (enqueued and triggered).
    let sql = "SELECT f.id, f.schedule, f.fire_at, f.recorded_at, f.outcome, f.reason, \
               f.job_id, j.status, j.started_at, j.finished_at \
               FROM errand_schedule_fires f LEFT JOIN errand_jobs j ON j.id = f.job_id \
               WHERE f.schedule = ?1 AND (f.outcome = 'skipped') = ?3 \
               ORDER BY f.id DESC LIMIT ?2";
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt.query_map(params![l.name, l.limit, l.skipped], |row| {
        let outcome: String = row.get(4)?;
        Ok(FireRecord {
            id: row.get(0)?,
            schedule: row.get(1)?,
            fire_at: time(row, 2)?,
            recorded_at: time(row, 3)?,
            outcome: outcome.parse().map_err(|e: String| conversion(4, e))?,
            reason: row.get(5)?,
            job_id: row.get(6)?,
            job_status: status(row, 7)?,
            job_started_at: opt_time(row, 8)?,
            job_finished_at: opt_time(row, 9)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
