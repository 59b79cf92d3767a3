//! Whether scheduling is healthy, as `/health/scheduler` reports it: the rules, as plain
//! functions of what the caller knows (the state of its scheduler loop, the stored schedules
//! and now). The loop itself (`errand::scheduler`) records its state; this decides what it
//! means.
//!
//! Scheduling is *healthy* when this process's scheduler loop runs and has completed a pass
//! within [`STALL_AFTER`], and no unpaused schedule has a fire older than its
//! `misfire_grace` that nobody handled; otherwise it is *degraded*, with one [`Problem`] per
//! reason.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;

use crate::spec::Schedule;

/// A running loop that has not completed a pass for this long is stalled. A healthy loop
/// passes at least every second; a failing one retries within ten.
pub const STALL_AFTER: Duration = Duration::from_secs(30);

/// The state of one process's scheduler loop.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LoopState {
    /// No scheduler loop was started in this process.
    #[default]
    NotStarted,
    /// Switched off by configuration (`[scheduler] enabled = false`).
    Disabled,
    /// Running since `started_at`; `last_pass_at` is the end of its latest successful pass,
    /// `failing` the error of its latest pass if that one failed.
    Running {
        started_at: DateTime<Utc>,
        last_pass_at: Option<DateTime<Utc>>,
        failing: Option<String>,
    },
    /// Ended at `at`, and why (shut down, or died).
    Stopped { at: DateTime<Utc>, why: String },
}

impl LoopState {
    /// The word shown for it: `not_started`, `disabled`, `running`, `stopped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LoopState::NotStarted => "not_started",
            LoopState::Disabled => "disabled",
            LoopState::Running { .. } => "running",
            LoopState::Stopped { .. } => "stopped",
        }
    }
}

/// One reason scheduling is degraded: a stable code, a message for people, and the schedule
/// it is about, if one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `scheduler_not_running`, `scheduler_disabled`, `scheduler_failing`,
    /// `scheduler_stalled` or `schedule_overdue`.
    pub code: &'static str,
    pub message: String,
    pub schedule: Option<String>,
}

/// `healthy` with no problems, else `degraded`.
pub fn status(problems: &[Problem]) -> &'static str {
    if problems.is_empty() {
        "healthy"
    } else {
        "degraded"
    }
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn problem(code: &'static str, message: String) -> Problem {
    Problem {
        code,
        message,
        schedule: None,
    }
}

/// What is wrong with the loop, if anything, at `now` (the clock the loop records with).
pub fn loop_problem(state: &LoopState, now: DateTime<Utc>) -> Option<Problem> {
    const ELSEWHERE: &str = "schedules fire only if another `errand serve` runs a scheduler";
    match state {
        LoopState::NotStarted => Some(problem(
            "scheduler_not_running",
            format!("no scheduler loop runs in this process: {ELSEWHERE}"),
        )),
        LoopState::Disabled => Some(problem(
            "scheduler_disabled",
            format!(
                "the scheduler is off in this process ([scheduler] enabled = false): {ELSEWHERE}"
            ),
        )),
        LoopState::Stopped { at: when, why } => Some(problem(
            "scheduler_not_running",
            format!("the scheduler loop stopped at {}: {why}", at(*when)),
        )),
        LoopState::Running {
            failing: Some(error),
            ..
        } => Some(problem(
            "scheduler_failing",
            format!("the scheduler's latest pass failed (it retries): {error}"),
        )),
        LoopState::Running {
            started_at,
            last_pass_at,
            failing: None,
        } => {
            let since = last_pass_at.unwrap_or(*started_at);
            let quiet = now - since;
            let limit = TimeDelta::from_std(STALL_AFTER).unwrap_or(TimeDelta::MAX);
            (quiet > limit).then(|| {
                problem(
                    "scheduler_stalled",
                    format!(
                        "the scheduler loop has not completed a pass since {} ({} s; at most {} s expected)",
                        at(since),
                        quiet.num_seconds(),
                        STALL_AFTER.as_secs()
                    ),
                )
            })
        }
    }
}

