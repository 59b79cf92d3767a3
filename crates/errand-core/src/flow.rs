//! Flow control: how many jobs may run at once, across every worker process on the database.
//!
//! Two limits, both exact across processes and hosts because the store applies them while
//! no other claim of the queue runs (PostgreSQL: a transaction-scoped advisory lock per
//! queue; SQLite: its one writer):
//!
//! - **`global_concurrency`**, a queue setting ([`QueueLimits`], stored with the queue so that
//!   every process claims under the same number): at most N of the queue's jobs are `running`
//!   at once. A job held by a worker counts from its claim until it ends or is rescued, so a
//!   dead worker's jobs hold their slots until the rescuer requeues them.
//! - **`key_concurrency`**: at most N running jobs per `concurrency_key` within the queue.
//!   The job's own `key_concurrency` (set at enqueue, or by its task) wins over the queue's;
//!   a keyed job with neither allows one at a time, the common reason to give a key.
//!
//! Jobs held back by a limit stay `queued` and spend no attempt. A busy key never blocks the
//! rest of the queue: the store offers [`choose`] the first ready jobs of every key, not the
//! first jobs of the queue, so a backlog of one key cannot hide the others.
//!
//! [`choose`] is the one rule; the stores gather what it needs and start what it picks.

use crate::args::JobArgs;
use crate::job::JobId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// How many jobs of one key may run at once when neither the job nor the queue says.
pub const DEFAULT_KEY_CONCURRENCY: i32 = 1;

/// A queue's limits across every worker process; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLimits {
    /// At most this many of the queue's jobs run at once.
    pub global_concurrency: Option<i32>,
    /// At most this many running jobs per `concurrency_key`, for keyed jobs that carry no
    /// limit of their own.
    pub key_concurrency: Option<i32>,
    /// At most this many starts in any window of this length.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

