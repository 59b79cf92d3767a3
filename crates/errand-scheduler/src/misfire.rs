//! What to enqueue now: the misfire and coalesce rule, and the overlap rule, as plain
//! functions of the schedule, the times and what the caller knows.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::spec::{OverlapPolicy, Schedule};

/// The most fires one decision runs when `coalesce = false`: the latest ones; older due fires
/// are skipped as [`SkipReason::Coalesced`].
pub const MAX_RUNS_PER_DECISION: usize = 1000;
/// The most skipped fires one decision lists, oldest first;
/// [`MisfireDecision::skipped_unlisted`] tells when more were skipped.
pub const MAX_LISTED_SKIPS: usize = 1000;

/// Why a fire did not enqueue a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Missed (the scheduler was not running) by more than the schedule's `misfire_grace`.
    MissedBeyondGrace,
    /// Missed, and folded into a later fire that runs (`coalesce = true`), or over the
    /// per-decision bound.
    Coalesced,
    /// The previous run was still queued or running (`overlap = "skip"`).
    OverlapSkipped,
}

impl SkipReason {
    /// The word recorded for it: `missed_beyond_grace`, `coalesced`, `overlap_skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::MissedBeyondGrace => "missed_beyond_grace",
            SkipReason::Coalesced => "coalesced",
            SkipReason::OverlapSkipped => "overlap_skipped",
        }
    }
}

/// The fires that are due, split into those to enqueue now and those skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MisfireDecision {
    /// Fire times to enqueue now, oldest first.
    pub run: Vec<DateTime<Utc>>,
    /// Due fire times not enqueued, oldest first, at most [`MAX_LISTED_SKIPS`].
    pub skipped: Vec<(DateTime<Utc>, SkipReason)>,
    /// More due fires were skipped than `skipped` lists (only a dense schedule after a long
    /// outage gets here: the listing is bounded so that a decision is cheap).
    pub skipped_unlisted: bool,
}

impl MisfireDecision {
    /// The latest due fire this decision covers, run or skipped: what the caller records as
    /// the schedule's last fire. `None` if nothing was due.
    pub fn latest(&self) -> Option<DateTime<Utc>> {
        let run = self.run.last().copied();
        let skipped = self.skipped.last().map(|(t, _)| *t);
        run.max(skipped)
    }
}

/// Decides the fires due in `(last, now]`, where `last` is the last fire recorded for the
/// schedule (or its creation time, so a new schedule does not fire for its past).
///
/// - A due fire older than `now - misfire_grace` is skipped: [`SkipReason::MissedBeyondGrace`].
/// - Of the others, `coalesce = true` runs only the latest and skips the rest as
///   [`SkipReason::Coalesced`]; `coalesce = false` runs them all, up to the latest
///   [`MAX_RUNS_PER_DECISION`] (older ones are skipped as `Coalesced`).
///
/// On time, the one due fire is inside the grace and runs. The work is bounded whatever the
/// outage: the runs are found searching back from `now`, and the skipped fires are listed
/// forward from `last` up to [`MAX_LISTED_SKIPS`].
pub fn decide_misfires(
    schedule: &Schedule,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> MisfireDecision {
    let mut decision = MisfireDecision::default();
    if now <= last {
        return decision;
    }
    let grace = TimeDelta::from_std(schedule.misfire_grace).unwrap_or(TimeDelta::MAX);
    let oldest_on_time = now
        .checked_sub_signed(grace)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let wanted = if schedule.coalesce {
        1
    } else {
        MAX_RUNS_PER_DECISION
    };

    let trigger = &schedule.trigger;
    let mut cursor = trigger.last_at_or_before(now);
    while let Some(fire) = cursor {
        if fire <= last || fire < oldest_on_time || decision.run.len() == wanted {
            break;
        }
        decision.run.push(fire);
        cursor = trigger.last_at_or_before(fire - TimeDelta::nanoseconds(1));
    }
    decision.run.reverse();

    let first_run = decision.run.first().copied();
    for fire in trigger.fires_between(last, now, usize::MAX) {
        if first_run.is_some_and(|run| fire >= run) {
            break;
        }
        if decision.skipped.len() == MAX_LISTED_SKIPS {
            decision.skipped_unlisted = true;
            break;
        }
        let reason = if fire < oldest_on_time {
            SkipReason::MissedBeyondGrace
        } else {
            SkipReason::Coalesced
        };
        decision.skipped.push((fire, reason));
    }
    decision
}

/// What a due fire does, given whether the schedule's previous run is still live (queued or
/// running).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapAction {
    /// Enqueue the fire's job now.
    Enqueue,
    /// Enqueue it, but it must start only after the live previous run has finished
    /// (`overlap = "queue"`). Enqueuing alone does not give that order (a free worker would
    /// start it at once), so the caller holds the fire until the previous run is finished.
    EnqueueAfterPrevious,
    /// Do not enqueue; record the skip.
    Skip(SkipReason),
}

