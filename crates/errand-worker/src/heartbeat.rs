//! The heartbeat: keeps this worker's leases and its registry row alive.
//!
//! Every lease/3 it extends the leases of all the jobs this worker holds with one
//! `job_heartbeat_many` (so a job may run for hours, and a dead worker's jobs are back within
//! about one lease), and acts on what the store says about each:
//!
//! - `held == false`: another worker has the job now. The handler is told to stop
//!   ([`StopReason::LeaseLost`]), aborted after the cancel grace, and nothing is recorded.
//! - `cancel_requested`: the handler is told to stop ([`StopReason::Cancelled`]); once it
//!   returns, or the cancel grace passes, the executor acknowledges with `job_cancel_ack`.
//!
//! It also refreshes the worker's row (`worker_heartbeat`), registering again if the row
//! was pruned while this process could not reach the database.
//!
//! Beside it runs the lease watchdog: a job is run only while this worker knows its lease to
//! be held. When heartbeats have not renewed a lease for five sixths of it (the database is
//! slow or away, the process was starved), the watchdog stops the handler itself
//! ([`StopReason::LeaseLost`]) instead of waiting for a heartbeat to say so, because by the
//! time the lease ends the rescuer may hand the job to another worker. A heartbeat that
//! comes through later and finds the lease still held changes nothing: the attempt is given
//! up and its job is rescued, at least once and never twice at the same time.

use crate::pool::Shared;
use crate::signal::{Signal, StopReason};
use errand_store::JobHeartbeat;
use std::sync::Arc;

pub(crate) async fn run(shared: Arc<Shared>, stop: Signal) {
    let period = shared.config.lease / 3;
    let beats = async {
        loop {
            tokio::select! {
                () = stop.fired() => return,
                () = tokio::time::sleep(period) => {}
            }
            beat_jobs(&shared).await;
            beat_worker(&shared).await;
        }
    };
    tokio::join!(beats, watchdog(&shared, &stop));
}

/// The least lease a running job keeps before the watchdog stops it: a sixth of the lease.
/// A handler stopped for a lost lease gets at most a twelfth of the lease to return (see the
/// executor), so it is gone before the lease ends.
pub(crate) fn watchdog_margin(lease: std::time::Duration) -> std::time::Duration {
    lease / 6
}

async fn watchdog(shared: &Shared, stop: &Signal) {
    let margin = watchdog_margin(shared.config.lease);
    let every = (shared.config.lease / 20).max(std::time::Duration::from_millis(5));
    loop {
        tokio::select! {
            () = stop.fired() => return,
            () = tokio::time::sleep(every) => {}
        }
        for fence in shared.running.expiring(margin) {
            if shared.running.stop(&fence, StopReason::LeaseLost) {
                tracing::warn!(
                    job_id = fence.job_id,
                    attempt = fence.attempt,
                    "no heartbeat has renewed the job's lease in time: stopping its handler \
                     before the lease ends (the job will be rescued)"
                );
            }
        }
    }
}

async fn beat_jobs(shared: &Shared) {
    let fences = shared.running.fences();
    if fences.is_empty() {
        return;
    }
    let beat = JobHeartbeat {
        lease: shared.config.lease,
        fences,
    };
    let sent = tokio::time::Instant::now();
    let states = match shared.store.job_heartbeat_many(&beat).await {
        Ok(states) => states,
        Err(e) => {
            tracing::warn!(error = %e, jobs = beat.fences.len(), "extending job leases failed");
            return;
        }
    };
    // Each state names its fence, which is the registry's key: no matching by position.
    for state in states {
        let fence = &state.fence;
        let (job_id, attempt) = (fence.job_id, fence.attempt);
        if !state.held {
            if shared.running.stop(fence, StopReason::LeaseLost) {
                tracing::warn!(job_id, attempt, "lease lost: telling the handler to stop");
            }
            continue;
        }
        shared.running.extend(fence, sent + shared.config.lease);
        if state.cancel_requested && shared.running.stop(fence, StopReason::Cancelled) {
            tracing::info!(
                job_id,
                attempt,
                "cancel requested: telling the handler to stop"
            );
        }
    }
}

async fn beat_worker(shared: &Shared) {
    match shared.store.worker_heartbeat(&shared.worker_id).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(worker_id = %shared.worker_id, "worker row was pruned; registering again");
            if let Err(e) = shared.store.worker_register(&shared.registration).await {
                tracing::warn!(error = %e, "registering the worker again failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "worker heartbeat failed"),
    }
}
