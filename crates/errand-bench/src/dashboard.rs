//! `dashboard`: the server time of every API request the dashboard's pages make, on a
//! database of 1,000,000 jobs (the goal: every page under 300 ms of server time).
//!
//! Seeds `--jobs N` jobs in every state over four queues and five kinds, finished over the
//! last seven days (the stores' `baseline::seed_mixed`; 92 % succeeded, 3 % failed, 1 %
//! cancelled, 3 % queued of which a third scheduled, 1 % running of which a tenth stuck),
//! settles the database as autovacuum or a checkpoint would have, then sends each request
//! of each page `--runs` times through the real HTTP router (`errand_server::router`,
//! in-process: handler, store, JSON encoding and body, no socket) and reports p50, p95 and
//! max per request, and per page the sum of its requests' p95 (a page's requests run in
//! parallel in the browser, so the sum is an upper bound of what a user waits for).

use crate::db::{Concrete, FreshDb};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use errand_store::{WorkerQueue, WorkerRegistration};
use std::time::{Duration, Instant};
use tower::ServiceExt;

pub struct Opts {
    pub jobs: u64,
    pub runs: usize,
    pub backends: Vec<&'static str>,
}

pub const USAGE: &str =
    "errand-bench dashboard [--jobs 1000000] [--runs 15] [--backend sqlite|postgres|both]";

