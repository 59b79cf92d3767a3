//! Benchmark baseline, not used by Errand: compiled only with the `bench` feature, which
//! errand-bench turns on.
//!
//! The worker benchmarks (`cargo run --release -p errand-bench -- worker`) compare Errand's
//! worker pool with the smallest job loop one could write by hand on the same server, and
//! need a few bulk operations on Errand's own tables that the [`errand_store::Store`] trait
//! does not offer. Both live here because SQL (and the driver) belong only to the store
//! crates.
//!
//! - [`setup`] / [`drain`]: a bare jobs table (`errand_bench_bare`: id, status, run_at,
//!   payload, and one partial index for the claim) and concurrent loops that each claim
//!   `batch` rows with `FOR UPDATE SKIP LOCKED` and mark them done in one statement. No
//!   attempts, leases, fences, priorities, queues, pause check, events or wake-ups.
//! - [`setup_narrow`], [`insert_unnest`], [`insert_copy`], [`insert_one`]: the least an
//!   enqueue could write, on a narrow jobs table (`errand_bench_narrow`: id, queue, kind,
//!   args, status, run_at, and the claim's partial index): a batch as one
//!   `INSERT ... SELECT FROM unnest(...)` or one `COPY`, a single job as a one-row `INSERT`.
//! - [`hold_snapshot`]: a second session idle in a `REPEATABLE READ` transaction, which holds
//!   back vacuum (and the pruning of dead index entries) for as long as it lives.
//! - [`seed_finished`] and [`settle`]: a large history of succeeded jobs in `errand_jobs`,
//!   inserted in one statement, then vacuumed and analysed as autovacuum would have done.
//! - [`seed_mixed`]: a deployment's worth of jobs in every state, queue and kind, for the
//!   dashboard benchmark (`cargo run --release -p errand-bench -- dashboard`).
//! - [`commit_latency`]: the disk's share of a commit, for reading the latency figures.
//! - [`explain_claim`]: the plan and buffer counts of Errand's claim statement right now.
//!
//! Everything runs in the store's schema ([`crate::PgOptions::schema`]); none of it is
//! migrated or used by the store.

use crate::error::map;
use crate::PgStore;
use errand_store::StoreResult;
use sqlx::{Connection, Executor, Row};

const BARE_TABLE: &str = "CREATE TABLE errand_bench_bare (
        id      bigserial PRIMARY KEY,
        status  text NOT NULL,
        run_at  timestamptz NOT NULL,
        payload jsonb
    )";

const BARE_INDEX: &str =
    "CREATE INDEX errand_bench_bare_claim ON errand_bench_bare (run_at, id) WHERE status = 'queued'";

const BARE_FILL: &str = "INSERT INTO errand_bench_bare (status, run_at, payload)
    SELECT 'queued', now(), '{\"n\": 1}'::jsonb FROM generate_series(1, $1::bigint)";

const BARE_CLAIM: &str = "UPDATE errand_bench_bare SET status = 'running'
    WHERE id IN (SELECT id FROM errand_bench_bare
                 WHERE status = 'queued' AND run_at <= now()
                 ORDER BY run_at, id
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED)
    RETURNING id, payload";

const BARE_DONE: &str = "UPDATE errand_bench_bare SET status = 'done' WHERE id = ANY($1::bigint[])";

const NARROW_TABLE: &str = "CREATE TABLE errand_bench_narrow (
        id      bigserial PRIMARY KEY,
        queue   text NOT NULL,
        kind    text NOT NULL,
        args    jsonb NOT NULL,
        status  text NOT NULL DEFAULT 'queued',
        run_at  timestamptz NOT NULL DEFAULT now()
    )";

const NARROW_INDEX: &str = "CREATE INDEX errand_bench_narrow_claim
    ON errand_bench_narrow (queue, run_at, id) WHERE status = 'queued'";

const NARROW_UNNEST: &str = "INSERT INTO errand_bench_narrow (queue, kind, args)
    SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])
    RETURNING id";

const NARROW_COPY: &str = "COPY errand_bench_narrow (queue, kind, args) FROM STDIN";

const NARROW_ONE: &str =
    "INSERT INTO errand_bench_narrow (queue, kind, args) VALUES ($1, $2, $3) RETURNING id";

/// `n` finished jobs of the last `n` seconds in queue `default`, kind `bench_noop`.
const SEED_FINISHED: &str = "INSERT INTO errand_jobs (queue, kind, args, status, priority, run_at,
        attempt, max_attempts, worker_id, created_at, started_at, finished_at, updated_at)
    SELECT 'default', 'bench_noop', '{\"n\": 1}'::jsonb, 'succeeded', 0, t, 1, 4, 'bench-seed',
           t, t, t, t
    FROM (SELECT now() - g * interval '1 second' AS t
          FROM generate_series($1::bigint, 1, -1) AS g) s";

