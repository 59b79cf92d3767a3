//! Tests against a real PostgreSQL server (`ERRAND_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, the same server the behaviour suite uses). Each
//! test works in a fresh schema `errand_t_<hex>` and drops it at the end, even when it fails.
//! An unreachable server fails the tests: nothing is skipped.
//!
//! The cross-backend behaviour suite lives in `errand-store-tests`; these cover what is
//! specific to PostgreSQL: migrations, the query plans, in-transaction enqueue, the database's
//! clock, `LISTEN`/`NOTIFY` and the queue-count deltas.

use crate::{enqueue_in, PgOptions, PgStore};
use chrono::{DateTime, Utc};
use errand_core::{JobInsert, JobStatus, ManualClock, NewJob, RunAt};
use errand_store::*;
use serde_json::json;
use sqlx::{Connection, Executor, Row};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

pub(crate) fn url() -> String {
    std::env::var("ERRAND_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn random_schema() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("errand_t_{:016x}", h.finish())
}

/// Runs `body` with a store in a fresh schema (migrated if `migrate`), then drops the schema,
/// whatever happened.
pub(crate) async fn with_store<F, Fut>(clock: Option<ManualClock>, migrate: bool, body: F)
where
    F: FnOnce(PgStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let schema = random_schema();
    let options = PgOptions {
        clock: clock.map(|c| Arc::new(c) as Arc<dyn errand_core::Clock>),
        schema: Some(schema),
        max_connections: 8,
        ..Default::default()
    };
    let store = PgStore::connect(&url(), options)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required and unreachable at {}: {e}", url()));
    if migrate {
        store.migrate().await.expect("migrate");
    }
    let outcome = tokio::spawn(body(store.clone())).await;
    store.drop_schema().await.expect("drop schema");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn job(kind: &str) -> JobInsert {
    NewJob::new(kind, json!({"n": 1}))
        .validate(&Default::default())
        .unwrap()
}

fn claim(worker: &str, limit: u32) -> JobClaim {
    JobClaim {
        queue: "default".into(),
        worker_id: worker.into(),
        limit,
        lease: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn migrate_twice_is_a_no_op_at_the_latest_version() {
    with_store(None, false, |store| async move {
        let before = store.migration_status().await.unwrap();
        assert_eq!(before.current_version, 0);
        // Versions need not be contiguous (numbers are reserved per feature): compare with
        // the list this build knows rather than with a number each migration would edit.
        let known: Vec<(i64, String)> = crate::migrate::MIGRATIONS
            .iter()
            .map(|m| (m.version(), m.name().to_string()))
            .collect();
        let latest = known.last().unwrap().0;
        assert_eq!(
            &before.pending[..3],
            &[
                (1, "jobs".to_string()),
                (2, "workers".to_string()),
                (3, "claim_plan".to_string())
            ]
        );
        assert_eq!(before.pending, known);
        let first = store.migrate().await.unwrap();
        let second = store.migrate().await.unwrap();
        assert_eq!(first.current_version, latest);
        assert_eq!(first.latest_version, latest);
        assert_eq!(first.applied.len(), known.len());
        assert!(first.pending.is_empty());
        assert_eq!(first, second);
        assert_eq!(store.migration_status().await.unwrap(), second);
    })
    .await;
}

#[tokio::test]
async fn concurrent_migrations_apply_once() {
    with_store(None, false, |store| async move {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { s.migrate().await })
            })
            .collect();
        for h in handles {
            assert_eq!(
                h.await.unwrap().unwrap().current_version,
                crate::migrate::MIGRATIONS.last().unwrap().version()
            );
        }
        assert_eq!(
            store.migration_status().await.unwrap().applied.len(),
            crate::migrate::MIGRATIONS.len()
        );
    })
    .await;
}

#[tokio::test]
async fn unmigrated_and_newer_schemas_are_schema_errors() {
    with_store(None, false, |store| async move {
        let err = store.job_get(1).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Schema(m) if m.contains("errand migrate")),
            "{err:?}"
        );
        store.migrate().await.unwrap();
        sqlx::query("INSERT INTO errand_migrations VALUES (99, 'future', now())")
            .execute(store.pool())
            .await
            .unwrap();
        let err = store.migrate().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Schema(m) if m.contains("99")
                && m.contains(&format!("version {}", crate::migrate::MIGRATIONS.last().unwrap().version()))),
            "{err:?}"
        );
        assert!(matches!(
            store.migration_status().await,
            Err(StoreError::Schema(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn claim_query_uses_the_claim_index() {
    with_store(None, true, |store| async move {
        let mut conn = store.pool().acquire().await.unwrap();
        conn.execute("SET enable_seqscan = off").await.unwrap();
        let explain = format!("EXPLAIN {}", crate::worker_path::CLAIM);
        let rows = sqlx::query(&explain)
            .bind("default")
            .bind("w")
            .bind(10_i64)
            .bind(None::<DateTime<Utc>>)
            .bind(30_000_000_i64)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        conn.execute("RESET enable_seqscan").await.unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
        let plan = plan.join("\n");
        assert!(plan.contains("errand_jobs_claim"), "{plan}");
    })
    .await;
}

/// The acknowledgements reach their jobs through the primary key even in a generic plan
/// made with statistics taken while nothing ran (see the `worker_path` module's doc): here such
/// a plan walked `errand_jobs_lease` and joined every running row with every item.
#[tokio::test]
async fn acknowledgements_find_their_jobs_by_primary_key_whatever_the_statistics() {
    with_store(None, true, |store| async move {
        for _ in 0..3 {
            let batch: Vec<JobInsert> = (0..100).map(|_| job("k")).collect();
            store.job_insert_many(&batch).await.unwrap();
        }
        store.pool().execute("ANALYZE errand_jobs").await.unwrap();
        assert_eq!(store.job_claim(&claim("w", 300)).await.unwrap().len(), 300);
        let mut conn = store.pool().acquire().await.unwrap();
        conn.execute("SET plan_cache_mode = force_generic_plan")
            .await
            .unwrap();
        let now = None::<DateTime<Utc>>;
        let (ids, attempts, workers) = (vec![1_i64, 2], vec![1_i32, 1], vec!["w", "w"]);
        let explain = |sql: &str| format!("EXPLAIN {sql}");
        let plans = [
            sqlx::query(&explain(crate::worker_path::COMPLETE))
                .bind(&ids)
                .bind(&attempts)
                .bind(&workers)
                .bind(vec![None::<serde_json::Value>, None])
                .bind(now)
                .fetch_all(&mut *conn)
                .await
                .unwrap(),
            sqlx::query(&explain(crate::worker_path::HEARTBEAT))
                .bind(&ids)
                .bind(&attempts)
                .bind(&workers)
                .bind(30_000_000_i64)
                .bind(now)
                .fetch_all(&mut *conn)
                .await
                .unwrap(),
            sqlx::query(&explain(&crate::worker_path::FAIL))
                .bind(1_i64)
                .bind(1_i32)
                .bind("w")
                .bind(true)
                .bind(0_i64)
                .bind(now)
                .bind("boom")
                .fetch_all(&mut *conn)
                .await
                .unwrap(),
        ];
        conn.execute("RESET plan_cache_mode").await.unwrap();
        for rows in plans {
            let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
            let plan = plan.join("\n");
            assert!(plan.contains("errand_jobs_pkey"), "{plan}");
            assert!(!plan.contains("errand_jobs_lease"), "{plan}");
        }
    })
    .await;
}

#[tokio::test]
async fn enqueue_in_follows_the_callers_transaction() {
    with_store(None, true, |store| async move {
        let mut conn = store.pool().acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        let out = enqueue_in(&mut tx, &[job("a"), job("b")]).await.unwrap();
        assert!(out.iter().all(|e| e.inserted));
        let id = out[0].id;
        tx.rollback().await.unwrap();
        assert_eq!(store.job_get(id).await.unwrap(), None);

        let mut tx = conn.begin().await.unwrap();
        let out = enqueue_in(&mut tx, &[job("c")]).await.unwrap();
        tx.commit().await.unwrap();
        let got = store.job_get(out[0].id).await.unwrap().unwrap();
        assert_eq!(got.kind, "c");
        assert_eq!(got.status, JobStatus::Queued);
    })
    .await;
}

#[tokio::test]
async fn database_clock_is_used_without_an_injected_one() {
    with_store(None, true, |store| async move {
        let id = store.job_insert_many(&[job("a")]).await.unwrap()[0].id;
        let j = store.job_get(id).await.unwrap().unwrap();
        let db_now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!((db_now - j.created_at).num_seconds().abs() < 5);
        assert_eq!(j.run_at, j.created_at);
        let got = store.job_claim(&claim("w", 1)).await.unwrap();
        assert_eq!(got.len(), 1);
        let lease = got[0].lease_expires_at.unwrap() - got[0].started_at.unwrap();
        assert_eq!(lease, chrono::Duration::seconds(30));
    })
    .await;
}

// ---- wake-ups ---------------------------------------------------------------------------

/// The queue used to find out that the listener listens; its hints are skipped.
const WARM_UP: &str = "warm-up";

fn job_in(queue: &str) -> JobInsert {
    JobInsert {
        queue: queue.into(),
        ..job("wake")
    }
}

/// The next hint not from [`WARM_UP`], waiting at most `wait`.
pub(crate) async fn next_hint(
    rx: &mut broadcast::Receiver<JobsReady>,
    wait: Duration,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return None,
            Ok(Ok(hint)) if hint.queue == WARM_UP => continue,
            Ok(Ok(hint)) => return Some(hint.queue),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("the hint channel closed"),
        }
    }
}

/// Subscribes and returns once hints flow: `subscribe` starts the LISTEN task in the
/// background, and a NOTIFY sent before it listens is lost, so enqueue in [`WARM_UP`] until
/// a hint arrives (up to 5 tries of 2 s).
pub(crate) async fn subscribe_and_warm_up(store: &PgStore) -> broadcast::Receiver<JobsReady> {
    let mut rx = store.subscribe();
    for _ in 0..5 {
        store.job_insert_many(&[job_in(WARM_UP)]).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(got) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if got.is_ok_and(|h| h.queue == WARM_UP) {
                return rx;
            }
        }
    }
    panic!("no wake-up hint after 5 ready inserts");
}

/// The backend pid of the store's listener, if one is listening.
async fn listener_pid(store: &PgStore) -> Option<i32> {
    let listen = format!(
        "LISTEN \"{}\"",
        crate::notify::channel_for(store.schema().unwrap())
    );
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE application_name = 'errand-listener' AND query = $1",
    )
    .bind(listen)
    .fetch_optional(store.pool())
    .await
    .unwrap()
}

