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
//! Errors name the key path and the problem:
//! `errand.toml: tasks.send_email: unknown key "comand" (expected one of: queue, command, ...)`.

mod server;

use server::SERVER_KEYS;

pub use errand::worker::maintenance::Retention;
pub use errand_runtime::{
    Handler, RetentionSettings, SchedulerSettings, ServerSettings, TaskDefinition, WorkerSettings,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT,
};

use errand::{Backoff, Limits, NewJob, ScheduleSpec};
use errand_core::parse_duration;
use errand_core::validate::validate_queue_name;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::{Table, Value};

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
    pub workers: WorkerSettings,
    pub limits: Limits,
    /// Queue name to concurrency.
    pub queues: BTreeMap<String, u32>,
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
    /// The tasks as the library's task settings (every new job of a configured kind takes
    /// them, on every path).
    pub fn task_catalog(&self) -> errand::TaskCatalog {
        errand_runtime::task_catalog(&self.tasks)
    }

    /// Refuses an HTTP API that anyone on the network could call (a non-loopback address
    /// without a token).
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        self.server.check_exposure().map_err(|problem| ConfigError {
            origin: "configuration".into(),
            key: "server.listen".into(),
            problem,
        })
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
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.problem)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.key, self.problem)
        }
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
                return Err(ConfigError {
                    origin: path.display().to_string(),
                    key: String::new(),
                    problem: format!("cannot read the configuration file: {e}"),
                })
            }
        },
        None => match std::fs::read_to_string(DEFAULT_PATH) {
            Ok(text) => (Some(PathBuf::from(DEFAULT_PATH)), Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
            Err(e) => {
                return Err(ConfigError {
                    origin: DEFAULT_PATH.into(),
                    key: String::new(),
                    problem: format!("cannot read the configuration file: {e}"),
                })
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
            return Err(ConfigError {
                origin: "--database".into(),
                key: "database_url".into(),
                problem: "must not be empty".into(),
            });
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
            origin: origin.to_string(),
            key: String::new(),
            problem: format!("not valid TOML: {}", e.to_string().trim_end()),
        })?,
    };
    let queues_declared = root.contains_key("queues");
    let overridden = apply_env(&mut root, env)?;
    let reader = Reader {
        origin,
        overridden: &overridden,
    };
    let mut config = reader.config(root, queues_declared)?;
    config.source = None;
    Ok(config)
}

// ---- the schema ---------------------------------------------------------------------------

/// The type of a key, for reading environment values and for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    Int,
    Float,
    Duration,
    StrList,
}

const ROOT_KEYS: &[&str] = &[
    "database_url",
    "workers",
    "limits",
    "queues",
    "tasks",
    "server",
    "scheduler",
    "schedules",
    "retention",
];
/// `[retention]`: a duration per final state, or `enabled = false` to keep everything.
const RETENTION_KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("succeeded", Kind::Duration),
    ("cancelled", Kind::Duration),
    ("failed", Kind::Duration),
    ("interval", Kind::Duration),
];
const SCHEDULER_KEYS: &[(&str, Kind)] = &[("enabled", Kind::Bool)];
/// The scalar keys of a `[schedules.NAME]` table that the environment can set (`args` is a
/// table, not overridable).
const SCHEDULE_KEYS: &[(&str, Kind)] = &[
    ("cron", Kind::Str),
    ("every", Kind::Str),
    ("timezone", Kind::Str),
    ("kind", Kind::Str),
    ("queue", Kind::Str),
    ("priority", Kind::Int),
    ("max_attempts", Kind::Int),
    ("overlap", Kind::Str),
    ("misfire_grace", Kind::Duration),
    ("coalesce", Kind::Bool),
    ("paused", Kind::Bool),
];
const WORKERS_KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("lease", Kind::Duration),
    ("poll_interval", Kind::Duration),
    ("shutdown_grace", Kind::Duration),
    ("cancel_grace", Kind::Duration),
];
const LIMITS_KEYS: &[(&str, Kind)] = &[("max_args_bytes", Kind::Int)];
const QUEUE_KEYS: &[(&str, Kind)] = &[("concurrency", Kind::Int)];
/// The scalar keys of a task; `http` and `backoff` are tables handled beside them.
const TASK_KEYS: &[(&str, Kind)] = &[
    ("queue", Kind::Str),
    ("command", Kind::StrList),
    ("remote", Kind::Bool),
    ("timeout", Kind::Duration),
    ("max_attempts", Kind::Int),
];
const TASK_ALL_KEYS: &[&str] = &[
    "queue",
    "command",
    "http",
    "remote",
    "timeout",
    "max_attempts",
    "backoff",
];
const HTTP_KEYS: &[&str] = &["url", "headers"];
const BACKOFF_KEYS: &[(&str, Kind)] = &[
    ("base", Kind::Duration),
    ("cap", Kind::Duration),
    ("jitter", Kind::Float),
];

