//! `worker`: the worker pool (errand-worker) against the store, and against the smallest
//! hand-written job loop on the same database.
//!
//! Everything goes through the public API: jobs are enqueued with `errand::Client`, and the
//! pool is `Client::worker()` (errand-worker) with its default settings.
//!
//! - **W1 drain.** 20,000 no-op jobs are enqueued in bulk (`enqueue_many`, 1,000 a call),
//!   then a worker pool (one queue, concurrency 16) starts in a child process (this binary,
//!   re-executed as `worker-child`) and drains them. Rate =
//!   jobs / time from pool start until the last job's success is recorded (the pool's
//!   `JobFinished` events). The child checks every job started and succeeded exactly once;
//!   the parent checks the queue's counts and that every job is `succeeded` at attempt 1.
//! - **Peak RSS.** The child's `VmHWM` (from `/proc/self/status`) after the W1 drain.
//! - **Baseline.** The store crate's `baseline` module: a bare jobs table drained by 16
//!   concurrent loops, each claiming 100 rows per statement and marking them done with one
//!   more statement. W1 / baseline says what the worker pool costs over the least one could
//!   write.
//! - **Floor** (SQLite). The same loops on a table that also keeps a lease time and a finish
//!   time, each indexed: what any job table with crash recovery and retention writes per job.
//!   W1 / floor says how much of the gap to the baseline is Errand's own.
//! - **W2 latency.** An idle pool (concurrency 16) in this process; 500 jobs enqueued one at
//!   a time, 20 ms apart, with `Client::enqueue_kind(..).send()`; latency = handler start −
//!   the instant just before the enqueue call, per job id; p50/p95/p99 (also counted from
//!   the moment the enqueue returned, i.e. without the enqueue's own commit).
//! - **W3 history.** W1 again after 1,000,000 succeeded jobs were put in `errand_jobs`
//!   (`baseline::seed_finished`) and the tables vacuumed/analysed (`baseline::settle`).
//!
//! Every measurement uses a fresh database. By default everything runs 3 times, in turn
//! (baseline, W1, W2, W3, then again), and the table gives medians; each ratio is taken
//! within one run. `--quick` shrinks the sizes (2,000 jobs, 100
//! latency samples, 100,000 finished jobs) for a smoke run.

use crate::counting::{Counting, Counts};
use crate::db::{Concrete, FreshDb};
use errand::Client;
use errand_core::{HandlerError, JobId, JobStatus, NewJob};
use errand_store::{JobList, StateFilter, Store};
use errand_worker::{JobOutcome, WorkerEvent};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

pub const USAGE: &str =
    "errand-bench worker [--backend sqlite|postgres|both] [--quick] [--runs N] \
     [--only baseline,floor,w1,w2,w3] [--baseline-batch N] [--sqlite-synchronous full|normal]";

const CONCURRENCY: u32 = 16;
const BASELINE_BATCH: u32 = 100;
const LATENCY_GAP: Duration = Duration::from_millis(20);
const QUEUE: &str = "default";
const KIND: &str = "bench_noop";

pub struct Opts {
    pub backends: Vec<&'static str>,
    pub quick: bool,
    pub only: Vec<String>,
    /// Each measurement this many times (default 3), in turn within a run: the median
    /// rate and ratio, every latency sample, the largest RSS.
    pub runs: usize,
    /// The baseline's claim batch (100; other values are for diagnosis only).
    pub baseline_batch: u32,
}

/// SQLite's `synchronous` setting for every database the benchmark opens: `full` (the
/// default, and Errand's) or `normal` (for diagnosis only: commits then skip the disk
/// flush, which leaves the CPU's share of a figure).
static SQLITE_SYNC: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

fn sqlite_sync() -> &'static str {
    SQLITE_SYNC.get().copied().unwrap_or("full")
}

