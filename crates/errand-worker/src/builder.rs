//! Configuring and starting a pool: queues, handlers, per-kind options and timings.

use crate::completer;
use crate::event::WorkerEvent;
use crate::handle::WorkerHandle;
use crate::handler::{self, ErasedHandler, JobContext, KindArgs};
use crate::pool::{Config, Registry, Shared};
use crate::signal::Signal;
use crate::{heartbeat, producer, rescuer};
use errand_core::{Backoff, HandlerError, Task, TaskCatalog};
use errand_store::{Store, StoreError, WorkerQueue, WorkerRegistration};
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Per-kind settings; unset fields take the pool's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOptions {
    /// Execution limit for jobs of this kind that do not set their own `timeout_ms`
    /// (default 30 minutes; zero means none).
    pub timeout: Option<Duration>,
    /// Retry backoff for this kind (default: `Backoff::default()`, 5 s doubling to 1 h, ±10 %).
    pub backoff: Option<Backoff>,
}

/// Why a pool could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No queue was configured: a pool claims from at least one.
    #[error("no queue configured: add at least one with `.queue(name, concurrency)`")]
    NoQueues,
    /// A setting is out of range; names the setting and the problem.
    #[error("invalid worker setting `{setting}`: {problem}")]
    Invalid {
        /// The builder method whose value is wrong.
        setting: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// Two handlers were registered for one kind.
    #[error("two handlers registered for kind `{0}`")]
    DuplicateHandler(String),
    /// Registering the worker's row failed.
    #[error("registering the worker failed: {0}")]
    Store(#[from] StoreError),
}

/// Builds a worker pool; see [`crate::Worker::builder`]. Every setting but the queues is
/// optional.
pub struct WorkerBuilder {
    store: Arc<dyn Store>,
    queues: Vec<(String, u32)>,
    handlers: HashMap<String, ErasedHandler>,
    duplicate: Option<String>,
    /// (kind, `Task::QUEUE`) of typed registrations, to warn about queues nobody serves.
    task_queues: Vec<(String, String)>,
    task_options: HashMap<String, TaskOptions>,
    lease: Duration,
    poll_interval: Duration,
    shutdown_grace: Duration,
    cancel_grace: Duration,
    max_claim_batch: u32,
    worker_id: Option<String>,
    events: broadcast::Sender<WorkerEvent>,
    tasks: Arc<TaskCatalog>,
    own_rescuer: bool,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<_> = self.handlers.keys().collect();
        kinds.sort();
        f.debug_struct("WorkerBuilder")
            .field("queues", &self.queues)
            .field("kinds", &kinds)
            .field("lease", &self.lease)
            .field("poll_interval", &self.poll_interval)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("cancel_grace", &self.cancel_grace)
            .field("max_claim_batch", &self.max_claim_batch)
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        WorkerBuilder {
            store,
            queues: Vec::new(),
            handlers: HashMap::new(),
            duplicate: None,
            task_queues: Vec::new(),
            task_options: HashMap::new(),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            cancel_grace: Duration::from_secs(5),
            max_claim_batch: 100,
            worker_id: None,
            events: broadcast::channel(1024).0,
            tasks: Arc::new(TaskCatalog::new()),
            own_rescuer: true,
        }
    }

    /// Claims from `name`, running at most `concurrency` of its jobs at once.
    pub fn queue(mut self, name: impl Into<String>, concurrency: u32) -> Self {
        self.queues.push((name.into(), concurrency));
        self
    }

    /// Registers a typed handler for `T::KIND`: the job's args are decoded into `T` (a decode
    /// failure fails the job for good, naming the serde error), and what the handler returns
    /// is stored as the job's result (`()` or anything serializing to `null` stores none).
    ///
    /// `T` is usually inferred from the closure's argument: `.register(|ctx, a: SendEmail| ...)`.
    pub fn register<T, F, Fut, R>(mut self, handler: F) -> Self
    where
        T: Task,
        F: Fn(JobContext, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
        R: Serialize + 'static,
    {
        self.task_queues
            .push((T::KIND.to_string(), T::QUEUE.to_string()));
        self.insert_handler(T::KIND.to_string(), handler::typed::<T, F, Fut, R>(handler))
    }

    /// Registers a handler for `kind` that takes the args untyped: for handlers chosen at run
    /// time (commands, HTTP endpoints from configuration). The handler's second argument is a
    /// `serde_json::Value` (the args decoded) or an [`errand_core::JobArgs`] (their JSON text,
    /// not decoded: for a handler that passes it on).
    pub fn register_kind<A, F, Fut, R>(self, kind: impl Into<String>, handler: F) -> Self
    where
        A: KindArgs,
        F: Fn(JobContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
        R: Serialize + 'static,
    {
        self.insert_handler(kind.into(), handler::untyped(handler))
    }

    fn insert_handler(mut self, kind: String, handler: ErasedHandler) -> Self {
        if self.handlers.insert(kind.clone(), handler).is_some() {
            self.duplicate.get_or_insert(kind);
        }
        self
    }

    /// The deployment's task settings ([`errand_core::TaskCatalog`]): the timeout and backoff
    /// of every kind that has no [`TaskOptions`] of its own here. `errand::Client::worker`
    /// passes the client's catalog.
    pub fn tasks(mut self, tasks: Arc<TaskCatalog>) -> Self {
        self.tasks = tasks;
        self
    }

    /// Whether the pool rescues expired leases and prunes dead workers' rows itself (default
    /// true). Turn it off in a process that runs [`crate::maintenance::start`], which does the
    /// same and more.
    pub fn own_rescuer(mut self, yes: bool) -> Self {
        self.own_rescuer = yes;
        self
    }

    /// Timeout and backoff for one kind.
    pub fn task_options(mut self, kind: impl Into<String>, options: TaskOptions) -> Self {
        self.task_options.insert(kind.into(), options);
        self
    }

    /// Lease per claimed job (default 30 s). Heartbeats extend it every lease/3; the rescuer
    /// runs every lease/2; a dead worker's jobs are back after about one lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often an idle queue is polled when no wake-up hint arrives (default 1 s): delayed
    /// jobs start within about this much of their `run_at`.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// How long shutdown lets running jobs finish before stopping them (default 30 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// How long a handler asked to stop (cancel, lost lease, timeout, shutdown) has to return
    /// before it is aborted (default 5 s).
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// Most jobs one claim takes (default 100).
    pub fn max_claim_batch(mut self, n: u32) -> Self {
        self.max_claim_batch = n;
        self
    }

    /// The worker's id (default `host-pid-random`); unique per running process.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Subscribes to the pool's events before it starts, so none is missed.
    pub fn events(&self) -> broadcast::Receiver<WorkerEvent> {
        self.events.subscribe()
    }

    fn check(&self) -> Result<(), StartError> {
        let invalid = |setting, problem: &str| {
            Err(StartError::Invalid {
                setting,
                problem: problem.to_string(),
            })
        };
        if self.queues.is_empty() {
            return Err(StartError::NoQueues);
        }
        for (i, (name, concurrency)) in self.queues.iter().enumerate() {
            if name.trim().is_empty() {
                return invalid("queue", "a queue name must not be empty");
            }
            if *concurrency == 0 {
                return invalid("queue", &format!("queue `{name}` has concurrency 0"));
            }
            if self.queues[..i].iter().any(|(n, _)| n == name) {
                return invalid("queue", &format!("queue `{name}` is configured twice"));
            }
        }
        if let Some(kind) = &self.duplicate {
            return Err(StartError::DuplicateHandler(kind.clone()));
        }
        if self.lease < Duration::from_millis(30) {
            return invalid("lease", "must be at least 30ms");
        }
        if self.poll_interval.is_zero() {
            return invalid("poll_interval", "must not be zero");
        }
        if self.max_claim_batch == 0 {
            return invalid("max_claim_batch", "must be at least 1");
        }
        if matches!(&self.worker_id, Some(id) if id.trim().is_empty()) {
            return invalid("worker_id", "must not be empty");
        }
        Ok(())
    }

    /// Validates the settings, registers the worker's row, and starts the claim loops, the
    /// completer, the heartbeat and the rescuer. Must be called inside a Tokio runtime.
    pub async fn start(self) -> Result<WorkerHandle, StartError> {
        self.check()?;
        for kind in self.task_options.keys() {
            if !self.handlers.contains_key(kind) {
                tracing::warn!(
                    kind,
                    "task options given for a kind with no handler on this worker"
                );
            }
        }
        let host = host_name();
        let pid = std::process::id();
        let worker_id = self
            .worker_id
            .unwrap_or_else(|| format!("{host}-{pid}-{:08x}", fastrand::u32(..)));
        let registration = WorkerRegistration {
            id: worker_id.clone(),
            host,
            pid: i64::from(pid),
            version: env!("CARGO_PKG_VERSION").to_string(),
            queues: self
                .queues
                .iter()
                .map(|(name, concurrency)| WorkerQueue {
                    name: name.clone(),
                    concurrency: *concurrency,
                })
                .collect(),
        };
        self.store.worker_register(&registration).await?;

        let (complete_tx, complete_rx) = mpsc::unbounded_channel();
        let tuning = self.store.tuning();
        let shared = Arc::new(Shared {
            store: self.store,
            worker_id: worker_id.as_str().into(),
            registration,
            config: Config {
                lease: self.lease,
                poll_interval: self.poll_interval,
                shutdown_grace: self.shutdown_grace,
                cancel_grace: self.cancel_grace,
                max_claim_batch: self.max_claim_batch,
                record_retry_for: self.lease * 10,
                claims_in_flight: tuning.claims_in_flight,
                completions_in_flight: tuning.completions_in_flight,
                own_rescuer: self.own_rescuer,
            },
            handlers: self.handlers,
            task_options: self.task_options,
            tasks: self.tasks,
            running: Registry::default(),
            events: self.events,
            completer: complete_tx,
            stop_claiming: Signal::default(),
            abandon: Signal::default(),
            to_release: Mutex::new(Vec::new()),
        });
        let background = Signal::default();
        let completer = tokio::spawn(completer::run(shared.clone(), complete_rx));
        let heartbeat = tokio::spawn(heartbeat::run(shared.clone(), background.clone()));
        let rescuer = tokio::spawn(rescuer::run(shared.clone(), background.clone()));
        let producers = self
            .queues
            .into_iter()
            .map(|(queue, concurrency)| {
                tokio::spawn(producer::run(shared.clone(), queue, concurrency))
            })
            .collect();
        tracing::info!(worker_id, "worker started");
        Ok(WorkerHandle::new(
            shared, producers, completer, heartbeat, rescuer, background,
        ))
    }
}

/// This host's name as the worker registry records it (`HOSTNAME`, else the kernel's).
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
