//! The HTTP API of the real `errand serve`: a remote worker written in Python (standard
//! library only, `examples/remote-worker/worker.py`) processes jobs enqueued over HTTP, and
//! `serve` refuses a public address without a token.

use crate::common::{e2e, Env, PATIENCE};
use errand::{JobList, JobStatus};
use serde_json::{json, Value};
use std::process::Stdio;

e2e!(
    a_python_remote_worker_processes_jobs_over_the_api,
    serve_refuses_a_public_address_without_a_token
);

const CONFIG: &str = r#"
[[server.tokens]]
token = "adm-e2e-token"
role = "admin"
[[server.tokens]]
token = "wrk-e2e-token"
role = "worker"
"#;

/// The API's base URL, from `serve`'s log line.
fn base_url(line: &str) -> String {
    let start = line.find("http://").expect("a URL in the line");
    line[start..].split_whitespace().next().unwrap().to_string()
}

async fn a_python_remote_worker_processes_jobs_over_the_api(env: Env) {
    env.config(CONFIG);
    env.run(&["migrate"]).await;
    let serve = env.spawn(&["serve"], &[]);
    let base = base_url(&serve.wait_for_line("HTTP API listening on").await);
    let http = crate::common::http_client();
    let post = |path: &str, body: Value, token: &str| {
        http.post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    // The worker role may not enqueue; admin may.
    let denied = post("/v1/jobs", json!({"kind": "add"}), "wrk-e2e-token")
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let jobs: Vec<Value> = (0..12)
        .map(|i| json!({"kind": "add", "args": {"a": i, "b": 100}}))
        .chain([json!({"kind": "always_fails", "args": {"why": "testing"}})])
        .collect();
    let r = post("/v1/jobs/batch", json!({"jobs": jobs}), "adm-e2e-token")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let results: Value = r.json().await.unwrap();
    assert_eq!(results["results"].as_array().unwrap().len(), 13);

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/remote-worker/worker.py"
    );
    let mut worker = tokio::process::Command::new("python3");
    worker
        .args([
            script,
            "--url",
            &base,
            "--queues",
            "default",
            "--limit",
            "4",
            "--wait",
            "1",
            "--exit-when-idle",
        ])
        .env("ERRAND_TOKEN", "wrk-e2e-token")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(PATIENCE, worker.output())
        .await
        .expect("the Python worker finishes")
        .expect("python3 runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "worker.py failed: {log}\n{}",
        env.logs()
    );

    let all = env
        .client()
        .await
        .list(&JobList {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs;
    assert_eq!(all.len(), 13);
    for job in &all {
        if job.kind == "add" {
            assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}\n{log}");
            let a = job.args.to_value()["a"].as_i64().unwrap();
            assert_eq!(job.result, Some(json!({"sum": a + 100})));
            assert!(job.worker_id.as_deref().unwrap().starts_with("py-"));
        } else {
            assert_eq!(job.status, JobStatus::Failed, "{job:#?}");
            assert_eq!(job.attempt, 1, "a permanent failure is not retried");
            assert!(job
                .last_error
                .as_deref()
                .unwrap()
                .contains("always fails: testing"));
        }
    }
    // The Python worker is in the registry, described as it said.
    let workers: Value = http
        .get(format!("{base}/v1/workers"))
        .bearer_auth("wrk-e2e-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        workers["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["version"] == "worker.py"),
        "{workers}"
    );
    serve.stop().await;
}

async fn serve_refuses_a_public_address_without_a_token(env: Env) {
    let mut cmd = env.errand(&["serve"]);
    cmd.env("ERRAND_SERVER_LISTEN", "0.0.0.0:0");
    let out = tokio::time::timeout(PATIENCE, cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr
            .contains("server.listen: refusing to serve the HTTP API on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
    // With a token it starts.
    let serve = env.spawn(
        &["serve"],
        &[
            ("ERRAND_SERVER_LISTEN", "0.0.0.0:0"),
            ("ERRAND_SERVER_TOKENS", "read:r-e2e-token"),
        ],
    );
    let base = base_url(&serve.wait_for_line("HTTP API listening on").await);
    let base = base.replace("0.0.0.0", "127.0.0.1");
    let anonymous = crate::common::http_client()
        .get(format!("{base}/v1/queues"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let health = crate::common::http_client()
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    serve.stop().await;
}
