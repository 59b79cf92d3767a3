//! Errand's schedules as pure arithmetic, with no I/O: reading a `[schedules.NAME]` table,
//! computing fire times (cron in an IANA time zone across DST changes, or a fixed interval),
//! deciding what to do about missed fires and overlapping runs, and the unique key of a fire.
//!
//! ```
//! use errand_scheduler::{decide_misfires, ScheduleSpec};
//!
//! let spec: ScheduleSpec = serde_json::from_value(serde_json::json!({
//!     "cron": "0 2 * * *",
//!     "timezone": "America/New_York",
//!     "kind": "send_report",
//! }))?;
//! let nightly = spec.validate("nightly")?;
//!
//! // 2026-03-08 is the spring-forward day: 02:00 does not exist, so it fires at 03:00 EDT.
//! let fires = nightly.preview(2, "2026-03-07T12:00:00Z".parse()?);
//! assert_eq!(fires[0].to_rfc3339(), "2026-03-08T07:00:00+00:00");
//! assert_eq!(fires[1].to_rfc3339(), "2026-03-09T06:00:00+00:00");
//!
//! // The scheduler was down from 01:00Z to 08:00Z: the 07:00Z fire is within the 1 h grace.
//! let (last, now) = ("2026-03-08T01:00:00Z".parse()?, "2026-03-08T08:00:00Z".parse()?);
//! let decision = decide_misfires(&nightly, last, now);
//! assert_eq!(decision.run, fires[..1]);
//! let job = nightly.new_job(decision.run[0]);
//! assert_eq!(job.unique_key.as_deref(), Some("schedule:nightly:2026-03-08T07:00:00Z"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`spec`]: [`ScheduleSpec`] (the table as written) checked into a [`Schedule`]; every
//!   rejection names the field (`schedules.nightly.cron: invalid expression "0 2 * *":
//!   expected 5 or 6 fields, got 4`).
//! - [`cron`]: cron expressions, checked field by field, matched by [`croner`].
//! - [`fire`]: fire times as UTC instants ([`Trigger::next_after`], `fires_between`,
//!   `preview`), the DST rules, `every` aligned to the Unix epoch, and [`fire_key`].
//! - [`misfire`]: [`decide_misfires`] (grace and coalescing), [`overlap_action`], and
//!   [`trigger_action`] (a manual trigger under the overlap rule, or forced).
//! - [`health`]: whether scheduling is healthy ([`loop_problem`], [`overdue`]), as
//!   `/health/scheduler` reports it.
//!
//! # Design of the stateful scheduler (a later step)
//!
//! design.md, Schedules asks that with several scheduler processes on one database each fire
//! enqueues exactly one job, with no single point of failure. So every process runs the same
//! loop, with no leader, and the rules that make them agree live here, as functions of the
//! schedule and of times:
//!
//! 1. **Everyone computes the same fires.** Fire times depend only on the schedule (cron in
//!    its zone, or `every` aligned to the epoch), never on when a process started, and `now`
//!    comes from the store's clock (PostgreSQL's `now()`), so hosts agree on what is due.
//! 2. **One live job per fire: the unique key.** Each fire's job carries
//!    [`fire_key`]`(name, fire_time)` as its `unique_key`. The store keeps keys unique among
//!    live (queued or running) jobs, enforced by the database under concurrent inserts, so
//!    when two hosts enqueue the same fire at the same moment, the second insert returns the
//!    first job (`inserted: false`).
//! 3. **No second run after the first finished: `last_fire_at` compare-and-set.** The unique
//!    key stops holding once the job has succeeded or failed. A slower host (a long GC pause,
//!    a slow connection) that computes the same fire after the first host's job already ran
//!    and finished would enqueue it again. So each schedule has one durable row with its
//!    `last_fire_at`, and a host acts on a decision only if it moves that value forward from
//!    the one it read: read `last_fire_at` (at creation: the creation time, so a new schedule
//!    does not fire for its past) as `L`; compute [`decide_misfires`]`(schedule, L, now)`;
//!    if anything was due, in **one transaction** conditionally change `last_fire_at` from
//!    `L` to the decision's [`MisfireDecision::latest`], and only if that changed one row,
//!    insert the `run` jobs (with their unique keys, and [`overlap_action`] applied, knowing
//!    whether the schedule's previous run is live) and record the skipped fires. A host whose conditional
//!    change matched nothing lost the race: another host handled these fires; it re-reads and
//!    goes on. Because the conditional change and the inserts commit together, a fire is
//!    either recorded and enqueued, or neither, and `last_fire_at` only moves forward.
//! 4. **Manual triggers** ("trigger now") do not move `last_fire_at`; they enqueue with a key
//!    of their own.
//! 5. **Paused schedules** are not evaluated; on resume, `last_fire_at` is set to the resume
//!    time so the paused span does not count as missed.
//!
//! Either alone has a hole: the unique key alone lets a slow host re-run a fire that already
//! finished; the compare-and-set alone relies on the inserts committing in the same
//! transaction, and the key makes a mistake there (or a retried insert) harmless.

pub mod cron;
pub mod fire;
pub mod health;
pub mod misfire;
pub mod schema;
pub mod spec;

pub use cron::{CronExpr, CronExprError};
pub use fire::{fire_key, FireTimes, Trigger, SEARCH_DAYS};
pub use health::{loop_problem, overdue, LoopState, Problem, STALL_AFTER};
pub use misfire::{
    decide_misfires, overlap_action, trigger_action, MisfireDecision, OverlapAction, SkipReason,
    MAX_LISTED_SKIPS, MAX_RUNS_PER_DECISION,
};
pub use spec::{
    JobTemplate, OverlapPolicy, Schedule, ScheduleSpec, SpecError, DEFAULT_MISFIRE_GRACE,
    MIN_INTERVAL,
};
