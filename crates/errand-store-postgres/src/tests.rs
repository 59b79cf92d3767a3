//! Tests against a real PostgreSQL server (`ERRAND_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, the same server the behaviour suite uses). Each
//! test works in a fresh schema `errand_t_<hex>` and drops it at the end, even when it fails.
//! An unreachable server fails the tests: nothing is skipped.
//!
//! The cross-backend behaviour suite lives in `errand-store-tests`; these cover what is
//! specific to PostgreSQL: migrations, the claim plan, in-transaction enqueue, concurrency.

use crate::{enqueue_in, PgOptions, PgStore};
use chrono::{DateTime, TimeZone, Utc};
use errand_core::{
    EventKind, FailAction, JobInsert, JobStatus, ManualClock, NewJob, RescueAction, RunAt,
};
use errand_store::*;
use serde_json::json;
use sqlx::{Connection, Executor, Row};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

fn url() -> String {
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

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

/// Runs `body` with a store in a fresh schema (migrated if `migrate`), then drops the schema,
/// whatever happened.
async fn with_store<F, Fut>(clock: Option<ManualClock>, migrate: bool, body: F)
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

fn keyed(kind: &str, key: &str) -> JobInsert {
    JobInsert {
        unique_key: Some(key.into()),
        ..job(kind)
    }
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
                .bind("w")
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
async fn batch_insert_keeps_input_order_and_dedupes_keys() {
    let clock = ManualClock::new(t0());
    with_store(Some(clock.clone()), true, |store| async move {
        let mut delayed = job("d");
        delayed.run_at = RunAt::After(Duration::from_millis(1500));
        let batch = vec![
            job("a"),
            keyed("b", "k1"),
            keyed("c", "k1"),
            delayed,
            keyed("e", "k2"),
        ];
        let out = store.job_insert_many(&batch).await.unwrap();
        assert_eq!(out.len(), 5);
        assert!(out[0].inserted && out[1].inserted && !out[2].inserted);
        assert_eq!(out[1].id, out[2].id);
        assert!(out[3].inserted && out[4].inserted);
        assert!(out[0].id < out[1].id && out[1].id < out[3].id && out[3].id < out[4].id);
        for (e, want) in out.iter().zip(["a", "b", "b", "d", "e"]) {
            assert_eq!(store.job_get(e.id).await.unwrap().unwrap().kind, want);
        }
        let d = store.job_get(out[3].id).await.unwrap().unwrap();
        assert_eq!(d.run_at, t0() + chrono::Duration::milliseconds(1500));
        assert_eq!(d.created_at, t0());

        // The key is live: a second enqueue returns the existing job.
        let again = store.job_insert_many(&[keyed("x", "k1")]).await.unwrap();
        assert_eq!(
            again,
            vec![Enqueued {
                id: out[1].id,
                inserted: false
            }]
        );

        // Finished jobs free their key.
        let claimed = store.job_claim(&claim("w", 10)).await.unwrap();
        let b = claimed.iter().find(|j| j.id == out[1].id).unwrap();
        let acks = store
            .job_complete_many(&[JobComplete {
                fence: b.fence().unwrap(),
                result: None,
            }])
            .await
            .unwrap();
        assert_eq!(acks, vec![Ack::Done]);
        let fresh = store.job_insert_many(&[keyed("x", "k1")]).await.unwrap();
        assert!(fresh[0].inserted);
        assert_ne!(fresh[0].id, out[1].id);
    })
    .await;
}

#[tokio::test]
async fn concurrent_enqueues_with_one_key_make_one_job() {
    with_store(None, true, |store| async move {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    let mut batch = vec![keyed("k", "same")];
                    if i % 2 == 0 {
                        batch.push(job("plain"));
                        batch.push(keyed("k", "same"));
                    }
                    s.job_insert_many(&batch).await
                })
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        let mut inserted = 0;
        for h in handles {
            let out = h.await.unwrap().unwrap();
            ids.insert(out[0].id);
            inserted += usize::from(out[0].inserted);
            if out.len() == 3 {
                assert_eq!(out[2].id, out[0].id);
                assert!(!out[2].inserted);
            }
        }
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!(inserted, 1);
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM errand_jobs WHERE unique_key = 'same'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(n, 1);
    })
    .await;
}