/// Creates `errand_bench_bare` in the store's schema and fills it with `n` ready rows.
pub async fn setup(store: &PgStore, n: u64) -> StoreResult<()> {
    let pool = store.pool();
    pool.execute(BARE_TABLE).await.map_err(map)?;
    pool.execute(BARE_INDEX).await.map_err(map)?;
    sqlx::query(BARE_FILL)
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .execute(pool)
        .await
        .map_err(map)?;
    Ok(())
}

/// Drains `errand_bench_bare` with `concurrency` loops, each claiming up to `batch` rows per
/// statement (`FOR UPDATE SKIP LOCKED`) and marking them done with one more statement, until
/// a claim finds nothing. Returns how many rows were drained. The store's pool should hold
/// at least `concurrency` connections, else the loops wait for each other's connections.
pub async fn drain(store: &PgStore, concurrency: usize, batch: u32) -> StoreResult<u64> {
    let mut loops = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let pool = store.pool().clone();
        loops.push(tokio::spawn(async move {
            let mut done = 0_u64;
            loop {
                let rows = sqlx::query(BARE_CLAIM)
                    .bind(i64::from(batch))
                    .fetch_all(&pool)
                    .await
                    .map_err(map)?;
                if rows.is_empty() {
                    return Ok::<u64, errand_store::StoreError>(done);
                }
                let ids = rows
                    .iter()
                    .map(|r| r.try_get::<i64, _>("id"))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(map)?;
                sqlx::query(BARE_DONE)
                    .bind(&ids)
                    .execute(&pool)
                    .await
                    .map_err(map)?;
                done += ids.len() as u64;
            }
        }));
    }
    let mut total = 0;
    for l in loops {
        total += l.await.map_err(|e| {
            errand_store::StoreError::Database(format!("baseline loop panicked: {e}"))
        })??;
    }
    Ok(total)
}

/// Creates `errand_bench_narrow` (empty) in the store's schema: the table the raw insert
/// baselines write to. It has what a claim needs to find a job (queue, run time, status) and
/// what a handler needs (kind, args), its primary key and the claim's partial index: an
/// insert writes the row and two index entries.
pub async fn setup_narrow(store: &PgStore) -> StoreResult<()> {
    let pool = store.pool();
    pool.execute(NARROW_TABLE).await.map_err(map)?;
    pool.execute(NARROW_INDEX).await.map_err(map)?;
    Ok(())
}

/// Inserts one batch into `errand_bench_narrow` with one `INSERT ... SELECT FROM unnest(...)`
/// (one array per column given) and returns the new ids, as an enqueue must.
pub async fn insert_unnest(
    store: &PgStore,
    queues: &[&str],
    kinds: &[&str],
    args: &[serde_json::Value],
) -> StoreResult<Vec<i64>> {
    let rows = sqlx::query(NARROW_UNNEST)
        .bind(queues)
        .bind(kinds)
        .bind(args)
        .fetch_all(store.pool())
        .await
        .map_err(map)?;
    rows.iter()
        .map(|r| r.try_get::<i64, _>(0).map_err(map))
        .collect()
}

/// Inserts one batch into `errand_bench_narrow` with one `COPY ... FROM STDIN` (text format)
/// and returns how many rows it wrote. COPY returns no ids: it is the ceiling for a bulk
/// load, not something an enqueue that reports ids could use as is.
pub async fn insert_copy(
    store: &PgStore,
    queues: &[&str],
    kinds: &[&str],
    args: &[serde_json::Value],
) -> StoreResult<u64> {
    use sqlx::postgres::PgPoolCopyExt;
    let mut data = String::with_capacity(args.len() * 48);
    for ((q, k), a) in queues.iter().zip(kinds).zip(args) {
        copy_text_field(&mut data, q);
        data.push('\t');
        copy_text_field(&mut data, k);
        data.push('\t');
        copy_text_field(&mut data, &a.to_string());
        data.push('\n');
    }
    let mut copy = store.pool().copy_in_raw(NARROW_COPY).await.map_err(map)?;
    if let Err(e) = copy.send(data.as_bytes()).await {
        let _ = copy.abort("send failed").await;
        return Err(map(e));
    }
    copy.finish().await.map_err(map)
}

