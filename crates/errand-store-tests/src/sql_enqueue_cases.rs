//! The inputs both SQL enqueue paths are held to: PostgreSQL's `errand_enqueue()` function
//! and SQLite's `errand_enqueue` view must accept what errand-core's validation accepts, store
//! the same row, and refuse what it refuses, naming the same field. One table for both stores,
//! compiled into each store crate's unit tests with `#[path]` (they cannot depend on this
//! crate, which depends on them); not a module of this crate.

use chrono::{DateTime, Utc};
use errand_core::{Limits, NewJob, MAX_DELAY_MS, RUN_AT_MAX_MICROS, RUN_AT_MIN_MICROS};
use serde_json::{json, Value};

/// What the library answers; each store's test says how its SQL path must compare.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    /// Accepted.
    Accepted,
    /// Refused, naming this field.
    Refused(&'static str),
}

pub(crate) fn job(kind: &str) -> NewJob {
    NewJob::new(kind, json!({}))
}

pub(crate) fn with(kind: &str, change: impl FnOnce(&mut NewJob)) -> NewJob {
    let mut j = job(kind);
    change(&mut j);
    j
}

/// `{"a": "…"}` whose compact JSON is exactly `size` bytes, with characters that JSON
/// escapes or that take several bytes, so the size is counted on the escaped UTF-8 text.
pub(crate) fn args_of_size(size: usize) -> Value {
    let head = "quote\" backslash\\ newline\n tab\t control\u{1} é 😀 ";
    let mut s = head.to_string();
    let base = serde_json::to_vec(&json!({ "a": s })).unwrap().len();
    s.push_str(&"x".repeat(size - base));
    let v = json!({ "a": s });
    assert_eq!(serde_json::to_vec(&v).unwrap().len(), size);
    v
}

pub(crate) fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for i in 0..depth {
        v = if i % 2 == 0 {
            json!({ "k": v })
        } else {
            json!([v])
        };
    }
    v
}

