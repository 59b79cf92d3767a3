//! What only PostgreSQL offers: several worker processes on one database, and a database
//! server restarted under running workers. Side effects are counted by a [`Sink`] that the
//! jobs (HTTP tasks) call, not read off the jobs table: a job that ran twice but was recorded
//! once would otherwise go unseen.

use crate::common::{self, Env, Proc, PATIENCE};
use crate::private_pg::PrivatePostgres;
use crate::sink::Sink;
use errand::{EventKind, JobId, JobStatus, NewJob};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Jobs drained by the four workers.
const DRAIN_JOBS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_drain_20000_jobs_each_exactly_once() {
    common::run(common::Backend::Postgres, four_workers_drain).await;
}

async fn four_workers_drain(env: Env) {
    let sink = Sink::start(Duration::ZERO).await;
    env.config(&format!(
        "[workers]\npoll_interval = \"200ms\"\n\
         [queues.default]\nconcurrency = 16\n\
         [tasks.ping]\nhttp = {{ url = \"{}/ping\" }}\n",
        sink.url
    ));
    let client = env.client().await;
    // Paused until all four workers are up, so that they start on the full table together.
    client.pause_queue("default").await.unwrap();
    let started = Instant::now();
    let mut ids: Vec<JobId> = Vec::with_capacity(DRAIN_JOBS);
    let batch: Vec<NewJob> = (0..1000)
        .map(|n| NewJob::new("ping", serde_json::json!({ "n": n })))
        .collect();
    for _ in 0..DRAIN_JOBS / batch.len() {
        let done = client.enqueue_many(&batch).await.unwrap();
        assert!(done.iter().all(|e| e.inserted));
        ids.extend(done.iter().map(|e| e.id));
    }
    let enqueued = started.elapsed();

    let workers: Vec<Proc> = (0..4).map(|_| env.spawn(&["worker"], &[])).collect();
    for w in &workers {
        w.ready().await;
    }
    let started = Instant::now();
    client.resume_queue("default").await.unwrap();
    let deadline = Instant::now() + 4 * PATIENCE;
    loop {
        let [queued, running, succeeded, failed, cancelled] = env.counts().await;
        if succeeded as usize == DRAIN_JOBS {
            break;
        }
        assert_eq!(
            (failed, cancelled),
            (0, 0),
            "jobs failed or were cancelled\n{}",
            env.logs()
        );
        assert!(
            Instant::now() < deadline,
            "not drained: {queued} queued, {running} running, {succeeded} succeeded\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = started.elapsed();
    for w in workers {
        w.stop().await;
    }

    // The side effects: every job's request exactly once, and nothing else.
    let per_job = sink.per_job();
    assert_eq!(sink.anonymous(), 0);
    let twice: Vec<_> = per_job.iter().filter(|(_, &n)| n != 1).collect();
    assert!(twice.is_empty(), "jobs not run exactly once: {twice:?}");
    let expected: HashSet<JobId> = ids.iter().copied().collect();
    let seen: HashSet<JobId> = per_job.keys().copied().collect();
    assert_eq!(
        seen.len(),
        DRAIN_JOBS,
        "jobs never run: {}",
        DRAIN_JOBS - seen.len()
    );
    assert_eq!(seen, expected);
    assert_eq!(sink.total(), DRAIN_JOBS as u64);

    // The table agrees, and every worker took a share.
    let jobs = env.every_job().await;
    assert_eq!(jobs.len(), DRAIN_JOBS);
    let mut by_worker: BTreeMap<String, usize> = BTreeMap::new();
    for job in &jobs {
        assert_eq!(
            (job.status, job.attempt),
            (JobStatus::Succeeded, 1),
            "{job:?}"
        );
        *by_worker
            .entry(job.worker_id.clone().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(by_worker.len(), 4, "{by_worker:?}");
    eprintln!(
        "{DRAIN_JOBS} jobs: enqueued in {enqueued:?}, drained by 4 workers in {drained:?} \
         ({:.0} jobs/s); per worker {:?}; {} HTTP connections",
        DRAIN_JOBS as f64 / drained.as_secs_f64(),
        by_worker.values().collect::<Vec<_>>(),
        sink.connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_while_workers_run_loses_no_job() {
    // No skipping: without the programs this test fails, and `.ci/run` installs them.
    let bin = PrivatePostgres::binaries().unwrap_or_else(|| {
        panic!(
            "no initdb/pg_ctl in /usr/lib/postgresql/15/bin (install Debian's postgresql-15, as \
             .ci/run does, or set ERRAND_TEST_PG_BIN to their folder)"
        )
    });
    let pg = Arc::new(PrivatePostgres::start(bin).await);
    let url = common::create_database(&pg.url("postgres")).await;
    let dir = std::env::temp_dir().join(format!("errand-e2e-{}", common::unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let outcome = common::run_in(dir.clone(), url, {
        let pg = pg.clone();
        move |env| restart_under_workers(env, pg)
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    if outcome.is_err() {
        eprintln!("--- private PostgreSQL's log:\n{}", pg.log());
    }
    drop(pg); // stops the server and removes its folder
    common::reraise(outcome);
}

/// Jobs acknowledged to the enqueuer, in order.
type Acked = Arc<Mutex<Vec<JobId>>>;

async fn restart_under_workers(env: Env, pg: Arc<PrivatePostgres>) {
    // Each request takes 20 ms, so that jobs are in flight when the server goes down.
    let sink = Sink::start(Duration::from_millis(20)).await;
    env.config(&format!(
        "[workers]\npoll_interval = \"200ms\"\nlease = \"3s\"\n\
         [queues.default]\nconcurrency = 8\n\
         [tasks.ping]\nhttp = {{ url = \"{}/ping\" }}\ntimeout = \"10s\"\n\
         backoff = {{ base = \"100ms\", cap = \"500ms\" }}\n",
        sink.url
    ));
    let out = env.run(&["migrate"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let workers: Vec<Proc> = (0..2).map(|_| env.spawn(&["worker"], &[])).collect();
    for w in &workers {
        w.ready().await;
    }

    // An enqueuer that keeps going through the restarts: 20 jobs every 50 ms, a failed batch
    // tried again (a batch whose commit was not acknowledged may then exist twice: both
    // copies are real jobs and must run).
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let enqueue_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let enqueuer = {
        let client = env.client().await.clone();
        let (acked, stop, errors) = (acked.clone(), stop.clone(), enqueue_errors.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<NewJob> = (0..20)
                    .map(|i| NewJob::new("ping", serde_json::json!({ "n": n + i })))
                    .collect();
                match client.enqueue_many(&batch).await {
                    Ok(done) => {
                        acked.lock().unwrap().extend(done.iter().map(|e| e.id));
                        n += 20;
                    }
                    Err(e) => errors.lock().unwrap().push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let started = Instant::now();
    let mut timeline = Vec::new();
    wait_for_side_effects(&env, &sink, 300, "before the first restart").await;
    let mut mark = 0;
    for mode in ["fast", "immediate", "down longer than a lease"] {
        let t = Instant::now();
        match mode {
            "fast" | "immediate" => pg.restart(mode).await,
            _ => {
                // Leases run out while the server is away: the jobs held then are rescued
                // and may run again (their first outcome can no longer be recorded).
                pg.kill().await;
                tokio::time::sleep(Duration::from_secs(4)).await;
                pg.start_again().await;
            }
        }
        let restarted = t.elapsed();
        // Recovered, without anyone touching the workers: every job up to 100 past the
        // restart has run (those whose lease was lost included).
        mark = acked.lock().unwrap().len();
        let t = Instant::now();
        wait_until_run(
            &env,
            &sink,
            &acked,
            mark + 100,
            &format!("after the restart ({mode})"),
        )
        .await;
        timeline.push(format!(
            "{mode}: back after {restarted:?}, the next 100 jobs and all before them ran \
             within {:?}",
            t.elapsed()
        ));
    }
    // Both workers recovered on their own: each runs jobs enqueued after the last restart.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let after: HashSet<JobId> = acked.lock().unwrap()[mark..].iter().copied().collect();
        let runners: HashSet<String> = env
            .every_job()
            .await
            .into_iter()
            .filter(|j| after.contains(&j.id) && j.status == JobStatus::Succeeded)
            .filter_map(|j| j.worker_id)
            .collect();
        if runners.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the last restart only {runners:?} ran jobs\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    enqueuer.await.unwrap();

    // Drain: everything enqueued ends succeeded (a lease lost in the restart expires after
    // 3 s and its job is rescued).
    let deadline = Instant::now() + 2 * PATIENCE;
    loop {
        let [queued, running, succeeded, failed, cancelled] = env.counts().await;
        assert_eq!((failed, cancelled), (0, 0), "{}", env.logs());
        if queued == 0 && running == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not drained: {queued} queued, {running} running, {succeeded} succeeded\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    let mut logs = Vec::new();
    for w in workers {
        logs.push(w.stop().await); // exit code 0: the workers were never stuck
    }

    // None lost: every acknowledged job is in the table, and every job in it succeeded with
    // its side effect.
    let jobs = env.every_job().await;
    let in_table: HashSet<JobId> = jobs.iter().map(|j| j.id).collect();
    let acked = acked.lock().unwrap().clone();
    let missing: Vec<_> = acked.iter().filter(|id| !in_table.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged jobs missing: {missing:?}");
    let per_job = sink.per_job();
    assert_eq!(sink.anonymous(), 0);
    let strangers: Vec<_> = per_job.keys().filter(|id| !in_table.contains(id)).collect();
    assert!(
        strangers.is_empty(),
        "requests for unknown jobs: {strangers:?}"
    );
    let mut more_than_once = Vec::new();
    let mut rescued = 0;
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
        let runs = per_job.get(&job.id).copied().unwrap_or(0);
        assert!(runs >= 1, "job {} succeeded but never ran: {job:?}", job.id);
        let rescues = env.events_of(job.id, EventKind::Rescued).await.len();
        if job.attempt > 1 {
            rescued += 1;
        }
        if runs > 1 {
            // At least once: a second run is allowed only when the first attempt's lease was
            // lost (its outcome could not be recorded) and the job was rescued.
            assert!(
                rescues >= 1 && job.attempt as u32 >= runs,
                "job {} ran {runs} times without a lost lease: {job:?} {:?}",
                job.id,
                env.events(job.id).await
            );
            more_than_once.push((job.id, runs, job.attempt));
        }
    }
    if std::env::var_os("ERRAND_E2E_SHOW_LOGS").is_some() {
        eprintln!("{}", env.logs());
    }
    let warnings: usize = logs
        .iter()
        .map(|l| l.lines().filter(|l| l.contains("WARN")).count())
        .sum();
    eprintln!(
        "{} jobs ({} acknowledged, {} enqueue errors) in {elapsed:?}; {}; \
         {rescued} needed more than one attempt, {} ran more than once {more_than_once:?}; \
         {warnings} warnings in the workers' logs",
        jobs.len(),
        acked.len(),
        enqueue_errors.lock().unwrap().len(),
        timeline.join(", "),
        more_than_once.len(),
    );
}

/// Waits until the sink has seen at least `total` requests.
async fn wait_for_side_effects(env: &Env, sink: &Sink, total: u64, when: &str) {
    let deadline = Instant::now() + PATIENCE;
    while sink.total() < total {
        assert!(
            Instant::now() < deadline,
            "{when}: only {} of {total} side effects\n{}",
            sink.total(),
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the first `count` acknowledged jobs have all run at least once.
async fn wait_until_run(env: &Env, sink: &Sink, acked: &Acked, count: usize, when: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ids: Vec<JobId> = {
            let acked = acked.lock().unwrap();
            if acked.len() < count {
                Vec::new()
            } else {
                acked[..count].to_vec()
            }
        };
        if !ids.is_empty() || count == 0 {
            let per_job = sink.per_job();
            let waiting = ids.iter().filter(|id| !per_job.contains_key(id)).count();
            if waiting == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{when}: {waiting} of the first {count} jobs never ran\n{}",
                env.logs()
            );
        } else {
            assert!(
                Instant::now() < deadline,
                "{when}: fewer than {count} jobs were ever acknowledged\n{}",
                env.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