pub fn parse(args: &mut dyn Iterator<Item = String>) -> Result<Opts, String> {
    let mut opts = Opts {
        backends: vec!["sqlite", "postgres"],
        quick: false,
        only: ["baseline", "floor", "w1", "w2", "w3"]
            .map(String::from)
            .to_vec(),
        runs: 3,
        baseline_batch: BASELINE_BATCH,
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--quick" => opts.quick = true,
            "--runs" | "--baseline-batch" => {
                let v = args
                    .next()
                    .ok_or_else(|| format!("`{flag}` needs a value"))?;
                let n = v.parse::<usize>().ok().filter(|n| *n > 0);
                let n = n.ok_or_else(|| format!("`{flag}` wants a positive number, got `{v}`"))?;
                if flag == "--runs" {
                    opts.runs = n;
                } else {
                    opts.baseline_batch = n as u32;
                }
            }
            "--sqlite-synchronous" => {
                let v = args.next().ok_or("`--sqlite-synchronous` needs a value")?;
                let sync = match v.as_str() {
                    "full" => "full",
                    "normal" => "normal",
                    _ => {
                        return Err(format!(
                            "`--sqlite-synchronous` takes full or normal, got `{v}`"
                        ))
                    }
                };
                let _ = SQLITE_SYNC.set(sync);
            }
            "--backend" => {
                let v = args.next().ok_or("`--backend` needs a value")?;
                opts.backends = crate::parse_backend(&v)?;
            }
            "--only" => {
                let v = args.next().ok_or("`--only` needs a value")?;
                opts.only = v.split(',').map(|s| s.trim().to_lowercase()).collect();
                if let Some(bad) = opts
                    .only
                    .iter()
                    .find(|s| !["baseline", "floor", "w1", "w2", "w3"].contains(&s.as_str()))
                {
                    return Err(format!(
                        "`--only` takes baseline, floor, w1, w2, w3; got `{bad}`"
                    ));
                }
            }
            f => return Err(format!("unknown option `{f}`")),
        }
    }
    Ok(opts)
}

struct Sizes {
    drain_jobs: usize,
    latency_jobs: usize,
    history: u64,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                drain_jobs: 2_000,
                latency_jobs: 100,
                history: 100_000,
            }
        } else {
            Sizes {
                drain_jobs: 20_000,
                latency_jobs: 500,
                history: 1_000_000,
            }
        }
    }
}

/// What the worker child measured.
struct Drain {
    rate: f64,
    rss_mib: f64,
}

