//! Schedules over the API on both backends: list, show with next fires and history, pause,
//! resume, trigger.

use crate::common::start;
use errand_store::{ScheduleSource, ScheduleWrite};
use errand_store_tests::Harness;
use serde_json::json;

errand_store_tests::both_backends!(schedules_list_show_pause_resume_and_trigger);

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
    assert_eq!(show["next_fires"][0], show["schedule"]["next_fire_at"]);
    assert_eq!(show["history"], json!([]));
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
    api.post(
        &format!("/v1/worker/jobs/{id}/complete"),
        json!({"worker_id": "w", "attempt": 1}),
    )
    .await
    .expect(200);
    let show = api.get("/v1/schedules/nightly").await.expect(200);
    assert_eq!(show["schedule"]["last_run"]["job_id"], id);
    assert_eq!(show["schedule"]["last_run"]["status"], "succeeded");
    assert_eq!(show["history"][0]["outcome"], "triggered");
    assert_eq!(show["history"][0]["status"], "succeeded");
    assert_eq!(show["stats"]["runs"], 1);
    assert!(show["stats"]["p95_ms"].is_number());
    assert_eq!(show["next_fires"].as_array().unwrap().len(), 5);

    let health = api.get("/health/scheduler").await.expect(200);
    assert_eq!(health["next_run"]["schedule"], "nightly");
    assert_eq!(health["next_run"]["at"], show["schedule"]["next_fire_at"]);
    assert_eq!(health["last_execution"]["schedule"], "nightly");
    assert_eq!(health["last_execution"]["status"], "succeeded");
    assert!(health["last_execution"]["duration_ms"].is_number());

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
