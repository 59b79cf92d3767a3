//! The cases of the behaviour suite. Each takes a fresh [`Harness`] and panics on failure.
//! Named after the store operation they exercise (`job_claim_*`, `queue_pause_*`), so one grep
//! finds an operation's trait method, its SQL in each backend and its tests.

use crate::harness::Harness;
use chrono::Duration as ChronoDuration;
use errand_core::{Fence, Job};
use errand_store::JobClaim;
use std::time::Duration;

mod enqueue;
mod flow;
mod operator;
mod progress;
mod reads;
mod rescue;
mod stats;
mod wakeups;
mod worker_path;
mod workers;

pub use enqueue::*;
pub use flow::*;
pub use operator::*;
pub use progress::*;
pub use reads::*;
pub use rescue::*;
pub use stats::*;
pub use wakeups::*;
pub use worker_path::*;
pub use workers::*;

pub(super) const LEASE: Duration = Duration::from_secs(30);

pub(super) fn claim(queue: &str, worker: &str, limit: u32) -> JobClaim {
    JobClaim {
        queue: queue.into(),
        worker_id: worker.into(),
        limit,
        lease: LEASE,
    }
}

pub(super) async fn claim_one(h: &Harness, worker: &str) -> Job {
    let mut jobs = h
        .store
        .job_claim(&claim("default", worker, 1))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "expected one job to claim");
    jobs.remove(0).job
}

pub(super) async fn get(h: &Harness, id: i64) -> Job {
    h.store.job_get(id).await.unwrap().expect("job exists")
}

pub(super) fn fence(job: &Job) -> Fence {
    job.fence().expect("running job has a worker")
}

/// Records the success of each of `jobs`, which their claimer still holds.
pub(super) async fn complete(store: &dyn errand_store::Store, jobs: &[errand_core::ClaimedJob]) {
    let items: Vec<_> = jobs
        .iter()
        .map(|j| errand_store::JobComplete {
            fence: fence(j),
            result: None,
        })
        .collect();
    let acks = store.job_complete_many(&items).await.unwrap();
    assert!(
        acks.iter().all(|a| *a == errand_store::Ack::Done),
        "own leases complete"
    );
}

pub(super) fn chrono(d: Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap()
}
