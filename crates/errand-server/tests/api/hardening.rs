//! Every HTTP path into a job goes through the library's one rule for it: task settings on
//! enqueue (single and batch) and triggers, unknown kinds refused with 422, NUL characters
//! refused with a 400 naming the field, and remote workers' outcomes recorded exactly as the
//! in-process executor records them.

use crate::common::*;
use errand::{Backoff, TaskCatalog, TaskSettings};
use errand_store_tests::Harness;
use serde_json::json;
use std::time::Duration;

errand_store_tests::both_backends!(
    http_enqueue_takes_the_task_settings,
    unknown_kinds_are_refused_with_a_suggestion,
    nul_characters_are_refused_naming_the_field,
    remote_outcomes_are_recorded_like_local_ones,
    nul_in_a_filter_is_a_400,
);

fn catalog() -> TaskCatalog {
    let mut tasks = TaskCatalog::new();
    tasks.insert(
        "send_email",
        TaskSettings {
            queue: Some("email".into()),
            max_attempts: Some(7),
            timeout: Some(Duration::from_secs(90)),
            ..TaskSettings::default()
        },
    );
    tasks.insert(
        "embed",
        TaskSettings {
            queue: Some("gpu".into()),
            remote: true,
            backoff: Some(Backoff {
                base: Duration::from_secs(600),
                cap: Duration::from_secs(600),
                jitter: 0.0,
            }),
            ..TaskSettings::default()
        },
    );
    tasks
}

