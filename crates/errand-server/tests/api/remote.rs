//! The remote-worker protocol on both backends: claim with a lease, long-poll, heartbeat,
//! complete, fail (retry-after, permanent, backoff), stale holders refused, cancel, progress.

use crate::common::start;
use chrono::{DateTime, Utc};
use errand::JobStatus;
use errand_store_tests::Harness;
use serde_json::json;
use std::time::Duration;

errand_store_tests::both_backends!(
    claim_heartbeat_and_complete,
    fail_with_retry_after_permanent_and_backoff,
    long_poll_claim_wakes_on_enqueue,
    stale_lease_holders_are_refused,
    cancel_reaches_a_remote_worker,
    progress_is_reported_by_the_holder_and_redacted_for_readers,
);

async fn claim_heartbeat_and_complete(h: Harness) {
    let api = start(&h, true).await;
    let worker = api.as_token(Some("tok-worker"));
    for i in 0..3 {
        api.enqueue(
            json!({"kind": "resize", "args": {"i": i, "api_token": "t-1"}, "timeout": "1m"}),
        )
        .await;
    }
    let claim = worker
        .post(
            "/v1/worker/claim",
            json!({"worker_id": "py-1", "queues": ["default"], "limit": 2, "lease": "30s"}),
        )
        .await
        .expect(200);
    let jobs = claim["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2);
    for j in &jobs {
        assert_eq!(j["attempt"], 1);
        assert_eq!(j["kind"], "resize");
        assert_eq!(j["timeout_ms"], 60_000);
        assert_eq!(
            j["args"]["api_token"], "t-1",
            "the worker gets the real arguments"
        );
        let lease: DateTime<Utc> = serde_json::from_value(j["lease_expires_at"].clone()).unwrap();
        assert!(lease > h.now());
    }
    let (id, other) = (
        jobs[0]["id"].as_i64().unwrap(),
        jobs[1]["id"].as_i64().unwrap(),
    );
    let beat = worker
        .post("/v1/worker/heartbeat", json!({"worker_id": "py-1", "jobs": [{"id": id, "attempt": 1}, {"id": other, "attempt": 1}], "lease": "1m"}))
        .await
        .expect(200);
    assert_eq!(
        beat["jobs"],
        json!([{"id": id, "state": "held"}, {"id": other, "state": "held"}])
    );

    let ok = worker
        .post(
            &format!("/v1/worker/jobs/{id}/complete"),
            json!({"worker_id": "py-1", "attempt": 1, "result": {"resized": true}}),
        )
        .await
        .expect(200);
    assert_eq!(ok, json!({"ok": true}));
    let job = api.client.job(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.result, Some(json!({"resized": true})));
    // Twice: the lease is gone.
    let e = worker
        .post(
            &format!("/v1/worker/jobs/{id}/complete"),
            json!({"worker_id": "py-1", "attempt": 1}),
        )
        .await
        .expect_error(409);
    assert_eq!(e["code"], "stale");
    let beat = worker
        .post(
            "/v1/worker/heartbeat",
            json!({"worker_id": "py-1", "jobs": [{"id": id, "attempt": 1}]}),
        )
        .await
        .expect(200);
    assert_eq!(beat["jobs"], json!([{"id": id, "state": "lost"}]));
    worker
        .post(
            "/v1/worker/jobs/999999/complete",
            json!({"worker_id": "py-1", "attempt": 1}),
        )
        .await
        .expect_error(404);
    // The worker is in the registry.
    let workers = worker.get("/v1/workers").await.expect(200);
    assert!(workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["id"] == "py-1"));
}