fn names(keys: &[(&'static str, Kind)]) -> Vec<&'static str> {
    keys.iter().map(|(k, _)| *k).collect()
}

/// The environment variable of a key path: `ERRAND_` + the path joined with `_`, upper-cased,
/// every other non-alphanumeric character as `_`.
pub fn env_name(path: &[&str]) -> String {
    let mut out = String::from("ERRAND");
    for part in path {
        out.push('_');
        out.extend(part.chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        }));
    }
    out
}

// ---- environment overrides ---------------------------------------------------------------

/// Key path (`workers.lease`) to the variable that set it.
type Overridden = HashMap<String, String>;

/// Applies every `ERRAND_*` variable the schema knows to the parsed file, and returns which
/// keys they set.
fn apply_env(
    root: &mut Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Overridden, ConfigError> {
    let mut applier = EnvApplier {
        env,
        overridden: Overridden::new(),
    };
    applier.set_in(root, &[], "database_url", Kind::Str)?;
    for (section, keys) in [
        ("workers", WORKERS_KEYS),
        ("limits", LIMITS_KEYS),
        ("server", SERVER_KEYS),
        ("scheduler", SCHEDULER_KEYS),
        ("retention", RETENTION_KEYS),
    ] {
        for (key, kind) in keys {
            applier.set_in(root, &[section], key, *kind)?;
        }
    }
    let schedules: Vec<String> = match root.get("schedules") {
        Some(Value::Table(t)) => t.keys().cloned().collect(),
        _ => Vec::new(),
    };
    for schedule in &schedules {
        for (key, kind) in SCHEDULE_KEYS {
            applier.set_in(root, &["schedules", schedule], key, *kind)?;
        }
    }
    // Tasks first: their (possibly overridden) queues name queues whose keys are walked too.
    let tasks: Vec<String> = match root.get("tasks") {
        Some(Value::Table(t)) => t.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let mut queues: BTreeSet<String> = match root.get("queues") {
        Some(Value::Table(t)) => t.keys().cloned().collect(),
        _ => BTreeSet::new(),
    };
    for task in &tasks {
        for (key, kind) in TASK_KEYS {
            applier.set_in(root, &["tasks", task], key, *kind)?;
        }
        applier.set_in(root, &["tasks", task, "http"], "url", Kind::Str)?;
        let headers: Vec<String> = match lookup(root, &["tasks", task, "http", "headers"]) {
            Some(Value::Table(h)) => h.keys().cloned().collect(),
            _ => Vec::new(),
        };
        for header in &headers {
            applier.set_in(root, &["tasks", task, "http", "headers"], header, Kind::Str)?;
        }
        for (key, kind) in BACKOFF_KEYS {
            applier.set_in(root, &["tasks", task, "backoff"], key, *kind)?;
        }
        match lookup(root, &["tasks", task, "queue"]) {
            Some(Value::String(q)) => queues.insert(q.clone()),
            _ => queues.insert("default".into()),
        };
    }
    for queue in &queues {
        for (key, kind) in QUEUE_KEYS {
            applier.set_in(root, &["queues", queue], key, *kind)?;
        }
    }
    Ok(applier.overridden)
}

fn lookup<'a>(root: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut table = root;
    for p in parents {
        table = table.get(*p)?.as_table()?;
    }
    table.get(*last)
}

struct EnvApplier<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    overridden: Overridden,
}

impl EnvApplier<'_> {
    /// Sets `parents.key` from its variable, if set, creating the parent tables as needed.
    fn set_in(
        &mut self,
        root: &mut Table,
        parents: &[&str],
        key: &str,
        kind: Kind,
    ) -> Result<(), ConfigError> {
        let mut path: Vec<&str> = parents.to_vec();
        path.push(key);
        let var = env_name(&path);
        let Some(raw) = (self.env)(&var) else {
            return Ok(());
        };
        let dotted = dotted(&path);
        let value = env_value(&raw, kind).map_err(|problem| ConfigError {
            origin: var.clone(),
            key: dotted.clone(),
            problem,
        })?;
        let mut table = root;
        for (i, p) in parents.iter().enumerate() {
            let entry = table
                .entry(p.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            table = entry.as_table_mut().ok_or_else(|| ConfigError {
                origin: var.clone(),
                key: dotted_prefix(parents, i + 1),
                problem: "is not a table, so its keys cannot be set from the environment".into(),
            })?;
        }
        table.insert(key.to_string(), value);
        self.overridden.insert(dotted, var);
        Ok(())
    }
}

/// Reads an environment value as a key of type `kind`. Durations stay strings (checked with
/// the file's values later); a command is a JSON/TOML array of strings, or words split on
/// white space.
fn env_value(raw: &str, kind: Kind) -> Result<Value, String> {
    let trimmed = raw.trim();
    match kind {
        Kind::Str | Kind::Duration => Ok(Value::String(raw.to_string())),
        Kind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected true or false, got \"{raw}\"")),
        },
        Kind::Int => trimmed
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("expected an integer, got \"{raw}\"")),
        Kind::Float => trimmed
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("expected a number, got \"{raw}\"")),
        Kind::StrList => {
            if trimmed.starts_with('[') {
                let words: Vec<String> = serde_json::from_str(trimmed).map_err(|e| {
                    format!("expected an array of strings like [\"python3\", \"job.py\"]: {e}")
                })?;
                Ok(Value::Array(words.into_iter().map(Value::String).collect()))
            } else {
                Ok(Value::Array(
                    trimmed
                        .split_whitespace()
                        .map(|w| Value::String(w.into()))
                        .collect(),
                ))
            }
        }
    }
}

