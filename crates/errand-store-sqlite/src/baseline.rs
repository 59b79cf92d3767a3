//! Benchmark baseline, not used by Errand: compiled only with the `bench` feature, which
//! errand-bench turns on.
//!
//! The worker benchmarks (`cargo run --release -p errand-bench -- worker`) compare Errand's
//! worker pool with the smallest job loop one could write by hand on the same file, and
//! need a few bulk operations on Errand's own tables that the [`errand_store::Store`] trait
//! does not offer. Both live here because SQL (and the driver) belong only to the store
//! crates.
//!
//! - [`setup`] / [`drain`]: a bare jobs table (`errand_bench_bare`: id, status, run_at,
//!   payload, and one partial index for the claim) and concurrent loops that each claim
//!   `batch` rows with one `UPDATE ... RETURNING` in an IMMEDIATE transaction and mark them
//!   done with one more statement. SQLite has one writer per file, so the loops share one
//!   connection (as the store's operations share its writer) and take turns on it. No
//!   attempts, leases, fences, priorities, queues, pause check, events or wake-ups.
//! - [`Shape::Floor`]: the same loop on a table that also keeps what any durable job table
//!   needs for crash recovery and retention: a lease time (set at the claim, cleared at the
//!   end) with a partial index over running rows, and a finish time with a partial index. No
//!   job table with a rescuer and a purge can do less per job, so the ratio of W1 to this
//!   loop says how much of the gap to the bare loop is Errand's own.
//! - [`seed_finished`] and [`settle`]: a large history of succeeded jobs in `errand_jobs`,
//!   inserted in one transaction, then the WAL checkpointed.
//! - [`seed_mixed`]: a deployment's worth of jobs in every state, queue and kind, for the
//!   dashboard benchmark (`cargo run --release -p errand-bench -- dashboard`).
//! - [`commit_latency`]: the disk's share of a commit, for reading the latency figures.
//!
//! Each function opens connections of its own on the store's file, with the store's
//! `synchronous` setting.

use crate::error::map_sql;
use crate::{open_connection, run_blocking, SqliteStore};
use errand_store::{StoreError, StoreResult};
use rusqlite::{params, Connection, TransactionBehavior};
use std::sync::{Arc, Mutex};

/// Which table the baseline loop drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// id, status, run_at, payload; one partial index for the claim.
    Bare,
    /// [`Shape::Bare`] plus a lease time and a finish time, each with a partial index, set
    /// by the claim and the completion as a job table's are.
    Floor,
}

impl Shape {
    fn statements(self) -> (&'static [&'static str], &'static str, &'static str) {
        match self {
            Shape::Bare => (&[BARE_TABLE, BARE_INDEX], BARE_CLAIM, BARE_DONE),
            Shape::Floor => (
                &[
                    FLOOR_TABLE,
                    BARE_INDEX,
                    FLOOR_LEASE_INDEX,
                    FLOOR_FINISHED_INDEX,
                ],
                FLOOR_CLAIM,
                FLOOR_DONE,
            ),
        }
    }
}

const BARE_TABLE: &str = "CREATE TABLE errand_bench_bare (
        id      INTEGER PRIMARY KEY,
        status  TEXT NOT NULL,
        run_at  INTEGER NOT NULL,
        payload TEXT
    )";

const FLOOR_TABLE: &str = "CREATE TABLE errand_bench_bare (
        id       INTEGER PRIMARY KEY,
        status   TEXT NOT NULL,
        run_at   INTEGER NOT NULL,
        payload  TEXT,
        lease    INTEGER,
        finished INTEGER
    )";

const FLOOR_LEASE_INDEX: &str =
    "CREATE INDEX errand_bench_bare_lease ON errand_bench_bare (lease) WHERE status = 'running'";

const FLOOR_FINISHED_INDEX: &str = "CREATE INDEX errand_bench_bare_finished \
    ON errand_bench_bare (finished) WHERE finished IS NOT NULL";

