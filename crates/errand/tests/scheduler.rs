//! The scheduler on both backends, stepped with a manual clock (`run_pass` is one pass of the
//! loop `errand serve` runs): fires, overlap policies, misfires after a downtime, pause and
//! resume, trigger now, run history, several schedulers on one store, and reconciling the
//! configured schedules.

use chrono::{DateTime, Utc};
use errand::schedule::{LoopState, SkipReason};
use errand::scheduler::{run_pass, SchedulerOptions};
use errand::{
    Client, Error, FireKind, JobList, JobStatus, OverlapPolicy, ScheduleSource, ScheduleSpec,
    SchedulerStatus, Triggered,
};
use errand_store::{JobClaim, JobComplete, ScheduleFireList, Store};
use errand_store_tests::Harness;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

errand_store_tests::both_backends!(
    a_schedule_fires_once_per_fire_time_with_the_fire_key,
    overlap_skip_records_fires_while_the_previous_run_is_running,
    overlap_allow_enqueues_alongside_and_queue_waits_for_the_previous_run,
    misfire_inside_the_grace_coalesces_into_one_run,
    misfire_inside_the_grace_without_coalesce_runs_each,
    misfire_outside_the_grace_is_skipped_and_recorded,
    misfire_outside_the_grace_without_coalesce_runs_only_those_inside,
    paused_schedules_do_not_fire_and_resume_does_not_backfill,
    trigger_now_enqueues_and_shows_in_history_with_durations,
    three_schedulers_on_one_store_enqueue_each_fire_once,
    reconcile_adds_changes_and_removes_only_configured_schedules,
    bad_schedules_are_rejected_naming_the_field,
    trigger_follows_the_overlap_policy_unless_forced,
    configured_schedules_are_not_changed_or_deleted_at_run_time,
    the_loop_records_its_state_for_health,
);

const START: &str = "2030-01-01T00:00:00Z";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A client on the harness store whose "now" is the harness clock, starting at [`START`].
fn client(h: &Harness) -> Client {
    h.clock.set(t(START));
    Client::from_store(h.store.clone()).with_clock(Arc::new(h.clock.clone()))
}

fn every(interval: &str) -> ScheduleSpec {
    ScheduleSpec {
        every: Some(interval.into()),
        kind: "tick".into(),
        args: serde_json::json!({"n": 1}),
        coalesce: true,
        ..Default::default()
    }
}

async fn pass(h: &Harness) -> errand::scheduler::PassReport {
    run_pass(h.store.as_ref(), &SchedulerOptions::default())
        .await
        .unwrap()
}

fn advance(h: &Harness, secs: u64) {
    h.clock.advance(Duration::from_secs(secs));
}

async fn jobs(h: &Harness) -> Vec<errand::Job> {
    let mut jobs = h
        .store
        .job_list(&JobList {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs;
    jobs.reverse(); // oldest first
    jobs
}

async fn fires(h: &Harness, name: &str, skipped: bool) -> Vec<errand::FireRecord> {
    let mut f = h
        .store
        .schedule_fire_list(&ScheduleFireList {
            name: name.into(),
            skipped,
            limit: 10_000,
        })
        .await
        .unwrap();
    f.reverse(); // oldest first
    f
}

fn reasons(f: &[errand::FireRecord]) -> Vec<(DateTime<Utc>, &str)> {
    f.iter()
        .map(|f| (f.fire_at, f.reason.as_deref().unwrap_or("")))
        .collect()
}

async fn claim(h: &Harness) -> errand::Job {
    let mut j = h
        .store
        .job_claim(&JobClaim {
            queue: "default".into(),
            worker_id: "w".into(),
            limit: 1,
            lease: Duration::from_secs(3600),
        })
        .await
        .unwrap();
    assert_eq!(j.len(), 1, "a job to claim");
    j.remove(0).job
}

async fn complete(h: &Harness, job: &errand::Job) {
    h.store
        .job_complete_many(&[JobComplete {
            fence: job.fence().unwrap(),
            result: None,
        }])
        .await
        .unwrap();
}

async fn a_schedule_fires_once_per_fire_time_with_the_fire_key(h: Harness) {
    let c = client(&h);
    let info = c.schedule_create("tick", &every("1m")).await.unwrap();
    assert_eq!(info.source, ScheduleSource::Api);
    assert_eq!(info.next_fire_at, Some(t("2030-01-01T00:01:00Z")));
    // Created: nothing due (a new schedule does not fire for its past).
    let r = pass(&h).await;
    assert_eq!((r.looked_at, r.enqueued), (1, 0));
    assert_eq!(r.next_due_at, Some(t("2030-01-01T00:01:00Z")));
    assert_eq!(
        pass(&h).await.looked_at,
        0,
        "not due again before its fire time"
    );

    advance(&h, 59);
    assert_eq!(pass(&h).await.enqueued, 0);
    advance(&h, 1);
    let r = pass(&h).await;
    assert_eq!(r.enqueued, 1);
    assert_eq!(r.next_due_at, Some(t("2030-01-01T00:02:00Z")));
    assert_eq!(pass(&h).await.enqueued, 0, "one job per fire time");
    let j = jobs(&h).await;
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].kind, "tick");
    assert_eq!(j[0].args, serde_json::json!({"n": 1}));
    assert_eq!(
        j[0].unique_key.as_deref(),
        Some("schedule:tick:2030-01-01T00:01:00Z")
    );
    assert_eq!(j[0].reference_type.as_deref(), Some("schedule"));
    assert_eq!(j[0].reference_id.as_deref(), Some("tick"));

    let list = c.schedules().await.unwrap();
    assert_eq!(list[0].last_fire_at, t("2030-01-01T00:01:00Z"));
    assert_eq!(list[0].next_fire_at, Some(t("2030-01-01T00:02:00Z")));
    assert_eq!(list[0].last_job_id, Some(j[0].id));
    assert_eq!(list[0].last_job_status, Some(JobStatus::Queued));
}