/// Waits up to `wait` until backend `pid` is gone; false if it is still there.
async fn backend_gone(store: &PgStore, pid: i32, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(pid)
                .fetch_one(store.pool())
                .await
                .unwrap();
        if !alive {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn enqueue_in_hints_only_when_the_callers_transaction_commits() {
    with_store(None, true, |store| async move {
        let mut rx = subscribe_and_warm_up(&store).await;
        let mut conn = store.pool().acquire().await.unwrap();

        let mut tx = conn.begin().await.unwrap();
        enqueue_in(&mut tx, &[job_in("in-tx")]).await.unwrap();
        assert_eq!(
            next_hint(&mut rx, Duration::from_millis(500)).await,
            None,
            "no hint before commit"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            next_hint(&mut rx, Duration::from_secs(5)).await.as_deref(),
            Some("in-tx")
        );

        let mut tx = conn.begin().await.unwrap();
        enqueue_in(&mut tx, &[job_in("rolled-back")]).await.unwrap();
        tx.rollback().await.unwrap();
        // Notifications arrive in commit order: a hint of the rollback would come first.
        store.job_insert_many(&[job_in("sentinel")]).await.unwrap();
        assert_eq!(
            next_hint(&mut rx, Duration::from_secs(5)).await.as_deref(),
            Some("sentinel")
        );
        assert_eq!(next_hint(&mut rx, Duration::from_millis(300)).await, None);
    })
    .await;
}

/// The channel is the cross-process contract: other processes LISTEN on
/// `errand_ready_<schema>` and get one notification per queue with ready jobs, payload the
/// queue name.
#[tokio::test]
async fn hints_go_to_the_schema_channel_once_per_queue() {
    with_store(None, true, |store| async move {
        let channel = format!("errand_ready_{}", store.schema().unwrap());
        let mut raw = sqlx::postgres::PgListener::connect(&url()).await.unwrap();
        raw.listen(&channel).await.unwrap();
        let mut delayed = job_in("b");
        delayed.run_at = RunAt::After(Duration::from_secs(3600));
        let batch = [job_in("a"), job_in("a"), delayed, job_in("c"), job_in("a")];
        store.job_insert_many(&batch).await.unwrap();
        store.job_insert_many(&[job_in("end")]).await.unwrap();
        let mut got = Vec::new();
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), raw.recv())
                .await
                .expect("a notification within 5 s")
                .unwrap();
            assert_eq!(n.channel(), channel);
            if n.payload() == "end" {
                break;
            }
            got.push(n.payload().to_owned());
        }
        got.sort();
        assert_eq!(got, vec!["a", "c"]);
    })
    .await;
}

