//! Fire times: the UTC instants at which a schedule fires, and the unique key of one fire.
//!
//! ## Cron: wall-clock times in a time zone
//!
//! A cron expression names wall-clock times ("02:30 every day") in the schedule's IANA time
//! zone. Each matching wall-clock time fires once, at:
//!
//! - the instant it names, when it happens exactly once that day;
//! - the **first valid instant after it** when it does not exist (spring forward): in New
//!   York on 2026-03-08 the clock goes from 01:59:59 EST to 03:00:00 EDT, so `30 2 * * *` fires
//!   at 03:00 EDT (07:00Z). Several missing times (`*/15` at 02:00, 02:15, …) all land on that
//!   instant, which fires once;
//! - the **earlier** of its two instants when it happens twice (fall back): `30 1 * * *` fires
//!   at 01:30 EDT on 2026-11-01 and not again at 01:30 EST. This holds for every repeated time,
//!   so an expression that fires several times an hour pauses during the repeated hour
//!   (`*/15` fires 01:00–01:45 EDT, then 02:00 EST). Use `every` for a steady interval.
//!
//! The mapping from wall-clock time to instant never goes backwards, so the fires are the
//! mapped instants in order, without duplicates, and a search in either direction finds them.
//! [`croner`] decides which wall-clock times match; the mapping to instants is done here,
//! because croner's own DST handling applies these rules only to expressions with a single
//! hour, minute and second (it skips `0 2,14 * * *` on a spring-forward day and fires
//! `30 1,13 * * *` twice on a fall-back day).
//!
//! A search looks at most [`SEARCH_DAYS`] days ahead (or back) for a matching day: enough for
//! `0 0 29 2 *` across a century year that is not a leap year (2096-02-29 to 2104-02-29). An
//! expression that matches no day in that span (`0 0 30 2 *`) never fires.
//!
//! ## Every: multiples of the interval since the Unix epoch
//!
//! `every = "30s"` fires at the instants `k × 30 s` after 1970-01-01T00:00:00Z, in UTC. Every
//! scheduler process therefore computes the same instants whenever it started, and the
//! [`fire_key`] of a fire is the same on every host. An interval that does not divide a day
//! drifts against the clock face (`every = "7m"` fires at 00:01, 00:08, … on 2026-06-01 and at
//! 00:03, 00:10, … the next day);
//! `every = "1d"` fires at 00:00 UTC and `every = "1w"` on Thursdays (1970-01-01 was one).

use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, SecondsFormat, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use crate::cron::CronExpr;

/// How many days a cron search looks ahead (or back) for a matching day: eight years of 366
/// days and one more, so that `0 0 29 2 *` is found from anywhere (the longest wait is from
/// just after 2096-02-29 to 2104-02-29, 2922 days: 2100 is not a leap year).
pub const SEARCH_DAYS: u32 = 8 * 366 + 1;

/// The longest clock jump forward searched for; real ones are an hour, rarely a day.
const MAX_GAP_SECONDS: i64 = 2 * 86_400;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A cron expression read on the wall clock of a time zone.
    Cron { expr: CronExpr, timezone: Tz },
    /// A fixed interval of at least a second, aligned to the Unix epoch.
    Every(Duration),
}

