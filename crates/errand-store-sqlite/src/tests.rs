//! Unit tests of the SQLite specifics (the cross-backend behaviour lives in
//! `errand-store-tests`).

use crate::{SqliteOptions, SqliteStore, Synchronous};
use chrono::{DateTime, TimeZone, Utc};
use errand_core::{Limits, ManualClock, NewJob};
use errand_store::{JobClaim, Store, StoreError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A database file under the temp dir, deleted (with its WAL files) on drop.
pub(crate) struct TempDb(pub PathBuf);

impl TempDb {
    pub(crate) fn new(tag: &str) -> TempDb {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "errand-sqlite-{tag}-{}-{}-{}.db",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        TempDb(std::env::temp_dir().join(name))
    }

    pub(crate) fn target(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

pub(crate) fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

pub(crate) async fn open(db: &TempDb, clock: &ManualClock) -> SqliteStore {
    SqliteStore::open(
        &db.target(),
        SqliteOptions {
            clock: Some(Arc::new(clock.clone())),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn migrate_twice_is_a_no_op_and_reports_the_latest_version() {
    let db = TempDb::new("migrate");
    let clock = ManualClock::new(start());
    let store = open(&db, &clock).await;

    let before = store.migration_status().await.unwrap();
    // Versions need not be contiguous (numbers are reserved per feature): compare with the
    // list this build knows rather than with a number each new migration would have to edit.
    let known: Vec<(i64, String)> = crate::migrate::MIGRATIONS
        .iter()
        .map(|m| (m.version(), m.name().to_string()))
        .collect();
    let latest = crate::migrate::MIGRATIONS.last().unwrap().version();
    assert_eq!(before.current_version, 0);
    assert_eq!(before.latest_version, latest);
    assert_eq!(
        &before.pending[..2],
        &[(1, "jobs".to_string()), (2, "workers".to_string())]
    );
    assert_eq!(before.pending, known);

    let first = store.migrate().await.unwrap();
    assert_eq!(first.current_version, latest);
    assert_eq!(first.latest_version, latest);
    assert!(first.pending.is_empty());
    assert_eq!(first.applied.len(), known.len());
    assert!(first.applied.iter().all(|m| m.applied_at == start()));

    clock.advance(Duration::from_secs(60));
    let second = store.migrate().await.unwrap();
    assert_eq!(second, first);
    assert_eq!(store.migration_status().await.unwrap(), first);
}

#[tokio::test]
async fn concurrent_migrations_from_two_stores_apply_once() {
    let db = TempDb::new("migrate-race");
    let clock = ManualClock::new(start());
    let a = open(&db, &clock).await;
    let b = open(&db, &clock).await;
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let latest = crate::migrate::MIGRATIONS.last().unwrap().version();
    assert_eq!(ra.unwrap().current_version, latest);
    assert_eq!(rb.unwrap().current_version, latest);
}

#[tokio::test]
async fn unmigrated_database_says_run_migrate() {
    let db = TempDb::new("unmigrated");
    let store = open(&db, &ManualClock::new(start())).await;
    let err = store.job_get(1).await.unwrap_err();
    match &err {
        StoreError::Schema(m) => assert!(m.contains("errand migrate"), "{m}"),
        other => panic!("{other:?}"),
    }
    let job = NewJob::new("k", serde_json::json!({}))
        .validate(&Limits::default())
        .unwrap();
    assert!(matches!(
        store.job_insert_many(&[job]).await.unwrap_err(),
        StoreError::Schema(_)
    ));
    let claim = JobClaim {
        queue: "default".into(),
        worker_id: "w".into(),
        limit: 1,
        lease: Duration::from_secs(30),
    };
    assert!(matches!(
        store.job_claim(&claim).await.unwrap_err(),
        StoreError::Schema(_)
    ));
    assert!(matches!(
        store.job_list_stuck(10).await.unwrap_err(),
        StoreError::Schema(_)
    ));
}

/// Two stores on one file stand in for two processes: their IMMEDIATE transactions queue on
/// the database lock (busy_timeout) instead of failing, and no job is claimed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_share_the_work() {
    let db = TempDb::new("two");
    let clock = ManualClock::new(start());
    let a = open(&db, &clock).await;
    let b = open(&db, &clock).await;
    a.migrate().await.unwrap();
    let mut tasks = Vec::new();
    for (i, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            for n in 0..100 {
                let mut job = NewJob::new("k", serde_json::json!({"t": i, "n": n}));
                job.unique_key = Some(format!("k{}", n % 50));
                let job = job.validate(&Limits::default()).unwrap();
                store.job_insert_many(&[job.clone(), job]).await.unwrap();
            }
            let mut claimed = Vec::new();
            loop {
                let claim = JobClaim {
                    queue: "default".into(),
                    worker_id: format!("w{i}"),
                    limit: 3,
                    lease: Duration::from_secs(30),
                };
                let jobs = store.job_claim(&claim).await.unwrap();
                if jobs.is_empty() {
                    break claimed;
                }
                claimed.extend(jobs.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "a job was claimed twice");
    assert!(n >= 50, "every live unique key gave a job ({n})");
}

#[tokio::test]
async fn a_newer_schema_is_refused_naming_both_versions() {
    let db = TempDb::new("newer");
    let clock = ManualClock::new(start());
    let store = open(&db, &clock).await;
    store.migrate().await.unwrap();
    store
        .with_writer(|conn, now| {
            conn.execute(
                "INSERT INTO errand_migrations (version, name, applied_at) VALUES (99, 'future', ?1)",
                [now],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    for err in [
        store.migrate().await.unwrap_err(),
        store.migration_status().await.unwrap_err(),
    ] {
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Schema(_)), "{msg}");
        assert!(
            msg.contains("version 99")
                && msg.contains(&format!(
                    "version {}",
                    crate::migrate::MIGRATIONS.last().unwrap().version()
                )),
            "{msg}"
        );
    }
}

/// The query plan of `sql` (the detail column of EXPLAIN QUERY PLAN), with NULL parameters.
async fn plan(store: &SqliteStore, sql: &'static str) -> String {
    store
        .with_writer(move |conn, _| {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            let rows =
                stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?.join("\n"))
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn claim_uses_the_claim_index() {
    let db = TempDb::new("plan");
    let store = open(&db, &ManualClock::new(start())).await;
    store.migrate().await.unwrap();
    let claim = plan(&store, crate::worker_path::CLAIM_SQL).await;
    assert!(
        claim.contains("USING COVERING INDEX errand_jobs_claim (queue=?)"),
        "{claim}"
    );
    assert!(!claim.contains("TEMP B-TREE"), "{claim}");
}

/// The batch completion walks its JSON items and finds each job by primary key; a plan that
/// scanned the jobs table instead would cost a full pass per batch.
#[tokio::test]
async fn completion_finds_each_job_by_primary_key() {
    let db = TempDb::new("plan-complete");
    let store = open(&db, &ManualClock::new(start())).await;
    store.migrate().await.unwrap();
    let complete = plan(&store, crate::worker_path::COMPLETE_SQL).await;
    assert!(complete.contains("SCAN json_each"), "{complete}");
    assert!(
        complete.contains("SEARCH errand_jobs USING INTEGER PRIMARY KEY"),
        "{complete}"
    );
}

#[tokio::test]
async fn rescue_scan_and_stats_use_partial_indexes() {
    let db = TempDb::new("plan2");
    let store = open(&db, &ManualClock::new(start())).await;
    store.migrate().await.unwrap();
    let stuck = plan(&store, crate::reads::STUCK_SQL).await;
    assert!(stuck.contains("errand_jobs_lease"), "{stuck}");
    assert!(!stuck.contains("TEMP B-TREE"), "{stuck}");
    let stats = plan(&store, crate::reads::QUEUED_STATS_SQL).await;
    assert!(
        stats.contains("COVERING INDEX errand_jobs_claim"),
        "{stats}"
    );
    assert!(!stats.contains("TEMP B-TREE"), "{stats}");
}

/// The list query walks an index in id order for every state (migration 8 made two of them
/// partial, which SQLite uses only when the query repeats their WHERE term).
#[tokio::test]
async fn job_list_walks_an_index_for_every_state() {
    use errand_core::JobStatus;
    use errand_store::{JobList, StateFilter};
    let db = TempDb::new("plan3");
    let store = open(&db, &ManualClock::new(start())).await;
    store.migrate().await.unwrap();
    let status = |s| Some(StateFilter::Status(s));
    let cases = [
        (
            JobList {
                state: status(JobStatus::Queued),
                ..Default::default()
            },
            "errand_jobs_status_id",
        ),
        (
            JobList {
                state: status(JobStatus::Failed),
                ..Default::default()
            },
            "errand_jobs_status_id",
        ),
        (
            JobList {
                state: status(JobStatus::Cancelled),
                ..Default::default()
            },
            "errand_jobs_status_id",
        ),
        (
            JobList {
                state: status(JobStatus::Failed),
                queue: Some("q".into()),
                ..Default::default()
            },
            "errand_jobs_queue_status",
        ),
        (
            JobList {
                state: Some(StateFilter::Derived(errand_core::DerivedState::Retrying)),
                ..Default::default()
            },
            "errand_jobs_status_id",
        ),
        (
            JobList {
                kind: Some("k".into()),
                ..Default::default()
            },
            "errand_jobs_kind_id",
        ),
        (
            JobList {
                state: status(JobStatus::Running),
                ..Default::default()
            },
            "errand_jobs_lease",
        ),
    ];
    for (list, index) in cases {
        let (sql, args) = crate::reads::list_sql(0, &list);
        let plan = store
            .with_writer(move |conn, _| {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows =
                    stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?.join("\n"))
            })
            .await
            .unwrap();
        assert!(plan.contains(index), "{list:?}: {plan}");
    }
}

#[tokio::test]
async fn options_and_target_suffix() {
    let db = TempDb::new("opts");
    let store = SqliteStore::open(
        &format!("sqlite://{}?synchronous=normal", db.target()),
        SqliteOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(store.synchronous(), Synchronous::Normal);
    assert_eq!(store.path(), db.0.as_path());
    store.migrate().await.unwrap();
    let mode: String = store
        .with_writer(|conn, _| Ok(conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    assert!(format!("{store:?}").contains("SqliteStore"));
}

/// Hints go out after commit to every subscriber of the store and its clones; a write that
/// rolls back sends nothing; a second store on the same file (another process, in effect)
/// hears nothing.
#[tokio::test]
async fn hints_follow_commits_and_reach_clones_only() {
    use errand_core::JobInsert;
    use tokio::sync::broadcast::error::TryRecvError;
    let db = TempDb::new("hints");
    let clock = ManualClock::new(start());
    let store = open(&db, &clock).await;
    store.migrate().await.unwrap();
    let other = open(&db, &clock).await;
    let mut mine = store.subscribe();
    let mut clones = store.clone().subscribe();
    let mut theirs = other.subscribe();
    let job_in = |queue: &str| JobInsert {
        queue: queue.into(),
        ..NewJob::new("k", serde_json::json!({}))
            .validate(&Limits::default())
            .unwrap()
    };

    // The second job breaks a CHECK constraint: the batch rolls back, no hint.
    let bad = JobInsert {
        max_attempts: 0,
        ..job_in("bad")
    };
    assert!(store.job_insert_many(&[job_in("q"), bad]).await.is_err());
    assert_eq!(mine.try_recv().unwrap_err(), TryRecvError::Empty);

    // One hint per queue per write, already there when the call returns.
    store
        .job_insert_many(&[job_in("q"), job_in("q"), job_in("r")])
        .await
        .unwrap();
    for rx in [&mut mine, &mut clones] {
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok().map(|h| h.queue)).collect();
        assert_eq!(got, vec!["q", "r"]);
    }
    other.job_insert_many(&[job_in("s")]).await.unwrap();
    assert_eq!(theirs.try_recv().unwrap().queue, "s");
    assert_eq!(theirs.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(mine.try_recv().unwrap_err(), TryRecvError::Empty);
}