pub fn parse(args: &mut dyn Iterator<Item = String>) -> Result<Opts, String> {
    let mut opts = Opts {
        jobs: 1_000_000,
        runs: 15,
        backends: vec!["sqlite", "postgres"],
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("`{flag}` needs a value"));
        match flag.as_str() {
            "--jobs" => {
                opts.jobs = value()?
                    .parse()
                    .map_err(|_| "`--jobs` wants a number".to_string())?
            }
            "--runs" => {
                opts.runs = value()?
                    .parse()
                    .map_err(|_| "`--runs` wants a number".to_string())?
            }
            "--backend" => opts.backends = crate::parse_backend(&value()?)?,
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    if opts.runs == 0 {
        return Err("`--runs` must be at least 1".into());
    }
    Ok(opts)
}

/// The dashboard's pages and the requests each makes (app.js and views/*.js), with the
/// filters an operator uses on the jobs page.
fn pages(n: u64) -> Vec<(&'static str, Vec<String>)> {
    let mid = n / 2;
    // A failed job (i % 100 == 0 in the seed) near the middle, and a reference that exists.
    let failed_id = mid - mid % 100 + 100;
    let r = |s: &str| s.to_string();
    vec![
        (
            "overview",
            vec![
                r("/v1/me"),
                r("/v1/queues"),
                r("/v1/stats/throughput?window=1h&bucket=1m"),
                r("/v1/workers"),
                r("/v1/schedules"),
            ],
        ),
        ("jobs", vec![r("/v1/jobs?limit=50"), r("/v1/queues")]),
        (
            "jobs, next page",
            vec![format!("/v1/jobs?limit=50&cursor={}", n - 50)],
        ),
        (
            "jobs, deep page",
            vec![format!("/v1/jobs?limit=50&cursor={mid}")],
        ),
        ("jobs: failed", vec![r("/v1/jobs?status=failed&limit=50")]),
        ("jobs: running", vec![r("/v1/jobs?status=running&limit=50")]),
        (
            "jobs: cancelled",
            vec![r("/v1/jobs?status=cancelled&limit=50")],
        ),
        ("jobs: stuck", vec![r("/v1/jobs?derived=stuck&limit=50")]),
        (
            "jobs: scheduled",
            vec![r("/v1/jobs?derived=scheduled&limit=50")],
        ),
        (
            "jobs: retrying",
            vec![r("/v1/jobs?derived=retrying&limit=50")],
        ),
        ("jobs: queue", vec![r("/v1/jobs?queue=email&limit=50")]),
        (
            "jobs: kind",
            vec![r("/v1/jobs?kind=render_report&limit=50")],
        ),
        (
            "jobs: reference",
            vec![format!(
                "/v1/jobs?reference=order:{}&limit=50",
                mid - mid % 10
            )],
        ),
        (
            "jobs: failed+queue+kind",
            vec![r(
                "/v1/jobs?status=failed&queue=email&kind=send_email&limit=50",
            )],
        ),
        (
            "jobs: queued+queue",
            vec![r("/v1/jobs?status=queued&queue=reports&limit=50")],
        ),
        ("job", vec![format!("/v1/jobs/{failed_id}")]),
        ("schedules", vec![r("/v1/schedules")]),
        ("workers", vec![r("/v1/workers")]),
    ]
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

pub async fn run(opts: Opts) {
    println!(
        "## Dashboard: server time per request at {} jobs ({} runs each)\n",
        opts.jobs, opts.runs
    );
    for backend in &opts.backends {
        let db = FreshDb::open(backend, "normal", 8).await;
        let seeded = Instant::now();
        match &db.concrete {
            Concrete::Sqlite { store, .. } => {
                errand_store_sqlite::baseline::seed_mixed(
                    store,
                    opts.jobs,
                    Duration::from_secs(7 * 86_400),
                )
                .await
                .expect("seed");
                errand_store_sqlite::baseline::settle(store)
                    .await
                    .expect("settle");
            }
            Concrete::Postgres { store, .. } => {
                errand_store_postgres::baseline::seed_mixed(
                    store,
                    opts.jobs,
                    Duration::from_secs(7 * 86_400),
                )
                .await
                .expect("seed");
                errand_store_postgres::baseline::settle(store)
                    .await
                    .expect("settle");
            }
        }
        for (i, host) in ["web-1", "web-2", "batch-1"].iter().enumerate() {
            db.store
                .worker_register(&WorkerRegistration {
                    id: format!("{host}-{i}"),
                    host: (*host).into(),
                    pid: 1000 + i as i64,
                    version: env!("CARGO_PKG_VERSION").into(),
                    queues: vec![WorkerQueue {
                        name: "default".into(),
                        concurrency: 16,
                    }],
                })
                .await
                .expect("register worker");
        }
        eprintln!(
            "{backend}: seeded {} jobs in {:.1?}",
            opts.jobs,
            seeded.elapsed()
        );
        let client = errand::Client::from_store(db.store.clone());
        let app = errand_server::router(client, errand_server::ServerConfig::default());

        println!("### {backend}\n");
        println!("| page | request | status | p50 ms | p95 ms | max ms |");
        println!("| --- | --- | --- | ---: | ---: | ---: |");
        let mut page_rows = Vec::new();
        for (page, requests) in pages(opts.jobs) {
            let mut page_p95 = Duration::ZERO;
            for path in &requests {
                let mut times = Vec::with_capacity(opts.runs);
                let mut status = StatusCode::OK;
                // One warm-up: the first request after the seed reads cold pages.
                for run in 0..=opts.runs {
                    let req = Request::get(path.as_str()).body(Body::empty()).unwrap();
                    let started = Instant::now();
                    let res = app.clone().oneshot(req).await.unwrap();
                    status = res.status();
                    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                        .await
                        .unwrap();
                    let took = started.elapsed();
                    std::hint::black_box(body);
                    if run > 0 {
                        times.push(took);
                    }
                }
                times.sort();
                let p95 = pct(&times, 0.95);
                page_p95 += p95;
                println!(
                    "| {page} | `{path}` | {} | {} | {} | {} |",
                    status.as_u16(),
                    ms(pct(&times, 0.5)),
                    ms(p95),
                    ms(*times.last().unwrap())
                );
            }
            page_rows.push((page, page_p95));
        }
        println!("\n| page ({backend}) | sum of p95 ms | under 300 ms |");
        println!("| --- | ---: | --- |");
        for (page, t) in page_rows {
            println!(
                "| {page} | {} | {} |",
                ms(t),
                if t < Duration::from_millis(300) {
                    "yes"
                } else {
                    "**no**"
                }
            );
        }
        println!();
        db.close().await;
    }
}
