//! A command never outlives its attempt: not after a `kill -9` of `errand serve`, not after
//! the program exits, not after a stop, not while its worker is frozen past half its lease,
//! grandchildren that left the process group included.
//!
//! A job's processes are found by their environment: the handler gives each program
//! `ERRAND_JOB_ID`, and the case gives its `errand` process a marker variable naming the
//! case's directory (job ids repeat across the cases' databases), which every descendant
//! inherits. Found processes are killed before a failing assertion, so a failure leaves
//! nothing behind.

use crate::common::{e2e, enqueued_id, live_processes, Env, PATIENCE};
use errand::{EventKind, JobId, JobStatus};
use std::time::{Duration, Instant};

e2e!(
    a_killed_serve_takes_its_commands_with_it,
    a_command_leaves_nothing_running_when_it_exits,
    a_stopped_command_takes_its_escaped_grandchildren,
    a_frozen_worker_loses_its_commands_before_its_lease_ends,
);

/// The variable marking the processes of one case.
const MARKER: &str = "E2E_GUARD_CASE";

/// How long a job's processes may outlive the event that ends them.
const WITHIN: Duration = Duration::from_secs(2);

/// A job whose first attempt starts two sleepers that would each touch a file after 4 s, one
/// in the program's process group and one in a session of its own, and waits for them;
/// every attempt logs its start and finish to `runs.log`.
const TWO_SLEEPERS: &str = r#"echo "$ERRAND_JOB_ID:$ERRAND_ATTEMPT:start" >> runs.log
if [ "$ERRAND_ATTEMPT" = 1 ]; then
  sh -c 'sleep 4; touch X' &
  setsid sh -c 'sleep 4; touch escaped' &
  touch started
  wait
fi
echo "$ERRAND_JOB_ID:$ERRAND_ATTEMPT:finish" >> runs.log
echo '{"attempt":'$ERRAND_ATTEMPT'}'"#;