fn dotted(path: &[&str]) -> String {
    path.iter()
        .map(|p| {
            if !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                p.to_string()
            } else {
                format!("\"{p}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn dotted_prefix(path: &[&str], n: usize) -> String {
    dotted(&path[..n])
}

// ---- reading the tree into a Config ---------------------------------------------------------

struct Reader<'a> {
    origin: &'a str,
    overridden: &'a Overridden,
}

impl Reader<'_> {
    fn error(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        let origin = self
            .overridden
            .get(key)
            .cloned()
            .unwrap_or_else(|| self.origin.to_string());
        ConfigError {
            origin,
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    /// Checks that `value` is a table holding only `allowed` keys.
    fn table(&self, path: &str, value: Value, allowed: &[&str]) -> Result<Table, ConfigError> {
        let Value::Table(table) = value else {
            return Err(self.error(path, format!("expected a table, got {}", type_name(&value))));
        };
        if let Some(unknown) = table.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(self.error(
                path,
                format!(
                    "unknown key \"{unknown}\" (expected one of: {})",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(table)
    }

    fn child(path: &str, key: &str) -> String {
        if path.is_empty() {
            dotted(&[key])
        } else {
            format!("{path}.{}", dotted(&[key]))
        }
    }

    fn string(&self, path: &str, value: Value) -> Result<String, ConfigError> {
        match value {
            Value::String(s) => Ok(s),
            other => Err(self.error(
                path,
                format!("expected a string, got {}", type_name(&other)),
            )),
        }
    }

    fn bool(&self, path: &str, value: Value) -> Result<bool, ConfigError> {
        match value {
            Value::Boolean(b) => Ok(b),
            other => Err(self.error(
                path,
                format!("expected true or false, got {}", type_name(&other)),
            )),
        }
    }

    fn int(&self, path: &str, value: Value, min: i64, max: i64) -> Result<i64, ConfigError> {
        match value {
            Value::Integer(n) if n < min => {
                Err(self.error(path, format!("must be at least {min}, got {n}")))
            }
            Value::Integer(n) if n > max => {
                Err(self.error(path, format!("must be at most {max}, got {n}")))
            }
            Value::Integer(n) => Ok(n),
            other => Err(self.error(
                path,
                format!("expected an integer, got {}", type_name(&other)),
            )),
        }
    }

    fn duration(&self, path: &str, value: Value) -> Result<Duration, ConfigError> {
        match value {
            Value::String(s) => parse_duration(&s).map_err(|e| self.error(path, e.to_string())),
            Value::Integer(0) => Ok(Duration::ZERO),
            other => Err(self.error(
                path,
                format!(
                    "expected a duration string such as \"30s\" or \"5m\", got {}",
                    type_name(&other)
                ),
            )),
        }
    }

    fn config(&self, root: Table, queues_declared: bool) -> Result<Config, ConfigError> {
        let mut root = self.table("", Value::Table(root), ROOT_KEYS)?;
        let database_url = match root.remove("database_url") {
            Some(v) => {
                let url = self.string("database_url", v)?;
                if url.trim().is_empty() {
                    return Err(self.error("database_url", "must not be empty"));
                }
                url
            }
            None => DEFAULT_DATABASE.to_string(),
        };
        let workers = match root.remove("workers") {
            Some(v) => self.workers(v)?,
            None => WorkerSettings::default(),
        };
        let limits = match root.remove("limits") {
            Some(v) => self.limits(v)?,
            None => Limits::default(),
        };
        let server = match root.remove("server") {
            Some(v) => self.server(v)?,
            None => ServerSettings::default(),
        };
        let scheduler = match root.remove("scheduler") {
            Some(v) => {
                let mut t = self.table("scheduler", v, &names(SCHEDULER_KEYS))?;
                SchedulerSettings {
                    enabled: match t.remove("enabled") {
                        Some(v) => self.bool("scheduler.enabled", v)?,
                        None => true,
                    },
                }
            }
            None => SchedulerSettings::default(),
        };
        let mut schedules = BTreeMap::new();
        if let Some(v) = root.remove("schedules") {
            let Value::Table(table) = v else {
                return Err(self.error(
                    "schedules",
                    format!("expected a table, got {}", type_name(&v)),
                ));
            };
            for (name, v) in table {
                let spec = self.schedule(&name, v)?;
                schedules.insert(name, spec);
            }
        }
        let retention = match root.remove("retention") {
            Some(v) => self.retention(v)?,
            None => RetentionSettings::default(),
        };
        let mut queues = BTreeMap::new();
        if let Some(v) = root.remove("queues") {
            let Value::Table(table) = v else {
                return Err(
                    self.error("queues", format!("expected a table, got {}", type_name(&v)))
                );
            };
            for (name, v) in table {
                let path = Self::child("queues", &name);
                if let Err(e) = validate_queue_name(&name) {
                    return Err(self.error(&path, format!("invalid queue name: {}", e.problem)));
                }
                let mut q = self.table(&path, v, &names(QUEUE_KEYS))?;
                let concurrency = match q.remove("concurrency") {
                    Some(v) => self.int(
                        &Self::child(&path, "concurrency"),
                        v,
                        1,
                        i64::from(u32::MAX),
                    )? as u32,
                    None => return Err(self.error(&path, "missing key \"concurrency\"")),
                };
                queues.insert(name, concurrency);
            }
        }
        let mut tasks = BTreeMap::new();
        if let Some(v) = root.remove("tasks") {
            let Value::Table(table) = v else {
                return Err(self.error("tasks", format!("expected a table, got {}", type_name(&v))));
            };
            for (name, v) in table {
                let task = self.task(&name, v)?;
                tasks.insert(name, task);
            }
        }
        for (name, task) in &tasks {
            if task.handler != Handler::Remote {
                continue;
            }
            let local: Vec<&str> = tasks
                .iter()
                .filter(|(_, t)| t.handler != Handler::Remote && t.queue == task.queue)
                .map(|(n, _)| n.as_str())
                .collect();
            if !local.is_empty() {
                return Err(self.error(
                    &format!("{}.queue", Self::child("tasks", name)),
                    format!(
                        "queue \"{}\" is also served by this process's workers (tasks {}), which \
                         would claim this remote task's jobs: give remote tasks a queue of their own",
                        task.queue,
                        local.join(", ")
                    ),
                ));
            }
        }
        for (name, task) in &tasks {
            if queues.contains_key(&task.queue) || task.handler == Handler::Remote {
                continue;
            }
            if queues_declared {
                return Err(self.error(
                    &format!("{}.queue", Self::child("tasks", name)),
                    format!(
                        "queue \"{q}\" has no [queues.{q}] entry: add one with its concurrency \
                         (with no [queues] section at all, every task's queue gets concurrency {IMPLICIT_CONCURRENCY})",
                        q = task.queue
                    ),
                ));
            }
            queues.insert(task.queue.clone(), IMPLICIT_CONCURRENCY);
        }
        Ok(Config {
            source: None,
            database_url,
            workers,
            limits,
            queues,
            tasks,
            server,
            scheduler,
            schedules,
            retention,
            from_env: self
                .overridden
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// One `[schedules.NAME]` table: read as a [`ScheduleSpec`] (an unknown or mistyped key
    /// is named), then checked field by field (`schedules.NAME.cron: ...`).
    fn schedule(&self, name: &str, v: Value) -> Result<ScheduleSpec, ConfigError> {
        let path = Self::child("schedules", name);
        if !v.is_table() {
            return Err(self.error(&path, format!("expected a table, got {}", type_name(&v))));
        }
        let spec: ScheduleSpec = v
            .try_into()
            .map_err(|e: toml::de::Error| self.error(&path, e.message().trim_end().to_string()))?;
        spec.validate(name)
            .map_err(|e| self.error(&e.path, e.problem))?;
        Ok(spec)
    }

    fn workers(&self, v: Value) -> Result<WorkerSettings, ConfigError> {
        let mut t = self.table("workers", v, &names(WORKERS_KEYS))?;
        let mut w = WorkerSettings::default();
        if let Some(v) = t.remove("enabled") {
            w.enabled = self.bool("workers.enabled", v)?;
        }
        if let Some(v) = t.remove("lease") {
            w.lease = self.duration("workers.lease", v)?;
            if w.lease < Duration::from_millis(30) {
                return Err(self.error("workers.lease", "must be at least 30ms"));
            }
        }
        if let Some(v) = t.remove("poll_interval") {
            w.poll_interval = self.duration("workers.poll_interval", v)?;
            if w.poll_interval.is_zero() {
                return Err(self.error("workers.poll_interval", "must not be zero"));
            }
        }
        if let Some(v) = t.remove("shutdown_grace") {
            w.shutdown_grace = self.duration("workers.shutdown_grace", v)?;
        }
        if let Some(v) = t.remove("cancel_grace") {
            w.cancel_grace = self.duration("workers.cancel_grace", v)?;
        }
        Ok(w)
    }

    fn retention(&self, v: Value) -> Result<RetentionSettings, ConfigError> {
        let mut t = self.table("retention", v, &names(RETENTION_KEYS))?;
        let mut out = RetentionSettings::default();
        if let Some(v) = t.remove("interval") {
            out.interval = self.duration("retention.interval", v)?;
            if out.interval < Duration::from_millis(100) {
                return Err(self.error("retention.interval", "must be at least 100ms"));
            }
        }
        let mut r = Retention::default();
        for (key, slot) in [
            ("succeeded", &mut r.succeeded),
            ("cancelled", &mut r.cancelled),
            ("failed", &mut r.failed),
        ] {
            if let Some(v) = t.remove(key) {
                let path = format!("retention.{key}");
                let d = self.duration(&path, v)?;
                if d.is_zero() {
                    return Err(self.error(
                        &path,
                        "must not be zero (set `enabled = false` to keep every job)",
                    ));
                }
                *slot = Some(d);
            }
        }
        if let Some(v) = t.remove("enabled") {
            if !self.bool("retention.enabled", v)? {
                r = Retention::OFF;
            }
        }
        out.policy = r;
        Ok(out)
    }

    fn limits(&self, v: Value) -> Result<Limits, ConfigError> {
        let mut t = self.table("limits", v, &names(LIMITS_KEYS))?;
        let mut limits = Limits::default();
        if let Some(v) = t.remove("max_args_bytes") {
            limits.max_args_bytes = self.int("limits.max_args_bytes", v, 1, i64::MAX)? as usize;
        }
        Ok(limits)
    }

    fn task(&self, name: &str, v: Value) -> Result<TaskDefinition, ConfigError> {
        let path = Self::child("tasks", name);
        if let Err(e) = NewJob::new(name, serde_json::json!({})).validate(&Limits::default()) {
            return Err(self.error(&path, format!("invalid task name: {}", e.problem)));
        }
        let mut t = self.table(&path, v, TASK_ALL_KEYS)?;
        let key = |k: &str| Self::child(&path, k);
        let queue = match t.remove("queue") {
            Some(v) => {
                let q = self.string(&key("queue"), v)?;
                if let Err(e) = validate_queue_name(&q) {
                    return Err(self.error(&key("queue"), e.problem));
                }
                q
            }
            None => "default".to_string(),
        };
        let remote = match t.remove("remote") {
            Some(v) => self.bool(&key("remote"), v)?,
            None => false,
        };
        let handler = match (t.remove("command"), t.remove("http"), remote) {
            (Some(cmd), None, false) => self.command(&key("command"), cmd)?,
            (None, Some(http), false) => self.http(&key("http"), http)?,
            (None, None, true) => Handler::Remote,
            (_, _, true) => {
                return Err(self.error(
                    &key("remote"),
                    "a remote task runs elsewhere: give it no \"command\" or \"http\"",
                ))
            }
            _ => {
                return Err(self.error(
                    &path,
                    "set exactly one of \"command\" or \"http\" (or `remote = true` for a kind that remote workers serve)",
                ))
            }
        };
        let timeout = match t.remove("timeout") {
            Some(v) => self.duration(&key("timeout"), v)?,
            None => DEFAULT_TIMEOUT,
        };
        let max_attempts = match t.remove("max_attempts") {
            Some(v) => self.int(&key("max_attempts"), v, 1, i64::from(i32::MAX))? as i32,
            None => DEFAULT_MAX_ATTEMPTS,
        };
        let backoff = match t.remove("backoff") {
            Some(v) => self.backoff(&key("backoff"), v)?,
            None => Backoff::default(),
        };
        Ok(TaskDefinition {
            queue,
            handler,
            timeout,
            max_attempts,
            backoff,
        })
    }

    fn command(&self, path: &str, v: Value) -> Result<Handler, ConfigError> {
        let Value::Array(items) = v else {
            return Err(self.error(
                path,
                format!(
                    "expected an array of strings such as [\"python3\", \"job.py\"], got {}",
                    type_name(&v)
                ),
            ));
        };
        let mut argv = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::String(s) => argv.push(s),
                other => {
                    return Err(self.error(
                        path,
                        format!("item {i} must be a string, got {}", type_name(&other)),
                    ))
                }
            }
        }
        match argv.first() {
            None => Err(self.error(path, "must name a program: the array is empty")),
            Some(p) if p.trim().is_empty() => {
                Err(self.error(path, "the program (item 0) is empty"))
            }
            Some(_) => Ok(Handler::Command { argv }),
        }
    }

    fn http(&self, path: &str, v: Value) -> Result<Handler, ConfigError> {
        let mut t = self.table(path, v, HTTP_KEYS)?;
        let url_key = Self::child(path, "url");
        let url = match t.remove("url") {
            Some(v) => self.string(&url_key, v)?,
            None => return Err(self.error(path, "missing key \"url\"")),
        };
        match reqwest::Url::parse(&url) {
            Ok(u) if u.scheme() == "http" && u.host().is_some() => {}
            Ok(u) if u.scheme() == "https" => {
                return Err(self.error(
                    &url_key,
                    "https is not supported yet (this build has no TLS); use an http:// URL, \
                     e.g. a local proxy",
                ))
            }
            Ok(_) => {
                return Err(self.error(&url_key, format!("expected an http:// URL, got \"{url}\"")))
            }
            Err(e) => return Err(self.error(&url_key, format!("invalid URL \"{url}\": {e}"))),
        }
        let mut headers = BTreeMap::new();
        if let Some(v) = t.remove("headers") {
            let headers_key = Self::child(path, "headers");
            let Value::Table(table) = v else {
                return Err(self.error(
                    &headers_key,
                    format!(
                        "expected a table of header names to values, got {}",
                        type_name(&v)
                    ),
                ));
            };
            for (name, value) in table {
                let key = Self::child(&headers_key, &name);
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(self.error(&key, "is not a valid HTTP header name"));
                }
                let value = self.string(&key, value)?;
                if reqwest::header::HeaderValue::from_str(&value).is_err() {
                    return Err(self.error(&key, "is not a valid HTTP header value"));
                }
                headers.insert(name, value);
            }
        }
        Ok(Handler::Http { url, headers })
    }

    fn backoff(&self, path: &str, v: Value) -> Result<Backoff, ConfigError> {
        let mut t = self.table(path, v, &names(BACKOFF_KEYS))?;
        let mut b = Backoff::default();
        if let Some(v) = t.remove("base") {
            b.base = self.duration(&Self::child(path, "base"), v)?;
        }
        if let Some(v) = t.remove("cap") {
            b.cap = self.duration(&Self::child(path, "cap"), v)?;
        }
        if let Some(v) = t.remove("jitter") {
            let key = Self::child(path, "jitter");
            b.jitter = match v {
                Value::Float(f) => f,
                Value::Integer(n) => n as f64,
                other => {
                    return Err(self.error(
                        &key,
                        format!("expected a number, got {}", type_name(&other)),
                    ))
                }
            };
            if !(0.0..=1.0).contains(&b.jitter) {
                return Err(self.error(&key, format!("must be between 0 and 1, got {}", b.jitter)));
            }
        }
        if b.cap < b.base {
            return Err(self.error(
                &Self::child(path, "cap"),
                "must not be shorter than backoff.base",
            ));
        }
        Ok(b)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_with(text: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse("errand.toml", text, &move |name| env.get(name).cloned())
    }

    fn error(text: &str) -> String {
        parse("errand.toml", Some(text), &no_env)
            .unwrap_err()
            .to_string()
    }

    const FULL: &str = r#"
database_url = "postgres://app@db/app"
[workers]
enabled = true
lease = "10s"
poll_interval = "250ms"
shutdown_grace = "1m"
cancel_grace = "2s"
[limits]
max_args_bytes = 2048
[queues.default]
concurrency = 10
[queues.email]
concurrency = 4
[tasks.send_email]
queue = "email"
command = ["python3", "scripts/send_email.py"]
timeout = "5m"
max_attempts = 5
backoff = { base = "5s", cap = "1h", jitter = 0.2 }
[tasks.regen]
http = { url = "http://127.0.0.1:8000/jobs/regen", headers = { "X-Token" = "secret" } }
timeout = "0"
"#;

    #[test]
    fn a_full_file_reads_into_every_setting() {
        let c = parse("errand.toml", Some(FULL), &no_env).unwrap();
        assert_eq!(c.database_url, "postgres://app@db/app");
        assert_eq!(
            c.workers,
            WorkerSettings {
                enabled: true,
                lease: Duration::from_secs(10),
                poll_interval: Duration::from_millis(250),
                shutdown_grace: Duration::from_secs(60),
                cancel_grace: Duration::from_secs(2),
            }
        );
        assert_eq!(c.limits.max_args_bytes, 2048);
        assert_eq!(
            c.queues,
            BTreeMap::from([("default".into(), 10), ("email".into(), 4)])
        );
        let email = &c.tasks["send_email"];
        assert_eq!(email.queue, "email");
        assert_eq!(
            email.handler,
            Handler::Command {
                argv: vec!["python3".into(), "scripts/send_email.py".into()]
            }
        );
        assert_eq!(email.timeout, Duration::from_secs(300));
        assert_eq!(email.max_attempts, 5);
        assert_eq!(email.backoff.base, Duration::from_secs(5));
        assert_eq!(email.backoff.cap, Duration::from_secs(3600));
        assert_eq!(email.backoff.jitter, 0.2);
        let regen = &c.tasks["regen"];
        assert_eq!(regen.queue, "default");
        assert_eq!(regen.timeout, Duration::ZERO);
        assert_eq!(regen.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(regen.backoff, Backoff::default());
        let Handler::Http { url, headers } = &regen.handler else {
            panic!()
        };
        assert_eq!(url, "http://127.0.0.1:8000/jobs/regen");
        assert_eq!(headers["X-Token"], "secret");
        assert!(
            !format!("{:?}", regen.handler).contains("secret"),
            "Debug shows header values"
        );
    }

    #[test]
    fn zero_config_is_the_local_file_and_no_tasks() {
        let c = parse_with(None, &[]).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE);
        assert_eq!(c.workers, WorkerSettings::default());
        assert_eq!(c.limits, Limits::default());
        assert!(c.queues.is_empty());
        assert!(c.tasks.is_empty());
        // An empty file is the same.
        assert_eq!(parse_with(Some(""), &[]).unwrap(), c);
    }

    #[test]
    fn unknown_keys_are_named_with_their_path_and_the_expected_ones() {
        assert_eq!(
            error("[tasks.send_email]\ncomand = [\"x\"]\n"),
            "errand.toml: tasks.send_email: unknown key \"comand\" (expected one of: queue, command, \
             http, remote, timeout, max_attempts, backoff)"
        );
        assert_eq!(
            error("databse_url = \"x\"\n"),
            "errand.toml: unknown key \"databse_url\" (expected one of: database_url, workers, limits, \
             queues, tasks, server, scheduler, schedules, retention)"
        );
        assert!(error("[workers]\nleese = \"1s\"\n")
            .starts_with("errand.toml: workers: unknown key \"leese\""));
        assert!(error("[queues.a]\nconcurency = 1\n")
            .starts_with("errand.toml: queues.a: unknown key \"concurency\""));
        let e = error("[tasks.t]\ncommand = [\"x\"]\nbackoff = { bse = \"1s\" }\n");
        assert!(
            e.starts_with("errand.toml: tasks.t.backoff: unknown key \"bse\""),
            "{e}"
        );
        let e = error("[tasks.t]\nhttp = { url = \"http://h/\", header = {} }\n");
        assert!(
            e.starts_with("errand.toml: tasks.t.http: unknown key \"header\""),
            "{e}"
        );
    }

    #[test]
    fn every_validation_error_names_the_key_and_the_problem() {
        for (text, expected) in [
            ("database_url = \"\"", "errand.toml: database_url: must not be empty"),
            ("database_url = 5", "errand.toml: database_url: expected a string, got an integer"),
            ("[workers]\nenabled = \"no\"", "errand.toml: workers.enabled: expected true or false, got a string"),
            ("[workers]\nlease = \"30x\"", "errand.toml: workers.lease: invalid duration `30x`: unknown unit `x`"),
            ("[workers]\nlease = 30", "errand.toml: workers.lease: expected a duration string"),
            ("[workers]\nlease = \"1ms\"", "errand.toml: workers.lease: must be at least 30ms"),
            ("[workers]\npoll_interval = \"0\"", "errand.toml: workers.poll_interval: must not be zero"),
            ("[limits]\nmax_args_bytes = 0", "errand.toml: limits.max_args_bytes: must be at least 1, got 0"),
            ("[queues.email]\nconcurrency = 0", "errand.toml: queues.email.concurrency: must be at least 1, got 0"),
            ("[queues.email]\nconcurrency = \"4\"", "errand.toml: queues.email.concurrency: expected an integer"),
            ("[queues.email]", "errand.toml: queues.email: missing key \"concurrency\""),
            ("[queues]\nemail = 4", "errand.toml: queues.email: expected a table, got an integer"),
            ("[tasks.regen]\ntimeout = \"1m\"", "errand.toml: tasks.regen: set exactly one of \"command\" or \"http\""),
            (
                "[tasks.regen]\ncommand = [\"x\"]\nhttp = { url = \"http://h/\" }",
                "errand.toml: tasks.regen: set exactly one of \"command\" or \"http\"",
            ),
            ("[tasks.t]\ncommand = []", "errand.toml: tasks.t.command: must name a program"),
            ("[tasks.t]\ncommand = \"python3 x.py\"", "errand.toml: tasks.t.command: expected an array of strings"),
            ("[tasks.t]\ncommand = [\"x\", 1]", "errand.toml: tasks.t.command: item 1 must be a string"),
            ("[tasks.t]\ncommand = [\"x\"]\ntimeout = \"soon\"", "errand.toml: tasks.t.timeout: invalid duration `soon`"),
            ("[tasks.t]\ncommand = [\"x\"]\nmax_attempts = 0", "errand.toml: tasks.t.max_attempts: must be at least 1, got 0"),
            ("[tasks.t]\ncommand = [\"x\"]\nqueue = \"\"", "errand.toml: tasks.t.queue: must not be empty"),
            (
                "[tasks.t]\ncommand = [\"x\"]\nbackoff = { jitter = 2.0 }",
                "errand.toml: tasks.t.backoff.jitter: must be between 0 and 1, got 2",
            ),
            (
                "[tasks.t]\ncommand = [\"x\"]\nbackoff = { base = \"1m\", cap = \"1s\" }",
                "errand.toml: tasks.t.backoff.cap: must not be shorter than backoff.base",
            ),
            ("[tasks.t]\nhttp = { headers = {} }", "errand.toml: tasks.t.http: missing key \"url\""),
            ("[tasks.t]\nhttp = { url = \"https://h/\" }", "errand.toml: tasks.t.http.url: https is not supported yet"),
            ("[tasks.t]\nhttp = { url = \"ftp://h/\" }", "errand.toml: tasks.t.http.url: expected an http:// URL"),
            ("[tasks.t]\nhttp = { url = \"not a url\" }", "errand.toml: tasks.t.http.url: invalid URL"),
            (
                "[tasks.t]\nhttp = { url = \"http://h/\", headers = { \"Bad Header\" = \"v\" } }",
                "errand.toml: tasks.t.http.headers.\"Bad Header\": is not a valid HTTP header name",
            ),
            (
                "[tasks.t]\nhttp = { url = \"http://h/\", headers = { X-N = 1 } }",
                "errand.toml: tasks.t.http.headers.X-N: expected a string, got an integer",
            ),
            (
                "[queues.default]\nconcurrency = 2\n[tasks.t]\ncommand = [\"x\"]\nqueue = \"email\"",
                "errand.toml: tasks.t.queue: queue \"email\" has no [queues.email] entry",
            ),
            ("tasks = 3", "errand.toml: tasks: expected a table, got an integer"),
            ("[workers\n", "errand.toml: not valid TOML"),
        ] {
            let e = error(text);
            assert!(e.starts_with(expected), "for {text:?}\n  got: {e}\n want: {expected}…");
        }
    }

    #[test]
    fn remote_tasks_and_retention_are_read_and_checked() {
        let c = parse_with(
            Some(
                "[tasks.mail]\ncommand = [\"x\"]\n[tasks.embed]\nremote = true\nqueue = \"gpu\"\n\
                 [retention]\nsucceeded = \"7d\"\ninterval = \"10s\"\n",
            ),
            &[],
        )
        .unwrap();
        assert_eq!(c.tasks["embed"].handler, Handler::Remote);
        assert!(
            !c.queues.contains_key("gpu"),
            "no local concurrency for a remote queue"
        );
        let catalog = c.task_catalog();
        assert!(catalog.get("embed").unwrap().remote);
        assert_eq!(
            catalog.get("mail").unwrap().queue.as_deref(),
            Some("default")
        );
        assert_eq!(
            c.retention.policy.succeeded,
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(
            c.retention.policy.failed,
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(c.retention.interval, Duration::from_secs(10));
        let off = parse_with(Some("[retention]\nenabled = false\n"), &[]).unwrap();
        assert_eq!(off.retention.policy, Retention::OFF);
        let env = parse_with(None, &[("ERRAND_RETENTION_FAILED", "1d")]).unwrap();
        assert_eq!(
            env.retention.policy.failed,
            Some(Duration::from_secs(86_400))
        );
        for (text, expected) in [
            (
                "[tasks.e]\nremote = true\ncommand = [\"x\"]\n",
                "errand.toml: tasks.e.remote: a remote task runs elsewhere",
            ),
            (
                "[tasks.a]\ncommand = [\"x\"]\n[tasks.e]\nremote = true\n",
                "errand.toml: tasks.e.queue: queue \"default\" is also served by this process's workers (tasks a)",
            ),
            ("[retention]\nfailed = \"0s\"\n", "errand.toml: retention.failed: must not be zero"),
            ("[retention]\nkeep = 1\n", "errand.toml: retention: unknown key \"keep\""),
        ] {
            let e = error(text);
            assert!(e.starts_with(expected), "for {text:?}\n  got: {e}\n want: {expected}…");
        }
    }

    #[test]
    fn queues_come_from_tasks_only_when_the_file_declares_none() {
        let text =
            "[tasks.a]\ncommand = [\"x\"]\n[tasks.b]\ncommand = [\"y\"]\nqueue = \"email\"\n";
        let c = parse_with(Some(text), &[]).unwrap();
        assert_eq!(
            c.queues,
            BTreeMap::from([("default".into(), 10), ("email".into(), 10)])
        );
        let text =
            format!("[queues.default]\nconcurrency = 3\n[queues.email]\nconcurrency = 1\n{text}");
        let c = parse_with(Some(&text), &[]).unwrap();
        assert_eq!(
            c.queues,
            BTreeMap::from([("default".into(), 3), ("email".into(), 1)])
        );
    }

    #[test]
    fn env_names_follow_the_key_path() {
        assert_eq!(env_name(&["database_url"]), "ERRAND_DATABASE_URL");
        assert_eq!(env_name(&["workers", "enabled"]), "ERRAND_WORKERS_ENABLED");
        assert_eq!(
            env_name(&["queues", "email", "concurrency"]),
            "ERRAND_QUEUES_EMAIL_CONCURRENCY"
        );
        assert_eq!(
            env_name(&["tasks", "send-email", "timeout"]),
            "ERRAND_TASKS_SEND_EMAIL_TIMEOUT"
        );
        assert_eq!(
            env_name(&["limits", "max_args_bytes"]),
            "ERRAND_LIMITS_MAX_ARGS_BYTES"
        );
        assert_eq!(
            env_name(&["tasks", "regen", "http", "headers", "X-Token"]),
            "ERRAND_TASKS_REGEN_HTTP_HEADERS_X_TOKEN"
        );
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let c = parse_with(
            Some(FULL),
            &[
                ("ERRAND_DATABASE_URL", "other.db"),
                ("ERRAND_WORKERS_ENABLED", "false"),
                ("ERRAND_WORKERS_LEASE", "45s"),
                ("ERRAND_LIMITS_MAX_ARGS_BYTES", "99"),
                ("ERRAND_QUEUES_EMAIL_CONCURRENCY", "7"),
                ("ERRAND_TASKS_SEND_EMAIL_TIMEOUT", "1h"),
                (
                    "ERRAND_TASKS_SEND_EMAIL_COMMAND",
                    r#"["/usr/bin/env", "python3", "a b.py"]"#,
                ),
                ("ERRAND_TASKS_SEND_EMAIL_BACKOFF_BASE", "1s"),
                ("ERRAND_TASKS_REGEN_HTTP_HEADERS_X_TOKEN", "from-env"),
                ("ERRAND_TASKS_REGEN_MAX_ATTEMPTS", "9"),
            ],
        )
        .unwrap();
        assert_eq!(c.database_url, "other.db");
        assert!(!c.workers.enabled);
        assert_eq!(c.workers.lease, Duration::from_secs(45));
        assert_eq!(c.limits.max_args_bytes, 99);
        assert_eq!(c.queues["email"], 7);
        assert_eq!(c.queues["default"], 10);
        let email = &c.tasks["send_email"];
        assert_eq!(email.timeout, Duration::from_secs(3600));
        assert_eq!(
            email.handler,
            Handler::Command {
                argv: vec!["/usr/bin/env".into(), "python3".into(), "a b.py".into()]
            }
        );
        assert_eq!(email.backoff.base, Duration::from_secs(1));
        assert_eq!(email.backoff.cap, Duration::from_secs(3600));
        let Handler::Http { headers, .. } = &c.tasks["regen"].handler else {
            panic!()
        };
        assert_eq!(headers["X-Token"], "from-env");
        assert_eq!(c.tasks["regen"].max_attempts, 9);
        // A command as plain words.
        let c = parse_with(
            Some(FULL),
            &[("ERRAND_TASKS_SEND_EMAIL_COMMAND", "sh -c true")],
        )
        .unwrap();
        assert_eq!(
            c.tasks["send_email"].handler,
            Handler::Command {
                argv: vec!["sh".into(), "-c".into(), "true".into()]
            }
        );
    }

    #[test]
    fn the_emergency_stop_and_queue_sizes_work_with_zero_config() {
        for value in ["false", "FALSE", "0", "no", "off"] {
            let c = parse_with(None, &[("ERRAND_WORKERS_ENABLED", value)]).unwrap();
            assert!(!c.workers.enabled, "{value}");
        }
        let c = parse_with(None, &[("ERRAND_WORKERS_ENABLED", "true")]).unwrap();
        assert!(c.workers.enabled);
        // Without [queues], a task's implicit queue still takes its size from the environment.
        let c = parse_with(
            Some("[tasks.a]\ncommand = [\"x\"]\n"),
            &[("ERRAND_QUEUES_DEFAULT_CONCURRENCY", "3")],
        )
        .unwrap();
        assert_eq!(c.queues, BTreeMap::from([("default".into(), 3)]));
        // The environment sets no tasks of its own.
        let c = parse_with(None, &[("ERRAND_TASKS_X_COMMAND", "true")]).unwrap();
        assert!(c.tasks.is_empty());
    }

    #[test]
    fn bad_environment_values_name_the_variable_and_the_key() {
        for (var, value, expected) in [
            ("ERRAND_WORKERS_ENABLED", "nope", "ERRAND_WORKERS_ENABLED: workers.enabled: expected true or false, got \"nope\""),
            ("ERRAND_WORKERS_LEASE", "30x", "ERRAND_WORKERS_LEASE: workers.lease: invalid duration `30x`"),
            ("ERRAND_QUEUES_EMAIL_CONCURRENCY", "many", "ERRAND_QUEUES_EMAIL_CONCURRENCY: queues.email.concurrency: expected an integer, got \"many\""),
            ("ERRAND_QUEUES_EMAIL_CONCURRENCY", "0", "ERRAND_QUEUES_EMAIL_CONCURRENCY: queues.email.concurrency: must be at least 1, got 0"),
            ("ERRAND_TASKS_SEND_EMAIL_TIMEOUT", "-1s", "ERRAND_TASKS_SEND_EMAIL_TIMEOUT: tasks.send_email.timeout: invalid duration `-1s`"),
            ("ERRAND_LIMITS_MAX_ARGS_BYTES", "1.5", "ERRAND_LIMITS_MAX_ARGS_BYTES: limits.max_args_bytes: expected an integer"),
            ("ERRAND_TASKS_SEND_EMAIL_BACKOFF_JITTER", "lots", "ERRAND_TASKS_SEND_EMAIL_BACKOFF_JITTER: tasks.send_email.backoff.jitter: expected a number"),
            ("ERRAND_TASKS_SEND_EMAIL_COMMAND", "[1]", "ERRAND_TASKS_SEND_EMAIL_COMMAND: tasks.send_email.command: expected an array of strings"),
            ("ERRAND_DATABASE_URL", "", "ERRAND_DATABASE_URL: database_url: must not be empty"),
        ] {
            let e = parse_with(Some(FULL), &[(var, value)]).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{var}={value}\n  got: {e}\n want: {expected}…");
        }
    }

    #[test]
    fn origins_name_the_variable_only_when_it_set_the_key() {
        let mut c = parse_with(Some("[workers]\nenabled = false\n"), &[]).unwrap();
        c.source = Some(PathBuf::from("errand.toml"));
        assert_eq!(
            c.origin("workers.enabled", "false"),
            "workers.enabled = false in errand.toml"
        );
        let mut c = parse_with(
            Some("[workers]\nenabled = true\n"),
            &[("ERRAND_WORKERS_ENABLED", "off")],
        )
        .unwrap();
        c.source = Some(PathBuf::from("errand.toml"));
        assert_eq!(
            c.origin("workers.enabled", "false"),
            "ERRAND_WORKERS_ENABLED=false"
        );
    }

    #[test]
    fn flags_beat_the_environment() {
        let dir = std::env::temp_dir().join(format!("errand-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("errand.toml");
        std::fs::write(&path, "database_url = \"file.db\"\n").unwrap();
        let env = |name: &str| (name == "ERRAND_DATABASE_URL").then(|| "env.db".to_string());
        assert_eq!(
            load(Some(&path), &env, None).unwrap().database_url,
            "env.db"
        );
        assert_eq!(
            load(Some(&path), &no_env, None).unwrap().database_url,
            "file.db"
        );
        let c = load(Some(&path), &env, Some("flag.db")).unwrap();
        assert_eq!(c.database_url, "flag.db");
        assert_eq!(c.source.as_deref(), Some(path.as_path()));
        let missing = dir.join("missing.toml");
        let e = load(Some(&missing), &no_env, None).unwrap_err().to_string();
        assert!(
            e.contains("missing.toml: cannot read the configuration file"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn server_listen_and_tokens_from_the_file_and_the_environment() {
        use errand_server::Role;
        let c = parse_with(None, &[]).unwrap();
        assert_eq!(c.server, ServerSettings::default());
        assert_eq!(c.server.listen.to_string(), errand_runtime::DEFAULT_LISTEN);
        let text = r#"
[server]
listen = "0.0.0.0:8080"
max_body_bytes = 65536
[[server.tokens]]
name = "ci"
token = "t-admin"
role = "admin"
[[server.tokens]]
token = "t-read"
role = "read"
"#;
        let c = parse_with(Some(text), &[]).unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.server.max_body_bytes, 65536);
        let roles: Vec<(&str, &str, Role)> = c
            .server
            .tokens
            .iter()
            .map(|t| (t.name.as_str(), t.token.as_str(), t.role))
            .collect();
        assert_eq!(
            roles,
            [
                ("ci", "t-admin", Role::Admin),
                ("read-1", "t-read", Role::Read)
            ]
        );
        assert!(c.check_exposure().is_ok());
        // The environment replaces the file's tokens.
        let c = parse_with(
            Some(text),
            &[
                ("ERRAND_SERVER_TOKENS", "worker:w1, enqueue:e1"),
                ("ERRAND_SERVER_LISTEN", "127.0.0.1:0"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.tokens.len(), 2);
        assert_eq!(c.server.tokens[0].role, Role::Worker);
        assert_eq!(c.server.tokens[1].token, "e1");
        assert_eq!(c.server.listen.port(), 0);
        for (text, expected) in [
            (
                "[server]\nlisten = \"localhost\"",
                "errand.toml: server.listen: expected an IP address and port",
            ),
            (
                "[server]\nlistne = 1",
                "errand.toml: server: unknown key \"listne\"",
            ),
            (
                "[[server.tokens]]\ntoken = \"x\"\nrole = \"root\"",
                "errand.toml: server.tokens: token 0: unknown role `root`",
            ),
            (
                "[[server.tokens]]\nrole = \"read\"",
                "errand.toml: server.tokens[0]: missing key \"token\"",
            ),
            (
                "[[server.tokens]]\ntoken = \"a b\"\nrole = \"read\"",
                "errand.toml: server.tokens: token 0: the token must be non-empty",
            ),
            (
                "[server]\ntokens = 3",
                "errand.toml: server.tokens: expected [[server.tokens]] tables",
            ),
        ] {
            let e = error(text);
            assert!(
                e.starts_with(expected),
                "for {text:?}\n  got: {e}\n want: {expected}…"
            );
        }
        let e = parse_with(None, &[("ERRAND_SERVER_TOKENS", "hunter22")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("ERRAND_SERVER_TOKENS: server.tokens: token 0: expected role:token"),
            "{e}"
        );
        assert!(!e.contains("hunter22"), "the token is not echoed: {e}");
    }

    #[test]
    fn a_public_address_without_a_token_is_refused() {
        let c = parse_with(Some("[server]\nlisten = \"0.0.0.0:7070\"\n"), &[]).unwrap();
        let e = c.check_exposure().unwrap_err().to_string();
        assert!(
            e.starts_with("configuration: server.listen: refusing to serve the HTTP API on 0.0.0.0:7070 without a token"),
            "{e}"
        );
        let c = parse_with(Some("[server]\nlisten = \"[::1]:7070\"\n"), &[]).unwrap();
        assert!(c.check_exposure().is_ok(), "IPv6 loopback is loopback");
        let c = parse_with(
            Some("[server]\nlisten = \"0.0.0.0:7070\"\nenabled = false\n"),
            &[],
        )
        .unwrap();
        assert!(c.check_exposure().is_ok(), "nothing is served");
    }

    #[test]
    fn schedules_are_read_checked_and_overridable() {
        let text = r#"
[scheduler]
enabled = false
[schedules.nightly]
cron = "0 2 * * *"
timezone = "Europe/London"
kind = "send_report"
args = { format = "pdf" }
overlap = "queue"
misfire_grace = "30m"
coalesce = false
[schedules.tick]
every = "30s"
kind = "tick"
"#;
        let c = parse_with(Some(text), &[]).unwrap();
        assert!(!c.scheduler.enabled);
        assert_eq!(c.schedules.len(), 2);
        let n = &c.schedules["nightly"];
        assert_eq!(n.cron.as_deref(), Some("0 2 * * *"));
        assert_eq!(n.args, serde_json::json!({"format": "pdf"}));
        assert_eq!(n.overlap, errand::OverlapPolicy::Queue);
        assert!(!n.coalesce);
        assert!(c.schedules["tick"].coalesce, "coalesce defaults to true");
        assert!(
            parse_with(None, &[]).unwrap().scheduler.enabled,
            "on by default"
        );

        let c = parse_with(
            Some(text),
            &[
                ("ERRAND_SCHEDULES_TICK_EVERY", "5m"),
                ("ERRAND_SCHEDULES_NIGHTLY_PAUSED", "true"),
                ("ERRAND_SCHEDULER_ENABLED", "true"),
            ],
        )
        .unwrap();
        assert_eq!(c.schedules["tick"].every.as_deref(), Some("5m"));
        assert!(c.schedules["nightly"].paused);
        assert!(c.scheduler.enabled);

        // Errors name the key.
        let e = error("[schedules.x]\ncron = \"0 2 * *\"\nkind = \"k\"\n");
        assert!(
            e.starts_with("errand.toml: schedules.x.cron: invalid expression"),
            "{e}"
        );
        let e =
            error("[schedules.x]\ncron = \"0 2 * * *\"\ntimezone = \"Mars/Base\"\nkind = \"k\"\n");
        assert!(
            e.starts_with("errand.toml: schedules.x.timezone: unknown time zone"),
            "{e}"
        );
        let e = error("[schedules.x]\ncrn = \"0 2 * * *\"\nkind = \"k\"\n");
        assert!(
            e.starts_with("errand.toml: schedules.x: unknown field `crn`"),
            "{e}"
        );
        let e = error("[schedules.x]\nevery = 5\nkind = \"k\"\n");
        assert!(
            e.starts_with("errand.toml: schedules.x: invalid type"),
            "{e}"
        );
        let e = parse_with(Some(text), &[("ERRAND_SCHEDULES_TICK_EVERY", "0s")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("ERRAND_SCHEDULES_TICK_EVERY: schedules.tick.every: must be at least 1s"),
            "{e}"
        );
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let text = include_str!("../../../examples/errand.toml");
        let c = parse("examples/errand.toml", Some(text), &no_env).unwrap();
        assert!(c.tasks.values().any(|t| t.handler.kind() == "command"));
        assert!(c.tasks.values().any(|t| t.handler.kind() == "http"));
        assert!(c.schedules.contains_key("nightly_reindex"));
    }
}
