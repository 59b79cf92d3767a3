//! The one-shot commands: `migrate` and `enqueue`, and configuration errors; README's
//! zero-config quick start and the example configuration.

use crate::common::{e2e, enqueued_id, Env};
use chrono::{TimeZone, Utc};
use errand::JobStatus;

e2e!(
    migrate_applies_and_reports_the_schema,
    enqueue_takes_every_option_and_task_defaults,
    enqueue_rejects_bad_input_with_exit_2_and_writes_nothing,
    configuration_errors_exit_2_naming_the_key,
    the_example_configuration_runs_its_command_task,
);

async fn migrate_applies_and_reports_the_schema(env: Env) {
    let before = env.run(&["migrate", "--status", "--json"]).await;
    assert_eq!(before.code, Some(0), "{before:?}");
    let before: serde_json::Value = serde_json::from_str(&before.stdout).unwrap();
    let latest = before["latest_version"].as_i64().unwrap();
    assert!(latest >= 2, "{before}");
    assert_eq!(before["current_version"], 0);
    // Versions need not be contiguous (numbers are reserved per feature): take them from
    // the pending list, which must end at the latest.
    let versions: Vec<i64> = before["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_i64().unwrap())
        .collect();
    assert_eq!(versions.first(), Some(&1), "{before}");
    assert_eq!(versions.last(), Some(&latest), "{before}");

    let applied = env.run(&["migrate"]).await;
    assert_eq!(applied.code, Some(0), "{applied:?}");
    let all: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
    assert_eq!(
        applied.stdout.trim(),
        format!(
            "applied migrations {}: schema at version {latest}",
            all.join(", ")
        )
    );

    let again = env.run(&["migrate"]).await;
    assert_eq!(
        again.stdout.trim(),
        format!("schema already at version {latest}: nothing to apply")
    );
    let again = env.run(&["migrate", "--json"]).await;
    let again: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["current_version"], latest);
    assert_eq!(again["newly_applied"], serde_json::json!([]));

    let after = env.run(&["migrate", "--status", "--json"]).await;
    let after: serde_json::Value = serde_json::from_str(&after.stdout).unwrap();
    assert_eq!(after["current_version"], latest);
    assert_eq!(after["pending"], serde_json::json!([]));
    assert_eq!(after["applied"].as_array().unwrap().len(), versions.len());

    let text = env.run(&["migrate", "--status"]).await;
    assert!(
        text.stdout
            .starts_with(&format!("schema version {latest} of {latest} (up to date)")),
        "{text:?}"
    );
}

