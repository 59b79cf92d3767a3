//! Task settings: what a deployment says about each kind of job, and the one function that
//! turns a caller's [`NewJob`] into a [`JobInsert`] with those settings applied.
//!
//! Every path that creates a job (the library's enqueue, `errand enqueue`, `POST /v1/jobs`,
//! a schedule's fire, `schedules trigger`) goes through [`TaskCatalog::prepare`], so a task's
//! queue, attempt budget, priority and timeout are the same whichever way its job arrived.
//! The precedence, field by field:
//!
//! 1. what the caller set on the job;
//! 2. the catalog's settings for the kind (`[tasks.KIND]` in `errand.toml`);
//! 3. the caller's fallback (a typed [`crate::Task`]'s constants);
//! 4. the global defaults (queue `default`, 4 attempts, priority 0, the executor's timeout).
//!
//! A catalog that declares any task is *strict*: a job of a kind it does not know is refused
//! with a did-you-mean, because nobody would ever run it. Kinds served by remote workers are
//! declared with [`TaskSettings::remote`]. An empty catalog (a library user who registers
//! handlers in code) accepts every kind.
//!
//! A task may also name the argument that gives its jobs a `concurrency_key`, and the number
//! of jobs per key that may run at once (`key_concurrency`); both apply only when the caller
//! set no key of its own.
//!
//! The backoff after a failed attempt is read from here too ([`TaskCatalog::backoff`]), by
//! the in-process executor and by the remote-worker protocol alike.

use crate::backoff::Backoff;
use crate::validate::{JobInsert, Limits, NewJob, Rejection, ValidationError};
use std::collections::BTreeMap;
use std::time::Duration;

/// The settings of one kind; `None` leaves the field to the next rule of the precedence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskSettings {
    pub queue: Option<String>,
    pub max_attempts: Option<i32>,
    pub priority: Option<i32>,
    /// Execution limit of one attempt; zero means none.
    pub timeout: Option<Duration>,
    pub backoff: Option<Backoff>,
    /// Served by remote workers over the HTTP API, not by a handler in this process.
    pub remote: bool,
    /// The argument whose value is a job's `concurrency_key` when the caller gives none
    /// (`[tasks.KIND] concurrency_key = "program_id"`): a string as it is, a number or
    /// boolean as its JSON text; a job without the argument (or with `null`) has no key.
    pub concurrency_key: Option<String>,
    /// How many jobs of one key may run at once (see [`crate::flow`]).
    pub key_concurrency: Option<i32>,
}

/// Every kind a deployment knows, with its settings. Cheap to share behind an `Arc`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskCatalog {
    tasks: BTreeMap<String, TaskSettings>,
}

impl TaskCatalog {
    /// An empty catalog: every kind is accepted and takes the global defaults.
    pub fn new() -> Self {
        TaskCatalog::default()
    }

    /// Adds (or replaces) the settings of `kind`.
    pub fn insert(&mut self, kind: impl Into<String>, settings: TaskSettings) {
        self.tasks.insert(kind.into(), settings);
    }

    /// The settings of `kind`, if declared.
    pub fn get(&self, kind: &str) -> Option<&TaskSettings> {
        self.tasks.get(kind)
    }

