//! Health, metrics, the OpenAPI document, and the database-down answer.

use crate::common::start;
use errand_server::{routes, Access};
use errand_store_tests::Harness;
use serde_json::{json, Value};
use std::collections::BTreeSet;

errand_store_tests::both_backends!(
    health_scheduler_health_and_metrics,
    openapi_documents_every_route
);

async fn health_scheduler_health_and_metrics(h: Harness) {
    let api = start(&h, true).await;
    let anonymous = api.as_token(None);
    assert_eq!(
        anonymous.get("/health").await.expect(200),
        json!({"status": "ok", "database": "ok"})
    );
    assert_eq!(
        anonymous.get("/health/ready").await.expect(200),
        json!({"status": "ok", "database": "ok"})
    );
    assert_eq!(
        anonymous.get("/health/live").await.expect(200),
        json!({"status": "ok"})
    );
    api.enqueue(json!({"kind": "a", "queue": "email"})).await;
    api.enqueue(json!({"kind": "a", "queue": "email", "delay": "1h"}))
        .await;
    let id = api.enqueue(json!({"kind": "b"})).await;
    api.post(
        "/v1/worker/claim",
        json!({"worker_id": "w", "queues": ["default"]}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/v1/worker/jobs/{id}/complete"),
        json!({"worker_id": "w", "attempt": 1}),
    )
    .await
    .expect(200);

    // No scheduler loop in this server: degraded, and the figures are still there.
    let s = anonymous.get("/health/scheduler").await.expect(503);
    assert_eq!(s["status"], "degraded");
    assert_eq!(s["pending_jobs"], 2);
    assert!(s.get("next_run").is_some() && s.get("last_execution").is_some());

    let resp = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    for line in [
        "errand_database_up 1",
        "errand_jobs{queue=\"email\",state=\"queued\"} 2",
        "errand_jobs{queue=\"email\",state=\"scheduled\"} 1",
        "errand_jobs{queue=\"default\",state=\"succeeded\"} 1",
        "errand_queue_depth{queue=\"email\"} 1",
        "errand_jobs_enqueued_total 3",
        "errand_jobs_succeeded_total 1",
        "errand_jobs_failed_total 0",
        "errand_jobs_retried_total 0",
        "errand_job_run_duration_seconds_count 1",
        "errand_workers_live 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line `{line}` in:\n{text}"
        );
    }
    assert!(text.contains("errand_queue_oldest_age_seconds{queue=\"email\"} "));
    assert!(text.contains("# TYPE errand_job_run_duration_seconds histogram"));
}

/// Every path of the API contract shared with the dashboard: removing a route from the table
/// fails this list.
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/v1/jobs"),
    ("post", "/v1/jobs/batch"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("post", "/v1/jobs/{id}/cancel"),
    ("post", "/v1/jobs/{id}/retry"),
    ("post", "/v1/jobs/retry"),
    ("post", "/v1/jobs/cancel"),
    ("post", "/v1/jobs/purge"),
    ("get", "/v1/queues"),
    ("post", "/v1/queues/{name}/pause"),
    ("post", "/v1/queues/{name}/resume"),
    ("get", "/v1/workers"),
    ("get", "/v1/stats/throughput"),
    ("get", "/v1/schedules"),
    ("get", "/v1/schedules/{name}"),
    ("post", "/v1/schedules/{name}/pause"),
    ("post", "/v1/schedules/{name}/resume"),
    ("post", "/v1/schedules/{name}/trigger"),
    ("post", "/v1/worker/claim"),
    ("post", "/v1/worker/heartbeat"),
    ("post", "/v1/worker/jobs/{id}/complete"),
    ("post", "/v1/worker/jobs/{id}/progress"),
    ("post", "/v1/worker/jobs/{id}/fail"),
    ("get", "/v1/me"),
    ("get", "/health"),
    ("get", "/health/scheduler"),
    ("post", "/v1/schedules"),
    ("put", "/v1/schedules/{name}"),
    ("delete", "/v1/schedules/{name}"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
];

fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.insert(r.trim_start_matches("#/components/schemas/").to_string());
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

async fn openapi_documents_every_route(h: Harness) {
    let api = start(&h, true).await;
    let doc = api.as_token(None).get("/v1/openapi.json").await.expect(200);
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc, errand_server::openapi_document(), "served = built");
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in CONTRACT {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    let mut documented = 0;
    for r in routes() {
        let op = &doc["paths"][r.path][r.verb.as_str()];
        assert_eq!(
            op["operationId"],
            r.operation_id,
            "{} {}",
            r.verb.as_str(),
            r.path
        );
        assert_eq!(
            op["security"] == json!([]),
            r.access == Access::Public,
            "{}",
            r.path
        );
        documented += 1;
        // The router serves what the document lists: an unknown path answers "no endpoint".
        let path = r.path.replace("{id}", "1").replace("{name}", "default");
        let resp = match r.verb {
            errand_server::Verb::Get => api.get(&path).await,
            errand_server::Verb::Post => api.post(&path, json!({})).await,
            errand_server::Verb::Put => {
                api.raw(
                    reqwest::Method::PUT,
                    &path,
                    Some(("application/json", b"{}".to_vec())),
                )
                .await
            }
            errand_server::Verb::Delete => api.raw(reqwest::Method::DELETE, &path, None).await,
        };
        let no_endpoint = resp.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no endpoint"));
        assert!(
            !no_endpoint && resp.status != 405,
            "{} {path} is documented but not served: {}",
            r.verb.as_str(),
            resp.body
        );
    }
    let ops: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        ops, documented,
        "the document holds exactly the route table"
    );
    // Every schema a route names exists.
    let mut named = BTreeSet::new();
    refs(&doc["paths"], &mut named);
    refs(&doc["components"]["schemas"], &mut named);
    for name in named {
        assert!(
            doc["components"]["schemas"].get(&name).is_some(),
            "schema {name} is referenced but missing"
        );
    }
}

/// A database that cannot be reached: `/health` says so with 503, and so do the endpoints.
#[tokio::test]
async fn health_is_503_when_the_database_is_unreachable() {
    use errand_store_postgres::sqlx::postgres::PgPoolOptions;
    let pool = PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/nothing")
        .unwrap();
    let store = errand_store_postgres::PgStore::from_pool(pool, Default::default()).unwrap();
    let client = errand::Client::from_store(std::sync::Arc::new(store));
    let app = errand_server::router(client, Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let resp = crate::common::http_builder()
        .build()
        .unwrap()
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert!(
        body["database"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
    let resp = crate::common::http_builder()
        .build()
        .unwrap()
        .get(format!("http://{addr}/v1/queues"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    let text = crate::common::http_builder()
        .build()
        .unwrap()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("errand_database_up 0"), "{text}");
}
