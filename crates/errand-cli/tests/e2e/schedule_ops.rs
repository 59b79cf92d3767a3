//! The schedule commands (`errand schedules list|show|next|pause|resume|trigger`) through the
//! real binary against a database holding schedules with a history (`fixture::schedules`),
//! checked with the library client; bad input exits 2 and changes nothing.

use crate::common::{e2e, json, ok, Env};
use crate::fixture::{self, LEGACY, NIGHTLY, SYNC, WEEKLY};
use chrono::{DateTime, TimeDelta, Utc};
use errand::JobStatus;
use serde_json::Value;

e2e!(
    schedules_list_shows_spec_state_next_and_last_run,
    schedules_show_prints_fields_next_fires_stats_runs_and_skipped_fires,
    schedules_next_lists_fire_times_in_utc_and_the_schedules_zone,
    schedules_pause_and_resume_report_each_name,
    schedules_trigger_enqueues_the_job_now_and_leaves_the_fires_alone,
    bad_schedule_input_exits_2_names_it_and_changes_nothing,
);

async fn setup(env: &Env) {
    fixture::with_schedules(&env.url).await;
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// The entry of `name` in a `{"schedules": [...]}` document.
fn entry<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no schedule {name} in {v}"))
}

/// What an operator command may change about the schedules, by name.
async fn schedule_state(
    env: &Env,
) -> Vec<(String, bool, DateTime<Utc>, DateTime<Utc>, Option<i64>)> {
    env.client()
        .await
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.name,
                s.paused,
                s.last_fire_at,
                s.updated_at,
                s.last_job_id,
            )
        })
        .collect()
}

async fn schedules_list_shows_spec_state_next_and_last_run(env: Env) {
    setup(&env).await;
    let v = json(&env.run(&["schedules", "list", "--json"]).await);
    let names: Vec<&str> = v["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [LEGACY, NIGHTLY, SYNC, WEEKLY]);

    let n = entry(&v, NIGHTLY);
    assert_eq!(n["cron"], "0 2 * * *");
    assert_eq!(n["every"], Value::Null);
    assert_eq!(n["timezone"], "Europe/London");
    assert_eq!(
        (n["kind"].as_str(), n["queue"].as_str()),
        (Some("build_report"), Some("reports"))
    );
    assert_eq!(
        (n["paused"].as_bool(), n["source"].as_str()),
        (Some(false), Some("config"))
    );
    assert_eq!(n["problem"], Value::Null);
    assert_eq!(
        n["args"],
        serde_json::json!({"format": "pdf", "smtp_password": "[redacted]"})
    );
    assert_eq!(n["misfire_grace_ms"], 3_600_000);
    let library = env.client().await.schedule(NIGHTLY, 1).await.unwrap();
    assert_eq!(Some(time(&n["next_fire_at"])), library.info.next_fire_at);
    assert!(time(&n["next_fire_at"]) > Utc::now());
    // The last run is the trigger (job 4), 40.7 s on the fixture's clock.
    assert_eq!(n["last_run"]["job_id"], 4);
    assert_eq!(n["last_run"]["status"], "succeeded");
    assert_eq!(n["last_run"]["duration_ms"], 40_700);

    let s = entry(&v, SYNC);
    assert_eq!(
        (s["every"].as_str(), s["cron"].as_str()),
        (Some("15m"), None)
    );
    assert_eq!(
        s["timezone"],
        Value::Null,
        "every counts in UTC from the epoch"
    );
    assert_eq!(
        (s["source"].as_str(), s["max_attempts"].as_i64()),
        (Some("api"), Some(3))
    );
    assert_eq!(s["last_run"]["job_id"], 7);
    assert_eq!(s["last_run"]["duration_ms"], 1_800);

    let w = entry(&v, WEEKLY);
    assert_eq!(w["paused"], true);
    assert_eq!(w["next_fire_at"], Value::Null);
    assert_eq!(w["last_run"], Value::Null);
    let l = entry(&v, LEGACY);
    assert!(
        l["problem"]
            .as_str()
            .unwrap()
            .contains("unknown time zone \"Europe/Atlantis\""),
        "{l}"
    );
    assert_eq!(l["next_fire_at"], Value::Null);

    let text = env.run(&["schedules", "list"]).await;
    ok(&text);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("SCHEDULE")
            && lines[0].contains("NEXT")
            && lines[0].contains("LAST RUN"),
        "{}",
        text.stdout
    );
    let row = |name: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{}", text.stdout))
    };
    assert!(
        row(NIGHTLY).contains("0 2 * * * (Europe/London)"),
        "{}",
        text.stdout
    );
    assert!(
        row(NIGHTLY).contains("active") && row(NIGHTLY).contains("in "),
        "{}",
        text.stdout
    );
    assert!(
        row(NIGHTLY).contains(" ago (") && row(NIGHTLY).ends_with("4 succeeded"),
        "{}",
        text.stdout
    );
    assert!(
        row(SYNC).contains("every 15m") && row(SYNC).ends_with("7 succeeded"),
        "{}",
        text.stdout
    );
    assert!(row(WEEKLY).contains("paused"), "{}", text.stdout);
    assert!(row(LEGACY).contains("unreadable"), "{}", text.stdout);
    assert!(
        text.stdout.contains(
            "legacy_export cannot be read and does not fire: schedules.legacy_export.timezone"
        ),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("hunter2"));
    assert!(
        !text.stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );

    // On a terminal: the state words and the last job's state in their colours.
    let (code, shown) = crate::ops::on_terminal(&env, &["schedules", "list"], "", false).await;
    assert_eq!(code, Some(0), "{shown}");
    for coloured in [
        "\x1b[35mpaused\x1b[0m",
        "\x1b[31munreadable\x1b[0m",
        "\x1b[32m4 succeeded\x1b[0m",
    ] {
        assert!(
            shown.contains(coloured),
            "{coloured:?} missing from {shown:?}"
        );
    }
}

