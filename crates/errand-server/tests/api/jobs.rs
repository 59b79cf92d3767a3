//! Enqueue, list, get and the operator actions, on both backends.

use crate::common::{start, Api};
use errand::JobStatus;
use errand_store_tests::Harness;
use serde_json::{json, Value};

errand_store_tests::both_backends!(
    enqueue_one_and_a_batch_then_get_with_every_field,
    list_filters_and_cursor_paging,
    cancel_and_retry_one_job,
    bulk_cancel_retry_and_purge,
    queues_pause_resume_and_stats,
    queue_limits_and_concurrency_keys,
);

async fn enqueue_one_and_a_batch_then_get_with_every_field(h: Harness) {
    let api = start(&h, false).await;
    let r = api
        .post(
            "/v1/jobs",
            json!({
                "kind": "send_email", "args": {"to": "ada@example.com"}, "queue": "email",
                "priority": 3, "delay": "1h", "unique_key": "welcome:ada",
                "reference": {"type": "user", "id": 42}, "max_attempts": 5, "timeout": "30s",
            }),
        )
        .await
        .expect(201);
    assert_eq!(r["inserted"], true);
    let id = r["id"].as_i64().unwrap();
    let again = api
        .post(
            "/v1/jobs",
            json!({"kind": "send_email", "unique_key": "welcome:ada"}),
        )
        .await
        .expect(200);
    assert_eq!(again, json!({"id": id, "inserted": false}));

    let got = api.get(&format!("/v1/jobs/{id}")).await.expect(200);
    let job = &got["job"];
    assert_eq!(job["kind"], "send_email");
    assert_eq!(job["queue"], "email");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["derived"], "scheduled");
    assert_eq!(job["priority"], 3);
    assert_eq!(job["max_attempts"], 5);
    assert_eq!(job["timeout_ms"], 30_000);
    assert_eq!(job["reference"], json!({"type": "user", "id": "42"}));
    assert_eq!(job["args"], json!({"to": "ada@example.com"}));
    assert_eq!(got["events"], json!([]));

    let batch = api
        .post(
            "/v1/jobs/batch",
            json!({"jobs": [{"kind": "a"}, {"kind": "b", "args": {"n": 1}}, {"kind": "c", "run_at": "2020-01-01T00:00:00Z"}]}),
        )
        .await
        .expect(200);
    let results = batch["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["inserted"] == true));
    assert_eq!(api.all_jobs().await.len(), 4);

    api.get("/v1/jobs/999999").await.expect_error(404);
    let e = api.get("/v1/jobs/abc").await.expect_error(400);
    assert_eq!(e["field"], "id");
}