async fn http_enqueue_takes_the_task_settings(h: Harness) {
    let api = start_with_tasks(&h, catalog()).await;
    let id = api
        .enqueue(json!({"kind": "send_email", "args": {"to": "a@b"}}))
        .await;
    let j = api.client.job(id).await.unwrap().unwrap();
    assert_eq!(
        (j.queue.as_str(), j.max_attempts, j.timeout_ms),
        ("email", 7, Some(90_000))
    );
    let r = api
        .post("/v1/jobs/batch", json!({"jobs": [{"kind": "send_email"}, {"kind": "send_email", "queue": "urgent", "max_attempts": 2}]}))
        .await
        .expect(200);
    let first = api
        .client
        .job(r["results"][0]["id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    let second = api
        .client
        .job(r["results"][1]["id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.queue.as_str(), first.max_attempts), ("email", 7));
    assert_eq!(
        (second.queue.as_str(), second.max_attempts),
        ("urgent", 2),
        "the caller's values win"
    );
    // A remote kind is a known kind, with its own queue.
    let id = api.enqueue(json!({"kind": "embed"})).await;
    assert_eq!(api.client.job(id).await.unwrap().unwrap().queue, "gpu");
}

async fn unknown_kinds_are_refused_with_a_suggestion(h: Harness) {
    let api = start_with_tasks(&h, catalog()).await;
    let e = api
        .post("/v1/jobs", json!({"kind": "send_emial"}))
        .await
        .expect_error(422);
    assert_eq!(e["code"], "unknown_kind");
    assert_eq!(e["field"], "kind");
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("did you mean `send_email`?") && m.contains("remote = true"),
        "{m}"
    );
    let e = api
        .post(
            "/v1/jobs/batch",
            json!({"jobs": [{"kind": "send_email"}, {"kind": "nope"}]}),
        )
        .await
        .expect_error(422);
    assert_eq!(e["field"], "jobs[1].kind");
    assert!(api.all_jobs().await.is_empty(), "nothing written");
}

async fn nul_characters_are_refused_naming_the_field(h: Harness) {
    let api = start(&h, false).await;
    for (body, field) in [
        (json!({"kind": "k", "args": {"name": "a\u{0}b"}}), "args"),
        (json!({"kind": "k", "args": {"k\u{0}": 1}}), "args"),
        (json!({"kind": "k", "unique_key": "u\u{0}"}), "unique_key"),
        (
            json!({"kind": "k", "reference": {"type": "upload", "id": "1\u{0}"}}),
            "reference.id",
        ),
        (json!({"kind": "k\u{0}"}), "kind"),
        (json!({"kind": "k", "queue": "q\u{0}"}), "queue"),
        (json!({"kind": "k\u{202e}gnp"}), "kind"),
    ] {
        let e = api.post("/v1/jobs", body.clone()).await.expect_error(400);
        assert_eq!(e["field"], field, "{body}: {e}");
    }
    let e = api
        .post(
            "/v1/worker/claim",
            json!({"worker_id": "w", "queues": ["default"], "host": "h\u{0}"}),
        )
        .await
        .expect_error(400);
    assert_eq!(e["field"], "host");
    assert!(api.all_jobs().await.is_empty(), "nothing written");
}

async fn remote_outcomes_are_recorded_like_local_ones(h: Harness) {
    let api = start_with_tasks(&h, catalog()).await;
    let a = api
        .enqueue(json!({"kind": "embed", "args": {"api_key": "sk-live-1234", "doc": 1}}))
        .await;
    let b = api
        .enqueue(json!({"kind": "embed", "args": {"doc": 2}}))
        .await;
    let r = api
        .post(
            "/v1/worker/claim",
            json!({"worker_id": "w", "queues": ["gpu"], "limit": 2}),
        )
        .await
        .expect(200);
    assert_eq!(r["jobs"].as_array().unwrap().len(), 2);
    // A result with a NUL and the job's own secret echoed back: stored, cleaned, noted.
    api.post(
        &format!("/v1/worker/jobs/{a}/complete"),
        json!({"worker_id": "w", "attempt": 1, "result": {"s": "x\u{0}", "echo": "key sk-live-1234"}}),
    )
    .await
    .expect(200);
    let (job, events) = api.client.job_with_events(a).await.unwrap();
    assert_eq!(
        job.result,
        Some(json!({"s": "x\u{FFFD}", "echo": "key [redacted]"}))
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, errand::EventKind::Note);
    // A failure waits the kind's backoff (10 minutes), not the default's 5 s.
    let r = api
        .post(
            &format!("/v1/worker/jobs/{b}/fail"),
            json!({"worker_id": "w", "attempt": 1, "error": "oom\u{0}"}),
        )
        .await
        .expect(200);
    assert_eq!(r["job"]["status"], "queued");
    let job = api.client.job(b).await.unwrap().unwrap();
    assert_eq!((job.run_at - job.updated_at).num_seconds(), 600);
    assert!(job
        .last_error
        .as_deref()
        .unwrap()
        .starts_with("oom\u{FFFD}"));
}

/// Filters with a NUL are refused, naming the parameter, on both backends.
async fn nul_in_a_filter_is_a_400(h: Harness) {
    let api = start(&h, false).await;
    for (query, field) in [
        ("kind=a%00b", "kind"),
        ("queue=q%00", "queue"),
        ("reference=t:1%00", "reference"),
    ] {
        let e = api
            .get(&format!("/v1/jobs?{query}"))
            .await
            .expect_error(400);
        assert!(
            e["field"].as_str().unwrap().starts_with(field),
            "{query}: {e}"
        );
    }
    // The throughput figures and the bulk retry filter too.
    for (query, field) in [("kind=a%00b", "kind"), ("queue=q%00", "queue")] {
        let e = api
            .get(&format!("/v1/stats/throughput?{query}"))
            .await
            .expect_error(400);
        assert_eq!(e["field"], field, "{query}: {e}");
    }
    for body in [json!({"queue": "q\u{0}"}), json!({"kind": "k\u{0}"})] {
        let e = api
            .post("/v1/jobs/retry", body.clone())
            .await
            .expect_error(400);
        assert!(
            e["message"].as_str().unwrap().contains("NUL"),
            "{body}: {e}"
        );
    }
}