struct Latency {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

impl Latency {
    /// Nearest-rank percentiles of samples in ms.
    fn of(mut ms: Vec<f64>) -> Latency {
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Latency {
            p50: pct(0.50),
            p95: pct(0.95),
            p99: pct(0.99),
            max: ms[ms.len() - 1],
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median rate; the largest peak RSS.
fn median_drain(v: Vec<Drain>) -> Drain {
    let rss_mib = v.iter().map(|d| d.rss_mib).fold(0.0, f64::max);
    Drain {
        rate: median(v.iter().map(|d| d.rate).collect()),
        rss_mib,
    }
}

#[derive(Default)]
struct Results {
    baseline: Option<f64>,
    /// SQLite only: the baseline loop on a table with a lease and a finish time indexed.
    floor: Option<f64>,
    w1: Option<Drain>,
    w2: Option<Latency>,
    /// W2 counted from the moment the enqueue call returned.
    w2_after: Option<Latency>,
    /// One-row durable commits on a bare table, taken before each W2: the disk's share.
    commit: Option<Latency>,
    w3: Option<Drain>,
    /// W1 / baseline, W1 / floor, and W3 / W1, each taken within one run.
    w1_ratio: Option<Ratio>,
    w1_floor_ratio: Option<Ratio>,
    w3_ratio: Option<Ratio>,
}

/// A ratio measured once per run: the median, and the lowest and highest.
struct Ratio {
    median: f64,
    min: f64,
    max: f64,
}

impl Ratio {
    fn of(v: Vec<f64>) -> Option<Ratio> {
        if v.is_empty() {
            return None;
        }
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Ratio {
            median: median(v),
            min,
            max,
        })
    }

    /// `62 %`, or `62 % (30–65)` over several runs, marked when the median misses `target` %.
    fn cell(&self, target: f64) -> String {
        let pct = 100.0 * self.median;
        let mark = if pct >= target { "" } else { " ✗" };
        if self.min < self.max {
            format!(
                "{pct:.0} %{mark} ({:.0}–{:.0})",
                100.0 * self.min,
                100.0 * self.max
            )
        } else {
            format!("{pct:.0} %{mark}")
        }
    }
}

fn note(msg: impl AsRef<str>) {
    eprintln!("[worker bench] {}", msg.as_ref());
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub async fn run(opts: Opts) {
    let sizes = Sizes::new(opts.quick);
    let wants = |m: &str| opts.only.iter().any(|o| o == m);
    let load_before = load_average();
    let mut all = Vec::new();
    for &backend in &opts.backends {
        // Each run measures everything in turn, so that a ratio compares figures taken
        // seconds apart under the same load; the table gives the median over runs.
        let (mut baselines, mut w1s, mut w3s, mut samples) = (vec![], vec![], vec![], vec![]);
        let mut commits = Vec::new();
        let (mut w1_ratio, mut w3_ratio) = (vec![], vec![]);
        let (mut floors, mut w1_floor_ratio) = (vec![], vec![]);
        for run in 0..opts.runs {
            if opts.runs > 1 {
                note(format!(
                    "{backend}: run {} of {}, load average {}",
                    run + 1,
                    opts.runs,
                    load_average()
                ));
            }
            let b = if wants("baseline") {
                Some(baseline(backend, sizes.drain_jobs, opts.baseline_batch, false).await)
            } else {
                None
            };
            let f = if wants("floor") && backend == "sqlite" {
                Some(baseline(backend, sizes.drain_jobs, opts.baseline_batch, true).await)
            } else {
                None
            };
            let w1 = if wants("w1") {
                Some(drain(backend, sizes.drain_jobs, 0).await)
            } else {
                None
            };
            if wants("w2") {
                commits.extend(commit_probe(backend, sizes.latency_jobs / 2).await);
                samples.extend(latency(backend, sizes.latency_jobs).await);
            }
            let w3 = if wants("w3") {
                Some(drain(backend, sizes.drain_jobs, sizes.history).await)
            } else {
                None
            };
            if let (Some(w1), Some(b)) = (&w1, b) {
                w1_ratio.push(w1.rate / b);
            }
            if let (Some(w1), Some(f)) = (&w1, f) {
                w1_floor_ratio.push(w1.rate / f);
            }
            floors.extend(f);
            if let (Some(w1), Some(w3)) = (&w1, &w3) {
                w3_ratio.push(w3.rate / w1.rate);
            }
            baselines.extend(b);
            w1s.extend(w1);
            w3s.extend(w3);
        }
        let r = Results {
            baseline: (!baselines.is_empty()).then(|| median(baselines)),
            floor: (!floors.is_empty()).then(|| median(floors)),
            w1_floor_ratio: Ratio::of(w1_floor_ratio),
            w1: (!w1s.is_empty()).then(|| median_drain(w1s)),
            w2: (!samples.is_empty()).then(|| Latency::of(samples.iter().map(|s| s.0).collect())),
            w2_after: (!samples.is_empty())
                .then(|| Latency::of(samples.iter().map(|s| s.1).collect())),
            commit: (!commits.is_empty()).then(|| Latency::of(commits)),
            w3: (!w3s.is_empty()).then(|| median_drain(w3s)),
            w1_ratio: Ratio::of(w1_ratio),
            w3_ratio: Ratio::of(w3_ratio),
        };
        all.push((backend, r));
    }
    print_table(&opts, &sizes, &all, &load_before);
}

// ---- the table ----------------------------------------------------------------------------

fn print_table(opts: &Opts, sizes: &Sizes, all: &[(&str, Results)], load_before: &str) {
    println!(
        "worker benchmarks{}{}: {} cores, load average {} before / {} after, sqlite synchronous={}",
        if opts.quick { " (--quick)" } else { "" },
        if opts.runs > 1 {
            format!(", median of {} runs", opts.runs)
        } else {
            String::new()
        },
        crate::cores(),
        load_before,
        load_average(),
        sqlite_sync()
    );
    println!();
    let mut header = "| measurement | target |".to_string();
    let mut rule = "| --- | --- |".to_string();
    for (backend, _) in all {
        header.push_str(&format!(" {backend} |"));
        rule.push_str(" --- |");
    }
    println!("{header}");
    println!("{rule}");
    let n = sizes.drain_jobs;
    let row = |label: String, target: &str, cell: &dyn Fn(&str, &Results) -> Option<String>| {
        let cells: Vec<_> = all.iter().map(|(b, r)| cell(b, r)).collect();
        if cells.iter().all(Option::is_none) {
            return;
        }
        let mut line = format!("| {label} | {target} |");
        for c in cells {
            line.push_str(&format!(" {} |", c.unwrap_or_else(|| "–".into())));
        }
        println!("{line}");
    };
    let mark = |ok: bool| if ok { "" } else { " ✗" };
    row(
        format!(
            "W1 drain: {} no-op jobs, concurrency {CONCURRENCY} (jobs/s)",
            thousands(n as u64)
        ),
        "",
        &|_, r| r.w1.as_ref().map(|d| thousands(d.rate as u64)),
    );
    row(
        format!(
            "baseline: bare table, {CONCURRENCY} raw-SQL loops × {} (jobs/s)",
            opts.baseline_batch
        ),
        "",
        &|_, r| r.baseline.map(|b| thousands(b as u64)),
    );
    row(
        "W1 / baseline, median (lowest–highest run)".into(),
        "≥ 60 %",
        &|_, r| r.w1_ratio.as_ref().map(|x| x.cell(60.0)),
    );
    row(
        "floor: the same loops, table with a lease and a finish time indexed (jobs/s)".into(),
        "",
        &|_, r| r.floor.map(|f| thousands(f as u64)),
    );
    row(
        "W1 / floor, median (lowest–highest run)".into(),
        "",
        &|_, r| r.w1_floor_ratio.as_ref().map(|x| x.cell(0.0)),
    );
    let (p50_pg, p50_lite, p99_pg, p99_lite) = (4.0, 2.0, 12.0, 5.0);
    let target_for = |b: &str, pg: f64, lite: f64| if b == "postgres" { pg } else { lite };
    row(
        format!(
            "W2 enqueue→start p50 (ms), {} jobs {} ms apart",
            sizes.latency_jobs,
            LATENCY_GAP.as_millis()
        ),
        "≤ 2 sqlite, ≤ 4 postgres",
        &|b, r| {
            r.w2.as_ref().map(|l| {
                format!(
                    "{:.2}{}",
                    l.p50,
                    mark(l.p50 <= target_for(b, p50_pg, p50_lite))
                )
            })
        },
    );
    row("W2 p95 (ms)".into(), "", &|_, r| {
        r.w2.as_ref().map(|l| format!("{:.2}", l.p95))
    });
    row(
        "W2 p99 (ms)".into(),
        "≤ 5 sqlite, ≤ 12 postgres",
        &|b, r| {
            r.w2.as_ref().map(|l| {
                format!(
                    "{:.2}{}",
                    l.p99,
                    mark(l.p99 <= target_for(b, p99_pg, p99_lite))
                )
            })
        },
    );
    row("W2 max (ms)".into(), "", &|_, r| {
        r.w2.as_ref().map(|l| format!("{:.2}", l.max))
    });
    row(
        "the disk's share: one-row durable commit on a bare table, p50 / p99 (ms)".into(),
        "",
        &|_, r| {
            r.commit
                .as_ref()
                .map(|l| format!("{:.2} / {:.2}", l.p50, l.p99))
        },
    );
    row(
        "W2 counted from the enqueue's return: p50 / p95 / p99 (ms)".into(),
        "",
        &|_, r| {
            r.w2_after
                .as_ref()
                .map(|l| format!("{:.2} / {:.2} / {:.2}", l.p50, l.p95, l.p99))
        },
    );
    row(
        format!(
            "W3 drain with {} finished jobs in the table (jobs/s)",
            thousands(sizes.history)
        ),
        "",
        &|_, r| r.w3.as_ref().map(|d| thousands(d.rate as u64)),
    );
    row(
        "W3 / W1, median (lowest–highest run)".into(),
        "≥ 90 %",
        &|_, r| r.w3_ratio.as_ref().map(|x| x.cell(90.0)),
    );
    row(
        "peak RSS of the worker process during W1 (MiB)".into(),
        "< 64",
        &|_, r| {
            r.w1.as_ref()
                .map(|d| format!("{:.1}{}", d.rss_mib, mark(d.rss_mib < 64.0)))
        },
    );
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---- baseline -----------------------------------------------------------------------------

/// The bare-table loop (`floor`: SQLite's table with a lease and a finish time indexed).
async fn baseline(backend: &str, n: usize, batch: u32, floor: bool) -> f64 {
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
async fn drain(backend: &str, n: usize, history: u64) -> Drain {
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
    let _ = (
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
pub async fn child(args: &mut dyn Iterator<Item = String>) {
    let mut target = String::new();
    let mut schema = None;
    let mut jobs = 0usize;
    let mut expect = 0u64;
    while let Some(flag) = args.next() {
        let v = args.next().expect("a value");
        match flag.as_str() {
            "--target" => target = v,
            "--schema" => schema = Some(v),
            "--jobs" => jobs = v.parse().expect("--jobs"),
            "--expect-succeeded" => expect = v.parse().expect("--expect-succeeded"),
            f => panic!("worker-child: unknown option {f}"),
        }
    }
    let counts = Arc::new(Counts::default());
    let mut connect = Client::builder(target).migrate(false);
    if let Some(schema) = &schema {
        connect = connect.postgres_schema(schema.clone());
    }
    let connected = connect
        .connect()
        .await
        .expect("connect the worker's client");
    // The same client, its store wrapped to count the worker's claims and completes.
    let client = Client::from_store(Arc::new(Counting {
        inner: connected.store().clone(),
        counts: counts.clone(),
    }));
    let store = client.store().clone();
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
            let stats = store.queue_stats().await.expect("queue stats");
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
fn noop_args() -> serde_json::Value {
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

// ---- W2: latency ----------------------------------------------------------------------------

/// `n` one-row durable commits on a bare table of a fresh database, [`LATENCY_GAP`] apart,
/// in ms: the floor under W2, which holds two commits (the enqueue and the claim).
async fn commit_probe(backend: &str, n: usize) -> Vec<f64> {
    let db = FreshDb::open(backend, sqlite_sync(), 2).await;
    let times = match &db.concrete {
        Concrete::Sqlite { store, .. } => {
            errand_store_sqlite::baseline::commit_latency(store, n, LATENCY_GAP).await
        }
        Concrete::Postgres { store, .. } => {
            errand_store_postgres::baseline::commit_latency(store, n, LATENCY_GAP).await
        }
    }
    .expect("commit probe");
    db.close().await;
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    note(format!(
        "{backend}: one-row durable commit on a bare table: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms[ms.len() / 2],
        ms[(ms.len() * 99).div_ceil(100) - 1],
        ms[ms.len() - 1]
    ));
    ms
}

/// Per job, in ms: enqueue-to-start (from just before the enqueue call), and the part of it
/// after the enqueue call returned (the job committed: wake-up, claim, start).
async fn latency(backend: &str, n: usize) -> Vec<(f64, f64)> {
    let db = FreshDb::open(backend, sqlite_sync(), 10).await;
    let starts: Arc<Mutex<HashMap<JobId, Instant>>> = Arc::default();
    let seen = starts.clone();
    let client = Client::from_store(db.store.clone());
    let handle = client
        .worker()
        .queue(QUEUE, CONCURRENCY)
        .register_kind(KIND, move |ctx, _args: serde_json::Value| {
            let seen = seen.clone();
            async move {
                let t = Instant::now();
                seen.lock().unwrap().insert(ctx.id(), t);
                Ok::<(), HandlerError>(())
            }
        })
        .start()
        .await
        .expect("start the worker pool");
    // Let the pool settle: first (empty) claim done, wake-up listener connected.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut enqueued = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(LATENCY_GAP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..n {
        tick.tick().await;
        let t0 = Instant::now();
        let e = client
            .enqueue_kind(KIND, noop_args())
            .send()
            .await
            .expect("enqueue");
        enqueued.push((e.id, t0, t0.elapsed()));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while starts.lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = handle.shutdown().await;
    assert_eq!(report.released + report.not_released, 0);
    db.close().await;

    let starts = starts.lock().unwrap();
    let ms_of = |d: Duration| d.as_secs_f64() * 1000.0;
    // (enqueue-to-start, of which the enqueue call) per job, in ms.
    let mut both: Vec<(f64, f64)> = enqueued
        .iter()
        .map(|(id, t0, call)| {
            let t = starts
                .get(id)
                .unwrap_or_else(|| panic!("job {id} never started"));
            (ms_of(t.saturating_duration_since(*t0)), ms_of(*call))
        })
        .collect();
    both.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut calls: Vec<f64> = both.iter().map(|b| b.1).collect();
    calls.sort_by(f64::total_cmp);
    let slowest: Vec<String> = both
        .iter()
        .rev()
        .take(3)
        .map(|(total, call)| format!("{total:.1} ({call:.1} in the enqueue call)"))
        .collect();
    note(format!(
        "{backend}: W2 enqueue call alone: p50 {:.2} ms, p99 {:.2} ms; slowest jobs (ms): {}",
        calls[calls.len() / 2],
        calls[(calls.len() * 99).div_ceil(100) - 1],
        slowest.join(", ")
    ));
    let l = Latency::of(both.iter().map(|b| b.0).collect());
    note(format!(
        "{backend}: W2 {n} jobs: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        l.p50, l.p95, l.p99, l.max
    ));
    both.iter()
        .map(|(total, call)| (*total, total - call))
        .collect()
}
