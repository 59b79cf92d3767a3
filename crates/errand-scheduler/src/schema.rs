//! The JSON Schema of a schedule as an API body ([`crate::ScheduleSpec`]), beside the rules it
//! states: the cron grammar ([`crate::cron`]), the time zones ([`chrono_tz`]) and the fields'
//! checks ([`crate::ScheduleSpec::validate`]).
//!
//! A cron expression's full grammar (lists, ranges, names, steps on ranges, a seconds field)
//! and the rule that its days must occur in its months are beyond a readable pattern, so the
//! pattern here is the plain subset (one `*`, `*/step` or value per field, days of month up to
//! 28) and the description says the rest; every expression it matches is accepted and fires.
//! The time zones are every name the zone database knows, as one alternation.

use crate::cron::{field_ranges, SHORTCUTS};
use crate::spec::{MAX_INTERVAL, MAX_NAME_LEN, MIN_INTERVAL};
use errand_core::schema::{
    duration_range_pattern, forbid, given, integer_range_pattern, none_given, require,
};
use schemars::{json_schema, Schema, SchemaGenerator};

/// The cron expressions the document promises: `@hourly`..`@yearly`, or five fields of `*`,
/// `*/step` or one value each (days of month 1 to 28, so that every month has them).
pub fn cron_pattern() -> String {
    let fields: Vec<String> = field_ranges()
        .iter()
        .map(|&(name, min, max)| {
            let max = if name == "day of month" { 28 } else { max };
            format!(
                "(?:\\*(?:/(?:{}))?|{})",
                integer_range_pattern(1, u128::from(max)),
                integer_range_pattern(u128::from(min), u128::from(max))
            )
        })
        .collect();
    let shortcuts: Vec<&str> = SHORTCUTS.iter().map(|(name, _)| *name).collect();
    format!("^(?:{}|{})$", shortcuts.join("|"), fields.join(" "))
}

/// Every IANA zone name [`chrono_tz`] reads.
pub fn timezone_pattern() -> String {
    let names: Vec<String> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| {
            tz.name()
                .chars()
                .flat_map(|c| {
                    let escape = "\\^$.|?*+()[]{}".contains(c);
                    escape.then_some('\\').into_iter().chain([c])
                })
                .collect()
        })
        .collect();
    format!("^(?:{})$", names.join("|"))
}

/// A schedule's name ([`crate::ScheduleSpec::validate`]).
pub fn name_pattern() -> String {
    format!("^[A-Za-z0-9_-]{{1,{MAX_NAME_LEN}}}$")
}

/// A schedule's name.
pub fn name(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": name_pattern(),
        "description": format!("a schedule's name: 1 to {MAX_NAME_LEN} ASCII letters, digits, `_` or `-`"),
    })
}

/// `cron`, or null.
pub(crate) fn cron_or_null(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "nullable": true,
        "pattern": cron_pattern(),
        "description": "A cron expression, exclusive with `every`. The server reads 5 fields \
            (minute hour day-of-month month day-of-week), or 6 with a leading seconds field, or \
            @hourly, @daily (@midnight), @weekly, @monthly, @yearly (@annually); a field is a \
            list of `*`, values and ranges, `*` and ranges may take a step (`*/15`, `8-18/2`), \
            months and weekdays may be names; the days must occur in the months. The pattern \
            here is the plain subset: one `*`, `*/step` or value per field, days of month up \
            to 28.",
    })
}

/// `every`, or null: from 1s to 366d, in one unit (sums such as `1h30m`, which the server
/// reads too, are beyond a readable range pattern).
pub(crate) fn every_or_null(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "nullable": true,
        "pattern": duration_range_pattern(MIN_INTERVAL, MAX_INTERVAL),
        "description": "A fixed interval from 1s to 366d, aligned to the Unix epoch; exclusive \
            with `cron`. The server reads sums too (1h30m); the pattern here is one unit \
            (90s, 5m, 1h, 7d).",
    })
}

/// `timezone`, or null.
pub(crate) fn timezone_or_null(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "nullable": true,
        "pattern": timezone_pattern(),
        "description": "The IANA time zone `cron` is read in (Europe/London; default UTC). \
            Only with `cron`.",
    })
}

