//! Cron expressions: reading and checking them field by field, and walking the wall-clock times
//! they match.
//!
//! Accepted: 5 fields (`minute hour day-of-month month day-of-week`), or 6 with a leading
//! `second` field, or one of `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
//! (`@midnight`), `@hourly`. A field is a comma-separated list of items; an item is `*`, a
//! value, or a range `a-b`, and `*` or a range may take a step (`*/15`, `8-18/2`). Months and
//! weekdays may be written as names (`JAN`..`DEC`, `SUN`..`SAT`, any case); weekday `7` is
//! Sunday, like `0`. `?` means `*` in the two day fields. Croner's extensions (`L`, `W`, `#`,
//! a `+` prefix) are refused: they are not cron as operators know it, and refusing them keeps
//! every accepted expression portable.
//!
//! Days follow cron's rule: when both day-of-month and day-of-week are restricted, a day
//! matches if **either** matches (`0 0 1,15 * 1` is the 1st, the 15th and every Monday); when
//! one of them is `*` (or `?`), the other alone decides. Only a bare `*` counts as
//! unrestricted: `*/2` in day-of-month restricts (Vixie cron treats any field starting with `*`
//! as unrestricted and would AND the two; that quirk is not copied).
//!
//! Every field is checked here, so an error names the field and the value
//! (`field "hour": value 25 out of range 0-23`); the checked, numeric expression is then handed
//! to [`croner`], which owns the matching of values and the day-of-month/day-of-week rule.
//! Turning wall-clock times into instants (time zones, DST) is [`crate::fire`]'s job.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use croner::parser::{CronParser, Seconds, Year};

/// A cron expression that is not accepted, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid expression {expression:?}: {problem}")]
pub struct CronExprError {
    /// The expression as written.
    pub expression: String,
    /// The field at fault (`"second"`, `"minute"`, `"hour"`, `"day of month"`, `"month"`,
    /// `"day of week"`), when one field is.
    pub field: Option<&'static str>,
    /// What is wrong, naming the field when one is at fault.
    pub problem: String,
}

/// A checked cron expression: which wall-clock times (seconds, in no time zone) it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
    // Boxed: croner keeps a bit set per field, some 400 bytes.
    cron: Box<croner::Cron>,
    // The values of the time fields, ascending, for walking the times of a matching day.
    seconds: Vec<u32>,
    minutes: Vec<u32>,
    hours: Vec<u32>,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for values, the first naming `min`.
    names: &'static [&'static str],
    /// `?` is accepted as `*` (the day fields).
    question_mark: bool,
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [Field; 6] = [
    Field {
        name: "second",
        min: 0,
        max: 59,
        names: &[],
        question_mark: false,
    },
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        question_mark: false,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        question_mark: false,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        question_mark: true,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
        question_mark: false,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: WEEKDAYS,
        question_mark: true,
    },
];
const DAY_OF_WEEK: usize = 5;

pub(crate) const SHORTCUTS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// The five fields of an expression without seconds: name, lowest and highest value.
pub(crate) fn field_ranges() -> Vec<(&'static str, u32, u32)> {
    FIELDS[1..].iter().map(|f| (f.name, f.min, f.max)).collect()
}

