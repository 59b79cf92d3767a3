//! Inserting jobs: one statement for the whole batch, unique keys resolved to the live job.
//!
//! The statement assigns ids up front (`nextval` over the input in input order), inserts with
//! `ON CONFLICT ... DO NOTHING` against the partial unique index on live keys, and reports
//! per input the new id, or the id of the live job holding its key (found in the statement's
//! snapshot, or among the rows the same statement inserted for an earlier input with the same
//! key). Only when a key conflicted with a job committed after the statement began (a
//! concurrent enqueue) is a second statement needed to find it; and if that job finished in
//! between, those inputs are inserted again.
//!
//! The statement also notifies the wake-up channel once per queue that got a job ready now
//! (see `notify`); on the caller's transaction the hint is delivered when it commits.
//!
//! Its cost stays linear in the batch (docs/benchmarks.md): the sequence is looked up once,
//! not per row; keys inserted twice in the batch are found through one aggregate over the
//! inserted rows (`dup`), not a scan of them per input; and the live-job lookup runs only
//! for inputs that were not inserted. (A per-input scan of the inserted rows made a
//! 1,000-job insert quadratic and, through its estimated cost, JIT-compiled: ~100 ms instead
//! of ~20 ms.)

use crate::error::map;
use crate::sql::micros;
use chrono::{DateTime, Utc};
use errand_core::{JobId, JobInsert, RunAt};
use errand_store::{Enqueued, StoreError, StoreResult};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};

/// How many times inputs whose conflicting job vanished are retried before giving up.
const MAX_ROUNDS: usize = 8;

/// The insert, and one wake-up hint per queue that got a job ready now (`notified`).
const INSERT: &str = concat!(
    "WITH input AS MATERIALIZED (
        SELECT nextval((SELECT pg_get_serial_sequence('errand_jobs', 'id')::regclass)) AS id, s.*
        FROM (
            SELECT *
            FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::int[], $5::timestamptz[],
                        $6::bigint[], $7::int[], $8::text[], $9::text[], $10::text[],
                        $11::bigint[])
                 WITH ORDINALITY AS t(queue, kind, args, priority, run_at, delay_us,
                                      max_attempts, unique_key, reference_type, reference_id,
                                      timeout_ms, ord)
            ORDER BY ord
        ) s
    ), ins AS (
        INSERT INTO errand_jobs (id, queue, kind, args, status, priority, run_at, attempt,
                                 max_attempts, unique_key, reference_type, reference_id,
                                 timeout_ms, created_at, updated_at)
        SELECT id, queue, kind, args, 'queued', priority,
               coalesce(run_at, coalesce($12::timestamptz, now())
                                + coalesce(delay_us, 0) * interval '1 microsecond'),
               0, max_attempts, unique_key, reference_type, reference_id, timeout_ms,
               coalesce($12::timestamptz, now()), coalesce($12::timestamptz, now())
        FROM input
        ORDER BY ord
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND status IN ('queued', 'running')
        DO NOTHING
        RETURNING id, unique_key, queue, run_at
    ), ",
    crate::notify::notify_cte!("ins WHERE run_at <= coalesce($12::timestamptz, now())"),
    ", dup AS (
        SELECT unique_key, min(id) AS id FROM ins
        WHERE unique_key IS NOT NULL
        GROUP BY unique_key
    )
    SELECT i.ord,
           coalesce(ins.id, dup.id, live.id) AS id,
           ins.id IS NOT NULL AS inserted
    FROM input i
    CROSS JOIN notified
    LEFT JOIN ins ON ins.id = i.id
    LEFT JOIN dup ON ins.id IS NULL AND dup.unique_key = i.unique_key
    LEFT JOIN LATERAL (
        SELECT j.id FROM errand_jobs j
        WHERE ins.id IS NULL
          AND j.unique_key = i.unique_key AND j.status IN ('queued', 'running')
        LIMIT 1
    ) live ON true
    ORDER BY i.ord"
);