/// The fire of `schedule` that is overdue at `now`, if any: its first fire after
/// `last_fire_at` (the latest one handled) is more than `misfire_grace` in the past, so no
/// scheduler handled it in time (it will be skipped as `missed_beyond_grace`). The caller
/// leaves out paused schedules.
pub fn overdue(
    schedule: &Schedule,
    last_fire_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Problem> {
    let fire = schedule.next_after(last_fire_at)?;
    let grace = TimeDelta::from_std(schedule.misfire_grace).unwrap_or(TimeDelta::MAX);
    let late = now - fire;
    (late > grace).then(|| Problem {
        code: "schedule_overdue",
        message: format!(
            "schedule `{}`: its fire at {} was not handled and is {} s late, beyond its \
             misfire grace of {} s",
            schedule.name,
            at(fire),
            late.num_seconds(),
            grace.num_seconds()
        ),
        schedule: Some(schedule.name.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ScheduleSpec;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_loop_is_healthy_only_while_it_passes() {
        let now = utc("2026-06-01T10:00:00Z");
        let running = |last: Option<&str>, failing: Option<&str>| LoopState::Running {
            started_at: utc("2026-06-01T09:00:00Z"),
            last_pass_at: last.map(utc),
            failing: failing.map(str::to_string),
        };
        assert_eq!(
            loop_problem(&running(Some("2026-06-01T09:59:59Z"), None), now),
            None
        );
        // Exactly at the bound is still fine; past it, stalled.
        assert_eq!(
            loop_problem(&running(Some("2026-06-01T09:59:30Z"), None), now),
            None
        );
        let p = loop_problem(&running(Some("2026-06-01T09:59:29Z"), None), now).unwrap();
        assert_eq!(p.code, "scheduler_stalled");
        assert!(
            p.message.contains("since 2026-06-01T09:59:29Z (31 s"),
            "{}",
            p.message
        );
        // Never passed since it started an hour ago.
        let p = loop_problem(&running(None, None), now).unwrap();
        assert_eq!(p.code, "scheduler_stalled");
        let p = loop_problem(
            &running(Some("2026-06-01T09:59:59Z"), Some("database down")),
            now,
        )
        .unwrap();
        assert_eq!(p.code, "scheduler_failing");
        assert!(p.message.ends_with("database down"), "{}", p.message);

        let p = loop_problem(&LoopState::Disabled, now).unwrap();
        assert_eq!(p.code, "scheduler_disabled");
        assert!(
            p.message.contains("[scheduler] enabled = false"),
            "{}",
            p.message
        );
        assert_eq!(
            loop_problem(&LoopState::NotStarted, now).unwrap().code,
            "scheduler_not_running"
        );
        let stopped = LoopState::Stopped {
            at: utc("2026-06-01T09:58:00Z"),
            why: "it panicked".into(),
        };
        let p = loop_problem(&stopped, now).unwrap();
        assert_eq!(p.code, "scheduler_not_running");
        assert!(
            p.message.contains("2026-06-01T09:58:00Z: it panicked"),
            "{}",
            p.message
        );
        assert_eq!(status(&[]), "healthy");
        assert_eq!(status(&[p]), "degraded");
        assert_eq!(stopped.as_str(), "stopped");
    }

    #[test]
    fn a_schedule_is_overdue_when_a_fire_is_older_than_its_grace() {
        let s = ScheduleSpec {
            cron: Some("0 * * * *".into()),
            kind: "k".into(),
            args: serde_json::json!({}),
            misfire_grace: Some("10m".into()),
            ..Default::default()
        }
        .validate("hourly")
        .unwrap();
        let last = utc("2026-06-01T09:00:00Z");
        // The 10:00 fire: due, late, but within the grace.
        assert_eq!(overdue(&s, last, utc("2026-06-01T09:59:00Z")), None);
        assert_eq!(overdue(&s, last, utc("2026-06-01T10:10:00Z")), None);
        let p = overdue(&s, last, utc("2026-06-01T10:10:01Z")).unwrap();
        assert_eq!(p.code, "schedule_overdue");
        assert_eq!(p.schedule.as_deref(), Some("hourly"));
        assert!(
            p.message
                .contains("fire at 2026-06-01T10:00:00Z was not handled and is 601 s late"),
            "{}",
            p.message
        );
        // Handled: the next one is in the future.
        assert_eq!(
            overdue(&s, utc("2026-06-01T10:00:00Z"), utc("2026-06-01T10:10:01Z")),
            None
        );
    }
}
