//! The claim cursor against a real server: what it saves while vacuum is held back, and the
//! bound on how long a job ready behind it can be passed over (see `claim_cursor`).

use crate::claim_cursor::{Position, Start, HEAD_EVERY};
use crate::tests::{url, with_store};
use crate::worker_path::{CLAIM, CLAIM_AFTER};
use crate::{PgOptions, PgStore};
use chrono::{DateTime, Utc};
use errand_core::{JobId, JobInsert, NewJob, RunAt};
use errand_store::*;
use serde_json::json;
use sqlx::{Connection, Executor, Row};
use std::time::{Duration, Instant};

fn job() -> JobInsert {
    NewJob::new("k", json!({"n": 1}))
        .validate(&Default::default())
        .unwrap()
}

fn job_at(at: DateTime<Utc>) -> JobInsert {
    let mut j = job();
    j.run_at = RunAt::At(at);
    j
}

fn claim(limit: u32) -> JobClaim {
    JobClaim {
        queue: "default".into(),
        worker_id: "w".into(),
        limit,
        lease: Duration::from_secs(30),
    }
}

async fn insert(store: &PgStore, jobs: Vec<JobInsert>) -> Vec<JobId> {
    store
        .job_insert_many(&jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// A second store on the same schema: another worker process.
async fn other_process(store: &PgStore) -> PgStore {
    PgStore::connect(
        &url(),
        PgOptions {
            schema: store.schema.clone(),
            max_connections: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Shared buffers (hit or read) the claim statement's index scans touch, from `EXPLAIN (ANALYZE,
/// BUFFERS)` in a transaction that is rolled back, so nothing is claimed.
async fn claim_buffers(store: &PgStore, start: Start) -> i64 {
    let mut conn = store.pool().acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let sql = match start {
        Start::Head => CLAIM,
        Start::After(_) => CLAIM_AFTER,
    };
    let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}");
    let q = sqlx::query(&explain)
        .bind("default")
        .bind("w")
        .bind(100_i64)
        .bind(None::<DateTime<Utc>>)
        .bind(30_000_000_i64);
    let q = match start {
        Start::Head => q,
        Start::After(p) => q.bind(p.priority).bind(p.run_at).bind(p.id),
    };
    let row = q.fetch_one(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    let plan: serde_json::Value = row.get(0);
    claim_index_buffers(&plan[0]["Plan"])
}

/// Buffers of the plan's scans of the claim index (their heap visits included), leaving out
/// the update's.
fn claim_index_buffers(node: &serde_json::Value) -> i64 {
    let own = if node["Index Name"] == "errand_jobs_claim" {
        node["Shared Hit Blocks"].as_i64().unwrap() + node["Shared Read Blocks"].as_i64().unwrap()
    } else {
        0
    };
    let children = node["Plans"].as_array().map_or(0, |plans| {
        plans.iter().map(claim_index_buffers).sum::<i64>()
    });
    own + children
}

#[tokio::test]
async fn with_vacuum_held_back_a_cursor_claim_does_not_walk_the_jobs_claimed_before_it() {
    with_store(None, true, |store| async move {
        // A session idle in a REPEATABLE READ transaction from before the fill: no entry of a
        // claimed job can be removed or marked dead while it lives.
        let mut hold = sqlx::PgConnection::connect(&url()).await.unwrap();
        hold.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await
            .unwrap();
        hold.execute("SELECT 1").await.unwrap();
        for _ in 0..5 {
            insert(&store, (0..1000).map(|_| job()).collect()).await;
        }
        let mut last = None;
        for _ in 0..40 {
            let claimed = store.job_claim(&claim(100)).await.unwrap();
            assert_eq!(claimed.len(), 100);
            last = Position::last_of(&claimed);
            let done: Vec<JobComplete> = claimed
                .into_iter()
                .map(|c| JobComplete {
                    fence: c.fence,
                    result: None,
                })
                .collect();
            store.job_complete_many(&done).await.unwrap();
        }
        let head = claim_buffers(&store, Start::Head).await;
        let cursor = claim_buffers(&store, Start::After(last.unwrap())).await;
        let held: Option<String> =
            sqlx::query_scalar("SELECT backend_xmin::text FROM pg_stat_activity WHERE pid = $1")
                .bind(
                    hold.fetch_one("SELECT pg_backend_pid()")
                        .await
                        .unwrap()
                        .get::<i32, _>(0),
                )
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert!(held.is_some(), "the holding session kept its snapshot");
        assert!(
            cursor * 5 < head,
            "4,000 jobs drained: the head claim's scan touched {head} buffers, the cursor claim's {cursor}"
        );
        hold.execute("ROLLBACK").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_job_ready_behind_another_process_cursor_is_claimed_by_a_short_claim_or_within_head_every(
) {
    with_store(None, true, |store| async move {
        let worker = other_process(&store).await;
        insert(&store, (0..300).map(|_| job()).collect()).await;
        let first = worker.job_claim(&claim(100)).await.unwrap();
        let head_claim = Instant::now();
        assert_eq!(first.len(), 100);
        // Ready an hour ago: behind every job the worker has claimed. Inserted by this
        // process, so the worker's cursor does not hear of it.
        let behind = insert(
            &store,
            vec![job_at(Utc::now() - chrono::Duration::hours(1))],
        )
        .await[0];
        // Once the last head claim is HEAD_EVERY old, the next claim starts from the head,
        // where the job comes first.
        let wait = HEAD_EVERY.saturating_sub(head_claim.elapsed());
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
        let next = worker.job_claim(&claim(1)).await.unwrap();
        assert_eq!(next[0].id, behind);

        // A short claim (fewer jobs ready than asked) reads the whole queue.
        assert_eq!(worker.job_claim(&claim(100)).await.unwrap().len(), 100);
        let behind = insert(
            &store,
            vec![job_at(Utc::now() - chrono::Duration::hours(1))],
        )
        .await[0];
        let rest = worker.job_claim(&claim(1000)).await.unwrap();
        assert_eq!(rest.len(), 101);
        assert!(rest.iter().any(|c| c.id == behind));
    })
    .await;
}

#[tokio::test]
async fn a_job_this_process_readies_behind_its_cursor_goes_first() {
    with_store(None, true, |store| async move {
        insert(&store, (0..300).map(|_| job()).collect()).await;
        assert_eq!(store.job_claim(&claim(100)).await.unwrap().len(), 100);
        let behind = insert(
            &store,
            vec![job_at(Utc::now() - chrono::Duration::hours(1))],
        )
        .await[0];
        assert_eq!(store.job_claim(&claim(1)).await.unwrap()[0].id, behind);
    })
    .await;
}

#[tokio::test]
async fn a_cursor_claim_keeps_priority_order_and_the_pause() {
    with_store(None, true, |store| async move {
        insert(&store, (0..300).map(|_| job()).collect()).await;
        // A head claim, then one from the cursor: both at priority 0.
        assert_eq!(store.job_claim(&claim(100)).await.unwrap().len(), 100);
        let ticket = store.cursors.start("default", Instant::now());
        assert!(matches!(ticket.start, Start::After(_)), "{ticket:?}");
        // Ready now, so nothing sends the queue back to the head: the cursor claim's first
        // part still reads higher priorities from the head.
        let mut urgent = job();
        urgent.priority = 5;
        let urgent = insert(&store, vec![urgent]).await[0];
        assert_eq!(store.job_claim(&claim(1)).await.unwrap()[0].id, urgent);
        assert!(matches!(
            store.cursors.start("default", Instant::now()).start,
            Start::After(_)
        ));
        store.queue_pause("default").await.unwrap();
        assert!(store.job_claim(&claim(100)).await.unwrap().is_empty());
    })
    .await;
}
