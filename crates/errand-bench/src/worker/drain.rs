//! W1 and W3 (a worker pool draining a full queue, in a child process so its peak RSS is its
//! own), and the baseline and floor loops they are compared with.

use super::options::{sqlite_sync, ChildOpts};
use super::report::Drain;
use super::{note, CONCURRENCY, KIND, QUEUE};
use crate::counting::{Counting, Counts};
use crate::db::{Concrete, FreshDb};
use errand::Client;
use errand_core::{HandlerError, JobId, JobStatus, NewJob};
use errand_store::{JobList, StateFilter, Store};
use errand_worker::{JobOutcome, WorkerEvent};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// The bare-table loop (`floor`: SQLite's table with a lease and a finish time indexed).
pub async fn baseline(backend: &str, n: usize, batch: u32, floor: bool) -> f64 {
    let shape = if floor {
        errand_store_sqlite::baseline::Shape::Floor
    } else {
        errand_store_sqlite::baseline::Shape::Bare
    };
    let db = FreshDb::open(backend, sqlite_sync(), CONCURRENCY + 1).await;
    let t;
    let drained = match &db.concrete {
        Concrete::Sqlite { store, .. } => {
            errand_store_sqlite::baseline::setup(store, n as u64, shape)
                .await
                .expect("baseline setup");
            t = Instant::now();
            errand_store_sqlite::baseline::drain(store, CONCURRENCY as usize, batch, shape).await
        }
        Concrete::Postgres { store, .. } => {
            errand_store_postgres::baseline::setup(store, n as u64)
                .await
                .expect("baseline setup");
            t = Instant::now();
            errand_store_postgres::baseline::drain(store, CONCURRENCY as usize, batch).await
        }
    }
    .expect("baseline drain");
    let secs = t.elapsed().as_secs_f64();
    db.close().await;
    assert_eq!(
        drained, n as u64,
        "the baseline drained every row exactly once"
    );
    let rate = n as f64 / secs;
    note(format!(
        "{backend} {} (claim batch {batch}): {n} rows in {secs:.2} s = {rate:.0} rows/s",
        if floor { "floor" } else { "baseline" }
    ));
    rate
}

// ---- W1 / W3: drain in a child process ------------------------------------------------------

/// Enqueues `n` jobs (after seeding `history` finished ones, if any), drains them with a
/// worker pool in a child process, verifies the outcome.
pub async fn drain(backend: &str, n: usize, history: u64) -> Drain {
    let db = FreshDb::open(backend, sqlite_sync(), 4).await;
    if history > 0 {
        let t = Instant::now();
        match &db.concrete {
            Concrete::Sqlite { store, .. } => {
                errand_store_sqlite::baseline::seed_finished(store, history)
                    .await
                    .expect("seed");
                errand_store_sqlite::baseline::settle(store)
                    .await
                    .expect("settle");
            }
            Concrete::Postgres { store, .. } => {
                errand_store_postgres::baseline::seed_finished(store, history)
                    .await
                    .expect("seed");
                errand_store_postgres::baseline::settle(store)
                    .await
                    .expect("settle");
            }
        }
        note(format!(
            "{backend}: seeded {history} finished jobs in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
    }
    let t = Instant::now();
    let ids = enqueue_bulk(&Client::from_store(db.store.clone()), n).await;
    note(format!(
        "{backend}: enqueued {n} jobs in {:.2} s",
        t.elapsed().as_secs_f64()
    ));

    let mut args = vec!["worker-child".to_string()];
    args.extend(db.child_args());
    args.extend([
        "--jobs".into(),
        n.to_string(),
        "--expect-succeeded".into(),
        (history + n as u64).to_string(),
    ]);
    let exe = std::env::current_exe().expect("own executable");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(&args)
            .stderr(std::process::Stdio::inherit())
            .output()
    })
    .await
    .unwrap()
    .expect("run the worker child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "worker child failed ({}):\n{stdout}",
        output.status
    );
    let report: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| panic!("worker child printed no result:\n{stdout}"));
    let secs = report["secs"].as_f64().unwrap();
    let rss_kib = report["vmhwm_kib"].as_f64().unwrap();

    verify(&*db.store, &ids, history).await;
    db.close().await;
    let rate = n as f64 / secs;
    note(format!(
        "{backend}: W{} drained {n} jobs in {secs:.2} s = {rate:.0} jobs/s, child peak RSS {:.1} MiB ({})",
        if history > 0 { 3 } else { 1 },
        rss_kib / 1024.0,
        report["check"].as_str().unwrap_or("")
    ));
    Drain {
        rate,
        rss_mib: rss_kib / 1024.0,
    }
}