/// Appends `v` as one field of COPY's text format (backslash, tab, newline and carriage
/// return escaped).
fn copy_text_field(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Inserts one job into `errand_bench_narrow` with a one-row `INSERT ... RETURNING id`, in a
/// transaction of its own (a durable commit, as an enqueue).
pub async fn insert_one(
    store: &PgStore,
    queue: &str,
    kind: &str,
    args: &serde_json::Value,
) -> StoreResult<i64> {
    sqlx::query_scalar(NARROW_ONE)
        .bind(queue)
        .bind(kind)
        .bind(args)
        .fetch_one(store.pool())
        .await
        .map_err(map)
}

/// A session of its own idle in `BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;`: its
/// snapshot keeps every row version deleted or updated after it was taken (and every index
/// entry pointing at one) from being removed, by vacuum or by a scan's own pruning, until
/// [`SnapshotHold::release`]. This is what a long report or an idle analytics session does
/// to a production database.
pub struct SnapshotHold {
    conn: Option<sqlx::PgConnection>,
    pid: i32,
}

/// Opens [`SnapshotHold`] on the store's database (a connection taken out of the store's
/// pool for good, so the pool never sees it in a transaction).
pub async fn hold_snapshot(store: &PgStore) -> StoreResult<SnapshotHold> {
    let mut conn = store.pool().acquire().await.map_err(map)?.detach();
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(map)?;
    conn.execute("SELECT 1").await.map_err(map)?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .map_err(map)?;
    Ok(SnapshotHold {
        conn: Some(conn),
        pid,
    })
}

impl SnapshotHold {
    /// Whether the session still holds its snapshot (`backend_xmin` set in
    /// `pg_stat_activity`, read from another of the store's connections): a check that the
    /// hold was real for the whole measurement.
    pub async fn holding(&self, store: &PgStore) -> StoreResult<bool> {
        let row: Option<bool> = sqlx::query_scalar(
            "SELECT backend_xmin IS NOT NULL AND state = 'idle in transaction'
             FROM pg_stat_activity WHERE pid = $1",
        )
        .bind(self.pid)
        .fetch_optional(store.pool())
        .await
        .map_err(map)?;
        Ok(row.unwrap_or(false))
    }

    /// Ends the transaction and closes the session.
    pub async fn release(mut self) -> StoreResult<()> {
        if let Some(mut conn) = self.conn.take() {
            conn.execute("ROLLBACK").await.map_err(map)?;
            conn.close().await.map_err(map)?;
        }
        Ok(())
    }
}

/// Times `n` durable commits of one row each into a bare one-column table, `gap` apart, on one
/// connection: what the server and its disk alone add to any commit (an enqueue, a claim)
/// while the benchmark runs. Returns each commit's time, round trip included.
pub async fn commit_latency(
    store: &PgStore,
    n: usize,
    gap: std::time::Duration,
) -> StoreResult<Vec<std::time::Duration>> {
    let mut conn = store.pool().acquire().await.map_err(map)?;
    conn.execute("CREATE TABLE errand_bench_probe (id bigserial PRIMARY KEY, v text)")
        .await
        .map_err(map)?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        tokio::time::sleep(gap).await;
        let t = std::time::Instant::now();
        sqlx::query("INSERT INTO errand_bench_probe (v) VALUES ('x')")
            .execute(&mut *conn)
            .await
            .map_err(map)?;
        times.push(t.elapsed());
    }
    conn.execute("DROP TABLE errand_bench_probe")
        .await
        .map_err(map)?;
    Ok(times)
}

/// Inserts `n` succeeded jobs (queue `default`, kind `bench_noop`, finished over the last
/// `n` seconds) into `errand_jobs` with one statement: the history of a long-running
/// deployment. Call [`settle`] afterwards.
pub async fn seed_finished(store: &PgStore, n: u64) -> StoreResult<()> {
    if n == 0 {
        return Ok(());
    }
    sqlx::query(SEED_FINISHED)
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .execute(store.pool())
        .await
        .map_err(map)?;
    Ok(())
}

