//! The environment overlay: every `ERRAND_*` variable the schema knows, read as its key's
//! type and set into the parsed file before it is read, remembering which keys it set (for
//! error origins and `Config::origin`).

use super::keys::*;
use super::server::SERVER_KEYS;
use super::tls::DATABASE_TLS_KEYS;
use super::ConfigError;
use std::collections::{BTreeSet, HashMap};
use toml::{Table, Value};

/// Key path (`workers.lease`) to the variable that set it.
pub(super) type Overridden = HashMap<String, String>;

/// Applies every `ERRAND_*` variable the schema knows to the parsed file, and returns which
/// keys they set.
pub(super) fn apply_env(
    root: &mut Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Overridden, ConfigError> {
    let mut applier = EnvApplier {
        env,
        overridden: Overridden::new(),
    };
    applier.set_in(root, &[], "database_url", Kind::Str)?;
    for (section, keys) in [
        ("database_tls", DATABASE_TLS_KEYS),
        ("http", &[("ca_file", Kind::Str)]),
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
        applier.set_in(root, &["tasks", task, "http"], "ca_file", Kind::Str)?;
        applier.set_in(
            root,
            &["tasks", task, "http"],
            "insecure_skip_verify",
            Kind::Bool,
        )?;
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
        let value = env_value(&raw, kind)
            .map_err(|problem| ConfigError::new(var.clone(), dotted.clone(), problem))?;
        let mut table = root;
        for (i, p) in parents.iter().enumerate() {
            let entry = table
                .entry(p.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            table = entry.as_table_mut().ok_or_else(|| {
                ConfigError::new(
                    var.clone(),
                    dotted_prefix(parents, i + 1),
                    "is not a table, so its keys cannot be set from the environment",
                )
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

pub(super) fn dotted(path: &[&str]) -> String {
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
