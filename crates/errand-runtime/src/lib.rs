//! The Errand runtime: the services `errand serve` runs (maintenance, the worker pool with
//! the command and HTTP handlers, the HTTP API and dashboard, the scheduler), started from
//! plain settings by a [`Runtime`] and stopped in reverse order by its [`RuntimeHandle`]. The
//! `errand` binary is configuration, arguments and output on top of it; an embedding program,
//! or another language's bindings, start the same services the same way.
//!
//! ```no_run
//! use errand_runtime::{Handler, Runtime, TaskDefinition};
//!
//! # async fn example() -> Result<(), errand_runtime::RuntimeError> {
//! // A binary that runs command tasks re-executes itself as each attempt's guard: let it
//! // answer that call first (or point `guard_program` at the `errand` binary).
//! errand_runtime::guard::run_if_requested();
//! let handle = Runtime::builder("errand.db")
//!     .task(
//!         "send_email",
//!         TaskDefinition::new(Handler::Command {
//!             argv: vec!["python3".into(), "send_email.py".into()],
//!         }),
//!     )
//!     .queue("default", 4)
//!     .start()
//!     .await?;
//! println!("dashboard on {:?}", handle.http_addr());
//! handle.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! | module | owns |
//! | --- | --- |
//! | `settings` | task definitions and each service's settings, with their defaults |
//! | `services` | the one list of services, their start order and their stop in reverse |
//! | `handlers` | command and HTTP handlers of configured tasks, one file each |
//! | `guard` | the process each command attempt runs under (`errand __guard`), and its entry function |
//! | `signals` | SIGTERM and SIGINT, for a process that stops on them |

pub mod guard;
pub mod handlers;
mod services;
mod settings;
mod signals;

pub use handlers::tls::HttpTls;
pub use services::{RuntimeInfo, Stopper};
pub use settings::{
    task_catalog, Handler, RetentionSettings, SchedulerSettings, ServerSettings, TaskDefinition,
    WorkerSettings, DEFAULT_LISTEN, DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT,
};
pub use signals::{Signals, Stopped};

use errand::worker::WorkerBuilder;
use errand::{Client, Limits, ScheduleSpec};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What can stop a runtime from starting.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The database could not be opened or migrated.
    #[error("connecting to {url}")]
    Connect {
        /// The URL, its password replaced.
        url: String,
        #[source]
        source: errand::Error,
    },
    /// The HTTP API would be open to the network without a token.
    #[error("server.listen: {0}")]
    Exposed(String),
    /// The HTTP API's address could not be bound.
    #[error("binding the HTTP API to {addr} (server.listen)")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A task's handler could not be built (a bad URL or header of an HTTP task).
    #[error("task {kind}: {problem}")]
    Handler { kind: String, problem: String },
    /// The configured schedules could not be reconciled with the stored ones.
    #[error("reconciling the configured schedules with the stored schedules")]
    Schedules(#[source] errand::Error),
    /// The worker pool refused its settings (no queue, a setting out of range).
    #[error("starting the worker pool")]
    Workers(#[from] errand::worker::StartError),
    /// Any other library error (reading the schema version, starting the pool).
    #[error(transparent)]
    Errand(#[from] errand::Error),
}

/// Where a runtime's database comes from.
#[derive(Debug)]
enum Database {
    /// A URL to connect to (and migrate), with these limits.
    Url(String),
    /// A client the caller built (its store, clock and limits); the runtime adds its tasks.
    Client(Client),
}

/// The builder of a runtime: the database, the tasks, the queues the pool serves and each
/// service's settings. Nothing runs before [`Runtime::start`].
#[derive(Debug)]
pub struct Runtime {
    database: Database,
    postgres_tls: errand::postgres::PgTls,
    limits: Limits,
    tasks: BTreeMap<String, TaskDefinition>,
    queues: BTreeMap<String, u32>,
    queue_limits: BTreeMap<String, errand::QueueLimits>,
    workers: WorkerSettings,
    server: ServerSettings,
    scheduler: SchedulerSettings,
    schedules: BTreeMap<String, ScheduleSpec>,
    retention: RetentionSettings,
    guard_program: Option<PathBuf>,
    workers_only: bool,
    pool_setup: Vec<PoolSetup>,
}

/// What the embedding program does to the worker pool before it starts (registering its
/// in-process handlers).
struct PoolSetup(Box<dyn FnOnce(WorkerBuilder) -> WorkerBuilder + Send>);

impl std::fmt::Debug for PoolSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolSetup")
    }
}

impl Runtime {
    /// A runtime on the database at `url` (an SQLite path or `sqlite:` URL, or a
    /// `postgres://` URL), migrated on start, with every service at its defaults and no tasks.
    pub fn builder(url: impl Into<String>) -> Runtime {
        Runtime::on(Database::Url(url.into()))
    }

    /// A runtime on a client the caller connected (a PostgreSQL schema of its own, a manual
    /// clock, ...). The runtime replaces the client's task settings with its tasks.
    pub fn with_client(client: Client) -> Runtime {
        Runtime::on(Database::Client(client))
    }

    fn on(database: Database) -> Runtime {
        Runtime {
            database,
            postgres_tls: Default::default(),
            limits: Limits::default(),
            tasks: BTreeMap::new(),
            queues: BTreeMap::new(),
            queue_limits: BTreeMap::new(),
            workers: WorkerSettings::default(),
            server: ServerSettings::default(),
            scheduler: SchedulerSettings::default(),
            schedules: BTreeMap::new(),
            retention: RetentionSettings::default(),
            guard_program: None,
            workers_only: false,
            pool_setup: Vec::new(),
        }
    }

