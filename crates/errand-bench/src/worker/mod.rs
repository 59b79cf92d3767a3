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
//!
//! Modules: [`options`] (the command line), [`drain`] (W1, W3, baseline, floor, the child
//! process), [`latency`] (W2 and the commit probe), [`report`] (medians, ratios, the table).

mod drain;
mod latency;
mod options;
mod report;

pub use drain::child;
pub use options::{ChildOpts, Opts};

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
    for backend in opts.backends() {
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
            let b = if wants(Measurement::Baseline) {
                Some(drain::baseline(backend, sizes.drain_jobs, opts.baseline_batch, false).await)
            } else {
                None
            };
            let f = if wants(Measurement::Floor) && backend == "sqlite" {
                Some(drain::baseline(backend, sizes.drain_jobs, opts.baseline_batch, true).await)
            } else {
                None
            };
            let w1 = if wants(Measurement::W1) {
                Some(drain::drain(backend, sizes.drain_jobs, 0).await)
            } else {
                None
            };
            if wants(Measurement::W2) {
                commits.extend(latency::commit_probe(backend, sizes.latency_jobs / 2).await);
                samples.extend(latency::latency(backend, sizes.latency_jobs).await);
            }
            let w3 = if wants(Measurement::W3) {
                Some(drain::drain(backend, sizes.drain_jobs, sizes.history).await)
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