async fn overlap_skip_records_fires_while_the_previous_run_is_running(h: Harness) {
    let c = client(&h);
    let spec = every("1m");
    assert_eq!(spec.overlap, OverlapPolicy::Skip, "skip is the default");
    c.schedule_create("s", &spec).await.unwrap();
    pass(&h).await;
    advance(&h, 60);
    assert_eq!(pass(&h).await.enqueued, 1);
    let running = claim(&h).await;

    // Two fires while the 00:01 run is still running: skipped, each recorded with the reason.
    for _ in 0..2 {
        advance(&h, 60);
        let r = pass(&h).await;
        assert_eq!((r.enqueued, r.skipped), (0, 1));
    }
    assert_eq!(jobs(&h).await.len(), 1);
    let skipped = fires(&h, "s", true).await;
    assert_eq!(
        reasons(&skipped),
        vec![
            (t("2030-01-01T00:02:00Z"), "overlap_skipped"),
            (t("2030-01-01T00:03:00Z"), "overlap_skipped")
        ]
    );
    let detail = c.schedule("s", 3).await.unwrap();
    assert_eq!(detail.skipped.len(), 2);
    assert_eq!(
        detail.last_run.as_ref().unwrap().job_status,
        Some(JobStatus::Running)
    );

    // Once it has finished, the next fire runs.
    complete(&h, &running).await;
    advance(&h, 60);
    assert_eq!(pass(&h).await.enqueued, 1);
    assert_eq!(jobs(&h).await.len(), 2);
    // A queued (not yet started) run also counts as live.
    advance(&h, 60);
    let r = pass(&h).await;
    assert_eq!((r.enqueued, r.skipped), (0, 1));
}

