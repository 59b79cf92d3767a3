//! Schedules over the API on both backends: list, show with next fires and history, pause,
//! resume, trigger.

use crate::common::{start, start_with};
use errand::scheduler::SchedulerOptions;
use errand::SchedulerStatus;
use errand_store::{ScheduleSource, ScheduleWrite};
use errand_store_tests::Harness;
use serde_json::json;
use std::time::Duration;

errand_store_tests::both_backends!(
    schedules_list_show_pause_resume_and_trigger,
    run_time_schedules_are_created_updated_and_deleted,
    a_trigger_follows_the_overlap_policy_unless_forced,
    scheduler_health_is_degraded_with_the_reason,
);

async fn schedules_list_show_pause_resume_and_trigger(h: Harness) {
    let api = start(&h, true).await;
    h.store
        .schedule_create(&ScheduleWrite {
            name: "nightly".into(),
            spec: json!({"cron": "0 2 * * *", "timezone": "Europe/London", "kind": "report", "queue": "reports", "args": {"api_token": "sk-1"}}),
            kind: "report".into(),
            queue: "reports".into(),
            paused: false,
            source: ScheduleSource::Config,
        })
        .await
        .unwrap();
    let list = api
        .as_token(Some("tok-read"))
        .get("/v1/schedules")
        .await
        .expect(200);
    let s = &list["schedules"][0];
    assert_eq!(s["name"], "nightly");
    assert_eq!(s["cron"], "0 2 * * *");
    assert_eq!(s["timezone"], "Europe/London");
    assert_eq!(s["paused"], false);
    assert!(s["next_fire_at"].is_string());
    assert_eq!(s["last_run"], json!(null));
    assert_eq!(s["args"]["api_token"], "[redacted]");

    let show = api.get("/v1/schedules/nightly?next=3").await.expect(200);
    assert_eq!(show["next_fires"].as_array().unwrap().len(), 3);
    assert_eq!(
        show["next_fires"][0]["at"],
        show["schedule"]["next_fire_at"]
    );
    assert!(show["next_fires"][0]["local"].is_string());
    assert_eq!(show["runs"], json!([]));
    assert_eq!(show["stats"]["runs"], 0);

    // Trigger now, run it over the worker protocol: it shows as the last run with its duration.
    let t = api
        .post_empty("/v1/schedules/nightly/trigger")
        .await
        .expect(200);
    let id = t["job_id"].as_i64().unwrap();
    let job = api.client.job(id).await.unwrap().unwrap();
    assert_eq!(job.kind, "report");
    assert_eq!(job.queue, "reports");
    assert_eq!(job.reference_id.as_deref(), Some("nightly"));
    api.post(
        "/v1/worker/claim",
        json!({"worker_id": "w", "queues": ["reports"]}),
    )
    .await
    .expect(200);
    api.post(&format!("/v1/worker/jobs/{id}/complete"), json!({"worker_id": "w", "attempt": 1, "result": {"processed_users": 3, "api_token": "sk-2"}})).await.expect(200);
    let show = api.get("/v1/schedules/nightly").await.expect(200);
    assert_eq!(show["schedule"]["last_run"]["job_id"], id);
    assert_eq!(show["schedule"]["last_run"]["status"], "succeeded");
    // What the run returned, and its error (none): the runbook's `stats_json` and `error_text`;
    // admin sees it whole, other roles with secret-looking keys redacted.
    assert_eq!(
        show["schedule"]["last_run"]["result"],
        json!({"processed_users": 3, "api_token": "sk-2"})
    );
    assert_eq!(show["schedule"]["last_run"]["last_error"], json!(null));
    let as_read = api
        .as_token(Some("tok-read"))
        .get("/v1/schedules")
        .await
        .expect(200);
    assert_eq!(
        as_read["schedules"][0]["last_run"]["result"],
        json!({"processed_users": 3, "api_token": "[redacted]"})
    );
    assert_eq!(show["runs"][0]["outcome"], "triggered");
    assert_eq!(show["runs"][0]["status"], "succeeded");
    assert_eq!(show["stats"]["runs"], 1);
    assert!(show["stats"]["p95_ms"].is_number());
    assert_eq!(show["next_fires"].as_array().unwrap().len(), 5);

    // No scheduler loop in this process: degraded, with the rest still reported.
    let health = api.get("/health/scheduler").await.expect(503);
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["problems"][0]["code"], "scheduler_not_running");
    assert_eq!(health["next_run"]["schedule"], "nightly");
    assert_eq!(health["next_run"]["at"], show["schedule"]["next_fire_at"]);
    assert_eq!(health["last_execution"]["schedule"], "nightly");
    assert_eq!(health["last_execution"]["status"], "succeeded");
    assert!(health["last_execution"]["duration_ms"].is_number());
    assert_eq!(
        health["last_execution"]["result"],
        json!({"processed_users": 3, "api_token": "[redacted]"})
    );

    let p = api
        .post_empty("/v1/schedules/nightly/pause")
        .await
        .expect(200);
    assert_eq!(p["schedule"]["paused"], true);
    assert_eq!(p["schedule"]["next_fire_at"], json!(null));
    let r = api
        .post_empty("/v1/schedules/nightly/resume")
        .await
        .expect(200);
    assert_eq!(r["schedule"]["paused"], false);

    api.get("/v1/schedules/nope").await.expect_error(404);
    api.post_empty("/v1/schedules/nope/trigger")
        .await
        .expect_error(404);
    api.post_empty("/v1/schedules/nope/pause")
        .await
        .expect_error(404);
    api.get("/v1/schedules/nightly?next=1000")
        .await
        .expect_error(400);
    api.as_token(Some("tok-read"))
        .post_empty("/v1/schedules/nightly/trigger")
        .await
        .expect_error(403);
}

