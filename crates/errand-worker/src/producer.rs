//! The producer: one claim loop per queue.
//!
//! A semaphore of `concurrency` permits bounds the queue's running handlers. The loop claims
//! as many jobs as it has free permits (at most `max_claim_batch`) and starts each with a
//! permit. A claim that came back full means more may be waiting, so it claims again at once
//! (after a permit frees up, if none is left). Otherwise the queue looks drained, and it
//! sleeps until the first of:
//!
//! - a wake-up hint from [`errand_store::Store::subscribe`] for this queue (or `*`), or a
//!   `Lagged` error, which may have swallowed one;
//! - the poll interval, which finds delayed jobs whose `run_at` has come, jobs enqueued by
//!   other processes on SQLite (hints stay in-process there) and hints that were lost;
//! - shutdown.
//!
//! A store error (the database restarting, say) is logged and the claim retried after a
//! backoff of 100 ms doubling to 5 s. Jobs already started are not affected.

use crate::event::WorkerEvent;
use crate::executor;
use crate::pool::Shared;
use crate::retry::RetryDelay;
use errand_store::{JobClaim, JobsReady};
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::Semaphore;

/// Hints for every queue carry this name.
const ANY_QUEUE: &str = "*";

pub(crate) async fn run(shared: Arc<Shared>, queue: String, concurrency: u32) {
    let slots = Arc::new(Semaphore::new(concurrency as usize));
    let mut hints = Some(shared.store.subscribe());
    let mut retry = RetryDelay::new();
    let batch = shared.config.max_claim_batch.max(1) as usize;
    let stop = shared.stop_claiming.clone();

    while !stop.is_fired() {
        if slots.available_permits() == 0 {
            // Full: the last claim got all it asked for, so more may wait. Claim when a slot frees.
            tokio::select! {
                biased;
                () = stop.fired() => break,
                permit = slots.clone().acquire_owned() => drop(permit),
            }
            continue;
        }
        let mut permits = Vec::new();
        while permits.len() < batch {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let want = permits.len();
        // Hints sent until now are covered by this claim.
        drain(&mut hints);
        let claim = JobClaim {
            queue: queue.clone(),
            worker_id: shared.worker_id.to_string(),
            limit: want as u32,
            lease: shared.config.lease,
        };
        match shared.store.job_claim(&claim).await {
            Ok(jobs) => {
                retry.reset();
                let got = jobs.len();
                shared.emit(WorkerEvent::Claimed {
                    queue: queue.clone(),
                    count: got,
                });
                if got > want {
                    // A store bug; the extra jobs are left running and rescued after their lease.
                    tracing::error!(
                        queue,
                        want,
                        got,
                        "job_claim returned more jobs than asked for"
                    );
                }
                for (job, permit) in jobs.into_iter().zip(permits.drain(..)) {
                    executor::spawn(&shared, job, permit);
                }
                if got >= want {
                    continue;
                }
            }
            Err(e) => {
                drop(permits);
                let wait = retry.next_delay();
                tracing::warn!(
                    queue,
                    error = %e,
                    retry_in_ms = wait.as_millis() as u64,
                    "claiming jobs failed; retrying"
                );
                tokio::select! {
                    () = stop.fired() => break,
                    () = tokio::time::sleep(wait) => {}
                }
                continue;
            }
        }
        drop(permits);
        tokio::select! {
            biased;
            () = stop.fired() => break,
            () = next_hint(&mut hints, &queue) => {}
            () = tokio::time::sleep(shared.config.poll_interval) => {}
        }
    }
    tracing::debug!(queue, "producer stopped claiming");
}

/// Completes on a hint for `queue` (or any queue), or on `Lagged`. Never completes once the
/// channel is closed (the poll interval takes over).
async fn next_hint(hints: &mut Option<broadcast::Receiver<JobsReady>>, queue: &str) {
    if let Some(rx) = hints.as_mut() {
        loop {
            match rx.recv().await {
                Ok(h) if h.queue == queue || h.queue == ANY_QUEUE => return,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => break,
            }
        }
        tracing::debug!(queue, "wake-up hints closed; relying on the poll interval");
        *hints = None;
    }
    std::future::pending().await
}

fn drain(hints: &mut Option<broadcast::Receiver<JobsReady>>) {
    if let Some(rx) = hints.as_mut() {
        loop {
            match rx.try_recv() {
                Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Closed) => {
                    *hints = None;
                    return;
                }
            }
        }
    }
}
