//! Inserting jobs: one statement for the whole batch, unique keys resolved to the live job.
//!
//! A batch takes one of three statements ([`Path`]):
//!
//! - **one job without a unique key** ([`INSERT_ONE`]): a one-row insert;
//! - **jobs without unique keys** ([`INSERT_PLAIN`]): `INSERT ... SELECT` over the batch's
//!   arrays in input order, `RETURNING id`. Nothing can conflict, so there is no
//!   `ON CONFLICT`, no materialised input and no join back to it: the ids come from the
//!   column's identity sequence as the rows are inserted in input order (`ORDER BY ord`,
//!   which costs no sort: the planner knows `WITH ORDINALITY` yields rows in `ord` order),
//!   so the returned ids, sorted, are the inputs' ids in input order. That rests on how
//!   PostgreSQL executes an `INSERT ... SELECT ... ORDER BY` (rows inserted in the
//!   sub-select's order, each row's identity default taken as it is inserted, a sequence
//!   increasing within one session), which its documentation does not promise: the shared
//!   cases that give every job different fields and read each back by its id are what would
//!   catch a change;
//! - **a batch holding any unique key** ([`INSERT_KEYED`]): ids assigned up front (`nextval`
//!   over the input in input order), `ON CONFLICT ... DO NOTHING` against the partial unique
//!   index on live keys, and per input the new id, or the id of the live job holding its key
//!   (found in the statement's snapshot, or among the rows the same statement inserted for
//!   an earlier input with the same key). Only when a key conflicted with a job committed
//!   after the statement began (a concurrent enqueue) is a second statement needed to find
//!   it; and if that job finished in between, those inputs are inserted again.
//!
//! The batch statements take each column once as a scalar when every job of the batch has
//! the same value (queue, kind, priority, attempts, timeout, run time: a bulk enqueue of one
//! task), else as an array ([`Columns`]); `args` is always an array. The SQL reads
//! `coalesce(scalar, element)`: `unnest` pads the empty arrays of the uniform columns with
//! NULL. Every statement also notifies the wake-up channel once per queue that got a job
//! ready now (see `notify`); on the caller's transaction the hint is delivered when it
//! commits.
//!
//! The keyed statement's cost stays linear in the batch (docs/benchmarks.md): the sequence is
//! looked up once, not per row; keys inserted twice in the batch are found through one
//! aggregate over the inserted rows (`dup`), not a scan of them per input; and the inputs
//! that were not inserted (`missing`, one anti-join) are the only ones joined further, so
//! the live-job lookup runs only for an input whose key was taken by no earlier input of the
//! batch and was not inserted, not once per input. (A
//! per-input scan of the inserted rows made a 1,000-job insert quadratic and, through its
//! estimated cost, JIT-compiled: ~100 ms instead of ~20 ms.)

use crate::error::map;
use crate::sql::micros;
use chrono::{DateTime, Utc};
use errand_core::{JobId, JobInsert, RunAt};
use errand_store::{Enqueued, StoreError, StoreResult};
use serde_json::value::RawValue;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, Row};

/// How many times inputs whose conflicting job vanished are retried before giving up.
const MAX_ROUNDS: usize = 8;

/// The batch's rows as both batch statements read them (see [`Columns::bind`] for the
/// parameters): `ord` (input order), `args`, and each column as `coalesce(scalar, element)`.
macro_rules! batch_rows {
    () => {
        "SELECT t.ord, t.args,
                coalesce($2::text, t.queue) AS queue,
                coalesce($4::text, t.kind) AS kind,
                coalesce($6::int, t.priority) AS priority,
                coalesce($8::timestamptz, t.run_at) AS run_at,
                coalesce($10::bigint, t.delay_us) AS delay_us,
                coalesce($12::int, t.max_attempts) AS max_attempts,
                coalesce($14::text, t.reference_type) AS reference_type,
                coalesce($16::text, t.reference_id) AS reference_id,
                coalesce($18::bigint, t.timeout_ms) AS timeout_ms,
                t.unique_key,
                coalesce($22::text, t.concurrency_key) AS concurrency_key,
                coalesce($24::int, t.key_concurrency) AS key_concurrency
         FROM unnest($1::jsonb[], $3::text[], $5::text[], $7::int[], $9::timestamptz[],
                     $11::bigint[], $13::int[], $15::text[], $17::text[], $19::bigint[],
                     $21::text[], $23::text[], $25::int[])
              WITH ORDINALITY AS t(args, queue, kind, priority, run_at, delay_us, max_attempts,
                                   reference_type, reference_id, timeout_ms, unique_key,
                                   concurrency_key, key_concurrency, ord)"
    };
}

