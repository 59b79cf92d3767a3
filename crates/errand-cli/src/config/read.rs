//! The parsed (and overlaid) tree read into a [`Config`]: its shape through `raw` (serde),
//! each value checked for its type and range here, every error naming the key and where its
//! value came from (the file with line and column, or the variable that set it).

use super::env::{dotted, Overridden};
use super::raw::{self, RawConfig, RawLimits, RawRetention, RawWorkers, ShapeError};
use super::{
    Config, ConfigError, RetentionSettings, SchedulerSettings, ServerSettings, WorkerSettings,
    DEFAULT_DATABASE, IMPLICIT_CONCURRENCY,
};
use errand::worker::maintenance::Retention;
use errand::Limits;
use errand_core::parse_duration;
use errand_core::validate::validate_queue_name;
use errand_runtime::Handler;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::{Table, Value};

/// Reads values into settings, naming the key and the origin of a bad one.
pub(super) struct Reader<'a> {
    /// The file's name in messages.
    pub(super) origin: &'a str,
    /// The file's text, to point at a key's line and column.
    pub(super) text: Option<&'a str>,
    /// Which keys the environment set, and by which variable.
    pub(super) overridden: &'a Overridden,
}

impl Reader<'_> {
    /// An error about `key`: from the variable that set it, else from the file, at the key's
    /// line and column.
    pub(super) fn error(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        self.error_at(key, &raw::parts(key), problem)
    }

    /// An error about `key`, pointing at `at` in the file (an unknown key inside `key`).
    fn error_at(&self, key: &str, at: &[String], problem: impl Into<String>) -> ConfigError {
        match self.overridden.get(key) {
            Some(var) => ConfigError::new(var.clone(), key, problem),
            None => ConfigError {
                position: self.text.and_then(|text| raw::locate(text, at)),
                ..ConfigError::new(self.origin, key, problem)
            },
        }
    }

    /// Reads `value`, sitting at `path`, into the serde shape `T`.
    pub(super) fn shape<T: serde::de::DeserializeOwned>(
        &self,
        path: &[String],
        value: Value,
    ) -> Result<T, ConfigError> {
        raw::shape(path, value).map_err(|ShapeError { path, at, problem }| {
            let parts: Vec<&str> = path.iter().map(String::as_str).collect();
            let key = dotted_path(&parts);
            // A value the environment set (or one inside it) is the variable's fault.
            let var = (0..=parts.len())
                .rev()
                .find_map(|n| self.overridden.get(&dotted_path(&parts[..n])));
            match var {
                Some(var) => ConfigError::new(var.clone(), key, problem),
                None => self.error_at(&key, &at, problem),
            }
        })
    }

    pub(super) fn child(path: &str, key: &str) -> String {
        if path.is_empty() {
            dotted(&[key])
        } else {
            format!("{path}.{}", dotted(&[key]))
        }
    }

    pub(super) fn string(&self, path: &str, value: Value) -> Result<String, ConfigError> {
        match value {
            Value::String(s) => Ok(s),
            other => Err(self.error(
                path,
                format!("expected a string, got {}", type_name(&other)),
            )),
        }
    }

    pub(super) fn bool(&self, path: &str, value: Value) -> Result<bool, ConfigError> {
        match value {
            Value::Boolean(b) => Ok(b),
            other => Err(self.error(
                path,
                format!("expected true or false, got {}", type_name(&other)),
            )),
        }
    }

    pub(super) fn int(
        &self,
        path: &str,
        value: Value,
        min: i64,
        max: i64,
    ) -> Result<i64, ConfigError> {
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

    pub(super) fn duration(&self, path: &str, value: Value) -> Result<Duration, ConfigError> {
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

    pub(super) fn config(&self, root: Table, queues_declared: bool) -> Result<Config, ConfigError> {
        let root: RawConfig = self.shape(&[], Value::Table(root))?;
        let database_url = match root.database_url {
            Some(v) => {
                let url = self.string("database_url", v)?;
                if url.trim().is_empty() {
                    return Err(self.error("database_url", "must not be empty"));
                }
                url
            }
            None => DEFAULT_DATABASE.to_string(),
        };
        let database_tls = match root.database_tls {
            Some(t) => self.database_tls(t)?,
            None => Default::default(),
        };
        // `[http] ca_file`: trusted by every HTTP task, besides its own `ca_file`.
        let http_ca_file = match root.http.and_then(|h| h.ca_file) {
            Some(v) => Some(self.path("http.ca_file", v)?),
            None => None,
        };
        let workers = match root.workers {
            Some(w) => self.workers(w)?,
            None => WorkerSettings::default(),
        };
        let limits = match root.limits {
            Some(l) => self.limits(l)?,
            None => Limits::default(),
        };
        let server = match root.server {
            Some(s) => self.server(s)?,
            None => ServerSettings::default(),
        };
        let scheduler = match root.scheduler.and_then(|s| s.enabled) {
            Some(v) => SchedulerSettings {
                enabled: self.bool("scheduler.enabled", v)?,
            },
            None => SchedulerSettings::default(),
        };
        let mut schedules = BTreeMap::new();
        for (name, spec) in root.schedules.map(|t| t.0).unwrap_or_default() {
            spec.validate(&name)
                .map_err(|e| self.error(&e.path, e.problem))?;
            schedules.insert(name, spec);
        }
        let retention = match root.retention {
            Some(r) => self.retention(r)?,
            None => RetentionSettings::default(),
        };
        let mut queues = BTreeMap::new();
        let mut queue_limits = BTreeMap::new();
        for (name, q) in root.queues.map(|t| t.0).unwrap_or_default() {
            let path = Self::child("queues", &name);
            if let Err(e) = validate_queue_name(&name) {
                return Err(self.error(&path, format!("invalid queue name: {}", e.problem)));
            }
            let concurrency = match q.concurrency {
                Some(v) => self.int(
                    &Self::child(&path, "concurrency"),
                    v,
                    1,
                    i64::from(u32::MAX),
                )? as u32,
                None => return Err(self.error(&path, "missing key \"concurrency\"")),
            };
            let q_has = (
                q.global_concurrency.is_some(),
                q.key_concurrency.is_some(),
                q.rate_limit.is_some(),
            );
            let limit = |key: &str, v: Option<Value>| -> Result<Option<i32>, ConfigError> {
                v.map(|v| {
                    self.int(&Self::child(&path, key), v, 1, i64::from(i32::MAX))
                        .map(|n| n as i32)
                })
                .transpose()
            };
            let rate_limit = match q.rate_limit {
                Some(v) => {
                    let key = Self::child(&path, "rate_limit");
                    let text = self.string(&key, v)?;
                    Some(
                        text.parse::<errand_core::flow::RateLimit>()
                            .map_err(|e| self.error(&key, e))?,
                    )
                }
                None => None,
            };
            let limits = errand::QueueLimits {
                global_concurrency: limit("global_concurrency", q.global_concurrency)?,
                key_concurrency: limit("key_concurrency", q.key_concurrency)?,
                rate_limit,
            };
            // Only a table that names a limit owns the queue's limits (and lifts the ones it
            // leaves out); without one, limits set at run time stay as they are.
            if q_has.0 || q_has.1 || q_has.2 {
                queue_limits.insert(name.clone(), limits);
            }
            queues.insert(name, concurrency);
        }
        let mut tasks = BTreeMap::new();
        for (name, t) in root.tasks.map(|t| t.0).unwrap_or_default() {
            let mut task = self.task(&name, t)?;
            if let (Some(ca), Handler::Http { tls, .. }) = (&http_ca_file, &mut task.handler) {
                tls.ca_files.insert(0, ca.clone());
            }
            tasks.insert(name, task);
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
            database_tls,
            workers,
            limits,
            queues,
            queue_limits,
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

    fn workers(&self, t: RawWorkers) -> Result<WorkerSettings, ConfigError> {
        let mut w = WorkerSettings::default();
        if let Some(v) = t.enabled {
            w.enabled = self.bool("workers.enabled", v)?;
        }
        if let Some(v) = t.lease {
            w.lease = self.duration("workers.lease", v)?;
            if w.lease < Duration::from_millis(30) {
                return Err(self.error("workers.lease", "must be at least 30ms"));
            }
        }
        if let Some(v) = t.poll_interval {
            w.poll_interval = self.duration("workers.poll_interval", v)?;
            if w.poll_interval.is_zero() {
                return Err(self.error("workers.poll_interval", "must not be zero"));
            }
        }
        if let Some(v) = t.shutdown_grace {
            w.shutdown_grace = self.duration("workers.shutdown_grace", v)?;
        }
        if let Some(v) = t.cancel_grace {
            w.cancel_grace = self.duration("workers.cancel_grace", v)?;
        }
        Ok(w)
    }

    fn retention(&self, t: RawRetention) -> Result<RetentionSettings, ConfigError> {
        let mut out = RetentionSettings::default();
        if let Some(v) = t.interval {
            out.interval = self.duration("retention.interval", v)?;
            if out.interval < Duration::from_millis(100) {
                return Err(self.error("retention.interval", "must be at least 100ms"));
            }
        }
        let mut r = Retention::default();
        for (key, value, slot) in [
            ("succeeded", t.succeeded, &mut r.succeeded),
            ("cancelled", t.cancelled, &mut r.cancelled),
            ("failed", t.failed, &mut r.failed),
        ] {
            if let Some(v) = value {
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
        if let Some(v) = t.enabled {
            if !self.bool("retention.enabled", v)? {
                r = Retention::OFF;
            }
        }
        out.policy = r;
        Ok(out)
    }

    fn limits(&self, t: RawLimits) -> Result<Limits, ConfigError> {
        let mut limits = Limits::default();
        if let Some(v) = t.max_args_bytes {
            limits.max_args_bytes = self.int("limits.max_args_bytes", v, 1, i64::MAX)? as usize;
        }
        Ok(limits)
    }
}

pub(super) fn type_name(v: &Value) -> &'static str {
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

/// A key path for messages: each part quoted when it needs it, array indices kept as
/// `[i]` (`server.tokens[0]`, `tasks.t.http.headers."Bad Header"`).
pub(super) fn dotted_path(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|part| {
            let (name, indices) = raw::split_indices(part);
            let mut out = if name.is_empty() {
                String::new()
            } else {
                dotted(&[name])
            };
            for i in indices {
                out.push_str(&format!("[{i}]"));
            }
            out
        })
        .collect::<Vec<_>>()
        .join(".")
}
