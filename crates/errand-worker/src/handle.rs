//! A started pool, and its graceful shutdown (design.md, Delivery guarantees).
//!
//! Shutdown, in order:
//! 1. Stop claiming: every producer leaves its loop; the jobs it claimed but had not started
//!    yet (waiting for a slot, or brought by a claim in flight) are handed back with step 5.
//! 2. Let running jobs finish for up to `shutdown_grace`; their outcomes are recorded as usual.
//! 3. Ask the rest to stop ([`crate::StopReason::Shutdown`]); each has `cancel_grace` to
//!    return, then is aborted.
//! 4. Wait for every outcome to be recorded (the completer flushes its last batch; the
//!    heartbeat keeps the leases alive meanwhile). If the store stays unreachable for a
//!    further lease, give up: those jobs stay `running` and are rescued after their lease.
//! 5. Hand the stopped jobs back with one `job_release_many`: `queued`, attempt not spent.
//! 6. Stop the heartbeat, the rescuer and the completer; remove the worker's row.

use crate::event::{JobOutcome, WorkerEvent};
use crate::pool::Shared;
use crate::retry::persist;
use crate::signal::{Signal, StopReason};
use errand_store::Ack;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// What a graceful shutdown did with the jobs that were running when it began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs whose handlers returned within the shutdown grace; their outcomes were recorded
    /// as usual.
    pub finished_during_grace: usize,
    /// Jobs handed back to `queued` without spending the attempt: stopped after the grace, or
    /// claimed but not started yet when shutdown began.
    pub released: usize,
    /// Jobs stopped after the grace (or claimed and not started) but not handed back: another stop came first (timeout,
    /// cancel, lost lease) and was recorded instead, the lease had been lost by then, or the
    /// store could not be reached (the rescuer requeues those after their lease).
    pub not_released: usize,
}

/// A running worker pool. Call [`WorkerHandle::shutdown`] to stop it gracefully; dropping
/// the handle instead aborts every task of the pool at once (handlers included) and leaves
/// its jobs `running` until the rescuer of another worker takes them after their lease.
pub struct WorkerHandle {
    shared: Arc<Shared>,
    producers: Vec<JoinHandle<()>>,
    completer: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    rescuer: JoinHandle<()>,
    background: Signal,
    done: bool,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("id", &self.id())
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

impl WorkerHandle {
    pub(crate) fn new(
        shared: Arc<Shared>,
        producers: Vec<JoinHandle<()>>,
        completer: JoinHandle<()>,
        heartbeat: JoinHandle<()>,
        rescuer: JoinHandle<()>,
        background: Signal,
    ) -> Self {
        WorkerHandle {
            shared,
            producers,
            completer,
            heartbeat,
            rescuer,
            background,
            done: false,
        }
    }

    /// This worker's id: its row in the worker registry, and the `worker_id` of the jobs it runs.
    pub fn id(&self) -> &str {
        &self.shared.worker_id
    }

    /// How many claimed jobs this worker holds (running, or having their outcome recorded).
    pub fn running(&self) -> usize {
        self.shared.running.len()
    }

    /// Subscribes to the pool's events from now on (see [`WorkerEvent`]).
    pub fn events(&self) -> broadcast::Receiver<WorkerEvent> {
        self.shared.events.subscribe()
    }

    /// Stops the pool gracefully (see the module doc for the steps) and reports what became
    /// of the jobs that were running. Takes at most about `shutdown_grace + cancel_grace +
    /// lease` when the store is reachable.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let shared = self.shared.clone();
        let config = shared.config.clone();
        tracing::info!(worker_id = %shared.worker_id, "worker shutting down");

        // 1. Stop claiming. A claim stuck on an unreachable store is abandoned after the grace
        //    (anything it did claim is rescued after its lease).
        shared.stop_claiming.fire();
        for producer in self.producers.drain(..) {
            let abort = producer.abort_handle();
            if timeout(config.shutdown_grace, producer).await.is_err() {
                abort.abort();
            }
        }

        let unstarted = shared
            .to_release
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();

