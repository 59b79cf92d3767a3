//! The schedule operations of the store (`schedule_*`) on both backends:
//! `cargo test -p errand-store-tests --test schedules`.
//!
//! The store applies the scheduler's decisions; these cases check that it applies them
//! exactly once (the `last_fire_at` compare-and-set under concurrent callers) and all or
//! nothing (the fire and its job inserts commit together).

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use errand_core::JobStatus;
use errand_store::{
    DueSchedules, FireKind, FireOutcome, JobClaim, JobComplete, ScheduleFire, ScheduleFireList,
    ScheduleRecord, ScheduleSource, ScheduleWrite, StoreError, FIRE_HISTORY_KEPT,
};
use errand_store_tests::{new_job, Harness};
use serde_json::json;
use std::time::Duration;

errand_store_tests::both_backends!(
    schedule_create_get_list_update_delete,
    schedule_pause_and_resume_resets_last_fire_at,
    schedule_list_due_reads_due_unpaused_rows_and_the_next_due_time,
    schedule_fire_moves_last_fire_at_inserts_jobs_and_records_fires,
    schedule_fire_concurrent_attempts_one_wins,
    schedule_fire_and_its_inserts_commit_together,
    schedule_fire_lost_after_update_pause_or_delete,
    schedule_trigger_enqueues_without_moving_last_fire_at,
    schedule_fire_history_is_trimmed_to_the_newest_rows,
);

fn write(name: &str) -> ScheduleWrite {
    ScheduleWrite {
        name: name.into(),
        spec: json!({"every": "1m", "kind": "report"}),
        kind: "report".into(),
        queue: "default".into(),
        paused: false,
        source: ScheduleSource::Api,
    }
}

fn secs(n: i64) -> ChronoDuration {
    ChronoDuration::seconds(n)
}

/// A decision on `s` as read: fire at each of `runs` (a job per fire), skip `skipped`.
fn decision(
    s: &ScheduleRecord,
    runs: &[DateTime<Utc>],
    skipped: &[(DateTime<Utc>, &str)],
    due_at: DateTime<Utc>,
) -> ScheduleFire {
    let latest = runs
        .iter()
        .chain(skipped.iter().map(|(t, _)| t))
        .max()
        .copied()
        .unwrap_or(s.last_fire_at);
    ScheduleFire {
        name: s.name.clone(),
        expected_last_fire_at: s.last_fire_at,
        expected_updated_at: s.updated_at,
        last_fire_at: latest,
        due_at,
        runs: runs
            .iter()
            .map(|t| {
                let mut job = new_job(&s.kind);
                job.unique_key = Some(format!("schedule:{}:{}", s.name, t.to_rfc3339()));
                (*t, job)
            })
            .collect(),
        skipped: skipped.iter().map(|(t, r)| (*t, r.to_string())).collect(),
    }
}

async fn get(h: &Harness, name: &str) -> ScheduleRecord {
    h.store
        .schedule_get(name)
        .await
        .unwrap()
        .expect("schedule exists")
}

async fn fires(h: &Harness, name: &str, skipped: bool) -> Vec<errand_store::FireRecord> {
    h.store
        .schedule_fire_list(&ScheduleFireList {
            name: name.into(),
            skipped,
            limit: 10_000,
        })
        .await
        .unwrap()
}