async fn overlap_allow_enqueues_alongside_and_queue_waits_for_the_previous_run(h: Harness) {
    let c = client(&h);
    let mut allow = every("1m");
    allow.overlap = OverlapPolicy::Allow;
    allow.kind = "allow".into();
    allow.queue = Some("allow".into());
    let mut queue = every("1m");
    queue.overlap = OverlapPolicy::Queue;
    queue.coalesce = false;
    c.schedule_create("allow", &allow).await.unwrap();
    c.schedule_create("queue", &queue).await.unwrap();
    pass(&h).await;
    advance(&h, 60);
    assert_eq!(pass(&h).await.enqueued, 2);
    let first = claim(&h).await; // the queue schedule's 00:01 run (default queue)
    assert_eq!(first.kind, "tick");

    advance(&h, 60);
    let r = pass(&h).await;
    assert_eq!(
        r.enqueued, 1,
        "allow enqueues beside its queued run; queue holds its fire"
    );
    advance(&h, 60);
    assert_eq!(pass(&h).await.enqueued, 1);
    let by_kind = |kind: &str, j: &[errand::Job]| j.iter().filter(|j| j.kind == kind).count();
    let j = jobs(&h).await;
    assert_eq!((by_kind("allow", &j), by_kind("tick", &j)), (3, 1));
    assert!(
        fires(&h, "queue", true).await.is_empty(),
        "held, not skipped"
    );

    // The previous run finishes: the held fires run one after the other, oldest first.
    complete(&h, &first).await;
    let r = pass(&h).await;
    assert_eq!(r.enqueued, 1, "the oldest held fire only");
    assert!(r.more, "the next held fire is still due");
    assert_eq!(pass(&h).await.enqueued, 0, "it waits for the 00:02 run");
    let second = claim(&h).await;
    assert_eq!(
        second.unique_key.as_deref(),
        Some("schedule:queue:2030-01-01T00:02:00Z")
    );
    complete(&h, &second).await;
    assert_eq!(pass(&h).await.enqueued, 1);
    let third = claim(&h).await;
    assert_eq!(
        third.unique_key.as_deref(),
        Some("schedule:queue:2030-01-01T00:03:00Z")
    );
    assert!(
        fires(&h, "queue", true).await.is_empty(),
        "nothing was skipped"
    );
}

async fn misfire_inside_the_grace_coalesces_into_one_run(h: Harness) {
    let c = client(&h);
    c.schedule_create("s", &every("1m")).await.unwrap();
    pass(&h).await;
    // Down for 10 minutes (inside the default 1 h grace).
    advance(&h, 600);
    let r = pass(&h).await;
    assert_eq!((r.enqueued, r.skipped), (1, 9));
    let j = jobs(&h).await;
    assert_eq!(
        j[0].unique_key.as_deref(),
        Some("schedule:s:2030-01-01T00:10:00Z")
    );
    let skipped = fires(&h, "s", true).await;
    assert_eq!(skipped.len(), 9);
    assert!(skipped
        .iter()
        .all(|f| f.reason.as_deref() == Some("coalesced")));
    assert_eq!(skipped[0].fire_at, t("2030-01-01T00:01:00Z"));
}

async fn misfire_inside_the_grace_without_coalesce_runs_each(h: Harness) {
    let c = client(&h);
    let mut spec = every("1m");
    spec.coalesce = false;
    spec.overlap = OverlapPolicy::Allow;
    c.schedule_create("s", &spec).await.unwrap();
    pass(&h).await;
    advance(&h, 600);
    let r = pass(&h).await;
    assert_eq!((r.enqueued, r.skipped), (10, 0));
    let keys: Vec<_> = jobs(&h)
        .await
        .into_iter()
        .map(|j| j.unique_key.unwrap())
        .collect();
    assert_eq!(keys.first().unwrap(), "schedule:s:2030-01-01T00:01:00Z");
    assert_eq!(keys.last().unwrap(), "schedule:s:2030-01-01T00:10:00Z");
}

async fn misfire_outside_the_grace_is_skipped_and_recorded(h: Harness) {
    let c = client(&h);
    // Daily at 02:00 UTC, 30 minutes of grace.
    let spec = ScheduleSpec {
        cron: Some("0 2 * * *".into()),
        kind: "nightly".into(),
        misfire_grace: Some("30m".into()),
        coalesce: true,
        args: serde_json::json!({}),
        ..Default::default()
    };
    c.schedule_create("nightly", &spec).await.unwrap();
    pass(&h).await;
    // Down from before 02:00 until 03:00: the 02:00 fire is an hour late, beyond the grace.
    h.clock.set(t("2030-01-01T03:00:00Z"));
    let r = pass(&h).await;
    assert_eq!((r.enqueued, r.skipped), (0, 1));
    assert!(jobs(&h).await.is_empty());
    assert_eq!(
        reasons(&fires(&h, "nightly", true).await),
        vec![(t("2030-01-01T02:00:00Z"), "missed_beyond_grace")]
    );
    assert_eq!(pass(&h).await.looked_at, 0, "next due tomorrow");
    // Inside the grace the next day: it runs late.
    h.clock.set(t("2030-01-02T02:20:00Z"));
    assert_eq!(pass(&h).await.enqueued, 1);
}

