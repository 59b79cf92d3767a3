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
//! - **PostgreSQL's hot path** ([`hotpath`]): bulk and single enqueue against raw inserts on
//!   a narrow table, W1 and the baseline at a 100,000-job backlog, W4 (both again with vacuum
//!   held back by an idle `REPEATABLE READ` session), and the backlog drained by 4 worker
//!   processes of concurrency 16.
//!
//! Every measurement uses a fresh database. By default everything runs 3 times, in turn
//! (baseline, W1, W2, W3, then the hot path on PostgreSQL, then again), and the table gives
//! medians; each ratio is taken within one run. `--quick` shrinks the sizes (2,000 jobs, 100
//! latency samples, 100,000 finished jobs, a 10,000-job backlog) for a smoke run. `--json`
//! prints every run's figures and the medians as JSON instead of the tables.
//!
//! - **Flow control** ([`flow`]): W1 plain, with `global_concurrency = 16`, and over 100
//!   keys with `key_concurrency = 1`, each ratio within a run.
//!
//! Modules: [`options`] (the command line), [`drain`] (W1, W3, W4, the baseline, the floor,
//! the child process), [`flow`] (the flow-control drains), [`latency`] (W2 and the commit probe), [`hotpath`] (the inserts and
//! the backlog figures), [`report`] (medians, ratios, the table).

mod drain;
mod flow;
mod hotpath;
mod latency;
mod options;
mod report;

pub use drain::child;
pub use options::{ChildOpts, Opts};

use hotpath::{HotRun, HotSummary};
use options::{set_sqlite_sync, Measurement};
use report::{median, median_drain, print_table, Latency, Ratio, Results};
use std::time::Duration;

const CONCURRENCY: u32 = 16;
const LATENCY_GAP: Duration = Duration::from_millis(20);
const QUEUE: &str = "default";
const KIND: &str = "bench_noop";

/// How much each measurement does (`--quick` shrinks it).
struct Sizes {
    drain_jobs: usize,
    latency_jobs: usize,
    history: u64,
    /// The backlog of W1 at 100,000, W4 and the multi-process drain.
    backlog: usize,
    /// Jobs per method in the bulk-enqueue comparison.
    bulk_jobs: usize,
    /// Jobs per side in the single-enqueue comparison.
    single_jobs: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                drain_jobs: 2_000,
                latency_jobs: 100,
                history: 100_000,
                backlog: 10_000,
                bulk_jobs: 10_000,
                single_jobs: 200,
            }
        } else {
            Sizes {
                drain_jobs: 20_000,
                latency_jobs: 500,
                history: 1_000_000,
                backlog: 100_000,
                bulk_jobs: 100_000,
                single_jobs: 2_000,
            }
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
    set_sqlite_sync(opts.sqlite_synchronous);
    let sizes = Sizes::new(opts.quick);
    let wants = |m: Measurement| opts.wants(m);
    let load_before = load_average();
    let mut all = Vec::new();
    let mut json_backends = serde_json::Map::new();
    let mut all_flow = Vec::new();
    for backend in opts.backends() {
        // Each run measures everything in turn, so that a ratio compares figures taken
        // seconds apart under the same load; the table gives the median over runs.
        let (mut baselines, mut w1s, mut w3s, mut samples) = (vec![], vec![], vec![], vec![]);
        let mut commits = Vec::new();
        let (mut w1_ratio, mut w3_ratio) = (vec![], vec![]);
        let (mut floors, mut w1_floor_ratio) = (vec![], vec![]);
        let mut hot_runs = Vec::new();
        let mut flow_runs = Vec::new();
        let mut json_runs = Vec::new();
        for run in 0..opts.runs {
            let load = load_average();
            if opts.runs > 1 {
                note(format!(
                    "{backend}: run {} of {}, load average {load}",
                    run + 1,
                    opts.runs,
                ));
            }
            let b = if wants(Measurement::Baseline) {
                Some(
                    drain::baseline(backend, sizes.drain_jobs, opts.baseline_batch, false, false)
                        .await,
                )
            } else {
                None
            };
            let f = if wants(Measurement::Floor) && backend == "sqlite" {
                Some(
                    drain::baseline(backend, sizes.drain_jobs, opts.baseline_batch, true, false)
                        .await,
                )
            } else {
                None
            };
            let w1 = if wants(Measurement::W1) {
                Some(drain::drain(backend, drain::Spec::w1(sizes.drain_jobs)).await)
            } else {
                None
            };
            let (mut run_commits, mut run_samples) = (vec![], vec![]);
            if wants(Measurement::W2) {
                run_commits = latency::commit_probe(backend, sizes.latency_jobs / 2).await;
                run_samples = latency::latency(backend, sizes.latency_jobs).await;
            }
            let w3 = if wants(Measurement::W3) {
                let spec = drain::Spec {
                    history: sizes.history,
                    ..drain::Spec::w1(sizes.drain_jobs)
                };
                Some(drain::drain(backend, spec).await)
            } else {
                None
            };
            if wants(Measurement::Flow) {
                flow_runs.push(flow::measure(backend, &sizes).await);
            }
            let hot = if backend == "postgres" {
                hotpath::measure(&opts, &sizes).await
            } else {
                HotRun::default()
            };
            json_runs.push(report::run_json(
                &load,
                report::RunFigures {
                    baseline: b,
                    floor: f,
                    w1,
                    w3,
                    commits: &run_commits,
                    samples: &run_samples,
                },
                hot.json(),
            ));
            hot_runs.push(hot);
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
            commits.extend(run_commits);
            samples.extend(run_samples);
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
            hot: HotSummary::of(&hot_runs),
        };
        let mut doc = serde_json::json!({ "runs": json_runs, "median": r.json() });
        if !flow_runs.is_empty() {
            doc["flow"] = flow::summary(&flow_runs);
        }
        json_backends.insert(backend.to_string(), doc);
        all.push((backend, r));
        all_flow.push((backend, flow_runs));
    }
    if opts.json {
        let doc = serde_json::json!({
            "cores": crate::cores(),
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "quick": opts.quick,
            "runs": opts.runs,
            "sqlite_synchronous": options::sqlite_sync(),
            "sizes": {
                "drain_jobs": sizes.drain_jobs,
                "latency_jobs": sizes.latency_jobs,
                "history": sizes.history,
                "backlog": sizes.backlog,
                "bulk_jobs": sizes.bulk_jobs,
                "single_jobs": sizes.single_jobs,
                "concurrency": CONCURRENCY,
                "processes": hotpath::PROCS,
                "baseline_batch": opts.baseline_batch,
            },
            "backends": json_backends,
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    } else {
        print_table(&opts, &sizes, &all, &load_before);
        if wants(Measurement::Flow) {
            flow::print_table(&all_flow, sizes.drain_jobs);
        }
    }
}