async fn enqueue_takes_every_option_and_task_defaults(env: Env) {
    env.config(
        r#"
[queues.default]
concurrency = 1
[queues.email]
concurrency = 1
[queues.reports]
concurrency = 1
[tasks.send_email]
queue = "email"
command = ["true"]
max_attempts = 5
[tasks.report]
queue = "reports"
command = ["true"]
"#,
    );
    // The task's queue and attempt budget are the defaults...
    let id = enqueued_id(
        &env.run(&["enqueue", "send_email", "--args", r#"{"to":"ada"}"#])
            .await,
    );
    let job = env.job(id).await;
    assert_eq!(
        (job.kind.as_str(), job.queue.as_str(), job.max_attempts),
        ("send_email", "email", 5)
    );
    assert_eq!(job.args, serde_json::json!({"to": "ada"}));
    assert_eq!(
        job.timeout_ms,
        Some(30 * 60 * 1000),
        "the task's timeout (the default 30m) is the job's"
    );
    // ... and flags beat them.
    let id = enqueued_id(
        &env.run(&[
            "enqueue",
            "send_email",
            "--queue",
            "default",
            "--max-attempts",
            "2",
        ])
        .await,
    );
    let job = env.job(id).await;
    assert_eq!((job.queue.as_str(), job.max_attempts), ("default", 2));
    assert_eq!(job.args, serde_json::json!({}));

    // Every option, each beating the task's settings.
    let before = Utc::now();
    let out = env
        .run(&[
            "enqueue",
            "report",
            "--args",
            r#"{"day":"2024-05-01"}"#,
            "--queue",
            "reports",
            "--priority",
            "-3",
            "--delay",
            "1h30m",
            "--unique-key",
            "report:0501",
            "--reference",
            "account:42",
            "--max-attempts",
            "7",
            "--timeout",
            "5m",
            "--json",
        ])
        .await;
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["inserted"], true, "{out:?}");
    let id = v["id"].as_i64().unwrap();
    let job = env.job(id).await;
    assert_eq!(job.queue, "reports");
    assert_eq!(job.priority, -3);
    assert!(
        job.run_at >= before + chrono::Duration::minutes(89),
        "{:?}",
        job.run_at
    );
    assert_eq!(job.unique_key.as_deref(), Some("report:0501"));
    assert_eq!(job.reference_type.as_deref(), Some("account"));
    assert_eq!(job.reference_id.as_deref(), Some("42"));
    assert_eq!(job.max_attempts, 7);
    assert_eq!(job.timeout_ms, Some(300_000));

    // The same unique key again: nothing new, the existing job reported.
    let out = env
        .run(&["enqueue", "report", "--unique-key", "report:0501"])
        .await;
    assert_eq!(out.code, Some(0));
    assert_eq!(
        out.stdout.trim(),
        format!("job {id} already exists (unique key \"report:0501\")")
    );
    let out = env
        .run(&["enqueue", "report", "--unique-key", "report:0501", "--json"])
        .await;
    assert_eq!(
        out.stdout.trim(),
        format!(r#"{{"id":{id},"inserted":false}}"#)
    );

    // An absolute start, args from stdin, no timeout at all.
    let out = env
        .run_with_stdin(
            &[
                "enqueue",
                "report",
                "--args",
                "-",
                "--run-at",
                "2030-01-02T03:04:05+02:00",
                "--timeout",
                "0",
            ],
            Some(r#"{"from":"stdin"}"#),
        )
        .await;
    let job = env.job(enqueued_id(&out)).await;
    assert_eq!(
        job.run_at,
        Utc.with_ymd_and_hms(2030, 1, 2, 1, 4, 5).unwrap()
    );
    assert_eq!(job.args, serde_json::json!({"from": "stdin"}));
    assert_eq!(job.timeout_ms, Some(0));
    assert_eq!(env.all_jobs().await.len(), 4);
}

async fn enqueue_rejects_bad_input_with_exit_2_and_writes_nothing(env: Env) {
    env.config("[limits]\nmax_args_bytes = 32\n");
    let cases: &[(&[&str], &str)] = &[
        (
            &["enqueue", "k", "--args", "{bad"],
            "--args is not valid JSON: key must be a string at line 1 column 2",
        ),
        (
            &["enqueue", "k", "--args", "[1]"],
            "--args must be a JSON object, got an array",
        ),
        (
            &[
                "enqueue",
                "k",
                "--args",
                r#"{"a":"0123456789012345678901234567890"}"#,
            ],
            "bytes, over the limit of 32 bytes",
        ),
        (&["enqueue", "", "--args", "{}"], "KIND must not be empty"),
        (
            &["enqueue", "k", "--delay", "-5s"],
            "--delay: invalid duration `-5s`: expected a number",
        ),
        (
            &["enqueue", "k", "--delay", "5x"],
            "--delay: invalid duration `5x`: unknown unit `x`",
        ),
        (
            &["enqueue", "k", "--timeout", "soon"],
            "--timeout: invalid duration `soon`",
        ),
        (
            &["enqueue", "k", "--run-at", "tomorrow"],
            "--run-at: `tomorrow` is not an RFC 3339 time",
        ),
        (
            &[
                "enqueue",
                "k",
                "--delay",
                "1s",
                "--run-at",
                "2030-01-01T00:00:00Z",
            ],
            "cannot be used with",
        ),
        (
            &["enqueue", "k", "--reference", "user42"],
            "--reference: expected TYPE:ID",
        ),
        (
            &["enqueue", "k", "--max-attempts", "0"],
            "--max-attempts must be at least 1, got 0",
        ),
        (
            &["enqueue", "k", "--priority", "high"],
            "invalid value 'high' for '--priority <N>'",
        ),
        (
            &["enqueue", "k", "--bogus"],
            "unexpected argument '--bogus'",
        ),
        (
            &["enqueue"],
            "the following required arguments were not provided",
        ),
    ];
    env.expect_bad_input(cases).await;
    assert!(env.all_jobs().await.is_empty(), "bad input wrote a job");
}

async fn configuration_errors_exit_2_naming_the_key(env: Env) {
    env.config("[tasks.send_email]\ncomand = [\"true\"]\n");
    let out = env.run(&["migrate"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        "error: errand.toml:2:1: tasks.send_email: unknown key \"comand\" (did you mean \
         \"command\"?); expected one of: queue, command, http, remote, timeout, max_attempts, backoff, \
         concurrency_key, key_concurrency"
    );

    env.config("[workers]\nlease = \"30x\"\n");
    let out = env.run(&["worker"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("errand.toml:2:1: workers.lease: invalid duration `30x`: unknown unit `x`"),
        "{out:?}"
    );

    env.config("[tasks.t]\ncommand = [\"true\"]\n");
    let mut cmd = env.errand(&["worker"]);
    cmd.env("ERRAND_WORKERS_ENABLED", "maybe");
    let out = cmd.output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "ERRAND_WORKERS_ENABLED: workers.enabled: expected true or false, got \"maybe\""
        ),
        "{stderr}"
    );

    let out = env.run(&["worker", "--queues", "nope"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("--queues: queue \"nope\" is not configured (configured: default)"),
        "{out:?}"
    );

    let out = env.run(&["--config", "missing.toml", "migrate"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("missing.toml: cannot read the configuration file"),
        "{out:?}"
    );
}

/// The banner of a zero-config `serve` says where the dashboard is (the address it listens
/// on), the database, that no task or queue is served, and how to add a first task; the task
/// and the `errand enqueue` line it shows then work as shown.
async fn first_task_from_the_banner(env: &Env, banner: &str, listening: &str, log: &str) {
    let addr = listening
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {listening:?}"));
    for expected in [
        format!("dashboard  http://{addr}/"),
        format!("API        http://{addr}/v1"),
        "database   errand.db (sqlite)".to_string(),
        "config     none (zero config".to_string(),
        "tasks      none".to_string(),
        "queues     none claimed here".to_string(),
        "[tasks.hello]".to_string(),
        format!("curl -X POST http://{addr}/v1/jobs"),
    ] {
        assert!(
            banner.contains(&expected),
            "{expected:?} not in the banner:\n{banner}\nlog:\n{log}"
        );
    }
    // The snippet between `[tasks.hello]` and the blank line after it is a task that runs.
    let start = banner.find("[tasks.hello]").unwrap();
    let snippet: String = banner[start..]
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    env.config(&snippet);
    let enqueue = banner
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("errand enqueue hello"))
        .unwrap_or_else(|| panic!("no `errand enqueue` line in the banner:\n{banner}"));
    let args = enqueue
        .split_once("--args '")
        .and_then(|(_, rest)| rest.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no --args in {enqueue:?}"));
    let out = env
        .errand_bare(&["enqueue", "hello", "--args", args])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let id: i64 = stdout
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no job id in {stdout:?}"));
    let serve = env.spawn_command(env.errand_bare(&["serve"]), "errand serve (a first task)");
    serve.ready().await;
    let client = errand::Client::builder(env.path("errand.db"))
        .connect()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let job = client.job(id).await.unwrap().expect("the enqueued job");
        if job.status == JobStatus::Succeeded {
            assert_eq!(job.kind, "hello");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && !job.status.is_finished(),
            "{job:?}; log:\n{}",
            serve.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    serve.stop().await;
}

/// README's quick start: `errand serve` in an empty folder, no errand.toml, no --database:
/// it creates ./errand.db, migrates it, runs (claiming nothing: no task is configured), and
/// Ctrl-C stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_config_serve_creates_errand_db_and_migrates_it() {
    crate::common::run(crate::common::Backend::Sqlite, zero_config_serve).await;
}

async fn zero_config_serve(env: Env) {
    let db = env.dir.join("errand.db");
    assert!(!db.exists());
    let mut serve = env.spawn_command(env.errand_bare(&["serve"]), "errand serve");
    let mut stdout = serve.child.stdout.take().unwrap();
    let ready = serve.ready().await;
    for expected in [
        "database=errand.db",
        "backend=\"sqlite\"",
        "config=none (zero config)",
        "claiming=false",
    ] {
        assert!(ready.contains(expected), "{expected:?} not in {ready}");
    }
    serve
        .wait_for_line("not claiming jobs: no tasks configured")
        .await;
    assert!(db.exists(), "no ./errand.db in {}", env.dir.display());
    let listening = serve.wait_for_line("HTTP API listening on http://").await;
    let log = serve.stop_with(libc::SIGINT).await;
    let banner = {
        use tokio::io::AsyncReadExt;
        let mut text = String::new();
        stdout.read_to_string(&mut text).await.unwrap();
        text
    };
    first_task_from_the_banner(&env, &banner, &listening, &log).await;

    // The schema is there (migrated by serve, not by this check).
    let client = errand::Client::builder(db.display().to_string())
        .migrate(false)
        .connect()
        .await
        .unwrap();
    let status = client.migration_status().await.unwrap();
    assert!(status.current_version >= 2, "{status:?}");
    assert!(status.pending.is_empty(), "{status:?}");
    // And it is usable: a job goes in and is read back.
    let id = client
        .enqueue_kind("hello", serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .id;
    assert!(client.job(id).await.unwrap().is_some());
}

/// examples/errand.toml and its script, copied into a project the way a newcomer would: the
/// configuration starts with its queues and tasks, and its command task runs.
async fn the_example_configuration_runs_its_command_task(env: Env) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::create_dir_all(env.dir.join("examples/scripts")).unwrap();
    for file in ["examples/errand.toml", "examples/scripts/thumbnail.py"] {
        std::fs::copy(root.join(file), env.dir.join(file)).unwrap();
    }
    let out = env
        .run(&[
            "--config",
            "examples/errand.toml",
            "enqueue",
            "thumbnail",
            "--args",
            r#"{"image":"cat.jpg"}"#,
        ])
        .await;
    let id = enqueued_id(&out);
    assert_eq!(env.job(id).await.queue, "media");
    let serve = env.spawn(
        &["--config", "examples/errand.toml", "serve"],
        &[("ERRAND_WORKERS_POLL_INTERVAL", "100ms")],
    );
    let ready = serve.ready().await;
    for expected in [
        "config=examples/errand.toml",
        "queues=default=10,media=2",
        "tasks=reindex(http),thumbnail(command)",
        "claiming=true",
    ] {
        assert!(ready.contains(expected), "{expected:?} not in {ready}");
    }
    // No skipping: the example's thumbnail job needs python3, which `.ci/run` installs.
    let python = std::process::Command::new("python3")
        .arg("--version")
        .output();
    assert!(
        python.is_ok_and(|o| o.status.success()),
        "python3 is needed to run the example's thumbnail job (install it, as .ci/run does)"
    );
    let job = env
        .wait_job(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    assert_eq!(
        job.result,
        Some(serde_json::json!({"thumbnail": "cat.jpg.thumb-128.png", "size": 128}))
    );
    serve.stop().await;
}
