//! The keys the environment can set, with their types (an `ERRAND_*` value is read as its
//! key's type), and the name of each key's variable. Which keys exist at all is the serde
//! shape in `raw`; a test keeps these tables inside it.

/// The type of a key, for reading environment values and for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Bool,
    Int,
    Float,
    Duration,
    StrList,
}

/// `[retention]`: a duration per final state, or `enabled = false` to keep everything.
pub(super) const RETENTION_KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("succeeded", Kind::Duration),
    ("cancelled", Kind::Duration),
    ("failed", Kind::Duration),
    ("interval", Kind::Duration),
];
pub(super) const SCHEDULER_KEYS: &[(&str, Kind)] = &[("enabled", Kind::Bool)];
/// The scalar keys of a `[schedules.NAME]` table that the environment can set (`args` is a
/// table, not overridable).
pub(super) const SCHEDULE_KEYS: &[(&str, Kind)] = &[
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
pub(super) const WORKERS_KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("lease", Kind::Duration),
    ("poll_interval", Kind::Duration),
    ("shutdown_grace", Kind::Duration),
    ("cancel_grace", Kind::Duration),
];
pub(super) const LIMITS_KEYS: &[(&str, Kind)] = &[("max_args_bytes", Kind::Int)];
pub(super) const QUEUE_KEYS: &[(&str, Kind)] = &[
    ("concurrency", Kind::Int),
    ("global_concurrency", Kind::Int),
    ("key_concurrency", Kind::Int),
    ("rate_limit", Kind::Str),
];
/// The scalar keys of a task; `http` and `backoff` are tables handled beside them.
pub(super) const TASK_KEYS: &[(&str, Kind)] = &[
    ("queue", Kind::Str),
    ("command", Kind::StrList),
    ("remote", Kind::Bool),
    ("timeout", Kind::Duration),
    ("max_attempts", Kind::Int),
    ("concurrency_key", Kind::Str),
    ("key_concurrency", Kind::Int),
];
pub(super) const BACKOFF_KEYS: &[(&str, Kind)] = &[
    ("base", Kind::Duration),
    ("cap", Kind::Duration),
    ("jitter", Kind::Float),
];

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
