//! The pool's delivery guarantees: lost leases, concurrency limits, claim order, paused
//! queues, wake-up hints, graceful shutdown, many pools on one store, and the rescuer.

mod common;

use common::*;
use errand_core::{EventKind, Fence, JobStatus, RescueAction};
use errand_store::{Ack, JobClaim, JobComplete, JobRescue};
use errand_store_tests::Harness;
use errand_worker::{JobContext, JobOutcome, ShutdownReport, StopReason, WorkerEvent};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

errand_store_tests::both_backends!(
    lease_loss_stops_the_handler_and_records_nothing,
    per_queue_concurrency_is_never_exceeded,
    priority_order_is_respected_with_concurrency_one,
    paused_queue_is_not_processed_until_resumed,
    wake_up_hint_starts_a_job_without_waiting_for_the_poll,
    a_slot_freed_under_a_limit_starts_the_next_job_without_waiting_for_the_poll,
    shutdown_records_a_job_that_finishes_within_the_grace,
    shutdown_releases_a_job_that_exceeds_the_grace,
    shutdown_mid_drain_leaves_each_job_succeeded_once_or_queued_unspent,
    dropping_the_handle_aborts_running_handlers,
    four_pools_run_2000_jobs_exactly_once,
    rescuer_requeues_the_job_of_a_vanished_worker,
);

async fn lease_loss_stops_the_handler_and_records_nothing(h: Harness) {
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let (stopped_tx, mut stopped_rx) = tokio::sync::mpsc::unbounded_channel();
    let let_go = Arc::new(Notify::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (let_go.clone(), calls.clone());
    let worker = pool(&h)
        .worker_id("worker-a")
        .queue("default", 1)
        .lease(Duration::from_secs(3)) // heartbeat every second
        .cancel_grace(Duration::from_secs(60)) // the test decides when the handler returns
        .register_kind("long", move |ctx: JobContext, _args: Value| {
            c.fetch_add(1, Ordering::SeqCst);
            let (started_tx, stopped_tx, let_go) =
                (started_tx.clone(), stopped_tx.clone(), g.clone());
            async move {
                started_tx.send(ctx.id()).unwrap();
                stopped_tx.send(ctx.cancelled().await).unwrap();
                // Holding the slot keeps worker-a from claiming the requeued job itself.
                let_go.notified().await;
                Ok(json!({ "by": "worker-a" }))
            }
        })
        .start()
        .await
        .unwrap();
    let mut events = worker.events();
    let id = insert(&h, job("long", json!({}))).await;
    assert_eq!(
        tokio::time::timeout(PATIENCE, started_rx.recv())
            .await
            .unwrap(),
        Some(id)
    );

    // worker-a "freezes": its lease runs out and the job is rescued. Its heartbeat may renew
    // the lease between our clock move and our rescue, so repeat until the job is queued.
    eventually("the job to be rescued", || async {
        h.clock.advance(Duration::from_secs(4));
        let stuck = h.store.job_list_stuck(10).await.unwrap();
        let items: Vec<JobRescue> = stuck
            .iter()
            .filter(|j| j.id == id)
            .map(|j| JobRescue {
                fence: j.fence().unwrap(),
                action: RescueAction::Requeue,
                message: "test rescue".into(),
            })
            .collect();
        if !items.is_empty() {
            h.store.job_rescue_many(&items).await.unwrap();
        }
        (get(&h, id).await.status == JobStatus::Queued).then_some(())
    })
    .await;
    let claimed = h
        .store
        .job_claim(&JobClaim {
            queue: "default".into(),
            worker_id: "worker-b".into(),
            limit: 1,
            lease: Duration::from_secs(30),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].id, claimed[0].attempt), (id, 2));

    // worker-a's next heartbeat learns it lost the job and tells the handler to stop.
    let reason = tokio::time::timeout(PATIENCE, stopped_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reason, StopReason::LeaseLost);
    let_go.notify_one();
    assert_eq!(finished(&mut events, id).await, JobOutcome::LeaseLost);
    assert_eq!(
        get(&h, id).await.status,
        JobStatus::Running,
        "worker-a recorded nothing"
    );

    let acks = h
        .store
        .job_complete_many(&[JobComplete {
            fence: Fence {
                job_id: id,
                attempt: 2,
                worker_id: "worker-b".into(),
            },
            result: Some(json!({ "by": "worker-b" })),
        }])
        .await
        .unwrap();
    assert_eq!(acks, vec![Ack::Done]);
    let j = get(&h, id).await;
    assert_eq!(
        (j.status, j.result),
        (JobStatus::Succeeded, Some(json!({ "by": "worker-b" })))
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "worker-a never ran it again"
    );
    worker.shutdown().await;
}