async fn a_killed_serve_takes_its_commands_with_it(env: Env) {
    let script = env.script("job.sh", TWO_SLEEPERS);
    env.config(&format!(
        "[workers]\npoll_interval = \"100ms\"\nlease = \"2s\"\n\
         [tasks.job]\ncommand = [\"sh\", \"{script}\"]\n"
    ));
    let id = enqueued_id(&env.run(&["enqueue", "job"]).await);
    let marker = env.dir.display().to_string();
    let mut serve = env.spawn(&["serve"], &[(MARKER, &marker)]);
    wait_file(&env, "started").await;
    let started = Instant::now();
    // The guard, the script, two `sh -c` and two `sleep`: the scan sees them.
    wait_processes(&env, id, 5).await;

    serve.signal(libc::SIGKILL);
    serve.exit().await;
    assert_gone_within(&env, id, WITHIN, "after kill -9 of errand serve").await;

    // Started again, serve rescues the job once its lease is over and runs attempt 2 alone.
    let serve = env.spawn(&["serve"], &[(MARKER, &marker)]);
    let job = env
        .wait_job(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    assert_eq!(job.attempt, 2);
    assert_eq!(job.result, Some(serde_json::json!({"attempt": 2})));
    assert_eq!(env.events_of(id, EventKind::Rescued).await.len(), 1);
    serve.stop().await;

    // Past the sleepers' 4 s: neither file appeared, and attempt 1 never finished.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(started.elapsed())).await;
    assert_no_file(&env, "X");
    assert_no_file(&env, "escaped");
    let runs = std::fs::read_to_string(env.path("runs.log")).unwrap();
    assert_eq!(
        runs.lines().collect::<Vec<_>>(),
        [
            format!("{id}:1:start"),
            format!("{id}:2:start"),
            format!("{id}:2:finish")
        ],
        "the rescued attempt is the only one that ran after the kill"
    );
}

/// A worker frozen with SIGSTOP cannot renew its lease: its commands are killed before the
/// lease ends, so the worker that rescues the job runs the next attempt alone.
async fn a_frozen_worker_loses_its_commands_before_its_lease_ends(env: Env) {
    let script = env.script("job.sh", TWO_SLEEPERS);
    env.config(&format!(
        "[workers]\npoll_interval = \"100ms\"\nlease = \"2s\"\n\
         [tasks.job]\ncommand = [\"sh\", \"{script}\"]\n"
    ));
    let id = enqueued_id(&env.run(&["enqueue", "job"]).await);
    let marker = env.dir.display().to_string();
    let frozen = env.spawn(&["worker"], &[(MARKER, &marker)]);
    wait_file(&env, "started").await;
    let started = Instant::now();
    wait_processes(&env, id, 5).await;

    frozen.signal(libc::SIGSTOP);
    // Killed half a lease after the stop is seen: well within 2 s.
    assert_gone_within(&env, id, WITHIN, "while its worker is stopped").await;
    let rescuer = env.spawn(&["worker"], &[(MARKER, &marker)]);
    let job = env
        .wait_job(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    assert_eq!(job.attempt, 2);
    // Thawed, the first worker learns that it lost the job, and changes nothing.
    frozen.signal(libc::SIGCONT);
    frozen.stop().await;
    rescuer.stop().await;
    let job = env.job(id).await;
    assert_eq!((job.status, job.attempt), (JobStatus::Succeeded, 2));

    tokio::time::sleep(Duration::from_secs(5).saturating_sub(started.elapsed())).await;
    assert_no_file(&env, "X");
    assert_no_file(&env, "escaped");
    let runs = std::fs::read_to_string(env.path("runs.log")).unwrap();
    assert_eq!(
        runs.lines().collect::<Vec<_>>(),
        [
            format!("{id}:1:start"),
            format!("{id}:2:start"),
            format!("{id}:2:finish")
        ]
    );
}

/// What a program leaves running when it exits is killed, in its group or not.
async fn a_command_leaves_nothing_running_when_it_exits(env: Env) {
    let script = env.script(
        "leaves.sh",
        "sh -c 'sleep 4; touch X' &\nsetsid sh -c 'sleep 4; touch escaped' &\necho '{\"left\":2}'",
    );
    env.config(&format!(
        "[workers]\npoll_interval = \"100ms\"\n[tasks.leaves]\ncommand = [\"sh\", \"{script}\"]\n"
    ));
    let id = enqueued_id(&env.run(&["enqueue", "leaves"]).await);
    let marker = env.dir.display().to_string();
    let worker = env.spawn(&["worker"], &[(MARKER, &marker)]);
    let job = env
        .wait_job(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    assert_eq!(job.result, Some(serde_json::json!({"left": 2})));
    assert_gone_within(&env, id, WITHIN, "after the program exited").await;
    worker.stop().await;

    // The guard is no command of the help.
    let help = env.run(&["--help"]).await;
    assert!(!help.stdout.contains("guard"), "{}", help.stdout);
}

/// A stop (here a timeout) reaches what left the group too.
async fn a_stopped_command_takes_its_escaped_grandchildren(env: Env) {
    let script = env.script(
        "stuck.sh",
        "setsid sh -c 'sleep 4; touch escaped' &\ntouch started\nexec sleep 60",
    );
    env.config(&format!(
        "[workers]\npoll_interval = \"100ms\"\ncancel_grace = \"2s\"\n\
         [tasks.stuck]\ncommand = [\"sh\", \"{script}\"]\ntimeout = \"1s\"\nmax_attempts = 1\n"
    ));
    let id = enqueued_id(&env.run(&["enqueue", "stuck"]).await);
    let marker = env.dir.display().to_string();
    let worker = env.spawn(&["worker"], &[(MARKER, &marker)]);
    wait_file(&env, "started").await;
    let job = env
        .wait_job(id, "failed", |j| j.status == JobStatus::Failed)
        .await;
    let error = job.last_error.unwrap();
    assert!(error.starts_with("timed out after 1s"), "{error}");
    assert_gone_within(&env, id, WITHIN, "after the timeout").await;
    worker.stop().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_no_file(&env, "escaped");
}

/// The live processes of job `id` of this case: pid and command line.
fn job_processes(env: &Env, id: JobId) -> Vec<(i32, String)> {
    let marker = format!("{MARKER}={}", env.dir.display());
    let job = format!("ERRAND_JOB_ID={id}");
    live_processes(|vars| vars.contains(&marker.as_bytes()) && vars.contains(&job.as_bytes()))
}

/// Waits until no process of job `id` is alive, for at most `within`; kills what is left and
/// fails otherwise.
async fn assert_gone_within(env: &Env, id: JobId, within: Duration, when: &str) {
    let deadline = Instant::now() + within;
    loop {
        let left = job_processes(env, id);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            for (pid, _) in &left {
                // SAFETY: kill(2) on a pid just read from /proc; no memory is involved.
                unsafe {
                    libc::kill(*pid, libc::SIGKILL);
                }
            }
            panic!(
                "processes of job {id} still alive {within:?} {when}: {left:#?}\n{}",
                env.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_file(env: &Env, name: &str) {
    let path = env.dir.join(name);
    let deadline = Instant::now() + PATIENCE;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{name} never appeared\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the scan finds at least `n` processes of job `id`: a process in the middle of
/// an `exec` (the `setsid` sleeper, started just before the `started` file) can hide its
/// environment from the scan for a moment.
async fn wait_processes(env: &Env, id: JobId, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = job_processes(env, id);
        if found.len() >= n {
            return;
        }
        assert!(Instant::now() < deadline, "only {found:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_no_file(env: &Env, name: &str) {
    assert!(
        !env.dir.join(name).exists(),
        "{name} appeared: a process of a finished attempt ran on"
    );
}
