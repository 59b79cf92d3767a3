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

use crate::pool::Shared;
use crate::signal::{Signal, StopReason};
use errand_store::JobHeartbeat;
use std::sync::Arc;

pub(crate) async fn run(shared: Arc<Shared>, stop: Signal) {
    let period = shared.config.lease / 3;
    loop {
        tokio::select! {
            () = stop.fired() => return,
            () = tokio::time::sleep(period) => {}
        }
        beat_jobs(&shared).await;
        beat_worker(&shared).await;
    }
}

async fn beat_jobs(shared: &Shared) {
    let jobs = shared.running.keys();
    if jobs.is_empty() {
        return;
    }
    let beat = JobHeartbeat {
        worker_id: shared.worker_id.to_string(),
        lease: shared.config.lease,
        jobs,
    };
    let sent = tokio::time::Instant::now();
    let states = match shared.store.job_heartbeat_many(&beat).await {
        Ok(states) => states,
        Err(e) => {
            tracing::warn!(error = %e, jobs = beat.jobs.len(), "extending job leases failed");
            return;
        }
    };
    for (&key, state) in beat.jobs.iter().zip(states) {
        let (job_id, attempt) = key;
        if state.job_id != job_id {
            tracing::error!(
                job_id,
                got = state.job_id,
                "job_heartbeat_many answered out of order"
            );
            return;
        }
        if state.held {
            shared.running.extend(key, sent + shared.config.lease);
        }
        if !state.held {
            if shared.running.stop(key, StopReason::LeaseLost) {
                tracing::warn!(job_id, attempt, "lease lost: telling the handler to stop");
            }
        } else if state.cancel_requested && shared.running.stop(key, StopReason::Cancelled) {
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