async fn count_jobs(h: &Harness) -> usize {
    h.store
        .job_list(&errand_store::JobList {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs
        .len()
}

async fn schedule_create_get_list_update_delete(h: Harness) {
    let t0 = h.now();
    let a = h.store.schedule_create(&write("a")).await.unwrap();
    assert_eq!(a.name, "a");
    assert_eq!(a.spec, json!({"every": "1m", "kind": "report"}));
    assert_eq!((a.kind.as_str(), a.queue.as_str()), ("report", "default"));
    assert_eq!(a.source, ScheduleSource::Api);
    assert!(!a.paused);
    // A new schedule does not fire for its past, and is looked at at once.
    assert_eq!(a.last_fire_at, t0);
    assert_eq!(a.due_at, t0);
    assert_eq!((a.created_at, a.updated_at), (t0, t0));
    assert_eq!((a.last_job_id, a.last_job_status), (None, None));

    let dup = h.store.schedule_create(&write("a")).await.unwrap_err();
    assert!(
        matches!(dup, StoreError::Conflict(ref m) if m.contains("`a` already exists")),
        "{dup}"
    );

    let mut b = write("b");
    b.source = ScheduleSource::Config;
    b.paused = true;
    h.store.schedule_create(&b).await.unwrap();
    let names: Vec<_> = h
        .store
        .schedule_list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.source, s.paused))
        .collect();
    assert_eq!(
        names,
        vec![
            ("a".to_string(), ScheduleSource::Api, false),
            ("b".to_string(), ScheduleSource::Config, true)
        ]
    );

    // Update: spec and columns replaced, last_fire_at kept, due now.
    h.clock.advance(Duration::from_secs(90));
    let mut a2 = write("a");
    a2.spec = json!({"cron": "0 * * * *", "kind": "other", "queue": "q"});
    a2.kind = "other".into();
    a2.queue = "q".into();
    a2.source = ScheduleSource::Config;
    let up = h.store.schedule_update(&a2).await.unwrap();
    assert_eq!(up.spec, a2.spec);
    assert_eq!(
        (up.kind.as_str(), up.queue.as_str(), up.source),
        ("other", "q", ScheduleSource::Config)
    );
    assert_eq!(up.last_fire_at, t0);
    assert_eq!(up.due_at, h.now());
    assert_eq!(up.updated_at, h.now());
    assert_eq!(up.created_at, t0);
    // Unpausing through an update counts as a resume: the paused span is not missed.
    b.paused = false;
    let b_up = h.store.schedule_update(&b).await.unwrap();
    assert!(!b_up.paused);
    assert_eq!(b_up.last_fire_at, h.now());

    let missing = h.store.schedule_update(&write("nope")).await.unwrap_err();
    assert!(
        matches!(missing, StoreError::ScheduleNotFound(ref n) if n == "nope"),
        "{missing}"
    );
    assert!(h.store.schedule_get("nope").await.unwrap().is_none());

    // Delete takes the fire records with it; the jobs stay.
    let fired = h
        .store
        .schedule_fire(&decision(
            &up,
            &[h.now()],
            &[(h.now() - secs(1), "coalesced")],
            h.now() + secs(60),
        ))
        .await
        .unwrap();
    assert!(matches!(fired, FireOutcome::Fired { .. }));
    assert!(h.store.schedule_delete("a").await.unwrap());
    assert!(!h.store.schedule_delete("a").await.unwrap());
    assert!(fires(&h, "a", false).await.is_empty());
    assert!(fires(&h, "a", true).await.is_empty());
    assert_eq!(count_jobs(&h).await, 1);
    // The name is free again.
    h.store.schedule_create(&write("a")).await.unwrap();
}

async fn schedule_pause_and_resume_resets_last_fire_at(h: Harness) {
    let t0 = h.now();
    h.store.schedule_create(&write("s")).await.unwrap();
    h.clock.advance(Duration::from_secs(10));
    let p = h.store.schedule_pause("s").await.unwrap();
    assert!(p.paused);
    assert_eq!(p.last_fire_at, t0);
    // Idempotent.
    let p2 = h.store.schedule_pause("s").await.unwrap();
    assert_eq!(p2, p);
    // Paused: never due.
    h.clock.advance(Duration::from_secs(3600));
    let due = h.store.schedule_list_due(100).await.unwrap();
    assert!(due.schedules.is_empty());
    assert_eq!(due.next_due_at, None);

    let r = h.store.schedule_resume("s").await.unwrap();
    assert!(!r.paused);
    assert_eq!(
        r.last_fire_at,
        h.now(),
        "the paused hour is not counted as missed"
    );
    assert_eq!(r.due_at, h.now());
    // Resuming an unpaused schedule changes nothing.
    h.clock.advance(Duration::from_secs(5));
    assert_eq!(h.store.schedule_resume("s").await.unwrap(), r);

    for e in [
        h.store.schedule_pause("nope").await.unwrap_err(),
        h.store.schedule_resume("nope").await.unwrap_err(),
    ] {
        assert!(matches!(e, StoreError::ScheduleNotFound(_)), "{e}");
    }
}

