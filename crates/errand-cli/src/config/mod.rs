//! `errand.toml`: reading it, overriding any key from the environment, and validating the
//! result into a [`Config`]. Everything here is pure but [`load`], which reads the file.
//!
//! Each key can be set from the environment: `ERRAND_` followed by the key's path with dots
//! as `_`, upper-cased, other non-alphanumeric characters as `_` (`workers.lease` is
//! `ERRAND_WORKERS_LEASE`, `tasks.send_email.timeout` is `ERRAND_TASKS_SEND_EMAIL_TIMEOUT`).
//! The override walk follows the schema: the top-level and section keys, plus the keys of each
//! queue and task the file declares (and of the queues its tasks use), and the headers an HTTP
//! task declares. An environment value is read as the key's type; a bad one is reported
//! with the variable's name and the key. Precedence: flag > environment > file > default.
//!
//! Errors name the place in the file (line and column), the key path and the problem:
//! `errand.toml:2:1: tasks.send_email: unknown key "comand" (did you mean "command"?);
//! expected one of: queue, command, ...`, or the variable that set a bad value.
//!
//! | module | owns |
//! | --- | --- |
//! | this one | [`Config`], [`ConfigError`], [`load`] and [`parse`] |
//! | `keys` | the schema: every key, its type, and its environment variable's name |
//! | `env` | the `ERRAND_*` overlay on the parsed file |
//! | `raw` | the file's shape as serde types (unknown keys named, with a suggestion), and where a key is in the file |
//! | `read` | the tree read into a [`Config`], each value checked and errors naming the key |
//! | `tasks` | `[tasks.NAME]`: queue, handler (command, http, remote), timeout, attempts, backoff |
//! | `server` | `[server]`: address, tokens, body and connection limits |
//! | `tls` | `[database_tls]`: TLS to PostgreSQL beside `database_url` |

mod env;
mod keys;
mod raw;
mod read;
mod server;
#[cfg(test)]
mod shape_tests;
mod tasks;
#[cfg(test)]
mod tests;
mod tls;

pub use errand_runtime::{
    Handler, RetentionSettings, SchedulerSettings, ServerSettings, TaskDefinition, WorkerSettings,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT,
};

use errand::{Limits, ScheduleSpec};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Table;

/// The configuration file looked for when neither `--config` nor `ERRAND_CONFIG` names one.
pub const DEFAULT_PATH: &str = "errand.toml";
/// The database when nothing sets one: an SQLite file in the working directory.
pub const DEFAULT_DATABASE: &str = "errand.db";
/// Concurrency of each task's queue when the file has no `[queues]` at all.
pub const IMPLICIT_CONCURRENCY: u32 = 10;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it came from: a file, or `None` for zero config.
    pub source: Option<PathBuf>,
    pub database_url: String,
    /// `[database_tls]`: TLS to PostgreSQL, over the URL's own `sslmode` and friends.
    pub database_tls: errand::postgres::PgTls,
    pub workers: WorkerSettings,
    pub limits: Limits,
    /// Queue name to concurrency.
    pub queues: BTreeMap<String, u32>,
    /// `[queues.NAME] global_concurrency, key_concurrency, rate_limit`: limits across every
    /// worker process, written to the database when `serve` or `worker` starts, for the
    /// queues whose table names at least one (the others' stored limits are left alone).
    pub queue_limits: BTreeMap<String, errand::QueueLimits>,
    /// Task kind to its settings.
    pub tasks: BTreeMap<String, TaskDefinition>,
    /// `[server]`: the HTTP API of `errand serve`.
    pub server: ServerSettings,
    /// `[scheduler]`: whether `errand serve` runs the scheduler.
    pub scheduler: SchedulerSettings,
    /// `[retention]`: how long finished jobs are kept, and how often old ones are removed.
    pub retention: RetentionSettings,
    /// `[schedules.NAME]`, checked (every field valid); reconciled with the stored schedules
    /// when `errand serve` starts.
    pub schedules: BTreeMap<String, ScheduleSpec>,
    /// The keys an `ERRAND_*` variable set, with the variable's name (see [`Config::origin`]).
    pub from_env: BTreeMap<String, String>,
}

