//! The process around the jobs: graceful shutdown on SIGTERM and SIGINT, the emergency stop,
//! `errand worker`'s queue and concurrency flags, a worker killed with SIGKILL and rescued by
//! another.

use crate::common::{e2e, enqueued_id, Env, PATIENCE};
use errand::{EventKind, JobStatus};
use std::time::Duration;

e2e!(
    sigterm_lets_running_jobs_finish_and_hands_back_the_rest,
    sigint_drains_errand_serve_like_sigterm,
    workers_disabled_claims_nothing,
    worker_flags_choose_the_queues_and_their_concurrency,
    a_worker_killed_mid_job_is_rescued_by_another,
);

async fn sigterm_lets_running_jobs_finish_and_hands_back_the_rest(env: Env) {
    drain_on(env, "worker", libc::SIGTERM).await;
}

/// `errand serve` runs the configured tasks too, and Ctrl-C is a graceful stop.
async fn sigint_drains_errand_serve_like_sigterm(env: Env) {
    drain_on(env, "serve", libc::SIGINT).await;
}

/// Starts `errand COMMAND` with a short job and a long one running, stops it with `signal`:
/// the short one finishes within the grace, the long one is handed back unspent.
async fn drain_on(env: Env, command: &str, signal: i32) {
    let short = env.script("short.sh", "sleep 1.5\necho '{\"finished\":true}'");
    let long = env.script("long.sh", "exec sleep 60");
    env.config(&format!(
        "[workers]\npoll_interval = \"100ms\"\nshutdown_grace = \"3s\"\ncancel_grace = \"2s\"\n\
         [tasks.short]\ncommand = [\"sh\", \"{short}\"]\n\
         [tasks.long]\ncommand = [\"sh\", \"{long}\"]\n"
    ));
    let short = enqueued_id(&env.run(&["enqueue", "short"]).await);
    let long = enqueued_id(&env.run(&["enqueue", "long"]).await);
    let worker = env.spawn(&[command], &[]);
    env.wait_job(short, "running", |j| j.status == JobStatus::Running)
        .await;
    env.wait_job(long, "running", |j| j.status == JobStatus::Running)
        .await;

    let log = worker.stop_with(signal).await; // asserts exit code 0
    let name = if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    assert!(
        log.contains(&format!(
            "stopping: no new jobs are claimed; running jobs may finish signal=\"{name}\""
        )),
        "{log}"
    );
    assert!(log.contains("released=1"), "{log}");
    let job = env.job(short).await;
    assert_eq!(
        job.status,
        JobStatus::Succeeded,
        "the in-flight job finishes within the grace\n{log}"
    );
    assert_eq!(job.result, Some(serde_json::json!({"finished": true})));
    let job = env.job(long).await;
    assert_eq!(
        (job.status, job.attempt),
        (JobStatus::Queued, 0),
        "the job past the grace is handed back without spending its attempt\n{log}"
    );
    assert_eq!(env.events_of(long, EventKind::Released).await.len(), 1);
}

