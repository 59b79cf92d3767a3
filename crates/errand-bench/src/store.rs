//! `store`: the store's claim/complete throughput alone (no worker runtime, no handler).
//!
//! Enqueue N no-op jobs in bulk, then W concurrent tasks each loop `job_claim(limit = batch)`
//! → `job_complete_many(all claimed)` until the queue is empty; check that exactly N jobs
//! were drained; report enqueue and claim+complete rates. `--explain` (PostgreSQL) prints the
//! claim's plan and buffer counts before the drain and when half the jobs are drained.

use crate::db::{enqueue_bulk, Concrete, FreshDb};
use errand_store::{JobClaim, JobComplete, Store};
use errand_store_postgres::PgStore;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Opts {
    pub jobs: usize,
    pub workers: usize,
    pub backends: Vec<&'static str>,
    pub batches: Vec<u32>,
    /// SQLite `synchronous` setting: `full` (default, durable on power loss) or `normal`.
    pub synchronous: String,
    pub explain: bool,
}

pub const USAGE: &str =
    "errand-bench store [--jobs N] [--workers N] [--backend sqlite|postgres|both] \
     [--batch 1,100] [--synchronous full|normal] [--explain]";

pub fn parse(args: &mut dyn Iterator<Item = String>) -> Result<Opts, String> {
    let mut opts = Opts {
        jobs: 20_000,
        workers: 4,
        backends: vec!["sqlite", "postgres"],
        batches: vec![1, 100],
        synchronous: "full".into(),
        explain: false,
    };
    while let Some(flag) = args.next() {
        if flag == "--explain" {
            opts.explain = true;
            continue;
        }
        let value = args
            .next()
            .ok_or_else(|| format!("`{flag}` needs a value"))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("`{flag}` wants a number, got `{v}`"))
        };
        match flag.as_str() {
            "--jobs" => opts.jobs = num(&value)?,
            "--workers" => opts.workers = num(&value)?.max(1),
            "--backend" => opts.backends = crate::parse_backend(&value)?,
            "--batch" => {
                opts.batches = value
                    .split(',')
                    .map(|b| {
                        b.trim()
                            .parse::<u32>()
                            .map_err(|_| format!("`--batch` wants numbers, got `{b}`"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--synchronous" => {
                if value != "full" && value != "normal" {
                    return Err(format!(
                        "`--synchronous` wants full or normal, got `{value}`"
                    ));
                }
                opts.synchronous = value;
            }
            f => return Err(format!("unknown option `{f}`")),
        }
    }
    Ok(opts)
}

async fn explain(pg: &PgStore, when: &str) {
    match errand_store_postgres::baseline::explain_claim(pg, "default", 100).await {
        Ok(plan) => println!("claim plan {when}:\n{plan}"),
        Err(e) => println!("claim plan {when}: {e}"),
    }
}

/// Enqueues `jobs` in bulk, then lets `workers` tasks claim `batch` at a time and complete
/// each batch in one call until the queue is empty. Returns (insert time, drain time).
async fn run_once(
    store: Arc<dyn Store>,
    pg: Option<Arc<PgStore>>,
    jobs: usize,
    workers: usize,
    batch: u32,
) -> (Duration, Duration) {
    let t = Instant::now();
    enqueue_bulk(&*store, jobs).await;
    let insert = t.elapsed();
    if let Some(pg) = &pg {
        explain(pg, "before the drain").await;
    }
    let drained = Arc::new(AtomicUsize::new(0));
    let explained = Arc::new(AtomicBool::new(pg.is_none()));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = store.clone();
        let (drained, explained, pg) = (drained.clone(), explained.clone(), pg.clone());
        tasks.push(tokio::spawn(async move {
            let claim = JobClaim {
                queue: "default".into(),
                worker_id: format!("bench-{w}"),
                limit: batch,
                lease: Duration::from_secs(30),
            };
            let mut done = 0usize;
            loop {
                let claimed = store.job_claim(&claim).await.expect("claim");
                if claimed.is_empty() {
                    return done;
                }
                let items: Vec<_> = claimed
                    .iter()
                    .map(|j| JobComplete {
                        fence: j.fence().unwrap(),
                        result: None,
                    })
                    .collect();
                store.job_complete_many(&items).await.expect("complete");
                done += claimed.len();
                let total = drained.fetch_add(claimed.len(), Ordering::Relaxed) + claimed.len();
                if total * 2 >= jobs && !explained.swap(true, Ordering::Relaxed) {
                    if let Some(pg) = &pg {
                        explain(pg, &format!("with {total} of {jobs} jobs drained")).await;
                    }
                }
            }
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, jobs, "every job drained exactly once");
    (insert, t.elapsed())
}

pub async fn run(opts: Opts) {
    println!(
        "store claim/complete: {} jobs, {} concurrent workers, {} cores, sqlite synchronous={}",
        opts.jobs,
        opts.workers,
        crate::cores(),
        opts.synchronous
    );
    println!();
    println!("| backend | claim batch | enqueue (jobs/s) | claim+complete (jobs/s) |");
    println!("| --- | --- | --- | --- |");
    for backend in &opts.backends {
        for &batch in &opts.batches {
            let db = FreshDb::open(backend, &opts.synchronous, 16).await;
            let pg = match (&db.concrete, opts.explain) {
                (Concrete::Postgres { store, .. }, true) => Some(store.clone()),
                _ => None,
            };
            let (insert, drain) =
                run_once(db.store.clone(), pg, opts.jobs, opts.workers, batch).await;
            db.close().await;
            let rate = |d: Duration| opts.jobs as f64 / d.as_secs_f64();
            println!(
                "| {backend} | {batch} | {:.0} | {:.0} |",
                rate(insert),
                rate(drain)
            );
        }
    }
}
