//! Checking a job before it is stored. Every rejection names the field and the problem, and
//! nothing is written for a batch that holds one bad job.

use crate::args::JobArgs;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Limits applied to new jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest accepted `args`, in bytes of compact JSON. Default 1 MiB.
    pub max_args_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_args_bytes: 1024 * 1024,
        }
    }
}

/// Defaults for fields a caller leaves out.
pub const DEFAULT_QUEUE: &str = "default";
pub const DEFAULT_MAX_ATTEMPTS: i32 = 4;
/// Most characters of a name (kind, queue, reference type).
pub const MAX_NAME_LEN: usize = 128;
/// Most characters of a key (unique key, reference id). Characters, not bytes, so that the
/// rule is the one a JSON Schema `maxLength` states; 512 of them are at most 2 KiB, within
/// what a PostgreSQL index entry holds.
pub const MAX_KEY_LEN: usize = 512;
/// Longest delay, in milliseconds: 300 years of 365.25 days. Longer than any duration the API
/// schema's patterns write (some 220 years), and short enough that now plus the delay stays
/// within the four-digit years of RFC 3339 for thousands of years.
pub const MAX_DELAY_MS: i64 = 300 * 36_525 * 86_400_000 / 100;
/// Earliest and latest `run_at`, in microseconds since the Unix epoch: the years RFC 3339
/// writes, 0000 to 9999, so every stored time can be shown and read back.
pub const RUN_AT_MIN_MICROS: i64 = -62_167_219_200_000_000;
pub const RUN_AT_MAX_MICROS: i64 = 253_402_300_799_999_999;

/// A job as a caller describes it, before validation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    pub kind: String,
    /// Encoded once, when the job is described; checked by [`NewJob::validate`].
    #[serde(default)]
    pub args: JobArgs,
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default)]
    pub priority: Option<i32>,
    /// Earliest start, absolute. Exclusive with `delay_ms`.
    #[serde(default)]
    pub run_at: Option<DateTime<Utc>>,
    /// Earliest start, relative to the store's now. Signed so that a negative value can be
    /// reported instead of silently wrapping.
    #[serde(default)]
    pub delay_ms: Option<i64>,
    #[serde(default)]
    pub max_attempts: Option<i32>,
    #[serde(default)]
    pub unique_key: Option<String>,
    #[serde(default)]
    pub reference_type: Option<String>,
    #[serde(default)]
    pub reference_id: Option<String>,
    /// Execution limit; 0 = none; absent = the task's default.
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    /// Jobs sharing a key run at most `key_concurrency` at a time across every worker
    /// (see [`crate::flow`]). Absent: the task derives it from an argument, if configured.
    #[serde(default)]
    pub concurrency_key: Option<String>,
    /// How many jobs of this job's `concurrency_key` may run at once; absent = the task's,
    /// else the queue's `key_concurrency`, else 1.
    #[serde(default)]
    pub key_concurrency: Option<i32>,
}

/// When a validated job may first run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAt {
    /// At once (the store's now).
    Now,
    /// At this instant.
    At(DateTime<Utc>),
    /// This long after the store's now.
    After(Duration),
}

/// A validated job, ready for a store to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInsert {
    pub queue: String,
    pub kind: String,
    /// A JSON object within the size limit, as text.
    pub args: JobArgs,
    pub priority: i32,
    pub run_at: RunAt,
    pub max_attempts: i32,
    pub unique_key: Option<String>,
    pub reference_type: Option<String>,
    pub reference_id: Option<String>,
    pub timeout_ms: Option<i64>,
    pub concurrency_key: Option<String>,
    pub key_concurrency: Option<i32>,
}

/// A job that cannot be accepted: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid job: `{field}` {problem}")]
pub struct ValidationError {
    pub field: &'static str,
    pub problem: String,
    /// Why: a malformed value, or a well-formed kind the deployment does not know.
    pub rejection: Rejection,
}

/// The two reasons a job is refused, which interfaces report differently (HTTP 400 and 422).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// A field's value is malformed or out of range.
    Invalid,
    /// The kind is well formed but no configured task (or remote-worker declaration) knows it.
    UnknownKind,
}

pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        problem: problem.into(),
        rejection: Rejection::Invalid,
    }
}

/// The characters a name may hold besides ASCII letters and digits.
pub const NAME_PUNCTUATION: &str = "_-.:/";

/// Names (kind, queue, reference type) appear in CLI tables, URLs, metric labels and log
/// lines, so they are 1 to 128 characters of one small, documented set: ASCII letters and
/// digits, and `_ - . : /`, starting with a letter or digit. That keeps out spaces, control
/// characters, and the invisible and direction-changing characters that would let one name
/// look like another.
fn check_name(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_NAME_LEN {
        return Err(invalid(
            field,
            format!("is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !NAME_PUNCTUATION.contains(*c))
    {
        return Err(invalid(
            field,
            format!(
                "may hold only ASCII letters, digits and `{NAME_PUNCTUATION}`, found {}",
                describe_char(c)
            ),
        ));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(invalid(field, "must start with an ASCII letter or digit"));
    }
    Ok(())
}

/// A character as an error message shows it: printable ones quoted, the rest as a code point.
fn describe_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() || !c.is_ascii() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("`{c}`")
    }
}

fn check_key(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty when given"));
    }
    if value.chars().count() > MAX_KEY_LEN {
        return Err(invalid(
            field,
            format!("is longer than {MAX_KEY_LEN} characters"),
        ));
    }
    crate::storable::check_text(field, value)
}

impl NewJob {
    /// A job of `kind` with `args` (a `serde_json::Value`, encoded here, or [`JobArgs`]);
    /// every other field takes its default.
    pub fn new(kind: impl Into<String>, args: impl Into<JobArgs>) -> Self {
        NewJob {
            kind: kind.into(),
            args: args.into(),
            ..Default::default()
        }
    }

    /// Checks every field and fills the defaults.
    pub fn validate(&self, limits: &Limits) -> Result<JobInsert, ValidationError> {
        check_name("kind", &self.kind)?;
        let queue = self.queue.clone().unwrap_or_else(|| DEFAULT_QUEUE.into());
        check_name("queue", &queue)?;
        let text = self.args.get();
        let kind = json_type(text);
        if kind != "an object" {
            return Err(invalid(
                "args",
                format!("must be a JSON object, got {kind}"),
            ));
        }
        crate::storable::check_json_text("args", text)?;
        // The size of the text as given: the interfaces encode args compactly; text taken
        // verbatim (`JobArgs::from_json`, SQL) is counted as written.
        let size = text.len();
        if size > limits.max_args_bytes {
            return Err(invalid(
                "args",
                format!(
                    "is {size} bytes, over the limit of {} bytes",
                    limits.max_args_bytes
                ),
            ));
        }
        let run_at = match (self.run_at, self.delay_ms) {
            (Some(_), Some(_)) => {
                return Err(invalid("delay_ms", "cannot be combined with run_at"));
            }
            (Some(at), None)
                if !(RUN_AT_MIN_MICROS..=RUN_AT_MAX_MICROS).contains(&at.timestamp_micros()) =>
            {
                return Err(invalid("run_at", "must be within the years 0000 to 9999"));
            }
            (Some(at), None) => RunAt::At(at),
            (None, Some(ms)) if ms < 0 => {
                return Err(invalid(
                    "delay_ms",
                    format!("must not be negative, got {ms}"),
                ));
            }
            (None, Some(ms)) if ms > MAX_DELAY_MS => {
                return Err(invalid(
                    "delay_ms",
                    format!("must be at most 300 years, got {ms}"),
                ));
            }
            (None, Some(0)) | (None, None) => RunAt::Now,
            (None, Some(ms)) => RunAt::After(Duration::from_millis(ms as u64)),
        };
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if max_attempts < 1 {
            return Err(invalid(
                "max_attempts",
                format!("must be at least 1, got {max_attempts}"),
            ));
        }
        if let Some(k) = &self.unique_key {
            check_key("unique_key", k)?;
        }
        match (&self.reference_type, &self.reference_id) {
            (Some(t), Some(id)) => {
                check_name("reference_type", t)?;
                check_key("reference_id", id)?;
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(invalid(
                    "reference_id",
                    "is required when reference_type is given",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "reference_type",
                    "is required when reference_id is given",
                ))
            }
        }
        if let Some(t) = self.timeout_ms {
            if t < 0 {
                return Err(invalid(
                    "timeout_ms",
                    format!("must not be negative, got {t}"),
                ));
            }
        }
        if let Some(k) = &self.concurrency_key {
            check_key("concurrency_key", k)?;
        }
        match (self.key_concurrency, &self.concurrency_key) {
            (Some(n), _) if n < 1 => {
                return Err(invalid(
                    "key_concurrency",
                    format!("must be at least 1, got {n}"),
                ));
            }
            (Some(_), None) => {
                return Err(invalid(
                    "key_concurrency",
                    "is given without a concurrency_key",
                ));
            }
            _ => {}
        }
        Ok(JobInsert {
            queue,
            kind: self.kind.clone(),
            args: self.args.clone(),
            priority: self.priority.unwrap_or(0),
            run_at,
            max_attempts,
            unique_key: self.unique_key.clone(),
            reference_type: self.reference_type.clone(),
            reference_id: self.reference_id.clone(),
            timeout_ms: self.timeout_ms,
            concurrency_key: self.concurrency_key.clone(),
            key_concurrency: self.key_concurrency,
        })
    }
}

/// Checks a queue name given on its own (pause, resume, filters).
pub fn validate_queue_name(name: &str) -> Result<(), ValidationError> {
    check_name("queue", name)
}

/// Checks a kind name given on its own (task and schedule declarations, filters).
pub fn validate_kind_name(name: &str) -> Result<(), ValidationError> {
    check_name("kind", name)
}

/// What kind of value valid JSON text holds, read from its first character.
fn json_type(text: &str) -> &'static str {
    match text.trim_start().bytes().next() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(job: NewJob) -> JobInsert {
        job.validate(&Limits::default()).unwrap()
    }
    fn field_of(job: NewJob) -> (&'static str, String) {
        let e = job.validate(&Limits::default()).unwrap_err();
        (e.field, e.to_string())
    }

    #[test]
    fn defaults_are_filled() {
        let j = ok(NewJob::new("send_email", json!({"to": "x"})));
        assert_eq!(j.queue, "default");
        assert_eq!(j.priority, 0);
        assert_eq!(j.max_attempts, 4);
        assert_eq!(j.run_at, RunAt::Now);
        assert_eq!(j.timeout_ms, None);
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(field_of(NewJob::new("", json!({}))).0, "kind");
        assert_eq!(field_of(NewJob::new(" k", json!({}))).0, "kind");
        let (f, msg) = field_of(NewJob::new("k", json!([1])));
        assert_eq!(f, "args");
        assert!(msg.contains("must be a JSON object, got an array"), "{msg}");
        let mut j = NewJob::new("k", json!({}));
        j.delay_ms = Some(-5);
        let (f, msg) = field_of(j);
        assert_eq!(f, "delay_ms");
        assert!(msg.contains("-5"));
        let mut j = NewJob::new("k", json!({}));
        j.max_attempts = Some(0);
        assert_eq!(field_of(j).0, "max_attempts");
        let mut j = NewJob::new("k", json!({}));
        j.queue = Some(String::new());
        assert_eq!(field_of(j).0, "queue");
        let mut j = NewJob::new("k", json!({}));
        j.reference_type = Some("file_upload".into());
        assert_eq!(field_of(j).0, "reference_id");
        let mut j = NewJob::new("k", json!({}));
        j.unique_key = Some(String::new());
        assert_eq!(field_of(j).0, "unique_key");
        let mut j = NewJob::new("k", json!({}));
        j.timeout_ms = Some(-1);
        assert_eq!(field_of(j).0, "timeout_ms");
        let mut j = NewJob::new("k", json!({}));
        j.delay_ms = Some(1);
        j.run_at = Some(Utc::now());
        assert_eq!(field_of(j).0, "delay_ms");
    }

    #[test]
    fn the_earliest_start_stays_within_the_years_rfc_3339_writes() {
        let delay = |ms| {
            let mut j = NewJob::new("k", json!({}));
            j.delay_ms = Some(ms);
            j
        };
        assert_eq!(
            ok(delay(MAX_DELAY_MS)).run_at,
            RunAt::After(Duration::from_millis(MAX_DELAY_MS as u64))
        );
        let (f, msg) = field_of(delay(MAX_DELAY_MS + 1));
        assert_eq!(f, "delay_ms");
        assert!(msg.contains("must be at most 300 years"), "{msg}");
        assert_eq!(field_of(delay(i64::MAX)).0, "delay_ms");
        let at = |micros| {
            let mut j = NewJob::new("k", json!({}));
            j.run_at = DateTime::from_timestamp_micros(micros);
            j
        };
        for micros in [RUN_AT_MIN_MICROS, RUN_AT_MAX_MICROS] {
            let t = DateTime::from_timestamp_micros(micros).unwrap();
            assert_eq!(ok(at(micros)).run_at, RunAt::At(t));
            let text = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            assert_eq!(text.len(), "0000-01-01T00:00:00.000000Z".len(), "{text}");
            assert_eq!(text.parse::<DateTime<Utc>>().unwrap(), t);
        }
        for micros in [RUN_AT_MIN_MICROS - 1, RUN_AT_MAX_MICROS + 1] {
            let (f, msg) = field_of(at(micros));
            assert_eq!(f, "run_at");
            assert!(msg.contains("within the years 0000 to 9999"), "{msg}");
        }
    }

    #[test]
    fn every_delay_the_api_schema_writes_is_within_the_maximum() {
        // The largest sum crate::schema's duration pattern matches: four digits per unit.
        let longest = crate::parse_duration("9999w9999d9999h9999m9999s9999ms").unwrap();
        assert!(longest.as_millis() <= MAX_DELAY_MS as u128);
        // And the maximum is a whole number of days, 300 years of 365.25.
        assert_eq!(MAX_DELAY_MS, 109_575 * 86_400_000);
    }

    #[test]
    fn args_size_limit_counts_bytes() {
        let limits = Limits { max_args_bytes: 20 };
        let small = NewJob::new("k", json!({"a": "0123456789"})); // 18 bytes
        assert!(small.validate(&limits).is_ok());
        let big = NewJob::new("k", json!({"a": "0123456789abc"})); // 21 bytes
        let e = big.validate(&limits).unwrap_err();
        assert_eq!(e.field, "args");
        assert!(
            e.to_string().contains("21 bytes, over the limit of 20"),
            "{e}"
        );
    }

    #[test]
    fn args_of_every_kind_are_named() {
        for (args, word) in [
            (json!(null), "null"),
            (json!(true), "a boolean"),
            (json!(-1.5), "a number"),
            (json!("s"), "a string"),
            (json!([]), "an array"),
        ] {
            let (f, msg) = field_of(NewJob::new("k", args));
            assert_eq!(f, "args");
            assert!(
                msg.contains(&format!("must be a JSON object, got {word}")),
                "{msg}"
            );
        }
        let mut deep = json!(1);
        for _ in 0..101 {
            deep = json!({ "a": deep });
        }
        let (f, msg) = field_of(NewJob::new("k", deep));
        assert_eq!(f, "args");
        assert!(msg.contains("deeper than 100"), "{msg}");
        let (_, msg) = field_of(NewJob::new("k", json!({"a": {"b": "x\u{0}"}})));
        assert!(msg.ends_with("found at args.a.b"), "{msg}");
    }

    #[test]
    fn delays_and_deserialising_rejects_unknown_fields() {
        let mut j = NewJob::new("k", json!({}));
        j.delay_ms = Some(1500);
        assert_eq!(ok(j).run_at, RunAt::After(Duration::from_millis(1500)));
        let e = serde_json::from_value::<NewJob>(json!({"kind": "k", "prio": 1})).unwrap_err();
        assert!(e.to_string().contains("prio"));
    }
}