/// `$1` rows, `$2` spacing of creation times in microseconds. The same mix as the SQLite
/// store's seed: by `i % 100`, 0-2 failed, 3 cancelled, 4-5 queued and ready, 6 scheduled an
/// hour ahead, 7 running (every tenth stuck), the rest succeeded; four queues, five kinds,
/// every tenth job with a reference `order:<i>`, runs of 0-2 s.
const SEED_MIXED: &str = "INSERT INTO errand_jobs (queue, kind, args, status, priority, run_at,
        attempt, max_attempts, reference_type, reference_id, last_error, worker_id,
        lease_expires_at, created_at, started_at, finished_at, updated_at)
    SELECT (ARRAY['default', 'email', 'reports', 'webhooks'])[((i / 7) % 4 + 1)::int],
           (ARRAY['send_email', 'render_report', 'deliver_webhook', 'resize_image',
                  'sync_account'])[((i / 3) % 5 + 1)::int],
           jsonb_build_object('n', i, 'api_token', 'not-shown'), st, 0,
           CASE WHEN i % 100 = 6 THEN now() + interval '1 hour' ELSE t END,
           CASE st WHEN 'failed' THEN 4 WHEN 'queued' THEN 0 WHEN 'cancelled' THEN 0 ELSE 1 END, 4,
           CASE WHEN i % 10 = 0 THEN 'order' END, CASE WHEN i % 10 = 0 THEN i::text END,
           CASE WHEN st = 'failed' THEN E'exit status 1\nstderr: connect: connection refused' END,
           CASE WHEN st IN ('running', 'succeeded', 'failed') THEN 'bench-seed' END,
           CASE WHEN st = 'running' THEN
                CASE WHEN i % 1000 = 7 THEN now() - interval '1 minute'
                     ELSE now() + interval '30 seconds' END END,
           t - d - interval '1 second',
           CASE WHEN st = 'running' THEN now() - interval '5 seconds'
                WHEN st IN ('succeeded', 'failed') THEN t - d END,
           CASE WHEN st IN ('succeeded', 'failed', 'cancelled') THEN t END,
           t
    FROM (SELECT i, now() - (($1 - i) * $2) * interval '1 microsecond' AS t,
                 (i % 50) * interval '40 milliseconds' AS d,
                 CASE WHEN i % 100 < 3 THEN 'failed' WHEN i % 100 = 3 THEN 'cancelled'
                      WHEN i % 100 < 7 THEN 'queued' WHEN i % 100 = 7 THEN 'running'
                      ELSE 'succeeded' END AS st
          FROM generate_series(1, $1::bigint) AS i) s";

const SEED_MIXED_EVENTS: &str =
    "INSERT INTO errand_events (job_id, at, kind, attempt, worker_id, message, data)
    SELECT id, finished_at, 'error', attempt, worker_id, last_error, '{\"next\": \"failed\"}'::jsonb
    FROM errand_jobs WHERE status = 'failed'";

/// Inserts `n` jobs in every state (see `SEED_MIXED`) spread over the last `span`, and an
/// `error` event per failed job. Call [`settle`] afterwards.
pub async fn seed_mixed(store: &PgStore, n: u64, span: std::time::Duration) -> StoreResult<()> {
    if n == 0 {
        return Ok(());
    }
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let step = (i64::try_from(span.as_micros()).unwrap_or(i64::MAX) / n).max(1);
    sqlx::query(SEED_MIXED)
        .bind(n)
        .bind(step)
        .execute(store.pool())
        .await
        .map_err(map)?;
    store.pool().execute(SEED_MIXED_EVENTS).await.map_err(map)?;
    Ok(())
}

/// `VACUUM ANALYZE` of Errand's tables: what autovacuum would have done by the time a
/// deployment had that much history (the visibility map set, statistics present).
pub async fn settle(store: &PgStore) -> StoreResult<()> {
    let pool = store.pool();
    pool.execute("VACUUM (ANALYZE) errand_jobs")
        .await
        .map_err(map)?;
    pool.execute("VACUUM (ANALYZE) errand_events")
        .await
        .map_err(map)?;
    Ok(())
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of Errand's claim of `limit` jobs from `queue`, run in a
/// transaction that is rolled back, so nothing is claimed. For diagnosing claim speed.
pub async fn explain_claim(store: &PgStore, queue: &str, limit: u32) -> StoreResult<String> {
    let mut conn = store.pool().acquire().await.map_err(map)?;
    let mut tx = conn.begin().await.map_err(map)?;
    let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", crate::worker_path::CLAIM);
    let rows = sqlx::query(&sql)
        .bind(queue)
        .bind("bench-explain")
        .bind(i64::from(limit))
        .bind(store.now())
        .bind(30_000_000_i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
    tx.rollback().await.map_err(map)?;
    let mut out = String::new();
    for r in &rows {
        out.push_str(&r.try_get::<String, _>(0).map_err(map)?);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::copy_text_field;

    #[test]
    fn copy_text_fields_escape_what_the_format_reserves() {
        let mut out = String::new();
        copy_text_field(&mut out, "{\"a\": \"x\\ty\\\\z\"}\tb\nc\rd");
        assert_eq!(out, "{\"a\": \"x\\\\ty\\\\\\\\z\"}\\tb\\nc\\rd");
    }
}