impl Config {
    /// A client builder on the configured database, with its TLS settings: the one way the
    /// commands open it.
    pub fn client(&self) -> errand::ClientBuilder {
        errand::Client::builder(self.database_url.clone()).postgres_tls(self.database_tls.clone())
    }

    /// The tasks as the library's task settings (every new job of a configured kind takes
    /// them, on every path).
    pub fn task_catalog(&self) -> errand::TaskCatalog {
        errand_runtime::task_catalog(&self.tasks)
    }

    /// Refuses an HTTP API that anyone on the network could call (a non-loopback address
    /// without a token).
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        self.server
            .check_exposure()
            .map_err(|problem| ConfigError::new("configuration", "server.listen", problem))
    }

    /// Where a key's value came from, for messages: `ERRAND_WORKERS_ENABLED=false` when the
    /// environment set it, else `workers.enabled = false in errand.toml` (or "by default"
    /// without a file). `value` is the value as written in TOML.
    pub fn origin(&self, key: &str, value: &str) -> String {
        match (self.from_env.get(key), &self.source) {
            (Some(var), _) => format!("{var}={value}"),
            (None, Some(file)) => format!("{key} = {value} in {}", file.display()),
            (None, None) => format!("{key} = {value} by default"),
        }
    }
}

/// A configuration that cannot be used: where (the file or the environment variable), which
/// key, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file's name, or the environment variable that set the bad value.
    pub origin: String,
    /// The key path, e.g. `tasks.send_email.timeout`; empty for the whole file.
    pub key: String,
    pub problem: String,
    /// Where in the file (line, column, from 1), when the file is what is wrong.
    pub position: Option<(usize, usize)>,
}

impl ConfigError {
    /// An error about `key` from `origin`, at no particular place.
    pub fn new(
        origin: impl Into<String>,
        key: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        ConfigError {
            origin: origin.into(),
            key: key.into(),
            problem: problem.into(),
            position: None,
        }
    }
}

impl fmt::Display for ConfigError {
    /// `errand.toml:3:1: tasks.send_email: unknown key ...`: the file, line and column as
    /// editors read them, then the key and the problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Reads the configuration: the file `explicit` names (`--config` or `ERRAND_CONFIG`; it must
/// exist), else `./errand.toml` if there is one, else zero config; then the environment
/// (`env` looks a variable up) and `database_flag` (`--database`) on top.
pub fn load(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    database_flag: Option<&str>,
) -> Result<Config, ConfigError> {
    let (path, text) = match explicit {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => (Some(path.to_path_buf()), Some(text)),
            Err(e) => {
                return Err(ConfigError::new(
                    path.display().to_string(),
                    "",
                    format!("cannot read the configuration file: {e}"),
                ))
            }
        },
        None => match std::fs::read_to_string(DEFAULT_PATH) {
            Ok(text) => (Some(PathBuf::from(DEFAULT_PATH)), Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
            Err(e) => {
                return Err(ConfigError::new(
                    DEFAULT_PATH,
                    "",
                    format!("cannot read the configuration file: {e}"),
                ))
            }
        },
    };
    let origin = path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "configuration".into());
    let mut config = parse(&origin, text.as_deref(), env)?;
    config.source = path;
    if let Some(url) = database_flag {
        if url.trim().is_empty() {
            return Err(ConfigError::new(
                "--database",
                "database_url",
                "must not be empty",
            ));
        }
        config.database_url = url.to_string();
    }
    Ok(config)
}

/// Parses and validates a configuration: `text` is the file's content (`None`: zero config),
/// `origin` names it in errors, `env` looks environment variables up.
pub fn parse(
    origin: &str,
    text: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut root: Table = match text {
        None => Table::new(),
        Some(text) => text.parse::<Table>().map_err(|e| ConfigError {
            position: e.span().map(|span| raw::position(text, span.start)),
            ..ConfigError::new(
                origin,
                "",
                format!("not valid TOML: {}", e.message().trim_end()),
            )
        })?,
    };
    let queues_declared = root.contains_key("queues");
    let overridden = env::apply_env(&mut root, env)?;
    let reader = read::Reader {
        origin,
        text,
        overridden: &overridden,
    };
    let mut config = reader.config(root, queues_declared)?;
    config.source = None;
    Ok(config)
}