impl CronExpr {
    /// Reads and checks an expression.
    pub fn parse(expression: &str) -> Result<CronExpr, CronExprError> {
        let fail = |field: Option<&'static str>, problem: String| CronExprError {
            expression: expression.to_string(),
            field,
            problem,
        };
        let source = expression.trim();
        if source.is_empty() {
            return Err(fail(None, "it is empty".into()));
        }
        let body = if source.starts_with('@') {
            SHORTCUTS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(source))
                .map(|(_, body)| *body)
                .ok_or_else(|| {
                    fail(
                        None,
                        format!(
                            "unknown shortcut {source:?} (use @hourly, @daily, @weekly, @monthly \
                             or @yearly; for a fixed interval set \"every\" instead)"
                        ),
                    )
                })?
        } else {
            source
        };
        let parts: Vec<&str> = body.split_whitespace().collect();
        let fields = match parts.len() {
            5 => &FIELDS[1..],
            6 => &FIELDS[..],
            n => return Err(fail(None, format!("expected 5 or 6 fields, got {n}"))),
        };
        let mut numeric = Vec::with_capacity(6);
        if parts.len() == 5 {
            numeric.push("0".to_string());
        }
        for (field, text) in fields.iter().zip(&parts) {
            let checked = check_field(field, text)
                .map_err(|p| fail(Some(field.name), format!("field {:?}: {p}", field.name)))?;
            numeric.push(checked);
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            .dom_and_dow(false)
            .build()
            .parse(&numeric.join(" "))
            // Unreachable for a checked expression; kept as an error, not a panic.
            .map_err(|e| fail(None, e.to_string()))?;
        let values = |c: &croner::CronComponent| -> Vec<u32> {
            c.values().into_iter().map(u32::from).collect()
        };
        Ok(CronExpr {
            source: source.to_string(),
            seconds: values(&cron.pattern.seconds),
            minutes: values(&cron.pattern.minutes),
            hours: values(&cron.pattern.hours),
            cron: Box::new(cron),
        })
    }

    /// Why the expression can never fire, if so: its days of month never occur in its months
    /// (`0 0 30 2 *`, `0 0 31 4,6,9,11 *`). One leap year holds every (month, day of month)
    /// and every (month, day of week) pair, so an expression that matches none of its days
    /// matches no day ever. Checked when a schedule is read ([`crate::ScheduleSpec::validate`]),
    /// not by [`CronExpr::parse`]: the fire arithmetic stays defined for any expression.
    pub fn never_fires(&self) -> Option<CronExprError> {
        let first = NaiveDate::from_ymd_opt(2024, 1, 1)?;
        if first.iter_days().take(366).any(|day| self.matches_day(day)) {
            return None;
        }
        Some(CronExprError {
            expression: self.source.clone(),
            field: Some("day of month"),
            problem: "field \"day of month\": no such day in the months of field \"month\", so \
                      it never fires"
                .into(),
        })
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the expression matches this calendar day (month, day of month, day of week).
    pub fn matches_day(&self, day: NaiveDate) -> bool {
        let p = &self.cron.pattern;
        let weekday = croner::Weekday::from_days_from_sunday(day.weekday().num_days_from_sunday());
        p.month_match(day.month()).unwrap_or(false)
            && p.day_match(day.year(), day.month(), day.day(), weekday)
                .unwrap_or(false)
    }

    /// The first matching wall-clock time strictly after `after`, looking at days up to
    /// `last_day` (inclusive).
    pub(crate) fn next_wall(
        &self,
        after: NaiveDateTime,
        last_day: NaiveDate,
    ) -> Option<NaiveDateTime> {
        let mut day = after.date();
        if self.matches_day(day) {
            if let Some(time) = self.time_after(after.time()) {
                return Some(day.and_time(time));
            }
        }
        loop {
            day = day.succ_opt()?;
            if day > last_day {
                return None;
            }
            if self.matches_day(day) {
                return Some(day.and_time(self.time(
                    self.hours[0],
                    self.minutes[0],
                    self.seconds[0],
                )));
            }
        }
    }

    /// The last matching wall-clock time at or before `at`, looking at days down to
    /// `first_day` (inclusive).
    pub(crate) fn prev_wall(
        &self,
        at: NaiveDateTime,
        first_day: NaiveDate,
    ) -> Option<NaiveDateTime> {
        let mut day = at.date();
        if self.matches_day(day) {
            if let Some(time) = self.time_at_or_before(at.time()) {
                return Some(day.and_time(time));
            }
        }
        let last = |v: &[u32]| v[v.len() - 1];
        loop {
            day = day.pred_opt()?;
            if day < first_day {
                return None;
            }
            if self.matches_day(day) {
                let time = self.time(last(&self.hours), last(&self.minutes), last(&self.seconds));
                return Some(day.and_time(time));
            }
        }
    }

    fn time(&self, h: u32, m: u32, s: u32) -> NaiveTime {
        // The values come from fields checked against 0-23 and 0-59.
        NaiveTime::from_hms_opt(h, m, s).expect("checked time fields")
    }

    /// The first matching time of day strictly after `t`. Sub-seconds of `t` are ignored,
    /// which is right: a match on `t`'s whole second is not after `t`.
    fn time_after(&self, t: NaiveTime) -> Option<NaiveTime> {
        for &h in self.hours.iter().filter(|&&h| h >= t.hour()) {
            if h > t.hour() {
                return Some(self.time(h, self.minutes[0], self.seconds[0]));
            }
            for &m in self.minutes.iter().filter(|&&m| m >= t.minute()) {
                if m > t.minute() {
                    return Some(self.time(h, m, self.seconds[0]));
                }
                if let Some(&s) = self.seconds.iter().find(|&&s| s > t.second()) {
                    return Some(self.time(h, m, s));
                }
            }
        }
        None
    }

    /// The last matching time of day at or before `t`.
    fn time_at_or_before(&self, t: NaiveTime) -> Option<NaiveTime> {
        let last = |v: &[u32]| v[v.len() - 1];
        for &h in self.hours.iter().rev().filter(|&&h| h <= t.hour()) {
            if h < t.hour() {
                return Some(self.time(h, last(&self.minutes), last(&self.seconds)));
            }
            for &m in self.minutes.iter().rev().filter(|&&m| m <= t.minute()) {
                if m < t.minute() {
                    return Some(self.time(h, m, last(&self.seconds)));
                }
                if let Some(&s) = self.seconds.iter().rev().find(|&&s| s <= t.second()) {
                    return Some(self.time(h, m, s));
                }
            }
        }
        None
    }
}