/// `?1` now, `?2` batch.
const FLOOR_CLAIM: &str = "UPDATE errand_bench_bare SET status = 'running', lease = ?1 + 30000000
    WHERE id IN (SELECT id FROM errand_bench_bare
                 WHERE status = 'queued' AND run_at <= ?1
                 ORDER BY run_at, id
                 LIMIT ?2)
    RETURNING id, payload";

/// `?1` a JSON array of ids, `?2` now.
const FLOOR_DONE: &str = "UPDATE errand_bench_bare SET status = 'done', lease = NULL, finished = ?2
    WHERE id IN (SELECT value FROM json_each(?1))";

const BARE_INDEX: &str =
    "CREATE INDEX errand_bench_bare_claim ON errand_bench_bare (run_at, id) WHERE status = 'queued'";

/// `?1` rows, `?2` now (microseconds).
const BARE_FILL: &str = "INSERT INTO errand_bench_bare (status, run_at, payload)
    WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?1)
    SELECT 'queued', ?2, '{\"n\":1}' FROM g";

/// `?1` now, `?2` batch.
const BARE_CLAIM: &str = "UPDATE errand_bench_bare SET status = 'running'
    WHERE id IN (SELECT id FROM errand_bench_bare
                 WHERE status = 'queued' AND run_at <= ?1
                 ORDER BY run_at, id
                 LIMIT ?2)
    RETURNING id, payload";

/// `?1` a JSON array of ids.
const BARE_DONE: &str =
    "UPDATE errand_bench_bare SET status = 'done' WHERE id IN (SELECT value FROM json_each(?1))";

/// `?1` rows, `?2` now (microseconds): finished over the last `?1` seconds.
const SEED_FINISHED: &str = "INSERT INTO errand_jobs (queue, kind, args, status, priority, run_at,
        attempt, max_attempts, worker_id, created_at, started_at, finished_at, updated_at)
    WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?1)
    SELECT 'default', 'bench_noop', '{\"n\":1}', 'succeeded', 0, t, 1, 4, 'bench-seed',
           t, t, t, t
    FROM (SELECT ?2 - (?1 - i + 1) * 1000000 AS t FROM g)";

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn connect(store: &SqliteStore) -> StoreResult<Connection> {
    open_connection(store.path(), store.synchronous(), false).map_err(map_sql)
}

/// Creates `errand_bench_bare` of `shape` in the store's file and fills it with `n` ready rows.
pub async fn setup(store: &SqliteStore, n: u64, shape: Shape) -> StoreResult<()> {
    let conn = connect(store)?;
    run_blocking(move || {
        let mut conn = conn;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_sql)?;
        for sql in shape.statements().0 {
            tx.execute(sql, []).map_err(map_sql)?;
        }
        tx.execute(
            BARE_FILL,
            params![i64::try_from(n).unwrap_or(i64::MAX), now_micros()],
        )
        .map_err(map_sql)?;
        tx.commit().map_err(map_sql)
    })
    .await
}

/// Drains `errand_bench_bare` with `concurrency` loops (threads) sharing one connection:
/// each claims up to `batch` rows in an IMMEDIATE transaction and marks them done with one
/// more statement, until a claim finds nothing. Returns how many rows were drained.
pub async fn drain(
    store: &SqliteStore,
    concurrency: usize,
    batch: u32,
    shape: Shape,
) -> StoreResult<u64> {
    let conn = Arc::new(Mutex::new(connect(store)?));
    run_blocking(move || {
        std::thread::scope(|scope| {
            let loops: Vec<_> = (0..concurrency.max(1))
                .map(|_| {
                    let conn = conn.clone();
                    scope.spawn(move || drain_loop(&conn, batch, shape))
                })
                .collect();
            let mut total = 0;
            for l in loops {
                total += l
                    .join()
                    .map_err(|_| StoreError::Database("baseline loop panicked".into()))??;
            }
            Ok(total)
        })
    })
    .await
}

