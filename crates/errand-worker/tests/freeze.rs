//! A worker that is frozen longer than its lease (SIGSTOP, a stalled VM) must not start the
//! jobs it claimed before the freeze: another worker may hold them by then. Here the freeze
//! is real for the pool: it runs on a one-thread runtime, and one handler blocks that thread
//! for longer than the lease, so no heartbeat, claim or start can happen meanwhile, exactly
//! as in a stopped process. Meanwhile another worker (a thread with its own store on the same
//! database) rescues the expired jobs. The jobs the pool held then are dropped unstarted, the
//! rescue brings them back, and they run once, on their next attempt.

mod common;

use common::*;
use errand_core::JobStatus;
use errand_store::{JobList, StateFilter};
use errand_store_tests::{Harness, TestBackend};
use errand_worker::maintenance::rescue_expired;
use errand_worker::JobContext;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_millis(600);

#[test]
fn sqlite_held_jobs_are_not_started_after_a_freeze_past_the_lease() {
    one_thread(TestBackend::Sqlite);
}

#[test]
fn postgres_held_jobs_are_not_started_after_a_freeze_past_the_lease() {
    one_thread(TestBackend::Postgres);
}

fn one_thread(backend: TestBackend) {
    // Each freeze waits (a bounded while) until the pool holds a job it has not started, so
    // a round all but always holds some; should a loaded machine defeat that, up to three
    // rounds are run until one did. Every round checks that no taken-back attempt starts.
    let held = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let h2 = held.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(errand_store_tests::run(backend, move |h| async move {
                let n = held_jobs_are_not_started_after_a_freeze(h).await;
                h2.fetch_add(n, Ordering::SeqCst);
            }));
        if held.load(Ordering::SeqCst) > 0 {
            return;
        }
    }
    panic!("in three rounds the pool held no job through a freeze; the test proves nothing");
}

