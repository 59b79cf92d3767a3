//! What a [`Runtime`](crate::Runtime) runs, as plain Rust values: the task definitions and
//! the settings of each service. `errand.toml` is read into these by the CLI; an embedder or a
//! language binding builds them directly. Defaults here are the defaults of `errand serve`.

use errand::worker::maintenance::Retention;
use errand::Backoff;
use errand_server::{ApiToken, ServeOptions};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// A task's execution limit when it sets none (design.md, Job model).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A task's attempt budget when it sets none.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 4;
/// Where the API listens when nothing says: loopback, so no token is needed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// One kind of job this runtime knows: where its jobs go, what runs them, and the settings
/// every new job of the kind takes (on every path: enqueue, HTTP, schedules, triggers).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDefinition {
    /// The queue its jobs go to by default.
    pub queue: String,
    pub handler: Handler,
    /// Execution limit of one attempt; zero means none.
    pub timeout: Duration,
    /// The attempt budget its jobs get by default.
    pub max_attempts: i32,
    pub backoff: Backoff,
    /// The argument whose value is each job's `concurrency_key` (`errand_core::flow`).
    pub concurrency_key: Option<String>,
    /// How many jobs of one key may run at once.
    pub key_concurrency: Option<i32>,
}

impl TaskDefinition {
    /// A task in the `default` queue run by `handler`, with the default timeout, attempts and
    /// backoff.
    pub fn new(handler: Handler) -> Self {
        TaskDefinition {
            queue: "default".into(),
            handler,
            timeout: DEFAULT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            concurrency_key: None,
            key_concurrency: None,
        }
    }

    /// The same task in `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Whether this process runs its jobs (not a remote task).
    pub fn is_local(&self) -> bool {
        self.handler != Handler::Remote
    }
}

/// What runs a task's jobs.
#[derive(Clone, PartialEq)]
pub enum Handler {
    /// A program: argv, the args JSON on stdin (`handlers::command`).
    Command { argv: Vec<String> },
    /// An HTTP endpoint the args JSON is POSTed to (`handlers::http`).
    Http {
        url: String,
        headers: BTreeMap<String, String>,
        /// How an `https://` server's certificate is checked.
        tls: crate::handlers::tls::HttpTls,
    },
    /// Workers elsewhere claim the jobs over the HTTP API; this process only knows the kind
    /// and its settings.
    Remote,
    /// A handler the embedding program registers on the pool itself
    /// ([`Runtime::on_pool`](crate::Runtime::on_pool)): a Rust function, or another
    /// language's through its bindings.
    InProcess,
}

impl Handler {
    /// `command`, `http` or `remote`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Handler::Command { .. } => "command",
            Handler::Http { .. } => "http",
            Handler::Remote => "remote",
            Handler::InProcess => "in-process",
        }
    }
}

impl fmt::Debug for Handler {
    // Not derived: header values are often tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Handler::Command { argv } => f.debug_struct("Command").field("argv", argv).finish(),
            Handler::Remote => f.write_str("Remote"),
            Handler::InProcess => f.write_str("InProcess"),
            Handler::Http { url, headers, tls } => f
                .debug_struct("Http")
                .field("url", url)
                .field("headers", &headers.keys().collect::<Vec<_>>())
                .field("tls", tls)
                .finish(),
        }
    }
}

/// The worker pool (`[workers]`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSettings {
    /// False: claim nothing (the emergency stop).
    pub enabled: bool,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub shutdown_grace: Duration,
    pub cancel_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            enabled: true,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            cancel_grace: Duration::from_secs(5),
        }
    }
}

/// The HTTP API and dashboard (`[server]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// False: no HTTP at all.
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// The bearer tokens and their roles; none: loopback only.
    pub tokens: Vec<ApiToken>,
    /// How connections are held: header, body and idle timeouts, the connection cap.
    pub connections: ServeOptions,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            enabled: true,
            listen: DEFAULT_LISTEN.parse().expect("a socket address"),
            max_body_bytes: 8 * 1024 * 1024,
            tokens: Vec::new(),
            connections: ServeOptions::default(),
        }
    }
}

impl ServerSettings {
    /// Refuses an API that anyone on the network could call: a non-loopback address needs
    /// at least one token. The error is the problem, for the caller to place.
    pub fn check_exposure(&self) -> Result<(), String> {
        if self.enabled && self.tokens.is_empty() && !self.listen.ip().is_loopback() {
            return Err(format!(
                "refusing to serve the HTTP API on {} without a token: anyone who can reach \
                 it could enqueue and cancel jobs. Add a [[server.tokens]] entry (token, role) \
                 or set ERRAND_SERVER_TOKENS=\"admin:<secret>\", or listen on 127.0.0.1",
                self.listen
            ));
        }
        Ok(())
    }
}

/// The scheduler (`[scheduler]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerSettings {
    /// False: the configured schedules are still reconciled, but nothing fires here (other
    /// processes on the same database fire them).
    pub enabled: bool,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings { enabled: true }
    }
}

/// How long finished jobs are kept, and how often old ones are removed (`[retention]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetentionSettings {
    /// How long finished jobs are kept, by final state.
    pub policy: Retention,
    /// How often the maintenance service removes old finished jobs (default 1 minute).
    pub interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            policy: Retention::default(),
            interval: Duration::from_secs(60),
        }
    }
}

/// The tasks as the library's task settings: what every new job of a known kind takes, and
/// the backoff its failed attempts wait.
pub fn task_catalog(tasks: &BTreeMap<String, TaskDefinition>) -> errand::TaskCatalog {
    let mut catalog = errand::TaskCatalog::new();
    for (kind, t) in tasks {
        catalog.insert(
            kind.clone(),
            errand::TaskSettings {
                queue: Some(t.queue.clone()),
                max_attempts: Some(t.max_attempts),
                priority: None,
                timeout: Some(t.timeout),
                backoff: Some(t.backoff),
                remote: !t.is_local(),
                concurrency_key: t.concurrency_key.clone(),
                key_concurrency: t.key_concurrency,
            },
        );
    }
    catalog
}
