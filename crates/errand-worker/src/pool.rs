//! What the pool's roles share: the store, the settings, the handlers, and the registry of
//! jobs this worker is running.

use crate::builder::TaskOptions;
use crate::completer::CompleteRequest;
use crate::event::WorkerEvent;
use crate::handler::ErasedHandler;
use crate::signal::{JobStop, Signal, StopReason};
use errand_core::{Fence, TaskCatalog};
use errand_store::{Store, WorkerRegistration};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, Notify};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

/// The pool's settings, fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub lease: Duration,
    pub poll_interval: Duration,
    pub shutdown_grace: Duration,
    pub cancel_grace: Duration,
    pub max_claim_batch: u32,
    /// How long recording one outcome is retried through store errors before giving up
    /// (the job is then left to the rescuer).
    pub record_retry_for: Duration,
    /// How many claims per queue may be in flight at once (the store's
    /// [`errand_store::StoreTuning`]).
    pub claims_in_flight: usize,
    /// How many success batches may be written at once (the store's tuning).
    pub completions_in_flight: usize,
    /// Whether the pool runs its own rescuer (off where the process runs the maintenance
    /// service).
    pub own_rescuer: bool,
}

pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub worker_id: Arc<str>,
    pub registration: WorkerRegistration,
    pub config: Config,
    pub handlers: HashMap<String, ErasedHandler>,
    pub task_options: HashMap<String, TaskOptions>,
    /// The deployment's task settings: the backoff and timeout of kinds without
    /// [`TaskOptions`] of their own.
    pub tasks: Arc<TaskCatalog>,
    pub running: Registry,
    pub events: broadcast::Sender<WorkerEvent>,
    pub completer: mpsc::UnboundedSender<CompleteRequest>,
    /// Fired when shutdown begins: producers claim nothing more.
    pub stop_claiming: Signal,
    /// Fired when shutdown stops waiting for the store: outcome recording gives up at once.
    pub abandon: Signal,
    /// Jobs stopped by shutdown (fence and kind), to hand back in one `job_release_many`.
    pub to_release: Mutex<Vec<(Fence, String)>>,
}

impl Shared {
    pub(crate) fn emit(&self, event: WorkerEvent) {
        // No subscriber is the normal case outside tests.
        let _ = self.events.send(event);
    }

    /// The kind's timeout and backoff: the pool's [`TaskOptions`], else the catalog's.
    pub(crate) fn options(&self, kind: &str) -> TaskOptions {
        let own = self.task_options.get(kind).cloned().unwrap_or_default();
        let task = self.tasks.get(kind);
        TaskOptions {
            timeout: own.timeout.or_else(|| task.and_then(|t| t.timeout)),
            backoff: own.backoff.or_else(|| task.and_then(|t| t.backoff)),
        }
    }
}

struct Entry {
    stop: JobStop,
    /// Until when the store's lease is known to be held: the send time of the claim or
    /// heartbeat that last set it, plus the lease. Measured on this process's monotonic clock,
    /// which keeps running while the process is frozen (SIGSTOP), so a worker that wakes up
    /// past it knows it may no longer hold the job.
    lease_until: Instant,
    /// The handler has returned (or was aborted): only its outcome is still being recorded.
    handler_done: bool,
    supervisor: Option<AbortHandle>,
}

#[derive(Default)]
struct RegistryState {
    closed: bool,
    jobs: HashMap<Fence, Entry>,
}

/// The jobs this worker holds, from claim until their outcome is recorded, by the fence their
/// claim gave them (so a job this worker lost and claimed again is two entries). The
/// heartbeat extends their leases; shutdown waits for it to empty.
#[derive(Default)]
pub(crate) struct Registry {
    state: Mutex<RegistryState>,
    changed: Notify,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, RegistryState> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a claimed job that is not started yet (it waits for a free slot in its
    /// queue): from now on the heartbeat extends its lease and cancel or lease-loss reach its
    /// stop signal. False once closed.
    pub(crate) fn hold(&self, key: &Fence, stop: JobStop, lease_until: Instant) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        st.jobs.insert(
            key.clone(),
            Entry {
                stop,
                lease_until,
                handler_done: false,
                supervisor: None,
            },
        );
        true
    }

    /// Spawns the supervisor of a held job under the lock, so that [`Registry::close`] sees
    /// every supervisor. False (nothing spawned) once closed or if the job is not held.
    pub(crate) fn start(&self, key: &Fence, spawn: impl FnOnce() -> JoinHandle<()>) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        match st.jobs.get_mut(key) {
            Some(entry) => {
                entry.supervisor = Some(spawn().abort_handle());
                true
            }
            None => false,
        }
    }

    /// Records that the store extended a job's lease to `until` (this clock).
    pub(crate) fn extend(&self, key: &Fence, until: Instant) {
        if let Some(e) = self.lock().jobs.get_mut(key) {
            e.lease_until = e.lease_until.max(until);
        }
    }

    /// How long the job's lease is still known to be held (zero once past it).
    pub(crate) fn lease_left(&self, key: &Fence) -> Duration {
        self.lock()
            .jobs
            .get(key)
            .map(|e| e.lease_until.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    /// Jobs whose handler has not returned and whose lease is known to be held for less than
    /// `margin` more.
    pub(crate) fn expiring(&self, margin: Duration) -> Vec<Fence> {
        let now = Instant::now();
        self.lock()
            .jobs
            .iter()
            .filter(|(_, e)| {
                !e.handler_done && e.lease_until.saturating_duration_since(now) < margin
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The stop signal of a held or running job.
    pub(crate) fn stop_signal(&self, key: &Fence) -> Option<JobStop> {
        self.lock().jobs.get(key).map(|e| e.stop.clone())
    }

    pub(crate) fn handler_done(&self, key: &Fence) {
        if let Some(e) = self.lock().jobs.get_mut(key) {
            e.handler_done = true;
        }
    }

    pub(crate) fn finish(&self, key: &Fence) {
        self.lock().jobs.remove(key);
        self.changed.notify_waiters();
    }

    /// Asks one job's handler to stop; true if this was the first request. Ignored once the
    /// handler has returned.
    pub(crate) fn stop(&self, key: &Fence, reason: StopReason) -> bool {
        match self.lock().jobs.get(key) {
            Some(e) if !e.handler_done => e.stop.stop(reason),
            _ => false,
        }
    }

    /// Asks every running handler to stop; how many were newly asked.
    pub(crate) fn stop_all(&self, reason: StopReason) -> usize {
        self.lock()
            .jobs
            .values()
            .filter(|e| !e.handler_done)
            .filter(|e| e.stop.stop(reason))
            .count()
    }

    pub(crate) fn fences(&self) -> Vec<Fence> {
        self.lock().jobs.keys().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Completes when no job is registered.
    pub(crate) async fn wait_empty(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.lock().jobs.is_empty() {
                return;
            }
            changed.await;
        }
    }

    /// Refuses new jobs and aborts every supervisor (and so its handler). For a handle dropped
    /// without shutdown: the jobs stay `running` in the store and are rescued after their lease.
    pub(crate) fn close(&self) -> usize {
        let mut st = self.lock();
        st.closed = true;
        let n = st.jobs.len();
        for (_, e) in st.jobs.drain() {
            if let Some(a) = e.supervisor {
                a.abort();
            }
        }
        drop(st);
        self.changed.notify_waiters();
        n
    }
}