impl Trigger {
    /// The first fire strictly after `after`; `None` if there is none within the search bound.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Trigger::Every(interval) => {
                let n = interval_nanos(*interval);
                from_nanos((to_nanos(after).div_euclid(n) + 1) * n)
            }
            Trigger::Cron { expr, timezone } => {
                let start = after.with_timezone(timezone).naive_local();
                let last_day = start
                    .date()
                    .checked_add_days(chrono::Days::new(SEARCH_DAYS.into()))?;
                let mut wall = start;
                loop {
                    wall = expr.next_wall(wall, last_day)?;
                    // In the second pass of a repeated hour, the rest of that hour's times
                    // fire at their first pass, before `after`: skip them.
                    match resolve(timezone, wall) {
                        Some(at) if at > after => return Some(at),
                        _ => {}
                    }
                }
            }
        }
    }

    /// The last fire at or before `at`; `None` if there is none within the search bound.
    pub fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Trigger::Every(interval) => {
                let n = interval_nanos(*interval);
                from_nanos(to_nanos(at).div_euclid(n) * n)
            }
            Trigger::Cron { expr, timezone } => {
                let local = at.with_timezone(timezone).naive_local();
                // In the second pass of a repeated hour, later wall-clock times of that hour
                // have already fired (at their first instant): start the search above them.
                let start = match timezone.from_local_datetime(&local) {
                    LocalResult::Ambiguous(earlier, later) => {
                        local.checked_add_signed(later - earlier)?
                    }
                    _ => local,
                };
                let first_day = start
                    .date()
                    .checked_sub_days(chrono::Days::new(SEARCH_DAYS.into()))?;
                let mut wall = expr.prev_wall(start, first_day)?;
                loop {
                    match resolve(timezone, wall) {
                        Some(fire) if fire <= at => return Some(fire),
                        _ => wall = expr.prev_wall(wall - TimeDelta::seconds(1), first_day)?,
                    }
                }
            }
        }
    }

    /// The fires in `(from_exclusive, to_inclusive]`, in order, at most `limit` of them.
    pub fn fires_between(
        &self,
        from_exclusive: DateTime<Utc>,
        to_inclusive: DateTime<Utc>,
        limit: usize,
    ) -> FireTimes<'_> {
        FireTimes {
            trigger: self,
            cursor: from_exclusive,
            until: to_inclusive,
            remaining: limit,
        }
    }

    /// The next `n` fires after `from` (for `errand schedules next`).
    pub fn preview(&self, n: usize, from: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.fires_between(from, DateTime::<Utc>::MAX_UTC, n)
            .collect()
    }
}

/// The fires of a trigger in a span, from [`Trigger::fires_between`].
#[derive(Debug, Clone)]
pub struct FireTimes<'a> {
    trigger: &'a Trigger,
    cursor: DateTime<Utc>,
    until: DateTime<Utc>,
    remaining: usize,
}

impl Iterator for FireTimes<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        if self.remaining == 0 {
            return None;
        }
        let next = self
            .trigger
            .next_after(self.cursor)
            .filter(|t| *t <= self.until);
        match next {
            Some(t) => {
                self.cursor = t;
                self.remaining -= 1;
            }
            None => self.remaining = 0,
        }
        next
    }
}

/// The unique key of one fire of one schedule: `schedule:<name>:<RFC 3339 UTC>`, e.g.
/// `schedule:nightly:2026-03-08T07:00:00Z` (fractional seconds appear only for an `every`
/// interval that is not whole seconds).
///
/// Every scheduler process computes the same fire instants, so they all build the same key for
/// the same fire. Enqueued as the job's `unique_key`, it lets the job store's uniqueness among
/// live (queued or running) jobs turn concurrent enqueues of one fire into one job. That holds
/// only while the job is live; the crate documentation describes the per-schedule
/// `last_fire_at` compare-and-set that covers the rest.
pub fn fire_key(schedule_name: &str, fire_time: DateTime<Utc>) -> String {
    format!(
        "schedule:{schedule_name}:{}",
        fire_time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    )
}

/// The instant a matching wall-clock time fires at (see the module doc).
fn resolve(tz: &Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        LocalResult::None => first_instant_after_gap(tz, wall),
    }
}