async fn list_filters_and_cursor_paging(h: Harness) {
    let api = start(&h, false).await;
    for i in 0..5 {
        api.enqueue(json!({"kind": "ping", "args": {"i": i}})).await;
    }
    let later = api
        .enqueue(json!({"kind": "report", "queue": "slow", "delay": "1h"}))
        .await;
    let refd = api
        .enqueue(json!({"kind": "ingest", "reference": {"type": "file_upload", "id": "7"}}))
        .await;

    let count = |v: &Value| v["jobs"].as_array().unwrap().len();
    let ids = |v: &Value| -> Vec<i64> {
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(count(&api.get("/v1/jobs").await.expect(200)), 7);
    assert_eq!(count(&api.get("/v1/jobs?kind=ping").await.expect(200)), 5);
    assert_eq!(
        ids(&api.get("/v1/jobs?queue=slow").await.expect(200)),
        vec![later]
    );
    assert_eq!(
        ids(&api.get("/v1/jobs?derived=scheduled").await.expect(200)),
        vec![later]
    );
    assert_eq!(
        ids(&api
            .get("/v1/jobs?reference=file_upload:7")
            .await
            .expect(200)),
        vec![refd]
    );
    assert_eq!(
        ids(&api.get("/v1/jobs?reference=file_upload").await.expect(200)),
        vec![refd]
    );
    assert_eq!(
        count(&api.get("/v1/jobs?status=succeeded").await.expect(200)),
        0
    );
    // A union of states, without duplicates (the scheduled job is also queued).
    assert_eq!(
        count(
            &api.get("/v1/jobs?status=queued,scheduled")
                .await
                .expect(200)
        ),
        7
    );
    assert_eq!(
        count(
            &api.get("/v1/jobs?since=1h&until=2999-01-01T00:00:00Z")
                .await
                .expect(200)
        ),
        7
    );
    assert_eq!(
        count(
            &api.get("/v1/jobs?until=2000-01-01T00:00:00Z")
                .await
                .expect(200)
        ),
        0
    );

    // Paging: newest first, three pages of 3, 3, 1, for one state and for a union.
    for filter in ["", "&status=queued,failed"] {
        let mut seen = Vec::new();
        let mut url = format!("/v1/jobs?limit=3{filter}");
        loop {
            let page = api.get(&url).await.expect(200);
            seen.extend(ids(&page));
            match page["next_cursor"].as_i64() {
                Some(c) => url = format!("/v1/jobs?limit=3{filter}&cursor={c}"),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, sorted, "newest first");
        assert_eq!(seen.len(), 7, "every job once ({filter})");
    }
}

async fn cancel_and_retry_one_job(h: Harness) {
    let api = start(&h, false).await;
    let a = api.enqueue(json!({"kind": "a"})).await;
    let c = api
        .post_empty(&format!("/v1/jobs/{a}/cancel"))
        .await
        .expect(200);
    assert_eq!(c["job"]["status"], "cancelled");
    let e = api
        .post_empty(&format!("/v1/jobs/{a}/cancel"))
        .await
        .expect_error(409);
    assert_eq!(e["code"], "not_cancellable");
    let r = api
        .post_empty(&format!("/v1/jobs/{a}/retry"))
        .await
        .expect(200);
    assert_eq!(r["job"]["status"], "queued");
    let e = api
        .post_empty(&format!("/v1/jobs/{a}/retry"))
        .await
        .expect_error(409);
    assert_eq!(e["code"], "not_retryable");
    api.post_empty("/v1/jobs/424242/cancel")
        .await
        .expect_error(404);
    api.post_empty("/v1/jobs/424242/retry")
        .await
        .expect_error(404);
    let events = api.get(&format!("/v1/jobs/{a}")).await.expect(200)["events"].clone();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["cancelled", "retried"]);
}

/// Claims `id`'s queue over the worker protocol and fails the job for good.
pub async fn fail_permanently(api: &Api, queue: &str) -> i64 {
    let claim = api
        .post(
            "/v1/worker/claim",
            json!({"worker_id": "w-fail", "queues": [queue], "limit": 1}),
        )
        .await
        .expect(200);
    let job = &claim["jobs"][0];
    let id = job["id"].as_i64().expect("a job to claim");
    api.post(
        &format!("/v1/worker/jobs/{id}/fail"),
        json!({"worker_id": "w-fail", "attempt": job["attempt"], "error": "boom", "permanent": true}),
    )
    .await
    .expect(200);
    id
}

async fn bulk_cancel_retry_and_purge(h: Harness) {
    let api = start(&h, false).await;
    let a = api.enqueue(json!({"kind": "a"})).await;
    let b = api.enqueue(json!({"kind": "b"})).await;
    let c = api.enqueue(json!({"kind": "c", "queue": "other"})).await;
    let r = api
        .post("/v1/jobs/cancel", json!({"ids": [a, 999_999]}))
        .await
        .expect(200);
    assert_eq!(r["cancelled"], 1);
    let r = api
        .post("/v1/jobs/cancel", json!({"status": "queued", "kind": "b"}))
        .await
        .expect(200);
    assert_eq!(r["cancelled"], 1);
    assert_eq!(
        api.client.job(b).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(
        api.client.job(c).await.unwrap().unwrap().status,
        JobStatus::Queued
    );

    // Failed jobs: retried by filter (queue), by reference, and by id.
    let f1 = fail_permanently(&api, "other").await;
    assert_eq!(f1, c);
    let f2 = api
        .enqueue(json!({"kind": "d", "queue": "q2", "reference": {"type": "t", "id": 1}}))
        .await;
    fail_permanently(&api, "q2").await;
    let r = api
        .post("/v1/jobs/retry", json!({"queue": "other"}))
        .await
        .expect(200);
    assert_eq!(r["retried"], 1);
    assert_eq!(
        api.client.job(c).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    let r = api
        .post("/v1/jobs/retry", json!({"reference": "t:1"}))
        .await
        .expect(200);
    assert_eq!(r["retried"], 1);
    assert_eq!(
        api.client.job(f2).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    let r = api
        .post("/v1/jobs/retry", json!({"ids": [a, b]}))
        .await
        .expect(200);
    assert_eq!(r["retried"], 2);
    let e = api
        .post("/v1/jobs/retry", json!({"ids": [a], "queue": "x"}))
        .await
        .expect_error(400);
    assert_eq!(e["field"], "ids");

    // Purge: only finished jobs, failed ones only when asked.
    api.post("/v1/jobs/cancel", json!({"ids": [a]}))
        .await
        .expect(200);
    fail_permanently(&api, "q2").await;
    let r = api
        .post("/v1/jobs/purge", json!({"older_than": "0s"}))
        .await
        .expect(200);
    assert_eq!(r["purged"], 1, "the cancelled job");
    assert!(api.client.job(a).await.unwrap().is_none());
    let r = api
        .post(
            "/v1/jobs/purge",
            json!({"older_than": "0s", "include_failed": true}),
        )
        .await
        .expect(200);
    assert_eq!(r["purged"], 1, "the failed job");
    let r = api
        .post(
            "/v1/jobs/purge",
            json!({"older_than": "30d", "include_failed": true}),
        )
        .await
        .expect(200);
    assert_eq!(r["purged"], 0);
    assert_eq!(api.all_jobs().await.len(), 2);
}

async fn queues_pause_resume_and_stats(h: Harness) {
    let api = start(&h, false).await;
    api.enqueue(json!({"kind": "a", "queue": "email"})).await;
    api.enqueue(json!({"kind": "a", "queue": "email", "delay": "1h"}))
        .await;
    let p = api.post_empty("/v1/queues/email/pause").await.expect(200);
    assert_eq!(p["queue"]["name"], "email");
    assert_eq!(p["queue"]["paused"], true);
    let claim = api
        .post(
            "/v1/worker/claim",
            json!({"worker_id": "w1", "queues": ["email"]}),
        )
        .await
        .expect(200);
    assert_eq!(claim["jobs"], json!([]), "a paused queue hands out nothing");
    // The ready job has waited exactly as long as the store's clock moved since it was
    // enqueued (the harness clock moves only when told).
    h.clock.advance(std::time::Duration::from_millis(4321));
    let list = api.get("/v1/queues").await.expect(200);
    let q = list["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "email")
        .unwrap()
        .clone();
    assert_eq!(q["paused"], true);
    assert_eq!(q["counts"]["queued"], 2);
    assert_eq!(q["counts"]["scheduled"], 1);
    assert_eq!(q["oldest_ready_age_ms"], 4321, "{q}");
    let r = api.post_empty("/v1/queues/email/resume").await.expect(200);
    assert_eq!(r["queue"]["paused"], false);
    let claim = api
        .post(
            "/v1/worker/claim",
            json!({"worker_id": "w1", "queues": ["email"], "host": "box-1", "pid": 7}),
        )
        .await
        .expect(200);
    assert_eq!(claim["jobs"].as_array().unwrap().len(), 1);
    // An empty queue nobody declared is refused as a likely typo, unless forced.
    let e = api
        .post_empty("/v1/queues/new/pause")
        .await
        .expect_error(404);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("queue `new` is unknown"),
        "{e}"
    );
    assert!(
        api.client
            .queues()
            .await
            .unwrap()
            .iter()
            .all(|q| q.name != "new"),
        "nothing changed"
    );
    api.post_empty("/v1/queues/new/pause?force=true")
        .await
        .expect(200);
    api.post_empty("/v1/queues/new/resume").await.expect(200);
    api.post_empty("/v1/queues/%20bad/pause")
        .await
        .expect_error(400);

    // What finished shows in the queue's hour and in the throughput series.
    let id = claim["jobs"][0]["id"].as_i64().unwrap();
    api.post(
        &format!("/v1/worker/jobs/{id}/complete"),
        json!({"worker_id": "w1", "attempt": 1}),
    )
    .await
    .expect(200);
    let list = api.get("/v1/queues").await.expect(200);
    let q = list["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "email")
        .unwrap()
        .clone();
    let recent = &q["recent"];
    assert_eq!(
        [
            &recent["succeeded"],
            &recent["failed"],
            &recent["cancelled"]
        ],
        [&json!(1), &json!(0), &json!(0)],
        "{q}"
    );
    assert_eq!(recent["window_ms"], 3_600_000);
    assert!(
        recent["duration_avg_ms"].is_number() && recent["duration_p95_ms"].is_number(),
        "{q}"
    );
    let t = api
        .get("/v1/stats/throughput?window=2h&bucket=5m&queue=email")
        .await
        .expect(200);
    let buckets = t["buckets"].as_array().unwrap();
    assert_eq!(
        buckets.len(),
        25,
        "2h of 5m buckets, both ends included: {t}"
    );
    let total: u64 = buckets
        .iter()
        .map(|b| b["succeeded"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 1);
    api.get("/v1/stats/throughput?bucket=1ms")
        .await
        .expect_error(400);
    api.get("/v1/stats/throughput?window=1000d&bucket=1s")
        .await
        .expect_error(400);

    let workers = api.get("/v1/workers").await.expect(200);
    let w = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == "w1")
        .expect("the remote worker is registered")
        .clone();
    assert_eq!(w["host"], "box-1");
    assert_eq!(w["pid"], 7);
    assert_eq!(w["queues"][0]["name"], "email");
}

async fn queue_limits_and_concurrency_keys(h: Harness) {
    let api = start(&h, true).await;
    // An unknown queue is refused as a likely typo; nothing is stored.
    let e = api
        .raw(
            reqwest::Method::PUT,
            "/v1/queues/email/limits",
            Some(("application/json", br#"{"global_concurrency": 3}"#.to_vec())),
        )
        .await
        .expect_error(404);
    assert!(e.to_string().contains("force=true"), "{e}");
    assert!(h.store.queue_list().await.unwrap().is_empty());

    api.enqueue(json!({"kind": "a", "queue": "email"})).await;
    async fn put(api: &Api, body: &str) -> crate::common::Resp {
        api.raw(
            reqwest::Method::PUT,
            "/v1/queues/email/limits",
            Some(("application/json", body.as_bytes().to_vec())),
        )
        .await
    }
    let q = put(
        &api,
        r#"{"global_concurrency": 3, "rate_limit": "100/60s"}"#,
    )
    .await
    .expect(200);
    assert_eq!(q["queue"]["global_concurrency"], 3);
    assert_eq!(q["queue"]["key_concurrency"], Value::Null);
    assert_eq!(q["queue"]["rate_limit"], "100/1m", "one spelling");
    // Bad values name the field and change nothing.
    for (body, field) in [
        (r#"{"global_concurrency": 0}"#, "global_concurrency"),
        (r#"{"key_concurrency": -1}"#, "key_concurrency"),
        (r#"{"global_concurrency": "3"}"#, "global_concurrency"),
        (r#"{"global": 3}"#, "global"),
        (r#"{"rate_limit": "100"}"#, "rate_limit"),
        (r#"{"rate_limit": "0/1m"}"#, "rate_limit"),
        (r#"{"rate_limit": "5/2d"}"#, "rate_limit"),
    ] {
        let e = put(&api, body).await.expect_error(400);
        assert!(e.to_string().contains(field), "{body}: {e}");
    }
    let list = api.get("/v1/queues").await.expect(200);
    let email = list["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "email")
        .unwrap()
        .clone();
    assert_eq!(email["global_concurrency"], 3, "{email}");
    assert_eq!(email["rate_limit"], "100/1m", "{email}");

    // Keyed jobs: one of each key at a time, within the queue's three.
    for _ in 0..3 {
        api.enqueue(json!({"kind": "a", "queue": "email", "concurrency_key": "p1"}))
            .await;
    }
    let p2 = api
        .enqueue(
            json!({"kind": "a", "queue": "email", "concurrency_key": "p2",
                        "key_concurrency": 2, "args": {"api_token": "tok-secret-9"}}),
        )
        .await;
    let claim = api
        .post(
            "/v1/worker/claim",
            json!({"worker_id": "w1", "queues": ["email"], "limit": 10}),
        )
        .await
        .expect(200);
    let mut keys = Vec::new();
    for j in claim["jobs"].as_array().unwrap() {
        let shown = api.get(&format!("/v1/jobs/{}", j["id"])).await.expect(200);
        keys.push(shown["job"]["concurrency_key"].clone());
    }
    keys.sort_by_key(|k| k.to_string());
    assert_eq!(
        keys,
        [json!("p1"), json!("p2"), Value::Null],
        "the global limit of 3"
    );
    let shown = api.get(&format!("/v1/jobs/{p2}")).await.expect(200);
    assert_eq!(shown["job"]["concurrency_key"], "p2");
    assert_eq!(shown["job"]["key_concurrency"], 2);

    // Bad keys and limits at enqueue name the field; nothing is written.
    let before = api.all_jobs().await.len();
    for (body, field) in [
        (
            json!({"kind": "a", "key_concurrency": 2}),
            "key_concurrency",
        ),
        (
            json!({"kind": "a", "concurrency_key": "k", "key_concurrency": 0}),
            "key_concurrency",
        ),
        (
            json!({"kind": "a", "concurrency_key": "nul\u{0}"}),
            "concurrency_key",
        ),
        (
            json!({"kind": "a", "concurrency_key": ""}),
            "concurrency_key",
        ),
    ] {
        let e = api.post("/v1/jobs", body.clone()).await.expect_error(400);
        assert!(e.to_string().contains(field), "{body}: {e}");
    }
    assert_eq!(api.all_jobs().await.len(), before);

    // A key that is a secret argument's value is shown to admins only.
    let secret = api
        .enqueue(json!({"kind": "a", "concurrency_key": "tok-secret-9",
                        "args": {"api_token": "tok-secret-9"}}))
        .await;
    let admin = api.get(&format!("/v1/jobs/{secret}")).await.expect(200);
    assert_eq!(admin["job"]["concurrency_key"], "tok-secret-9");
    let reader = api
        .as_token(Some("tok-read"))
        .get(&format!("/v1/jobs/{secret}"))
        .await
        .expect(200);
    assert_eq!(reader["job"]["concurrency_key"], "[redacted]", "{reader}");
    assert!(!reader.to_string().contains("tok-secret-9"), "{reader}");
}
