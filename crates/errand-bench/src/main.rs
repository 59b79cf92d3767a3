//! Errand's benchmarks. `cargo run --release -p errand-bench -- store` measures the store's
//! claim/complete throughput on both backends with claim batches of 1 and 100, and prints a
//! Markdown table (docs/benchmarks.md keeps the latest results).
//!
//! Each run uses a database of its own (a temporary SQLite file, a fresh PostgreSQL schema)
//! and removes it afterwards. Options: `--jobs N` (default 20000), `--workers N` (default 4),
//! `--backend sqlite|postgres|both`, `--batch 1,100`, `--synchronous full|normal` (SQLite), and `ERRAND_BENCH_DATABASE_URL` for the
//! PostgreSQL server (default postgres://postgres@127.0.0.1:5432/test).

use errand_core::{JobInsert, Limits, NewJob};
use errand_store::{JobClaim, JobComplete, Store};
use errand_store_postgres::{PgOptions, PgStore};
use errand_store_sqlite::{SqliteOptions, SqliteStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    jobs: usize,
    workers: usize,
    backends: Vec<&'static str>,
    batches: Vec<u32>,
    /// SQLite `synchronous` setting: `full` (default, durable on power loss) or `normal`.
    synchronous: String,
}

fn parse_args() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let mut opts = Opts { jobs: 20_000, workers: 4, backends: vec!["sqlite", "postgres"], batches: vec![1, 100], synchronous: "full".into() };
    match args.next().as_deref() {
        Some("store") => {}
        Some("--help") | Some("-h") | None => {
            return Err("usage: errand-bench store [--jobs N] [--workers N] [--backend sqlite|postgres|both] [--batch 1,100] [--synchronous full|normal]".into())
        }
        Some(other) => return Err(format!("unknown benchmark `{other}` (known: store)")),
    }
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("`{flag}` needs a value"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|_| format!("`{flag}` wants a number, got `{v}`"));
        match flag.as_str() {
            "--jobs" => opts.jobs = num(&value)?,
            "--workers" => opts.workers = num(&value)?.max(1),
            "--backend" => {
                opts.backends = match value.as_str() {
                    "sqlite" => vec!["sqlite"],
                    "postgres" => vec!["postgres"],
                    "both" => vec!["sqlite", "postgres"],
                    v => return Err(format!("`--backend` wants sqlite, postgres or both, got `{v}`")),
                }
            }
            "--batch" => {
                opts.batches = value
                    .split(',')
                    .map(|b| b.trim().parse::<u32>().map_err(|_| format!("`--batch` wants numbers, got `{b}`")))
                    .collect::<Result<_, _>>()?
            }
            "--synchronous" => {
                if value != "full" && value != "normal" {
                    return Err(format!("`--synchronous` wants full or normal, got `{value}`"));
                }
                opts.synchronous = value;
            }
            f => return Err(format!("unknown option `{f}`")),
        }
    }
    Ok(opts)
}

enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(Arc<PgStore>),
}

async fn open(backend: &str, synchronous: &str) -> (Arc<dyn Store>, Db) {
    let tag = format!("{}_{:08x}", std::process::id(), fastrand::u32(..));
    match backend {
        "sqlite" => {
            let path = std::env::temp_dir().join(format!("errand-bench-{tag}.db"));
            let target = format!("{}?synchronous={synchronous}", path.display());
            let s = SqliteStore::open(&target, SqliteOptions::default()).await.expect("open sqlite");
            s.migrate().await.expect("migrate");
            (Arc::new(s), Db::Sqlite(path))
        }
        _ => {
            let url = std::env::var("ERRAND_BENCH_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let opts = PgOptions { schema: Some(format!("errand_bench_{tag}")), max_connections: 16, ..Default::default() };
            let s = Arc::new(PgStore::connect(&url, opts).await.expect("connect postgres"));
            s.migrate().await.expect("migrate");
            (s.clone(), Db::Postgres(s))
        }
    }
}

async fn close(db: Db) {
    match db {
        Db::Sqlite(path) => {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
        Db::Postgres(s) => s.drop_schema().await.expect("drop bench schema"),
    }
}

fn job() -> JobInsert {
    NewJob::new("bench_noop", serde_json::json!({"n": 1})).validate(&Limits::default()).unwrap()
}

/// Enqueues `jobs` in bulk, then lets `workers` tasks claim `batch` at a time and complete
/// each batch in one call until the queue is empty. Returns (insert time, drain time).
async fn run_once(store: Arc<dyn Store>, jobs: usize, workers: usize, batch: u32) -> (Duration, Duration) {
    let t = Instant::now();
    let all: Vec<_> = (0..jobs).map(|_| job()).collect();
    for chunk in all.chunks(1000) {
        store.job_insert_many(chunk).await.expect("insert");
    }
    let insert = t.elapsed();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let claim = JobClaim { queue: "default".into(), worker_id: format!("bench-{w}"), limit: batch, lease: Duration::from_secs(30) };
            let mut done = 0usize;
            loop {
                let claimed = store.job_claim(&claim).await.expect("claim");
                if claimed.is_empty() {
                    return done;
                }
                let items: Vec<_> = claimed
                    .iter()
                    .map(|j| JobComplete { fence: j.fence().unwrap(), result: None })
                    .collect();
                store.job_complete_many(&items).await.expect("complete");
                done += claimed.len();
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

#[tokio::main]
async fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    println!("store claim/complete: {} jobs, {} concurrent workers, {} cores, sqlite synchronous={}", opts.jobs, opts.workers,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), opts.synchronous);
    println!();
    println!("| backend | claim batch | enqueue (jobs/s) | claim+complete (jobs/s) |");
    println!("| --- | --- | --- | --- |");
    for backend in &opts.backends {
        for &batch in &opts.batches {
            let (store, db) = open(backend, &opts.synchronous).await;
            let (insert, drain) = run_once(store, opts.jobs, opts.workers, batch).await;
            close(db).await;
            let rate = |d: Duration| opts.jobs as f64 / d.as_secs_f64();
            println!("| {backend} | {batch} | {:.0} | {:.0} |", rate(insert), rate(drain));
        }
    }
}