#[tokio::test]
async fn concurrent_claims_never_share_a_job() {
    with_store(None, true, |store| async move {
        let batch: Vec<_> = (0..200).map(|_| job("k")).collect();
        store.job_insert_many(&batch).await.unwrap();
        let handles: Vec<_> = (0..8)
            .map(|w| {
                let s = store.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        let jobs = s.job_claim(&claim(&format!("w{w}"), 7)).await.unwrap();
                        if jobs.is_empty() {
                            return got;
                        }
                        got.extend(jobs.into_iter().map(|j| j.id));
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!((n, all.len()), (200, 200));
    })
    .await;
}

#[tokio::test]
async fn worker_path_with_fences_and_events() {
    let clock = ManualClock::new(t0());
    let c = clock.clone();
    with_store(Some(clock), true, move |store| async move {
        let mut hi = job("hi");
        hi.priority = 5;
        let ids: Vec<_> = store
            .job_insert_many(&[job("lo"), hi, job("lo2")])
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        store.queue_pause("default").await.unwrap();
        assert!(store.job_claim(&claim("w1", 10)).await.unwrap().is_empty());
        store.queue_resume("default").await.unwrap();

        let got = store.job_claim(&claim("w1", 2)).await.unwrap();
        assert_eq!(
            got.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![ids[1], ids[0]]
        );
        let j = &got[0];
        assert_eq!((j.status, j.attempt), (JobStatus::Running, 1));
        assert_eq!(j.started_at, Some(t0()));
        assert_eq!(
            j.lease_expires_at,
            Some(t0() + chrono::Duration::seconds(30))
        );

        // Fail with retry: queued later, an error event with the run_at.
        let failed = store
            .job_fail(&JobFail {
                fence: j.fence().unwrap(),
                error: "boom".into(),
                action: FailAction::Retry {
                    delay: Duration::from_millis(5250),
                },
            })
            .await
            .unwrap();
        assert_eq!(failed.status, JobStatus::Queued);
        assert_eq!(failed.run_at, t0() + chrono::Duration::milliseconds(5250));
        assert_eq!(failed.last_error.as_deref(), Some("boom"));
        let ev = store.event_list(j.id).await.unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, EventKind::Error);
        assert_eq!(ev[0].attempt, 1);
        assert_eq!(ev[0].worker_id.as_deref(), Some("w1"));
        assert_eq!(
            ev[0].data,
            Some(json!({"next": "retry", "run_at": "2026-01-01T12:00:05.250Z"}))
        );
        // The same fence again is stale.
        let stale = store
            .job_fail(&JobFail {
                fence: j.fence().unwrap(),
                error: "again".into(),
                action: FailAction::Fail,
            })
            .await;
        assert!(
            matches!(stale, Err(StoreError::Stale { attempt: 1, .. })),
            "{stale:?}"
        );

        // Heartbeat: held for the live one, not for the failed one; cancel is reported.
        let other = &got[1];
        store.job_cancel(&[other.id], Some("stop")).await.unwrap();
        let beats = store
            .job_heartbeat_many(&JobHeartbeat {
                worker_id: "w1".into(),
                lease: Duration::from_secs(60),
                jobs: vec![(j.id, 1), (other.id, 1)],
            })
            .await
            .unwrap();
        assert_eq!(
            beats,
            vec![
                LeaseState {
                    job_id: j.id,
                    held: false,
                    cancel_requested: false
                },
                LeaseState {
                    job_id: other.id,
                    held: true,
                    cancel_requested: true
                },
            ]
        );
        let acked = store
            .job_cancel_ack(&other.fence().unwrap(), Some("stopped"))
            .await
            .unwrap();
        assert_eq!(acked.status, JobStatus::Cancelled);
        let kinds: Vec<_> = store
            .event_list(other.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![EventKind::CancelRequested, EventKind::Cancelled]
        );

        // Rescue: the lease of the remaining job expires.
        let third = store.job_claim(&claim("w2", 1)).await.unwrap().remove(0);
        assert_eq!(third.id, ids[2]);
        let rescue = JobRescue {
            fence: third.fence().unwrap(),
            action: RescueAction::Requeue,
            message: "lease expired".into(),
        };
        assert_eq!(
            store
                .job_rescue_many(std::slice::from_ref(&rescue))
                .await
                .unwrap(),
            vec![Ack::Stale]
        );
        c.advance(Duration::from_secs(31));
        let stuck = store.job_list_stuck(10).await.unwrap();
        assert_eq!(
            stuck.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![third.id]
        );
        assert_eq!(
            store.job_rescue_many(&[rescue]).await.unwrap(),
            vec![Ack::Done]
        );
        let ev = store.event_list(third.id).await.unwrap();
        assert_eq!(ev[0].kind, EventKind::Rescued);
        assert_eq!(ev[0].data, Some(json!({"action": "requeue"})));

        // Release gives the attempt back.
        let again = store.job_claim(&claim("w3", 10)).await.unwrap();
        let pairs: Vec<_> = again.iter().map(|j| (j.id, j.attempt)).collect();
        assert_eq!(pairs, vec![(ids[1], 2), (third.id, 2)]);
        let fences: Vec<_> = again.iter().map(|j| j.fence().unwrap()).collect();
        assert_eq!(
            store.job_release_many(&fences).await.unwrap(),
            vec![Ack::Done, Ack::Done]
        );
        assert_eq!(
            store.job_release_many(&fences).await.unwrap(),
            vec![Ack::Stale, Ack::Stale]
        );
        let back = store.job_get(third.id).await.unwrap().unwrap();
        assert_eq!((back.status, back.attempt), (JobStatus::Queued, 1));

        // Complete.
        c.advance(Duration::from_secs(10));
        let all = store.job_claim(&claim("w4", 10)).await.unwrap();
        assert_eq!(all.len(), 2);
        let items: Vec<_> = all
            .iter()
            .map(|j| JobComplete {
                fence: j.fence().unwrap(),
                result: Some(json!({"ok": true})),
            })
            .collect();
        assert_eq!(
            store.job_complete_many(&items).await.unwrap(),
            vec![Ack::Done, Ack::Done]
        );
        assert_eq!(
            store.job_complete_many(&items).await.unwrap(),
            vec![Ack::Stale, Ack::Stale]
        );
        let done = store.job_get(all[0].id).await.unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.result, Some(json!({"ok": true})));
        assert_eq!(done.lease_expires_at, None);
    })
    .await;
}