impl QueueLimits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.global_concurrency.is_some()
            || self.key_concurrency.is_some()
            || self.rate_limit.is_some()
    }

    /// Whether the queue's claims must go the limited way whatever its jobs are: a limit on
    /// the whole queue (a per-key default alone matters only to keyed jobs).
    pub fn limits_the_queue(&self) -> bool {
        self.global_concurrency.is_some() || self.rate_limit.is_some()
    }

    /// Checks the values (each at least 1), naming the bad one.
    pub fn check(&self) -> Result<(), LimitsError> {
        for (field, v) in [
            ("global_concurrency", self.global_concurrency),
            ("key_concurrency", self.key_concurrency),
        ] {
            if let Some(n) = v {
                if n < 1 {
                    return Err(LimitsError {
                        field,
                        problem: format!("must be at least 1, got {n}"),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Queue limits that cannot be stored: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct LimitsError {
    pub field: &'static str,
    pub problem: String,
}

impl From<LimitsError> for String {
    fn from(e: LimitsError) -> String {
        e.to_string()
    }
}

/// A rate limit: at most `limit` starts in any window of `per` (a sliding window, not a
/// calendar one: `100/1m` never lets 101 jobs start within 60 seconds). Written `N/DURATION`
/// (`100/1m`, `5/1s`, `1000/1h`), the duration as everywhere else in Errand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: i32,
    pub per: Duration,
}

/// The longest rate-limit window: a day.
pub const MAX_RATE_WINDOW: Duration = Duration::from_secs(86_400);
/// The shortest: a millisecond.
pub const MIN_RATE_WINDOW: Duration = Duration::from_millis(1);

impl RateLimit {
    /// The window in milliseconds, as the stores keep it.
    pub fn per_ms(&self) -> i64 {
        i64::try_from(self.per.as_millis()).unwrap_or(i64::MAX)
    }

    /// From the stores' two columns; `None` unless both are set and valid.
    pub fn from_parts(limit: Option<i32>, per_ms: Option<i64>) -> Option<RateLimit> {
        match (limit, per_ms) {
            (Some(limit), Some(ms)) if limit >= 1 && ms >= 1 => Some(RateLimit {
                limit,
                per: Duration::from_millis(ms as u64),
            }),
            _ => None,
        }
    }
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<RateLimit, String> {
        let bad = |why: &str| {
            format!(
                "`{text}` is not a rate limit such as \"100/1m\" (N starts per duration): {why}"
            )
        };
        let (n, per) = text.split_once('/').ok_or_else(|| bad("no `/`"))?;
        let limit: i32 = n
            .trim()
            .parse()
            .map_err(|_| bad("the count must be a whole number"))?;
        if limit < 1 {
            return Err(bad("the count must be at least 1"));
        }
        let per = crate::duration::parse_duration(per.trim()).map_err(|e| bad(&e.problem))?;
        if per < MIN_RATE_WINDOW || per > MAX_RATE_WINDOW {
            return Err(bad("the window must be from 1ms to 1d"));
        }
        Ok(RateLimit { limit, per })
    }
}

impl std::fmt::Display for RateLimit {
    /// `N/DURATION` with the window in the largest unit that writes it whole.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.per_ms();
        let (n, unit) = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ]
        .into_iter()
        .find(|(u, _)| ms % u == 0)
        .map_or((ms, "ms"), |(u, name)| (ms / u, name));
        write!(f, "{}/{n}{unit}", self.limit)
    }
}

impl Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RateLimit, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How many more jobs may start now under `rate` given the starts within its window so far
/// (`want` if no rate limit).
pub fn rate_room(rate: Option<RateLimit>, recent_starts: i64, want: usize) -> usize {
    match rate {
        None => want,
        Some(r) => usize::try_from((i64::from(r.limit) - recent_starts).max(0))
            .unwrap_or(0)
            .min(want),
    }
}

/// A ready job a claim may start.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: JobId,
    pub priority: i32,
    pub run_at: DateTime<Utc>,
    pub concurrency_key: Option<String>,
    /// The job's own limit for its key.
    pub key_concurrency: Option<i32>,
}

/// What runs in the queue now: every running job, and the running jobs of each key the
/// candidates carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Running {
    pub total: i64,
    pub by_key: HashMap<String, i64>,
}

/// The limit that applies to a job's key.
pub fn key_limit(job_limit: Option<i32>, limits: &QueueLimits) -> i32 {
    job_limit
        .or(limits.key_concurrency)
        .unwrap_or(DEFAULT_KEY_CONCURRENCY)
}

/// How many more of the queue's jobs may start now (`want` if no global limit).
pub fn global_room(limits: &QueueLimits, running: i64, want: usize) -> usize {
    match limits.global_concurrency {
        None => want,
        Some(g) => usize::try_from((i64::from(g) - running).max(0))
            .unwrap_or(0)
            .min(want),
    }
}

/// Which candidates to start: in claim order (priority descending, then `run_at`, then id),
/// at most `want`, within the queue's global room, skipping a keyed job whose key already
/// runs (or was just given) as many jobs as its limit allows. The rest stay queued.
pub fn choose(
    limits: &QueueLimits,
    running: &Running,
    mut candidates: Vec<Candidate>,
    want: usize,
) -> Vec<JobId> {
    let room = global_room(limits, running.total, want);
    candidates.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.id.cmp(&b.id))
    });
    candidates.dedup_by_key(|c| c.id);
    let mut taken: HashMap<&str, i64> = HashMap::new();
    let mut out = Vec::new();
    for c in &candidates {
        if out.len() >= room {
            break;
        }
        if let Some(key) = c.concurrency_key.as_deref() {
            let busy = running.by_key.get(key).copied().unwrap_or(0);
            let given = taken.entry(key).or_insert(0);
            if busy + *given >= i64::from(key_limit(c.key_concurrency, limits)) {
                continue;
            }
            *given += 1;
        }
        out.push(c.id);
    }
    out
}