async fn misfire_outside_the_grace_without_coalesce_runs_only_those_inside(h: Harness) {
    let c = client(&h);
    let mut spec = every("10m");
    spec.coalesce = false;
    spec.overlap = OverlapPolicy::Allow;
    spec.misfire_grace = Some("30m".into());
    c.schedule_create("s", &spec).await.unwrap();
    pass(&h).await;
    // Down for 2 hours: fires 00:10..02:00; those at or after 01:30 are inside the grace.
    h.clock.set(t("2030-01-01T02:00:00Z"));
    let r = pass(&h).await;
    assert_eq!((r.enqueued, r.skipped), (4, 8));
    let keys: Vec<_> = jobs(&h)
        .await
        .into_iter()
        .map(|j| j.unique_key.unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "schedule:s:2030-01-01T01:30:00Z",
            "schedule:s:2030-01-01T01:40:00Z",
            "schedule:s:2030-01-01T01:50:00Z",
            "schedule:s:2030-01-01T02:00:00Z"
        ]
    );
    let skipped = fires(&h, "s", true).await;
    assert!(skipped
        .iter()
        .all(|f| f.reason.as_deref() == Some("missed_beyond_grace")));
    assert_eq!(skipped.last().unwrap().fire_at, t("2030-01-01T01:20:00Z"));
}

async fn paused_schedules_do_not_fire_and_resume_does_not_backfill(h: Harness) {
    let c = client(&h);
    c.schedule_create("s", &every("1m")).await.unwrap();
    let p = c.schedule_pause("s").await.unwrap();
    assert!(p.paused);
    assert_eq!(p.next_fire_at, None);
    advance(&h, 600);
    assert_eq!(pass(&h).await.looked_at, 0);
    let r = c.schedule_resume("s").await.unwrap();
    assert_eq!(r.next_fire_at, Some(t("2030-01-01T00:11:00Z")));
    let r = pass(&h).await;
    assert_eq!(
        (r.enqueued, r.skipped),
        (0, 0),
        "the paused span is not missed"
    );
    advance(&h, 60);
    assert_eq!(pass(&h).await.enqueued, 1);
}

async fn trigger_now_enqueues_and_shows_in_history_with_durations(h: Harness) {
    let c = client(&h);
    c.schedule_create("s", &every("1h")).await.unwrap();
    pass(&h).await;
    // Three runs of 1 s, 2 s and 10 s.
    for secs in [1, 2, 10] {
        let Triggered::Enqueued(e) = c.schedule_trigger("s", false).await.unwrap() else {
            panic!("the previous run finished: the trigger enqueues");
        };
        assert!(e.inserted);
        let job = claim(&h).await;
        assert_eq!(job.id, e.id);
        advance(&h, secs);
        complete(&h, &job).await;
    }
    let detail = c.schedule("s", 3).await.unwrap();
    assert_eq!(detail.runs.len(), 3);
    assert!(detail.runs.iter().all(|f| f.outcome == FireKind::Triggered));
    assert_eq!(detail.last_run_ms, Some(10_000));
    assert_eq!(
        detail.last_run.unwrap().job_status,
        Some(JobStatus::Succeeded)
    );
    assert_eq!(detail.stats.finished, 3);
    assert_eq!(detail.stats.avg_ms, Some(13_000 / 3));
    assert_eq!(detail.stats.p95_ms, Some(10_000));
    assert_eq!(detail.stats.max_ms, Some(10_000));
    // Triggers do not move the fire times.
    assert_eq!(detail.info.last_fire_at, t(START));
    assert_eq!(
        detail.next,
        vec![
            t("2030-01-01T01:00:00Z"),
            t("2030-01-01T02:00:00Z"),
            t("2030-01-01T03:00:00Z")
        ]
    );
    let missing = c.schedule_trigger("nope", false).await.unwrap_err();
    assert!(
        missing.to_string().contains("schedule `nope` not found"),
        "{missing}"
    );
}

