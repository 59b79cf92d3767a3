//! The docker compose example (examples/compose) without the containers: its errand.toml under
//! a real `errand serve` (tokens from the environment, as compose.yaml sets them), and its
//! Python web app (standard library only) enqueueing over the HTTP API and running the remote
//! worker that does the job. Also that compose.yaml and the systemd unit give errand longer to
//! stop than its grace.

use crate::common::{e2e, Env, PATIENCE};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

e2e!(the_compose_example_app_enqueues_and_works_its_jobs);

fn example(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(path)
}

/// A `key: 45s` or `key = "30s"` line's duration, in seconds.
fn seconds_of(text: &str, key: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in {text}"));
    let value = line
        .split(['=', ':'])
        .nth(1)
        .unwrap()
        .split('#')
        .next()
        .unwrap();
    let value = value.trim().trim_matches('"');
    errand_core::parse_duration(value).unwrap().as_secs()
}

async fn the_compose_example_app_enqueues_and_works_its_jobs(env: Env) {
    let compose = std::fs::read_to_string(example("compose/compose.yaml")).unwrap();
    let config_path = example("compose/errand.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let grace = seconds_of(&config, "shutdown_grace");
    // Every service's stop_grace_period, errand's first: longer than the grace.
    assert!(compose.contains("stop_grace_period"), "{compose}");
    for line in compose.lines().filter(|l| l.contains("stop_grace_period")) {
        let period = seconds_of(line, "stop_grace_period");
        assert!(
            period > grace,
            "stop_grace_period {period}s <= shutdown_grace {grace}s"
        );
    }

    // The systemd example waits longer than the default grace before its SIGKILL, and sends
    // SIGTERM to errand alone (its guard stops the command jobs).
    let unit = std::fs::read_to_string(example("systemd/errand.service")).unwrap();
    let stop = seconds_of(&unit, "TimeoutStopSec");
    let default_grace = errand_runtime::WorkerSettings::default()
        .shutdown_grace
        .as_secs();
    assert!(
        stop > default_grace,
        "TimeoutStopSec {stop}s <= {default_grace}s"
    );
    assert!(unit.lines().any(|l| l == "KillSignal=SIGTERM"), "{unit}");
    assert!(unit.lines().any(|l| l == "KillMode=mixed"), "{unit}");

    // errand serve as compose runs it: the example's file, tokens from the environment.
    let tokens = "admin:adm-compose,enqueue:enq-compose,worker:wrk-compose";
    let serve = env.spawn(
        &["--config", config_path.to_str().unwrap(), "serve"],
        &[("ERRAND_SERVER_TOKENS", tokens)],
    );
    let line = serve.wait_for_line("HTTP API listening on").await;
    let base = line[line.find("http://").unwrap()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let outbox = env.dir.join("outbox.log");
    let mut app = tokio::process::Command::new("python3");
    app.arg(example("compose/app/app.py"))
        .env("PYTHONPATH", example("remote-worker"))
        .env("ERRAND_URL", &base)
        .env("ERRAND_ENQUEUE_TOKEN", "enq-compose")
        .env("ERRAND_WORKER_TOKEN", "wrk-compose")
        .env("OUTBOX", &outbox)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let app = env.spawn_command(app, "app.py");
    app.wait_for_line("app: listening").await;

    let http = crate::common::http_client();
    let url = format!("http://127.0.0.1:{port}");
    let signup = |email: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .post(format!("{url}/signup"))
                .json(&json!({"email": email}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()
        }
    };
    let first = signup("ada@example.com").await;
    let id = first["job"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{first}"));
    assert_eq!(first["errand_status"], 201, "{first}");
    // The same address again while its welcome is pending: Errand's unique key gives back
    // the same job (200, not inserted). It may already have run, and then a new one is fine.
    let again = signup("ada@example.com").await;
    let again_id = again["job"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{again}"));
    if again["errand_status"] == 200 {
        assert_eq!(again_id, id, "{again}");
        assert_eq!(again["job"]["inserted"], false, "{again}");
    }

    // The app's remote worker claims it from the `welcome` queue and completes it.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let job = loop {
        let job: Value = http
            .get(format!("{url}/signup/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let job = job.get("job").cloned().unwrap_or(job);
        if job["status"] == "succeeded" || job["status"] == "failed" {
            break job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{job}\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}\n{}", env.logs());
    assert_eq!(job["queue"], "welcome", "{job}");
    assert_eq!(job["max_attempts"], 5, "the task's settings apply: {job}");
    assert_eq!(
        job["result"],
        json!({"sent_to": "ada@example.com"}),
        "{job}"
    );
    // One welcome sent per job: one when the second signup was given the pending job back,
    // two when the first had already run.
    let expected = if again_id == id {
        1
    } else {
        env.wait_job(again_id, "succeeded", |j| {
            j.status == errand::JobStatus::Succeeded
        })
        .await;
        2
    };
    let sent = std::fs::read_to_string(&outbox).unwrap();
    assert_eq!(sent.lines().count(), expected, "{sent}");
    assert!(sent.contains("ada@example.com"), "{sent}");

    // The enqueue token may enqueue and read, not operate.
    let denied = http
        .post(format!("{base}/v1/jobs/{id}/retry"))
        .bearer_auth("enq-compose")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);

    // SIGTERM: the app stops its server and its worker, and exits 0.
    let mut app = app;
    app.signal(libc::SIGTERM);
    let status = tokio::time::timeout(PATIENCE, app.exit()).await.unwrap();
    assert!(status.success(), "app.py: {status:?}\n{}", env.logs());
    serve.stop().await;
}
