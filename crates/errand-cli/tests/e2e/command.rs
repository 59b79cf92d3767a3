//! Command handlers through `errand worker`: results, exit 75, failures, timeouts, cancels.

use crate::common::{e2e, enqueued_id, Env};
use errand::{EventKind, JobStatus};

e2e!(
    a_command_job_stores_its_json_result,
    exit_75_is_retried,
    a_failing_command_fails_after_max_attempts_with_its_stderr,
    a_command_over_its_timeout_is_killed,
    cancelling_a_running_command_stops_it,
);

/// The worker settings the tests use: quick polls, quick retries.
const WORKERS: &str = "[workers]\npoll_interval = \"100ms\"\n";

async fn a_command_job_stores_its_json_result(env: Env) {
    let script = env.script(
        "echo.sh",
        r#"args=$(cat)
echo "working on job $ERRAND_JOB_ID"
echo "attempt $ERRAND_ATTEMPT of $ERRAND_MAX_ATTEMPTS" >&2
printf '{"args":%s,"job":%s,"attempt":%s,"kind":"%s","queue":"%s"}\n' "$args" "$ERRAND_JOB_ID" "$ERRAND_ATTEMPT" "$ERRAND_KIND" "$ERRAND_QUEUE"
echo "done (not JSON)""#,
    );
    env.config(&format!(
        "{WORKERS}[tasks.echo]\ncommand = [\"sh\", \"{script}\"]\n"
    ));
    let id = enqueued_id(
        &env.run(&["enqueue", "echo", "--args", r#"{"n":7,"name":"ada"}"#])
            .await,
    );
    let worker = env.spawn(&["worker"], &[]);
    worker.ready().await;
    let job = env
        .wait_job(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    assert_eq!(
        job.result,
        Some(serde_json::json!({
            "args": {"n": 7, "name": "ada"}, "job": id, "attempt": 1, "kind": "echo", "queue": "default"
        }))
    );
    assert_eq!(job.attempt, 1);
    let log = worker.stop().await;
    assert!(!log.contains("ada"), "args were logged:\n{log}");
}

async fn exit_75_is_retried(env: Env) {
    let script = env.script(
        "flaky.sh",
        r#"if [ "$ERRAND_ATTEMPT" = 1 ]; then echo "database busy" >&2; exit 75; fi
echo '{"ok":true}'"#,
    );
    env.config(&format!(
        "{WORKERS}[tasks.flaky]\ncommand = [\"sh\", \"{script}\"]\nbackoff = {{ base = \"100ms\", cap = \"1s\" }}\n"
    ));
    let worker = env.spawn(&["worker"], &[]);
    worker.ready().await;
    let id = enqueued_id(&env.run(&["enqueue", "flaky"]).await);
    let job = env
        .wait_job(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    assert_eq!(job.attempt, 2);
    assert_eq!(job.result, Some(serde_json::json!({"ok": true})));
    let errors = env.events_of(id, EventKind::Error).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].message.as_deref(),
        Some("exit 75 (EX_TEMPFAIL): database busy")
    );
    worker.stop().await;
}

async fn a_failing_command_fails_after_max_attempts_with_its_stderr(env: Env) {
    let script = env.script(
        "fail.sh",
        "echo 'starting' >&2\necho 'boom: disk on fire' >&2\nexit 3",
    );
    env.config(&format!(
        "{WORKERS}[tasks.fail]\ncommand = [\"sh\", \"{script}\"]\nmax_attempts = 3\n\
         backoff = {{ base = \"100ms\", cap = \"200ms\" }}\n\
         [tasks.missing]\ncommand = [\"/nonexistent/errand-test-program\", \"--flag\"]\n"
    ));
    let failing = enqueued_id(&env.run(&["enqueue", "fail"]).await);
    let missing = enqueued_id(&env.run(&["enqueue", "missing"]).await);
    let worker = env.spawn(&["worker"], &[]);

    let job = env
        .wait_job(failing, "failed", |j| j.status == JobStatus::Failed)
        .await;
    assert_eq!((job.attempt, job.max_attempts), (3, 3));
    assert_eq!(
        job.last_error.as_deref(),
        Some("exit 3: starting\nboom: disk on fire")
    );
    // Every attempt is in the job's history: its number, its worker, its error with the
    // stderr tail, and what was decided (retry, then fail).
    let errors = env.events_of(failing, EventKind::Error).await;
    assert_eq!(
        errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        [1, 2, 3],
        "{errors:?}"
    );
    assert!(errors
        .iter()
        .all(|e| e.message.as_deref() == Some("exit 3: starting\nboom: disk on fire")));
    assert!(
        errors.iter().all(|e| e.worker_id == job.worker_id),
        "{errors:?}"
    );
    let decisions: Vec<_> = errors
        .iter()
        .map(|e| {
            e.data
                .as_ref()
                .and_then(|d| d["next"].as_str())
                .unwrap_or("?")
        })
        .collect();
    assert_eq!(decisions, ["retry", "retry", "failed"], "{errors:?}");

    // A program that does not exist fails for good on the first attempt.
    let job = env
        .wait_job(missing, "failed", |j| j.status == JobStatus::Failed)
        .await;
    assert_eq!((job.attempt, job.max_attempts), (1, 4));
    let error = job.last_error.unwrap();
    assert!(
        error.starts_with("cannot run `/nonexistent/errand-test-program`: no such program"),
        "{error}"
    );
    worker.stop().await;
}

async fn a_command_over_its_timeout_is_killed(env: Env) {
    // The script ignores SIGTERM, so the kill needs the SIGKILL that follows.
    let pid_file = env.path("slow.pid");
    let script = env.script(
        "slow.sh",
        &format!("trap '' TERM\necho $$ > {pid_file}\nwhile :; do sleep 1; done"),
    );
    env.config(&format!(
        "[workers]\npoll_interval = \"100ms\"\ncancel_grace = \"2s\"\n\
         [tasks.slow]\ncommand = [\"sh\", \"{script}\"]\ntimeout = \"1s\"\nmax_attempts = 1\n"
    ));
    let id = enqueued_id(&env.run(&["enqueue", "slow"]).await);
    let worker = env.spawn(&["worker"], &[]);
    let pid = env.wait_pid_file(&pid_file).await;
    let job = env
        .wait_job(id, "failed", |j| j.status == JobStatus::Failed)
        .await;
    let error = job.last_error.unwrap();
    assert!(error.starts_with("timed out after 1s"), "{error}");
    assert!(
        !error.contains("aborted"),
        "the handler should have killed the command in time: {error}"
    );
    env.wait_process_gone(pid).await;
    let log = worker.stop().await;
    assert!(log.contains("sending SIGKILL"), "{log}");
}

async fn cancelling_a_running_command_stops_it(env: Env) {
    let pid_file = env.path("long.pid");
    let script = env.script("long.sh", &format!("echo $$ > {pid_file}\nexec sleep 60"));
    // A short lease: cancel requests reach the worker with its heartbeat (every lease/3).
    env.config(&format!(
        "[workers]\npoll_interval = \"100ms\"\nlease = \"1500ms\"\n[tasks.long]\ncommand = [\"sh\", \"{script}\"]\n"
    ));
    let id = enqueued_id(&env.run(&["enqueue", "long"]).await);
    let worker = env.spawn(&["worker"], &[]);
    let pid = env.wait_pid_file(&pid_file).await;
    env.wait_job(id, "running", |j| j.status == JobStatus::Running)
        .await;
    env.client()
        .await
        .cancel(&[id], Some("operator says stop"))
        .await
        .unwrap();
    let job = env
        .wait_job(id, "cancelled", |j| j.status == JobStatus::Cancelled)
        .await;
    assert_eq!(job.attempt, 1);
    env.wait_process_gone(pid).await;
    worker.stop().await;
}