/// One round; returns how many jobs were held through a freeze.
async fn held_jobs_are_not_started_after_a_freeze(h: Harness) -> usize {
    const JOBS: i64 = 400;
    /// Three freezes per round.
    const FREEZE_AT: [i64; 3] = [100, 200, 300];
    // (job id, attempt, when) of every start.
    let starts: Arc<Mutex<Vec<(i64, i32, Instant)>>> = Arc::default();
    // When the last freeze ended, and each (job, attempt) taken back during a freeze with
    // the moment that freeze began.
    let thawed: Arc<Mutex<Option<Instant>>> = Arc::default();
    let taken: Arc<Mutex<Vec<(i64, i32, Instant)>>> = Arc::default();
    // Closed by a job about to freeze: the handlers that start meanwhile wait at it, so
    // every slot is taken and the jobs the pool claimed ahead stay in its buffer, claimed
    // and not started, which is the state the freeze must find. Without it, whether the
    // pool holds any job at the moment of a freeze is down to claim timing.
    let (gate, _) = tokio::sync::watch::channel(true);
    let gate = Arc::new(gate);
    let (s, t, tk, g) = (starts.clone(), thawed.clone(), taken.clone(), gate.clone());
    let (store, clock) = (h.store.clone(), h.clock.clone());
    let other = Arc::new(OtherWorker::start(h.clone()));
    let worker = pool(&h)
        .lease(LEASE)
        .own_rescuer(false)
        .queue("default", 4)
        .register_kind("step", move |ctx: JobContext, args: Value| {
            s.lock()
                .unwrap()
                .push((ctx.id(), ctx.attempt(), Instant::now()));
            let i = args["i"].as_i64().unwrap();
            let freeze = FREEZE_AT.contains(&i) && ctx.attempt() == 1;
            let (store, clock, thawed, taken, starts, gate, other) = (
                store.clone(),
                clock.clone(),
                t.clone(),
                tk.clone(),
                s.clone(),
                g.clone(),
                other.clone(),
            );
            async move {
                if freeze {
                    // However this handler ends, the gate opens behind it.
                    let _open = OpenOnDrop(gate.clone());
                    // Wait (a bounded while) until the store shows a job running that no
                    // handler has started: claimed ahead, held in the buffer, with every
                    // slot taken by this handler and those waiting at the gate. If the pool
                    // claimed nothing ahead this time, reopen the gate for a moment so the
                    // short jobs flow and it claims again, and retry.
                    let until = Instant::now() + Duration::from_secs(5);

                    'wait: while Instant::now() < until {
                        gate.send_replace(false);
                        for _ in 0..20 {
                            let running = store
                                .job_list(&JobList {
                                    state: Some(StateFilter::Status(JobStatus::Running)),
                                    limit: 1000,
                                    ..Default::default()
                                })
                                .await
                                .unwrap()
                                .jobs;
                            let started = starts.lock().unwrap().clone();
                            if running.iter().any(|j| {
                                !started
                                    .iter()
                                    .any(|(id, a, _)| *id == j.id && *a == j.attempt)
                            }) {
                                break 'wait;
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        gate.send_replace(true);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    // While this worker is frozen its leases run out and another worker's
                    // rescue takes its jobs back: those running and those claimed ahead. The
                    // rescue runs on a thread and connections of its own, and this thread
                    // blocks on it, so from here to the end of the freeze nothing of the pool
                    // runs (no await): a start of a taken-back attempt after `began` is one
                    // the worker should not have made.
                    let began = Instant::now();
                    clock.advance(LEASE * 3);
                    let lost = other.rescue();
                    taken
                        .lock()
                        .unwrap()
                        .extend(lost.into_iter().map(|(id, a)| (id, a, began)));
                    // The freeze: blocks the runtime's only thread, so the whole pool stands
                    // still (no heartbeat, claim or start) for longer than the lease.
                    std::thread::sleep(LEASE * 2);
                    *thawed.lock().unwrap() = Some(Instant::now());
                } else {
                    // Short jobs of staggered lengths (0.5 to 2.9 ms), so that some end
                    // while each claim is in flight and the pool claims ahead of its free
                    // slots (jobs that all end before the next claim leaves give it no
                    // reason to).
                    let mut open = gate.subscribe();
                    let _ = open.wait_for(|open| *open).await;
                    tokio::time::sleep(Duration::from_micros(500 + (i % 7) as u64 * 400)).await;
                }
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    let batch: Vec<_> = (0..JOBS)
        .map(|i| {
            let mut j = job("step", json!({ "i": i }));
            j.priority = (JOBS - i) as i32; // claimed in order of i
                                            // The freezes may take one job back several times: never fail it for that.
            j.max_attempts = 50;
            j
        })
        .collect();
    h.store.job_insert_many(&batch).await.unwrap();
    // Jobs of a claim that was in flight during the freeze are dropped unstarted too, though
    // the store never saw their lease run out: this test's clock only moves when told. Once
    // the pool has nothing else to do, let their leases run out and rescue them, as the
    // maintenance service would.
    let idle = eventually("the pool to run out of work", || async {
        let jobs = all_jobs(&h).await;
        let queued = jobs
            .iter()
            .filter(|j| j.status == JobStatus::Queued)
            .count();
        let succeeded = jobs
            .iter()
            .filter(|j| j.status == JobStatus::Succeeded)
            .count();
        let frozen_thrice = jobs
            .iter()
            .filter(|j| FREEZE_AT.contains(&j.args.to_value()["i"].as_i64().unwrap()))
            .all(|j| j.attempt >= 1 && j.status != JobStatus::Queued);
        (queued == 0 && frozen_thrice && thawed.lock().unwrap().is_some()).then_some(succeeded)
    })
    .await;
    if idle < JOBS as usize {
        tokio::time::sleep(LEASE).await; // let in-flight completions land
        h.clock.advance(LEASE * 3);
        rescue_expired(h.store.as_ref(), |_| {}).await.unwrap();
    }
    wait_succeeded(&h, "default", JOBS as u64).await;
    worker.shutdown().await;

    assert!(thawed.lock().unwrap().is_some(), "the freezes happened");
    let taken = taken.lock().unwrap().clone();
    let starts = starts.lock().unwrap().clone();
    let mut by_job: HashMap<i64, Vec<(i32, Instant)>> = HashMap::new();
    for (id, attempt, at) in &starts {
        by_job.entry(*id).or_default().push((*attempt, *at));
    }
    let mut held_through = 0;
    for j in all_jobs(&h).await {
        assert_eq!(j.status, JobStatus::Succeeded);
        let runs = &by_job[&j.id];
        // The attempt that succeeded started exactly once.
        assert_eq!(
            runs.iter().filter(|(a, _)| *a == j.attempt).count(),
            1,
            "job {}: {runs:?}",
            j.id
        );
        // An attempt taken back during a freeze is never started after that freeze began.
        for (attempt, at) in runs {
            let lost = taken.iter().find(|(id, a, _)| *id == j.id && a == attempt);
            if let Some((_, _, began)) = lost {
                assert!(
                    at < began,
                    "job {} started attempt {attempt} after a freeze in which it was taken back \
                     (runs: {runs:?})",
                    j.id
                );
            }
        }
        // Claimed ahead before a freeze and taken back during it: attempt 1 never started.
        if !runs.iter().any(|(a, _)| *a == 1) {
            held_through += 1;
        }
    }
    held_through
}

/// Another worker's rescuer: a thread with its own runtime and its own store on the same
/// database and clock, as another process would have. `rescue` blocks the calling thread
/// until its rescue is done.
struct OtherWorker {
    asks: Mutex<std::sync::mpsc::Sender<Reply>>,
}

/// Where the other worker sends the jobs (id, attempt) its rescue took back.
type Reply = std::sync::mpsc::Sender<Vec<(i64, i32)>>;

impl OtherWorker {
    fn start(h: Harness) -> Self {
        let (asks, asked) = std::sync::mpsc::channel::<Reply>();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let store = h.open_again().await;
                    while let Ok(reply) = asked.recv() {
                        let mut lost = Vec::new();
                        rescue_expired(store.as_ref(), |r| {
                            lost.push((r.fence.job_id, r.fence.attempt))
                        })
                        .await
                        .unwrap();
                        let _ = reply.send(lost);
                    }
                })
        });
        OtherWorker {
            asks: Mutex::new(asks),
        }
    }

    /// The jobs (id, attempt) its rescue took back.
    fn rescue(&self) -> Vec<(i64, i32)> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.asks.lock().unwrap().send(reply).unwrap();
        answer.recv().expect("the other worker's rescue failed")
    }
}