    /// True when no task is declared (and so every kind is accepted).
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The declared kinds, in order.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.tasks.keys().map(String::as_str)
    }

    /// The backoff after a failed attempt of `kind`: the task's, else the default.
    pub fn backoff(&self, kind: &str) -> Backoff {
        self.get(kind).and_then(|t| t.backoff).unwrap_or_default()
    }

    /// Checks that a strict catalog knows `kind`; the error suggests the nearest known kind.
    pub fn check_kind(&self, kind: &str) -> Result<(), ValidationError> {
        if self.is_empty() || self.tasks.contains_key(kind) {
            return Ok(());
        }
        let hint = match nearest(kind, self.kinds()) {
            Some(k) => format!(" (did you mean `{k}`?)"),
            None => String::new(),
        };
        let known: Vec<&str> = self.kinds().collect();
        Err(ValidationError {
            field: "kind",
            problem: format!(
                "`{kind}` is not a configured task{hint}; configured: {}. Declare kinds that \
                 remote workers serve with `[tasks.KIND] remote = true`",
                known.join(", ")
            ),
            rejection: Rejection::UnknownKind,
        })
    }

    /// The job with the settings applied (see the module doc for the precedence), not yet
    /// validated. `fallback` is the caller's own defaults for the kind, if any.
    pub fn apply(&self, job: &NewJob, fallback: Option<&TaskSettings>) -> NewJob {
        let task = self.get(&job.kind);
        let pick =
            |f: fn(&TaskSettings) -> Option<i32>| task.and_then(f).or_else(|| fallback.and_then(f));
        let mut out = job.clone();
        if out.queue.is_none() {
            out.queue = task
                .and_then(|t| t.queue.clone())
                .or_else(|| fallback.and_then(|t| t.queue.clone()));
        }
        if out.max_attempts.is_none() {
            out.max_attempts = pick(|t| t.max_attempts);
        }
        if out.priority.is_none() {
            out.priority = pick(|t| t.priority);
        }
        if out.timeout_ms.is_none() {
            out.timeout_ms = task
                .and_then(|t| t.timeout)
                .or_else(|| fallback.and_then(|t| t.timeout))
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        }
        if out.concurrency_key.is_none() {
            let arg = task
                .and_then(|t| t.concurrency_key.as_deref())
                .or_else(|| fallback.and_then(|t| t.concurrency_key.as_deref()));
            out.concurrency_key = arg.and_then(|a| crate::flow::key_from_args(&out.args, a));
        }
        if out.concurrency_key.is_some() && out.key_concurrency.is_none() {
            out.key_concurrency = pick(|t| t.key_concurrency);
        }
        out
    }

    /// The one way a new job is made ready for a store: the kind checked against the
    /// catalog, the settings applied, every field validated.
    pub fn prepare(
        &self,
        job: &NewJob,
        fallback: Option<&TaskSettings>,
        limits: &Limits,
    ) -> Result<JobInsert, ValidationError> {
        crate::validate::validate_kind_name(&job.kind)?;
        self.check_kind(&job.kind)?;
        self.apply(job, fallback).validate(limits)
    }
}