fn drain_loop(conn: &Mutex<Connection>, batch: u32, shape: Shape) -> StoreResult<u64> {
    let lock = || conn.lock().unwrap_or_else(|p| p.into_inner());
    let (_, claim, done_sql) = shape.statements();
    let mut done = 0_u64;
    loop {
        let ids: Vec<i64> = {
            let mut c = lock();
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map_sql)?;
            let ids = {
                let mut stmt = tx.prepare_cached(claim).map_err(map_sql)?;
                let rows = stmt
                    .query_map(params![now_micros(), batch], |r| {
                        let _payload: Option<String> = r.get(1)?;
                        r.get(0)
                    })
                    .map_err(map_sql)?;
                rows.collect::<rusqlite::Result<Vec<i64>>>()
                    .map_err(map_sql)?
            };
            tx.commit().map_err(map_sql)?;
            ids
        };
        if ids.is_empty() {
            return Ok(done);
        }
        let list = serde_json::to_string(&ids)
            .map_err(|e| StoreError::Database(format!("encoding ids: {e}")))?;
        lock()
            .prepare_cached(done_sql)
            .and_then(|mut s| match shape {
                Shape::Bare => s.execute(params![list]),
                Shape::Floor => s.execute(params![list, now_micros()]),
            })
            .map_err(map_sql)?;
        done += ids.len() as u64;
    }
}

/// Times `n` durable commits of one row each into a bare one-column table, `gap` apart, on a
/// connection of its own with the store's `synchronous` setting: what the disk alone adds to
/// any commit (an enqueue, a claim) while the benchmark runs. Returns each commit's time.
pub async fn commit_latency(
    store: &SqliteStore,
    n: usize,
    gap: std::time::Duration,
) -> StoreResult<Vec<std::time::Duration>> {
    let conn = connect(store)?;
    run_blocking(move || {
        conn.execute(
            "CREATE TABLE errand_bench_probe (id INTEGER PRIMARY KEY, v TEXT)",
            [],
        )
        .map_err(map_sql)?;
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            std::thread::sleep(gap);
            let t = std::time::Instant::now();
            conn.execute("INSERT INTO errand_bench_probe (v) VALUES ('x')", [])
                .map_err(map_sql)?;
            times.push(t.elapsed());
        }
        conn.execute("DROP TABLE errand_bench_probe", [])
            .map_err(map_sql)?;
        Ok(times)
    })
    .await
}

/// Inserts `n` succeeded jobs (queue `default`, kind `bench_noop`, finished over the last
/// `n` seconds) into `errand_jobs` in one transaction: the history of a long-running
/// deployment. Call [`settle`] afterwards.
pub async fn seed_finished(store: &SqliteStore, n: u64) -> StoreResult<()> {
    if n == 0 {
        return Ok(());
    }
    let conn = connect(store)?;
    run_blocking(move || {
        let mut conn = conn;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_sql)?;
        tx.execute(
            SEED_FINISHED,
            params![i64::try_from(n).unwrap_or(i64::MAX), now_micros()],
        )
        .map_err(map_sql)?;
        tx.commit().map_err(map_sql)
    })
    .await
}

