//! Golden tests of the `--json` shapes (docs/cli-json.md): each operator command's output on
//! the `fixture` database is compared with `tests/golden/NAME.json`. Times and measured
//! durations are replaced by `"<time>"` and `"<ms>"`; ids are kept (the fixture makes them
//! the same on both backends). A mismatch fails with the differing lines.
//!
//! The HTTP API answers the same reads with the same files (`the_api_answers_*`): one view
//! per resource, `errand::views`, printed by both.
//!
//! After a deliberate change of a shape, regenerate with
//! `ERRAND_UPDATE_GOLDEN=1 cargo test -p errand-cli --test e2e golden` and review the diff.

use crate::common::{e2e, Env};
use serde_json::Value;
use std::path::PathBuf;

e2e!(
    json_shapes_match_the_golden_files,
    schedule_json_shapes_match_the_golden_files,
    the_api_answers_with_the_golden_shapes,
    the_api_answers_schedules_with_the_golden_shapes
);

/// (golden file, API path): the HTTP API's answer for the same resource as a command's
/// `--json`, as a `read` caller (who, like a terminal, gets secrets redacted) sees it.
const API_READS: &[(&str, &str)] = &[
    ("jobs_list", "/v1/jobs?queue=reports"),
    ("jobs_show", "/v1/jobs/2"),
    ("queues_list", "/v1/queues"),
    ("workers_list", "/v1/workers"),
];

/// The same for schedules, on the `fixture::schedules` database.
const API_SCHEDULE_READS: &[(&str, &str)] = &[
    ("schedules_list", "/v1/schedules"),
    ("schedules_show", "/v1/schedules/nightly_report"),
    ("schedules_show_every", "/v1/schedules/sync_crm"),
];

/// (golden file, command, expected exit code), run in this order: reads first, then actions.
const COMMANDS: &[(&str, &[&str], i32)] = &[
    ("stats", &["stats"], 0),
    ("jobs_list", &["jobs", "list", "--queue", "reports"], 0),
    ("jobs_show", &["jobs", "show", "2"], 0),
    ("jobs_stuck", &["jobs", "stuck"], 0),
    ("queues_list", &["queues", "list"], 0),
    ("workers_list", &["workers", "list"], 0),
    ("jobs_retry", &["jobs", "retry", "2", "3"], 3),
    (
        "jobs_retry_failed",
        &["jobs", "retry", "--failed", "--yes"],
        0,
    ),
    ("jobs_cancel", &["jobs", "cancel", "6", "4", "1"], 3),
    (
        "jobs_cancel_queued",
        &["jobs", "cancel", "--queued", "--queue", "indexing", "--yes"],
        0,
    ),
    ("jobs_rescue", &["jobs", "rescue"], 0),
    ("queues_pause", &["queues", "pause", "email"], 0),
    (
        "jobs_purge",
        &["jobs", "purge", "--older-than", "0s", "--yes"],
        0,
    ),
];

/// The same for the schedule commands, on the `fixture::schedules` database.
const SCHEDULE_COMMANDS: &[(&str, &[&str], i32)] = &[
    ("schedules_list", &["schedules", "list"], 0),
    (
        "schedules_show",
        &["schedules", "show", "nightly_report"],
        0,
    ),
    (
        "schedules_show_every",
        &["schedules", "show", "sync_crm"],
        0,
    ),
    (
        "schedules_next",
        &["schedules", "next", "nightly_report", "-n", "3"],
        0,
    ),
    (
        "schedules_pause",
        &["schedules", "pause", "nightly_report", "weekly_cleanup"],
        0,
    ),
    (
        "schedules_resume",
        &["schedules", "resume", "weekly_cleanup", "sync_crm"],
        0,
    ),
    (
        "schedules_trigger",
        &["schedules", "trigger", "nightly_report"],
        0,
    ),
];

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Replaces what differs between runs: RFC 3339 times, and `*_ms` measurements (ages and
/// durations; settings such as `window_ms` stay).
fn normalize(v: &mut Value, key: Option<&str>) {
    match v {
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
            *v = Value::String("<time>".into());
        }
        Value::Number(_)
            if key.is_some_and(|k| {
                k.ends_with("_ms") && !["window_ms", "timeout_ms", "misfire_grace_ms"].contains(&k)
            }) =>
        {
            *v = Value::String("<ms>".into());
        }
        Value::Array(items) => items.iter_mut().for_each(|i| normalize(i, None)),
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                // `data.run_at` of an error event is a time too.
                normalize(item, Some(k));
            }
        }
        _ => {}
    }
}