    /// TLS to PostgreSQL over the URL's own settings (for a runtime built from a URL; see
    /// [`errand::ClientBuilder::postgres_tls`]).
    pub fn postgres_tls(mut self, tls: errand::postgres::PgTls) -> Self {
        self.postgres_tls = tls;
        self
    }

    /// The limits new jobs are checked against (for a runtime built from a URL).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds (or replaces) the task `kind`.
    pub fn task(mut self, kind: impl Into<String>, task: TaskDefinition) -> Self {
        self.tasks.insert(kind.into(), task);
        self
    }

    /// Replaces every task.
    pub fn tasks(mut self, tasks: BTreeMap<String, TaskDefinition>) -> Self {
        self.tasks = tasks;
        self
    }

    /// Has the pool claim from `queue` with `concurrency` jobs at once.
    pub fn queue(mut self, queue: impl Into<String>, concurrency: u32) -> Self {
        self.queues.insert(queue.into(), concurrency);
        self
    }

    /// Replaces every queue the pool claims from (name to concurrency).
    pub fn queues(mut self, queues: BTreeMap<String, u32>) -> Self {
        self.queues = queues;
        self
    }

    /// Queues' flow-control limits across every worker process (`[queues.NAME]
    /// global_concurrency, key_concurrency, rate_limit`), written to the database at start,
    /// before any service claims: the limits of each queue given here replace the stored
    /// ones (a `None` lifts a limit set earlier); other queues' are left alone.
    pub fn queue_limits(mut self, limits: BTreeMap<String, errand::QueueLimits>) -> Self {
        self.queue_limits = limits;
        self
    }

    /// The worker pool's settings.
    pub fn workers(mut self, workers: WorkerSettings) -> Self {
        self.workers = workers;
        self
    }

    /// The HTTP API's settings.
    pub fn server(mut self, server: ServerSettings) -> Self {
        self.server = server;
        self
    }

    /// The scheduler's settings.
    pub fn scheduler(mut self, scheduler: SchedulerSettings) -> Self {
        self.scheduler = scheduler;
        self
    }

    /// The configured schedules (name to spec), reconciled with the stored configured
    /// schedules on start: added, changed, or removed when no longer named.
    pub fn schedules(mut self, schedules: BTreeMap<String, ScheduleSpec>) -> Self {
        self.schedules = schedules;
        self
    }

    /// How long finished jobs are kept.
    pub fn retention(mut self, retention: RetentionSettings) -> Self {
        self.retention = retention;
        self
    }

    /// The program each command attempt's guard runs as (default: this process's own
    /// executable, which must then call [`guard::run_if_requested`] first thing in `main`).
    /// Point it at the `errand` binary from a program that does not.
    pub fn guard_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.guard_program = Some(program.into());
        self
    }

    /// Registers the embedding program's own handlers on the worker pool before it starts
    /// (`builder.register(...)` or `register_kind`), for the tasks defined with
    /// [`Handler::InProcess`]; called only when the pool runs.
    pub fn on_pool(
        mut self,
        setup: impl FnOnce(WorkerBuilder) -> WorkerBuilder + Send + 'static,
    ) -> Self {
        self.pool_setup.push(PoolSetup(Box::new(setup)));
        self
    }

    /// Runs maintenance and the worker pool only: no HTTP API, no scheduler (`errand worker`).
    pub fn workers_only(mut self) -> Self {
        self.workers_only = true;
        self
    }

    /// Connects (and migrates), then starts every service in order; a service that cannot
    /// start stops the ones already started.
    pub async fn start(self) -> Result<RuntimeHandle, RuntimeError> {
        services::start(self).await
    }
}

/// A running runtime: its client, what it serves, and the services, which stop in reverse
/// order of their start.
#[derive(Debug)]
pub struct RuntimeHandle {
    client: Client,
    info: RuntimeInfo,
    services: services::Services,
    stop: Stopper,
}

impl RuntimeHandle {
    /// The client the services share (with the runtime's tasks as its task settings).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What was started: the database, the queues and tasks served, the HTTP address.
    pub fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    /// Where the HTTP API and dashboard listen, if they run.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.info.http_addr
    }

    /// A handle that asks the runtime to stop, from anywhere (see [`RuntimeHandle::wait`]).
    pub fn stopper(&self) -> Stopper {
        self.stop.clone()
    }

    /// Stops every service in reverse order of its start: the scheduler finishes its pass,
    /// the HTTP API stops accepting and ends long-polls, the pool stops claiming and lets
    /// running jobs finish within the shutdown grace, maintenance last.
    pub async fn shutdown(self) {
        self.services.shutdown().await;
        tracing::info!("errand stopped");
    }

    /// Runs until a [`Stopper`] asks it to stop, then shuts down.
    pub async fn wait(self) {
        self.stop.requested().await;
        self.shutdown().await;
    }

    /// Runs until SIGTERM or SIGINT (the `signals` installed before start, so that a signal
    /// during start-up is a clean stop), or a [`Stopper`], then shuts down; a second signal
    /// during the drain gives up on it ([`Stopped::Abandoned`]: the caller should exit now;
    /// running jobs are rescued after their lease).
    pub async fn run_until_signal(self, mut signals: Signals) -> Stopped {
        let name = tokio::select! {
            name = signals.recv() => name,
            () = self.stop.requested() => "stop request",
        };
        tracing::info!(
            signal = name,
            "stopping: no new jobs are claimed; running jobs may finish"
        );
        tokio::select! {
            () = self.shutdown() => Stopped::Drained,
            name = signals.recv() => {
                tracing::warn!(
                    signal = name,
                    "second signal: exiting now; running jobs are rescued after their lease"
                );
                Stopped::Abandoned
            }
        }
    }
}

/// The URL with its password replaced, for logs and messages.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