async fn workers_disabled_claims_nothing(env: Env) {
    env.config("[workers]\npoll_interval = \"100ms\"\n[tasks.t]\ncommand = [\"true\"]\n");
    let id = enqueued_id(&env.run(&["enqueue", "t"]).await);
    let worker = env.spawn(&["worker"], &[("ERRAND_WORKERS_ENABLED", "false")]);
    let ready = worker.ready().await;
    assert!(ready.contains("claiming=false"), "{ready}");
    worker
        .wait_for_line("not claiming jobs: ERRAND_WORKERS_ENABLED=false")
        .await;
    let job = env.job(id).await;
    assert_eq!((job.status, job.attempt), (JobStatus::Queued, 0));
    worker.stop().await;

    // The same database with workers enabled runs it: the job was claimable all along.
    let worker = env.spawn(&["worker"], &[]);
    env.wait_job(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    worker.stop().await;
}

async fn a_worker_killed_mid_job_is_rescued_by_another(env: Env) {
    let pid_file = env.path("first-attempt.pid");
    let script = env.script(
        "job.sh",
        &format!(
            "if [ \"$ERRAND_ATTEMPT\" = 1 ]; then echo $$ > {pid_file}; exec sleep 60; fi\n\
             echo '{{\"rescued_on_attempt\":'$ERRAND_ATTEMPT'}}'"
        ),
    );
    env.config(&format!(
        "[workers]\npoll_interval = \"100ms\"\nlease = \"2s\"\n[tasks.job]\ncommand = [\"sh\", \"{script}\"]\n"
    ));
    let id = enqueued_id(&env.run(&["enqueue", "job"]).await);
    let mut a = env.spawn(&["worker"], &[]);
    let orphan = env.wait_pid_file(&pid_file).await;
    let running = env
        .wait_job(id, "running", |j| j.status == JobStatus::Running)
        .await;
    a.signal(libc::SIGKILL);
    let status = a.exit().await;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    // The first attempt's program dies with its worker (its guard takes it along).
    env.wait_process_gone(orphan).await;

    let b = env.spawn(&["worker"], &[]);
    let job = env
        .wait_job(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    assert_eq!(job.attempt, 2);
    assert_eq!(
        job.result,
        Some(serde_json::json!({"rescued_on_attempt": 2}))
    );
    assert_ne!(
        job.worker_id, running.worker_id,
        "worker B ran the second attempt"
    );
    let rescued = env.events_of(id, EventKind::Rescued).await;
    assert_eq!(rescued.len(), 1, "{rescued:?}");
    assert_eq!(rescued[0].attempt, 1);
    b.stop().await;
}

/// `errand worker --queues email --concurrency 2`: only the email queue is claimed from, two
/// jobs at a time, although the configuration says four.
async fn worker_flags_choose_the_queues_and_their_concurrency(env: Env) {
    let gate = env.path("open");
    let script = env.script(
        "gated.sh",
        &format!(
            "touch {dir}/started-$ERRAND_JOB_ID\nwhile [ ! -e {gate} ]; do sleep 0.05; done\necho '{{}}'",
            dir = env.dir.display()
        ),
    );
    env.config(&format!(
        "[workers]\npoll_interval = \"100ms\"\n\
         [queues.default]\nconcurrency = 4\n[queues.email]\nconcurrency = 4\n\
         [tasks.mail]\nqueue = \"email\"\ncommand = [\"sh\", \"{script}\"]\n\
         [tasks.other]\ncommand = [\"sh\", \"{script}\"]\n"
    ));
    let mut mail = Vec::new();
    for _ in 0..4 {
        mail.push(enqueued_id(&env.run(&["enqueue", "mail"]).await));
    }
    let other = enqueued_id(&env.run(&["enqueue", "other"]).await);
    let worker = env.spawn(&["worker", "--queues", "email", "--concurrency", "2"], &[]);
    let ready = worker.ready().await;
    assert!(ready.contains("queues=email=2 "), "{ready}");

    let started = || {
        std::fs::read_dir(&env.dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("started-")
            })
            .count()
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while started() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "{}", env.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Several polls later, still two: the other two wait for a free slot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(started(), 2, "{}", env.logs());
    let mut states = Vec::new();
    for &id in &mail {
        states.push(env.job(id).await.status);
    }
    states.sort_by_key(|s| s.as_str());
    assert_eq!(
        states,
        [
            JobStatus::Queued,
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Running
        ]
    );

    std::fs::write(&gate, "").unwrap();
    for &id in &mail {
        env.wait_job(id, "succeeded", |j| j.status == JobStatus::Succeeded)
            .await;
    }
    worker.stop().await;
    let job = env.job(other).await;
    assert_eq!(
        (job.status, job.attempt),
        (JobStatus::Queued, 0),
        "the default queue was not asked for"
    );
}
