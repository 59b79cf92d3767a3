//! The reader's tests: every key, every error message, the environment overlay.

use super::keys::env_name;
use super::*;
use errand::worker::maintenance::Retention;
use errand::{Backoff, Limits};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

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

/// The error of `text`, without its line and column (which
/// `errors_in_the_file_name_their_line_and_column` checks).
fn error(text: &str) -> String {
    let e = parse("errand.toml", Some(text), &no_env).unwrap_err();
    ConfigError {
        position: None,
        ..e
    }
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
    let Handler::Http { url, headers, .. } = &regen.handler else {
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
        "errand.toml: tasks.send_email: unknown key \"comand\" (did you mean \"command\"?); \
         expected one of: queue, command, http, remote, timeout, max_attempts, backoff, \
         concurrency_key, key_concurrency"
    );
    assert_eq!(
        error("databse_url = \"x\"\n"),
        "errand.toml: unknown key \"databse_url\" (did you mean \"database_url\"?); expected one \
         of: database_url, database_tls, http, workers, limits, queues, tasks, server, scheduler, schedules, retention"
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
        (
            "database_url = \"\"",
            "errand.toml: database_url: must not be empty",
        ),
        (
            "database_url = 5",
            "errand.toml: database_url: expected a string, got an integer",
        ),
        (
            "[workers]\nenabled = \"no\"",
            "errand.toml: workers.enabled: expected true or false, got a string",
        ),
        (
            "[workers]\nlease = \"30x\"",
            "errand.toml: workers.lease: invalid duration `30x`: unknown unit `x`",
        ),
        (
            "[workers]\nlease = 30",
            "errand.toml: workers.lease: expected a duration string",
        ),
        (
            "[workers]\nlease = \"1ms\"",
            "errand.toml: workers.lease: must be at least 30ms",
        ),
        (
            "[workers]\npoll_interval = \"0\"",
            "errand.toml: workers.poll_interval: must not be zero",
        ),
        (
            "[limits]\nmax_args_bytes = 0",
            "errand.toml: limits.max_args_bytes: must be at least 1, got 0",
        ),
        (
            "[queues.email]\nconcurrency = 0",
            "errand.toml: queues.email.concurrency: must be at least 1, got 0",
        ),
        (
            "[queues.email]\nconcurrency = \"4\"",
            "errand.toml: queues.email.concurrency: expected an integer",
        ),
        (
            "[queues.email]",
            "errand.toml: queues.email: missing key \"concurrency\"",
        ),
        (
            "[queues]\nemail = 4",
            "errand.toml: queues.email: expected a table, got integer `4`",
        ),
        (
            "[tasks.regen]\ntimeout = \"1m\"",
            "errand.toml: tasks.regen: set exactly one of \"command\" or \"http\"",
        ),
        (
            "[tasks.regen]\ncommand = [\"x\"]\nhttp = { url = \"http://h/\" }",
            "errand.toml: tasks.regen: set exactly one of \"command\" or \"http\"",
        ),
        (
            "[tasks.t]\ncommand = []",
            "errand.toml: tasks.t.command: must name a program",
        ),
        (
            "[tasks.t]\ncommand = \"python3 x.py\"",
            "errand.toml: tasks.t.command: expected an array of strings",
        ),
        (
            "[tasks.t]\ncommand = [\"x\", 1]",
            "errand.toml: tasks.t.command: item 1 must be a string",
        ),
        (
            "[tasks.t]\ncommand = [\"x\"]\ntimeout = \"soon\"",
            "errand.toml: tasks.t.timeout: invalid duration `soon`",
        ),
        (
            "[tasks.t]\ncommand = [\"x\"]\nmax_attempts = 0",
            "errand.toml: tasks.t.max_attempts: must be at least 1, got 0",
        ),
        (
            "[tasks.t]\ncommand = [\"x\"]\nqueue = \"\"",
            "errand.toml: tasks.t.queue: must not be empty",
        ),
        (
            "[tasks.t]\ncommand = [\"x\"]\nbackoff = { jitter = 2.0 }",
            "errand.toml: tasks.t.backoff.jitter: must be between 0 and 1, got 2",
        ),
        (
            "[tasks.t]\ncommand = [\"x\"]\nbackoff = { base = \"1m\", cap = \"1s\" }",
            "errand.toml: tasks.t.backoff.cap: must not be shorter than backoff.base",
        ),
        (
            "[tasks.t]\nhttp = { headers = {} }",
            "errand.toml: tasks.t.http: missing key \"url\"",
        ),
        (
            "[tasks.t]\nhttp = { url = \"https://h/\", insecure_skip_verify = \"yes\" }",
            "errand.toml: tasks.t.http.insecure_skip_verify: expected true or false",
        ),
        (
            "[tasks.t]\nhttp = { url = \"ftp://h/\" }",
            "errand.toml: tasks.t.http.url: expected an http:// or https:// URL",
        ),
        (
            "[tasks.t]\nhttp = { url = \"not a url\" }",
            "errand.toml: tasks.t.http.url: invalid URL",
        ),
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
        (
            "tasks = 3",
            "errand.toml: tasks: expected a table, got integer `3`",
        ),
        ("[workers\n", "errand.toml: not valid TOML"),
    ] {
        let e = error(text);
        assert!(
            e.starts_with(expected),
            "for {text:?}\n  got: {e}\n want: {expected}…"
        );
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
    let text = "[tasks.a]\ncommand = [\"x\"]\n[tasks.b]\ncommand = [\"y\"]\nqueue = \"email\"\n";
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
    let e = error("[schedules.x]\ncron = \"0 2 * * *\"\ntimezone = \"Mars/Base\"\nkind = \"k\"\n");
    assert!(
        e.starts_with("errand.toml: schedules.x.timezone: unknown time zone"),
        "{e}"
    );
    let e = error("[schedules.x]\ncrn = \"0 2 * * *\"\nkind = \"k\"\n");
    assert!(
        e.starts_with("errand.toml: schedules.x: unknown key \"crn\" (did you mean \"cron\"?)"),
        "{e}"
    );
    let e = error("[schedules.x]\nevery = 5\nkind = \"k\"\n");
    assert!(
        e.starts_with("errand.toml: schedules.x.every: expected a string, got integer `5`"),
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
    let text = include_str!("../../../../examples/errand.toml");
    let c = parse("examples/errand.toml", Some(text), &no_env).unwrap();
    assert!(c.tasks.values().any(|t| t.handler.kind() == "command"));
    assert!(c.tasks.values().any(|t| t.handler.kind() == "http"));
    assert!(c.schedules.contains_key("nightly_reindex"));
}