fn config_schedule(name: &str) -> ScheduleWrite {
    ScheduleWrite {
        name: name.into(),
        spec: json!({"every": "1h", "kind": "tick"}),
        kind: "tick".into(),
        queue: "default".into(),
        paused: false,
        source: ScheduleSource::Config,
    }
}

async fn run_time_schedules_are_created_updated_and_deleted(h: Harness) {
    let api = start(&h, true).await;
    h.store
        .schedule_create(&config_schedule("from_file"))
        .await
        .unwrap();

    let created = api
        .post("/v1/schedules", json!({"name": "adhoc", "cron": "0 3 * * *", "timezone": "Europe/Paris", "kind": "report", "args": {"n": 1}}))
        .await
        .expect(201);
    let s = &created["schedule"];
    assert_eq!(
        (&s["name"], &s["source"], &s["cron"], &s["timezone"]),
        (
            &json!("adhoc"),
            &json!("api"),
            &json!("0 3 * * *"),
            &json!("Europe/Paris")
        )
    );
    assert!(s["next_fire_at"].is_string());
    assert_eq!(
        api.get("/v1/schedules/adhoc").await.expect(200)["schedule"],
        *s
    );
    // Bad input names the field and writes nothing; a taken name is 409.
    let e = api
        .post(
            "/v1/schedules",
            json!({"name": "leap", "cron": "0 0 30 2 *", "kind": "k"}),
        )
        .await
        .expect_error(400);
    assert_eq!(e["field"], "cron");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            r#"schedules.leap.cron: invalid expression "0 0 30 2 *": field "day of month""#
        ),
        "{message}"
    );
    let e = api
        .post(
            "/v1/schedules",
            json!({"name": "x", "every": "1h", "kind": "k", "evry": "1m"}),
        )
        .await
        .expect_error(400);
    assert_eq!(e["code"], "unknown_field");
    api.post("/v1/schedules", json!({"every": "1h", "kind": "k"}))
        .await
        .expect_error(400);
    let e = api
        .post(
            "/v1/schedules",
            json!({"name": "adhoc", "every": "1h", "kind": "k"}),
        )
        .await
        .expect_error(409);
    assert_eq!(e["code"], "conflict");
    api.as_token(Some("tok-enqueue"))
        .post(
            "/v1/schedules",
            json!({"name": "y", "every": "1h", "kind": "k"}),
        )
        .await
        .expect_error(403);

    // Update: the definition is replaced.
    let put = |path: &str, body: serde_json::Value| {
        let api = api.as_token(Some("tok-admin"));
        let path = path.to_string();
        async move {
            api.raw(
                reqwest::Method::PUT,
                &path,
                Some(("application/json", serde_json::to_vec(&body).unwrap())),
            )
            .await
        }
    };
    let updated = put(
        "/v1/schedules/adhoc",
        json!({"every": "5m", "kind": "report"}),
    )
    .await
    .expect(200);
    assert_eq!(
        (&updated["schedule"]["every"], &updated["schedule"]["cron"]),
        (&json!("5m"), &json!(null))
    );
    let e = put(
        "/v1/schedules/adhoc",
        json!({"cron": "0 0 31 4 *", "kind": "report"}),
    )
    .await
    .expect_error(400);
    assert_eq!(e["field"], "cron");
    put(
        "/v1/schedules/nope",
        json!({"every": "5m", "kind": "report"}),
    )
    .await
    .expect_error(404);

    // A schedule from errand.toml is the file's: 409 naming it, unchanged.
    let e = put(
        "/v1/schedules/from_file",
        json!({"every": "5m", "kind": "tick"}),
    )
    .await
    .expect_error(409);
    assert_eq!(e["code"], "config_owned");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("errand.toml ([schedules.from_file]"),
        "{e}"
    );
    let e = api
        .raw(reqwest::Method::DELETE, "/v1/schedules/from_file", None)
        .await
        .expect_error(409);
    assert_eq!(e["code"], "config_owned");
    assert_eq!(
        api.get("/v1/schedules/from_file").await.expect(200)["schedule"]["every"],
        "1h"
    );

    let gone = api
        .raw(reqwest::Method::DELETE, "/v1/schedules/adhoc", None)
        .await
        .expect(200);
    assert_eq!(gone, json!({"deleted": "adhoc"}));
    api.raw(reqwest::Method::DELETE, "/v1/schedules/adhoc", None)
        .await
        .expect_error(404);
    let names: Vec<String> = api
        .client
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["from_file"]);
}

