//! A schedule as an operator writes it (`[schedules.NAME]` in `errand.toml`), and its checking
//! into a [`Schedule`]. Every rejection names the field by its path in the file and says what
//! is wrong: `schedules.nightly.cron: invalid expression "0 2 * *": expected 5 or 6 fields, got 4`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use errand_core::{parse_duration, schema, Limits, NewJob};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cron::CronExpr;
use crate::fire::{fire_key, FireTimes, Trigger};

/// How long a missed fire may still run late, unless the schedule says otherwise.
pub const DEFAULT_MISFIRE_GRACE: Duration = Duration::from_secs(3600);
/// The shortest `every` interval and `misfire_grace`.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest `every` interval: a year and a day. Rarer schedules are written in cron,
/// whose fire times stay within dates the API can write.
pub const MAX_INTERVAL: Duration = Duration::from_secs(366 * 24 * 3600);
/// Most characters of a schedule name.
pub const MAX_NAME_LEN: usize = 128;

/// One `[schedules.NAME]` table, before checking. The name is the table's key, given to
/// [`ScheduleSpec::validate`].
///
/// ```toml
/// [schedules.nightly]
/// cron = "0 2 * * *"
/// timezone = "Europe/London"
/// kind = "send_report"
/// args = { format = "pdf" }
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = crate::schema::rules)]
#[schemars(
    description = "A schedule: `cron` or `every`, the task `kind` each fire enqueues and the job's fields; the fields of a `[schedules.NAME]` table in errand.toml."
)]
pub struct ScheduleSpec {
    /// A cron expression: 5 fields, or 6 with a leading seconds field, or `@hourly`,
    /// `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly` (`@annually`). Exclusive with
    /// `every`.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::cron_or_null")]
    pub cron: Option<String>,
    /// A fixed interval from 1s to 366d (`"30s"`, `"5m"`, `"1h30m"`), aligned to the Unix
    /// epoch. Exclusive with `cron`.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::every_or_null")]
    pub every: Option<String>,
    /// The IANA time zone `cron` is read in (`"Europe/London"`). Default `UTC`. Only for `cron`.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::timezone_or_null")]
    pub timezone: Option<String>,
    /// The task kind each fire enqueues.
    #[serde(default)]
    #[schemars(schema_with = "schema::name")]
    pub kind: String,
    /// The job's args: a JSON object (a TOML table). Default `{}`.
    #[serde(default = "empty_object")]
    #[schemars(schema_with = "schema::args")]
    pub args: serde_json::Value,
    /// The queue of the jobs (default `default`).
    #[serde(default)]
    #[schemars(schema_with = "schema::name_or_null")]
    pub queue: Option<String>,
    /// The jobs' priority (default 0; higher runs first).
    #[serde(default)]
    #[schemars(schema_with = "schema::int32_or_null")]
    pub priority: Option<i32>,
    /// The jobs' attempt budget (default 4).
    #[serde(default)]
    #[schemars(schema_with = "schema::attempts_or_null")]
    pub max_attempts: Option<i32>,
    /// What a fire does while the previous run is still queued or running. Default `skip`.
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// How late a missed fire may still run (`"1h"`, the default). Older ones are skipped.
    #[serde(default)]
    #[schemars(schema_with = "schema::duration_at_least_1s_or_null")]
    pub misfire_grace: Option<String>,
    /// Whether several missed fires run once (default) or each.
    #[serde(default = "yes")]
    pub coalesce: bool,
    #[serde(default)]
    pub paused: bool,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

fn yes() -> bool {
    true
}

/// What a fire does while the schedule's previous run is still queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverlapPolicy {
    /// Skip the fire and record it.
    #[default]
    Skip,
    /// Enqueue it; it may run at the same time as the previous run.
    Allow,
    /// Enqueue it to run after the previous run.
    Queue,
}

/// The words of [`OverlapPolicy::ALL`], one named schema (the views use the same).
impl JsonSchema for OverlapPolicy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OverlapPolicy".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "enum": OverlapPolicy::ALL.map(OverlapPolicy::as_str)})
    }
}

impl OverlapPolicy {
    /// Every policy.
    pub const ALL: [OverlapPolicy; 3] = [
        OverlapPolicy::Skip,
        OverlapPolicy::Allow,
        OverlapPolicy::Queue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OverlapPolicy::Skip => "skip",
            OverlapPolicy::Allow => "allow",
            OverlapPolicy::Queue => "queue",
        }
    }
}

/// A schedule that cannot be accepted: the path of the field in `errand.toml`
/// (`schedules.nightly.cron`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct SpecError {
    pub path: String,
    pub problem: String,
}