async fn schedule_list_due_reads_due_unpaused_rows_and_the_next_due_time(h: Harness) {
    let t0 = h.now();
    for name in ["a", "b", "c", "d"] {
        h.store.schedule_create(&write(name)).await.unwrap();
    }
    h.store.schedule_pause("d").await.unwrap();
    let DueSchedules {
        now,
        schedules,
        next_due_at,
    } = h.store.schedule_list_due(100).await.unwrap();
    assert_eq!(now, t0);
    let names: Vec<_> = schedules.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(next_due_at, None);
    // The limit applies.
    assert_eq!(
        h.store.schedule_list_due(2).await.unwrap().schedules.len(),
        2
    );

    // Look at a in 10 s, b in 20 s; c stays due.
    for (name, after) in [("a", 10), ("b", 20)] {
        let s = get(&h, name).await;
        let out = h
            .store
            .schedule_fire(&decision(&s, &[], &[], t0 + secs(after)))
            .await
            .unwrap();
        assert_eq!(out, FireOutcome::Fired { enqueued: vec![] });
    }
    let due = h.store.schedule_list_due(100).await.unwrap();
    assert_eq!(
        due.schedules
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["c"]
    );
    assert_eq!(due.next_due_at, Some(t0 + secs(10)));
    h.clock.advance(Duration::from_secs(10));
    let due = h.store.schedule_list_due(100).await.unwrap();
    assert_eq!(
        due.schedules
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["c", "a"],
        "earliest due first"
    );
    assert_eq!(due.next_due_at, Some(t0 + secs(20)));
}

async fn schedule_fire_moves_last_fire_at_inserts_jobs_and_records_fires(h: Harness) {
    let t0 = h.now();
    let s = h.store.schedule_create(&write("s")).await.unwrap();
    h.clock.advance(Duration::from_secs(200));
    let (f1, f2, f3) = (t0 + secs(60), t0 + secs(120), t0 + secs(180));
    let d = decision(
        &s,
        &[f3],
        &[(f1, "missed_beyond_grace"), (f2, "coalesced")],
        t0 + secs(240),
    );
    let FireOutcome::Fired { enqueued } = h.store.schedule_fire(&d).await.unwrap() else {
        panic!("fire lost");
    };
    assert_eq!(enqueued.len(), 1);
    assert!(enqueued[0].inserted);
    let after = get(&h, "s").await;
    assert_eq!(after.last_fire_at, f3);
    assert_eq!(after.due_at, t0 + secs(240));
    assert_eq!(
        after.updated_at, s.updated_at,
        "a fire is not a change of the schedule"
    );
    assert_eq!(after.last_job_id, Some(enqueued[0].id));
    assert_eq!(after.last_job_status, Some(JobStatus::Queued));
    assert!(after.last_run_live());
    let job = h.store.job_get(enqueued[0].id).await.unwrap().unwrap();
    assert_eq!(
        job.unique_key.as_deref(),
        Some(format!("schedule:s:{}", f3.to_rfc3339()).as_str())
    );

    let runs = fires(&h, "s", false).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].fire_at, runs[0].outcome, runs[0].job_id),
        (f3, FireKind::Enqueued, Some(job.id))
    );
    assert_eq!(runs[0].recorded_at, h.now());
    assert_eq!(runs[0].job_status, Some(JobStatus::Queued));
    let skipped = fires(&h, "s", true).await;
    let got: Vec<_> = skipped
        .iter()
        .map(|f| (f.fire_at, f.outcome, f.reason.as_deref(), f.job_id))
        .collect();
    assert_eq!(
        got,
        vec![
            (f2, FireKind::Skipped, Some("coalesced"), None),
            (f1, FireKind::Skipped, Some("missed_beyond_grace"), None),
        ],
        "newest first"
    );

    // The run's status and times are joined from the job: run it to the end.
    h.clock.advance(Duration::from_secs(1));
    let claimed = h
        .store
        .job_claim(&JobClaim {
            queue: "default".into(),
            worker_id: "w".into(),
            limit: 1,
            lease: Duration::from_secs(30),
        })
        .await
        .unwrap();
    h.clock.advance(Duration::from_millis(2500));
    h.store
        .job_complete_many(&[JobComplete {
            fence: claimed[0].fence().unwrap(),
            result: None,
        }])
        .await
        .unwrap();
    let runs = fires(&h, "s", false).await;
    assert_eq!(runs[0].job_status, Some(JobStatus::Succeeded));
    let took = runs[0].job_finished_at.unwrap() - runs[0].job_started_at.unwrap();
    assert_eq!(took, ChronoDuration::milliseconds(2500));
    assert!(!get(&h, "s").await.last_run_live());
}

