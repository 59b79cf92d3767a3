//! W1 and W3 (a worker pool draining a full queue, in a child process so its peak RSS is its
//! own), the backlog drain, W4 (vacuum held back) and the drain by several processes, and
//! the baseline and floor loops they are compared with.

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

/// The bare-table loop (`floor`: SQLite's table with a lease and a finish time indexed;
/// `hold`: PostgreSQL only, a second session holds a snapshot from before the table is
/// filled until the drain is over, see [`Hold`]).
pub async fn baseline(backend: &str, n: usize, batch: u32, floor: bool, hold: bool) -> f64 {
    let shape = if floor {
        errand_store_sqlite::baseline::Shape::Floor
    } else {
        errand_store_sqlite::baseline::Shape::Bare
    };
    let db = FreshDb::open(backend, sqlite_sync(), CONCURRENCY + 2).await;
    let held = Hold::start(&db, hold).await;
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
    held.end(&db).await;
    db.close().await;
    assert_eq!(
        drained, n as u64,
        "the baseline drained every row exactly once"
    );
    let rate = n as f64 / secs;
    note(format!(
        "{backend} {}{} (claim batch {batch}): {n} rows in {secs:.2} s = {rate:.0} rows/s",
        if floor { "floor" } else { "baseline" },
        if hold { ", vacuum held back" } else { "" }
    ));
    rate
}

/// W4's second session: idle in a `REPEATABLE READ` transaction that has taken its snapshot,
/// for the whole measurement (PostgreSQL only; nothing when not asked for).
struct Hold(Option<errand_store_postgres::baseline::SnapshotHold>);

impl Hold {
    async fn start(db: &FreshDb, hold: bool) -> Hold {
        match &db.concrete {
            Concrete::Postgres { store, .. } if hold => Hold(Some(
                errand_store_postgres::baseline::hold_snapshot(store)
                    .await
                    .expect("hold a snapshot"),
            )),
            _ => {
                assert!(!hold, "only PostgreSQL can hold vacuum back");
                Hold(None)
            }
        }
    }

    /// Checks the session still held its snapshot at the end, then ends it.
    async fn end(self, db: &FreshDb) {
        let (Some(h), Concrete::Postgres { store, .. }) = (self.0, &db.concrete) else {
            return;
        };
        assert!(
            h.holding(store).await.expect("read pg_stat_activity"),
            "the REPEATABLE READ session held its snapshot for the whole measurement"
        );
        h.release().await.expect("end the held session");
    }
}

// ---- W1 / W3: drain in a child process ------------------------------------------------------

/// What a drain measurement does.
#[derive(Clone, Copy)]
pub struct Spec {
    /// Jobs enqueued and drained.
    pub jobs: usize,
    /// Finished jobs seeded beforehand (W3).
    pub history: u64,
    /// A second session holds vacuum back for the whole measurement (W4).
    pub hold: bool,
    /// Worker processes, each with a pool of concurrency [`CONCURRENCY`].
    pub procs: usize,
    /// Flow control on the queue (the flow figures).
    pub flow: FlowSpec,
}

/// What flow control a drain runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowSpec {
    /// None: the plain claim.
    #[default]
    None,
    /// `global_concurrency` on the queue.
    Global(i32),
    /// Jobs spread over this many concurrency keys, round robin, with the queue's
    /// `key_concurrency`.
    Keys { keys: usize, limit: i32 },
}

impl Spec {
    pub fn w1(jobs: usize) -> Spec {
        Spec {
            jobs,
            history: 0,
            hold: false,
            procs: 1,
            flow: FlowSpec::None,
        }
    }

    fn name(&self) -> String {
        let mut name = String::from(if self.history > 0 { "W3" } else { "W1" });
        if self.hold {
            name = "W4".into();
        }
        if self.procs > 1 {
            name.push_str(&format!(" in {} processes", self.procs));
        }
        match self.flow {
            FlowSpec::None => {}
            FlowSpec::Global(g) => name.push_str(&format!(" with global_concurrency {g}")),
            FlowSpec::Keys { keys, limit } => {
                name.push_str(&format!(" over {keys} keys with key_concurrency {limit}"))
            }
        }
        name
    }
}

