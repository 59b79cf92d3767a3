//! Flow control with real worker processes (`errand_core::flow`): a queue's
//! `global_concurrency` and per-key `key_concurrency` hold across four `errand worker`
//! processes on one database, a SIGKILLed worker's jobs are rescued and run again without
//! the limit being exceeded, and a key with a backlog does not hold up the other keys.
//!
//! Every job is the same command: it appends `start <ns> <job> <attempt> <life>` to
//! `runs.log`, sleeps 10-80 ms (derived from the job id), and appends the matching `end`
//! line (`>>` opens with O_APPEND, and each line is one short write). `<life>` names the
//! worker process that ran it (an environment variable its commands inherit). A run's
//! [start, end] lies within the time the store counts the job as running (from its claim
//! until its completion is recorded), so the most runs open at once can only be lower than
//! what the store admitted: if it ever exceeds a limit, the store over-admitted.
//!
//! A run cut short (its worker was killed, or stopped it when its lease was about to be
//! lost) may have no end line, or one written while the guard was still killing its
//! processes. Such a run is recognised by the rescue of its attempt, not by the missing line.
//! A killed worker's runs count until the test saw the last process of that worker's jobs
//! gone (a `/proc` scan for the worker's marker), which is no earlier than they really
//! stopped; the store keeps counting the jobs until the rescuer requeues them after their
//! lease, and the test asserts the processes were gone well before that (within two thirds of
//! a lease of the kill: a heartbeat is every third of a lease). Any other run without an end
//! counts until its rescue. So a counted interval still lies within the store's, and cannot
//! hide an over-admission.
//!
//! Every job spends one attempt, plus one per rescue of it: being held back by a limit
//! spends none. Rescues of a live worker's jobs (a heartbeat late by two thirds of a lease on
//! a loaded machine) are allowed and counted in the printed figures.

use crate::common::{e2e, live_processes, Env, Proc};
use errand::{EventKind, Job, JobId, JobStatus, NewJob};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

e2e!(
    a_global_limit_holds_across_four_workers_and_a_kill,
    key_limits_hold_across_four_workers,
    a_busy_key_does_not_hold_up_the_other_keys,
);

/// The variable marking the processes of one case (its directory).
const CASE: &str = "E2E_FLOW_CASE";
/// The variable naming a worker process (an index), inherited by its commands.
const LIFE: &str = "E2E_FLOW_LIFE";
/// The job: log the start, sleep 10-80 ms (1 s for a job whose args say `"long":true`), log
/// the end.
const SCRIPT: &str = r#"echo "start $(date +%s%N) $ERRAND_JOB_ID $ERRAND_ATTEMPT $E2E_FLOW_LIFE" >> runs.log
case "$(cat)" in
  *'"long":true'*) sleep 1 ;;
  *) sleep "$(printf '0.%03d' $(( 10 + ERRAND_JOB_ID * 37 % 71 )))" ;;
esac
echo "end $(date +%s%N) $ERRAND_JOB_ID $ERRAND_ATTEMPT $E2E_FLOW_LIFE" >> runs.log"#;
/// Worker processes per case.
const WORKERS: usize = 4;
/// The lease in the cases' configuration, short so that a killed worker's jobs come back
/// soon, long enough that a live worker's heartbeat is never late by a third of it on a
/// loaded machine.
const LEASE: Duration = Duration::from_secs(4);
/// How long a drain may take (it bounds a hang; the figures are printed).
const BOUND: Duration = Duration::from_secs(300);

/// Jobs of the global-limit case.
const GLOBAL_JOBS: usize = 1500;
const GLOBAL_LIMIT: usize = 3;
/// Every this many jobs of the global-limit case is a long one (1 s), for the kill to cut
/// short: the short ones may end between the test seeing one run and its kill.
const LONG_EVERY: usize = 100;

/// Jobs per key of the per-key case.
const JOBS_PER_KEY: usize = 120;

/// Jobs of the busy key, and of the other keys (one each), in the head-of-line case.
const BUSY_JOBS: usize = 2000;
const OTHER_KEYS: usize = 100;