/// For a wall-clock time the clock skipped, the instant the clock jumped: the first wall-clock
/// time after it that exists, found by doubling then halving the distance (a few dozen
/// look-ups, once per skipped time).
fn first_instant_after_gap(tz: &Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    let exists = |secs: i64| {
        !matches!(
            tz.from_local_datetime(&(wall + TimeDelta::seconds(secs))),
            LocalResult::None
        )
    };
    let (mut missing, mut existing) = (0, 1);
    while !exists(existing) {
        missing = existing;
        existing *= 2;
        if existing > MAX_GAP_SECONDS {
            return None;
        }
    }
    while existing - missing > 1 {
        let middle = missing + (existing - missing) / 2;
        if exists(middle) {
            existing = middle;
        } else {
            missing = middle;
        }
    }
    match tz.from_local_datetime(&(wall + TimeDelta::seconds(existing))) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

fn interval_nanos(interval: Duration) -> i128 {
    // Validation keeps intervals at one second or more; never divide by zero regardless.
    (interval.as_nanos() as i128).max(1)
}

fn to_nanos(t: DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}

fn from_nanos(n: i128) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(n.div_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(secs, n.rem_euclid(1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn cron(expr: &str, tz: &str) -> Trigger {
        Trigger::Cron {
            expr: CronExpr::parse(expr).unwrap(),
            timezone: tz.parse().unwrap(),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fires(t: &Trigger, from: &str, to: &str) -> Vec<String> {
        t.fires_between(utc(from), utc(to), 1000)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            .collect()
    }

    // New York, spring forward, Sunday 2026-03-08 (second Sunday of March): at 02:00 EST
    // (UTC-5) = 07:00Z the clock jumps to 03:00 EDT (UTC-4). Wall times 02:00-02:59 do not
    // exist.
    #[test]
    fn new_york_spring_forward() {
        let t = cron("0 2 * * *", "America/New_York");
        assert_eq!(
            fires(&t, "2026-03-06T12:00:00Z", "2026-03-10T12:00:00Z"),
            [
                "2026-03-07T07:00:00Z", // 02:00 EST = 07:00Z
                "2026-03-08T07:00:00Z", // 02:00 missing: 03:00 EDT = 07:00Z
                "2026-03-09T06:00:00Z", // 02:00 EDT = 06:00Z
                "2026-03-10T06:00:00Z",
            ]
        );
        // 02:30 missing too: the first valid instant after it is also 03:00 EDT.
        let t = cron("30 2 * * *", "America/New_York");
        assert_eq!(
            t.next_after(utc("2026-03-08T05:00:00Z")),
            Some(utc("2026-03-08T07:00:00Z"))
        );
        // 01:30 exists on both sides of the change: EST the day of, EDT the day after.
        let t = cron("30 1 * * *", "America/New_York");
        assert_eq!(
            fires(&t, "2026-03-07T00:00:00Z", "2026-03-09T12:00:00Z"),
            [
                "2026-03-07T06:30:00Z", // 01:30 EST
                "2026-03-08T06:30:00Z", // 01:30 EST, half an hour before the jump
                "2026-03-09T05:30:00Z", // 01:30 EDT
            ]
        );
    }

    // New York, fall back, Sunday 2026-11-01 (first Sunday of November): at 02:00 EDT
    // (UTC-4) = 06:00Z the clock goes back to 01:00 EST (UTC-5). Wall times 01:00-01:59 happen
    // twice: 05:00Z-05:59Z (EDT) and 06:00Z-06:59Z (EST).
    #[test]
    fn new_york_fall_back() {
        let t = cron("30 1 * * *", "America/New_York");
        assert_eq!(
            fires(&t, "2026-10-30T12:00:00Z", "2026-11-02T12:00:00Z"),
            [
                "2026-10-31T05:30:00Z", // 01:30 EDT
                "2026-11-01T05:30:00Z", // 01:30 EDT, the first of the two; not 06:30Z
                "2026-11-02T06:30:00Z", // 01:30 EST
            ]
        );
        // Asked from inside the second pass (01:10 EST), the repeated 01:30 does not fire.
        assert_eq!(
            t.next_after(utc("2026-11-01T06:10:00Z")),
            Some(utc("2026-11-02T06:30:00Z"))
        );
        assert_eq!(
            t.next_after(utc("2026-11-01T05:29:59Z")),
            Some(utc("2026-11-01T05:30:00Z"))
        );
        // 02:00 happens once (EST) on the day of the change.
        let t = cron("0 2 * * *", "America/New_York");
        assert_eq!(
            fires(&t, "2026-10-31T00:00:00Z", "2026-11-02T12:00:00Z"),
            [
                "2026-10-31T06:00:00Z", // 02:00 EDT
                "2026-11-01T07:00:00Z", // 02:00 EST
                "2026-11-02T07:00:00Z", // 02:00 EST
            ]
        );
    }

    // London, spring forward, Sunday 2026-03-29 (last Sunday of March): at 01:00 GMT = 01:00Z
    // the clock jumps to 02:00 BST (UTC+1). Wall times 01:00-01:59 do not exist.
    #[test]
    fn london_spring_forward() {
        let t = cron("30 1 * * *", "Europe/London");
        assert_eq!(
            fires(&t, "2026-03-27T12:00:00Z", "2026-03-30T12:00:00Z"),
            [
                "2026-03-28T01:30:00Z", // 01:30 GMT
                "2026-03-29T01:00:00Z", // 01:30 missing: 02:00 BST = 01:00Z
                "2026-03-30T00:30:00Z", // 01:30 BST
            ]
        );
        let t = cron("0 2 * * *", "Europe/London");
        assert_eq!(
            fires(&t, "2026-03-27T12:00:00Z", "2026-03-30T12:00:00Z"),
            [
                "2026-03-28T02:00:00Z", // 02:00 GMT
                "2026-03-29T01:00:00Z", // 02:00 BST exists: the first instant after the gap
                "2026-03-30T01:00:00Z", // 02:00 BST
            ]
        );
    }

    // London, fall back, Sunday 2026-10-25 (last Sunday of October): at 02:00 BST = 01:00Z
    // the clock goes back to 01:00 GMT. Wall times 01:00-01:59 happen twice: 00:00Z-00:59Z
    // (BST) and 01:00Z-01:59Z (GMT).
    #[test]
    fn london_fall_back() {
        let t = cron("30 1 * * *", "Europe/London");
        assert_eq!(
            fires(&t, "2026-10-23T12:00:00Z", "2026-10-26T12:00:00Z"),
            [
                "2026-10-24T00:30:00Z", // 01:30 BST
                "2026-10-25T00:30:00Z", // 01:30 BST, once; not 01:30Z
                "2026-10-26T01:30:00Z", // 01:30 GMT
            ]
        );
        let t = cron("0 2 * * *", "Europe/London");
        assert_eq!(
            fires(&t, "2026-10-23T12:00:00Z", "2026-10-26T12:00:00Z"),
            [
                "2026-10-24T01:00:00Z", // 02:00 BST
                "2026-10-25T02:00:00Z", // 02:00 GMT (once)
                "2026-10-26T02:00:00Z",
            ]
        );
    }

    // The cases croner's own search gets wrong: several hours, or several times an hour.
    #[test]
    fn dst_rules_hold_for_lists_and_steps() {
        let t = cron("0 2,14 * * *", "America/New_York");
        assert_eq!(
            fires(&t, "2026-03-08T00:00:00Z", "2026-03-08T23:59:59Z"),
            ["2026-03-08T07:00:00Z", "2026-03-08T18:00:00Z"] // 03:00 EDT, 14:00 EDT
        );
        let t = cron("30 1,13 * * *", "America/New_York");
        assert_eq!(
            fires(&t, "2026-11-01T00:00:00Z", "2026-11-01T23:59:59Z"),
            ["2026-11-01T05:30:00Z", "2026-11-01T18:30:00Z"] // 01:30 EDT, 13:30 EST
        );
        // Every 30 minutes over the gap: 01:30 EST, then 02:00 and 02:30 (missing) both land
        // on 03:00 EDT, which fires once, then 03:30 EDT.
        let t = cron("*/30 * * * *", "America/New_York");
        assert_eq!(
            fires(&t, "2026-03-08T06:00:00Z", "2026-03-08T07:30:00Z"),
            [
                "2026-03-08T06:30:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:30:00Z"
            ]
        );
        // Over the repeated hour: 01:00 and 01:30 fire in EDT only; next is 02:00 EST.
        assert_eq!(
            fires(&t, "2026-11-01T04:45:00Z", "2026-11-01T07:00:00Z"),
            [
                "2026-11-01T05:00:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-01T07:00:00Z"
            ]
        );
        // The day of week is read on the wall-clock date: Sunday's 02:30 moves to 03:00.
        let t = cron("30 2 * * SUN", "America/New_York");
        assert_eq!(
            t.next_after(utc("2026-03-07T00:00:00Z")),
            Some(utc("2026-03-08T07:00:00Z"))
        );
    }

    // Havana springs forward at midnight: on Sunday 2026-03-08, 00:00 CST (UTC-5) = 05:00Z
    // becomes 01:00 CDT (UTC-4), so that day has no midnight.
    #[test]
    fn a_gap_at_midnight_moves_the_daily_fire() {
        let t = cron("0 0 * * *", "America/Havana");
        assert_eq!(
            fires(&t, "2026-03-06T12:00:00Z", "2026-03-09T12:00:00Z"),
            [
                "2026-03-07T05:00:00Z", // 00:00 CST
                "2026-03-08T05:00:00Z", // 00:00 missing: 01:00 CDT = 05:00Z
                "2026-03-09T04:00:00Z", // 00:00 CDT
            ]
        );
    }

    #[test]
    fn backward_search_finds_the_same_fires() {
        for (expr, tz, from, to) in [
            (
                "0 2 * * *",
                "America/New_York",
                "2026-03-01T00:00:00Z",
                "2026-03-15T00:00:00Z",
            ),
            (
                "30 1 * * *",
                "America/New_York",
                "2026-10-25T00:00:00Z",
                "2026-11-08T00:00:00Z",
            ),
            (
                "*/20 * * * *",
                "America/New_York",
                "2026-11-01T03:00:00Z",
                "2026-11-01T09:00:00Z",
            ),
            (
                "*/20 * * * *",
                "Europe/London",
                "2026-03-28T22:00:00Z",
                "2026-03-29T04:00:00Z",
            ),
            (
                "15 */2 * * *",
                "Europe/London",
                "2026-10-24T20:00:00Z",
                "2026-10-25T06:00:00Z",
            ),
            (
                "0 0 * * *",
                "America/Havana",
                "2026-03-01T00:00:00Z",
                "2026-03-15T00:00:00Z",
            ),
            (
                "0 0 29 2 *",
                "UTC",
                "2023-01-01T00:00:00Z",
                "2033-01-01T00:00:00Z",
            ),
        ] {
            let t = cron(expr, tz);
            let forward: Vec<_> = t.fires_between(utc(from), utc(to), 10_000).collect();
            assert!(!forward.is_empty(), "{expr}");
            let mut backward = Vec::new();
            let mut cursor = t.last_at_or_before(utc(to));
            while let Some(fire) = cursor.filter(|f| *f > utc(from)) {
                backward.push(fire);
                cursor = t.last_at_or_before(fire - TimeDelta::nanoseconds(1));
            }
            backward.reverse();
            assert_eq!(forward, backward, "{expr} in {tz}");
        }
        // From inside the second pass of a repeated hour, the last fire is the EDT one.
        let t = cron("30 1 * * *", "America/New_York");
        assert_eq!(
            t.last_at_or_before(utc("2026-11-01T06:45:00Z")),
            Some(utc("2026-11-01T05:30:00Z"))
        );
    }

    #[test]
    fn leap_days() {
        let t = cron("0 0 29 2 *", "UTC");
        assert_eq!(
            t.next_after(utc("2026-03-01T00:00:00Z")),
            Some(utc("2028-02-29T00:00:00Z"))
        );
        // 2100 is not a leap year: the longest wait, within the search bound.
        assert_eq!(
            t.next_after(utc("2096-02-29T00:00:01Z")),
            Some(utc("2104-02-29T00:00:00Z"))
        );
        let longest = (NaiveDate::from_ymd_opt(2104, 2, 29).unwrap()
            - NaiveDate::from_ymd_opt(2096, 2, 29).unwrap())
        .num_days();
        assert!(longest <= i64::from(SEARCH_DAYS), "{longest}");
        assert_eq!(
            t.last_at_or_before(utc("2104-02-28T00:00:00Z")),
            Some(utc("2096-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn an_impossible_date_never_fires() {
        let t = cron("0 0 30 2 *", "UTC");
        assert_eq!(t.next_after(utc("2026-01-01T00:00:00Z")), None);
        assert_eq!(t.last_at_or_before(utc("2026-01-01T00:00:00Z")), None);
        assert!(t.preview(5, utc("2026-01-01T00:00:00Z")).is_empty());
        assert_eq!(
            cron("0 0 31 4,6,9,11 *", "UTC").next_after(utc("2026-01-01T00:00:00Z")),
            None
        );
        // But with a restricted day of week, cron's OR makes it fire on Mondays in February.
        let t = cron("0 0 30 2 MON", "UTC");
        assert_eq!(
            t.next_after(utc("2026-01-01T00:00:00Z")),
            Some(utc("2026-02-02T00:00:00Z"))
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_fires() {
        // June 2026: Mondays are 1, 8, 15, 22, 29; the 1st and 15th are Mondays too.
        let t = cron("0 0 1,15 * 1", "UTC");
        assert_eq!(
            fires(&t, "2026-05-31T00:00:00Z", "2026-07-02T00:00:00Z"),
            [
                "2026-06-01T00:00:00Z",
                "2026-06-08T00:00:00Z",
                "2026-06-15T00:00:00Z",
                "2026-06-22T00:00:00Z",
                "2026-06-29T00:00:00Z",
                "2026-07-01T00:00:00Z", // the 1st, a Wednesday
            ]
        );
        let t = cron("0 0 * * 1", "UTC"); // day of month `*`: Mondays only
        assert_eq!(
            t.next_after(utc("2026-06-30T00:00:00Z")),
            Some(utc("2026-07-06T00:00:00Z"))
        );
        let t = cron("0 0 15 * *", "UTC"); // day of week `*`: the 15th only
        assert_eq!(
            t.next_after(utc("2026-06-01T00:00:00Z")),
            Some(utc("2026-06-15T00:00:00Z"))
        );
    }

    #[test]
    fn seconds_field() {
        let t = cron("*/20 * * * * *", "UTC");
        assert_eq!(
            fires(&t, "2026-06-01T00:00:00Z", "2026-06-01T00:01:00Z"),
            [
                "2026-06-01T00:00:20Z",
                "2026-06-01T00:00:40Z",
                "2026-06-01T00:01:00Z"
            ]
        );
        let t = cron("5 30 9 * * *", "Europe/Paris"); // 09:30:05 CEST = 07:30:05Z
        assert_eq!(
            t.next_after(utc("2026-06-01T00:00:00Z")),
            Some(utc("2026-06-01T07:30:05Z"))
        );
        // Five fields mean second 0.
        let t = cron("30 9 * * *", "UTC");
        assert_eq!(
            t.next_after(utc("2026-06-01T09:30:00.5Z")),
            Some(utc("2026-06-02T09:30:00Z"))
        );
    }

    #[test]
    fn shortcuts() {
        // 2026-06-03 is a Wednesday.
        let from = utc("2026-06-03T10:20:00Z");
        for (expr, next) in [
            ("@hourly", "2026-06-03T11:00:00Z"),
            ("@daily", "2026-06-04T00:00:00Z"),
            ("@midnight", "2026-06-04T00:00:00Z"),
            ("@weekly", "2026-06-07T00:00:00Z"), // Sunday
            ("@monthly", "2026-07-01T00:00:00Z"),
            ("@yearly", "2027-01-01T00:00:00Z"),
            ("@annually", "2027-01-01T00:00:00Z"),
        ] {
            assert_eq!(
                cron(expr, "UTC").next_after(from),
                Some(utc(next)),
                "{expr}"
            );
        }
        // In a zone: @daily is local midnight. Tokyo is UTC+9 all year.
        assert_eq!(
            cron("@daily", "Asia/Tokyo").next_after(from),
            Some(utc("2026-06-03T15:00:00Z"))
        );
    }

    #[test]
    fn every_is_aligned_to_the_epoch() {
        let t = Trigger::Every(Duration::from_secs(30));
        assert_eq!(
            t.next_after(utc("2026-06-01T10:00:07Z")),
            Some(utc("2026-06-01T10:00:30Z"))
        );
        assert_eq!(
            t.next_after(utc("2026-06-01T10:00:30Z")),
            Some(utc("2026-06-01T10:01:00Z"))
        );
        assert_eq!(
            t.next_after(utc("2026-06-01T10:00:29.999Z")),
            Some(utc("2026-06-01T10:00:30Z"))
        );
        assert_eq!(
            t.last_at_or_before(utc("2026-06-01T10:00:30Z")),
            Some(utc("2026-06-01T10:00:30Z"))
        );
        assert_eq!(
            t.last_at_or_before(utc("2026-06-01T10:00:29Z")),
            Some(utc("2026-06-01T10:00:00Z"))
        );
        // Two processes asking at different moments agree on the instants.
        let a: Vec<_> = t
            .fires_between(utc("2026-06-01T10:00:01Z"), utc("2026-06-01T10:02:00Z"), 10)
            .collect();
        let b: Vec<_> = t
            .fires_between(utc("2026-06-01T10:00:17Z"), utc("2026-06-01T10:02:00Z"), 10)
            .collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 4);
        // 7 minutes does not divide an hour: multiples of 420 s since the epoch.
        let t = Trigger::Every(Duration::from_secs(7 * 60));
        let next = t.next_after(utc("2026-06-01T00:00:00Z")).unwrap();
        assert_eq!(next.timestamp() % 420, 0);
        assert_eq!(next, utc("2026-06-01T00:01:00Z"));
        assert_eq!(
            t.next_after(utc("2026-06-02T00:00:00Z")),
            Some(utc("2026-06-02T00:03:00Z"))
        );
        // A day: midnight UTC; a week: Thursdays.
        assert_eq!(
            Trigger::Every(Duration::from_secs(86_400)).next_after(utc("2026-06-01T13:00:00Z")),
            Some(utc("2026-06-02T00:00:00Z"))
        );
        assert_eq!(
            Trigger::Every(Duration::from_secs(7 * 86_400)).next_after(utc("2026-06-01T13:00:00Z")),
            Some(utc("2026-06-04T00:00:00Z"))
        );
        // Before the epoch too.
        assert_eq!(
            Trigger::Every(Duration::from_secs(30)).next_after(utc("1969-12-31T23:59:45Z")),
            Some(utc("1970-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn preview_lists_the_next_n() {
        // 09:00 CEST = 07:00Z. From Friday 2026-06-05 08:00Z: Monday to Friday of next week.
        let t = cron("0 9 * * MON-FRI", "Europe/Berlin");
        assert_eq!(
            t.preview(5, utc("2026-06-05T08:00:00Z")),
            [
                "2026-06-08",
                "2026-06-09",
                "2026-06-10",
                "2026-06-11",
                "2026-06-12"
            ]
            .map(|d| utc(&format!("{d}T07:00:00Z")))
        );
        assert!(t.preview(0, utc("2026-06-05T08:00:00Z")).is_empty());
        // `fires_between` stops at its end (inclusive) and at its limit.
        assert_eq!(
            fires(&t, "2026-06-05T08:00:00Z", "2026-06-09T07:00:00Z").len(),
            2
        );
        assert_eq!(
            t.fires_between(utc("2026-06-05T08:00:00Z"), DateTime::<Utc>::MAX_UTC, 3)
                .count(),
            3
        );
    }

    #[test]
    fn fire_key_names_schedule_and_instant() {
        assert_eq!(
            fire_key("nightly", utc("2026-03-08T07:00:00Z")),
            "schedule:nightly:2026-03-08T07:00:00Z"
        );
        // Given in any offset, the key is the UTC instant.
        let ny = DateTime::parse_from_rfc3339("2026-03-08T03:00:00-04:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            fire_key("nightly", ny),
            "schedule:nightly:2026-03-08T07:00:00Z"
        );
        assert_eq!(
            fire_key("fast", utc("2026-03-08T07:00:01.5Z")),
            "schedule:fast:2026-03-08T07:00:01.500Z"
        );
    }
}