pub(crate) fn cases() -> Vec<(&'static str, NewJob, Expect)> {
    use Expect::*;
    let limit = Limits::default().max_args_bytes;
    vec![
        ("minimal", job("send_email"), Accepted),
        (
            "every field",
            NewJob {
                kind: "a/b:c.d-e_F9".into(),
                args: json!({"to": "ada@example.com", "n": [1, 2.5, null, true], "o": {}}).into(),
                queue: Some("email".into()),
                priority: Some(-7),
                run_at: None,
                delay_ms: Some(1500),
                max_attempts: Some(9),
                unique_key: Some("welcome:42 é".into()),
                reference_type: Some("user".into()),
                reference_id: Some("42".into()),
                timeout_ms: Some(600_000),
                // The SQL enqueue takes no concurrency key yet (see CHANGELOG).
                concurrency_key: None,
                key_concurrency: None,
            },
            Accepted,
        ),
        (
            "run_at in the past",
            with("k", |j| {
                j.run_at = Some("2020-01-02T03:04:05.123456Z".parse().unwrap())
            }),
            Accepted,
        ),
        ("name of 128", job(&"k".repeat(128)), Accepted),
        ("empty kind", job(""), Refused("kind")),
        ("kind too long", job(&"k".repeat(129)), Refused("kind")),
        (
            "long kind with a space",
            job(&" ".repeat(200)),
            Refused("kind"),
        ),
        ("space in kind", job("send email"), Refused("kind")),
        ("leading space", job(" k"), Refused("kind")),
        ("leading dash", job("-k"), Refused("kind")),
        ("semicolon", job("k;drop"), Refused("kind")),
        ("non-ASCII letter", job("café"), Refused("kind")),
        ("emoji", job("k😀"), Refused("kind")),
        ("zero-width space", job("k\u{200B}"), Refused("kind")),
        ("right-to-left override", job("k\u{202E}"), Refused("kind")),
        ("newline", job("k\n"), Refused("kind")),
        ("DEL", job("k\u{7F}"), Refused("kind")),
        ("NUL in kind", job("k\0"), Refused("kind")),
        (
            "empty queue",
            with("k", |j| j.queue = Some(String::new())),
            Refused("queue"),
        ),
        (
            "queue with a tab",
            with("k", |j| j.queue = Some("a\tb".into())),
            Refused("queue"),
        ),
        (
            "queue starting with _",
            with("k", |j| j.queue = Some("_q".into())),
            Refused("queue"),
        ),
        (
            "args an array",
            NewJob::new("k", json!([1])),
            Refused("args"),
        ),
        (
            "args a string",
            NewJob::new("k", json!("x")),
            Refused("args"),
        ),
        ("args a number", NewJob::new("k", json!(1)), Refused("args")),
        (
            "args a boolean",
            NewJob::new("k", json!(true)),
            Refused("args"),
        ),
        ("args null", NewJob::new("k", Value::Null), Refused("args")),
        (
            "args 100 deep",
            NewJob::new("k", json!({ "d": nested(99) })),
            Accepted,
        ),
        (
            "args 101 deep",
            NewJob::new("k", json!({ "d": nested(100) })),
            Refused("args"),
        ),
        (
            "args at the limit",
            NewJob::new("k", args_of_size(limit)),
            Accepted,
        ),
        (
            "args over the limit",
            NewJob::new("k", args_of_size(limit + 1)),
            Refused("args"),
        ),
        (
            "NUL in args",
            NewJob::new("k", json!({"a": "x\0"})),
            Refused("args"),
        ),
        (
            "NUL in an args key",
            NewJob::new("k", json!({"a\0": 1})),
            Refused("args"),
        ),
        (
            // JSON text `"\\u0000"`: a backslash and the letters u0000, no NUL.
            "backslash then u0000",
            NewJob::new("k", json!({"a": "\\u0000", "b": "\\\\u0000"})),
            Accepted,
        ),
        (
            // JSON text `"\\\u0000"`: a backslash, then a NUL.
            "backslash then NUL",
            NewJob::new("k", json!({"a": "\\\0"})),
            Refused("args"),
        ),
        (
            "negative delay",
            with("k", |j| j.delay_ms = Some(-5)),
            Refused("delay_ms"),
        ),
        (
            "delay and run_at",
            with("k", |j| {
                j.delay_ms = Some(1);
                j.run_at = Some(Utc::now());
            }),
            Refused("delay_ms"),
        ),
        ("zero delay", with("k", |j| j.delay_ms = Some(0)), Accepted),
        (
            "delay of 300 years",
            with("k", |j| j.delay_ms = Some(MAX_DELAY_MS)),
            Accepted,
        ),
        (
            "delay over 300 years",
            with("k", |j| j.delay_ms = Some(MAX_DELAY_MS + 1)),
            Refused("delay_ms"),
        ),
        (
            // As long as a PostgreSQL interval holds (i64::MAX milliseconds is refused by
            // PostgreSQL itself, when the caller's expression builds the interval).
            "delay of 30,000 years",
            with("k", |j| j.delay_ms = Some(MAX_DELAY_MS * 100)),
            Refused("delay_ms"),
        ),
        (
            "run_at at the end of 9999",
            with("k", |j| {
                j.run_at = DateTime::from_timestamp_micros(RUN_AT_MAX_MICROS)
            }),
            Accepted,
        ),
        (
            "run_at in the year 10000",
            with("k", |j| {
                j.run_at = DateTime::from_timestamp_micros(RUN_AT_MAX_MICROS + 1)
            }),
            Refused("run_at"),
        ),
        (
            "run_at at the start of 0000",
            with("k", |j| {
                j.run_at = DateTime::from_timestamp_micros(RUN_AT_MIN_MICROS)
            }),
            Accepted,
        ),
        (
            "run_at before the year 0000",
            with("k", |j| {
                j.run_at = DateTime::from_timestamp_micros(RUN_AT_MIN_MICROS - 1)
            }),
            Refused("run_at"),
        ),
        (
            "zero attempts",
            with("k", |j| j.max_attempts = Some(0)),
            Refused("max_attempts"),
        ),
        (
            "negative attempts",
            with("k", |j| j.max_attempts = Some(-3)),
            Refused("max_attempts"),
        ),
        (
            "one attempt",
            with("k", |j| j.max_attempts = Some(1)),
            Accepted,
        ),
        (
            "lowest priority",
            with("k", |j| j.priority = Some(i32::MIN)),
            Accepted,
        ),
        (
            "highest priority",
            with("k", |j| j.priority = Some(i32::MAX)),
            Accepted,
        ),
        (
            "empty unique key",
            with("k", |j| j.unique_key = Some(String::new())),
            Refused("unique_key"),
        ),
        (
            "key of 512 two-byte characters",
            with("k", |j| j.unique_key = Some("é".repeat(512))),
            Accepted,
        ),
        (
            "key of 513 two-byte characters",
            with("k", |j| j.unique_key = Some("é".repeat(513))),
            Refused("unique_key"),
        ),
        (
            "key of 512 four-byte characters",
            with("k", |j| j.unique_key = Some("😀".repeat(512))),
            Accepted,
        ),
        (
            "key of 513 four-byte characters",
            with("k", |j| j.unique_key = Some("😀".repeat(513))),
            Refused("unique_key"),
        ),
        (
            "reference id of 512 four-byte characters",
            with("k", |j| {
                j.reference_type = Some("user".into());
                j.reference_id = Some("😀".repeat(512));
            }),
            Accepted,
        ),
        (
            "reference id of 513 two-byte characters",
            with("k", |j| {
                j.reference_type = Some("user".into());
                j.reference_id = Some("é".repeat(513));
            }),
            Refused("reference_id"),
        ),
        (
            "key with spaces",
            with("k", |j| j.unique_key = Some(" a b ".into())),
            Accepted,
        ),
        (
            "NUL in a unique key",
            with("k", |j| j.unique_key = Some("a\0".into())),
            Refused("unique_key"),
        ),
        (
            "reference type alone",
            with("k", |j| j.reference_type = Some("user".into())),
            Refused("reference_id"),
        ),
        (
            "reference id alone",
            with("k", |j| j.reference_id = Some("1".into())),
            Refused("reference_type"),
        ),
        (
            "bad reference type",
            with("k", |j| {
                j.reference_type = Some("file upload".into());
                j.reference_id = Some("1".into());
            }),
            Refused("reference_type"),
        ),
        (
            "empty reference id",
            with("k", |j| {
                j.reference_type = Some("user".into());
                j.reference_id = Some(String::new());
            }),
            Refused("reference_id"),
        ),
        (
            "negative timeout",
            with("k", |j| j.timeout_ms = Some(-1)),
            Refused("timeout_ms"),
        ),
        (
            "no timeout at all",
            with("k", |j| j.timeout_ms = Some(0)),
            Accepted,
        ),
    ]
}