/// The `[workers]` section: quick polls (a claim held back by a limit leaves the worker
/// waiting for its next poll), the lease.
fn workers_section() -> String {
    format!(
        "[workers]\npoll_interval = \"50ms\"\nlease = \"{}s\"\n",
        LEASE.as_secs()
    )
}

/// Starts `errand worker` number `life`, marked so that its commands can be found.
fn start_worker(env: &Env, life: usize) -> Proc {
    let case = env.dir.display().to_string();
    env.spawn(&["worker"], &[(CASE, &case), (LIFE, &life.to_string())])
}

/// One attempt of a job as its command logged it.
#[derive(Debug, Clone)]
struct Run {
    job: JobId,
    attempt: i32,
    life: usize,
    start: u128,
    end: Option<u128>,
}

/// Every run in `runs.log`, by (job, attempt). An attempt logs each of its lines once.
fn read_runs(env: &Env) -> BTreeMap<(JobId, i32), Run> {
    let log = std::fs::read_to_string(env.path("runs.log")).unwrap_or_default();
    let mut runs: BTreeMap<(JobId, i32), Run> = BTreeMap::new();
    // Only whole lines: the log may be read while commands write to it.
    for line in log
        .split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n'))
    {
        let fields: Vec<&str> = line.split(' ').collect();
        let [what, at, job, attempt, life] = fields[..] else {
            panic!("bad line in runs.log: {line:?}");
        };
        let (at, job, attempt, life): (u128, JobId, i32, usize) = (
            at.parse().unwrap(),
            job.parse().unwrap(),
            attempt.parse().unwrap(),
            life.parse().unwrap(),
        );
        match what {
            "start" => {
                let old = runs.insert(
                    (job, attempt),
                    Run {
                        job,
                        attempt,
                        life,
                        start: at,
                        end: None,
                    },
                );
                assert!(old.is_none(), "job {job} attempt {attempt} started twice");
            }
            "end" => {
                let run = runs
                    .get_mut(&(job, attempt))
                    .unwrap_or_else(|| panic!("job {job} attempt {attempt} ended unstarted"));
                assert!(run.end.is_none(), "job {job} attempt {attempt} ended twice");
                assert_eq!(run.life, life, "{line}");
                run.end = Some(at);
            }
            _ => panic!("bad line in runs.log: {line:?}"),
        }
    }
    runs
}

/// The most intervals open at once, and an instant at which that many were. An interval
/// that ends at the instant another starts does not overlap it.
fn max_overlap(intervals: impl IntoIterator<Item = (u128, u128)>) -> (usize, u128) {
    let mut edges: Vec<(u128, i32)> = Vec::new();
    for (start, end) in intervals {
        assert!(start <= end, "an interval ends before it starts");
        edges.push((start, 1));
        edges.push((end, -1));
    }
    // Ends (-1) before starts (+1) at the same instant.
    edges.sort();
    let (mut open, mut max, mut at) = (0i32, 0i32, 0u128);
    for (t, d) in edges {
        open += d;
        if open > max {
            (max, at) = (open, t);
        }
    }
    (max as usize, at)
}

/// The runs open at `at`, for a failure message.
fn open_at<'a>(runs: impl IntoIterator<Item = (&'a Run, u128)>, at: u128) -> String {
    runs.into_iter()
        .filter(|(r, end)| r.start <= at && at < *end)
        .map(|(r, end)| format!("{r:?} (counted until {end})\n"))
        .collect()
}

/// Now on the system clock (the clock of `date +%s%N`), in nanoseconds.
fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The live (not zombie) processes of the commands that worker `life` of this case started.
fn job_processes(env: &Env, life: usize) -> Vec<(i32, String)> {
    let case = format!("{CASE}={}", env.dir.display());
    let life = format!("{LIFE}={life}");
    live_processes(|vars| {
        vars.contains(&case.as_bytes())
            && vars.contains(&life.as_bytes())
            && vars.iter().any(|v| v.starts_with(b"ERRAND_JOB_ID="))
    })
}

