//! `errand serve` and `errand worker`: start the services, run until SIGTERM or SIGINT, stop
//! them in reverse order. [`start_services`] is the one list of what a server runs.

use crate::config::{Config, Handler};
use crate::handlers;
use crate::UsageError;
use anyhow::Context;
use errand::worker::maintenance::{MaintenanceHandle, MaintenanceOptions};
use errand::{Client, SchedulerHandle, SchedulerOptions, SchedulerStatus, WorkerHandle};
use errand_server::{Metrics, ServerConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

/// Which services to run.
#[derive(Debug, Clone, Default)]
pub enum Role {
    /// Everything (`errand serve`).
    #[default]
    Serve,
    /// The worker pool only (`errand worker`), optionally restricted.
    Worker {
        /// Claim only from these queues (empty: all configured).
        queues: Vec<String>,
        /// Override every queue's concurrency.
        concurrency: Option<u32>,
    },
}

/// The running services, stopped in reverse order of their start.
#[derive(Debug, Default)]
struct Services {
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
    async fn shutdown(self) {
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

/// Runs `role` until SIGTERM or SIGINT, then drains and returns.
pub async fn run(config: Config, role: Role) -> anyhow::Result<()> {
    // Before anything else, so that a signal during start-up is a clean stop, not a kill.
    let mut signals = Signals::new()?;
    let queues = queues_for(&config, &role)?;
    if matches!(role, Role::Serve) {
        config.server.check_exposure()?;
    }

    let client = Client::builder(config.database_url.clone())
        .max_args_bytes(config.limits.max_args_bytes)
        .connect()
        .await
        .with_context(|| format!("connecting to {}", redact_url(&config.database_url)))?
        .with_tasks(config.task_catalog());
    let schema = client.migration_status().await?;

    let services = start_services(&client, &config, &role, &queues).await?;
    tracing::info!(
        database = %redact_url(&config.database_url),
        backend = client.backend().as_str(),
        schema_version = schema.current_version,
        config = %config.source.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none (zero config)".into()),
        queues = %list(queues.iter().map(|(q, n)| format!("{q}={n}"))),
        tasks = %list(config.tasks.iter().map(|(k, t)| format!("{k}({})", t.handler.kind()))),
        claiming = services.worker.is_some(),
        schedules = %list(config.schedules.keys().cloned()),
        scheduling = services.scheduler.is_some(),
        "errand ready"
    );

    let name = signals.recv().await;
    tracing::info!(
        signal = name,
        "stopping: no new jobs are claimed; running jobs may finish"
    );
    tokio::select! {
        () = services.shutdown() => {}
        name = signals.recv() => {
            tracing::warn!(
                signal = name,
                "second signal: exiting now; running jobs are rescued after their lease"
            );
            std::process::exit(1);
        }
    }
    tracing::info!("errand stopped");
    Ok(())
}

/// Starts every service of `role`, in order. Each service of a later issue starts here and
/// gets a field of [`Services`].
#[allow(clippy::field_reassign_with_default)] // one assignment per service reads as the list
async fn start_services(
    client: &Client,
    config: &Config,
    role: &Role,
    queues: &BTreeMap<String, u32>,
) -> anyhow::Result<Services> {
    let mut services = Services::default();
    let metrics = Arc::new(Metrics::default());

    // 0. Maintenance (`errand::worker::maintenance`): rescue of expired leases (local and
    //    remote workers' alike), pruning of dead workers' rows, retention. Every process that
    //    holds the database for work runs it, whether or not it runs handlers.
    services.maintenance = Some(errand::worker::maintenance::start(
        client.store().clone(),
        MaintenanceOptions {
            lease: config.workers.lease,
            retention: config.retention.policy,
            retention_every: config.retention.interval,
        },
    ));

    // 1. Workers: claim and run the jobs of the configured tasks (`errand-worker`).
    services.worker = start_workers(client, config, queues, &metrics).await?;

    if matches!(role, Role::Serve) {
        // The scheduler loop's state: recorded by the loop, reported by `/health/scheduler`.
        let status = if config.scheduler.enabled {
            SchedulerStatus::default()
        } else {
            SchedulerStatus::disabled()
        };
        // 2. HTTP API (`errand-server`).
        services.http = start_http(client, config, metrics, status.clone()).await?;
        // 3. Scheduler (`errand::scheduler`): configured schedules reconciled, then fired.
        services.scheduler = start_scheduler(client, config, status).await?;
    }
    Ok(services)
}

/// Makes the stored configured schedules match `[schedules]` (logging what changed), then
/// starts the scheduler loop unless `scheduler.enabled = false`. Every `errand serve` process
/// runs one: they agree through the store, with no leader.
async fn start_scheduler(
    client: &Client,
    config: &Config,
    status: SchedulerStatus,
) -> anyhow::Result<Option<SchedulerHandle>> {
    let r = client
        .reconcile_schedules(&config.schedules)
        .await
        .context("reconciling [schedules] with the stored schedules")?;
    for name in &r.added {
        tracing::info!(schedule = %name, "schedule added from the configuration");
    }
    for name in &r.changed {
        tracing::info!(schedule = %name, "schedule changed from the configuration");
    }
    for name in &r.removed {
        tracing::info!(schedule = %name, "schedule removed: no longer in the configuration");
    }
    if !config.scheduler.enabled {
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

/// Binds the API's address and serves it until stopped. Refuses a non-loopback address
/// without tokens.
async fn start_http(
    client: &Client,
    config: &Config,
    metrics: Arc<Metrics>,
    scheduler: SchedulerStatus,
) -> anyhow::Result<Option<HttpHandle>> {
    let server = &config.server;
    if !server.enabled {
        tracing::info!("HTTP API off (server.enabled = false)");
        return Ok(None);
    }
    server.check_exposure()?;
    let listener = tokio::net::TcpListener::bind(server.listen)
        .await
        .with_context(|| format!("binding the HTTP API to {} (server.listen)", server.listen))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let api = errand_server::router(
        client.clone(),
        ServerConfig {
            tokens: server.tokens.clone(),
            max_body_bytes: server.max_body_bytes,
            metrics,
            shutdown: stopped.clone(),
            scheduler,
            queues: config.queues.keys().cloned().collect(),
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
    Ok(Some(HttpHandle { stop, task }))
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

async fn start_workers(
    client: &Client,
    config: &Config,
    queues: &BTreeMap<String, u32>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Option<WorkerHandle>> {
    if !config.workers.enabled {
        tracing::warn!(
            "not claiming jobs: {} (workers.enabled)",
            config.origin("workers.enabled", "false")
        );
        return Ok(None);
    }
    if config.tasks.is_empty() {
        tracing::info!(
            "not claiming jobs: no tasks configured (add [tasks.<kind>] to errand.toml)"
        );
        return Ok(None);
    }
    if !config.tasks.values().any(|t| t.handler != Handler::Remote) {
        tracing::info!(
            "not claiming jobs: every configured task is remote (remote workers claim them \
             over the HTTP API)"
        );
        return Ok(None);
    }
    let w = &config.workers;
    let mut builder = client
        .worker()
        .own_rescuer(false)
        .lease(w.lease)
        .poll_interval(w.poll_interval)
        .shutdown_grace(w.shutdown_grace)
        .cancel_grace(w.cancel_grace);
    for (queue, concurrency) in queues {
        if !config.tasks.values().any(|t| &t.queue == queue) {
            tracing::warn!(
                queue = %queue,
                "no configured task uses this queue: a job in it whose kind is not configured \
                 here fails its attempt (\"no handler registered\")"
            );
        }
        builder = builder.queue(queue.clone(), *concurrency);
    }
    builder = handlers::register_all(builder, config)?;
    count_outcomes(builder.events(), metrics.clone());
    Ok(Some(builder.start().await?))
}

/// The queues to claim from with their concurrency: the configured ones, restricted and
/// overridden by `errand worker`'s flags.
fn queues_for(config: &Config, role: &Role) -> Result<BTreeMap<String, u32>, UsageError> {
    let Role::Worker {
        queues,
        concurrency,
    } = role
    else {
        return Ok(config.queues.clone());
    };
    let mut chosen = BTreeMap::new();
    if queues.is_empty() {
        chosen = config.queues.clone();
    } else {
        for q in queues {
            let Some(n) = config.queues.get(q) else {
                let known = if config.queues.is_empty() {
                    "none".to_string()
                } else {
                    list(config.queues.keys().cloned())
                };
                return Err(UsageError(format!(
                    "--queues: queue \"{q}\" is not configured (configured: {known})"
                )));
            };
            chosen.insert(q.clone(), *n);
        }
    }
    if let Some(n) = concurrency {
        chosen.values_mut().for_each(|c| *c = *n);
    }
    Ok(chosen)
}

fn list(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
}

/// The URL with its password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// SIGTERM and SIGINT.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// The next signal's name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(redact_url("errand.db"), "errand.db");
        assert_eq!(redact_url("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(
            redact_url("postgres://db/app?user=app&password=s3cret&sslmode=disable"),
            "postgres://db/app?user=app&password=***&sslmode=disable"
        );
    }

    #[test]
    fn worker_flags_restrict_and_override_queues() {
        let text = "[queues.default]\nconcurrency = 10\n[queues.email]\nconcurrency = 4\n";
        let config = config::parse("errand.toml", Some(text), &|_| None).unwrap();
        let all = queues_for(&config, &Role::Serve).unwrap();
        assert_eq!(all.len(), 2);
        let role = Role::Worker {
            queues: vec!["email".into()],
            concurrency: Some(2),
        };
        let only = queues_for(&config, &role).unwrap();
        assert_eq!(only, BTreeMap::from([("email".to_string(), 2)]));
        let role = Role::Worker {
            queues: vec!["nope".into()],
            concurrency: None,
        };
        let e = queues_for(&config, &role).unwrap_err();
        assert!(
            e.0.contains("\"nope\" is not configured (configured: default,email)"),
            "{}",
            e.0
        );
    }
}