/// "Now" of the batch statements: the injected clock (`$20`) or the database's.
macro_rules! batch_now {
    () => {
        "coalesce($20::timestamptz, now())"
    };
}

/// Jobs without unique keys: a plain insert in input order, and one wake-up hint per queue
/// that got a job ready now (`notified`).
const INSERT_PLAIN: &str = concat!(
    "WITH ins AS (
        INSERT INTO errand_jobs (queue, kind, args, status, priority, run_at, attempt,
                                 max_attempts, reference_type, reference_id, timeout_ms,
                                 concurrency_key, key_concurrency, created_at, updated_at)
        SELECT queue, kind, args, 'queued', priority,
               coalesce(run_at, ",
    batch_now!(),
    " + coalesce(delay_us, 0) * interval '1 microsecond'),
               0, max_attempts, reference_type, reference_id, timeout_ms,
               concurrency_key, key_concurrency, ",
    batch_now!(),
    ", ",
    batch_now!(),
    "
        FROM (",
    batch_rows!(),
    ") s
        ORDER BY ord
        RETURNING id, queue, run_at
    ), ",
    crate::notify::notify_cte!("ins WHERE run_at <= coalesce($20::timestamptz, now())"),
    "
    SELECT id FROM ins CROSS JOIN notified"
);

/// A batch with unique keys: the insert, the keys resolved, and one wake-up hint per queue
/// that got a job ready now (`notified`).
const INSERT_KEYED: &str = concat!(
    "WITH input AS MATERIALIZED (
        SELECT nextval((SELECT pg_get_serial_sequence('errand_jobs', 'id')::regclass)) AS id, s.*
        FROM (",
    batch_rows!(),
    "
            ORDER BY t.ord
        ) s
    ), ins AS (
        INSERT INTO errand_jobs (id, queue, kind, args, status, priority, run_at, attempt,
                                 max_attempts, unique_key, reference_type, reference_id,
                                 timeout_ms, concurrency_key, key_concurrency,
                                 created_at, updated_at)
        SELECT id, queue, kind, args, 'queued', priority,
               coalesce(run_at, ",
    batch_now!(),
    " + coalesce(delay_us, 0) * interval '1 microsecond'),
               0, max_attempts, unique_key, reference_type, reference_id, timeout_ms,
               concurrency_key, key_concurrency, ",
    batch_now!(),
    ", ",
    batch_now!(),
    "
        FROM input
        ORDER BY ord
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND status IN ('queued', 'running')
        DO NOTHING
        RETURNING id, unique_key, queue, run_at
    ), ",
    crate::notify::notify_cte!("ins WHERE run_at <= coalesce($20::timestamptz, now())"),
    ", dup AS (
        SELECT unique_key, min(id) AS id FROM ins
        WHERE unique_key IS NOT NULL
        GROUP BY unique_key
    ), missing AS (
        SELECT i.ord, i.unique_key FROM input i
        WHERE NOT EXISTS (SELECT FROM ins WHERE ins.id = i.id)
    ), found AS (
        SELECT m.ord, coalesce(dup.id, live.id) AS id
        FROM missing m
        LEFT JOIN dup ON dup.unique_key = m.unique_key
        LEFT JOIN LATERAL (
            SELECT j.id FROM errand_jobs j
            WHERE dup.id IS NULL
              AND j.unique_key = m.unique_key AND j.status IN ('queued', 'running')
            LIMIT 1
        ) live ON true
    )
    SELECT i.ord,
           CASE WHEN f.ord IS NULL THEN i.id ELSE f.id END AS id,
           f.ord IS NULL AS inserted
    FROM input i
    CROSS JOIN notified
    LEFT JOIN found f ON f.ord = i.ord
    ORDER BY i.ord"
);