/// Waits until `succeeded` jobs have succeeded, failing on any failed or cancelled job or
/// after [`BOUND`].
async fn wait_succeeded(env: &Env, succeeded: u64, since: Instant) {
    loop {
        let [queued, running, done, failed, cancelled] = env.counts().await;
        assert_eq!(
            (failed, cancelled),
            (0, 0),
            "jobs failed or were cancelled\n{}",
            env.logs()
        );
        if done >= succeeded {
            return;
        }
        assert!(
            since.elapsed() < BOUND,
            "not drained within {BOUND:?}: {queued} queued, {running} running, {done} \
             succeeded\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The rescues of the jobs' attempts, (job, attempt) -> when (ns), after checking that every
/// attempt a job spent beyond its last is explained by a rescue: being held back by a limit
/// spends no attempt. A rescue happens to the attempts a kill took, and to those of a live
/// worker whose heartbeat came more than two thirds of a lease late, which a loaded machine
/// (two cores, many processes) can cause; the figures are printed.
async fn rescues(
    env: &Env,
    jobs: &[&Job],
    runs: &BTreeMap<(JobId, i32), Run>,
) -> HashMap<(JobId, i32), u128> {
    let mut out = HashMap::new();
    for &job in jobs {
        // A finished job's last attempt was not rescued; a queued job's were, if any.
        let lost = match job.status {
            JobStatus::Queued => job.attempt,
            _ => job.attempt - 1,
        };
        if lost == 0 {
            continue;
        }
        let events = env.events(job.id).await;
        let rescued: Vec<_> = events
            .iter()
            .filter(|e| e.kind == EventKind::Rescued)
            .collect();
        let mine: Vec<&Run> = runs
            .range((job.id, 0)..=(job.id, i32::MAX))
            .map(|(_, r)| r)
            .collect();
        assert_eq!(
            rescued.len(),
            lost as usize,
            "{job:?} spent attempts that no rescue explains; its events: {events:#?}\n\
             its runs: {mine:?}"
        );
        for e in rescued {
            let at = e.at.timestamp_nanos_opt().expect("a time in range") as u128;
            out.insert((job.id, e.attempt), at);
        }
    }
    out
}

/// When each run stopped, for counting it: its end line, else (it was cut short: by a kill,
/// or by its worker when the lease was about to be lost) when it was rescued, or `killed`'s
/// answer for it, which must be no earlier than it stopped. A run that neither ended nor was
/// rescued is a failure.
fn stops<'a>(
    runs: &'a BTreeMap<(JobId, i32), Run>,
    rescued: &HashMap<(JobId, i32), u128>,
    killed: impl Fn(&Run) -> Option<u128>,
) -> Vec<(&'a Run, u128)> {
    runs.values()
        .map(|r| {
            let stop = r.end.or_else(|| killed(r)).unwrap_or_else(|| {
                *rescued
                    .get(&(r.job, r.attempt))
                    .unwrap_or_else(|| panic!("a run neither ended nor was rescued: {r:?}"))
            });
            (r, stop)
        })
        .collect()
}

/// Checks that every job succeeded and that its last attempt's run ended; returns the jobs
/// by id.
fn check_all_succeeded(
    jobs: Vec<Job>,
    ids: &HashSet<JobId>,
    runs: &BTreeMap<(JobId, i32), Run>,
) -> HashMap<JobId, Job> {
    assert_eq!(jobs.len(), ids.len());
    let jobs: HashMap<JobId, Job> = jobs.into_iter().map(|j| (j.id, j)).collect();
    for id in ids {
        let job = jobs
            .get(id)
            .unwrap_or_else(|| panic!("job {id} is missing"));
        assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
        let last = runs
            .get(&(job.id, job.attempt))
            .unwrap_or_else(|| panic!("the succeeded attempt of {job:?} never ran"));
        assert!(
            last.end.is_some(),
            "the succeeded attempt never ended: {last:?}"
        );
    }
    jobs
}

/// `global_concurrency = 3` on a queue of concurrency 16 in each of four worker processes:
/// never more than 3 of its jobs run at once, 3 do at some point, and a worker killed with
/// SIGKILL in the middle of the drain loses no job: what it ran is rescued and runs again.
async fn a_global_limit_holds_across_four_workers_and_a_kill(env: Env) {
    let script = env.script("work.sh", SCRIPT);
    env.config(&format!(
        "{}[queues.limited]\nconcurrency = 16\nglobal_concurrency = {GLOBAL_LIMIT}\n\
         [tasks.work]\nqueue = \"limited\"\ncommand = [\"sh\", \"{script}\"]\n",
        workers_section()
    ));
    let client = env.client().await;
    let started = Instant::now();
    let mut ids: Vec<JobId> = Vec::with_capacity(GLOBAL_JOBS);
    while ids.len() < GLOBAL_JOBS {
        let batch: Vec<NewJob> = (ids.len()..GLOBAL_JOBS.min(ids.len() + 1000))
            .map(|n| NewJob {
                queue: Some("limited".to_string()),
                // Room for a death or two.
                max_attempts: Some(10),
                ..NewJob::new("work", json!({ "n": n, "long": n % LONG_EVERY == 50 }))
            })
            .collect();
        ids.extend(
            client
                .enqueue_many(&batch)
                .await
                .unwrap()
                .iter()
                .map(|e| e.id),
        );
    }
    let long: HashSet<JobId> = ids
        .iter()
        .enumerate()
        .filter(|(n, _)| n % LONG_EVERY == 50)
        .map(|(_, id)| *id)
        .collect();
    let ids: HashSet<JobId> = ids.into_iter().collect();

    let mut workers: Vec<Option<Proc>> = (0..WORKERS)
        .map(|life| Some(start_worker(&env, life)))
        .collect();
    // Once a quarter of the jobs have succeeded, kill the worker that runs a long job which
    // started less than half a second ago (so that it still runs at the kill).
    wait_succeeded(&env, (GLOBAL_JOBS / 4) as u64, started).await;
    let deadline = Instant::now() + BOUND;
    let (victim_life, seen) = loop {
        let now = now_ns();
        let busy = read_runs(&env).into_values().find(|r| {
            r.end.is_none() && long.contains(&r.job) && now.saturating_sub(r.start) < 500_000_000
        });
        if let Some(r) = busy {
            break (r.life, r);
        }
        assert!(
            Instant::now() < deadline,
            "no worker was seen starting a long job\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let mut victim = workers[victim_life].take().unwrap();
    let killed_at = now_ns();
    victim.signal(libc::SIGKILL);
    victim.exit().await;
    // When its commands are gone (no earlier than they stopped).
    let mut first_scan = None;
    let gone_at = loop {
        let left = job_processes(&env, victim_life);
        let now = now_ns();
        first_scan.get_or_insert_with(|| left.clone());
        if left.is_empty() {
            break now;
        }
        assert!(
            now - killed_at < LEASE.as_nanos() * 2 / 3,
            "the commands of the killed worker outlived it by two thirds of a lease: \
             {left:?}\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    wait_succeeded(&env, GLOBAL_JOBS as u64, started).await;
    let drained = started.elapsed();
    for w in workers.into_iter().flatten() {
        w.stop().await;
    }

    let runs = read_runs(&env);
    let jobs = check_all_succeeded(env.every_job().await, &ids, &runs);
    let rescued = rescues(&env, &jobs.values().collect::<Vec<_>>(), &runs).await;
    // The runs the kill cut short: the victim's that were rescued. Each ran again to its end,
    // after its processes were gone.
    let killed: Vec<&Run> = runs
        .values()
        .filter(|r| r.life == victim_life && rescued.contains_key(&(r.job, r.attempt)))
        .collect();
    assert!(
        !killed.is_empty(),
        "the kill cut no run short, though the victim was seen running {seen:?} {} ms before \
         it; the victim's runs about the kill (start, end in ms from the kill): {:?}; its \
         commands just after the kill: {first_scan:?}; gone {} ms after it",
        (killed_at - seen.start) / 1_000_000,
        runs.values()
            .filter(|r| r.life == victim_life && r.start + 3_000_000_000 > killed_at)
            .map(|r| (
                r.job,
                r.attempt,
                (r.start as i128 - killed_at as i128) / 1_000_000,
                r.end.map(|e| (e as i128 - killed_at as i128) / 1_000_000)
            ))
            .collect::<Vec<_>>(),
        (gone_at - killed_at) / 1_000_000
    );
    for r in &killed {
        let again = runs
            .range((r.job, r.attempt + 1)..=(r.job, i32::MAX))
            .next()
            .unwrap_or_else(|| panic!("job {} never ran after {r:?}", r.job))
            .1;
        assert!(
            again.start > gone_at,
            "job {} ran again before its first run was gone: {again:?}",
            r.job
        );
    }

    // The victim's runs that did not end count until its processes were gone.
    let stopped = stops(&runs, &rescued, |r| {
        (r.life == victim_life).then_some(gone_at)
    });
    let (max, at) = max_overlap(stopped.iter().map(|(r, stop)| (r.start, *stop)));
    assert!(
        max <= GLOBAL_LIMIT,
        "{max} jobs ran at once under global_concurrency = {GLOBAL_LIMIT}:\n{}",
        open_at(stopped.iter().copied(), at)
    );
    assert_eq!(
        max, GLOBAL_LIMIT,
        "the limit was never reached, so this checked nothing"
    );
    eprintln!(
        "flow control, global: {GLOBAL_JOBS} jobs drained by {WORKERS} workers in {drained:?} \
         (at most {max} at once); the kill cut {} runs short, their commands were gone {} ms \
         after it; {} attempts were rescued in all ({} cut short by a lease lost under load)",
        killed.len(),
        (gone_at - killed_at) / 1_000_000,
        rescued.len(),
        runs.values()
            .filter(|r| r.life != victim_life && rescued.contains_key(&(r.job, r.attempt)))
            .count()
    );
}

/// The API's base URL, from `serve`'s log line.
fn base_url(line: &str) -> String {
    let start = line.find("http://").expect("a URL in the line");
    line[start..].split_whitespace().next().unwrap().to_string()
}

/// One key of the per-key case: what to enqueue for it, the key the job must get, and the
/// limit that applies.
struct KeySpec {
    request: Value,
    key: String,
    stored_limit: Option<i32>,
    limit: usize,
}

/// Per-key limits across four worker processes, with keys from all three sources: a
/// task's `concurrency_key` argument (a string, and a number as its JSON text) with the
/// task's `key_concurrency = 1`; another task's argument with the queue's
/// `key_concurrency = 2`; and an explicit `concurrency_key` with `key_concurrency = 3` in
/// the request, which win over the task's. Jobs are enqueued through `errand serve`'s HTTP
/// API (which applies the tasks' settings). No key ever runs more jobs at once than its
/// limit, each reaches its limit, and different keys run side by side.
async fn key_limits_hold_across_four_workers(env: Env) {
    let script = env.script("work.sh", SCRIPT);
    env.config(&format!(
        "{}[queues.keyed]\nconcurrency = 16\nkey_concurrency = 2\n\
         [tasks.sync]\nqueue = \"keyed\"\ncommand = [\"sh\", \"{script}\"]\n\
         concurrency_key = \"program_id\"\nkey_concurrency = 1\n\
         [tasks.report]\nqueue = \"keyed\"\ncommand = [\"sh\", \"{script}\"]\n\
         concurrency_key = \"account\"\n",
        workers_section()
    ));
    let mut keys: Vec<KeySpec> = Vec::new();
    for i in 0..5 {
        keys.push(KeySpec {
            request: json!({"kind": "sync", "args": {"program_id": format!("p{i}")}}),
            key: format!("p{i}"),
            stored_limit: Some(1),
            limit: 1,
        });
        keys.push(KeySpec {
            request: json!({"kind": "sync", "args": {"program_id": i}}),
            key: i.to_string(),
            stored_limit: Some(1),
            limit: 1,
        });
        keys.push(KeySpec {
            request: json!({"kind": "report", "args": {"account": format!("a{i}")}}),
            key: format!("a{i}"),
            stored_limit: None,
            limit: 2,
        });
    }
    for i in 0..2 {
        keys.push(KeySpec {
            request: json!({
                "kind": "report",
                "args": {"account": "a0"},
                "concurrency_key": format!("bulk-{i}"),
                "key_concurrency": 3,
            }),
            key: format!("bulk-{i}"),
            stored_limit: Some(3),
            limit: 3,
        });
    }

    // Enqueue through a server that runs no workers, then start the workers.
    env.run(&["migrate"]).await;
    let serve = env.spawn(&["serve"], &[("ERRAND_WORKERS_ENABLED", "false")]);
    let base = base_url(&serve.wait_for_line("HTTP API listening on").await);
    let http = crate::common::http_client();
    let started = Instant::now();
    // Round robin over the keys, so that every key has jobs waiting all through the drain.
    let all: Vec<(usize, Value)> = (0..JOBS_PER_KEY)
        .flat_map(|_| keys.iter().enumerate().map(|(k, s)| (k, s.request.clone())))
        .collect();
    let mut key_of: HashMap<JobId, usize> = HashMap::new();
    for chunk in all.chunks(1000) {
        let body = json!({"jobs": chunk.iter().map(|(_, r)| r).collect::<Vec<_>>()});
        let r = http
            .post(format!("{base}/v1/jobs/batch"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        let out: Value = r.json().await.unwrap();
        let results = out["results"].as_array().unwrap();
        assert_eq!(results.len(), chunk.len());
        for ((k, _), res) in chunk.iter().zip(results) {
            key_of.insert(res["id"].as_i64().unwrap(), *k);
        }
    }
    let total = all.len();
    let enqueued = started.elapsed();

    let started = Instant::now();
    let workers: Vec<Proc> = (0..WORKERS).map(|life| start_worker(&env, life)).collect();
    wait_succeeded(&env, total as u64, started).await;
    let drained = started.elapsed();
    for w in workers {
        w.stop().await;
    }
    serve.stop().await;

    let runs = read_runs(&env);
    let ids: HashSet<JobId> = key_of.keys().copied().collect();
    let jobs = check_all_succeeded(env.every_job().await, &ids, &runs);
    let rescued = rescues(&env, &jobs.values().collect::<Vec<_>>(), &runs).await;
    // The keys the jobs got: from the task's argument, unless the request named one.
    for (id, k) in &key_of {
        let job = &jobs[id];
        assert_eq!(
            (job.concurrency_key.as_deref(), job.key_concurrency),
            (Some(keys[*k].key.as_str()), keys[*k].stored_limit),
            "{job:?}"
        );
    }
    let stopped = stops(&runs, &rescued, |_| None);
    let mut by_key: Vec<Vec<(&Run, u128)>> = vec![Vec::new(); keys.len()];
    for &(r, stop) in &stopped {
        by_key[key_of[&r.job]].push((r, stop));
    }
    let mut reached = Vec::new();
    for (spec, runs) in keys.iter().zip(&by_key) {
        let (max, at) = max_overlap(runs.iter().map(|(r, stop)| (r.start, *stop)));
        assert!(
            max <= spec.limit,
            "key {:?}: {max} jobs ran at once, its limit is {}:\n{}",
            spec.key,
            spec.limit,
            open_at(runs.iter().copied(), at)
        );
        assert_eq!(
            max, spec.limit,
            "key {:?} never reached its limit, so this checked nothing for it",
            spec.key
        );
        reached.push(format!("{}:{max}", spec.key));
    }
    let (overall, _) = max_overlap(stopped.iter().map(|(r, stop)| (r.start, *stop)));
    assert!(
        overall > 3,
        "at most {overall} jobs ran at once over {} keys: the keys did not run side by side",
        keys.len()
    );
    eprintln!(
        "flow control, keys: {total} jobs of {} keys enqueued over HTTP in {enqueued:?}, \
         drained by {WORKERS} workers in {drained:?}; at most {overall} at once; per key \
         (key:max at once) {}; {} attempts rescued (a lease lost under load)",
        keys.len(),
        reached.join(" "),
        rescued.len()
    );
}

/// No head-of-line blocking: 2,000 jobs of one key (one at a time) are enqueued before one
/// job of each of 100 other keys, on four worker processes. Every one of the 100 runs and
/// succeeds while the busy key still has jobs queued (it needs at least 2,000 × 10 ms on its
/// own); the busy key never runs two at once.
async fn a_busy_key_does_not_hold_up_the_other_keys(env: Env) {
    let script = env.script("work.sh", SCRIPT);
    env.config(&format!(
        "{}[queues.hol]\nconcurrency = 16\n\
         [tasks.work]\nqueue = \"hol\"\ncommand = [\"sh\", \"{script}\"]\n",
        workers_section()
    ));
    let client = env.client().await;
    let job = |key: String, n: usize| NewJob {
        queue: Some("hol".to_string()),
        concurrency_key: Some(key),
        ..NewJob::new("work", json!({ "n": n }))
    };
    let mut busy: Vec<JobId> = Vec::new();
    while busy.len() < BUSY_JOBS {
        let batch: Vec<NewJob> = (busy.len()..BUSY_JOBS.min(busy.len() + 1000))
            .map(|n| job("busy".to_string(), n))
            .collect();
        busy.extend(
            client
                .enqueue_many(&batch)
                .await
                .unwrap()
                .iter()
                .map(|e| e.id),
        );
    }
    let others: Vec<NewJob> = (0..OTHER_KEYS).map(|k| job(format!("k{k}"), k)).collect();
    let others: Vec<JobId> = client
        .enqueue_many(&others)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert!(others.iter().all(|o| busy.iter().all(|b| b < o)));

    let started = Instant::now();
    let workers: Vec<Proc> = (0..WORKERS).map(|life| start_worker(&env, life)).collect();
    // Wait for the other keys' jobs to have ended, by their log.
    let other_set: HashSet<JobId> = others.iter().copied().collect();
    loop {
        let runs = read_runs(&env);
        let ended: HashSet<JobId> = runs
            .values()
            .filter(|r| r.end.is_some() && other_set.contains(&r.job))
            .map(|r| r.job)
            .collect();
        if ended.len() == OTHER_KEYS {
            break;
        }
        assert!(
            started.elapsed() < BOUND,
            "only {} of the {OTHER_KEYS} other keys' jobs ran within {BOUND:?}, {} of the \
             busy key's started: the busy key blocks the queue\n{}",
            ended.len(),
            runs.values()
                .filter(|r| !other_set.contains(&r.job))
                .count(),
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = started.elapsed();
    // The busy key's jobs still queued now, after the others' ran.
    let jobs: HashMap<JobId, Job> = env
        .every_job()
        .await
        .into_iter()
        .map(|j| (j.id, j))
        .collect();
    let busy_queued: Vec<Job> = busy
        .iter()
        .filter(|id| jobs[id].status == JobStatus::Queued)
        .map(|id| jobs[id].clone())
        .collect();
    for w in workers {
        w.stop().await;
    }
    let jobs: HashMap<JobId, Job> = env
        .every_job()
        .await
        .into_iter()
        .map(|j| (j.id, j))
        .collect();
    for id in &others {
        assert_eq!(jobs[id].status, JobStatus::Succeeded, "{:?}", jobs[id]);
    }
    assert!(
        !busy_queued.is_empty(),
        "the busy key drained before the other keys' jobs had run, so this checked nothing"
    );
    let runs = read_runs(&env);
    // Attempts: of the jobs that ran (after the stop), and of the busy key's jobs that were
    // queued before it (after it, some may be jobs handed back by the stopping workers).
    let asked: Vec<&Job> = jobs
        .values()
        .filter(|j| j.status != JobStatus::Queued)
        .chain(&busy_queued)
        .collect();
    let rescued = rescues(&env, &asked, &runs).await;
    let stopped = stops(&runs, &rescued, |_| None);
    let busy_runs: Vec<(&Run, u128)> = stopped
        .iter()
        .copied()
        .filter(|(r, _)| !other_set.contains(&r.job))
        .collect();
    let (max, at) = max_overlap(busy_runs.iter().map(|(r, stop)| (r.start, *stop)));
    assert!(
        max <= 1,
        "the busy key ran {max} jobs at once:\n{}",
        open_at(busy_runs.iter().copied(), at)
    );
    let last_other = runs
        .values()
        .filter(|r| other_set.contains(&r.job))
        .map(|r| r.start)
        .max()
        .unwrap();
    let busy_before = busy_runs
        .iter()
        .filter(|(r, _)| r.start < last_other)
        .count();
    eprintln!(
        "flow control, head of line: the {OTHER_KEYS} other keys' jobs ran within {waited:?} \
         on {WORKERS} workers, while the busy key ran {busy_before} of its {BUSY_JOBS} jobs \
         ({} still queued); {} attempts rescued (a lease lost under load)",
        busy_queued.len(),
        rescued.len()
    );
}
