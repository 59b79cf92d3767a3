//! The pool's rescuer: brings back jobs whose worker died, for a pool that runs on its own.
//!
//! Every lease/2 (±20 % jitter, so many workers do not beat in step; the first pass comes
//! soon after start) it runs [`crate::maintenance`]'s rescue and prune, the same code the
//! maintenance service and `errand jobs rescue` run, and reports each rescue as a
//! [`WorkerEvent::Rescued`]. A process that runs the maintenance service itself
//! (`errand serve`, `errand worker`) turns this off with
//! [`crate::WorkerBuilder::own_rescuer`].

use crate::event::WorkerEvent;
use crate::maintenance::rescue_and_prune;
use crate::pool::Shared;
use crate::signal::Signal;
use std::sync::Arc;

pub(crate) async fn run(shared: Arc<Shared>, stop: Signal) {
    if !shared.config.own_rescuer {
        return;
    }
    let period = shared.config.lease / 2;
    let mut wait = period.mul_f64(0.2 * fastrand::f64());
    loop {
        tokio::select! {
            () = stop.fired() => return,
            () = tokio::time::sleep(wait) => {}
        }
        rescue_and_prune(shared.store.as_ref(), shared.config.lease, |item| {
            shared.emit(WorkerEvent::Rescued {
                job_id: item.fence.job_id,
                action: item.action,
            });
        })
        .await;
        wait = period.mul_f64(0.8 + 0.4 * fastrand::f64());
    }
}