async fn schedules_show_prints_fields_next_fires_stats_runs_and_skipped_fires(env: Env) {
    setup(&env).await;
    let v = json(&env.run(&["schedules", "show", NIGHTLY, "--json"]).await);
    assert_eq!(v["schedule"]["name"], NIGHTLY);
    assert_eq!(v["schedule"]["args"]["smtp_password"], "[redacted]");
    let next = v["next_fires"].as_array().unwrap();
    assert_eq!(next.len(), 5);
    for f in next {
        // 02:00 on the London wall clock, whichever side of a DST change.
        assert!(f["local"].as_str().unwrap().contains("T02:00:00"), "{f}");
        assert_eq!(time(&f["at"]), time(&f["local"]));
    }
    // Four runs: 41.5 s, failed after 38.2 s, 44 s, and the trigger's 40.7 s; the times are
    // over the three that succeeded.
    assert_eq!(
        v["stats"],
        serde_json::json!({"runs": 4, "finished": 4, "succeeded": 3, "failed": 1, "timed": 3,
                           "avg_ms": 42_066, "p95_ms": 44_000, "max_ms": 44_000})
    );
    let runs = v["runs"].as_array().unwrap();
    let cols = |k: &str| runs.iter().map(|r| r[k].clone()).collect::<Vec<_>>();
    assert_eq!(cols("job_id"), [4, 3, 2, 1].map(Value::from));
    assert_eq!(
        cols("outcome"),
        ["triggered", "enqueued", "enqueued", "enqueued"].map(Value::from)
    );
    assert_eq!(
        cols("status"),
        ["succeeded", "succeeded", "failed", "succeeded"].map(Value::from)
    );
    assert_eq!(
        cols("duration_ms"),
        [40_700, 44_000, 38_200, 41_500].map(Value::from)
    );
    // The last run with what it returned (the runbook's `stats_json`).
    let last = &v["schedule"]["last_run"];
    assert_eq!(
        (
            &last["job_id"],
            &last["status"],
            &last["result"],
            &last["last_error"]
        ),
        (
            &Value::from(4),
            &Value::from("succeeded"),
            &serde_json::json!({"rows": 1215}),
            &Value::Null
        )
    );
    let skipped = v["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["reason"], "missed_beyond_grace");
    assert!(time(&skipped[0]["recorded_at"]) - time(&skipped[0]["fire_at"]) >= TimeDelta::hours(3));

    let v = json(&env.run(&["schedules", "show", SYNC, "--json"]).await);
    let reasons: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["coalesced", "overlap_skipped"]);
    assert_eq!(
        v["stats"]["max_ms"], 938_800,
        "the first run lasted past the next fire"
    );
    assert!(v["next_fires"][0]["local"].is_null());

    let out = env.run(&["schedules", "show", NIGHTLY]).await;
    ok(&out);
    let text = &out.stdout;
    for needle in [
        "schedule:",
        "nightly_report",
        "fires:",
        "0 2 * * * (Europe/London)",
        "[redacted]",
        "misfire grace:",
        "source:",
        "config",
        "last run:",
        "job 4, succeeded, enqueued ",
        "ran 40.70s",
        "last result:",
        r#"{"rows":1215}"#,
        "Next fires",
        "Europe/London",
        " 02:00:00 ",
        "Recent runs: 4 (4 finished: 3 succeeded, 1 failed); run time of the 3 succeeded: avg 42.07s, p95 44.00s, max 44.00s",
        "triggered",
        "38.20s",
        "Skipped fires",
        "missed_beyond_grace: missed by more than misfire_grace",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(!text.contains("hunter2"), "{text}");
    let next_rows = text
        .lines()
        .skip_while(|l| *l != "Next fires")
        .skip(2)
        .take_while(|l| !l.is_empty())
        .count();
    assert_eq!(next_rows, 5, "{text}");

    let out = env.run(&["schedules", "show", WEEKLY]).await;
    ok(&out);
    assert!(
        out.stdout.contains(
            "weekly_cleanup is paused: no fires until `errand schedules resume weekly_cleanup`"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("no runs yet"), "{}", out.stdout);
    let out = env.run(&["schedules", "show", LEGACY]).await;
    ok(&out);
    assert!(
        out.stdout
            .contains("unreadable, does not fire: schedules.legacy_export.timezone"),
        "{}",
        out.stdout
    );
}

async fn schedules_next_lists_fire_times_in_utc_and_the_schedules_zone(env: Env) {
    setup(&env).await;
    let v = json(
        &env.run(&["schedules", "next", NIGHTLY, "-n", "3", "--json"])
            .await,
    );
    assert_eq!(
        (v["name"].as_str(), v["timezone"].as_str()),
        (Some(NIGHTLY), Some("Europe/London"))
    );
    let fires: Vec<DateTime<Utc>> = v["next_fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| time(&f["at"]))
        .collect();
    assert_eq!(fires.len(), 3);
    assert!(fires[0] > Utc::now());
    for pair in fires.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= TimeDelta::hours(23) && gap <= TimeDelta::hours(25),
            "{fires:?}"
        );
    }
    let library = env.client().await.schedule(NIGHTLY, 3).await.unwrap();
    assert_eq!(fires, library.next);

    // Default 10; every 15m in UTC, no wall clock.
    let v = json(&env.run(&["schedules", "next", SYNC, "--json"]).await);
    let fires = v["next_fires"].as_array().unwrap();
    assert_eq!(fires.len(), 10);
    assert_eq!(
        time(&fires[1]["at"]) - time(&fires[0]["at"]),
        TimeDelta::minutes(15)
    );
    assert!(fires.iter().all(|f| f["local"].is_null()));
    assert_eq!(v["timezone"], Value::Null);
    let v = json(
        &env.run(&["schedules", "next", SYNC, "--count", "1000", "--json"])
            .await,
    );
    assert_eq!(v["next_fires"].as_array().unwrap().len(), 1000);

    let out = env.run(&["schedules", "next", NIGHTLY, "-n", "2"]).await;
    ok(&out);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0], "nightly_report: 0 2 * * * (Europe/London); the next 2 fires:",
        "{}",
        out.stdout
    );
    assert!(
        lines[1].starts_with("#  WHEN (UTC)") && lines[1].ends_with("Europe/London"),
        "{}",
        out.stdout
    );
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(
        lines[2].starts_with("1  in ") && lines[2].contains(" 02:00:00 "),
        "{}",
        out.stdout
    );
    let out = env.run(&["schedules", "next", SYNC, "-n", "2"]).await;
    assert_eq!(
        out.stdout.lines().nth(1),
        Some("#  WHEN (UTC)"),
        "{}",
        out.stdout
    );

    let v = json(&env.run(&["schedules", "next", WEEKLY, "--json"]).await);
    assert_eq!(
        (
            v["paused"].as_bool(),
            v["next_fires"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0))
    );
    let out = env.run(&["schedules", "next", WEEKLY]).await;
    ok(&out);
    assert!(
        out.stdout.starts_with("weekly_cleanup is paused"),
        "{}",
        out.stdout
    );
    let v = json(&env.run(&["schedules", "next", LEGACY, "--json"]).await);
    assert!(
        v["problem"].is_string() && v["next_fires"] == serde_json::json!([]),
        "{v}"
    );
}