/// The job each fire enqueues, as the schedule gives it; unset fields take the job defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct JobTemplate {
    pub kind: String,
    /// Encoded once, when the schedule is checked; every fire's job shares the text.
    pub args: errand_core::JobArgs,
    pub queue: Option<String>,
    pub priority: Option<i32>,
    pub max_attempts: Option<i32>,
}

/// A checked schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    pub trigger: Trigger,
    pub job: JobTemplate,
    pub overlap: OverlapPolicy,
    pub misfire_grace: Duration,
    pub coalesce: bool,
    pub paused: bool,
}

impl ScheduleSpec {
    /// Checks every field of the schedule called `name` and fills the defaults.
    pub fn validate(&self, name: &str) -> Result<Schedule, SpecError> {
        let name_ok = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(SpecError {
                path: format!("schedules.{name:?}"),
                problem: format!(
                    "a schedule name is 1 to {MAX_NAME_LEN} letters, digits, \"_\" or \"-\""
                ),
            });
        }
        let fail = |field: &str, problem: String| SpecError {
            path: format!("schedules.{name}.{field}"),
            problem,
        };

        let trigger = match (&self.cron, &self.every) {
            (Some(expr), None) => {
                let timezone = match &self.timezone {
                    None => Tz::UTC,
                    Some(tz) => tz.parse::<Tz>().map_err(|_| {
                        fail(
                            "timezone",
                            format!(
                                "unknown time zone {tz:?} (an IANA name such as \"Europe/London\" \
                                 or \"America/New_York\")"
                            ),
                        )
                    })?,
                };
                let expr = CronExpr::parse(expr).map_err(|e| fail("cron", e.to_string()))?;
                if let Some(e) = expr.never_fires() {
                    return Err(fail("cron", e.to_string()));
                }
                Trigger::Cron { expr, timezone }
            }
            (None, Some(every)) => {
                let interval = parse_duration(every).map_err(|e| fail("every", e.to_string()))?;
                if interval < MIN_INTERVAL {
                    return Err(fail("every", format!("must be at least 1s, got {every:?}")));
                }
                if interval > MAX_INTERVAL {
                    return Err(fail(
                        "every",
                        format!(
                            "must be at most 366d, got {every:?} (use cron for rarer schedules)"
                        ),
                    ));
                }
                if self.timezone.is_some() {
                    return Err(fail(
                        "timezone",
                        "applies only to \"cron\"; \"every\" fires at multiples of its interval \
                         since the Unix epoch, in UTC"
                            .into(),
                    ));
                }
                Trigger::Every(interval)
            }
            (Some(_), Some(_)) | (None, None) => {
                return Err(SpecError {
                    path: format!("schedules.{name}"),
                    problem: "set exactly one of \"cron\" or \"every\"".into(),
                })
            }
        };

        if self.kind.is_empty() {
            return Err(fail(
                "kind",
                "is required: the task kind each fire enqueues".into(),
            ));
        }
        let job = JobTemplate {
            kind: self.kind.clone(),
            args: errand_core::JobArgs::from_value(&self.args),
            queue: self.queue.clone(),
            priority: self.priority,
            max_attempts: self.max_attempts,
        };
        // The job rules are errand-core's: check a job as a fire would enqueue it.
        let probe = job_of(name, &job, DateTime::<Utc>::UNIX_EPOCH);
        probe
            .validate(&Limits::default())
            .map_err(|e| fail(e.field, e.problem))?;

        let misfire_grace = match &self.misfire_grace {
            None => DEFAULT_MISFIRE_GRACE,
            Some(text) => {
                let grace =
                    parse_duration(text).map_err(|e| fail("misfire_grace", e.to_string()))?;
                if grace < MIN_INTERVAL {
                    return Err(fail(
                        "misfire_grace",
                        format!(
                            "must be at least 1s, got {text:?} (every fire is a little late; a \
                             zero grace would skip them all)"
                        ),
                    ));
                }
                grace
            }
        };

        Ok(Schedule {
            name: name.to_string(),
            trigger,
            job,
            overlap: self.overlap,
            misfire_grace,
            coalesce: self.coalesce,
            paused: self.paused,
        })
    }
}

impl Schedule {
    /// The first fire strictly after `after`; `None` if it never fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.trigger.next_after(after)
    }

    /// The fires in `(from_exclusive, to_inclusive]`, in order, at most `limit`.
    pub fn fires_between(
        &self,
        from_exclusive: DateTime<Utc>,
        to_inclusive: DateTime<Utc>,
        limit: usize,
    ) -> FireTimes<'_> {
        self.trigger
            .fires_between(from_exclusive, to_inclusive, limit)
    }

    /// The next `n` fires after `from`.
    pub fn preview(&self, n: usize, from: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.trigger.preview(n, from)
    }

    /// The job one fire enqueues: the template, with [`fire_key`] as its `unique_key` (one
    /// live job per fire across hosts) and the reference `("schedule", name)` (a schedule's run
    /// history is a reference lookup).
    pub fn new_job(&self, fire_time: DateTime<Utc>) -> NewJob {
        job_of(&self.name, &self.job, fire_time)
    }
}