#[tokio::test]
async fn listener_reconnects_and_says_anything_may_be_ready() {
    with_store(None, true, |store| async move {
        let mut rx = subscribe_and_warm_up(&store).await;
        let pid = listener_pid(&store).await.expect("a listening backend");
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(
            next_hint(&mut rx, Duration::from_secs(10)).await.as_deref(),
            Some(crate::notify::ANY_QUEUE),
            "after a reconnect the listener tells workers to claim"
        );
        let again = listener_pid(&store).await.expect("listening again");
        assert_ne!(again, pid);
        store.job_insert_many(&[job_in("after")]).await.unwrap();
        assert_eq!(
            next_hint(&mut rx, Duration::from_secs(5)).await.as_deref(),
            Some("after")
        );
    })
    .await;
}

#[tokio::test]
async fn listener_stops_without_subscribers_and_on_stop() {
    with_store(None, true, |store| async move {
        // Nobody left: noticed at the next idle check (every 5 s); the connection closes.
        let rx = subscribe_and_warm_up(&store).await;
        let pid = listener_pid(&store).await.expect("a listening backend");
        drop(rx);
        assert!(
            backend_gone(&store, pid, Duration::from_secs(8)).await,
            "the listener kept its connection without subscribers"
        );

        // A new subscriber starts a new listener; drop_schema's stop closes it at once.
        let _rx = subscribe_and_warm_up(&store).await;
        let pid = listener_pid(&store).await.expect("listening again");
        store.wake.stop().await;
        assert!(backend_gone(&store, pid, Duration::from_secs(2)).await);
        assert_eq!(listener_pid(&store).await, None);
    })
    .await;
}