/// One job without a unique key, the common single enqueue: nothing to resolve, so a plain
/// insert whose plan is cached, not the batch statement (planned afresh on each call, its
/// custom plan being cheaper than a generic one: 2.1-2.4 ms a call against 0.6-0.8 ms).
const INSERT_ONE: &str = concat!(
    "WITH ins AS (
        INSERT INTO errand_jobs (queue, kind, args, status, priority, run_at, attempt,
                                 max_attempts, reference_type, reference_id, timeout_ms,
                                 created_at, updated_at)
        VALUES ($1, $2, $3, 'queued', $4,
                coalesce($5::timestamptz, coalesce($11::timestamptz, now())
                         + coalesce($6::bigint, 0) * interval '1 microsecond'),
                0, $7, $8, $9, $10,
                coalesce($11::timestamptz, now()), coalesce($11::timestamptz, now()))
        RETURNING id, queue, run_at
    ), ",
    crate::notify::notify_cte!("ins WHERE run_at <= coalesce($11::timestamptz, now())"),
    "
    SELECT id FROM ins CROSS JOIN notified"
);

const LOOKUP: &str = "SELECT unique_key, id FROM errand_jobs \
     WHERE unique_key = ANY($1::text[]) AND status IN ('queued', 'running')";

/// Inserts validated jobs on the caller's connection, inside whatever transaction the caller
/// has open: the jobs exist only if that transaction commits. Same semantics as
/// [`errand_store::Store::job_insert_many`] (one [`Enqueued`] per input, in input order; a
/// live job with the same `unique_key` is returned instead of inserting), and "now" is the
/// database's clock (the transaction's start time).
///
/// The connection's `search_path` must reach the Errand tables (a store's
/// [`crate::PgOptions::schema`] is not applied to connections the caller brings). Jobs that
/// are ready now send a wake-up hint on the channel of that schema (`errand_ready_` followed
/// by `current_schema()`), delivered to listening workers when the transaction commits and
/// never if it rolls back.
///
/// ```no_run
/// # async fn demo(
/// #     store: &errand_store_postgres::PgStore,
/// #     job: errand_core::JobInsert,
/// # ) -> Result<(), Box<dyn std::error::Error>> {
/// let mut tx = store.pool().begin().await?;
/// sqlx::query("UPDATE uploads SET state = 'received' WHERE id = $1")
///     .bind(42_i64)
///     .execute(&mut *tx)
///     .await?;
/// let enqueued = errand_store_postgres::enqueue_in(&mut tx, &[job]).await?;
/// tx.commit().await?; // the job and the upload's state become visible together
/// # Ok(())
/// # }
/// ```
pub async fn enqueue_in(conn: &mut PgConnection, jobs: &[JobInsert]) -> StoreResult<Vec<Enqueued>> {
    insert_batch(conn, jobs, None).await
}

impl crate::PgStore {
    /// [`errand_store::Store::job_insert_many`] on the store's pool.
    pub(crate) async fn insert_many(&self, jobs: &[JobInsert]) -> StoreResult<Vec<Enqueued>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await.map_err(map)?;
        if jobs.iter().all(|j| j.unique_key.is_none()) {
            // Nothing can conflict: one statement, atomic on its own, one round trip.
            return insert_batch(&mut conn, jobs, self.now()).await;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map)?;
        let out = insert_batch(&mut tx, jobs, self.now()).await?;
        tx.commit().await.map_err(map)?;
        Ok(out)
    }
}

/// The shared insert: `now = None` means the database clock.
pub(crate) async fn insert_batch(
    conn: &mut PgConnection,
    jobs: &[JobInsert],
    now: Option<DateTime<Utc>>,
) -> StoreResult<Vec<Enqueued>> {
    if let [job] = jobs {
        if job.unique_key.is_none() {
            return Ok(vec![insert_one(conn, job, now).await?]);
        }
    }
    let mut out: Vec<Option<Enqueued>> = vec![None; jobs.len()];
    // Indexes (into `jobs`) still to insert.
    let mut todo: Vec<usize> = (0..jobs.len()).collect();
    for _round in 0..MAX_ROUNDS {
        if todo.is_empty() {
            break;
        }
        let unresolved = insert_round(conn, jobs, &todo, now, &mut out).await?;
        if unresolved.is_empty() {
            break;
        }
        // Their keys conflicted with jobs committed after the statement began: look again
        // with a fresh snapshot.
        let keys: Vec<String> = unresolved
            .iter()
            .map(|&i| {
                jobs[i].unique_key.clone().ok_or_else(|| {
                    StoreError::Database("a job without a unique key was not inserted".into())
                })
            })
            .collect::<StoreResult<_>>()?;
        let rows = sqlx::query(LOOKUP)
            .bind(&keys)
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?;
        let mut live: std::collections::HashMap<String, JobId> = std::collections::HashMap::new();
        for r in &rows {
            live.insert(
                r.try_get("unique_key").map_err(map)?,
                r.try_get("id").map_err(map)?,
            );
        }
        todo = Vec::new();
        for (&i, key) in unresolved.iter().zip(&keys) {
            match live.get(key) {
                Some(&id) => {
                    out[i] = Some(Enqueued {
                        id,
                        inserted: false,
                    })
                }
                // Finished in between: its key is free again.
                None => todo.push(i),
            }
        }
    }
    out.into_iter()
        .map(|e| {
            e.ok_or_else(|| {
                StoreError::Database(format!(
                    "could not enqueue: unique keys kept changing hands for {MAX_ROUNDS} rounds"
                ))
            })
        })
        .collect()
}

