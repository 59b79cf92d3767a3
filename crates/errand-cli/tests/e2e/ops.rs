//! The operator commands (`stats`, `jobs ...`, `queues ...`, `workers list`) through the real
//! binary against a database holding jobs in every state (`fixture`), checked with the
//! library client; bad input exits 2 and changes nothing.

use crate::common::{e2e, json, ok, Env};
use crate::fixture::{self, *};
use errand::{JobId, JobStatus};
use serde_json::Value;

e2e!(
    stats_counts_states_and_recent_runs,
    jobs_list_filters_by_state_queue_kind_reference_since_and_pages,
    jobs_show_prints_fields_timeline_and_every_error_in_full,
    jobs_retry_by_id_and_every_failed_job,
    jobs_cancel_by_id_and_every_queued_job,
    jobs_purge_deletes_old_finished_jobs_only,
    jobs_stuck_lists_and_rescue_requeues,
    queues_list_pause_resume,
    workers_list_shows_registered_processes,
    bad_input_exits_2_names_the_problem_and_changes_nothing,
    operator_commands_never_create_or_migrate_a_database,
    on_a_terminal_colour_the_prompt_and_progress,
);

async fn setup(env: &Env) {
    fixture::every_state(env.client().await, None).await;
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}

async fn status(env: &Env, id: JobId) -> JobStatus {
    env.job(id).await.status
}