async fn fail_with_retry_after_permanent_and_backoff(h: Harness) {
    let api = start(&h, false).await;
    let a = api.enqueue(json!({"kind": "a", "queue": "qa"})).await;
    let b = api.enqueue(json!({"kind": "b", "queue": "qb"})).await;
    let c = api
        .enqueue(json!({"kind": "c", "queue": "qc", "max_attempts": 1}))
        .await;
    let d = api.enqueue(json!({"kind": "d", "queue": "qd"})).await;
    let claim = |q: &'static str| {
        let api = &api;
        async move {
            let r = api
                .post("/v1/worker/claim", json!({"worker_id": "w", "queues": [q]}))
                .await
                .expect(200);
            r["jobs"][0]["id"].as_i64().expect("a job")
        }
    };
    let fail = |id: i64, body: serde_json::Value| {
        let api = &api;
        async move {
            let mut body = body;
            body["worker_id"] = json!("w");
            body["attempt"] = json!(1);
            api.post(&format!("/v1/worker/jobs/{id}/fail"), body).await
        }
    };
    assert_eq!(claim("qa").await, a);
    let r = fail(a, json!({"error": "rate limited", "retry_after": "1h"}))
        .await
        .expect(200);
    assert_eq!(r["job"]["status"], "queued");
    assert_eq!(
        r["job"]["derived"], "retrying",
        "an attempted job waiting out its delay is retrying"
    );
    let run_at: DateTime<Utc> = serde_json::from_value(r["job"]["run_at"].clone()).unwrap();
    assert_eq!(
        run_at,
        h.now() + chrono::Duration::hours(1),
        "retry_after wins over the backoff"
    );
    assert_eq!(r["job"]["last_error"], "rate limited");

    assert_eq!(claim("qb").await, b);
    let r = fail(b, json!({"error": "bad input", "permanent": true}))
        .await
        .expect(200);
    assert_eq!(r["job"]["status"], "failed");

    assert_eq!(claim("qc").await, c);
    let r = fail(c, json!({"error": "boom"})).await.expect(200);
    assert_eq!(r["job"]["status"], "failed", "no attempts left");

    assert_eq!(claim("qd").await, d);
    fail(
        d,
        json!({"error": "x", "permanent": true, "retry_after": "1s"}),
    )
    .await
    .expect_error(400);
    let r = fail(d, json!({"error": "flaky"})).await.expect(200);
    assert_eq!(r["job"]["status"], "queued", "retried with backoff");
    let events = api.client.job_with_events(d).await.unwrap().1;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message.as_deref(), Some("flaky"));
    // Failing again: the lease is gone.
    fail(d, json!({"error": "again"})).await.expect_error(409);
}