/// `?1` rows, `?2` now, `?3` spacing of creation times (all microseconds). The mix, by
/// `i % 100`: 0-2 failed (4 attempts, an error text), 3 cancelled, 4-5 queued and ready, 6
/// queued for an hour from now (scheduled), 7 running (every tenth of them with an expired
/// lease: stuck), the rest succeeded; over four queues and five kinds, every tenth job with a
/// reference `order:<i>`, runs of 0-2 s, finished over the last `?1 * ?3` microseconds.
const SEED_MIXED: &str = "INSERT INTO errand_jobs (queue, kind, args, status, priority, run_at,
        attempt, max_attempts, reference_type, reference_id, last_error, worker_id,
        lease_expires_at, created_at, started_at, finished_at, updated_at)
    WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?1),
    s AS (SELECT i, ?2 - (?1 - i) * ?3 AS t, (i % 50) * 40000 AS d,
            CASE WHEN i % 100 < 3 THEN 'failed' WHEN i % 100 = 3 THEN 'cancelled'
                 WHEN i % 100 < 7 THEN 'queued' WHEN i % 100 = 7 THEN 'running'
                 ELSE 'succeeded' END AS st
          FROM g)
    SELECT CASE (i / 7) % 4 WHEN 0 THEN 'default' WHEN 1 THEN 'email' WHEN 2 THEN 'reports'
                ELSE 'webhooks' END,
           CASE (i / 3) % 5 WHEN 0 THEN 'send_email' WHEN 1 THEN 'render_report'
                WHEN 2 THEN 'deliver_webhook' WHEN 3 THEN 'resize_image' ELSE 'sync_account' END,
           '{\"n\":' || i || ',\"api_token\":\"not-shown\"}', st, 0,
           CASE WHEN i % 100 = 6 THEN ?2 + 3600000000 ELSE t END,
           CASE st WHEN 'failed' THEN 4 WHEN 'queued' THEN 0 WHEN 'cancelled' THEN 0 ELSE 1 END, 4,
           CASE WHEN i % 10 = 0 THEN 'order' END, CASE WHEN i % 10 = 0 THEN CAST(i AS TEXT) END,
           CASE WHEN st = 'failed' THEN 'exit status 1' || char(10) || 'stderr: connect: connection refused' END,
           CASE WHEN st IN ('running', 'succeeded', 'failed') THEN 'bench-seed' END,
           CASE WHEN st = 'running' THEN
                CASE WHEN i % 1000 = 7 THEN ?2 - 60000000 ELSE ?2 + 30000000 END END,
           t - d - 1000000,
           CASE WHEN st = 'running' THEN ?2 - 5000000
                WHEN st IN ('succeeded', 'failed') THEN t - d END,
           CASE WHEN st IN ('succeeded', 'failed', 'cancelled') THEN t END,
           t
    FROM s";

/// One `error` event per failed job (the seed's last attempt).
const SEED_MIXED_EVENTS: &str =
    "INSERT INTO errand_events (job_id, at, kind, attempt, worker_id, message, data)
    SELECT id, finished_at, 'error', attempt, worker_id, last_error, '{\"next\":\"failed\"}'
    FROM errand_jobs WHERE status = 'failed'";

/// Inserts `n` jobs in every state (see `SEED_MIXED` for the mix) spread over the last
/// `span`, and an `error` event per failed job, in one transaction. Call [`settle`] afterwards.
pub async fn seed_mixed(store: &SqliteStore, n: u64, span: std::time::Duration) -> StoreResult<()> {
    if n == 0 {
        return Ok(());
    }
    let conn = connect(store)?;
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let step = (i64::try_from(span.as_micros()).unwrap_or(i64::MAX) / n).max(1);
    run_blocking(move || {
        let mut conn = conn;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_sql)?;
        tx.execute(SEED_MIXED, params![n, now_micros(), step])
            .map_err(map_sql)?;
        tx.execute(SEED_MIXED_EVENTS, []).map_err(map_sql)?;
        tx.execute("ANALYZE", []).map_err(map_sql)?;
        tx.commit().map_err(map_sql)
    })
    .await
}

/// Checkpoints the WAL into the database file and truncates it, as the automatic
/// checkpoint would have after the seed's one large transaction. SQLite has no statistics
/// to refresh for the claim (its plan is pinned with `INDEXED BY`).
pub async fn settle(store: &SqliteStore) -> StoreResult<()> {
    let conn = connect(store)?;
    run_blocking(move || {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(map_sql)
    })
    .await
}