/// One job without a unique key, the common single enqueue: nothing to resolve, so a plain
/// insert whose plan is cached, not the batch statement (planned afresh on each call, its
/// custom plan being cheaper than a generic one: 2.1-2.4 ms a call against 0.6-0.8 ms).
const INSERT_ONE: &str = concat!(
    "WITH ins AS (
        INSERT INTO errand_jobs (queue, kind, args, status, priority, run_at, attempt,
                                 max_attempts, reference_type, reference_id, timeout_ms,
                                 concurrency_key, key_concurrency, created_at, updated_at)
        VALUES ($1, $2, $3, 'queued', $4,
                coalesce($5::timestamptz, coalesce($11::timestamptz, now())
                         + coalesce($6::bigint, 0) * interval '1 microsecond'),
                0, $7, $8, $9, $10, $12, $13,
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
        if Path::of(jobs) != Path::Keyed {
            // Nothing can conflict: one statement, atomic on its own, one round trip.
            return insert_batch(&mut conn, jobs, self.now()).await;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map)?;
        let out = insert_batch(&mut tx, jobs, self.now()).await?;
        tx.commit().await.map_err(map)?;
        Ok(out)
    }
}

/// Which statement writes a batch (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// One job without a unique key: [`INSERT_ONE`].
    One,
    /// Several jobs, none with a unique key: [`INSERT_PLAIN`].
    Plain,
    /// Any job with a unique key: [`INSERT_KEYED`], in rounds.
    Keyed,
}

impl Path {
    fn of(jobs: &[JobInsert]) -> Path {
        if jobs.iter().any(|j| j.unique_key.is_some()) {
            Path::Keyed
        } else if jobs.len() == 1 {
            Path::One
        } else {
            Path::Plain
        }
    }
}

/// The shared insert: `now = None` means the database clock.
pub(crate) async fn insert_batch(
    conn: &mut PgConnection,
    jobs: &[JobInsert],
    now: Option<DateTime<Utc>>,
) -> StoreResult<Vec<Enqueued>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    match Path::of(jobs) {
        Path::One => Ok(vec![insert_one(conn, &jobs[0], now).await?]),
        Path::Plain => insert_plain(conn, jobs, now).await,
        Path::Keyed => insert_keyed(conn, jobs, now).await,
    }
}

