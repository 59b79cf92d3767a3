//! The one list of what a runtime runs, in start order: maintenance, the worker pool, the
//! HTTP API, the scheduler (the last two not for a workers-only runtime). [`Services`] stops
//! them in reverse order.

use crate::handlers;
use crate::settings::{task_catalog, TaskDefinition};
use crate::{redact_url, Database, Runtime, RuntimeError, RuntimeHandle};
use errand::worker::maintenance::{MaintenanceHandle, MaintenanceOptions};
use errand::{Backend, Client, SchedulerHandle, SchedulerOptions, SchedulerStatus, WorkerHandle};
use errand_server::{Metrics, ServerConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// What a started runtime serves, for the caller's start-up message.
#[derive(Debug, Clone)]
pub struct RuntimeInfo {
    /// The database URL, its password replaced (empty for a runtime on a caller's client).
    pub database: String,
    pub backend: Backend,
    pub schema_version: i64,
    /// The queues the pool claims from, with their concurrency.
    pub queues: BTreeMap<String, u32>,
    /// The tasks known, with what runs them.
    pub tasks: BTreeMap<String, TaskDefinition>,
    /// Whether the pool claims jobs (false: disabled, no local task, or none at all).
    pub claiming: bool,
    /// Where the HTTP API and dashboard listen, if they run.
    pub http_addr: Option<SocketAddr>,
    /// Whether this process fires schedules.
    pub scheduling: bool,
    /// The configured schedules' names.
    pub schedules: Vec<String>,
}

/// Asks a runtime to stop; cheap to clone, usable from any task or thread.
#[derive(Debug, Clone)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    fn new() -> Self {
        Stopper(Arc::new(watch::channel(false).0))
    }

    /// Asks the runtime to stop (its [`RuntimeHandle::wait`] returns after the shutdown).
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// Returns once a stop was asked for.
    pub(crate) async fn requested(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// The running services, stopped in reverse order of their start.
#[derive(Debug, Default)]
pub(crate) struct Services {
    maintenance: Option<MaintenanceHandle>,
    worker: Option<WorkerHandle>,
    http: Option<HttpHandle>,
    scheduler: Option<SchedulerHandle>,
}

/// The HTTP API's server task and the switch that stops it.
#[derive(Debug)]
struct HttpHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Services {
    pub(crate) async fn shutdown(self) {
        if let Some(scheduler) = self.scheduler {
            // Its current pass finishes: a fire is applied whole or not at all.
            scheduler.shutdown().await;
        }
        if let Some(http) = self.http {
            // Stops accepting, ends long-polls, lets in-flight requests finish.
            let _ = http.stop.send(true);
            match http.task.await {
                Ok(Ok(())) => tracing::info!("HTTP API stopped"),
                Ok(Err(e)) => tracing::warn!(error = %e, "HTTP API stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "HTTP API task failed"),
            }
        }
        if let Some(worker) = self.worker {
            let report = worker.shutdown().await;
            tracing::info!(
                finished_during_grace = report.finished_during_grace,
                released = report.released,
                not_released = report.not_released,
                "worker pool stopped"
            );
        }
        if let Some(maintenance) = self.maintenance {
            maintenance.shutdown().await;
        }
    }
}

/// Connects, then starts every service of `rt` in order.
pub(crate) async fn start(mut rt: Runtime) -> Result<RuntimeHandle, RuntimeError> {
    if !rt.workers_only {
        rt.server.check_exposure().map_err(RuntimeError::Exposed)?;
    }
    let (client, database) = match &rt.database {
        Database::Url(url) => {
            let client = Client::builder(url.clone())
                .postgres_tls(rt.postgres_tls.clone())
                .max_args_bytes(rt.limits.max_args_bytes)
                .connect()
                .await
                .map_err(|source| RuntimeError::Connect {
                    url: redact_url(url),
                    source,
                })?;
            (client, redact_url(url))
        }
        Database::Client(client) => (client.clone(), String::new()),
    };
    let client = client.with_tasks(task_catalog(&rt.tasks));
    let schema = client.migration_status().await?;
    apply_queue_limits(&rt.queue_limits, &client).await?;

    let mut services = Services::default();
    let mut info = RuntimeInfo {
        database,
        backend: client.backend(),
        schema_version: schema.current_version,
        queues: rt.queues.clone(),
        tasks: rt.tasks.clone(),
        claiming: false,
        http_addr: None,
        scheduling: false,
        schedules: rt.schedules.keys().cloned().collect(),
    };
    let pool_setup = std::mem::take(&mut rt.pool_setup);
    if let Err(e) = start_all(&rt, pool_setup, &client, &mut services, &mut info).await {
        services.shutdown().await;
        return Err(e);
    }
    Ok(RuntimeHandle {
        client,
        info,
        services,
        stop: Stopper::new(),
    })
}

/// Writes the configured queues' limits where the stored ones differ (a queue with no limits
/// configured or stored gets no row).
async fn apply_queue_limits(
    configured: &BTreeMap<String, errand::QueueLimits>,
    client: &Client,
) -> Result<(), RuntimeError> {
    if configured.is_empty() {
        return Ok(());
    }
    let stored: BTreeMap<String, errand::QueueLimits> = client
        .queues()
        .await?
        .into_iter()
        .map(|q| (q.name, q.limits))
        .collect();
    for (queue, limits) in configured {
        if stored.get(queue).copied().unwrap_or_default() != *limits {
            client.set_queue_limits(queue, *limits).await?;
            tracing::info!(queue, ?limits, "queue limits set from the configuration");
        }
    }
    Ok(())
}

/// Starts the services one by one into `services` (so that the caller can stop the ones
/// started should a later one fail).
async fn start_all(
    rt: &Runtime,
    pool_setup: Vec<crate::PoolSetup>,
    client: &Client,
    services: &mut Services,
    info: &mut RuntimeInfo,
) -> Result<(), RuntimeError> {
    let metrics = Arc::new(Metrics::default());

    // The API's address first, before anything claims a job: a port already in use fails
    // the start while nothing has been taken from a queue.
    let listener = if rt.workers_only || !rt.server.enabled {
        None
    } else {
        let bind_error = |source| RuntimeError::Bind {
            addr: rt.server.listen,
            source,
        };
        Some(
            tokio::net::TcpListener::bind(rt.server.listen)
                .await
                .map_err(bind_error)?,
        )
    };

    // 0. Maintenance (`errand::worker::maintenance`): rescue of expired leases (local and
    //    remote workers' alike), pruning of dead workers' rows, retention. Every process that
    //    holds the database for work runs it, whether or not it runs handlers.
    services.maintenance = Some(client.start_maintenance(MaintenanceOptions {
        lease: rt.workers.lease,
        retention: rt.retention.policy,
        retention_every: rt.retention.interval,
    }));

    // 1. Workers: claim and run the jobs of the local tasks (`errand-worker`).
    services.worker = start_workers(rt, pool_setup, client, &metrics).await?;
    info.claiming = services.worker.is_some();
    if rt.workers_only {
        return Ok(());
    }

    // The scheduler loop's state: recorded by the loop, reported by `/health/scheduler`.
    let status = if rt.scheduler.enabled {
        SchedulerStatus::default()
    } else {
        SchedulerStatus::disabled()
    };
    // 2. HTTP API and dashboard (`errand-server`).
    if let Some((http, addr)) = start_http(rt, client, listener, metrics, status.clone())? {
        services.http = Some(http);
        info.http_addr = Some(addr);
    }
    // 3. Scheduler (`errand::scheduler`): configured schedules reconciled, then fired.
    services.scheduler = start_scheduler(rt, client, status).await?;
    info.scheduling = services.scheduler.is_some();
    Ok(())
}

/// Makes the stored configured schedules match the runtime's (logging what changed), then
/// starts the scheduler loop unless it is disabled. Every serving process runs one: they
/// agree through the store, with no leader.
async fn start_scheduler(
    rt: &Runtime,
    client: &Client,
    status: SchedulerStatus,
) -> Result<Option<SchedulerHandle>, RuntimeError> {
    let r = client
        .reconcile_schedules(&rt.schedules)
        .await
        .map_err(RuntimeError::Schedules)?;
    for name in &r.added {
        tracing::info!(schedule = %name, "schedule added from the configuration");
    }
    for name in &r.changed {
        tracing::info!(schedule = %name, "schedule changed from the configuration");
    }
    for name in &r.removed {
        tracing::info!(schedule = %name, "schedule removed: no longer in the configuration");
    }
    if !rt.scheduler.enabled {
        tracing::info!(
            "scheduler off (scheduler.enabled = false): schedules fire only in other processes"
        );
        return Ok(None);
    }
    Ok(Some(client.scheduler(SchedulerOptions {
        status,
        ..SchedulerOptions::default()
    })))
}

/// Serves the API on `listener` (bound by the caller before any worker started) until stopped.
fn start_http(
    rt: &Runtime,
    client: &Client,
    listener: Option<tokio::net::TcpListener>,
    metrics: Arc<Metrics>,
    scheduler: SchedulerStatus,
) -> Result<Option<(HttpHandle, SocketAddr)>, RuntimeError> {
    let server = &rt.server;
    let Some(listener) = listener else {
        tracing::info!("HTTP API off (server.enabled = false)");
        return Ok(None);
    };
    let addr = listener.local_addr().map_err(|source| RuntimeError::Bind {
        addr: server.listen,
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    let api = errand_server::router(
        client.clone(),
        ServerConfig {
            tokens: server.tokens.clone(),
            max_body_bytes: server.max_body_bytes,
            metrics,
            shutdown: stopped.clone(),
            scheduler,
            queues: rt.queues.keys().cloned().collect(),
            ..ServerConfig::default()
        },
    );
    let connections = server.connections.clone();
    raise_file_limit(connections.max_connections);
    let task = tokio::spawn(errand_server::serve(listener, api, connections, stopped));
    tracing::info!(
        address = %addr,
        auth = if server.tokens.is_empty() { "none (loopback only)" } else { "bearer tokens" },
        tokens = server.tokens.len(),
        max_connections = server.connections.max_connections,
        "HTTP API listening on http://{addr}"
    );
    Ok(Some((HttpHandle { stop, task }, addr)))
}

/// Descriptors kept beside the API's connections: the database's files and connections,
/// command handlers' pipes, the listener, logs.
const RESERVED_FILES: u64 = 256;

/// Raises the soft limit on open files (`ulimit -n`, often 1024) so that `max_connections`
/// connections fit beside [`RESERVED_FILES`], up to the hard limit; says so in the log when
/// the hard limit is too low. Past the limit the server still works: it closes its
/// longest-waiting idle connections when it runs out of descriptors.
fn raise_file_limit(max_connections: usize) {
    let wanted = max_connections as u64 + RESERVED_FILES;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write to / read from the struct we pass, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur >= wanted {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: wanted.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 || raised.rlim_cur < wanted {
        tracing::warn!(
            max_connections,
            open_file_limit = raised.rlim_cur.max(limit.rlim_cur),
            "the open-file limit is below server.max_connections plus {RESERVED_FILES}: raise \
             it (ulimit -n, LimitNOFILE=) or lower server.max_connections"
        );
    }
}

/// Feeds the worker pool's outcomes into the process's metrics.
fn count_outcomes(
    mut events: tokio::sync::broadcast::Receiver<errand::worker::WorkerEvent>,
    metrics: Arc<Metrics>,
) {
    use errand::worker::{JobOutcome, WorkerEvent};
    use std::collections::HashMap;
    use tokio::sync::broadcast::error::RecvError;
    tokio::spawn(async move {
        let mut started: HashMap<i64, tokio::time::Instant> = HashMap::new();
        loop {
            match events.recv().await {
                Ok(WorkerEvent::JobStarted { job_id, .. }) => {
                    started.insert(job_id, tokio::time::Instant::now());
                }
                Ok(WorkerEvent::JobFinished {
                    job_id, outcome, ..
                }) => {
                    let secs = started.remove(&job_id).map(|t| t.elapsed().as_secs_f64());
                    match outcome {
                        JobOutcome::Succeeded => metrics.succeeded(secs),
                        JobOutcome::Failed => metrics.failed(secs),
                        JobOutcome::Retrying { .. } => metrics.retried(secs),
                        JobOutcome::Cancelled => metrics.cancelled(),
                        _ => {}
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => started.clear(),
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Starts the pool on the runtime's queues with a handler for each local task; none when
/// disabled, when no task is known, or when every task is remote.
async fn start_workers(
    rt: &Runtime,
    pool_setup: Vec<crate::PoolSetup>,
    client: &Client,
    metrics: &Arc<Metrics>,
) -> Result<Option<WorkerHandle>, RuntimeError> {
    if !rt.workers.enabled {
        // The caller switched it off and says where (the CLI names the key's origin).
        return Ok(None);
    }
    if rt.tasks.is_empty() {
        tracing::info!(
            "not claiming jobs: no tasks configured (add [tasks.<kind>] to errand.toml)"
        );
        return Ok(None);
    }
    if !rt.tasks.values().any(TaskDefinition::is_local) {
        tracing::info!(
            "not claiming jobs: every configured task is remote (remote workers claim them \
             over the HTTP API)"
        );
        return Ok(None);
    }
    let w = &rt.workers;
    let mut builder = client
        .worker()
        .own_rescuer(false)
        .lease(w.lease)
        .poll_interval(w.poll_interval)
        .shutdown_grace(w.shutdown_grace)
        .cancel_grace(w.cancel_grace);
    for (queue, concurrency) in &rt.queues {
        if !rt.tasks.values().any(|t| &t.queue == queue) {
            tracing::warn!(
                queue = %queue,
                "no configured task uses this queue: a job in it whose kind is not configured \
                 here fails its attempt (\"no handler registered\")"
            );
        }
        builder = builder.queue(queue.clone(), *concurrency);
    }
    let guard = handlers::GuardProgram::new(rt.guard_program.clone());
    builder = handlers::register_all(builder, &rt.tasks, w, &guard)?;
    for setup in pool_setup {
        builder = (setup.0)(builder);
    }
    count_outcomes(builder.events(), metrics.clone());
    Ok(Some(builder.start().await?))
}
