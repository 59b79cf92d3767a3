//! The process around the jobs: graceful shutdown, the emergency stop, a worker killed with
//! SIGKILL and rescued by another.

use crate::common::{e2e, enqueued_id, Env};
use errand::{EventKind, JobStatus};

e2e!(
    sigterm_lets_running_jobs_finish_and_hands_back_the_rest,
    workers_disabled_claims_nothing,
    a_worker_killed_mid_job_is_rescued_by_another,
);

async fn sigterm_lets_running_jobs_finish_and_hands_back_the_rest(env: Env) {
    let short = env.script("short.sh", "sleep 1.5\necho '{\"finished\":true}'");
    let long = env.script("long.sh", "exec sleep 60");
    env.config(&format!(
        "[workers]\npoll_interval = \"100ms\"\nshutdown_grace = \"3s\"\ncancel_grace = \"2s\"\n\
         [tasks.short]\ncommand = [\"sh\", \"{short}\"]\n\
         [tasks.long]\ncommand = [\"sh\", \"{long}\"]\n"
    ));
    let short = enqueued_id(&env.run(&["enqueue", "short"]).await);
    let long = enqueued_id(&env.run(&["enqueue", "long"]).await);
    let worker = env.spawn(&["worker"], &[]);
    env.wait_job(short, "running", |j| j.status == JobStatus::Running)
        .await;
    env.wait_job(long, "running", |j| j.status == JobStatus::Running)
        .await;

    let log = worker.stop().await; // asserts exit code 0
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
    // The first attempt's program outlives its worker (it has its own process group); end it.
    // SAFETY: kill(2) on a pid our test's program wrote; no memory is involved.
    unsafe {
        libc::kill(orphan, libc::SIGKILL);
    }

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