async fn schedule_fire_concurrent_attempts_one_wins(h: Harness) {
    let s = h.store.schedule_create(&write("race")).await.unwrap();
    let mut expected = s;
    for round in 1..=5 {
        h.clock.advance(Duration::from_secs(60));
        let fire_at = h.now();
        // Eight processes read the same row and reach the same decision at once.
        let attempts: Vec<_> = (0..8)
            .map(|_| {
                let store = h.store.clone();
                let d = decision(&expected, &[fire_at], &[], fire_at + secs(60));
                tokio::spawn(async move { store.schedule_fire(&d).await.unwrap() })
            })
            .collect();
        let mut won = 0;
        for a in attempts {
            match a.await.unwrap() {
                FireOutcome::Fired { enqueued } => {
                    assert_eq!(enqueued.len(), 1);
                    won += 1;
                }
                FireOutcome::Lost => {}
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one attempt applies");
        assert_eq!(count_jobs(&h).await, round);
        assert_eq!(fires(&h, "race", false).await.len(), round);
        expected = get(&h, "race").await;
        assert_eq!(expected.last_fire_at, fire_at);
    }
    // A late process that read the row before the last fire loses, whatever it decided.
    let stale = decision(&expected, &[], &[], h.now());
    let mut stale = stale;
    stale.expected_last_fire_at -= secs(60);
    assert_eq!(
        h.store.schedule_fire(&stale).await.unwrap(),
        FireOutcome::Lost
    );
}

async fn schedule_fire_and_its_inserts_commit_together(h: Harness) {
    let s = h.store.schedule_create(&write("s")).await.unwrap();
    h.clock.advance(Duration::from_secs(120));
    let (f1, f2) = (h.now() - secs(60), h.now());
    let mut d = decision(&s, &[f1, f2], &[], h.now() + secs(60));
    // The second job breaks a constraint of the jobs table: the whole fire must roll back.
    d.runs[1].1.max_attempts = 0;
    h.store.schedule_fire(&d).await.unwrap_err();
    let after = get(&h, "s").await;
    assert_eq!(
        after.last_fire_at, s.last_fire_at,
        "last_fire_at did not move"
    );
    assert_eq!(after.due_at, s.due_at);
    assert_eq!(after.last_job_id, None);
    assert_eq!(
        count_jobs(&h).await,
        0,
        "no job of the failed fire was kept"
    );
    assert!(fires(&h, "s", false).await.is_empty());
    assert!(fires(&h, "s", true).await.is_empty());

    // The same decision, fixed, applies in full: it was not half-applied before.
    d.runs[1].1.max_attempts = 3;
    let FireOutcome::Fired { enqueued } = h.store.schedule_fire(&d).await.unwrap() else {
        panic!("fire lost");
    };
    assert_eq!(enqueued.len(), 2);
    assert_eq!(count_jobs(&h).await, 2);
    assert_eq!(fires(&h, "s", false).await.len(), 2);
    assert_eq!(get(&h, "s").await.last_job_id, Some(enqueued[1].id));
}

async fn schedule_fire_lost_after_update_pause_or_delete(h: Harness) {
    let s = h.store.schedule_create(&write("s")).await.unwrap();
    h.clock.advance(Duration::from_secs(60));
    let d = decision(&s, &[h.now()], &[], h.now() + secs(60));

    // Changed since read.
    h.clock.advance(Duration::from_millis(1));
    h.store.schedule_update(&write("s")).await.unwrap();
    assert_eq!(h.store.schedule_fire(&d).await.unwrap(), FireOutcome::Lost);
    // Paused since read.
    let s = get(&h, "s").await;
    let d = decision(&s, &[h.now()], &[], h.now() + secs(60));
    h.store.schedule_pause("s").await.unwrap();
    assert_eq!(h.store.schedule_fire(&d).await.unwrap(), FireOutcome::Lost);
    // Deleted since read.
    h.store.schedule_delete("s").await.unwrap();
    assert_eq!(h.store.schedule_fire(&d).await.unwrap(), FireOutcome::Lost);
    assert_eq!(count_jobs(&h).await, 0);
}

async fn schedule_trigger_enqueues_without_moving_last_fire_at(h: Harness) {
    let s = h.store.schedule_create(&write("s")).await.unwrap();
    h.clock.advance(Duration::from_secs(30));
    let mut job = new_job("report");
    job.unique_key = Some("schedule:s:trigger:1".into());
    let e = h.store.schedule_trigger("s", &job).await.unwrap();
    assert!(e.inserted);
    let after = get(&h, "s").await;
    assert_eq!(after.last_fire_at, s.last_fire_at);
    assert_eq!(after.due_at, s.due_at);
    assert_eq!(
        after.last_job_id,
        Some(e.id),
        "overlap looks at triggered runs too"
    );
    let runs = fires(&h, "s", false).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].outcome, runs[0].fire_at, runs[0].job_id),
        (FireKind::Triggered, h.now(), Some(e.id))
    );

    let missing = h
        .store
        .schedule_trigger("nope", &new_job("report"))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::ScheduleNotFound(_)),
        "{missing}"
    );
    assert_eq!(
        count_jobs(&h).await,
        1,
        "nothing enqueued for a missing schedule"
    );
}

async fn schedule_fire_history_is_trimmed_to_the_newest_rows(h: Harness) {
    let s = h.store.schedule_create(&write("s")).await.unwrap();
    let t0 = h.now();
    let n = i64::from(FIRE_HISTORY_KEPT) + 5;
    let skipped: Vec<(DateTime<Utc>, &str)> =
        (1..=n).map(|i| (t0 + secs(i), "coalesced")).collect();
    h.clock.advance(Duration::from_secs(n as u64 + 1));
    let d = decision(&s, &[h.now()], &skipped, h.now() + secs(1));
    h.store.schedule_fire(&d).await.unwrap();
    let kept = fires(&h, "s", true).await;
    assert_eq!(kept.len() + 1, FIRE_HISTORY_KEPT as usize);
    assert_eq!(
        kept.last().unwrap().fire_at,
        t0 + secs(7),
        "the oldest were dropped"
    );
    assert_eq!(
        fires(&h, "s", false).await.len(),
        1,
        "the newest, a run, is kept"
    );
}