async fn stats_counts_states_and_recent_runs(env: Env) {
    setup(&env).await;
    let before = chrono::Utc::now();
    let v = json(&env.run(&["stats", "--json"]).await);
    let after = chrono::Utc::now();
    let q = |name: &str| {
        v["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name)
            .unwrap_or_else(|| panic!("no queue {name} in {v}"))
            .clone()
    };
    let email = q("email");
    let counts: Vec<u64> = [
        "queued",
        "scheduled",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    ]
    .iter()
    .map(|k| email["counts"][k].as_u64().unwrap())
    .collect();
    assert_eq!(counts, vec![2, 1, 2, 1, 1, 1], "{email}");
    assert!(email["oldest_ready_run_at"].is_string(), "{email}");
    // The age is the time from the oldest ready job's run_at to the moment stats ran.
    let run_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(email["oldest_ready_run_at"].clone()).unwrap();
    let age = email["oldest_ready_age_ms"].as_i64().unwrap();
    let (least, most) = (
        (before - run_at).num_milliseconds() - 1,
        (after - run_at).num_milliseconds() + 1,
    );
    assert!(least > 0, "the fixture's ready job is in the past: {email}");
    assert!(
        (least..=most).contains(&age),
        "age {age} ms outside {least}..={most}: {email}"
    );
    assert_eq!(email["recent"]["succeeded"], 1);
    assert_eq!(email["recent"]["failed"], 1);
    assert_eq!(email["recent"]["cancelled"], 1);
    // (1 succeeded + 1 failed) in 60 minutes.
    assert_eq!(
        email["recent"]["throughput_per_min"].as_f64().unwrap(),
        2.0 / 60.0
    );
    assert!(email["recent"]["duration_p95_ms"].as_f64().unwrap() >= 0.0);
    let reports = q("reports");
    assert_eq!(reports["recent"]["succeeded"], 2);
    assert_eq!(reports["counts"]["queued"], 1);
    let indexing = q("indexing");
    assert_eq!(indexing["paused"], true);
    assert_eq!(indexing["recent"]["duration_avg_ms"], Value::Null);
    assert_eq!(v["window_ms"], 3_600_000);

    let narrow = json(&env.run(&["stats", "--json", "--window", "30m"]).await);
    assert_eq!(narrow["window_ms"], 1_800_000);

    let text = env.run(&["stats"]).await;
    ok(&text);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert!(
        lines[0].starts_with("QUEUE") && lines[0].contains("OLDEST READY"),
        "{}",
        text.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("indexing") && l.contains("paused")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("Finished in the last 1h"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("now (") || text.stdout.contains(" ago ("),
        "times are relative and absolute: {}",
        text.stdout
    );
    assert!(
        !text.stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

async fn jobs_list_filters_by_state_queue_kind_reference_since_and_pages(env: Env) {
    setup(&env).await;
    let list = |args: &'static [&'static str]| {
        let env = &env;
        async move {
            let mut all = vec!["jobs", "list", "--json"];
            all.extend_from_slice(args);
            json(&env.run(&all).await)
        }
    };
    let all = list(&[]).await;
    assert_eq!(ids(&all["jobs"]), (1..=12).rev().collect::<Vec<_>>());
    assert_eq!(all["next_cursor"], Value::Null);
    for (state, expected) in [
        ("queued", vec![PAUSED_QUEUED, RETRYING, SCHEDULED, QUEUED]),
        ("running", vec![STUCK, RUNNING]),
        ("succeeded", vec![9, 8, SUCCEEDED]),
        ("failed", vec![REPORT_FAILED, FAILED]),
        ("cancelled", vec![CANCELLED]),
        ("scheduled", vec![SCHEDULED]),
        ("retrying", vec![RETRYING]),
        ("stuck", vec![STUCK]),
    ] {
        let v = json(&env.run(&["jobs", "list", "--json", "--state", state]).await);
        assert_eq!(ids(&v["jobs"]), expected, "--state {state}");
    }
    let v = json(
        &env.run(&["jobs", "list", "--json", "--status", "stuck"])
            .await,
    );
    assert_eq!(v["jobs"][0]["derived"], "stuck");
    assert_eq!(v["jobs"][0]["status"], "running");
    assert_eq!(
        ids(&list(&["--queue", "reports"]).await["jobs"]),
        vec![11, 10, 9, 8]
    );
    assert_eq!(ids(&list(&["--kind", "reindex"]).await["jobs"]), vec![12]);
    assert_eq!(
        ids(&list(&["--reference", "file_upload:42"]).await["jobs"]),
        vec![12]
    );
    assert_eq!(
        ids(&list(&["--reference", "user"]).await["jobs"]),
        vec![FAILED]
    );
    assert_eq!(
        ids(&list(&["--queue", "email", "--state", "failed"]).await["jobs"]),
        vec![FAILED]
    );
    assert_eq!(ids(&list(&["--since", "1h"]).await["jobs"]).len(), 12);
    assert_eq!(
        ids(&list(&["--since", "2999-01-01T00:00:00Z"]).await["jobs"]).len(),
        0
    );

    // Paging: 5 + 5 + 2, each page starting below the previous cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..3 {
        let mut args = vec!["jobs", "list", "--json", "--limit", "5"];
        let c;
        if let Some(cur) = &cursor {
            c = cur.clone();
            args.extend(["--cursor", c.as_str()]);
        }
        let v = json(&env.run(&args).await);
        seen.extend(ids(&v["jobs"]));
        cursor = v["next_cursor"].as_i64().map(|c| c.to_string());
    }
    assert_eq!(seen, (1..=12).rev().collect::<Vec<_>>());
    assert_eq!(cursor, None);

    // The table: aligned columns, derived state words, the next page's cursor.
    let text = env.run(&["jobs", "list", "--limit", "3"]).await;
    ok(&text);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert!(lines[0].starts_with("ID  STATE"), "{}", text.stdout);
    assert!(lines[1].contains("12  queued"), "{}", text.stdout);
    assert!(lines[2].contains("11  retrying"), "{}", text.stdout);
    assert!(
        lines[2].contains("DatabaseError: deadlock detected"),
        "{}",
        text.stdout
    );
    assert_eq!(lines[4], "more: add --cursor 10 for the next 3 jobs");
    let empty = env.run(&["jobs", "list", "--kind", "nothing"]).await;
    assert_eq!(empty.stdout.trim(), "no jobs match");
}

async fn jobs_show_prints_fields_timeline_and_every_error_in_full(env: Env) {
    setup(&env).await;
    let out = env.run(&["jobs", "show", &FAILED.to_string()]).await;
    ok(&out);
    let text = &out.stdout;
    for needle in [
        "job:",
        "state:",
        "failed",
        "attempt:",
        "2 of 2",
        "reference:",
        "user:7",
        "Timeline",
        "created",
        "attempt 1 failed (demo-host-1): ConnectionError",
        ", retry at ",
        "attempt 2 failed (demo-host-1): TimeoutError",
        ", failed for good",
        "Errors",
        "attempt 1 at ",
        "attempt 2 at ",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    // Every line of every error, in full.
    for line in FIRST_ERROR.lines().chain(LAST_ERROR.lines()) {
        assert!(text.contains(line.trim()), "{line:?} missing from:\n{text}");
    }
    // The last attempt's progress report, its secret redacted.
    for needle in [
        "progress:",
        r#""message":"connecting""#,
        r#""smtp_password":"[redacted]""#,
        "progress at:",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(!text.contains("pw-1"), "{text}");
    // Secrets in arguments never reach the output.
    let out = env.run(&["jobs", "show", &QUEUED.to_string()]).await;
    assert!(out.stdout.contains("[redacted]"), "{}", out.stdout);
    assert!(!out.stdout.contains("s3cret"), "{}", out.stdout);
    let v = json(
        &env.run(&["jobs", "show", &QUEUED.to_string(), "--json"])
            .await,
    );
    assert_eq!(v["job"]["args"]["api_token"], "[redacted]");

    let v = json(
        &env.run(&["jobs", "show", &FAILED.to_string(), "--json"])
            .await,
    );
    assert_eq!(v["job"]["status"], "failed");
    assert_eq!(v["job"]["last_error"], LAST_ERROR);
    assert_eq!(v["job"]["progress"]["smtp_password"], "[redacted]");
    assert_eq!(v["job"]["progress"]["done"], 1);
    assert!(v["job"]["progress_at"].is_string());
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["message"], FIRST_ERROR);
    assert_eq!(events[0]["data"]["next"], "retry");
    assert_eq!(events[1]["data"]["next"], "failed");

    let out = env.run(&["jobs", "show", &SUCCEEDED.to_string()]).await;
    assert!(out.stdout.contains("succeeded"), "{}", out.stdout);
    assert!(out.stdout.contains("ran for:"), "{}", out.stdout);
    assert!(
        out.stdout.contains(r#""message_id":"<1@example.com>""#),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("Errors"), "{}", out.stdout);
}

async fn jobs_retry_by_id_and_every_failed_job(env: Env) {
    setup(&env).await;
    let out = env.run(&["jobs", "retry", &FAILED.to_string()]).await;
    ok(&out);
    assert_eq!(out.stdout.trim(), "job 2: retried, queued to run now");
    let job = env.job(FAILED).await;
    assert_eq!((job.status, job.attempt), (JobStatus::Queued, 0));

    // A job that is not failed or cancelled is left alone: exit 3, the others are retried.
    let out = env
        .run(&[
            "jobs",
            "retry",
            &RUNNING.to_string(),
            &CANCELLED.to_string(),
            "--json",
        ])
        .await;
    assert_eq!(out.code, Some(3), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["results"][0]["outcome"], "unchanged");
    assert_eq!(v["results"][0]["status"], "running");
    assert_eq!(v["results"][1]["outcome"], "retried");
    assert!(
        out.stderr.contains("not retried: job 3 is running"),
        "{out:?}"
    );
    assert_eq!(status(&env, CANCELLED).await, JobStatus::Queued);

    // Every failed job: refused without --yes when stdin is not a terminal.
    let out = env.run(&["jobs", "retry", "--failed"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("Retry 1 failed job: refusing without --yes"),
        "{out:?}"
    );
    assert_eq!(status(&env, REPORT_FAILED).await, JobStatus::Failed);
    let out = env
        .run(&["jobs", "retry", "--failed", "--queue", "email", "--yes"])
        .await;
    ok(&out);
    assert_eq!(out.stdout.trim(), "retried 0 failed jobs in queue email");
    assert_eq!(status(&env, REPORT_FAILED).await, JobStatus::Failed);
    let v = json(
        &env.run(&["jobs", "retry", "--failed", "--yes", "--json"])
            .await,
    );
    assert_eq!(v["retried"], 1);
    assert_eq!(status(&env, REPORT_FAILED).await, JobStatus::Queued);
}

async fn jobs_cancel_by_id_and_every_queued_job(env: Env) {
    setup(&env).await;
    let out = env
        .run(&[
            "jobs",
            "cancel",
            &QUEUED.to_string(),
            &RUNNING.to_string(),
            "--reason",
            "bad batch",
        ])
        .await;
    ok(&out);
    assert_eq!(
        out.stdout,
        "job 6: cancelled\njob 3: running; its worker was asked to stop it\n"
    );
    assert_eq!(status(&env, QUEUED).await, JobStatus::Cancelled);
    assert!(env.job(RUNNING).await.cancel_requested_at.is_some());
    let events = env.events(QUEUED).await;
    assert_eq!(events.last().unwrap().message.as_deref(), Some("bad batch"));

    let out = env
        .run(&["jobs", "cancel", &SUCCEEDED.to_string(), "--json"])
        .await;
    assert_eq!(out.code, Some(3), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["results"][0]["outcome"], "unchanged");
    assert_eq!(v["results"][0]["status"], "succeeded");

    // Clearing pending jobs: refused without --yes, then only the queue asked for.
    let out = env
        .run(&["jobs", "cancel", "--queued", "--queue", "reports"])
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("refusing without --yes"), "{out:?}");
    assert_eq!(status(&env, RETRYING).await, JobStatus::Queued);
    let out = env
        .run(&["jobs", "cancel", "--queued", "--queue", "reports", "--yes"])
        .await;
    ok(&out);
    assert_eq!(out.stdout.trim(), "cancelled 1 queued job in queue reports");
    assert_eq!(status(&env, RETRYING).await, JobStatus::Cancelled);
    assert_eq!(status(&env, SCHEDULED).await, JobStatus::Queued);
    let v = json(
        &env.run(&["jobs", "cancel", "--queued", "--yes", "--json"])
            .await,
    );
    assert_eq!(
        v["cancelled"], 2,
        "the scheduled job and the paused queue's job"
    );
    assert_eq!(status(&env, SCHEDULED).await, JobStatus::Cancelled);
    assert_eq!(status(&env, PAUSED_QUEUED).await, JobStatus::Cancelled);
    assert_eq!(
        status(&env, STUCK).await,
        JobStatus::Running,
        "running jobs are not queued"
    );
}

async fn jobs_purge_deletes_old_finished_jobs_only(env: Env) {
    setup(&env).await;
    // Everything finished just now: nothing is older than an hour.
    let out = env
        .run(&["jobs", "purge", "--older-than", "1h", "--yes"])
        .await;
    ok(&out);
    assert!(
        out.stdout
            .starts_with("deleted 0 jobs (succeeded, cancelled)"),
        "{out:?}"
    );
    let out = env.run(&["jobs", "purge", "--older-than", "0s"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("refusing without --yes"), "{out:?}");
    assert_eq!(env.all_jobs().await.len(), 12);

    let v = json(
        &env.run(&["jobs", "purge", "--older-than", "0s", "--yes", "--json"])
            .await,
    );
    assert_eq!(v["purged"], 4, "{v}"); // 1, 8, 9 succeeded and 5 cancelled
    assert_eq!(v["statuses"], serde_json::json!(["succeeded", "cancelled"]));
    let left: Vec<i64> = env.all_jobs().await.iter().map(|j| j.id).collect();
    assert_eq!(left, vec![12, 11, 10, 7, 6, 4, 3, 2]);
    let v = json(
        &env.run(&[
            "jobs",
            "purge",
            "--older-than",
            "0s",
            "--include-failed",
            "--yes",
            "--json",
        ])
        .await,
    );
    assert_eq!(v["purged"], 2);
    let left: Vec<i64> = env.all_jobs().await.iter().map(|j| j.id).collect();
    assert_eq!(
        left,
        vec![12, 11, 7, 6, 4, 3],
        "queued and running jobs stay"
    );
}

async fn jobs_stuck_lists_and_rescue_requeues(env: Env) {
    setup(&env).await;
    let v = json(&env.run(&["jobs", "stuck", "--json"]).await);
    assert_eq!(ids(&v["jobs"]), vec![STUCK]);
    assert_eq!(v["jobs"][0]["worker_id"], "demo-host-2");
    let text = env.run(&["jobs", "stuck"]).await;
    ok(&text);
    assert!(
        text.stdout.lines().nth(1).unwrap().contains("demo-host-2"),
        "{}",
        text.stdout
    );

    let out = env.run(&["jobs", "rescue"]).await;
    ok(&out);
    assert!(out.stdout.starts_with("rescued 1 stuck job"), "{out:?}");
    let job = env.job(STUCK).await;
    assert_eq!(
        (job.status, job.attempt),
        (JobStatus::Queued, 1),
        "requeued; the attempt counts"
    );
    assert_eq!(
        status(&env, RUNNING).await,
        JobStatus::Running,
        "a live lease is left alone"
    );
    let out = env.run(&["jobs", "stuck"]).await;
    assert!(out.stdout.starts_with("no stuck jobs"), "{out:?}");
    let v = json(&env.run(&["jobs", "rescue", "--json"]).await);
    assert_eq!(v["rescued"], 0);
}

async fn queues_list_pause_resume(env: Env) {
    setup(&env).await;
    let v = json(&env.run(&["queues", "list", "--json"]).await);
    let names: Vec<&str> = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["email", "indexing", "reports"]);
    assert_eq!(v["queues"][1]["paused"], true);
    assert!(v["queues"][1]["paused_at"].is_string());

    let out = env.run(&["queues", "pause", "email"]).await;
    ok(&out);
    assert!(out.stdout.starts_with("queue email: paused"), "{out:?}");
    let stats = env.client().await.queue_stats().await.unwrap();
    assert!(stats.iter().find(|s| s.queue == "email").unwrap().paused);
    let out = env.run(&["queues", "resume", "email", "indexing"]).await;
    ok(&out);
    assert_eq!(
        out.stdout,
        "queue email: resumed\nqueue indexing: resumed\n"
    );
    let stats = env.client().await.queue_stats().await.unwrap();
    assert!(stats.iter().all(|s| !s.paused));

    // The emergency stop: every queue at once.
    let v = json(&env.run(&["queues", "pause", "--all", "--json"]).await);
    assert_eq!(v["queues"].as_array().unwrap().len(), 3);
    let stats = env.client().await.queue_stats().await.unwrap();
    assert!(stats.iter().all(|s| s.paused));
    let text = env.run(&["queues", "list"]).await;
    assert_eq!(text.stdout.matches("paused").count(), 3, "{}", text.stdout);
}

async fn workers_list_shows_registered_processes(env: Env) {
    setup(&env).await;
    let v = json(&env.run(&["workers", "list", "--json"]).await);
    let w = &v["workers"][0];
    assert_eq!(w["id"], "demo-host-1");
    assert_eq!(w["host"], "demo-host");
    assert_eq!(w["pid"], 4242);
    assert_eq!(
        w["queues"][0],
        serde_json::json!({"name": "email", "concurrency": 4})
    );
    let text = env.run(&["workers", "list"]).await;
    ok(&text);
    assert!(text.stdout.contains("email:4,reports:1"), "{}", text.stdout);
}

async fn bad_input_exits_2_names_the_problem_and_changes_nothing(env: Env) {
    setup(&env).await;
    let before = env.all_jobs().await;
    let cases: &[(&[&str], &str)] = &[
        (&["jobs", "show", "999999"], "job 999999 not found"),
        (&["jobs", "show", "abc"], "`abc` is not a job id"),
        (
            &["jobs", "retry", "2", "999999"],
            "job 999999 not found: nothing was changed",
        ),
        (
            &["jobs", "cancel", "6", "888888", "999999"],
            "jobs 888888, 999999 not found: nothing was changed",
        ),
        (&["jobs", "cancel", "-3"], "`-3` is not a job id"),
        (
            &["jobs", "list", "--state", "doing"],
            "--state: unknown state `doing` (expected one of: queued, running",
        ),
        (
            &["jobs", "list", "--since", "yesterday"],
            "--since: `yesterday` is neither an age",
        ),
        (
            &["jobs", "list", "--cursor", "next"],
            "--cursor: `next` is not a cursor",
        ),
        (
            &["jobs", "list", "--reference", ":42"],
            "--reference: expected TYPE:ID or TYPE",
        ),
        (
            &["jobs", "list", "--limit", "0"],
            "invalid value '0' for '--limit <N>'",
        ),
        (
            &["jobs", "purge", "--older-than", "30x", "--yes"],
            "--older-than: invalid duration `30x`: unknown unit `x`",
        ),
        (&["jobs", "purge", "--yes"], "--older-than <AGE>"),
        (
            &["stats", "--window", "soon"],
            "--window: invalid duration `soon`",
        ),
        (
            &["queues", "pause", " email"],
            "queue ` email`: may hold only ASCII letters, digits and `_-.:/`, found U+0020",
        ),
        (&["jobs", "retry", "--queue", "email"], "--failed"),
        (&["jobs", "retry", "2", "--failed"], "cannot be used with"),
    ];
    env.expect_bad_input(cases).await;
    assert_eq!(env.all_jobs().await, before, "bad input changed a job");
    let stats = env.client().await.queue_stats().await.unwrap();
    assert!(stats.iter().all(|s| s.paused == (s.queue == "indexing")));
}

async fn operator_commands_never_create_or_migrate_a_database(env: Env) {
    let missing = env.path("typo.db");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["--database", missing.as_str(), "jobs", "list"])
        .current_dir(&env.dir)
        .env_remove("ERRAND_DATABASE_URL")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("no database at {missing}")),
        "{stderr}"
    );
    assert!(
        !std::path::Path::new(&missing).exists(),
        "a database was created"
    );

    // An existing database without the schema (here: the test's own, before any migrate).
    if !env.url.starts_with("postgres") {
        std::fs::write(&env.url, b"").unwrap();
    }
    let out = env.run(&["stats"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("holds no Errand schema: run `errand migrate`"),
        "{out:?}"
    );
}

/// Every command's `--help` shows an example (and the top level the exit codes).
#[test]
fn every_command_has_help_with_an_example() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["worker"],
        &["migrate"],
        &["enqueue"],
        &["stats"],
        &["jobs"],
        &["jobs", "list"],
        &["jobs", "show"],
        &["jobs", "retry"],
        &["jobs", "cancel"],
        &["jobs", "purge"],
        &["jobs", "stuck"],
        &["jobs", "rescue"],
        &["queues"],
        &["queues", "list"],
        &["queues", "pause"],
        &["queues", "resume"],
        &["workers"],
        &["workers", "list"],
        &["schedules"],
        &["schedules", "list"],
        &["schedules", "show"],
        &["schedules", "next"],
        &["schedules", "pause"],
        &["schedules", "resume"],
        &["schedules", "trigger"],
    ];
    for path in commands {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_errand"))
            .args(*path)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{path:?}");
        assert!(
            text.contains("Example"),
            "`errand {} --help` has no example:\n{text}",
            path.join(" ")
        );
        assert!(text.contains("errand "), "{path:?}:\n{text}");
    }
    let top = std::process::Command::new(env!("CARGO_BIN_EXE_errand"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&top.stdout);
    for code in [
        "0  done",
        "2  bad input",
        "3  some of the named jobs",
        "4  declined",
    ] {
        assert!(
            text.contains(code),
            "exit code {code:?} missing from --help:\n{text}"
        );
    }
}

/// Runs the binary on a pseudo-terminal (util-linux `script`), so stdin, stdout and stderr are
/// a terminal, typing `input`; returns the exit code and everything the terminal showed.
pub(crate) async fn on_terminal(
    env: &Env,
    args: &[&str],
    input: &str,
    no_color: bool,
) -> (Option<i32>, String) {
    let mut line = format!("{} --database '{}'", env!("CARGO_BIN_EXE_errand"), env.url);
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .current_dir(&env.dir)
        .env_remove("ERRAND_DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let mut child = cmd
        .spawn()
        .expect("util-linux `script` runs the binary on a terminal");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
    }
    let out = tokio::time::timeout(crate::common::PATIENCE, child.wait_with_output())
        .await
        .expect("the command finished")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn on_a_terminal_colour_the_prompt_and_progress(env: Env) {
    setup(&env).await;
    // Colour on a terminal, none with NO_COLOR.
    let (code, shown) = on_terminal(&env, &["jobs", "list", "--state", "failed"], "", false).await;
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("\x1b[31mfailed\x1b[0m"), "{shown:?}");
    let (_, shown) = on_terminal(&env, &["jobs", "list", "--state", "failed"], "", true).await;
    assert!(!shown.contains('\x1b'), "{shown:?}");
    assert!(shown.contains("failed"), "{shown:?}");

    // The prompt: anything but yes declines (exit 4) and changes nothing.
    let (code, shown) = on_terminal(&env, &["jobs", "retry", "--failed"], "n\n", true).await;
    assert_eq!(code, Some(4), "{shown}");
    assert!(shown.contains("Retry 2 failed jobs? [y/N]"), "{shown:?}");
    assert!(
        shown.contains("not confirmed: nothing was changed"),
        "{shown:?}"
    );
    assert_eq!(status(&env, FAILED).await, JobStatus::Failed);
    let (code, shown) =
        on_terminal(&env, &["jobs", "purge", "--older-than", "0s"], "\n", true).await;
    assert_eq!(code, Some(4), "{shown}");
    assert_eq!(env.all_jobs().await.len(), 12);

    // Yes: done, with the running count on the terminal's stderr.
    let (code, shown) = on_terminal(&env, &["jobs", "retry", "--failed"], "y\n", true).await;
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("retried: 2"), "progress: {shown:?}");
    assert!(shown.contains("retried 2 failed jobs"), "{shown:?}");
    assert_eq!(status(&env, FAILED).await, JobStatus::Queued);
    let (code, shown) = on_terminal(
        &env,
        &["jobs", "purge", "--older-than", "0s"],
        "yes\n",
        true,
    )
    .await;
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("deleted: 4"), "progress: {shown:?}");
}