/// The known name closest to `name` by edit distance, if it is close enough to be a typo
/// (at most a third of the name's length, and at least one edit away).
pub fn nearest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    known
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters, in one row of memory.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> TaskCatalog {
        let mut c = TaskCatalog::new();
        c.insert(
            "send_email",
            TaskSettings {
                queue: Some("email".into()),
                max_attempts: Some(7),
                timeout: Some(Duration::from_secs(90)),
                backoff: Some(Backoff {
                    base: Duration::from_secs(1),
                    ..Backoff::default()
                }),
                ..TaskSettings::default()
            },
        );
        c.insert(
            "embed",
            TaskSettings {
                queue: Some("gpu".into()),
                remote: true,
                ..TaskSettings::default()
            },
        );
        c
    }

    #[test]
    fn the_task_derives_the_concurrency_key_from_an_argument_unless_the_caller_gave_one() {
        let mut c = TaskCatalog::new();
        c.insert(
            "ingest",
            TaskSettings {
                concurrency_key: Some("program_id".into()),
                key_concurrency: Some(2),
                ..TaskSettings::default()
            },
        );
        let limits = Limits::default();
        let job = c
            .prepare(
                &NewJob::new("ingest", json!({"program_id": 7})),
                None,
                &limits,
            )
            .unwrap();
        assert_eq!(job.concurrency_key.as_deref(), Some("7"));
        assert_eq!(job.key_concurrency, Some(2));

        let mut own = NewJob::new("ingest", json!({"program_id": 7}));
        own.concurrency_key = Some("mine".into());
        own.key_concurrency = Some(5);
        let job = c.prepare(&own, None, &limits).unwrap();
        assert_eq!(
            (job.concurrency_key.as_deref(), job.key_concurrency),
            (Some("mine"), Some(5))
        );

        // Without the argument there is no key, and so no key limit either.
        let job = c
            .prepare(&NewJob::new("ingest", json!({"other": 1})), None, &limits)
            .unwrap();
        assert_eq!((job.concurrency_key, job.key_concurrency), (None, None));
    }

    #[test]
    fn a_key_limit_without_a_key_or_below_one_is_refused_by_name() {
        let mut j = NewJob::new("k", json!({}));
        j.key_concurrency = Some(2);
        let e = j.validate(&Limits::default()).unwrap_err();
        assert_eq!(e.field, "key_concurrency");
        j.concurrency_key = Some("a".into());
        j.key_concurrency = Some(0);
        let e = j.validate(&Limits::default()).unwrap_err();
        assert_eq!(e.field, "key_concurrency");
        j.key_concurrency = None;
        j.concurrency_key = Some("nul\0".into());
        let e = j.validate(&Limits::default()).unwrap_err();
        assert_eq!(e.field, "concurrency_key");
        j.concurrency_key = Some(String::new());
        assert_eq!(
            j.validate(&Limits::default()).unwrap_err().field,
            "concurrency_key"
        );
    }

    #[test]
    fn the_task_fills_what_the_caller_left_out() {
        let c = catalog();
        let job = c
            .prepare(
                &NewJob::new("send_email", json!({})),
                None,
                &Limits::default(),
            )
            .unwrap();
        assert_eq!(job.queue, "email");
        assert_eq!(job.max_attempts, 7);
        assert_eq!(job.timeout_ms, Some(90_000));
        let mut explicit = NewJob::new("send_email", json!({}));
        explicit.queue = Some("urgent".into());
        explicit.max_attempts = Some(2);
        explicit.timeout_ms = Some(0);
        let job = c.prepare(&explicit, None, &Limits::default()).unwrap();
        assert_eq!(
            (job.queue.as_str(), job.max_attempts, job.timeout_ms),
            ("urgent", 2, Some(0))
        );
        assert_eq!(c.backoff("send_email").base, Duration::from_secs(1));
        assert_eq!(c.backoff("embed"), Backoff::default());
    }

    #[test]
    fn the_catalog_beats_a_typed_fallback_and_the_fallback_beats_the_defaults() {
        let fallback = TaskSettings {
            queue: Some("typed".into()),
            max_attempts: Some(3),
            ..TaskSettings::default()
        };
        let c = catalog();
        let job = c
            .prepare(
                &NewJob::new("send_email", json!({})),
                Some(&fallback),
                &Limits::default(),
            )
            .unwrap();
        assert_eq!((job.queue.as_str(), job.max_attempts), ("email", 7));
        let open = TaskCatalog::new();
        let job = open
            .prepare(
                &NewJob::new("anything", json!({})),
                Some(&fallback),
                &Limits::default(),
            )
            .unwrap();
        assert_eq!((job.queue.as_str(), job.max_attempts), ("typed", 3));
        let job = open
            .prepare(
                &NewJob::new("anything", json!({})),
                None,
                &Limits::default(),
            )
            .unwrap();
        assert_eq!(
            (job.queue.as_str(), job.max_attempts, job.timeout_ms),
            ("default", 4, None)
        );
    }

    #[test]
    fn a_strict_catalog_refuses_unknown_kinds_with_a_suggestion() {
        let c = catalog();
        let e = c
            .prepare(
                &NewJob::new("send_emial", json!({})),
                None,
                &Limits::default(),
            )
            .unwrap_err();
        assert_eq!(e.field, "kind");
        assert_eq!(e.rejection, Rejection::UnknownKind);
        assert!(
            e.problem.contains("did you mean `send_email`?"),
            "{}",
            e.problem
        );
        assert!(
            e.problem.contains("configured: embed, send_email"),
            "{}",
            e.problem
        );
        let e = c
            .prepare(&NewJob::new("zzz", json!({})), None, &Limits::default())
            .unwrap_err();
        assert!(!e.problem.contains("did you mean"), "{}", e.problem);
        // Remote kinds are known kinds.
        let job = c
            .prepare(&NewJob::new("embed", json!({})), None, &Limits::default())
            .unwrap();
        assert_eq!(job.queue, "gpu");
        // A malformed kind is a plain validation error, not an unknown one.
        let e = c
            .prepare(
                &NewJob::new("bad kind", json!({})),
                None,
                &Limits::default(),
            )
            .unwrap_err();
        assert_eq!(e.rejection, Rejection::Invalid);
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(
            nearest("regn", ["regen", "send_email"].into_iter()),
            Some("regen")
        );
    }
}