/// Inserts a batch holding unique keys: [`INSERT_KEYED`], then, for the inputs whose key a
/// job committed meanwhile holds, a look with a fresh snapshot, and again for those whose
/// job finished in between.
async fn insert_keyed(
    conn: &mut PgConnection,
    jobs: &[JobInsert],
    now: Option<DateTime<Utc>>,
) -> StoreResult<Vec<Enqueued>> {
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

/// One column of a batch as the batch statements take it: `(Some(v), [])` when every job has
/// the value `v`, else `(None, every job's value)`.
fn column<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> (Option<T>, Vec<T>) {
    let values: Vec<T> = values.collect();
    match values.first() {
        Some(&first) if values.iter().all(|v| *v == first) => (Some(first), Vec::new()),
        _ => (None, values),
    }
}

/// A nullable column: as [`column`], a uniform NULL being `(None, [])`.
fn nullable<T: PartialEq + Copy>(
    values: impl Iterator<Item = Option<T>>,
) -> (Option<T>, Vec<Option<T>>) {
    let (scalar, values) = column(values);
    (scalar.flatten(), values)
}

/// The parameters of [`INSERT_PLAIN`] and [`INSERT_KEYED`] for some jobs of a batch:
/// `$1` args; then scalar and array of queue (`$2`, `$3`), kind, priority, run_at, delay_us,
/// max_attempts, reference_type, reference_id, timeout_ms (`$18`, `$19`); `$20` now (bound
/// by the caller of [`Columns::bind`]); `$21` unique keys (empty on the plain path); scalar
/// and array of concurrency_key (`$22`, `$23`) and key_concurrency (`$24`, `$25`).
struct Columns<'a> {
    args: Vec<Json<&'a RawValue>>,
    queue: (Option<&'a str>, Vec<&'a str>),
    kind: (Option<&'a str>, Vec<&'a str>),
    priority: (Option<i32>, Vec<i32>),
    run_at: (Option<DateTime<Utc>>, Vec<Option<DateTime<Utc>>>),
    delay_us: (Option<i64>, Vec<Option<i64>>),
    max_attempts: (Option<i32>, Vec<i32>),
    reference_type: (Option<&'a str>, Vec<Option<&'a str>>),
    reference_id: (Option<&'a str>, Vec<Option<&'a str>>),
    timeout_ms: (Option<i64>, Vec<Option<i64>>),
    unique_key: Vec<Option<&'a str>>,
    concurrency_key: (Option<&'a str>, Vec<Option<&'a str>>),
    key_concurrency: (Option<i32>, Vec<Option<i32>>),
}

impl<'a> Columns<'a> {
    /// The columns of `jobs`, with the unique keys if `keyed`.
    fn of<I>(jobs: I, keyed: bool) -> Columns<'a>
    where
        I: Iterator<Item = &'a JobInsert> + Clone,
    {
        let when = jobs.clone().map(|j| run_at_parts(j.run_at));
        Columns {
            args: jobs.clone().map(|j| Json(j.args.as_raw())).collect(),
            queue: column(jobs.clone().map(|j| j.queue.as_str())),
            kind: column(jobs.clone().map(|j| j.kind.as_str())),
            priority: column(jobs.clone().map(|j| j.priority)),
            run_at: nullable(when.clone().map(|(at, _)| at)),
            delay_us: nullable(when.map(|(_, delay)| delay)),
            max_attempts: column(jobs.clone().map(|j| j.max_attempts)),
            reference_type: nullable(jobs.clone().map(|j| j.reference_type.as_deref())),
            reference_id: nullable(jobs.clone().map(|j| j.reference_id.as_deref())),
            timeout_ms: nullable(jobs.clone().map(|j| j.timeout_ms)),
            unique_key: if keyed {
                jobs.clone().map(|j| j.unique_key.as_deref()).collect()
            } else {
                Vec::new()
            },
            concurrency_key: nullable(jobs.clone().map(|j| j.concurrency_key.as_deref())),
            key_concurrency: nullable(jobs.clone().map(|j| j.key_concurrency)),
        }
    }

    /// `statement` with every parameter bound.
    fn bind(
        self,
        statement: &'static str,
        now: Option<DateTime<Utc>>,
    ) -> Query<'a, Postgres, PgArguments> {
        sqlx::query(statement)
            .bind(self.args)
            .bind(self.queue.0)
            .bind(self.queue.1)
            .bind(self.kind.0)
            .bind(self.kind.1)
            .bind(self.priority.0)
            .bind(self.priority.1)
            .bind(self.run_at.0)
            .bind(self.run_at.1)
            .bind(self.delay_us.0)
            .bind(self.delay_us.1)
            .bind(self.max_attempts.0)
            .bind(self.max_attempts.1)
            .bind(self.reference_type.0)
            .bind(self.reference_type.1)
            .bind(self.reference_id.0)
            .bind(self.reference_id.1)
            .bind(self.timeout_ms.0)
            .bind(self.timeout_ms.1)
            .bind(now)
            .bind(self.unique_key)
            .bind(self.concurrency_key.0)
            .bind(self.concurrency_key.1)
            .bind(self.key_concurrency.0)
            .bind(self.key_concurrency.1)
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
        .bind(job.concurrency_key.as_deref())
        .bind(job.key_concurrency)
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
    Ok(Enqueued {
        id: row.try_get("id").map_err(map)?,
        inserted: true,
    })
}