impl std::fmt::Display for CronExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// Checks one field and returns it in numbers only (names replaced, `?` as `*`).
fn check_field(field: &Field, text: &str) -> Result<String, String> {
    let mut items = Vec::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("empty item in the list {text:?}"));
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => {
                if !step.bytes().all(|b| b.is_ascii_digit()) || step.is_empty() {
                    return Err(format!("step {step:?} in {item:?} is not a number"));
                }
                match step.parse::<u32>() {
                    Ok(0) => return Err(format!("step in {item:?} must be at least 1")),
                    Ok(n) if n <= field.max => (base, Some(n)),
                    _ => {
                        return Err(format!(
                            "step {step} in {item:?} is larger than the field's range {}-{}",
                            field.min, field.max
                        ))
                    }
                }
            }
            None => (item, None),
        };
        let checked = if base == "*" || (base == "?" && field.question_mark) {
            "*".to_string()
        } else if base == "?" {
            return Err("\"?\" is only allowed in the day-of-month and day-of-week fields".into());
        } else if let Some((a, b)) = base.split_once('-') {
            let start = value(field, a, item)?;
            let mut end = value(field, b, item)?;
            if field.name == FIELDS[DAY_OF_WEEK].name && end == 0 && start > 0 {
                // `FRI-SUN`: a weekday range may end on Sunday written as 0 or SUN.
                end = 7;
            }
            if start > end {
                return Err(format!(
                    "range {base:?} goes backwards ({start} is after {end}); write it as two \
                     ranges, e.g. \"{start}-{max},{min}-{end}\"",
                    min = field.min,
                    max = field.max,
                ));
            }
            format!("{start}-{end}")
        } else {
            let v = value(field, base, item)?;
            if let Some(step) = step {
                return Err(format!(
                    "{item:?}: a step needs \"*\" or a range before it (write \"*/{step}\" or \
                     \"{v}-{}/{step}\")",
                    field.max
                ));
            }
            v.to_string()
        };
        items.push(match step {
            Some(step) => format!("{checked}/{step}"),
            None => checked,
        });
    }
    Ok(items.join(","))
}