async fn per_queue_concurrency_is_never_exceeded(h: Harness) {
    let current = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (cur, mx) = (current.clone(), max.clone());
    let worker = pool(&h)
        .queue("default", 3)
        .register_kind("counted", move |_ctx, _args: Value| {
            let (cur, mx) = (cur.clone(), mx.clone());
            async move {
                let now = cur.fetch_add(1, Ordering::SeqCst) + 1;
                mx.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                cur.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    let jobs: Vec<_> = (0..30).map(|_| job("counted", json!({}))).collect();
    h.store.job_insert_many(&jobs).await.unwrap();
    wait_succeeded(&h, "default", 30).await;
    assert_eq!(
        max.load(Ordering::SeqCst),
        3,
        "concurrency 3 is reached and never exceeded"
    );
    worker.shutdown().await;
}

async fn priority_order_is_respected_with_concurrency_one(h: Harness) {
    let mut ids = Vec::new();
    for priority in [0, 5, 1, 5, 10, 0] {
        let mut j = job("ordered", json!({}));
        j.priority = priority;
        ids.push((priority, insert(&h, j).await));
    }
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let worker = pool(&h)
        .queue("default", 1)
        .register_kind("ordered", move |ctx: JobContext, _args: Value| {
            o.lock().unwrap().push(ctx.id());
            async move { Ok(()) }
        })
        .start()
        .await
        .unwrap();
    wait_succeeded(&h, "default", 6).await;
    ids.sort_by_key(|&(priority, id)| (-priority, id));
    let expected: Vec<_> = ids.into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        *order.lock().unwrap(),
        expected,
        "higher priority first, then FIFO"
    );
    worker.shutdown().await;
}

async fn paused_queue_is_not_processed_until_resumed(h: Harness) {
    h.store.queue_pause("held").await.unwrap();
    let mut j = job("noop", json!({}));
    j.queue = "held".into();
    let id = insert(&h, j).await;
    let builder = pool(&h)
        .queue("held", 2)
        .register_kind("noop", |_ctx, _args: Value| async move { Ok(()) });
    let mut events = builder.events();
    let worker = builder.start().await.unwrap();

    // Three claims on the paused queue come back empty...
    for _ in 0..3 {
        next_event(
            &mut events,
            |e| matches!(e, WorkerEvent::Claimed { queue, count: 0 } if queue == "held"),
        )
        .await;
    }
    assert_eq!(get(&h, id).await.status, JobStatus::Queued);
    // ...and the next poll after resuming runs it.
    h.store.queue_resume("held").await.unwrap();
    wait_status(&h, id, JobStatus::Succeeded).await;
    worker.shutdown().await;
}

async fn wake_up_hint_starts_a_job_without_waiting_for_the_poll(h: Harness) {
    let builder = pool(&h)
        .poll_interval(Duration::from_secs(60))
        .queue("default", 2)
        .register_kind("noop", |_ctx, _args: Value| async move { Ok(()) });
    let mut events = builder.events();
    let worker = builder.start().await.unwrap();
    // The first claim found nothing: the producer now sleeps for a minute or until a hint.
    next_event(&mut events, |e| {
        matches!(e, WorkerEvent::Claimed { count: 0, .. })
    })
    .await;

    let id = insert(&h, job("noop", json!({}))).await;
    // On PostgreSQL the store's LISTEN connection starts in the background, and a hint sent
    // before it listens is lost (the trait allows it). Nudge with another ready job every
    // second; any hint that arrives makes the producer claim both.
    let ran = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let waited = tokio::time::timeout(Duration::from_secs(1), async {
                loop {
                    if get(&h, id).await.status == JobStatus::Succeeded {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            if waited.is_ok() {
                return;
            }
            insert(&h, job("noop", json!({}))).await;
        }
    })
    .await;
    assert!(
        ran.is_ok(),
        "a job inserted after start ran without waiting for the 60 s poll"
    );
    worker.shutdown().await;
}

async fn a_slot_freed_under_a_limit_starts_the_next_job_without_waiting_for_the_poll(h: Harness) {
    // Two at a time across every process; jobs of key `a` one at a time.
    let limits = errand_core::QueueLimits {
        global_concurrency: Some(2),
        ..Default::default()
    };
    h.store.queue_limits_set("default", limits).await.unwrap();
    for i in 0..40 {
        let mut j = job("step", json!({}));
        if i % 2 == 0 {
            j.concurrency_key = Some("a".into());
        }
        insert(&h, j).await;
    }
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let keyed = Arc::new(AtomicUsize::new(0));
    let most_keyed = Arc::new(AtomicUsize::new(0));
    let (r, m, kr, km) = (
        running.clone(),
        most.clone(),
        keyed.clone(),
        most_keyed.clone(),
    );
    let worker = pool(&h)
        // Claims that found every slot taken would otherwise wait a minute each.
        .poll_interval(Duration::from_secs(60))
        .queue("default", 8)
        .register_kind("step", move |ctx: JobContext, _args: Value| {
            let (r, m, kr, km) = (r.clone(), m.clone(), kr.clone(), km.clone());
            async move {
                let is_keyed = ctx.job().concurrency_key.is_some();
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                if is_keyed {
                    let k = kr.fetch_add(1, Ordering::SeqCst) + 1;
                    km.fetch_max(k, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                if is_keyed {
                    kr.fetch_sub(1, Ordering::SeqCst);
                }
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let stats = h.store.queue_stats().await.unwrap();
            if stats
                .iter()
                .any(|s| s.queue == "default" && s.succeeded == 40)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "40 jobs, two at a time, ran without waiting for the 60 s poll"
    );
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "never more than the limit, and it was reached"
    );
    worker.shutdown().await;
}

async fn shutdown_records_a_job_that_finishes_within_the_grace(h: Harness) {
    let worker = pool(&h)
        .queue("default", 1)
        .register_kind("brief", |_ctx, _args: Value| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(json!("done"))
        })
        .start()
        .await
        .unwrap();
    let mut events = worker.events();
    let id = insert(&h, job("brief", json!({}))).await;
    started(&mut events, id).await;
    let report = worker.shutdown().await;
    assert_eq!(
        report,
        ShutdownReport {
            finished_during_grace: 1,
            released: 0,
            not_released: 0
        }
    );
    let j = get(&h, id).await;
    assert_eq!(
        (j.status, j.result),
        (JobStatus::Succeeded, Some(json!("done")))
    );
}

async fn shutdown_releases_a_job_that_exceeds_the_grace(h: Harness) {
    let worker = pool(&h)
        .queue("default", 1)
        .shutdown_grace(Duration::from_millis(200))
        .cancel_grace(Duration::from_millis(200))
        .register_kind("endless", |_ctx, _args: Value| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        })
        .start()
        .await
        .unwrap();
    let mut events = worker.events();
    let id = insert(&h, job("endless", json!({}))).await;
    started(&mut events, id).await;
    let report = worker.shutdown().await;
    assert_eq!(
        report,
        ShutdownReport {
            finished_during_grace: 0,
            released: 1,
            not_released: 0
        }
    );
    assert_eq!(finished(&mut events, id).await, JobOutcome::Released);
    let j = get(&h, id).await;
    assert_eq!(
        (j.status, j.attempt),
        (JobStatus::Queued, 0),
        "the attempt is not spent"
    );
    assert_eq!(event_kinds(&h, id).await, vec![EventKind::Released]);
    assert!(h.store.worker_list().await.unwrap().is_empty());
}

/// Short jobs make the producer claim ahead of its free slots; shutdown must hand the
/// claimed-but-unstarted ones back like the stopped ones: queued, attempt not spent.
async fn shutdown_mid_drain_leaves_each_job_succeeded_once_or_queued_unspent(h: Harness) {
    const JOBS: usize = 600;
    const OPEN: usize = 300;
    let runs: Arc<Mutex<HashMap<i64, u32>>> = Arc::default();
    let (r, gate_reached) = (runs.clone(), Arc::new(Notify::new()));
    let reached = gate_reached.clone();
    let worker = pool(&h)
        .queue("default", 2)
        .shutdown_grace(Duration::from_millis(100))
        .cancel_grace(Duration::from_secs(5))
        .register_kind("short", move |ctx: JobContext, _args: Value| {
            let n = {
                let mut runs = r.lock().unwrap();
                *runs.entry(ctx.id()).or_default() += 1;
                runs.len()
            };
            let reached = reached.clone();
            async move {
                // The first OPEN jobs are instant; then every handler blocks until stopped.
                if n > OPEN {
                    reached.notify_one();
                    ctx.cancelled().await;
                }
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    let batch: Vec<_> = (0..JOBS).map(|i| job("short", json!({ "i": i }))).collect();
    h.store.job_insert_many(&batch).await.unwrap();
    tokio::time::timeout(PATIENCE, gate_reached.notified())
        .await
        .expect("the drain reached the blocking jobs");
    let report = worker.shutdown().await;

    let runs = runs.lock().unwrap().clone();
    let jobs = all_jobs(&h).await;
    assert_eq!(jobs.len(), JOBS);
    let mut queued = 0;
    for j in &jobs {
        let ran = runs.get(&j.id).copied().unwrap_or(0);
        assert!(ran <= 1, "job {} ran {ran} times", j.id);
        match j.status {
            JobStatus::Succeeded => assert_eq!((j.attempt, ran), (1, 1), "job {}", j.id),
            JobStatus::Queued => {
                assert_eq!(j.attempt, 0, "job {}: its attempt is not spent", j.id);
                queued += 1;
            }
            other => panic!("job {} is {other} after shutdown", j.id),
        }
    }
    assert!(
        report.released >= 1 && report.released <= queued,
        "the blocked jobs (and any claimed but unstarted) were handed back: {report:?}, {queued} queued"
    );
    assert_eq!(report.not_released, 0, "{report:?}");
}

async fn dropping_the_handle_aborts_running_handlers(h: Harness) {
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let (running_tx, mut running_rx) = tokio::sync::mpsc::unbounded_channel();
    let d = dropped.clone();
    let worker = pool(&h)
        .queue("default", 1)
        .register_kind("endless", move |ctx: JobContext, _args: Value| {
            let guard = SetOnDrop(d.clone());
            let running_tx = running_tx.clone();
            async move {
                running_tx.send(ctx.id()).unwrap();
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(guard);
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    let id = insert(&h, job("endless", json!({}))).await;
    assert_eq!(
        tokio::time::timeout(PATIENCE, running_rx.recv())
            .await
            .unwrap(),
        Some(id)
    );
    drop(worker);
    eventually("the handler to be aborted", || async {
        dropped.load(Ordering::SeqCst).then_some(())
    })
    .await;
    assert_eq!(
        get(&h, id).await.status,
        JobStatus::Running,
        "left for the rescuer"
    );
}

async fn four_pools_run_2000_jobs_exactly_once(h: Harness) {
    const JOBS: usize = 2000;
    let runs: Arc<Mutex<HashMap<i64, u32>>> = Arc::default();
    let mut workers = Vec::new();
    for n in 0..4 {
        let r = runs.clone();
        let worker = pool(&h)
            .worker_id(format!("pool-{n}"))
            .queue("default", 4)
            .register_kind("count", move |ctx: JobContext, _args: Value| {
                *r.lock().unwrap().entry(ctx.id()).or_default() += 1;
                async move { Ok(()) }
            })
            .start()
            .await
            .unwrap();
        workers.push(worker);
    }
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| job("count", json!({ "i": i })))
            .collect();
        h.store.job_insert_many(&batch).await.unwrap();
    }
    wait_succeeded(&h, "default", JOBS as u64).await;
    for w in workers {
        w.shutdown().await;
    }
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), JOBS, "every job ran");
    let twice: Vec<_> = runs.iter().filter(|(_, &n)| n != 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    let jobs = all_jobs(&h).await;
    assert_eq!(jobs.len(), JOBS);
    assert!(jobs
        .iter()
        .all(|j| j.status == JobStatus::Succeeded && j.attempt == 1));
}

async fn rescuer_requeues_the_job_of_a_vanished_worker(h: Harness) {
    let id = insert(&h, job("orphan", json!({}))).await;
    let claimed = h
        .store
        .job_claim(&JobClaim {
            queue: "default".into(),
            worker_id: "ghost".into(),
            limit: 1,
            lease: Duration::from_secs(30),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    h.clock.advance(Duration::from_secs(31));

    let builder = pool(&h)
        .queue("default", 1)
        .lease(Duration::from_secs(2)) // rescuer every second or so
        .register_kind("orphan", |ctx: JobContext, _args: Value| async move {
            Ok(json!({ "attempt": ctx.attempt() }))
        });
    let mut events = builder.events();
    let worker = builder.start().await.unwrap();
    next_event(&mut events, |e| {
        matches!(e, WorkerEvent::Rescued { job_id, action: RescueAction::Requeue } if *job_id == id)
    })
    .await;
    let j = wait_status(&h, id, JobStatus::Succeeded).await;
    assert_eq!(j.attempt, 2, "the lost attempt counts");
    assert_eq!(j.result, Some(json!({ "attempt": 2 })));
    assert_eq!(j.worker_id.as_deref(), Some(worker.id()));
    assert_eq!(event_kinds(&h, id).await, vec![EventKind::Rescued]);
    worker.shutdown().await;
}
