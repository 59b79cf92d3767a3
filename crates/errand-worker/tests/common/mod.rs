//! Helpers shared by the worker tests: a pool builder with test timings, job inserts, and
//! bounded waits on the store or on the pool's events (signals, not sleeps).
#![allow(dead_code)]

use errand_core::{EventKind, Job, JobId, JobInsert, JobStatus, Limits, NewJob};
use errand_store::JobList;
use errand_store_tests::Harness;
use errand_worker::{JobOutcome, Worker, WorkerBuilder, WorkerEvent};
use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

/// How long any single wait may take before the test fails. Generous: it bounds a hang, it
/// is not a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A pool on the harness store polling every 100 ms (leases as in production).
pub fn pool(h: &Harness) -> WorkerBuilder {
    Worker::builder(h.store.clone()).poll_interval(Duration::from_millis(100))
}

pub fn job(kind: &str, args: Value) -> JobInsert {
    NewJob::new(kind, args)
        .validate(&Limits::default())
        .expect("valid job")
}

pub async fn insert(h: &Harness, job: JobInsert) -> JobId {
    h.insert(job).await
}

pub async fn get(h: &Harness, id: JobId) -> Job {
    h.store.job_get(id).await.unwrap().expect("job exists")
}

/// Polls `check` every 20 ms until it returns `Some`, failing after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits until the job is in `status` (and, for `queued`, has been attempted `attempt` times).
pub async fn wait_status(h: &Harness, id: JobId, status: JobStatus) -> Job {
    eventually(&format!("job {id} to be {status}"), || async {
        let j = get(h, id).await;
        (j.status == status).then_some(j)
    })
    .await
}

pub async fn wait_queued_after(h: &Harness, id: JobId, attempt: i32) -> Job {
    eventually(
        &format!("job {id} to be queued after attempt {attempt}"),
        || async {
            let j = get(h, id).await;
            (j.status == JobStatus::Queued && j.attempt == attempt).then_some(j)
        },
    )
    .await
}

/// The next event matching `pred`, skipping others (and lag), failing after [`PATIENCE`].
pub async fn next_event(
    rx: &mut broadcast::Receiver<WorkerEvent>,
    mut pred: impl FnMut(&WorkerEvent) -> bool,
) -> WorkerEvent {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("event channel closed"),
            }
        }
    })
    .await
    .expect("timed out waiting for a worker event")
}

pub async fn started(rx: &mut broadcast::Receiver<WorkerEvent>, id: JobId) {
    next_event(
        rx,
        |e| matches!(e, WorkerEvent::JobStarted { job_id, .. } if *job_id == id),
    )
    .await;
}

pub async fn finished(rx: &mut broadcast::Receiver<WorkerEvent>, id: JobId) -> JobOutcome {
    match next_event(
        rx,
        |e| matches!(e, WorkerEvent::JobFinished { job_id, .. } if *job_id == id),
    )
    .await
    {
        WorkerEvent::JobFinished { outcome, .. } => outcome,
        _ => unreachable!(),
    }
}

pub async fn event_kinds(h: &Harness, id: JobId) -> Vec<EventKind> {
    h.store
        .event_list(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// Every job of the store, up to 5000.
pub async fn all_jobs(h: &Harness) -> Vec<Job> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = h
            .store
            .job_list(&JobList {
                before_id: before,
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        out.extend(page.jobs);
        match page.next_cursor {
            Some(c) => before = Some(c),
            None => return out,
        }
    }
}

/// Waits until `n` jobs of `queue` have succeeded.
pub async fn wait_succeeded(h: &Harness, queue: &str, n: u64) {
    eventually(&format!("{n} succeeded jobs in `{queue}`"), || async {
        let stats = h.store.queue_stats().await.unwrap();
        stats
            .iter()
            .find(|s| s.queue == queue && s.succeeded >= n)
            .map(|_| ())
    })
    .await
}