/// A job's key taken from its argument `arg`: a string as it is, a number or boolean as its
/// JSON text; `None` if the argument is absent, `null`, an array or an object.
pub fn key_from_args(args: &JobArgs, arg: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(args.get()).ok()?;
    match value.get(arg)? {
        serde_json::Value::String(s) => Some(s.clone()),
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cand(id: i64, key: Option<&str>) -> Candidate {
        Candidate {
            id,
            priority: 0,
            run_at: Utc.timestamp_opt(1_000 + id, 0).unwrap(),
            concurrency_key: key.map(str::to_string),
            key_concurrency: None,
        }
    }

    fn ids(v: Vec<JobId>) -> Vec<i64> {
        v
    }

    #[test]
    fn no_limits_take_candidates_in_claim_order_up_to_want() {
        let mut c = vec![cand(3, None), cand(1, None), cand(2, None)];
        c[2].priority = 5;
        let got = choose(&QueueLimits::default(), &Running::default(), c, 2);
        assert_eq!(ids(got), vec![2, 1]);
    }

    #[test]
    fn the_global_limit_counts_what_already_runs() {
        let limits = QueueLimits {
            global_concurrency: Some(3),
            ..QueueLimits::default()
        };
        let c: Vec<_> = (1..=5).map(|i| cand(i, None)).collect();
        let running = Running {
            total: 2,
            ..Running::default()
        };
        assert_eq!(ids(choose(&limits, &running, c.clone(), 10)), vec![1]);
        let full = Running {
            total: 3,
            ..Running::default()
        };
        assert!(choose(&limits, &full, c.clone(), 10).is_empty());
        let over = Running {
            total: 9,
            ..Running::default()
        };
        assert!(
            choose(&limits, &over, c, 10).is_empty(),
            "over the limit after a lowering"
        );
    }

    #[test]
    fn a_key_at_its_limit_is_skipped_without_blocking_other_keys() {
        let c = vec![
            cand(1, Some("a")),
            cand(2, Some("a")),
            cand(3, Some("b")),
            cand(4, None),
            cand(5, Some("c")),
        ];
        let running = Running {
            total: 1,
            by_key: HashMap::from([("c".to_string(), 1)]),
        };
        // Default limit 1 per key: a's first job, b, the unkeyed job; c already runs one.
        assert_eq!(
            ids(choose(&QueueLimits::default(), &running, c, 10)),
            vec![1, 3, 4]
        );
    }

    #[test]
    fn the_job_limit_wins_over_the_queue_limit_which_wins_over_one() {
        let limits = QueueLimits {
            key_concurrency: Some(2),
            ..QueueLimits::default()
        };
        let mut c: Vec<_> = (1..=4).map(|i| cand(i, Some("k"))).collect();
        assert_eq!(
            ids(choose(&limits, &Running::default(), c.clone(), 10)),
            vec![1, 2]
        );
        for x in &mut c {
            x.key_concurrency = Some(3);
        }
        assert_eq!(
            ids(choose(&limits, &Running::default(), c, 10)),
            vec![1, 2, 3]
        );
        assert_eq!(key_limit(None, &QueueLimits::default()), 1);
    }

    #[test]
    fn both_limits_apply_together() {
        let limits = QueueLimits {
            global_concurrency: Some(2),
            key_concurrency: Some(1),
            rate_limit: None,
        };
        let c = vec![
            cand(1, Some("a")),
            cand(2, Some("a")),
            cand(3, Some("b")),
            cand(4, None),
        ];
        assert_eq!(ids(choose(&limits, &Running::default(), c, 10)), vec![1, 3]);
    }

    #[test]
    fn a_candidate_offered_twice_is_taken_once() {
        let c = vec![cand(1, None), cand(1, None), cand(2, None)];
        assert_eq!(
            ids(choose(&QueueLimits::default(), &Running::default(), c, 10)),
            vec![1, 2]
        );
    }

    #[test]
    fn rate_limits_read_and_print_in_one_form() {
        let r: RateLimit = "100/1m".parse().unwrap();
        assert_eq!((r.limit, r.per), (100, Duration::from_secs(60)));
        assert_eq!(r.to_string(), "100/1m");
        assert_eq!("5 / 90s".parse::<RateLimit>().unwrap().to_string(), "5/90s");
        assert_eq!(
            "1/1500ms".parse::<RateLimit>().unwrap().to_string(),
            "1/1500ms"
        );
        assert_eq!("7/24h".parse::<RateLimit>().unwrap().to_string(), "7/1d");
        for bad in [
            "100", "0/1m", "-1/1m", "x/1m", "10/", "10/0s", "10/2d", "10/soon",
        ] {
            let e = bad.parse::<RateLimit>().unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"100/1m\"");
        assert_eq!(serde_json::from_str::<RateLimit>(&json).unwrap(), r);
    }

    #[test]
    fn the_rate_room_is_what_the_window_has_left() {
        let r = Some(RateLimit {
            limit: 10,
            per: Duration::from_secs(1),
        });
        assert_eq!(rate_room(r, 0, 4), 4);
        assert_eq!(rate_room(r, 8, 4), 2);
        assert_eq!(rate_room(r, 10, 4), 0);
        assert_eq!(rate_room(r, 15, 4), 0, "over after a lowering");
        assert_eq!(rate_room(None, 1_000, 4), 4);
    }

    #[test]
    fn limits_below_one_are_refused_by_name() {
        let bad = QueueLimits {
            global_concurrency: Some(0),
            key_concurrency: None,
            rate_limit: None,
        };
        let e = bad.check().unwrap_err();
        assert_eq!(e.field, "global_concurrency");
        assert_eq!(
            e.to_string(),
            "`global_concurrency` must be at least 1, got 0"
        );
        assert!(QueueLimits::default().check().is_ok());
    }

    #[test]
    fn keys_come_from_strings_numbers_and_booleans_only() {
        let args = JobArgs::from_value(&serde_json::json!({
            "s": "p-1", "n": 42, "b": true, "z": null, "o": {"a": 1}
        }));
        assert_eq!(key_from_args(&args, "s").as_deref(), Some("p-1"));
        assert_eq!(key_from_args(&args, "n").as_deref(), Some("42"));
        assert_eq!(key_from_args(&args, "b").as_deref(), Some("true"));
        assert_eq!(key_from_args(&args, "z"), None);
        assert_eq!(key_from_args(&args, "o"), None);
        assert_eq!(key_from_args(&args, "missing"), None);
    }
}