/// Enqueues `spec.jobs` jobs (after seeding `history` finished ones, if any), drains them
/// with a worker pool in each of `procs` child processes, verifies the outcome.
pub async fn drain(backend: &str, spec: Spec) -> Drain {
    let Spec {
        jobs: n,
        history,
        hold,
        procs,
        flow,
    } = spec;
    let db = FreshDb::open(backend, sqlite_sync(), 4).await;
    let held = Hold::start(&db, hold).await;
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
    let client = Client::from_store(db.store.clone());
    let keys = match flow {
        FlowSpec::None => 0,
        FlowSpec::Global(g) => {
            let limits = errand::QueueLimits {
                global_concurrency: Some(g),
                ..Default::default()
            };
            client
                .set_queue_limits(QUEUE, limits)
                .await
                .expect("limits");
            0
        }
        FlowSpec::Keys { keys, limit } => {
            let limits = errand::QueueLimits {
                key_concurrency: Some(limit),
                ..Default::default()
            };
            client
                .set_queue_limits(QUEUE, limits)
                .await
                .expect("limits");
            keys
        }
    };
    let t = Instant::now();
    let ids = enqueue_keyed(&client, n, keys).await;
    let enqueue_secs = t.elapsed().as_secs_f64();
    note(format!(
        "{backend}: enqueued {n} jobs in {enqueue_secs:.2} s ({:.0} jobs/s)",
        n as f64 / enqueue_secs
    ));

    let mut args = vec!["worker-child".to_string()];
    args.extend(db.child_args());
    args.extend([
        "--jobs".into(),
        n.to_string(),
        "--expect-succeeded".into(),
        (history + n as u64).to_string(),
    ]);
    if procs > 1 {
        // Every process starts its pool at the same instant, after all have connected.
        let start_at = unix_ms() + 1_500;
        args.extend([
            "--shared".into(),
            "--start-at-ms".into(),
            start_at.to_string(),
        ]);
    }
    let exe = std::env::current_exe().expect("own executable");
    let children: Vec<_> = (0..procs.max(1))
        .map(|_| {
            let (exe, args) = (exe.clone(), args.clone());
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(exe)
                    .args(&args)
                    .stderr(std::process::Stdio::inherit())
                    .output()
            })
        })
        .collect();
    let mut reports = Vec::with_capacity(children.len());
    for c in children {
        let output = c.await.unwrap().expect("run the worker child");
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
        reports.push(report);
    }
    let num = |r: &serde_json::Value, k: &str| r[k].as_f64().expect("a number in the result");
    // One process: its own drain time. Several: from the first pool's start to the last
    // success any of them saw, on the wall clock they share.
    let secs = if reports.len() == 1 {
        num(&reports[0], "secs")
    } else {
        let start = reports
            .iter()
            .map(|r| num(r, "start_unix"))
            .fold(f64::INFINITY, f64::min);
        let end = reports
            .iter()
            .map(|r| num(r, "end_unix"))
            .fold(0.0, f64::max);
        end - start
    };
    let rss_kib = reports
        .iter()
        .map(|r| num(r, "vmhwm_kib"))
        .fold(0.0, f64::max);

    held.end(&db).await;
    verify(&*db.store, &ids, history).await;
    db.close().await;
    let rate = n as f64 / secs;
    let checks: Vec<&str> = reports
        .iter()
        .map(|r| r["check"].as_str().unwrap_or(""))
        .collect();
    note(format!(
        "{backend}: {} drained {n} jobs in {secs:.2} s = {rate:.0} jobs/s, child peak RSS {:.1} MiB ({})",
        spec.name(),
        rss_kib / 1024.0,
        checks.join(" | ")
    ));
    Drain {
        rate,
        rss_mib: rss_kib / 1024.0,
        enqueue_rate: n as f64 / enqueue_secs,
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, to the microsecond.
fn unix_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
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

/// The child: `worker-child --target URL [--schema S] --jobs N --expect-succeeded M
/// [--shared] [--start-at-ms T]`. Starts a worker pool on the existing database (at `T`, if
/// given), waits until `N` jobs succeeded here (or, `--shared`, until the queue counts `M`
/// succeeded, other processes draining it too), stops the pool, prints `RESULT {json}` with
/// the drain time, its start and last success on the wall clock, and its own peak RSS.
pub async fn child(opts: ChildOpts) {
    let ChildOpts {
        target,
        schema,
        jobs,
        expect_succeeded: expect,
        shared,
        start_at_ms,
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
    if let Some(at) = start_at_ms {
        tokio::time::sleep(Duration::from_millis(at.saturating_sub(unix_ms()))).await;
    }

    let (t0, start_unix) = (Instant::now(), unix_secs());
    let handle = builder.start().await.expect("start the worker pool");
    let mut started: HashSet<JobId> = HashSet::with_capacity(jobs);
    let mut succeeded: HashSet<JobId> = HashSet::with_capacity(jobs);
    let (mut twice, mut other) = (0usize, 0usize);
    let mut lagged = false;
    // When the last success was seen: the end of the drain.
    let (mut last, mut last_unix) = (t0, start_unix);
    // Shared, or after missed events: the queue's counts say when the drain is over. A task
    // of its own reads them, so that this loop keeps up with the events meanwhile.
    let done = Arc::new(tokio::sync::Notify::new());
    let mut poller = None;
    // Every 20 ms when shared (the events still time the drain), every 5 ms after a lag (the
    // poll that sees the count is then the drain's end).
    let every = Duration::from_millis(if shared { 20 } else { 5 });
    let watch = |client: Client, done: Arc<tokio::sync::Notify>| {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let stats = client.queue_stats().await.expect("queue stats");
                if stats
                    .iter()
                    .any(|s| s.queue == QUEUE && s.succeeded >= expect)
                {
                    done.notify_one();
                    return;
                }
            }
        })
    };
    if shared {
        poller = Some(watch(client.clone(), done.clone()));
    }
    while poller.is_some() || succeeded.len() < jobs {
        tokio::select! {
            ev = events.recv(), if !lagged => match ev {
                Ok(WorkerEvent::JobStarted { job_id, .. }) => {
                    if !started.insert(job_id) {
                        twice += 1;
                    }
                }
                Ok(WorkerEvent::JobFinished {
                    job_id, outcome, ..
                }) => {
                    (last, last_unix) = (Instant::now(), unix_secs());
                    if outcome != JobOutcome::Succeeded {
                        other += 1;
                    } else if !succeeded.insert(job_id) {
                        twice += 1;
                    }
                }
                Ok(_) => {}
                // Missed events: wait on the store's counts instead (the parent verifies
                // each job).
                Err(RecvError::Lagged(_)) => {
                    lagged = true;
                    if poller.is_none() {
                        poller = Some(watch(client.clone(), done.clone()));
                    }
                }
                Err(RecvError::Closed) => panic!("the pool's event channel closed"),
            },
            _ = done.notified(), if poller.is_some() => {
                if lagged {
                    (last, last_unix) = (Instant::now(), unix_secs());
                }
                break;
            }
        }
    }
    let secs = last.duration_since(t0).as_secs_f64();
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
        serde_json::json!({
            "secs": secs,
            "start_unix": start_unix,
            "end_unix": last_unix,
            "vmhwm_kib": vmhwm,
            "check": check,
        })
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
/// `n` no-op jobs in batches of 1,000; with `keys > 0`, job `i` has concurrency key
/// `k{i % keys}`.
pub async fn enqueue_keyed(client: &Client, n: usize, keys: usize) -> Vec<JobId> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let k = (n - ids.len()).min(1000);
        let chunk: Vec<NewJob> = (ids.len()..ids.len() + k)
            .map(|i| {
                let mut job = NewJob::new(KIND, noop_args());
                if keys > 0 {
                    job.concurrency_key = Some(format!("k{}", i % keys));
                }
                job
            })
            .collect();
        let done = client.enqueue_many(&chunk).await.expect("enqueue");
        ids.extend(done.into_iter().map(|e| e.id));
    }
    ids
}