fn job_of(name: &str, job: &JobTemplate, fire_time: DateTime<Utc>) -> NewJob {
    NewJob {
        queue: job.queue.clone(),
        priority: job.priority,
        max_attempts: job.max_attempts,
        unique_key: Some(fire_key(name, fire_time)),
        reference_type: Some("schedule".into()),
        reference_id: Some(name.to_string()),
        ..NewJob::new(job.kind.clone(), job.args.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(cron: &str) -> ScheduleSpec {
        ScheduleSpec {
            cron: Some(cron.into()),
            kind: "send_report".into(),
            args: json!({}),
            coalesce: true,
            ..Default::default()
        }
    }

    fn error(name: &str, s: &ScheduleSpec) -> String {
        s.validate(name).unwrap_err().to_string()
    }

    #[derive(Deserialize)]
    struct File {
        schedules: std::collections::BTreeMap<String, ScheduleSpec>,
    }

    fn from_toml(text: &str) -> Result<Vec<Schedule>, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        file.schedules
            .iter()
            .map(|(name, s)| s.validate(name).map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn reads_errand_toml_tables_with_defaults() {
        let schedules = from_toml(
            r#"
            [schedules.nightly]
            cron = "0 2 * * *"
            timezone = "Europe/London"
            kind = "send_report"
            args = { format = "pdf", copies = 2 }
            queue = "reports"
            priority = 5
            max_attempts = 2
            overlap = "queue"
            misfire_grace = "30m"
            coalesce = false
            paused = true

            [schedules.ping]
            every = "30s"
            kind = "ping"
            "#,
        )
        .unwrap();
        let nightly = &schedules[0];
        assert_eq!(nightly.name, "nightly");
        assert!(matches!(&nightly.trigger, Trigger::Cron { expr, timezone }
            if expr.as_str() == "0 2 * * *" && *timezone == chrono_tz::Europe::London));
        assert_eq!(nightly.job.args, json!({"format": "pdf", "copies": 2}));
        assert_eq!(nightly.job.queue.as_deref(), Some("reports"));
        assert_eq!(nightly.job.priority, Some(5));
        assert_eq!(nightly.job.max_attempts, Some(2));
        assert_eq!(nightly.overlap, OverlapPolicy::Queue);
        assert_eq!(nightly.misfire_grace, Duration::from_secs(1800));
        assert!(!nightly.coalesce);
        assert!(nightly.paused);

        let ping = &schedules[1];
        assert_eq!(ping.trigger, Trigger::Every(Duration::from_secs(30)));
        assert_eq!(ping.job.args, json!({}));
        assert_eq!(ping.job.queue, None);
        assert_eq!(ping.overlap, OverlapPolicy::Skip);
        assert_eq!(ping.misfire_grace, DEFAULT_MISFIRE_GRACE);
        assert!(ping.coalesce);
        assert!(!ping.paused);
    }

    #[test]
    fn unknown_fields_and_policies_are_refused() {
        let e = from_toml("[schedules.x]\ncron = \"@daily\"\nkind = \"k\"\ntimezon = \"UTC\"\n")
            .unwrap_err();
        assert!(e.contains("unknown field `timezon`"), "{e}");
        let e = from_toml("[schedules.x]\ncron = \"@daily\"\nkind = \"k\"\noverlap = \"wait\"\n")
            .unwrap_err();
        assert!(
            e.contains("unknown variant `wait`, expected one of `skip`, `allow`, `queue`"),
            "{e}"
        );
    }

    #[test]
    fn every_error_names_the_field() {
        let with = |f: &dyn Fn(&mut ScheduleSpec)| {
            let mut s = spec("0 2 * * *");
            f(&mut s);
            s
        };
        for (name, s, expected) in [
            (
                "nightly",
                spec("0 2 * *"),
                r#"schedules.nightly.cron: invalid expression "0 2 * *": expected 5 or 6 fields, got 4"#,
            ),
            (
                "nightly",
                spec("0 25 * * *"),
                r#"schedules.nightly.cron: invalid expression "0 25 * * *": field "hour": value 25 out of range 0-23"#,
            ),
            (
                "nightly",
                spec("0 0 30 2 *"),
                r#"schedules.nightly.cron: invalid expression "0 0 30 2 *": field "day of month": no such day in the months of field "month", so it never fires"#,
            ),
            (
                "x",
                spec("0 0 31 4,6,9,11 *"),
                r#"schedules.x.cron: invalid expression "0 0 31 4,6,9,11 *": field "day of month""#,
            ),
            (
                "x",
                with(&|s| s.timezone = Some("Europe/Londn".into())),
                r#"schedules.x.timezone: unknown time zone "Europe/Londn""#,
            ),
            (
                "x",
                with(&|s| s.every = Some("30s".into())),
                r#"schedules.x: set exactly one of "cron" or "every""#,
            ),
            (
                "x",
                with(&|s| s.cron = None),
                r#"schedules.x: set exactly one of "cron" or "every""#,
            ),
            (
                "x",
                with(&|s| {
                    s.cron = None;
                    s.every = Some("500ms".into())
                }),
                r#"schedules.x.every: must be at least 1s, got "500ms""#,
            ),
            (
                "x",
                with(&|s| {
                    s.cron = None;
                    s.every = Some("10000w".into())
                }),
                r#"schedules.x.every: must be at most 366d, got "10000w" (use cron for rarer schedules)"#,
            ),
            (
                "x",
                with(&|s| {
                    s.cron = None;
                    s.every = Some("30x".into())
                }),
                "schedules.x.every: invalid duration `30x`: unknown unit `x`",
            ),
            (
                "x",
                with(&|s| {
                    s.cron = None;
                    s.every = Some("1m".into());
                    s.timezone = Some("UTC".into())
                }),
                r#"schedules.x.timezone: applies only to "cron""#,
            ),
            (
                "x",
                with(&|s| s.kind = String::new()),
                "schedules.x.kind: is required",
            ),
            (
                "x",
                with(&|s| s.kind = " k".into()),
                "schedules.x.kind: may hold only ASCII letters, digits and `_-.:/`, found U+0020",
            ),
            (
                "x",
                with(&|s| s.args = json!([1])),
                "schedules.x.args: must be a JSON object, got an array",
            ),
            (
                "x",
                with(&|s| s.queue = Some(String::new())),
                "schedules.x.queue: must not be empty",
            ),
            (
                "x",
                with(&|s| s.max_attempts = Some(0)),
                "schedules.x.max_attempts: must be at least 1, got 0",
            ),
            (
                "x",
                with(&|s| s.misfire_grace = Some("soon".into())),
                "schedules.x.misfire_grace: invalid duration `soon`",
            ),
            (
                "x",
                with(&|s| s.misfire_grace = Some("0".into())),
                r#"schedules.x.misfire_grace: must be at least 1s, got "0""#,
            ),
            (
                "",
                spec("@daily"),
                r#"schedules."": a schedule name is 1 to 128"#,
            ),
            ("a b", spec("@daily"), r#"schedules."a b": a schedule name"#),
            ("a:b", spec("@daily"), r#"schedules."a:b": a schedule name"#),
        ] {
            let e = error(name, &s);
            assert!(
                e.starts_with(expected),
                "expected {expected:?}\n     got {e:?}"
            );
        }
    }

    #[test]
    fn rare_but_possible_dates_are_accepted() {
        // Leap days, and cron's day-of-month OR day-of-week rule.
        for cron in ["0 0 29 2 *", "0 0 30 2 MON", "0 0 31 * *", "0 0 31 12 *"] {
            assert!(spec(cron).validate("x").is_ok(), "{cron}");
        }
    }

    #[test]
    fn time_zone_defaults_to_utc() {
        let s = spec("0 2 * * *").validate("x").unwrap();
        assert!(matches!(
            s.trigger,
            Trigger::Cron {
                timezone: Tz::UTC,
                ..
            }
        ));
        let next = s.next_after("2026-06-01T00:00:00Z".parse().unwrap());
        assert_eq!(next, Some("2026-06-01T02:00:00Z".parse().unwrap()));
    }

    #[test]
    fn a_fire_enqueues_one_keyed_job() {
        let mut sp = spec("0 2 * * *");
        sp.args = json!({"format": "pdf"});
        sp.queue = Some("reports".into());
        let s = sp.validate("nightly").unwrap();
        let fire: DateTime<Utc> = "2026-03-08T07:00:00Z".parse().unwrap();
        let job = s.new_job(fire);
        assert_eq!(job.kind, "send_report");
        assert_eq!(job.args, json!({"format": "pdf"}));
        assert_eq!(job.queue.as_deref(), Some("reports"));
        assert_eq!(
            job.unique_key.as_deref(),
            Some("schedule:nightly:2026-03-08T07:00:00Z")
        );
        assert_eq!(job.reference_type.as_deref(), Some("schedule"));
        assert_eq!(job.reference_id.as_deref(), Some("nightly"));
        assert!(job.validate(&Limits::default()).is_ok());
    }
}
