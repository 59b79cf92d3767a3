//! W2: enqueue-to-start latency on an idle pool, and the disk's share of a commit measured
//! beside it.

use super::drain::noop_args;
use super::options::sqlite_sync;
use super::report::Latency;
use super::{note, CONCURRENCY, KIND, LATENCY_GAP, QUEUE};
use crate::db::{Concrete, FreshDb};
use errand::Client;
use errand_core::{HandlerError, JobId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `n` one-row durable commits on a bare table of a fresh database, [`LATENCY_GAP`] apart,
/// in ms: the floor under W2, which holds two commits (the enqueue and the claim).
pub async fn commit_probe(backend: &str, n: usize) -> Vec<f64> {
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
pub async fn latency(backend: &str, n: usize) -> Vec<(f64, f64)> {
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