#[tokio::test]
async fn operator_actions_lists_and_stats() {
    let clock = ManualClock::new(t0());
    let c = clock.clone();
    with_store(Some(clock), true, move |store| async move {
        let mut later = job("later");
        later.run_at = RunAt::At(t0() + chrono::Duration::hours(1));
        let ids: Vec<_> = store
            .job_insert_many(&[job("a"), keyed("b", "k"), later])
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        store.queue_pause("idle").await.unwrap();
        let stats = store.queue_stats().await.unwrap();
        assert_eq!(stats.len(), 2);
        let d = &stats[0];
        assert_eq!((d.queue.as_str(), d.queued, d.scheduled), ("default", 3, 1));
        assert_eq!(d.oldest_ready_run_at, Some(t0()));
        assert_eq!(d.as_of, t0());
        assert_eq!((stats[1].queue.as_str(), stats[1].paused), ("idle", true));

        // Fail the keyed job permanently, enqueue another with its key, retry is refused.
        let jobs = store.job_claim(&claim("w", 2)).await.unwrap();
        let b = jobs.iter().find(|j| j.id == ids[1]).unwrap();
        store
            .job_fail(&JobFail {
                fence: b.fence().unwrap(),
                error: "bad".into(),
                action: FailAction::Fail,
            })
            .await
            .unwrap();
        let newer = store.job_insert_many(&[keyed("b", "k")]).await.unwrap()[0];
        assert!(newer.inserted);
        assert_eq!(
            store.job_retry(&[ids[1], 999_999]).await.unwrap(),
            vec![
                RetryOutcome::Unchanged {
                    id: ids[1],
                    status: JobStatus::Failed
                },
                RetryOutcome::NotFound { id: 999_999 }
            ]
        );
        store.job_cancel(&[newer.id], None).await.unwrap();
        assert_eq!(
            store.job_retry(&[ids[1]]).await.unwrap(),
            vec![RetryOutcome::Retried { id: ids[1] }]
        );
        let r = store.job_get(ids[1]).await.unwrap().unwrap();
        assert_eq!(
            (r.status, r.attempt, r.worker_id),
            (JobStatus::Queued, 0, None)
        );
        let ev = store.event_list(ids[1]).await.unwrap();
        assert_eq!(ev.last().unwrap().kind, EventKind::Retried);
        assert_eq!(
            ev.last().unwrap().data,
            Some(json!({"previous_status": "failed", "previous_attempt": 1}))
        );

        // Bulk retry of failed ones.
        let a = jobs.iter().find(|j| j.id == ids[0]).unwrap();
        store
            .job_fail(&JobFail {
                fence: a.fence().unwrap(),
                error: "x".into(),
                action: FailAction::Fail,
            })
            .await
            .unwrap();
        let filter = RetryFailed {
            queue: Some("default".into()),
            kind: Some("a".into()),
            limit: 10,
        };
        assert_eq!(store.job_retry_failed(&filter).await.unwrap(), 1);
        assert_eq!(store.job_retry_failed(&filter).await.unwrap(), 0);

        // Lists: derived states and paging.
        let list = |state: &str| JobList {
            state: Some(state.parse().unwrap()),
            ..Default::default()
        };
        let scheduled = store.job_list(&list("scheduled")).await.unwrap();
        assert_eq!(
            scheduled.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![ids[2]]
        );
        assert_eq!(
            store.job_list(&list("cancelled")).await.unwrap().jobs.len(),
            1
        );
        let page1 = store
            .job_list(&JobList {
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page1.jobs.len(), 2);
        let page2 = store
            .job_list(&JobList {
                limit: 2,
                before_id: page1.next_cursor,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page2.jobs.len(), 2);
        assert_eq!(page2.next_cursor, None);

        // Purge finished jobs.
        c.advance(Duration::from_secs(3600));
        let purge = JobPurge {
            statuses: vec![JobStatus::Cancelled, JobStatus::Succeeded],
            finished_before: t0() + chrono::Duration::minutes(1),
            limit: 10,
        };
        assert_eq!(store.job_purge(&purge).await.unwrap(), 1);
        assert_eq!(store.job_get(newer.id).await.unwrap(), None);
        assert!(store.event_list(newer.id).await.unwrap().is_empty());

        // Events on a missing job.
        let missing = store
            .event_insert(&errand_core::NewEvent {
                job_id: 999_999,
                kind: EventKind::Cancelled,
                attempt: 0,
                worker_id: None,
                message: None,
                data: None,
            })
            .await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(999_999))),
            "{missing:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn bulk_retry_never_makes_two_live_jobs_share_a_key() {
    with_store(Some(ManualClock::new(t0())), true, |store| async move {
        let mut failed = Vec::new();
        for _ in 0..2 {
            let id = store.job_insert_many(&[keyed("k", "one")]).await.unwrap()[0].id;
            let j = store.job_claim(&claim("w", 1)).await.unwrap().remove(0);
            assert_eq!(j.id, id);
            store
                .job_fail(&JobFail {
                    fence: j.fence().unwrap(),
                    error: "x".into(),
                    action: FailAction::Fail,
                })
                .await
                .unwrap();
            failed.push(id);
        }
        let all = RetryFailed {
            limit: 10,
            ..Default::default()
        };
        assert_eq!(store.job_retry_failed(&all).await.unwrap(), 1);
        assert_eq!(store.job_retry_failed(&all).await.unwrap(), 0);
        let first = store.job_get(failed[0]).await.unwrap().unwrap();
        let second = store.job_get(failed[1]).await.unwrap().unwrap();
        assert_eq!(
            (first.status, second.status),
            (JobStatus::Queued, JobStatus::Failed)
        );
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
async fn next_hint(rx: &mut broadcast::Receiver<JobsReady>, wait: Duration) -> Option<String> {
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
async fn subscribe_and_warm_up(store: &PgStore) -> broadcast::Receiver<JobsReady> {
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
