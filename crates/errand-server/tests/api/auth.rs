//! Who may call what (the matrix walks the route table), redaction for read-only roles, and
//! bad input: each gives a 4xx with a clear JSON message and changes nothing.

use crate::common::{start, start_with, tokens};
use errand::JobStatus;
use errand_server::{routes, Access, Role, Verb};
use errand_store_tests::Harness;
use reqwest::Method;
use serde_json::json;

errand_store_tests::both_backends!(
    every_role_against_every_route,
    without_tokens_every_caller_is_admin,
    secrets_are_redacted_for_every_role_but_admin,
    bad_input_is_a_4xx_that_names_the_problem_and_changes_nothing,
);

async fn every_role_against_every_route(h: Harness) {
    let api = start(&h, true).await;
    let id = api.enqueue(json!({"kind": "a"})).await;
    let mut callers: Vec<(String, Option<String>, Option<Role>)> = vec![
        ("no token".into(), None, None),
        ("unknown token".into(), Some("nope".into()), None),
    ];
    for t in tokens() {
        callers.push((t.role.as_str().into(), Some(t.token.clone()), Some(t.role)));
    }
    let mut checked = 0;
    for r in routes() {
        let path = r
            .path
            .replace("{id}", &id.to_string())
            .replace("{name}", "default");
        for (who, token, role) in &callers {
            let caller = api.as_token(token.as_deref());
            let resp = match r.verb {
                Verb::Get => caller.get(&path).await,
                // An empty object: allowed callers get past auth and fail validation (or act).
                Verb::Post => caller.post(&path, json!({})).await,
                Verb::Put => {
                    caller
                        .raw(
                            Method::PUT,
                            &path,
                            Some(("application/json", b"{}".to_vec())),
                        )
                        .await
                }
                Verb::Delete => caller.raw(Method::DELETE, &path, None).await,
            };
            let expected = match (r.access, role) {
                (Access::Public, _) => None,
                (_, None) => Some(401),
                (access, Some(role)) if !role.may(access) => Some(403),
                _ => None,
            };
            match expected {
                Some(code) => {
                    let e = resp.clone().expect_error(code);
                    assert_eq!(
                        e["code"],
                        if code == 401 {
                            "unauthorized"
                        } else {
                            "forbidden"
                        }
                    );
                }
                // Past auth: exactly what the route table documents for this route (its
                // success, 200 for an enqueue of an existing unique job, 503 for a degraded
                // scheduler, or one of its listed errors: as the OpenAPI document says), never an auth error, never an undocumented status.
                None => {
                    let documented = resp.status == r.success.0
                        || (r.operation_id == "enqueue" && resp.status == 200)
                        || (r.operation_id == "health_scheduler" && resp.status == 503)
                        || r.errors.contains(&resp.status);
                    assert!(
                        documented && resp.status != 401 && resp.status != 403,
                        "{who} on {} {path}: {} is not among its documented statuses {:?} + {:?}: {}",
                        r.verb.as_str(),
                        resp.status,
                        r.success.0,
                        r.errors,
                        resp.body
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, routes().len() * 6);
    for t in tokens() {
        let me = api.as_token(Some(&t.token)).get("/v1/me").await.expect(200);
        assert_eq!(me, json!({"role": t.role.as_str(), "auth": true}));
    }
    // Only the matrix's admin calls changed anything they were allowed to.
    let bad = api
        .as_token(Some("tok-read"))
        .post("/v1/jobs", json!({"kind": "x"}))
        .await;
    assert_eq!(bad.status, 403);
    assert_eq!(
        api.all_jobs()
            .await
            .iter()
            .filter(|j| j.kind == "x")
            .count(),
        0
    );
    let e = api
        .as_token(Some("tok-admin"))
        .raw(Method::GET, "/v1/me", None)
        .await;
    assert_eq!(e.status, 200);
    let resp = api
        .http
        .get(format!("{}/v1/me", api.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

async fn without_tokens_every_caller_is_admin(h: Harness) {
    let api = start(&h, false).await;
    assert_eq!(
        api.get("/v1/me").await.expect(200),
        json!({"role": "admin", "auth": false})
    );
    api.enqueue(json!({"kind": "a"})).await;
    api.post_empty("/v1/queues/default/pause").await.expect(200);
}

async fn secrets_are_redacted_for_every_role_but_admin(h: Harness) {
    let api = start(&h, true).await;
    let args =
        json!({"to": "ada@example.com", "api_token": "tk-123", "nested": {"password": "pw"}});
    let id = api.enqueue(json!({"kind": "send", "args": args})).await;
    for role in ["read", "enqueue", "worker"] {
        let caller = api.as_token(Some(&format!("tok-{role}")));
        let got = caller.get(&format!("/v1/jobs/{id}")).await.expect(200);
        assert_eq!(
            got["job"]["args"],
            json!({"to": "ada@example.com", "api_token": "[redacted]", "nested": {"password": "[redacted]"}}),
            "{role}"
        );
        let list = caller.get("/v1/jobs").await.expect(200);
        assert!(
            !list.to_string().contains("tk-123"),
            "{role} sees the secret in the list"
        );
    }
    let got = api.get(&format!("/v1/jobs/{id}")).await.expect(200);
    assert_eq!(got["job"]["args"], args, "admin sees the real arguments");
    // Stored as given.
    assert_eq!(api.client.job(id).await.unwrap().unwrap().args, args);
}

async fn bad_input_is_a_4xx_that_names_the_problem_and_changes_nothing(h: Harness) {
    let mut api = start_with(&h, |c| c.max_body_bytes = 64 * 1024).await;
    // The server answers 413 without reading the body and then closes the connection: no
    // reuse, or the next request may go out on the closed one.
    api.http = crate::common::http_builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let id = api.enqueue(json!({"kind": "keep"})).await;
    let json_ct = "application/json";
    let big_args = format!(
        r#"{{"kind":"a","args":{{"blob":"{}"}}}}"#,
        "x".repeat(20 * 1024)
    );
    let huge = format!(
        r#"{{"kind":"a","args":{{"blob":"{}"}}}}"#,
        "x".repeat(200 * 1024)
    );
    // (method, path, content type and body, status, error code, the field it names)
    type Case<'a> = (
        Method,
        String,
        Option<(&'a str, String)>,
        u16,
        &'a str,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, "{\"kind\":".into())),
            400,
            "malformed_json",
            None,
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, "".into())),
            400,
            "malformed_json",
            None,
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, "[1,2]".into())),
            400,
            "invalid_body",
            None,
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, r#"{"kind":5}"#.into())),
            400,
            "invalid_field",
            Some("kind"),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, r#"{"kind":"a","priority":"high"}"#.into())),
            400,
            "invalid_field",
            Some("priority"),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, r#"{"kind":"a","colour":"red"}"#.into())),
            400,
            "unknown_field",
            Some("colour"),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, r#"{"kind":"a","args":[1]}"#.into())),
            400,
            "invalid_field",
            Some("args"),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, r#"{"kind":""}"#.into())),
            400,
            "invalid_field",
            Some("kind"),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, r#"{"kind":"a","delay":"soon"}"#.into())),
            400,
            "invalid_field",
            Some("delay"),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((
                json_ct,
                r#"{"kind":"a","delay":"1s","run_at":"2030-01-01T00:00:00Z"}"#.into(),
            )),
            400,
            "invalid_field",
            Some("delay"),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, r#"{"kind":"a","max_attempts":0}"#.into())),
            400,
            "invalid_field",
            Some("max_attempts"),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, r#"{"kind":"a","reference":{"type":"t"}}"#.into())),
            400,
            "invalid_field",
            Some("reference"),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(("text/plain", r#"{"kind":"a"}"#.into())),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, big_args)),
            400,
            "invalid_field",
            Some("args"),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some((json_ct, huge)),
            413,
            "body_too_large",
            None,
        ),
        (
            Method::POST,
            "/v1/jobs/batch".into(),
            Some((
                json_ct,
                r#"{"jobs":[{"kind":"ok"},{"kind":" bad"}]}"#.into(),
            )),
            400,
            "invalid_field",
            Some("jobs[1].kind"),
        ),
        (
            Method::POST,
            "/v1/jobs/batch".into(),
            Some((
                json_ct,
                r#"{"jobs":[{"kind":"ok"},{"kind":"b","delay":"x"}]}"#.into(),
            )),
            400,
            "invalid_field",
            Some("jobs[1].delay"),
        ),
        (
            Method::GET,
            "/v1/jobs/abc".into(),
            None,
            400,
            "invalid_field",
            Some("id"),
        ),
        (
            Method::GET,
            "/v1/jobs/0".into(),
            None,
            400,
            "invalid_field",
            Some("id"),
        ),
        (
            Method::GET,
            "/v1/jobs/99999999999999999999".into(),
            None,
            400,
            "invalid_field",
            Some("id"),
        ),
        (
            Method::GET,
            "/v1/jobs?limit=abc".into(),
            None,
            400,
            "invalid_field",
            Some("limit"),
        ),
        (
            Method::GET,
            "/v1/jobs?limit=0".into(),
            None,
            400,
            "invalid_field",
            Some("limit"),
        ),
        (
            Method::GET,
            "/v1/jobs?status=doing".into(),
            None,
            400,
            "invalid_field",
            Some("status"),
        ),
        (
            Method::GET,
            "/v1/jobs?since=yesterday".into(),
            None,
            400,
            "invalid_field",
            Some("since"),
        ),
        (
            Method::GET,
            "/v1/jobs?colour=red".into(),
            None,
            400,
            "invalid_query",
            None,
        ),
        (
            Method::POST,
            "/v1/jobs/purge".into(),
            Some((json_ct, "{}".into())),
            400,
            "invalid_body",
            None,
        ),
        (
            Method::POST,
            "/v1/jobs/purge".into(),
            Some((json_ct, r#"{"older_than":"old"}"#.into())),
            400,
            "invalid_field",
            Some("older_than"),
        ),
        (
            Method::POST,
            "/v1/jobs/cancel".into(),
            Some((json_ct, "{}".into())),
            400,
            "invalid_field",
            Some("status"),
        ),
        (
            Method::POST,
            "/v1/jobs/cancel".into(),
            Some((json_ct, r#"{"status":"doing"}"#.into())),
            400,
            "invalid_field",
            Some("status"),
        ),
        (
            Method::POST,
            "/v1/jobs/retry".into(),
            Some((json_ct, r#"{"ids":"all"}"#.into())),
            400,
            "invalid_field",
            Some("ids"),
        ),
        (
            Method::POST,
            "/v1/jobs/retry".into(),
            Some((json_ct, r#"{"ids":[-1]}"#.into())),
            400,
            "invalid_field",
            Some("ids[0]"),
        ),
        (
            Method::POST,
            "/v1/worker/claim".into(),
            Some((json_ct, r#"{"worker_id":"w","queues":[]}"#.into())),
            400,
            "invalid_field",
            Some("queues"),
        ),
        (
            Method::POST,
            "/v1/worker/claim".into(),
            Some((
                json_ct,
                r#"{"worker_id":"w","queues":["default"],"limit":0}"#.into(),
            )),
            400,
            "invalid_field",
            Some("limit"),
        ),
        (
            Method::POST,
            "/v1/worker/claim".into(),
            Some((
                json_ct,
                r#"{"worker_id":"w","queues":["default"],"lease":"1ms"}"#.into(),
            )),
            400,
            "invalid_field",
            Some("lease"),
        ),
        (
            Method::POST,
            "/v1/worker/claim".into(),
            Some((json_ct, r#"{"worker_id":"","queues":["default"]}"#.into())),
            400,
            "invalid_field",
            Some("worker_id"),
        ),
        (
            Method::POST,
            format!("/v1/worker/jobs/{id}/complete"),
            Some((json_ct, r#"{"worker_id":"w"}"#.into())),
            400,
            "invalid_body",
            None,
        ),
        (
            Method::POST,
            format!("/v1/worker/jobs/{id}/complete"),
            Some((json_ct, r#"{"worker_id":"w","attempt":0}"#.into())),
            409,
            "stale",
            None,
        ),
        (
            Method::POST,
            "/v1/queues/%20x/pause".into(),
            None,
            400,
            "invalid_field",
            Some("name"),
        ),
        (
            Method::GET,
            "/v1/nothing-here".into(),
            None,
            404,
            "not_found",
            None,
        ),
        (
            Method::DELETE,
            "/v1/jobs".into(),
            None,
            405,
            "method_not_allowed",
            None,
        ),
    ];
    for (method, path, body, status, code, field) in cases {
        let shown = format!(
            "{method} {path} {:?}",
            body.as_ref()
                .map(|(ct, b)| (ct, b.chars().take(80).collect::<String>()))
        );
        let resp = api
            .raw(method, &path, body.map(|(ct, b)| (ct, b.into_bytes())))
            .await;
        assert_eq!(resp.status, status, "{shown}: {}", resp.body);
        let e = resp.expect_error(status);
        assert_eq!(e["code"], code, "{shown}: {e}");
        if let Some(field) = field {
            assert_eq!(e["field"], field, "{shown}: {e}");
        }
    }
    // Nothing changed: one job, still queued, the queue not paused.
    let jobs = api.all_jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(jobs[0].status, JobStatus::Queued);
    assert!(api
        .client
        .queue_stats()
        .await
        .unwrap()
        .iter()
        .all(|q| !q.paused));
    assert!(api.client.workers().await.unwrap().is_empty());
}