#[tokio::test]
async fn dropping_the_store_stops_its_listener() {
    with_store(None, true, |store| async move {
        let other = PgStore::connect(
            &url(),
            PgOptions {
                schema: store.schema().map(str::to_owned),
                max_connections: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let mut rx = subscribe_and_warm_up(&other).await;
        let pid = listener_pid(&other).await.expect("a listening backend");
        drop(other);
        assert!(backend_gone(&store, pid, Duration::from_secs(5)).await);
        // Its subscribers learn that no more hints will come.
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match rx.recv().await {
                    Err(broadcast::error::RecvError::Closed) => break,
                    _ => continue,
                }
            }
        })
        .await;
        assert!(end.is_ok(), "the channel closes once the listener stopped");
    })
    .await;
}

#[test]
fn channel_names_fit_an_identifier() {
    assert_eq!(
        crate::notify::channel_for("tenant_a"),
        "errand_ready_tenant_a"
    );
    let long = "s".repeat(63);
    let channel = crate::notify::channel_for(&long);
    assert_eq!(channel.len(), 63);
    assert!(channel.starts_with("errand_ready_sss"));
}

#[test]
fn schema_names_are_validated() {
    assert!(crate::validate_schema("errand_t_0af3").is_ok());
    assert!(crate::validate_schema("_x").is_ok());
    for bad in ["", "1abc", "Abc", "a-b", "a;drop", "a b"] {
        assert!(crate::validate_schema(bad).is_err(), "{bad}");
    }
}

/// The queue counters' deltas (migration 7) are folded by the rescuer's periodic scan too, so
/// they do not pile up where nobody reads queue statistics; the counts stay right.
#[tokio::test]
async fn queue_count_deltas_are_folded_by_the_stuck_scan() {
    with_store(None, true, |store| async move {
        let deltas = |store: PgStore| async move {
            sqlx::query("SELECT count(*) FROM errand_queue_count_deltas")
                .fetch_one(store.pool())
                .await
                .unwrap()
                .get::<i64, _>(0)
        };
        for _ in 0..3 {
            store.job_insert_many(&[job("a"), job("b")]).await.unwrap();
        }
        store.job_claim(&claim("w", 2)).await.unwrap();
        assert!(
            deltas(store.clone()).await >= 4,
            "each statement left a delta"
        );
        store.job_list_stuck(10).await.unwrap();
        assert_eq!(deltas(store.clone()).await, 0, "folded");
        let stats = store.queue_stats().await.unwrap();
        let s = stats.iter().find(|s| s.queue == "default").unwrap();
        assert_eq!((s.queued, s.running), (4, 2));
    })
    .await;
}
