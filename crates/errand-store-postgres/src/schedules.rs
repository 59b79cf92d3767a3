//! Schedules (`errand_schedules`) and their fire records (`errand_schedule_fires`): the
//! stored side of the scheduler. The decisions (what is due, what is skipped and why) are
//! taken by the caller; the steps of applying one are shared (`errand_store::steps`), and
//! here are PostgreSQL's: the compare-and-set is a conditional `UPDATE` of the schedule row. Concurrent callers with the same expectation queue on that row's
//! lock; after the first commits, the others re-check the condition against the new row
//! (READ COMMITTED), match nothing, and roll back.

use crate::error::map;
use crate::{rows, PgStore};
use chrono::{DateTime, Utc};
use errand_core::JobInsert;
use errand_store::steps::{self, FireRow, ScheduleTx};
use errand_store::{
    DueSchedules, Enqueued, FireOutcome, FireRecord, ScheduleFire, ScheduleFireList,
    ScheduleRecord, ScheduleWrite, StoreError, StoreResult, FIRE_HISTORY_KEPT,
};
use sqlx::postgres::PgRow;
use sqlx::{Acquire, PgConnection, Postgres, Row, Transaction};

/// The columns [`record`] reads, with the latest run's status joined.
const SELECT: &str = "SELECT s.name, s.spec, s.kind, s.queue, s.paused, s.source, \
     s.last_fire_at, s.due_at, s.last_job_id, j.status AS last_job_status, s.created_at, \
     s.updated_at FROM errand_schedules s LEFT JOIN errand_jobs j ON j.id = s.last_job_id";

const CREATE: &str = "INSERT INTO errand_schedules (name, spec, kind, queue, paused, source, \
     last_fire_at, due_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, coalesce($7::timestamptz, now()), \
     coalesce($7::timestamptz, now()), coalesce($7::timestamptz, now()), \
     coalesce($7::timestamptz, now())) ON CONFLICT (name) DO NOTHING";

const UPDATE: &str = "UPDATE errand_schedules SET spec = $2, kind = $3, queue = $4, source = $6, \
     last_fire_at = CASE WHEN paused AND NOT $5 THEN coalesce($7::timestamptz, now()) \
                         ELSE last_fire_at END, \
     paused = $5, due_at = coalesce($7::timestamptz, now()), \
     updated_at = coalesce($7::timestamptz, now()) WHERE name = $1";

const PAUSE: &str = "UPDATE errand_schedules SET paused = true, \
     updated_at = coalesce($2::timestamptz, now()) WHERE name = $1 AND NOT paused";

const RESUME: &str = "UPDATE errand_schedules SET paused = false, \
     last_fire_at = coalesce($2::timestamptz, now()), due_at = coalesce($2::timestamptz, now()), \
     updated_at = coalesce($2::timestamptz, now()) WHERE name = $1 AND paused";

const NEXT_DUE: &str = "SELECT coalesce($1::timestamptz, now()) AS now, \
     (SELECT min(due_at) FROM errand_schedules \
      WHERE NOT paused AND due_at > coalesce($1::timestamptz, now())) AS next_due_at";

const CAS: &str = "UPDATE errand_schedules SET last_fire_at = $4, due_at = $5 \
     WHERE name = $1 AND last_fire_at = $2 AND updated_at = $3 AND NOT paused";

/// The fire rows of one decision or trigger, in one statement.
const RECORD: &str = "INSERT INTO errand_schedule_fires \
     (schedule, fire_at, recorded_at, outcome, reason, job_id) \
     SELECT $1, t.fire_at, coalesce($2::timestamptz, now()), t.outcome, t.reason, t.job_id \
     FROM unnest($3::timestamptz[], $4::text[], $5::text[], $6::bigint[]) \
          WITH ORDINALITY AS t(fire_at, outcome, reason, job_id, ord) \
     ORDER BY t.fire_at, t.ord";

const TRIM: &str = "DELETE FROM errand_schedule_fires WHERE schedule = $1 AND id < (\
     SELECT id FROM errand_schedule_fires WHERE schedule = $1 \
     ORDER BY id DESC LIMIT 1 OFFSET $2)";

const SET_LAST_JOB: &str = "UPDATE errand_schedules SET last_job_id = $2 WHERE name = $1";

fn record(row: &PgRow) -> StoreResult<ScheduleRecord> {
    let source: &str = row.try_get("source").map_err(map)?;
    let status: Option<&str> = row.try_get("last_job_status").map_err(map)?;
    Ok(ScheduleRecord {
        name: row.try_get("name").map_err(map)?,
        spec: row.try_get("spec").map_err(map)?,
        kind: row.try_get("kind").map_err(map)?,
        queue: row.try_get("queue").map_err(map)?,
        paused: row.try_get("paused").map_err(map)?,
        source: source.parse().map_err(StoreError::Database)?,
        last_fire_at: row.try_get("last_fire_at").map_err(map)?,
        due_at: row.try_get("due_at").map_err(map)?,
        last_job_id: row.try_get("last_job_id").map_err(map)?,
        last_job_status: status.map(rows::status).transpose()?,
        created_at: row.try_get("created_at").map_err(map)?,
        updated_at: row.try_get("updated_at").map_err(map)?,
    })
}