/// The overlap rule: with no live previous run every fire is enqueued; otherwise `skip`
/// skips it ([`SkipReason::OverlapSkipped`]), `allow` enqueues it to run alongside, and
/// `queue` enqueues it to run after.
pub fn overlap_action(policy: OverlapPolicy, previous_run_live: bool) -> OverlapAction {
    match (policy, previous_run_live) {
        (_, false) | (OverlapPolicy::Allow, true) => OverlapAction::Enqueue,
        (OverlapPolicy::Queue, true) => OverlapAction::EnqueueAfterPrevious,
        (OverlapPolicy::Skip, true) => OverlapAction::Skip(SkipReason::OverlapSkipped),
    }
}

/// What a manual trigger ("run it now") does: the overlap rule, unless `force`. A trigger is
/// answered at once and never held, so under `overlap = "queue"` a live previous run makes
/// it skip as under `skip` (holding it would need a fire time to hold it by; `force` runs it
/// beside the live run). Returns [`OverlapAction::Enqueue`] or [`OverlapAction::Skip`].
pub fn trigger_action(
    policy: OverlapPolicy,
    previous_run_live: bool,
    force: bool,
) -> OverlapAction {
    if force {
        return OverlapAction::Enqueue;
    }
    match overlap_action(policy, previous_run_live) {
        OverlapAction::EnqueueAfterPrevious => OverlapAction::Skip(SkipReason::OverlapSkipped),
        action => action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ScheduleSpec;
    use SkipReason::{Coalesced, MissedBeyondGrace};

    fn schedule(trigger: (&str, &str), grace: &str, coalesce: bool) -> Schedule {
        let (key, value) = trigger;
        ScheduleSpec {
            cron: (key == "cron").then(|| value.to_string()),
            every: (key == "every").then(|| value.to_string()),
            kind: "k".into(),
            args: serde_json::json!({}),
            misfire_grace: Some(grace.into()),
            coalesce,
            ..Default::default()
        }
        .validate("s")
        .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn times(list: &[&str]) -> Vec<DateTime<Utc>> {
        list.iter().map(|s| utc(s)).collect()
    }

    #[test]
    fn on_time_the_due_fire_runs() {
        let s = schedule(("cron", "0 * * * *"), "1h", true);
        let d = decide_misfires(
            &s,
            utc("2026-06-01T09:00:00Z"),
            utc("2026-06-01T10:00:00.300Z"),
        );
        assert_eq!(d.run, times(&["2026-06-01T10:00:00Z"]));
        assert!(d.skipped.is_empty());
        assert_eq!(d.latest(), Some(utc("2026-06-01T10:00:00Z")));
        // Nothing due: nothing to do.
        let d = decide_misfires(&s, utc("2026-06-01T10:00:00Z"), utc("2026-06-01T10:59:59Z"));
        assert_eq!(d, MisfireDecision::default());
        assert_eq!(d.latest(), None);
        // A fire at exactly `last` was already handled; one at exactly `now` is due.
        let d = decide_misfires(&s, utc("2026-06-01T10:00:00Z"), utc("2026-06-01T11:00:00Z"));
        assert_eq!(d.run, times(&["2026-06-01T11:00:00Z"]));
        // A clock that went backwards decides nothing.
        let d = decide_misfires(&s, utc("2026-06-01T10:00:00Z"), utc("2026-06-01T09:00:00Z"));
        assert_eq!(d, MisfireDecision::default());
    }

    #[test]
    fn missed_fires_inside_the_grace_coalesce_into_the_latest() {
        // Down from 09:05 to 09:50; every 15 minutes; grace 1h: all three missed fires are
        // within the grace, only the latest runs.
        let s = schedule(("cron", "*/15 * * * *"), "1h", true);
        let d = decide_misfires(&s, utc("2026-06-01T09:00:00Z"), utc("2026-06-01T09:50:00Z"));
        assert_eq!(d.run, times(&["2026-06-01T09:45:00Z"]));
        assert_eq!(
            d.skipped,
            vec![
                (utc("2026-06-01T09:15:00Z"), Coalesced),
                (utc("2026-06-01T09:30:00Z"), Coalesced)
            ]
        );
        assert!(!d.skipped_unlisted);
        assert_eq!(d.latest(), Some(utc("2026-06-01T09:45:00Z")));
    }

    #[test]
    fn without_coalesce_every_fire_inside_the_grace_runs() {
        let s = schedule(("cron", "*/15 * * * *"), "1h", false);
        let d = decide_misfires(&s, utc("2026-06-01T09:00:00Z"), utc("2026-06-01T09:50:00Z"));
        assert_eq!(
            d.run,
            times(&[
                "2026-06-01T09:15:00Z",
                "2026-06-01T09:30:00Z",
                "2026-06-01T09:45:00Z"
            ])
        );
        assert!(d.skipped.is_empty());
    }

    #[test]
    fn fires_older_than_the_grace_are_skipped() {
        // Hourly, grace 90 minutes, down from 06:30 to 10:10: 07:00 and 08:00 are older than
        // 08:40; 09:00 and 10:00 are inside.
        let now = utc("2026-06-01T10:10:00Z");
        let last = utc("2026-06-01T06:00:00Z");
        let s = schedule(("cron", "0 * * * *"), "90m", true);
        let d = decide_misfires(&s, last, now);
        assert_eq!(d.run, times(&["2026-06-01T10:00:00Z"]));
        assert_eq!(
            d.skipped,
            vec![
                (utc("2026-06-01T07:00:00Z"), MissedBeyondGrace),
                (utc("2026-06-01T08:00:00Z"), MissedBeyondGrace),
                (utc("2026-06-01T09:00:00Z"), Coalesced),
            ]
        );
        let s = schedule(("cron", "0 * * * *"), "90m", false);
        let d = decide_misfires(&s, last, now);
        assert_eq!(
            d.run,
            times(&["2026-06-01T09:00:00Z", "2026-06-01T10:00:00Z"])
        );
        assert_eq!(
            d.skipped,
            vec![
                (utc("2026-06-01T07:00:00Z"), MissedBeyondGrace),
                (utc("2026-06-01T08:00:00Z"), MissedBeyondGrace),
            ]
        );
        // Exactly `grace` old is still inside.
        let s = schedule(("cron", "0 * * * *"), "10m", true);
        let d = decide_misfires(&s, utc("2026-06-01T09:30:00Z"), now);
        assert_eq!(d.run, times(&["2026-06-01T10:00:00Z"]));
        let d = decide_misfires(&s, utc("2026-06-01T09:30:00Z"), now + TimeDelta::seconds(1));
        assert!(d.run.is_empty());
        assert_eq!(
            d.skipped,
            vec![(utc("2026-06-01T10:00:00Z"), MissedBeyondGrace)]
        );
        assert_eq!(d.latest(), Some(utc("2026-06-01T10:00:00Z")));
    }

    #[test]
    fn the_work_is_bounded_after_a_long_outage() {
        // Every second, down for two days, grace 1h, no coalescing: 3600 fires are inside the
        // grace; the latest 1000 run, and the listing of skips stops at its bound.
        let s = schedule(("every", "1s"), "1h", false);
        let now = utc("2026-06-03T00:00:00Z");
        let d = decide_misfires(&s, utc("2026-06-01T00:00:00Z"), now);
        assert_eq!(d.run.len(), MAX_RUNS_PER_DECISION);
        assert_eq!(d.run.first(), Some(&utc("2026-06-02T23:43:21Z")));
        assert_eq!(d.run.last(), Some(&now));
        assert!(d.run.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(d.skipped.len(), MAX_LISTED_SKIPS);
        assert_eq!(
            d.skipped[0],
            (utc("2026-06-01T00:00:01Z"), MissedBeyondGrace)
        );
        assert!(d.skipped_unlisted);
        assert_eq!(d.latest(), Some(now));

        // Inside the grace, more fires than the bound: the oldest are coalesced.
        let d = decide_misfires(&s, utc("2026-06-02T23:30:00Z"), now);
        assert_eq!(d.run.len(), MAX_RUNS_PER_DECISION);
        assert_eq!(d.skipped.len(), 1800 - MAX_RUNS_PER_DECISION);
        assert!(d.skipped.iter().all(|(_, r)| *r == Coalesced));
        assert!(!d.skipped_unlisted);

        // The same with a cron expression firing every second.
        let s = schedule(("cron", "* * * * * *"), "1h", true);
        let d = decide_misfires(&s, utc("2026-05-01T00:00:00Z"), now);
        assert_eq!(d.run, vec![now]);
        assert_eq!(d.skipped.len(), MAX_LISTED_SKIPS);
        assert!(d.skipped_unlisted);
    }

    #[test]
    fn a_schedule_that_never_fires_decides_nothing() {
        // Refused when read; a stored one from an older build still decides nothing.
        let s = Schedule {
            trigger: crate::Trigger::Cron {
                expr: crate::CronExpr::parse("0 0 30 2 *").unwrap(),
                timezone: chrono_tz::UTC,
            },
            ..schedule(("cron", "0 0 * * *"), "1h", true)
        };
        let d = decide_misfires(&s, utc("2026-01-01T00:00:00Z"), utc("2026-06-01T00:00:00Z"));
        assert_eq!(d, MisfireDecision::default());
    }

    #[test]
    fn misfires_across_a_dst_change() {
        // New York, fall back: `30 1 * * *` fired at 01:30 EDT (05:30Z). A scheduler
        // restarted at 01:40 EST (06:40Z) with last = 05:30Z has nothing due: the repeated
        // 01:30 does not fire again.
        let s = schedule(("cron", "30 1 * * *"), "1h", true);
        let s = Schedule {
            trigger: crate::Trigger::Cron {
                expr: crate::CronExpr::parse("30 1 * * *").unwrap(),
                timezone: chrono_tz::America::New_York,
            },
            ..s
        };
        let d = decide_misfires(&s, utc("2026-11-01T05:30:00Z"), utc("2026-11-01T06:40:00Z"));
        assert_eq!(d, MisfireDecision::default());
    }

    #[test]
    fn overlap_rule() {
        use OverlapPolicy::{Allow, Queue, Skip};
        for policy in [Skip, Allow, Queue] {
            assert_eq!(
                overlap_action(policy, false),
                OverlapAction::Enqueue,
                "{policy:?}"
            );
        }
        assert_eq!(
            overlap_action(Skip, true),
            OverlapAction::Skip(SkipReason::OverlapSkipped)
        );
        assert_eq!(overlap_action(Allow, true), OverlapAction::Enqueue);
        assert_eq!(
            overlap_action(Queue, true),
            OverlapAction::EnqueueAfterPrevious
        );
        assert_eq!(SkipReason::OverlapSkipped.as_str(), "overlap_skipped");
        // A manual trigger: the same rule, never held, and `force` overrides it.
        let skip = OverlapAction::Skip(SkipReason::OverlapSkipped);
        for policy in [Skip, Allow, Queue] {
            assert_eq!(trigger_action(policy, false, false), OverlapAction::Enqueue);
            assert_eq!(trigger_action(policy, true, true), OverlapAction::Enqueue);
        }
        assert_eq!(trigger_action(Skip, true, false), skip);
        assert_eq!(trigger_action(Queue, true, false), skip);
        assert_eq!(trigger_action(Allow, true, false), OverlapAction::Enqueue);
        assert_eq!(
            serde_json::to_value(SkipReason::MissedBeyondGrace).unwrap(),
            "missed_beyond_grace"
        );
    }
}