async fn long_poll_claim_wakes_on_enqueue(h: Harness) {
    let api = start(&h, false).await;
    // Nothing ready and no wait: an empty answer at once.
    let r = api
        .post(
            "/v1/worker/claim",
            json!({"worker_id": "w", "queues": ["lp"], "wait": "0s"}),
        )
        .await
        .expect(200);
    assert_eq!(r["jobs"], json!([]));
    let waiting = {
        let api = api.as_token(None);
        tokio::spawn(async move {
            api.post(
                "/v1/worker/claim",
                json!({"worker_id": "w", "queues": ["other", "lp"], "wait": "20s"}),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = api.enqueue(json!({"kind": "late", "queue": "lp"})).await;
    let r = waiting.await.unwrap().expect(200);
    assert_eq!(
        r["jobs"][0]["id"], id,
        "the waiting claim got the job enqueued after it started"
    );
    let e = api
        .post(
            "/v1/worker/claim",
            json!({"worker_id": "w", "queues": ["lp"], "wait": "10m"}),
        )
        .await
        .expect_error(400);
    assert_eq!(e["field"], "wait");
    // A worker's id, host and version are counted in characters, as the document's
    // `maxLength` counts them: 200 two-byte characters are fine, 201 are not.
    let long = "é".repeat(200);
    api.post(
        "/v1/worker/claim",
        json!({"worker_id": long, "queues": ["lp"], "host": long, "version": long}),
    )
    .await
    .expect(200);
    for field in ["worker_id", "host", "version"] {
        let mut body = json!({"worker_id": "w", "queues": ["lp"]});
        body[field] = json!("é".repeat(201));
        let e = api.post("/v1/worker/claim", body).await.expect_error(400);
        assert_eq!(e["field"], field);
    }
}

async fn stale_lease_holders_are_refused(h: Harness) {
    let api = start(&h, false).await;
    let id = api.enqueue(json!({"kind": "slow"})).await;
    let r = api
        .post(
            "/v1/worker/claim",
            json!({"worker_id": "w1", "queues": ["default"], "lease": "1s"}),
        )
        .await
        .expect(200);
    assert_eq!(r["jobs"][0]["id"], id);
    // w1 goes quiet past its lease; the rescuer requeues the job and w2 takes it.
    h.clock.advance(Duration::from_secs(5));
    assert_eq!(api.client.rescue_stuck().await.unwrap(), 1);
    let r = api
        .post(
            "/v1/worker/claim",
            json!({"worker_id": "w2", "queues": ["default"]}),
        )
        .await
        .expect(200);
    assert_eq!(r["jobs"][0]["attempt"], 2);
    for (path, body) in [
        (
            "complete",
            json!({"worker_id": "w1", "attempt": 1, "result": {"late": true}}),
        ),
        (
            "fail",
            json!({"worker_id": "w1", "attempt": 1, "error": "late"}),
        ),
        ("complete", json!({"worker_id": "w1", "attempt": 2})),
    ] {
        let e = api
            .post(&format!("/v1/worker/jobs/{id}/{path}"), body)
            .await
            .expect_error(409);
        assert_eq!(e["code"], "stale");
    }
    let job = api.client.job(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(
        job.worker_id.as_deref(),
        Some("w2"),
        "the stale holder changed nothing"
    );
    api.post(
        &format!("/v1/worker/jobs/{id}/complete"),
        json!({"worker_id": "w2", "attempt": 2}),
    )
    .await
    .expect(200);
}

async fn cancel_reaches_a_remote_worker(h: Harness) {
    let api = start(&h, false).await;
    let id = api.enqueue(json!({"kind": "long"})).await;
    api.post(
        "/v1/worker/claim",
        json!({"worker_id": "w", "queues": ["default"]}),
    )
    .await
    .expect(200);
    let r = api
        .post_empty(&format!("/v1/jobs/{id}/cancel"))
        .await
        .expect(200);
    assert_eq!(r["job"]["status"], "running");
    assert!(r["job"]["cancel_requested_at"].is_string());
    let beat = api
        .post(
            "/v1/worker/heartbeat",
            json!({"worker_id": "w", "jobs": [{"id": id, "attempt": 1}]}),
        )
        .await
        .expect(200);
    assert_eq!(beat["jobs"][0]["state"], "cancel_requested");
    let r = api
        .post(
            &format!("/v1/worker/jobs/{id}/fail"),
            json!({"worker_id": "w", "attempt": 1, "error": "stopped on request"}),
        )
        .await
        .expect(200);
    assert_eq!(r["job"]["status"], "cancelled");
}

async fn progress_is_reported_by_the_holder_and_redacted_for_readers(h: Harness) {
    let api = start(&h, true).await;
    let worker = api.as_token(Some("tok-worker"));
    let id = api.enqueue(json!({"kind": "import"})).await;
    let r = worker
        .post(
            "/v1/worker/claim",
            json!({"worker_id": "py-1", "queues": ["default"]}),
        )
        .await
        .expect(200);
    assert_eq!(r["jobs"][0]["id"], id);
    let path = format!("/v1/worker/jobs/{id}/progress");
    let report = json!({"done": 40, "total": 100, "message": "rows", "db_password": "pw-9"});
    let ok = worker
        .post(
            &path,
            json!({"worker_id": "py-1", "attempt": 1, "progress": report}),
        )
        .await
        .expect(200);
    assert_eq!(ok, json!({"ok": true}));
    assert_eq!(
        api.client.job(id).await.unwrap().unwrap().progress,
        Some(report.clone()),
        "stored as reported"
    );
    // Readers see it redacted as a result is; admin sees it whole.
    let seen = api
        .as_token(Some("tok-read"))
        .get(&format!("/v1/jobs/{id}"))
        .await
        .expect(200);
    assert_eq!(
        seen["job"]["progress"],
        json!({"done": 40, "total": 100, "message": "rows", "db_password": "[redacted]"})
    );
    assert!(seen["job"]["progress_at"].is_string());
    let seen = api
        .as_token(Some("tok-admin"))
        .get(&format!("/v1/jobs/{id}"))
        .await
        .expect(200);
    assert_eq!(seen["job"]["progress"], report);

    // Refused whole: beyond the limit, missing, another holder, no such job.
    let big = "x".repeat(errand::MAX_PROGRESS_BYTES);
    let e = worker
        .post(
            &path,
            json!({"worker_id": "py-1", "attempt": 1, "progress": big}),
        )
        .await
        .expect_error(400);
    assert_eq!(e["field"], "progress");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("the limit is 8192 bytes (8 KiB)"),
        "{message}"
    );
    let e = worker
        .post(&path, json!({"worker_id": "py-1", "attempt": 1}))
        .await
        .expect_error(400);
    assert!(e["message"].as_str().unwrap().contains("progress"), "{e}");
    let e = worker
        .post(
            &path,
            json!({"worker_id": "py-2", "attempt": 1, "progress": 1}),
        )
        .await
        .expect_error(409);
    assert_eq!(e["code"], "stale");
    worker
        .post(
            "/v1/worker/jobs/999999/progress",
            json!({"worker_id": "py-1", "attempt": 1, "progress": 1}),
        )
        .await
        .expect_error(404);
    assert_eq!(
        api.client.job(id).await.unwrap().unwrap().progress,
        Some(report.clone()),
        "nothing refused was written"
    );

    // After the job finished: stale, and the last report stays.
    worker
        .post(
            &format!("/v1/worker/jobs/{id}/complete"),
            json!({"worker_id": "py-1", "attempt": 1}),
        )
        .await
        .expect(200);
    let e = worker
        .post(
            &path,
            json!({"worker_id": "py-1", "attempt": 1, "progress": 2}),
        )
        .await
        .expect_error(409);
    assert_eq!(e["code"], "stale");
    assert_eq!(
        api.client.job(id).await.unwrap().unwrap().progress,
        Some(report)
    );
}