async fn three_schedulers_on_one_store_enqueue_each_fire_once(h: Harness) {
    let c = client(&h);
    let mut spec = every("1s");
    spec.overlap = OverlapPolicy::Allow;
    c.schedule_create("s", &spec).await.unwrap();
    for _ in 0..20 {
        advance(&h, 1);
        let passes: Vec<_> = (0..3)
            .map(|_| {
                let store: Arc<dyn Store> = h.store.clone();
                tokio::spawn(async move {
                    run_pass(store.as_ref(), &SchedulerOptions::default())
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut enqueued = 0;
        for p in passes {
            enqueued += p.await.unwrap().enqueued;
        }
        assert_eq!(enqueued, 1);
    }
    assert_eq!(jobs(&h).await.len(), 20);
    assert_eq!(fires(&h, "s", false).await.len(), 20);
}

async fn reconcile_adds_changes_and_removes_only_configured_schedules(h: Harness) {
    let c = client(&h);
    c.schedule_create("from_api", &every("1m")).await.unwrap();
    let mut config = BTreeMap::from([
        ("a".to_string(), every("1m")),
        ("b".to_string(), every("5m")),
    ]);
    let r = c.reconcile_schedules(&config).await.unwrap();
    assert_eq!(
        (r.added, r.changed, r.removed),
        (vec!["a".to_string(), "b".to_string()], vec![], vec![])
    );
    let again = c.reconcile_schedules(&config).await.unwrap();
    assert_eq!(again.unchanged, ["a", "b"]);
    assert!(again.added.is_empty() && again.changed.is_empty() && again.removed.is_empty());

    // An operator's pause survives a restart with the same file.
    c.schedule_pause("a").await.unwrap();
    c.reconcile_schedules(&config).await.unwrap();
    assert!(c.schedule("a", 0).await.unwrap().info.paused);

    config.get_mut("b").unwrap().every = Some("10m".into());
    config.remove("a");
    config.insert("c".into(), every("1h"));
    let r = c.reconcile_schedules(&config).await.unwrap();
    assert_eq!(r.added, ["c"]);
    assert_eq!(r.changed, ["b"]);
    assert_eq!(r.removed, ["a"]);
    let names: Vec<_> = c
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.source))
        .collect();
    assert_eq!(
        names,
        vec![
            ("b".to_string(), ScheduleSource::Config),
            ("c".to_string(), ScheduleSource::Config),
            ("from_api".to_string(), ScheduleSource::Api),
        ]
    );
    assert_eq!(c.schedule("b", 0).await.unwrap().info.spec["every"], "10m");

    // A bad spec changes nothing.
    config.get_mut("c").unwrap().timezone = Some("Mars/Olympus".into());
    config.insert("d".into(), every("1m"));
    let e = c.reconcile_schedules(&config).await.unwrap_err();
    assert!(e.to_string().contains("schedules.c.timezone"), "{e}");
    assert_eq!(c.schedules().await.unwrap().len(), 3);
}

async fn bad_schedules_are_rejected_naming_the_field(h: Harness) {
    let c = client(&h);
    let mut spec = every("1m");
    spec.cron = Some("0 2 * *".into());
    let e = c.schedule_create("x", &spec).await.unwrap_err();
    assert!(
        e.to_string().contains("schedules.x: set exactly one of"),
        "{e}"
    );
    spec.every = None;
    let e = c.schedule_create("x", &spec).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("schedules.x.cron: invalid expression"),
        "{e}"
    );
    assert!(c.schedules().await.unwrap().is_empty());
    c.schedule_create("x", &every("1m")).await.unwrap();
    let e = c.schedule_create("x", &every("1m")).await.unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = c.schedule_update("nope", &every("1m")).await.unwrap_err();
    assert!(e.to_string().contains("schedule `nope` not found"), "{e}");
    // A cron expression that can never fire is refused, naming the schedule and the field.
    let mut never = every("1m");
    never.every = None;
    never.cron = Some("0 0 30 2 *".into());
    let e = c.schedule_create("leap", &never).await.unwrap_err();
    assert!(
        e.to_string().starts_with(
            r#"schedules.leap.cron: invalid expression "0 0 30 2 *": field "day of month""#
        ),
        "{e}"
    );
    let e = c.schedule_update("x", &never).await.unwrap_err();
    assert!(matches!(e, Error::InvalidSchedule(_)), "{e}");
    assert_eq!(c.schedules().await.unwrap().len(), 1);
}

async fn trigger_follows_the_overlap_policy_unless_forced(h: Harness) {
    let c = client(&h);
    c.schedule_create("s", &every("1h")).await.unwrap();
    let Triggered::Enqueued(first) = c.schedule_trigger("s", false).await.unwrap() else {
        panic!("nothing live yet: enqueued");
    };
    // Queued, then running: a trigger skips, says why, and enqueues nothing.
    let skipped = c.schedule_trigger("s", false).await.unwrap();
    assert_eq!(
        skipped,
        Triggered::Skipped {
            reason: SkipReason::OverlapSkipped,
            overlap: OverlapPolicy::Skip,
            live_job_id: Some(first.id),
            live_status: Some(JobStatus::Queued),
        }
    );
    let running = claim(&h).await;
    let skipped = c.schedule_trigger("s", false).await.unwrap();
    let message = skipped.skip_message("s").unwrap();
    assert!(
        message.contains(&format!("previous run (job {}) is still running", first.id))
            && message.contains("overlap policy is `skip`"),
        "{message}"
    );
    assert_eq!(jobs(&h).await.len(), 1);
    // Forced: a second copy beside the running one (a trigger's key is its time: move on).
    advance(&h, 1);
    let Triggered::Enqueued(forced) = c.schedule_trigger("s", true).await.unwrap() else {
        panic!("force overrides the policy");
    };
    assert!(forced.inserted && forced.id != first.id, "{forced:?}");
    assert_eq!(jobs(&h).await.len(), 2);
    complete(&h, &running).await;
    let second = claim(&h).await;
    complete(&h, &second).await;
    assert!(matches!(
        c.schedule_trigger("s", false).await.unwrap(),
        Triggered::Enqueued(_)
    ));

    // `queue` cannot hold a trigger: it skips too; `allow` runs alongside.
    for (name, overlap, runs_alongside) in [
        ("q", OverlapPolicy::Queue, false),
        ("a", OverlapPolicy::Allow, true),
    ] {
        let mut spec = every("1h");
        spec.overlap = overlap;
        c.schedule_create(name, &spec).await.unwrap();
        assert!(matches!(
            c.schedule_trigger(name, false).await.unwrap(),
            Triggered::Enqueued(_)
        ));
        advance(&h, 1);
        let again = c.schedule_trigger(name, false).await.unwrap();
        assert_eq!(
            matches!(again, Triggered::Enqueued(_)),
            runs_alongside,
            "{name}: {again:?}"
        );
    }
    // Only the successful triggers are runs in the history.
    assert_eq!(fires(&h, "s", false).await.len(), 3);
}

async fn configured_schedules_are_not_changed_or_deleted_at_run_time(h: Harness) {
    let c = client(&h);
    let config = BTreeMap::from([("nightly".to_string(), every("1h"))]);
    c.reconcile_schedules(&config).await.unwrap();
    c.schedule_create("adhoc", &every("1m")).await.unwrap();

    let e = c
        .schedule_update("nightly", &every("5m"))
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::ConfigOwned(n) if n == "nightly"), "{e}");
    assert!(
        e.to_string()
            .contains("is defined in errand.toml ([schedules.nightly], source `config`)"),
        "{e}"
    );
    let e = c.schedule_delete("nightly").await.unwrap_err();
    assert!(matches!(&e, Error::ConfigOwned(_)), "{e}");
    let nightly = c.schedule("nightly", 0).await.unwrap().info;
    assert_eq!(nightly.spec["every"], "1h", "unchanged");
    // Pause, resume and trigger stay allowed on it.
    c.schedule_pause("nightly").await.unwrap();
    c.schedule_resume("nightly").await.unwrap();

    // Run-time schedules: changed and deleted.
    let changed = c.schedule_update("adhoc", &every("5m")).await.unwrap();
    assert_eq!(changed.spec["every"], "5m");
    assert_eq!(changed.source, ScheduleSource::Api);
    assert!(c.schedule_delete("adhoc").await.unwrap());
    assert!(!c.schedule_delete("adhoc").await.unwrap());
    let names: Vec<String> = c
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["nightly"]);
}

async fn the_loop_records_its_state_for_health(h: Harness) {
    let c = client(&h);
    c.schedule_create("s", &every("1h")).await.unwrap();
    let status = SchedulerStatus::default();
    assert_eq!(status.state(), LoopState::NotStarted);
    assert_eq!(SchedulerStatus::disabled().state(), LoopState::Disabled);
    let handle = c.scheduler(SchedulerOptions {
        max_sleep: Duration::from_millis(20),
        status: status.clone(),
        ..Default::default()
    });
    // Wait for the end of a pass (bounded; the loop passes every 20 ms).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match status.state() {
            LoopState::Running {
                last_pass_at: Some(_),
                failing: None,
                ..
            } => break,
            LoopState::Running { .. } => {}
            other => panic!("unexpected state {other:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "no pass within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.shutdown().await;
    assert!(
        matches!(status.state(), LoopState::Stopped { why, .. } if why == "shut down"),
        "{:?}",
        status.state()
    );
}