/// `cron` or `every`, exactly one; `timezone` only with `cron`; `kind` required (serde
/// fills in an empty one, which the check refuses).
pub(crate) fn rules(schema: &mut Schema) {
    let (cron, every, timezone) = (
        ("cron", "string"),
        ("every", "string"),
        ("timezone", "string"),
    );
    forbid(
        schema,
        vec![
            given(&[cron, every]),
            none_given(&[cron, every]),
            given(&[every, timezone]),
        ],
    );
    require(schema, &["kind"]);
    if let Some(kind) = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut("kind"))
        .and_then(|k| k.as_object_mut())
    {
        kind.remove("default");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CronExpr, ScheduleSpec};
    use regex_automata::meta::Regex;

    #[test]
    fn every_cron_expression_the_pattern_matches_is_accepted_and_fires() {
        let pattern = Regex::new(&cron_pattern()).unwrap();
        let mut matched = 0;
        let choices = |min: u32, max: u32| {
            vec![
                "*".to_string(),
                "*/1".into(),
                format!("*/{max}"),
                min.to_string(),
                max.to_string(),
            ]
        };
        let ranges = field_ranges();
        let per_field: Vec<Vec<String>> = ranges
            .iter()
            .map(|&(name, min, max)| choices(min, if name == "day of month" { 28 } else { max }))
            .collect();
        let mut stack = vec![Vec::<String>::new()];
        while let Some(partial) = stack.pop() {
            if partial.len() == per_field.len() {
                let expr = partial.join(" ");
                assert!(pattern.is_match(&expr), "{expr:?}");
                let parsed = CronExpr::parse(&expr).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
                assert!(parsed.never_fires().is_none(), "{expr:?}");
                matched += 1;
                continue;
            }
            for c in &per_field[partial.len()] {
                let mut next = partial.clone();
                next.push(c.clone());
                stack.push(next);
            }
        }
        assert!(matched >= 3000, "{matched}");
        for (name, _) in SHORTCUTS {
            assert!(pattern.is_match(name));
            assert!(CronExpr::parse(name).is_ok());
        }
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 29 * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "*/60 * * * *",
            "@often",
            "* * * * * * *",
        ] {
            assert!(!pattern.is_match(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_every_pattern_is_within_the_intervals_rule() {
        let pattern = Regex::new(&duration_range_pattern(MIN_INTERVAL, MAX_INTERVAL)).unwrap();
        let check = |every: &str| {
            ScheduleSpec {
                every: Some(every.into()),
                kind: "k".into(),
                args: serde_json::json!({}),
                ..Default::default()
            }
            .validate("x")
            .is_ok()
        };
        for every in ["1s", "90s", "5m", "1h", "7d", "366d", "52w", "8784h"] {
            assert!(pattern.is_match(every), "{every}");
            assert!(check(every), "{every}");
        }
        for every in ["0", "500ms", "367d", "53w", "8785h", "10000w"] {
            assert!(!pattern.is_match(every), "{every}");
            assert!(!check(every), "{every}");
        }
    }

    #[test]
    fn the_name_pattern_is_the_names_rule() {
        let pattern = Regex::new(&name_pattern()).unwrap();
        let spec = ScheduleSpec {
            every: Some("1m".into()),
            kind: "k".into(),
            args: serde_json::json!({}),
            ..Default::default()
        };
        let long = "a".repeat(MAX_NAME_LEN);
        let over = "a".repeat(MAX_NAME_LEN + 1);
        for name in [
            "a",
            "nightly-report_2",
            "",
            "a b",
            "a.b",
            "é",
            long.as_str(),
            over.as_str(),
        ] {
            assert_eq!(
                pattern.is_match(name),
                spec.validate(name).is_ok(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn every_zone_the_pattern_matches_is_read() {
        let pattern = Regex::new(&timezone_pattern()).unwrap();
        for tz in chrono_tz::TZ_VARIANTS {
            assert!(pattern.is_match(tz.name()), "{}", tz.name());
            let spec = ScheduleSpec {
                cron: Some("0 0 * * *".into()),
                timezone: Some(tz.name().into()),
                kind: "k".into(),
                args: serde_json::json!({}),
                ..Default::default()
            };
            assert!(spec.validate("s").is_ok(), "{}", tz.name());
        }
        for bad in [
            "",
            "Europe/Nowhere",
            "europe/london",
            "UTC ",
            "Etc/GMT+13",
            "E.rope/London",
        ] {
            assert!(!pattern.is_match(bad), "{bad:?}");
        }
    }
}