/// Opens the gate when dropped.
struct OpenOnDrop(Arc<tokio::sync::watch::Sender<bool>>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// A worker alive but unable to renew its leases (its database connections all taken, so
/// heartbeats wait) stops its handlers itself before their leases end, instead of running on
/// beside the attempt a rescue would start elsewhere. PostgreSQL: the pool is what is
/// exhausted; no connection is left for the heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_worker_that_cannot_renew_stops_its_handlers_before_the_lease_ends() {
    errand_store_tests::run(TestBackend::Postgres, cannot_renew).await;
}

async fn cannot_renew(h: Harness) {
    const LEASE: Duration = Duration::from_millis(1500);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let stopped_tx = Arc::new(Mutex::new(Some(stopped_tx)));
    let worker = pool(&h)
        .lease(LEASE)
        .own_rescuer(false)
        .queue("default", 1)
        .register_kind("wait", move |ctx: JobContext, _args: Value| {
            let (started, stopped) = (started_tx.clone(), stopped_tx.clone());
            async move {
                let at = Instant::now();
                if let Some(tx) = started.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                let reason = ctx.cancelled().await;
                if let Some(tx) = stopped.lock().unwrap().take() {
                    let _ = tx.send((reason, at.elapsed()));
                }
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    h.insert(job("wait", json!({}))).await;
    tokio::time::timeout(PATIENCE, started_rx)
        .await
        .unwrap()
        .unwrap();
    // Take every connection of the store's pool: heartbeats now wait for one.
    let pg = h.pg.clone().expect("a PostgreSQL harness");
    let mut held = Vec::new();
    for _ in 0..pg.pool().options().get_max_connections() {
        held.push(pg.pool().acquire().await.unwrap());
    }
    // No heartbeat sent from here on can renew the lease, so it ends at most a lease after
    // this instant (a heartbeat sent just before may still have renewed it).
    let all_held = Instant::now();
    let (reason, _) = tokio::time::timeout(LEASE * 3, stopped_rx)
        .await
        .expect("the handler was never stopped while its lease ran out")
        .unwrap();
    let after = all_held.elapsed();
    assert_eq!(reason, errand_worker::StopReason::LeaseLost);
    assert!(
        after < LEASE,
        "stopped {after:?} after the last possible renewal, past the lease of {LEASE:?}"
    );
    drop(held);
    worker.shutdown().await;
}