async fn a_trigger_follows_the_overlap_policy_unless_forced(h: Harness) {
    let api = start(&h, false).await;
    api.post(
        "/v1/schedules",
        json!({"name": "nightly", "every": "1h", "kind": "tick"}),
    )
    .await
    .expect(201);
    let first = api
        .post_empty("/v1/schedules/nightly/trigger")
        .await
        .expect(200)["job_id"]
        .as_i64()
        .unwrap();
    // Still queued: skipped with the reason, nothing enqueued.
    let e = api
        .post_empty("/v1/schedules/nightly/trigger")
        .await
        .expect_error(409);
    assert_eq!(e["code"], "overlap_skipped");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "its previous run (job {first}) is still queued and its overlap policy is `skip`"
        )),
        "{message}"
    );
    assert_eq!(api.all_jobs().await.len(), 1);
    let forced = api
        .post_empty("/v1/schedules/nightly/trigger?force=true")
        .await
        .expect(200)["job_id"]
        .as_i64()
        .unwrap();
    assert_ne!(forced, first);
    assert_eq!(api.all_jobs().await.len(), 2);
    let e = api
        .post_empty("/v1/schedules/nightly/trigger?force=yes")
        .await
        .expect_error(400);
    assert_eq!(e["field"], "force");
    api.post_empty("/v1/schedules/nightly/trigger?force=false")
        .await
        .expect_error(409);
}

async fn scheduler_health_is_degraded_with_the_reason(h: Harness) {
    let status = SchedulerStatus::default();
    let api = start_with(&h, |c| c.scheduler = status.clone()).await;
    // Due every minute, at most a second late.
    api.post(
        "/v1/schedules",
        json!({"name": "minutely", "every": "1m", "misfire_grace": "1s", "kind": "tick"}),
    )
    .await
    .expect(201);
    let health = api.get("/health/scheduler").await.expect(503);
    assert_eq!(health["scheduler"]["state"], "not_started");
    let codes = |v: &serde_json::Value| {
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["code"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(codes(&health), ["scheduler_not_running"]);

    // Two minutes pass (the store's clock) with no scheduler: the fire is overdue.
    h.clock.advance(Duration::from_secs(120));
    let health = api.get("/health/scheduler").await.expect(503);
    assert_eq!(
        codes(&health),
        ["scheduler_not_running", "schedule_overdue"]
    );
    assert_eq!(health["problems"][1]["schedule"], "minutely");
    assert!(
        health["problems"][1]["message"]
            .as_str()
            .unwrap()
            .contains("beyond its misfire grace of 1 s"),
        "{health}"
    );

    // A scheduler loop starts, passes and handles the fire: healthy.
    let handle = api.client.scheduler(SchedulerOptions {
        max_sleep: Duration::from_millis(20),
        status: status.clone(),
        ..Default::default()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let health = loop {
        let r = api.get("/health/scheduler").await;
        if r.status == 200 && r.body["scheduler"]["last_pass_at"].is_string() {
            break r.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not healthy: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (&health["status"], &health["problems"]),
        (&json!("healthy"), &json!([]))
    );
    assert_eq!(health["scheduler"]["state"], "running");

    // Stopped: degraded again, saying so.
    handle.shutdown().await;
    let health = api.get("/health/scheduler").await.expect(503);
    assert_eq!(codes(&health), ["scheduler_not_running"]);
    assert!(
        health["problems"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with(": shut down"),
        "{health}"
    );
    assert_eq!(health["scheduler"]["state"], "stopped");
}