/// `when`'s two forms as the statements take them: an instant, or a delay from now.
fn run_at_parts(when: RunAt) -> (Option<DateTime<Utc>>, Option<i64>) {
    match when {
        RunAt::Now => (None, None),
        RunAt::At(t) => (Some(t), None),
        RunAt::After(d) => (None, Some(micros(d))),
    }
}

/// Inserts one job that has no unique key ([`INSERT_ONE`]).
async fn insert_one(
    conn: &mut PgConnection,
    job: &JobInsert,
    now: Option<DateTime<Utc>>,
) -> StoreResult<Enqueued> {
    let (run_at, delay_us) = run_at_parts(job.run_at);
    let row = sqlx::query(INSERT_ONE)
        .bind(&job.queue)
        .bind(&job.kind)
        .bind(Json(job.args.as_raw()))
        .bind(job.priority)
        .bind(run_at)
        .bind(delay_us)
        .bind(job.max_attempts)
        .bind(job.reference_type.as_deref())
        .bind(job.reference_id.as_deref())
        .bind(job.timeout_ms)
        .bind(now)
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
    Ok(Enqueued {
        id: row.try_get("id").map_err(map)?,
        inserted: true,
    })
}

/// Runs the insert statement for `jobs[todo]`, fills `out`, and returns the indexes whose
/// live job was not visible to the statement.
async fn insert_round(
    conn: &mut PgConnection,
    jobs: &[JobInsert],
    todo: &[usize],
    now: Option<DateTime<Utc>>,
    out: &mut [Option<Enqueued>],
) -> StoreResult<Vec<usize>> {
    let n = todo.len();
    let mut queue = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut args = Vec::with_capacity(n);
    let mut priority = Vec::with_capacity(n);
    let mut run_at: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut delay_us: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut unique_key = Vec::with_capacity(n);
    let mut reference_type = Vec::with_capacity(n);
    let mut reference_id = Vec::with_capacity(n);
    let mut timeout_ms = Vec::with_capacity(n);
    for &i in todo {
        let j = &jobs[i];
        queue.push(j.queue.as_str());
        kind.push(j.kind.as_str());
        args.push(Json(j.args.as_raw()));
        priority.push(j.priority);
        let (at, delay) = run_at_parts(j.run_at);
        run_at.push(at);
        delay_us.push(delay);
        max_attempts.push(j.max_attempts);
        unique_key.push(j.unique_key.as_deref());
        reference_type.push(j.reference_type.as_deref());
        reference_id.push(j.reference_id.as_deref());
        timeout_ms.push(j.timeout_ms);
    }
    let rows = sqlx::query(INSERT)
        .bind(queue)
        .bind(kind)
        .bind(args)
        .bind(priority)
        .bind(run_at)
        .bind(delay_us)
        .bind(max_attempts)
        .bind(unique_key)
        .bind(reference_type)
        .bind(reference_id)
        .bind(timeout_ms)
        .bind(now)
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?;
    if rows.len() != n {
        return Err(StoreError::Database(format!(
            "enqueue returned {} rows for {n} jobs",
            rows.len()
        )));
    }
    let mut unresolved = Vec::new();
    for r in &rows {
        let ord: i64 = r.try_get("ord").map_err(map)?;
        let i = usize::try_from(ord - 1)
            .ok()
            .and_then(|k| todo.get(k).copied())
            .ok_or_else(|| StoreError::Database(format!("enqueue returned ordinality {ord}")))?;
        let id: Option<JobId> = r.try_get("id").map_err(map)?;
        let inserted: bool = r.try_get("inserted").map_err(map)?;
        match id {
            Some(id) => out[i] = Some(Enqueued { id, inserted }),
            None => unresolved.push(i),
        }
    }
    Ok(unresolved)
}