async fn get_on(conn: &mut PgConnection, name: &str) -> StoreResult<Option<ScheduleRecord>> {
    let sql = format!("{SELECT} WHERE s.name = $1");
    let row = sqlx::query(&sql)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map)?;
    row.as_ref().map(record).transpose()
}

async fn must_get_on(conn: &mut PgConnection, name: &str) -> StoreResult<ScheduleRecord> {
    get_on(conn, name)
        .await?
        .ok_or_else(|| StoreError::ScheduleNotFound(name.to_string()))
}

/// PostgreSQL's steps of the shared fire and trigger (`errand_store::steps`), in one
/// transaction.
struct Firing {
    tx: Transaction<'static, Postgres>,
    now: Option<DateTime<Utc>>,
}

impl ScheduleTx for Firing {
    type Error = StoreError;

    async fn move_fire_times(&mut self, f: &ScheduleFire) -> StoreResult<bool> {
        let moved = sqlx::query(CAS)
            .bind(&f.name)
            .bind(f.expected_last_fire_at)
            .bind(f.expected_updated_at)
            .bind(f.last_fire_at)
            .bind(f.due_at)
            .execute(&mut *self.tx)
            .await
            .map_err(map)?;
        Ok(moved.rows_affected() == 1)
    }

    async fn lock_schedule(&mut self, name: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 FROM errand_schedules WHERE name = $1 FOR UPDATE")
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map)?;
        Ok(row.is_some())
    }

    async fn insert_jobs(&mut self, jobs: &[JobInsert]) -> StoreResult<Vec<Enqueued>> {
        crate::enqueue::insert_batch(&mut self.tx, jobs, self.now).await
    }

    async fn now(&mut self) -> StoreResult<DateTime<Utc>> {
        sqlx::query_scalar("SELECT coalesce($1::timestamptz, now())")
            .bind(self.now)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(map)
    }

    async fn record_fires(&mut self, name: &str, fires: &[FireRow<'_>]) -> StoreResult<()> {
        let at: Vec<_> = fires.iter().map(|f| f.fire_at).collect();
        let outcome: Vec<&str> = fires.iter().map(|f| f.outcome.as_str()).collect();
        let reason: Vec<Option<&str>> = fires.iter().map(|f| f.reason).collect();
        let job: Vec<Option<i64>> = fires.iter().map(|f| f.job_id).collect();
        sqlx::query(RECORD)
            .bind(name)
            .bind(self.now)
            .bind(at)
            .bind(outcome)
            .bind(reason)
            .bind(job)
            .execute(&mut *self.tx)
            .await
            .map_err(map)?;
        sqlx::query(TRIM)
            .bind(name)
            .bind(i64::from(FIRE_HISTORY_KEPT - 1))
            .execute(&mut *self.tx)
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn set_last_job(&mut self, name: &str, job: i64) -> StoreResult<()> {
        sqlx::query(SET_LAST_JOB)
            .bind(name)
            .bind(job)
            .execute(&mut *self.tx)
            .await
            .map_err(map)?;
        Ok(())
    }
}

impl PgStore {
    pub(crate) async fn schedule_create_impl(
        &self,
        s: &ScheduleWrite,
    ) -> StoreResult<ScheduleRecord> {
        self.schedule_write(CREATE, s, || {
            StoreError::Conflict(format!("schedule `{}` already exists", s.name))
        })
        .await
    }

    pub(crate) async fn schedule_update_impl(
        &self,
        s: &ScheduleWrite,
    ) -> StoreResult<ScheduleRecord> {
        self.schedule_write(UPDATE, s, || StoreError::ScheduleNotFound(s.name.clone()))
            .await
    }

    /// Runs `CREATE` or `UPDATE` (the same parameters) and reads the row back in the same
    /// transaction; `none` is the error when the statement wrote no row.
    async fn schedule_write(
        &self,
        sql: &'static str,
        s: &ScheduleWrite,
        none: impl FnOnce() -> StoreError,
    ) -> StoreResult<ScheduleRecord> {
        let mut conn = self.pool.acquire().await.map_err(map)?;
        let mut tx = conn.begin().await.map_err(map)?;
        let n = sqlx::query(sql)
            .bind(&s.name)
            .bind(&s.spec)
            .bind(&s.kind)
            .bind(&s.queue)
            .bind(s.paused)
            .bind(s.source.as_str())
            .bind(self.now())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        if n.rows_affected() == 0 {
            return Err(none());
        }
        let out = must_get_on(&mut tx, &s.name).await?;
        tx.commit().await.map_err(map)?;
        Ok(out)
    }

    pub(crate) async fn schedule_delete_impl(&self, name: &str) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM errand_schedules WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(n.rows_affected() == 1)
    }

    pub(crate) async fn schedule_get_impl(
        &self,
        name: &str,
    ) -> StoreResult<Option<ScheduleRecord>> {
        let mut conn = self.pool.acquire().await.map_err(map)?;
        get_on(&mut conn, name).await
    }

    pub(crate) async fn schedule_list_impl(&self) -> StoreResult<Vec<ScheduleRecord>> {
        let sql = format!("{SELECT} ORDER BY s.name");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await.map_err(map)?;
        rows.iter().map(record).collect()
    }

    pub(crate) async fn schedule_set_paused_impl(
        &self,
        name: &str,
        paused: bool,
    ) -> StoreResult<ScheduleRecord> {
        let mut conn = self.pool.acquire().await.map_err(map)?;
        let mut tx = conn.begin().await.map_err(map)?;
        sqlx::query(if paused { PAUSE } else { RESUME })
            .bind(name)
            .bind(self.now())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        let out = must_get_on(&mut tx, name).await?;
        tx.commit().await.map_err(map)?;
        Ok(out)
    }

    pub(crate) async fn schedule_list_due_impl(&self, limit: u32) -> StoreResult<DueSchedules> {
        let mut conn = self.pool.acquire().await.map_err(map)?;
        // One snapshot and one now for both statements.
        let mut tx = conn.begin().await.map_err(map)?;
        let head = sqlx::query(NEXT_DUE)
            .bind(self.now())
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
        let now = head.try_get("now").map_err(map)?;
        let sql = format!(
            "{SELECT} WHERE NOT s.paused AND s.due_at <= $1 ORDER BY s.due_at, s.name LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(DueSchedules {
            now,
            schedules: rows.iter().map(record).collect::<StoreResult<_>>()?,
            next_due_at: head.try_get("next_due_at").map_err(map)?,
        })
    }

    pub(crate) async fn schedule_fire_impl(&self, f: &ScheduleFire) -> StoreResult<FireOutcome> {
        let mut firing = self.firing().await?;
        let out = steps::schedule_fire(&mut firing, f).await?;
        if let FireOutcome::Fired { .. } = out {
            firing.tx.commit().await.map_err(map)?;
        }
        Ok(out)
    }

    pub(crate) async fn schedule_trigger_impl(
        &self,
        name: &str,
        job: &JobInsert,
    ) -> StoreResult<Enqueued> {
        let mut firing = self.firing().await?;
        let out = steps::schedule_trigger(&mut firing, name, job).await?;
        firing.tx.commit().await.map_err(map)?;
        Ok(out)
    }

    async fn firing(&self) -> StoreResult<Firing> {
        Ok(Firing {
            tx: self.pool.begin().await.map_err(map)?,
            now: self.now(),
        })
    }

    pub(crate) async fn schedule_fire_list_impl(
        &self,
        l: &ScheduleFireList,
    ) -> StoreResult<Vec<FireRecord>> {
        // `$3`: the skipped fires, or the runs (enqueued and triggered).
        let sql = "SELECT f.id, f.schedule, f.fire_at, f.recorded_at, f.outcome, f.reason, \
                   f.job_id, j.status, j.started_at, j.finished_at \
                   FROM errand_schedule_fires f LEFT JOIN errand_jobs j ON j.id = f.job_id \
                   WHERE f.schedule = $1 AND (f.outcome = 'skipped') = $3 \
                   ORDER BY f.id DESC LIMIT $2";
        let rows = sqlx::query(sql)
            .bind(&l.name)
            .bind(i64::from(l.limit))
            .bind(l.skipped)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter()
            .map(|row| {
                let outcome: &str = row.try_get("outcome").map_err(map)?;
                let status: Option<&str> = row.try_get("status").map_err(map)?;
                Ok(FireRecord {
                    id: row.try_get("id").map_err(map)?,
                    schedule: row.try_get("schedule").map_err(map)?,
                    fire_at: row.try_get("fire_at").map_err(map)?,
                    recorded_at: row.try_get("recorded_at").map_err(map)?,
                    outcome: outcome.parse().map_err(StoreError::Database)?,
                    reason: row.try_get("reason").map_err(map)?,
                    job_id: row.try_get("job_id").map_err(map)?,
                    job_status: status.map(rows::status).transpose()?,
                    job_started_at: row.try_get("started_at").map_err(map)?,
                    job_finished_at: row.try_get("finished_at").map_err(map)?,
                })
            })
            .collect()
    }
}