/// Every enqueued job is `succeeded` at attempt 1, and the queue holds nothing else live.
async fn verify(store: &dyn Store, ids: &[JobId], history: u64) {
    let stats = store.queue_stats().await.expect("queue stats");
    let q = stats
        .iter()
        .find(|s| s.queue == QUEUE)
        .expect("the queue's stats");
    assert_eq!(
        (q.queued, q.running, q.failed, q.cancelled, q.succeeded),
        (0, 0, 0, 0, history + ids.len() as u64),
        "queue counts after the drain",
    );
    let wanted: HashSet<JobId> = ids.iter().copied().collect();
    let lowest = ids.iter().copied().min().unwrap_or(0);
    let mut seen = 0usize;
    let mut before = None;
    loop {
        let page = store
            .job_list(&JobList {
                state: Some(StateFilter::Status(JobStatus::Succeeded)),
                queue: Some(QUEUE.into()),
                before_id: before,
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("list jobs");
        for j in &page.jobs {
            if wanted.contains(&j.id) {
                assert_eq!(j.attempt, 1, "job {} ran {} times", j.id, j.attempt);
                seen += 1;
            }
        }
        match page.next_cursor {
            Some(c) if c > lowest => before = Some(c),
            _ => break,
        }
    }
    assert_eq!(seen, ids.len(), "every enqueued job succeeded");
}

/// The child: `worker-child --target URL [--schema S] --jobs N --expect-succeeded M`.
/// Starts a worker pool on the existing database, waits until `N` jobs succeeded, stops
/// the pool, prints `RESULT {json}` with the drain time and its own peak RSS.
pub async fn child(opts: ChildOpts) {
    let ChildOpts {
        target,
        schema,
        jobs,
        expect_succeeded: expect,
    } = opts;
    let counts = Arc::new(Counts::default());
    // The store the client would open, wrapped to count the worker's claims and completes.
    let client = Client::from_store(Arc::new(Counting {
        inner: crate::db::open_existing(&target, schema).await,
        counts: counts.clone(),
    }));
    let builder = client
        .worker()
        .queue(QUEUE, CONCURRENCY)
        .register_kind(KIND, |_ctx, _args: serde_json::Value| async {
            Ok::<(), HandlerError>(())
        });
    let mut events = builder.events();

    let t0 = Instant::now();
    let handle = builder.start().await.expect("start the worker pool");
    let mut started: HashSet<JobId> = HashSet::with_capacity(jobs);
    let mut succeeded: HashSet<JobId> = HashSet::with_capacity(jobs);
    let (mut twice, mut other) = (0usize, 0usize);
    let mut lagged = false;
    while succeeded.len() < jobs {
        match events.recv().await {
            Ok(WorkerEvent::JobStarted { job_id, .. }) => {
                if !started.insert(job_id) {
                    twice += 1;
                }
            }
            Ok(WorkerEvent::JobFinished {
                job_id, outcome, ..
            }) => {
                if outcome != JobOutcome::Succeeded {
                    other += 1;
                } else if !succeeded.insert(job_id) {
                    twice += 1;
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => {
                lagged = true;
                break;
            }
            Err(RecvError::Closed) => panic!("the pool's event channel closed"),
        }
    }
    if lagged {
        // Missed events: wait on the store's counts instead (the parent verifies each job).
        loop {
            let stats = client.queue_stats().await.expect("queue stats");
            if stats
                .iter()
                .any(|s| s.queue == QUEUE && s.succeeded >= expect)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let report = handle.shutdown().await;
    assert_eq!(
        (twice, other),
        (0, 0),
        "every job started and succeeded exactly once"
    );
    assert_eq!(
        report.released + report.not_released,
        0,
        "nothing left running at shutdown"
    );
    let check = if lagged {
        "events lagged: finish seen in queue stats".to_string()
    } else {
        format!(
            "{} started, {} succeeded, each once",
            started.len(),
            succeeded.len()
        )
    };
    let check = format!("{check}; {}", counts.summary());
    let vmhwm = peak_rss_kib().unwrap_or(0);
    println!(
        "RESULT {}",
        serde_json::json!({ "secs": secs, "vmhwm_kib": vmhwm, "check": check })
    );
}

/// `VmHWM` (peak resident set size) of this process, in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The arguments of every no-op job.
pub fn noop_args() -> serde_json::Value {
    serde_json::json!({ "n": 1 })
}

/// Enqueues `n` no-op jobs through the client, 1,000 per `enqueue_many`; returns their ids.
async fn enqueue_bulk(client: &Client, n: usize) -> Vec<JobId> {
    let chunk: Vec<NewJob> = (0..1000).map(|_| NewJob::new(KIND, noop_args())).collect();
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let k = (n - ids.len()).min(chunk.len());
        let done = client.enqueue_many(&chunk[..k]).await.expect("enqueue");
        ids.extend(done.into_iter().map(|e| e.id));
    }
    ids
}
