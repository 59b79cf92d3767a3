//! The rules that must hold whichever way a job arrives, through the real binary: task
//! settings on the HTTP path (the README's curl example), unknown kinds refused, remote
//! workers' jobs rescued by a server with no local task, retention in `serve`, and a
//! command's secrets kept out of the stored error and the log.

use crate::common::{e2e, enqueued_id, Env, PATIENCE};
use errand::JobStatus;
use serde_json::{json, Value};
use std::time::Duration;

e2e!(
    a_job_enqueued_over_http_takes_its_task_queue_and_runs,
    unknown_kinds_are_refused_with_a_suggestion,
    a_server_without_local_tasks_rescues_remote_workers_jobs,
    serve_removes_finished_jobs_past_their_retention,
    a_command_that_prints_its_secret_args_leaks_nothing,
);

/// The API's base URL, from `serve`'s log line.
fn base_url(line: &str) -> String {
    let start = line.find("http://").expect("a URL in the line");
    line[start..].split_whitespace().next().unwrap().to_string()
}

/// The README's example: `send_email` configured on queue `email`, enqueued with curl-like
/// JSON that names no queue. It must land in `email` and run.
async fn a_job_enqueued_over_http_takes_its_task_queue_and_runs(env: Env) {
    env.config(
        "[workers]\npoll_interval = \"100ms\"\n[queues.email]\nconcurrency = 2\n\
         [tasks.send_email]\ncommand = [\"true\"]\nqueue = \"email\"\nmax_attempts = 9\ntimeout = \"2m\"\n",
    );
    let serve = env.spawn(&["serve"], &[]);
    let base = base_url(&serve.wait_for_line("HTTP API listening on").await);
    let r = crate::common::http_client()
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"kind": "send_email", "args": {"to": "ada@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let job = env
        .wait_job(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    assert_eq!(
        (job.queue.as_str(), job.max_attempts, job.timeout_ms),
        ("email", 9, Some(120_000))
    );
    serve.stop().await;
}

async fn unknown_kinds_are_refused_with_a_suggestion(env: Env) {
    env.config(
        "[tasks.send_email]\ncommand = [\"true\"]\n[tasks.embed]\nremote = true\nqueue = \"gpu\"\n",
    );
    env.expect_bad_input(&[(
        &["enqueue", "send_emial"],
        "`send_emial` is not a configured task (did you mean `send_email`?)",
    )])
    .await;
    // Nothing was written: not even the database file.
    if !env.url.contains("://") {
        assert!(
            !std::path::Path::new(&env.url).exists(),
            "no database created"
        );
    }
    // A remote kind is known, and takes its queue.
    let id = enqueued_id(&env.run(&["enqueue", "embed"]).await);
    assert_eq!(env.job(id).await.queue, "gpu");
}

/// `serve` with only a remote task: a remote worker claims a job with a short lease and
/// vanishes. The server's maintenance rescues the job though no local pool runs.
async fn a_server_without_local_tasks_rescues_remote_workers_jobs(env: Env) {
    env.config("[workers]\nlease = \"1s\"\n[tasks.embed]\nremote = true\nqueue = \"gpu\"\n");
    let id = enqueued_id(&env.run(&["enqueue", "embed"]).await);
    let serve = env.spawn(&["serve"], &[]);
    let base = base_url(&serve.wait_for_line("HTTP API listening on").await);
    let r: Value = crate::common::http_client()
        .post(format!("{base}/v1/worker/claim"))
        .json(&json!({"worker_id": "gone", "queues": ["gpu"], "lease": "1s"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["jobs"][0]["id"], json!(id));
    let job = env
        .wait_job(id, "rescued", |j| {
            j.status == JobStatus::Queued && j.attempt == 1
        })
        .await;
    assert!(job.worker_id.is_none() || job.lease_expires_at.is_none());
    let log = serve.stop().await;
    assert!(log.contains("rescued a job whose lease expired"), "{log}");
}

async fn serve_removes_finished_jobs_past_their_retention(env: Env) {
    env.config(
        "[workers]\npoll_interval = \"100ms\"\n[tasks.t]\ncommand = [\"true\"]\n\
         [retention]\nsucceeded = \"1s\"\ninterval = \"200ms\"\n",
    );
    let keep = enqueued_id(&env.run(&["enqueue", "t", "--delay", "1h"]).await);
    let gone = enqueued_id(&env.run(&["enqueue", "t"]).await);
    let serve = env.spawn(&["serve"], &[]);
    env.wait_job(gone, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while env.client().await.job(gone).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {gone} was never removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        env.job(keep).await.status,
        JobStatus::Queued,
        "live jobs are never removed"
    );
    let log = serve.stop().await;
    assert!(
        log.contains("retention: removed old finished jobs"),
        "{log}"
    );
}

/// A program that prints its args (with a password) to stderr and fails: the stored error
/// and its event hold `[redacted]` instead, and `serve`'s log holds neither the secret nor
/// the program's output.
async fn a_command_that_prints_its_secret_args_leaks_nothing(env: Env) {
    let script = env.script(
        "login.sh",
        "args=$(cat)\necho \"cannot log in with $args (marker-stderr)\" >&2\nexit 1",
    );
    env.config(&format!(
        "[workers]\npoll_interval = \"100ms\"\n[tasks.login]\ncommand = [\"sh\", \"{script}\"]\nmax_attempts = 1\n"
    ));
    let out = env
        .run(&[
            "enqueue",
            "login",
            "--args",
            r#"{"user":"ada","password":"hunter2-very-secret"}"#,
        ])
        .await;
    let id = enqueued_id(&out);
    let serve = env.spawn(&["serve"], &[]);
    let job = env
        .wait_job(id, "failed", |j| j.status == JobStatus::Failed)
        .await;
    let error = job.last_error.unwrap();
    assert!(error.contains("marker-stderr"), "{error}");
    assert!(
        !error.contains("hunter2-very-secret") && error.contains("[redacted]"),
        "{error}"
    );
    for e in env.events(id).await {
        let m = e.message.unwrap_or_default();
        assert!(!m.contains("hunter2-very-secret"), "{m}");
    }
    let log = serve.stop().await;
    assert!(
        !log.contains("hunter2-very-secret"),
        "the secret reached the log:\n{log}"
    );
    assert!(
        !log.contains("marker-stderr"),
        "the program's output reached the log:\n{log}"
    );
}
