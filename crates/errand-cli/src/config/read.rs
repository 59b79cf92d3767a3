//! The parsed (and overlaid) tree read into a [`Config`]: each table checked for unknown
//! keys, each value for its type and range, every error naming the key and where its value
//! came from (the file, or the variable that set it).

use super::env::{dotted, Overridden};
use super::keys::*;
use super::{
    Config, ConfigError, RetentionSettings, SchedulerSettings, ServerSettings, WorkerSettings,
    DEFAULT_DATABASE, IMPLICIT_CONCURRENCY,
};
use errand::worker::maintenance::Retention;
use errand::{Limits, ScheduleSpec};
use errand_core::parse_duration;
use errand_core::validate::validate_queue_name;
use errand_runtime::Handler;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::{Table, Value};

pub(super) struct Reader<'a> {
    pub(super) origin: &'a str,
    pub(super) overridden: &'a Overridden,
}

impl Reader<'_> {
    pub(super) fn error(&self, key: &str, problem: impl Into<String>) -> ConfigError {
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
    pub(super) fn table(
        &self,
        path: &str,
        value: Value,
        allowed: &[&str],
    ) -> Result<Table, ConfigError> {
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