async fn schedules_pause_and_resume_report_each_name(env: Env) {
    setup(&env).await;
    let client = env.client().await;
    let out = env.run(&["schedules", "pause", NIGHTLY]).await;
    ok(&out);
    assert!(out.stdout.starts_with("schedule nightly_report: paused; it does not fire until `errand schedules resume nightly_report`"), "{out:?}");
    assert!(client.schedule(NIGHTLY, 0).await.unwrap().info.paused);

    // Already paused: said so, left as it is, exit 0 (as `queues pause` is idempotent).
    let before = schedule_state(&env).await;
    let v = json(
        &env.run(&["schedules", "pause", NIGHTLY, WEEKLY, NIGHTLY, "--json"])
            .await,
    );
    assert_eq!(
        v,
        serde_json::json!({"schedules": [
            {"name": NIGHTLY, "outcome": "unchanged", "paused": true, "next_fire_at": null},
            {"name": WEEKLY, "outcome": "unchanged", "paused": true, "next_fire_at": null},
        ]})
    );
    assert_eq!(schedule_state(&env).await, before, "nothing was written");
    let out = env.run(&["schedules", "pause", WEEKLY]).await;
    assert_eq!(
        out.stdout,
        "schedule weekly_cleanup: already paused, unchanged\n"
    );

    let sync_before = client.schedule(SYNC, 0).await.unwrap().info;
    let v = json(
        &env.run(&["schedules", "resume", NIGHTLY, WEEKLY, SYNC, "--json"])
            .await,
    );
    let outcomes: Vec<&str> = v["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["resumed", "resumed", "unchanged"]);
    assert!(v["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["paused"] == false && s["next_fire_at"].is_string()));
    for name in [NIGHTLY, WEEKLY] {
        let info = client.schedule(name, 0).await.unwrap().info;
        assert!(!info.paused, "{name}");
        // Resumed from now on: the paused span is not a misfire.
        assert!(
            Utc::now() - info.last_fire_at < TimeDelta::minutes(1),
            "{name}: {info:?}"
        );
    }
    // A schedule that was not paused is not resumed (that would drop its missed fires).
    let sync_after = client.schedule(SYNC, 0).await.unwrap().info;
    assert_eq!(
        (sync_after.last_fire_at, sync_after.updated_at),
        (sync_before.last_fire_at, sync_before.updated_at)
    );

    let out = env.run(&["schedules", "resume", SYNC]).await;
    assert_eq!(out.stdout, "schedule sync_crm: not paused, unchanged\n");
    let out = env.run(&["schedules", "pause", SYNC]).await;
    ok(&out);
    let out = env.run(&["schedules", "resume", SYNC]).await;
    ok(&out);
    assert!(
        out.stdout
            .starts_with("schedule sync_crm: resumed; next fire in "),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("; fires missed while paused do not run\n"),
        "{out:?}"
    );
}

async fn schedules_trigger_enqueues_the_job_now_and_leaves_the_fires_alone(env: Env) {
    setup(&env).await;
    let client = env.client().await;
    let before = client.schedule(NIGHTLY, 0).await.unwrap().info;
    let v = json(&env.run(&["schedules", "trigger", NIGHTLY, "--json"]).await);
    assert_eq!(
        v,
        serde_json::json!({"name": NIGHTLY, "job_id": 8, "kind": "build_report", "queue": "reports"})
    );
    let job = env.job(8).await;
    assert_eq!(
        (job.kind.as_str(), job.queue.as_str(), job.status),
        ("build_report", "reports", JobStatus::Queued)
    );
    assert_eq!(
        job.args.to_value()["smtp_password"],
        "hunter2",
        "the job gets the real arguments"
    );
    assert_eq!(
        (job.reference_type.as_deref(), job.reference_id.as_deref()),
        (Some("schedule"), Some(NIGHTLY))
    );
    let after = client.schedule(NIGHTLY, 0).await.unwrap();
    assert_eq!(after.info.last_job_id, Some(8));
    assert_eq!(after.runs[0].outcome, errand::FireKind::Triggered);
    assert_eq!(
        after.info.last_fire_at, before.last_fire_at,
        "the fires are not moved"
    );
    assert_eq!(after.info.next_fire_at, before.next_fire_at);

    // A paused schedule runs too, and stays paused.
    let out = env.run(&["schedules", "trigger", WEEKLY]).await;
    ok(&out);
    assert_eq!(
        out.stdout,
        "schedule weekly_cleanup: enqueued job 9 (purge_tmp on queue default); its next fire is unchanged, the schedule stays paused\n"
    );
    assert_eq!(env.job(9).await.kind, "purge_tmp");
    assert!(client.schedule(WEEKLY, 0).await.unwrap().info.paused);
    let out = env.run(&["schedules", "trigger", SYNC]).await;
    ok(&out);
    assert!(
        out.stdout
            .starts_with("schedule sync_crm: enqueued job 10 (sync_crm on queue crm)"),
        "{out:?}"
    );
    assert!(out.stdout.contains("\nnext fire: in "), "{out:?}");

    // Job 8 is still queued: under `overlap = "skip"` a second trigger enqueues nothing, says
    // why and exits 3; --force runs it beside job 8.
    let out = env.run(&["schedules", "trigger", NIGHTLY]).await;
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr.contains("schedule `nightly_report` not triggered: its previous run (job 8) is still queued and its overlap policy is `skip`"),
        "{out:?}"
    );
    let out = env.run(&["schedules", "trigger", NIGHTLY, "--json"]).await;
    assert_eq!(out.code, Some(3), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (&v["skipped"], &v["reason"], &v["job_id"], &v["live_job_id"]),
        (
            &Value::from(true),
            &Value::from("overlap_skipped"),
            &Value::Null,
            &Value::from(8)
        )
    );
    assert_eq!(env.all_jobs().await.len(), 10, "nothing enqueued");
    let v = json(
        &env.run(&["schedules", "trigger", NIGHTLY, "--force", "--json"])
            .await,
    );
    assert_eq!(v["job_id"], 11);
    assert_eq!(env.job(8).await.status, JobStatus::Queued);
    assert_eq!(env.job(11).await.status, JobStatus::Queued);
}

async fn bad_schedule_input_exits_2_names_it_and_changes_nothing(env: Env) {
    setup(&env).await;
    let jobs = env.all_jobs().await;
    let schedules = schedule_state(&env).await;
    let cases: &[(&[&str], &str)] = &[
        (
            &["schedules", "show", "nightly_reprot"],
            "schedule `nightly_reprot` not found (`errand schedules list` shows the names)",
        ),
        (&["schedules", "next", "nope"], "schedule `nope` not found"),
        (
            &["schedules", "next", NIGHTLY, "-n", "0"],
            "invalid value '0' for '--count <N>': 0 is not in 1..=1000",
        ),
        (
            &["schedules", "next", NIGHTLY, "-n", "1001"],
            "invalid value '1001' for '--count <N>': 1001 is not in 1..=1000",
        ),
        (
            &["schedules", "next", NIGHTLY, "-n", "ten"],
            "invalid value 'ten' for '--count <N>'",
        ),
        (
            &["schedules", "next", NIGHTLY, "-n", "-3"],
            "invalid value '-3' for '--count <N>'",
        ),
        (
            &["schedules", "pause", NIGHTLY, "nope"],
            "schedule `nope` not found: nothing was changed",
        ),
        (
            &["schedules", "pause", "a", NIGHTLY, "b"],
            "schedules `a`, `b` not found: nothing was changed",
        ),
        (
            &["schedules", "resume", WEEKLY, "nope"],
            "schedule `nope` not found: nothing was changed",
        ),
        (
            &["schedules", "trigger", "nope"],
            "schedule `nope` not found: nothing was changed",
        ),
        (
            &["schedules", "trigger", "--json", "nope"],
            "schedule `nope` not found",
        ),
        (&["schedules", "pause"], "<NAME>"),
        (&["schedules", "trigger"], "<NAME>"),
        (
            &["schedules", "delete", NIGHTLY],
            "unrecognized subcommand 'delete'",
        ),
    ];
    env.expect_bad_input(cases).await;
    // A schedule that cannot be read is in no state to run: exit 3, nothing enqueued.
    let out = env.run(&["schedules", "trigger", LEGACY]).await;
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr.contains("schedule legacy_export cannot be read, so nothing was enqueued: schedules.legacy_export.timezone"),
        "{out:?}"
    );
    assert_eq!(env.all_jobs().await, jobs, "bad input changed a job");
    assert_eq!(
        schedule_state(&env).await,
        schedules,
        "bad input changed a schedule"
    );
}
