//! The scheduler benchmark (`cargo run --release -p errand-bench -- scheduler`):
//!
//! - **S1, fire-to-start delay**: a per-second schedule (`every = "1s"`) for `--seconds`
//!   (default 60) with the scheduler loop and a worker pool in this process; for each job,
//!   its `started_at` (the store's clock at claim) minus its fire time (from its unique key).
//!   Median, p99 and max.
//! - **S2, scheduler CPU with 10,000 schedules**: 10,000 hourly schedules (`M * * * *`, the
//!   minute spread over the hour: about 167 fires at the start of each minute), the scheduler loop
//!   running, and this process's CPU time (user + system, from `/proc/self/stat`) per second of
//!   wall time over `--cpu-seconds` (default 30), after the first pass over the new schedules.
//!   On SQLite that includes the database work (it runs in this process); on PostgreSQL the
//!   server's share is not counted.

use crate::db::FreshDb;
use chrono::{DateTime, Utc};
use errand::{Client, JobList, JobStatus, ScheduleSpec, SchedulerOptions};
use errand_store::{ScheduleSource, ScheduleWrite};
use std::time::{Duration, Instant};

pub const USAGE: &str = "scheduler [--backend sqlite|postgres|both] [--seconds N] [--cpu-seconds N] [--schedules N] [--only s1,s2]";

pub struct Options {
    backends: Vec<&'static str>,
    seconds: u64,
    cpu_seconds: u64,
    schedules: usize,
    s1: bool,
    s2: bool,
}

pub fn parse(args: &mut impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        backends: vec!["sqlite", "postgres"],
        seconds: 60,
        cpu_seconds: 30,
        schedules: 10_000,
        s1: true,
        s2: true,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("`{flag}` needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("`{flag}` wants a number, got `{v}`"))
        };
        match flag.as_str() {
            "--backend" => o.backends = crate::parse_backend(&value()?)?,
            "--seconds" => o.seconds = number(value()?)?,
            "--cpu-seconds" => o.cpu_seconds = number(value()?)?,
            "--schedules" => o.schedules = number(value()?)? as usize,
            "--only" => {
                let v = value()?;
                o.s1 = v.split(',').any(|s| s == "s1");
                o.s2 = v.split(',').any(|s| s == "s2");
            }
            other => return Err(format!("unknown flag `{other}`")),
        }
    }
    Ok(o)
}

pub async fn run(o: Options) {
    println!("| backend | measurement | result |\n| --- | --- | --- |");
    for backend in &o.backends {
        if o.s1 {
            let (p50, p99, max, n) = fire_delay(backend, o.seconds).await;
            println!(
                "| {backend} | S1 fire-to-start delay, `every = \"1s\"` for {}s ({n} runs) | median {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms |",
                o.seconds
            );
        }
        if o.s2 {
            let (cpu, fired) = cpu_with_schedules(backend, o.schedules, o.cpu_seconds).await;
            println!(
                "| {backend} | S2 scheduler CPU, {} hourly schedules, {}s ({fired} fires) | {cpu:.1} ms CPU per second ({:.2}% of a core) |",
                o.schedules,
                o.cpu_seconds,
                cpu / 10.0
            );
        }
    }
}

fn fire_time(key: &str) -> Option<DateTime<Utc>> {
    key.rsplit_once(':').and_then(|_| {
        // schedule:NAME:RFC3339 (the timestamp itself contains ':').
        let rest = key.strip_prefix("schedule:")?;
        let (_, at) = rest.split_once(':')?;
        at.parse().ok()
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

async fn fire_delay(backend: &str, seconds: u64) -> (f64, f64, f64, usize) {
    let db = FreshDb::open(backend, "full", 10).await;
    let client = Client::from_store(db.store.clone());
    let spec = ScheduleSpec {
        every: Some("1s".into()),
        kind: "noop".into(),
        args: serde_json::json!({}),
        overlap: errand::OverlapPolicy::Allow,
        coalesce: true,
        ..Default::default()
    };
    client.schedule_create("tick", &spec).await.expect("create");
    let worker = client
        .worker()
        .queue("default", 4)
        .register_kind("noop", |_ctx, _args: serde_json::Value| async move {
            Ok(serde_json::json!({}))
        })
        .start()
        .await
        .expect("worker");
    let scheduler = client.scheduler(SchedulerOptions::default());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    scheduler.shutdown().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.shutdown().await;
    let jobs = client
        .list(&JobList {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .expect("list")
        .jobs;
    let mut delays: Vec<f64> = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Succeeded)
        .filter_map(|j| {
            let fire = fire_time(j.unique_key.as_deref()?)?;
            let started = j.started_at?;
            Some((started - fire).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    delays.sort_by(|a, b| a.total_cmp(b));
    db.close().await;
    (
        percentile(&delays, 50.0),
        percentile(&delays, 99.0),
        delays.last().copied().unwrap_or(f64::NAN),
        delays.len(),
    )
}

/// User + system CPU time of this process, from `/proc/self/stat` (fields 14 and 15, in
/// clock ticks of 10 ms on Linux).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, stime 15.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(14) + ticks(15)) * 10)
}

async fn cpu_with_schedules(backend: &str, n: usize, seconds: u64) -> (f64, usize) {
    let db = FreshDb::open(backend, "normal", 10).await;
    let client = Client::from_store(db.store.clone());
    for i in 0..n {
        let spec = ScheduleSpec {
            cron: Some(format!("{} * * * *", i % 60)),
            kind: "noop".into(),
            args: serde_json::json!({ "i": i }),
            overlap: errand::OverlapPolicy::Allow,
            coalesce: true,
            ..Default::default()
        };
        // Straight to the store: the spec is valid by construction.
        db.store
            .schedule_create(&ScheduleWrite {
                name: format!("s{i:05}"),
                spec: serde_json::to_value(&spec).unwrap(),
                kind: "noop".into(),
                queue: "default".into(),
                paused: false,
                source: ScheduleSource::Api,
            })
            .await
            .expect("create");
    }
    let scheduler = client.scheduler(SchedulerOptions::default());
    // The first pass looks at every new schedule once; measure the steady state after it.
    let settle = Instant::now();
    loop {
        let due = db.store.schedule_list_due(1).await.expect("due");
        if due.schedules.is_empty() || settle.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let jobs_before = count_jobs(&client).await;
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (cpu1, wall1) = (cpu_time(), Instant::now());
    let fired = count_jobs(&client).await - jobs_before;
    scheduler.shutdown().await;
    db.close().await;
    let per_sec = (cpu1 - cpu0).as_secs_f64() * 1000.0 / (wall1 - wall0).as_secs_f64();
    (per_sec, fired)
}

async fn count_jobs(client: &Client) -> usize {
    client
        .queue_stats()
        .await
        .expect("stats")
        .iter()
        .map(|q| (q.queued + q.running + q.succeeded + q.failed + q.cancelled) as usize)
        .sum()
}