/// The first differing line with a little context on each side, as `-expected` / `+actual`.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let first = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let from = first.saturating_sub(3);
    let mut out = String::new();
    for line in &e[from..first] {
        out.push_str(&format!("  {line}\n"));
    }
    for line in e.iter().skip(first).take(8) {
        out.push_str(&format!("- {line}\n"));
    }
    for line in a.iter().skip(first).take(8) {
        out.push_str(&format!("+ {line}\n"));
    }
    format!("first difference at line {}:\n{out}", first + 1)
}

async fn json_shapes_match_the_golden_files(env: Env) {
    crate::fixture::every_state(env.client().await, None).await;
    check(&env, COMMANDS).await;
}

async fn schedule_json_shapes_match_the_golden_files(env: Env) {
    crate::fixture::with_schedules(&env.url).await;
    check(&env, SCHEDULE_COMMANDS).await;
}

async fn the_api_answers_with_the_golden_shapes(env: Env) {
    crate::fixture::every_state(env.client().await, None).await;
    check_api(&env, API_READS).await;
}

async fn the_api_answers_schedules_with_the_golden_shapes(env: Env) {
    crate::fixture::with_schedules(&env.url).await;
    check_api(&env, API_SCHEDULE_READS).await;
}

/// Serves the API over the test's database (the router alone: no worker, rescuer or
/// scheduler changes the fixture meanwhile) and compares each read with its golden file.
async fn check_api(env: &Env, reads: &[(&str, &str)]) {
    let config = errand_server::ServerConfig {
        tokens: vec![errand_server::ApiToken {
            name: "reader".into(),
            token: "golden-read".into(),
            role: errand_server::Role::Read,
        }],
        ..Default::default()
    };
    let app = errand_server::router(env.client().await.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = crate::common::http_client();
    let mut failures = Vec::new();
    for (name, path) in reads {
        let r = http
            .get(format!("http://{addr}{path}"))
            .bearer_auth("golden-read")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        let mut v: Value = r.json().await.unwrap();
        normalize(&mut v, None);
        let actual = serde_json::to_string_pretty(&v).unwrap() + "\n";
        let path_of = golden_dir().join(format!("{name}.json"));
        let expected = std::fs::read_to_string(&path_of).unwrap();
        if expected != actual {
            failures.push(format!(
                "GET {path} differs from {}\n{}",
                path_of.display(),
                diff(&expected, &actual)
            ));
        }
    }
    server.abort();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `commands` in order with `--json` and compares each output with its golden file (or,
/// with `ERRAND_UPDATE_GOLDEN`, writes it).
async fn check(env: &Env, commands: &[(&str, &[&str], i32)]) {
    let update = std::env::var_os("ERRAND_UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for (name, args, code) in commands {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let out = env.run(&all).await;
        assert_eq!(out.code, Some(*code), "{all:?}: {out:?}");
        let mut v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{all:?} printed no JSON ({e}): {out:?}"));
        normalize(&mut v, None);
        let actual = serde_json::to_string_pretty(&v).unwrap() + "\n";
        let path = golden_dir().join(format!("{name}.json"));
        // Both backends must match the same file; only the SQLite run writes it.
        if update && !env.url.starts_with("postgres") {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (ERRAND_UPDATE_GOLDEN=1 writes it)", path.display())
        });
        if expected != actual {
            failures.push(format!(
                "`errand {}` differs from {}\n{}",
                all.join(" "),
                path.display(),
                diff(&expected, &actual)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_diff_shows_the_first_differing_lines() {
    let d = diff("a\nb\nc\n", "a\nB\nc\n");
    assert_eq!(d, "first difference at line 2:\n  a\n- b\n- c\n+ B\n+ c\n");
    let mut v = serde_json::json!({"at": "2026-11-23T13:02:11.123456Z", "age_ms": 5, "window_ms": 60, "n": 1});
    normalize(&mut v, None);
    assert_eq!(
        v,
        serde_json::json!({"at": "<time>", "age_ms": "<ms>", "window_ms": 60, "n": 1})
    );
}
