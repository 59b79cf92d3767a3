//! Small edges where bad input used to get through, on the CLI and the HTTP API alike: a
//! pause of a queue nobody declared, a duration with a repeated unit, a signed job id; and
//! the emergency-stop warning naming where `workers.enabled` was set.

use crate::common::{self, e2e, Env};
use serde_json::{json, Value};

e2e!(
    an_unknown_queue_is_refused_unless_forced,
    durations_and_ids_are_read_strictly,
    the_workers_enabled_warning_names_where_it_was_set,
);

fn base_url(line: &str) -> String {
    let start = line.find("http://").expect("a URL in the line");
    line[start..].split_whitespace().next().unwrap().to_string()
}

async fn an_unknown_queue_is_refused_unless_forced(env: Env) {
    env.config("[queues.default]\nconcurrency = 1\n[queues.email]\nconcurrency = 1\n");
    common::ok(&env.run(&["migrate"]).await);
    common::enqueued_id(&env.run(&["enqueue", "k", "--queue", "reports"]).await);
    env.expect_bad_input(&[(
        &["queues", "pause", "nosuch"],
        "queue `nosuch` is unknown: the configuration does not declare it and it has no jobs or settings (known queues: default, email, reports); nothing was changed. Pass --force",
    ), (
        // Every name is checked before any is paused.
        &["queues", "pause", "reports", "nosuch"],
        "queue `nosuch` is unknown",
    )])
    .await;
    let client = env.client().await;
    assert!(
        client.queues().await.unwrap().is_empty(),
        "a refused pause changed nothing"
    );
    // Declared (no jobs yet), seen (has jobs), or forced: paused.
    for args in [
        &["queues", "pause", "email"][..],
        &["queues", "pause", "reports"],
        &["queues", "pause", "nosuch", "--force"],
    ] {
        common::ok(&env.run(args).await);
    }
    let paused: Vec<String> = client
        .queues()
        .await
        .unwrap()
        .into_iter()
        .filter(|q| q.paused_at.is_some())
        .map(|q| q.name)
        .collect();
    assert_eq!(paused, ["email", "nosuch", "reports"]);

    // The same rule over HTTP: 404 without force=true.
    let serve = env.spawn(&["serve"], &[]);
    let base = base_url(&serve.wait_for_line("HTTP API listening on").await);
    let http = crate::common::http_client();
    let r = http
        .post(format!("{base}/v1/queues/typo/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("queue `typo` is unknown"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("force=true"),
        "{body}"
    );
    assert!(!client
        .queues()
        .await
        .unwrap()
        .iter()
        .any(|q| q.name == "typo"));
    for path in [
        "/v1/queues/default/pause",
        "/v1/queues/typo/pause?force=true",
        "/v1/queues/typo/resume",
    ] {
        let r = http.post(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
    }
    serve.stop().await;
}

async fn durations_and_ids_are_read_strictly(env: Env) {
    common::ok(&env.run(&["migrate"]).await);
    env.expect_bad_input(&[
        (
            &["enqueue", "k", "--delay", "1s1s"],
            "--delay: invalid duration `1s1s`: the unit `s` appears twice",
        ),
        (&["enqueue", "k", "--delay", "30s1m"], "`m` comes after `s`"),
        (&["jobs", "show", "+1"], "`+1` is not a job id"),
    ])
    .await;
    let id = common::enqueued_id(&env.run(&["enqueue", "k", "--delay", "1m30s"]).await);
    let serve = env.spawn(&["serve"], &[]);
    let base = base_url(&serve.wait_for_line("HTTP API listening on").await);
    let http = crate::common::http_client();
    let r = http
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"kind": "k", "delay": "1s1s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "delay", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("appears twice"),
        "{body}"
    );
    for raw in ["+1", "%2B1", "+0001"] {
        let r = http
            .get(format!("{base}/v1/jobs/{raw}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "/v1/jobs/{raw}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["field"], "id", "{body}");
    }
    let r = http
        .get(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        env.all_jobs().await.len(),
        1,
        "the refused enqueues wrote nothing"
    );
    serve.stop().await;
}

async fn the_workers_enabled_warning_names_where_it_was_set(env: Env) {
    env.config("[workers]\nenabled = false\n[tasks.k]\ncommand = [\"true\"]\n");
    common::ok(&env.run(&["migrate"]).await);
    let serve = env.spawn(&["serve"], &[]);
    let line = serve.wait_for_line("not claiming jobs").await;
    assert!(
        line.contains("workers.enabled = false in errand.toml"),
        "{line}"
    );
    assert!(!line.contains("ERRAND_WORKERS_ENABLED"), "{line}");
    serve.stop().await;
    env.config("[tasks.k]\ncommand = [\"true\"]\n");
    let serve = env.spawn(&["serve"], &[("ERRAND_WORKERS_ENABLED", "false")]);
    let line = serve.wait_for_line("not claiming jobs").await;
    assert!(line.contains("ERRAND_WORKERS_ENABLED=false"), "{line}");
    serve.stop().await;
}