/// Inserts jobs without unique keys ([`INSERT_PLAIN`]). The rows are inserted in input order
/// and take their ids from the identity sequence as they are, so the ids increase in input
/// order: sorted, they are the inputs' ids, whatever order `RETURNING` gives them in.
async fn insert_plain(
    conn: &mut PgConnection,
    jobs: &[JobInsert],
    now: Option<DateTime<Utc>>,
) -> StoreResult<Vec<Enqueued>> {
    let rows = Columns::of(jobs.iter(), false)
        .bind(INSERT_PLAIN, now)
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?;
    if rows.len() != jobs.len() {
        return Err(StoreError::Database(format!(
            "enqueue returned {} rows for {} jobs",
            rows.len(),
            jobs.len()
        )));
    }
    let mut ids = rows
        .iter()
        .map(|r| r.try_get::<JobId, _>(0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(map)?;
    ids.sort_unstable();
    Ok(ids
        .into_iter()
        .map(|id| Enqueued { id, inserted: true })
        .collect())
}

/// Runs [`INSERT_KEYED`] for `jobs[todo]`, fills `out`, and returns the indexes whose live
/// job was not visible to the statement.
async fn insert_round(
    conn: &mut PgConnection,
    jobs: &[JobInsert],
    todo: &[usize],
    now: Option<DateTime<Utc>>,
    out: &mut [Option<Enqueued>],
) -> StoreResult<Vec<usize>> {
    let n = todo.len();
    let rows = Columns::of(todo.iter().map(|&i| &jobs[i]), true)
        .bind(INSERT_KEYED, now)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: &str) -> JobInsert {
        errand_core::NewJob::new(kind, serde_json::json!({}))
            .validate(&Default::default())
            .unwrap()
    }

    #[test]
    fn a_batch_takes_the_keyed_path_if_any_job_has_a_unique_key() {
        let mut keyed = job("a");
        keyed.unique_key = Some("k".into());
        assert_eq!(Path::of(&[job("a")]), Path::One);
        assert_eq!(Path::of(&[job("a"), job("b")]), Path::Plain);
        assert_eq!(Path::of(&[keyed.clone()]), Path::Keyed);
        assert_eq!(Path::of(&[job("a"), keyed.clone(), job("b")]), Path::Keyed);
        assert_eq!(Path::of(&[job("a"), job("b"), keyed]), Path::Keyed);
    }

    #[test]
    fn uniform_columns_are_scalars_and_varying_ones_arrays() {
        assert_eq!(column([3, 3, 3].into_iter()), (Some(3), vec![]));
        assert_eq!(column([3, 4, 3].into_iter()), (None, vec![3, 4, 3]));
        assert_eq!(column([7].into_iter()), (Some(7), vec![]));
        assert_eq!(column(std::iter::empty::<i32>()), (None, vec![]));
        assert_eq!(nullable([None::<i32>, None].into_iter()), (None, vec![]));
        assert_eq!(nullable([Some(1), Some(1)].into_iter()), (Some(1), vec![]));
        assert_eq!(
            nullable([Some(1), None].into_iter()),
            (None, vec![Some(1), None])
        );
        assert_eq!(
            nullable([None, Some(1)].into_iter()),
            (None, vec![None, Some(1)])
        );
    }

    #[test]
    fn the_batch_statements_read_every_parameter() {
        // Every parameter `Columns::bind` binds is read by both statements, and no other.
        for statement in [INSERT_PLAIN, INSERT_KEYED] {
            for n in 1..=25 {
                assert!(
                    statement.contains(&format!("${n}::")),
                    "${n} is not read by {statement}"
                );
            }
            assert!(!statement.contains("$26"));
        }
    }
}