        // 2. Let running jobs finish.
        let at_start = shared.running.len();
        let _ = timeout(config.shutdown_grace, shared.running.wait_empty()).await;

        // 3. Stop the rest; 4. wait for their outcomes (and the completer's last batch).
        let stopped = shared.running.stop_all(StopReason::Shutdown);
        let report_base = ShutdownReport {
            finished_during_grace: at_start.saturating_sub(stopped),
            ..Default::default()
        };
        if stopped > 0 {
            tracing::info!(
                jobs = stopped,
                "grace period over: stopping the remaining jobs"
            );
        }
        let flush = config.cancel_grace + config.lease;
        if timeout(flush, shared.running.wait_empty()).await.is_err() {
            tracing::warn!(
                "outcomes still unrecorded after the flush window; giving up on the store"
            );
            shared.abandon.fire();
            let _ = timeout(config.cancel_grace, shared.running.wait_empty()).await;
        }

        // 5. Hand back what shutdown stopped.
        let released = release_stopped(&shared).await;

        // 6. Stop the background roles and leave the registry (one try: a row left behind is
        //    pruned by other workers' rescuers).
        self.background.fire();
        for task in [&mut self.heartbeat, &mut self.rescuer] {
            if timeout(config.lease, &mut *task).await.is_err() {
                task.abort();
            }
        }
        self.completer.abort();
        shared.running.close();
        match timeout(config.lease, shared.store.worker_remove(&shared.worker_id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "removing the worker row failed; it is pruned later")
            }
            Err(_) => tracing::warn!("removing the worker row timed out; it is pruned later"),
        }
        self.done = true;
        tracing::info!(worker_id = %shared.worker_id, "worker stopped");
        ShutdownReport {
            released,
            not_released: (stopped + unstarted).saturating_sub(released),
            ..report_base
        }
    }
}

/// Hands the jobs that shutdown stopped back to `queued` with one `job_release_many`;
/// returns how many were released. Bounded by a lease: past it the leases have run out and
/// rescuers take over anyway.
async fn release_stopped(shared: &Shared) -> usize {
    let stopped = std::mem::take(&mut *shared.to_release.lock().unwrap_or_else(|p| p.into_inner()));
    if stopped.is_empty() {
        return 0;
    }
    let fences: Vec<_> = stopped.iter().map(|(fence, _)| fence.clone()).collect();
    let release = persist(shared, "job_release_many", || {
        shared.store.job_release_many(&fences)
    });
    let acks = match timeout(shared.config.lease, release).await {
        Ok(Ok(acks)) => acks,
        Ok(Err(e)) => {
            tracing::error!(
                error = %e,
                jobs = fences.len(),
                "could not release jobs; they stay running until the rescuer requeues them"
            );
            vec![]
        }
        Err(_) => {
            tracing::error!(
                jobs = fences.len(),
                "releasing jobs timed out; they stay running until the rescuer requeues them"
            );
            vec![]
        }
    };
    let mut released = 0;
    for (i, (fence, kind)) in stopped.into_iter().enumerate() {
        let outcome = match acks.get(i) {
            Some(Ack::Done) => {
                released += 1;
                tracing::info!(
                    job_id = fence.job_id,
                    kind = %kind,
                    attempt = fence.attempt,
                    "job released back to its queue"
                );
                JobOutcome::Released
            }
            Some(Ack::Stale) => JobOutcome::Stale,
            None => JobOutcome::Unrecorded,
        };
        shared.emit(WorkerEvent::JobFinished {
            job_id: fence.job_id,
            kind,
            attempt: fence.attempt,
            outcome,
        });
    }
    released
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.shared.stop_claiming.fire();
        self.background.fire();
        for p in &self.producers {
            p.abort();
        }
        self.heartbeat.abort();
        self.rescuer.abort();
        self.completer.abort();
        let abandoned = self.shared.running.close();
        if abandoned > 0 {
            tracing::warn!(
                jobs = abandoned,
                "worker handle dropped without shutdown: jobs aborted and left for the rescuer"
            );
        }
    }
}