/// Reads one value: a number in the field's range, or a name.
fn value(field: &Field, text: &str, item: &str) -> Result<u32, String> {
    let range = format!("{}-{}", field.min, field.max);
    if text.is_empty() {
        return Err(format!("{item:?} is missing a value"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(n) if (field.min..=field.max).contains(&n) => Ok(n),
            _ => Err(format!("value {text} out of range {range}")),
        };
    }
    if let Some(i) = field
        .names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(text))
    {
        return Ok(field.min + i as u32);
    }
    let upper = text.to_ascii_uppercase();
    let extension = upper == "L"
        || upper.contains('#')
        || upper.starts_with('+')
        || (upper.len() > 1
            && (upper.ends_with('L') || upper.ends_with('W'))
            && upper[..upper.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'L'));
    if extension {
        return Err(format!(
            "{text:?} is not supported (L, W, # and + are not standard cron)"
        ));
    }
    match (field.names.first(), field.names.last()) {
        (Some(first), Some(last)) => Err(format!(
            "unexpected {text:?} (expected a number {range} or a name {first}-{last})"
        )),
        _ => Err(format!("unexpected {text:?} (expected a number {range})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(expr: &str) -> CronExprError {
        CronExpr::parse(expr).unwrap_err()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn accepts_five_or_six_fields_and_shortcuts() {
        for expr in [
            "0 2 * * *",
            "*/15 8-18 * * MON-FRI",
            "30 */10 * * * *",
            "0 0 1,15 jan,Jul ?",
            "0 0 * * SAT-SUN",
            "0 0 * * 5-7",
            " @Daily ",
            "@hourly",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
            "@midnight",
        ] {
            CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        }
    }

    #[test]
    fn wrong_field_count_says_how_many() {
        assert_eq!(
            err("0 2 * *").to_string(),
            r#"invalid expression "0 2 * *": expected 5 or 6 fields, got 4"#
        );
        assert!(err("0 0 2 * * * 2026").problem.contains("got 7"));
        assert_eq!(err("  ").problem, "it is empty");
    }

    #[test]
    fn each_bad_field_is_named() {
        for (expr, field, problem) in [
            ("60 * * * * *", "second", "value 60 out of range 0-59"),
            ("60 0 * * *", "minute", "value 60 out of range 0-59"),
            ("0 25 * * *", "hour", "value 25 out of range 0-23"),
            ("0 0 0 * *", "day of month", "value 0 out of range 1-31"),
            ("0 0 32 * *", "day of month", "value 32 out of range 1-31"),
            ("0 0 * 13 *", "month", "value 13 out of range 1-12"),
            ("0 0 * * 8", "day of week", "value 8 out of range 0-7"),
            (
                "0 0 * FOO *",
                "month",
                r#"unexpected "FOO" (expected a number 1-12 or a name JAN-DEC)"#,
            ),
            ("0 0 * * MON-FOO", "day of week", r#"unexpected "FOO""#),
            (
                "0 0 * * MON-",
                "day of week",
                r#""MON-" is missing a value"#,
            ),
            ("0 22-2 * * *", "hour", r#"range "22-2" goes backwards"#),
            ("*/0 * * * *", "minute", "must be at least 1"),
            ("*/x * * * *", "minute", r#"step "x""#),
            ("*/61 * * * *", "minute", "larger than the field's range"),
            ("5/15 * * * *", "minute", r#"write "*/15" or "5-59/15""#),
            ("1,,2 * * * *", "minute", "empty item"),
            ("? * * * *", "minute", r#""?" is only allowed"#),
            ("0 0 L * *", "day of month", "not supported"),
            ("0 0 15W * *", "day of month", "not supported"),
            ("0 0 * * 5#2", "day of week", "not supported"),
            ("0 0 * * 5L", "day of week", "not supported"),
            ("0 0 * * +MON", "day of week", "not supported"),
            (
                "0 99999999999 * * *",
                "hour",
                "value 99999999999 out of range 0-23",
            ),
        ] {
            let e = err(expr);
            assert_eq!(e.field, Some(field), "{expr}: {e}");
            let text = e.to_string();
            assert!(
                text.contains(&format!("field \"{field}\": ")),
                "{expr}: {text}"
            );
            assert!(text.contains(problem), "{expr}: {text}");
            assert!(text.contains(&format!("{expr:?}")), "{expr}: {text}");
        }
    }

    #[test]
    fn unknown_shortcut_points_to_every() {
        let e = err("@every 5m");
        assert!(e.problem.contains("unknown shortcut"), "{e}");
        assert!(e.problem.contains("\"every\""), "{e}");
        assert!(err("@reboot").problem.contains("unknown shortcut"));
    }

    #[test]
    fn shortcuts_mean_what_cron_means() {
        let same = |a: &str, b: &str| {
            assert_eq!(
                CronExpr::parse(a).unwrap().cron.pattern,
                CronExpr::parse(b).unwrap().cron.pattern,
                "{a}"
            )
        };
        same("@yearly", "0 0 1 1 *");
        same("@annually", "0 0 1 1 *");
        same("@monthly", "0 0 1 * *");
        same("@weekly", "0 0 * * 0");
        same("@daily", "0 0 * * *");
        same("@midnight", "0 0 * * *");
        same("@hourly", "0 * * * *");
        // Names and 7-as-Sunday read like numbers.
        same("0 0 * jan-mar sun", "0 0 * 1-3 0");
        same("0 0 * * 7", "0 0 * * 0");
        same("0 0 * * FRI-SUN", "0 0 * * 5,6,0");
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // 2026-06-01 is a Monday.
        let e = CronExpr::parse("0 0 1,15 * 1").unwrap();
        let matching: Vec<u32> = (1..=30)
            .filter(|&d| e.matches_day(day(2026, 6, d)))
            .collect();
        // The 1st and 15th, and every Monday (1, 8, 15, 22, 29).
        assert_eq!(matching, vec![1, 8, 15, 22, 29]);
        let e = CronExpr::parse("0 0 1,15 * 3").unwrap(); // Wednesdays: 3, 10, 17, 24
        let matching: Vec<u32> = (1..=30)
            .filter(|&d| e.matches_day(day(2026, 6, d)))
            .collect();
        assert_eq!(matching, vec![1, 3, 10, 15, 17, 24]);

        // One of them `*` (or `?`): the other alone restricts.
        let e = CronExpr::parse("0 0 1,15 * *").unwrap();
        let matching: Vec<u32> = (1..=30)
            .filter(|&d| e.matches_day(day(2026, 6, d)))
            .collect();
        assert_eq!(matching, vec![1, 15]);
        let e = CronExpr::parse("0 0 ? * MON").unwrap();
        let matching: Vec<u32> = (1..=30)
            .filter(|&d| e.matches_day(day(2026, 6, d)))
            .collect();
        assert_eq!(matching, vec![1, 8, 15, 22, 29]);

        // `*/2` restricts (odd days), so it ORs with Mondays.
        let e = CronExpr::parse("0 0 */2 * MON").unwrap();
        assert!(e.matches_day(day(2026, 6, 3)));
        assert!(e.matches_day(day(2026, 6, 8)));
        assert!(!e.matches_day(day(2026, 6, 10)));
    }

    #[test]
    fn walks_wall_times_both_ways() {
        let e = CronExpr::parse("15 10,14 * * *").unwrap();
        let at = |d: u32, h: u32, m: u32, s: u32| day(2026, 6, d).and_hms_opt(h, m, s).unwrap();
        let far = day(2030, 1, 1);
        let early = day(2020, 1, 1);
        assert_eq!(e.next_wall(at(1, 10, 15, 0), far), Some(at(1, 14, 15, 0)));
        assert_eq!(e.next_wall(at(1, 10, 14, 59), far), Some(at(1, 10, 15, 0)));
        assert_eq!(e.next_wall(at(1, 14, 15, 0), far), Some(at(2, 10, 15, 0)));
        assert_eq!(e.prev_wall(at(1, 14, 15, 0), early), Some(at(1, 14, 15, 0)));
        assert_eq!(
            e.prev_wall(at(1, 14, 14, 59), early),
            Some(at(1, 10, 15, 0))
        );
        assert_eq!(e.prev_wall(at(2, 10, 0, 0), early), Some(at(1, 14, 15, 0)));
        // Sub-seconds: 10:15:00.5 is after the 10:15:00 match.
        let half = at(1, 10, 15, 0) + chrono::TimeDelta::milliseconds(500);
        assert_eq!(e.next_wall(half, far), Some(at(1, 14, 15, 0)));
        assert_eq!(e.prev_wall(half, early), Some(at(1, 10, 15, 0)));
        // The day bound is respected.
        assert_eq!(e.next_wall(at(1, 23, 0, 0), day(2026, 6, 1)), None);
    }
}
