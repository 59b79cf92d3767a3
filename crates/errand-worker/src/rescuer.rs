//! The rescuer: brings back jobs whose worker died.
//!
//! Every lease/2 (±20 % jitter, so many workers do not beat in step; the first pass comes
//! soon after start) it lists running jobs whose lease expired, decides each with
//! `errand_core::decide_rescue` (requeue, fail when attempts are used up, cancel when a
//! cancel was requested) and applies the decisions with one `job_rescue_many`. The store
//! applies a decision only if the job is still running under the same fence with its lease
//! still expired, so every worker runs a rescuer and two rescuing one job at once, or a
//! worker that came back to life, change nothing.
//!
//! It also prunes registry rows of workers not seen for 10 leases (they died without a clean
//! shutdown). The cut-off is computed from this host's clock: a wide margin covers clock skew.

use crate::event::WorkerEvent;
use crate::pool::Shared;
use crate::signal::Signal;
use errand_core::{decide_rescue, RescueAction};
use errand_store::{Ack, JobRescue};
use std::sync::Arc;

/// Stuck jobs listed per pass; a full page is followed by another.
const PAGE: u32 = 500;

pub(crate) async fn run(shared: Arc<Shared>, stop: Signal) {
    let period = shared.config.lease / 2;
    let mut wait = period.mul_f64(0.2 * fastrand::f64());
    loop {
        tokio::select! {
            () = stop.fired() => return,
            () = tokio::time::sleep(wait) => {}
        }
        rescue(&shared).await;
        prune(&shared).await;
        wait = period.mul_f64(0.8 + 0.4 * fastrand::f64());
    }
}

async fn rescue(shared: &Shared) {
    loop {
        let stuck = match shared.store.job_list_stuck(PAGE).await {
            Ok(stuck) => stuck,
            Err(e) => {
                tracing::warn!(error = %e, "listing stuck jobs failed");
                return;
            }
        };
        let items: Vec<JobRescue> = stuck
            .iter()
            .filter_map(|job| {
                let fence = job.fence()?;
                let action = decide_rescue(
                    job.attempt,
                    job.max_attempts,
                    job.cancel_requested_at.is_some(),
                );
                let message = match action {
                    RescueAction::Requeue => format!(
                        "lease expired: worker {} stopped heartbeating; requeued",
                        fence.worker_id
                    ),
                    RescueAction::Fail => format!(
                        "lease expired: worker {} stopped heartbeating on the last attempt",
                        fence.worker_id
                    ),
                    RescueAction::Cancel => format!(
                        "lease expired: worker {} stopped heartbeating after a cancel request",
                        fence.worker_id
                    ),
                };
                Some(JobRescue {
                    fence,
                    action,
                    message,
                })
            })
            .collect();
        if items.is_empty() {
            return;
        }
        let acks = match shared.store.job_rescue_many(&items).await {
            Ok(acks) => acks,
            Err(e) => {
                tracing::warn!(error = %e, "rescuing stuck jobs failed");
                return;
            }
        };
        let mut rescued = 0;
        for (item, ack) in items.iter().zip(acks) {
            if ack == Ack::Done {
                rescued += 1;
                tracing::info!(
                    job_id = item.fence.job_id,
                    attempt = item.fence.attempt,
                    worker_id = %item.fence.worker_id,
                    action = ?item.action,
                    "rescued a job whose lease expired"
                );
                shared.emit(WorkerEvent::Rescued {
                    job_id: item.fence.job_id,
                    action: item.action,
                });
            }
        }
        // A short page is the last; a page where nothing applied (all raced) would repeat.
        if stuck.len() < PAGE as usize || rescued == 0 {
            return;
        }
    }
}

async fn prune(shared: &Shared) {
    let horizon = shared.config.lease * 10;
    let Ok(horizon) = chrono::Duration::from_std(horizon) else {
        return;
    };
    let cut_off = chrono::Utc::now() - horizon;
    match shared.store.worker_prune(cut_off).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            pruned = n,
            "removed the rows of workers not seen for 10 leases"
        ),
        Err(e) => tracing::warn!(error = %e, "pruning worker rows failed"),
    }
}
