//! The JSON Schemas of the inputs errand-core checks: names, keys, text, durations and a job's
//! args. They sit beside the checks ([`crate::validate`], [`crate::duration`],
//! [`crate::storable`]) so that an API document states the rules the checks apply, and the
//! tests below hold the two together: a string a pattern matches is one the check accepts
//! (and, where the pattern is exact, the other way round).
//!
//! JSON Schema counts characters and matches regular expressions; where a rule is beyond it (a
//! byte or nesting limit, a key inside args), the schema says so in its description, and
//! patterns stay within what every engine reads (ECMA-262, Python's `re`, Rust's `regex`):
//! character classes, groups, alternation, bounded repetition, no look-around.

use crate::duration::UNITS;
use crate::storable::MAX_DEPTH;
use crate::validate::{MAX_KEY_LEN, MAX_NAME_LEN, NAME_PUNCTUATION};
use schemars::{json_schema, Schema, SchemaGenerator};
use std::time::Duration;

/// A kind, queue or reference-type name ([`crate::validate`]'s `check_name`).
pub fn name_pattern() -> String {
    // `-` last in the class, so it is itself and not a range.
    let punctuation: String = NAME_PUNCTUATION.chars().filter(|c| *c != '-').collect();
    format!(
        "^[A-Za-z0-9][A-Za-z0-9{punctuation}-]{{0,{}}}$",
        MAX_NAME_LEN - 1
    )
}

/// Text without the NUL character, which PostgreSQL cannot store ([`crate::storable`]).
pub const TEXT_PATTERN: &str = r"^[^\u0000]*$";

/// Most digits of one part of a duration in the patterns below: 9999w is some 190 years, so a
/// sum of such parts (some 220 years) added to or taken from now stays within the four-digit
/// years of RFC 3339 and every time type the stores use.
const DURATION_DIGITS: usize = 4;

/// A duration as [`crate::parse_duration`] reads it: `0`, or parts from the largest unit to the
/// smallest, each unit at most once (`500ms`, `30s`, `1h30m`). A part here has at most four
/// digits (the parser takes numbers up to 4294967295).
pub fn duration_pattern() -> String {
    let part = format!("[0-9]{{1,{DURATION_DIGITS}}}");
    format!("^(?:0|{})$", parts_from(&part))
}

/// A duration of at least one second: the first part is a positive number of seconds or of a
/// larger unit (so `1500ms`, which the parser also reads as more than a second, is not among
/// them).
pub fn duration_at_least_1s_pattern() -> String {
    let first = format!("[1-9][0-9]{{0,{}}}", DURATION_DIGITS - 1);
    let larger: Vec<&str> = UNITS
        .iter()
        .map(|(unit, _)| *unit)
        .filter(|u| *u != "ms")
        .collect();
    let part = format!("[0-9]{{1,{DURATION_DIGITS}}}");
    let options: Vec<String> = larger
        .iter()
        .map(|unit| format!("{first}{unit}{}", optional_parts_after(unit, &part)))
        .collect();
    format!("^(?:{})$", options.join("|"))
}

/// A duration from `min` to `max`, written in one unit (`90s`, `5m`, `1h`; `0` too when `min`
/// is zero). Sums (`1m30s`) are left out: a pattern for the sum of parts within a range is
/// beyond what is readable.
pub fn duration_range_pattern(min: Duration, max: Duration) -> String {
    let mut options = Vec::new();
    if min.is_zero() {
        options.push("0".to_string());
    }
    for (unit, one) in UNITS {
        let one = one.as_millis();
        let lo = min
            .as_millis()
            .div_ceil(one)
            .max(if min.is_zero() { 0 } else { 1 });
        let hi = max.as_millis() / one;
        if lo <= hi {
            options.push(format!("(?:{}){unit}", integer_range_pattern(lo, hi)));
        }
    }
    format!("^(?:{})$", options.join("|"))
}

/// The parts of a duration, at least one, each unit after the ones before it.
fn parts_from(part: &str) -> String {
    let options: Vec<String> = UNITS
        .iter()
        .map(|(unit, _)| format!("{part}{unit}{}", optional_parts_after(unit, part)))
        .collect();
    options.join("|")
}

/// Optional parts in every unit smaller than `unit`, in order.
fn optional_parts_after(unit: &str, part: &str) -> String {
    UNITS
        .iter()
        .skip_while(|(u, _)| *u != unit)
        .skip(1)
        .map(|(u, _)| format!("(?:{part}{u})?"))
        .collect()
}

/// The decimal numbers from `lo` to `hi` (no leading zeros), as one alternation.
pub fn integer_range_pattern(lo: u128, hi: u128) -> String {
    assert!(lo <= hi, "empty range {lo}..={hi}");
    let mut options = Vec::new();
    let mut start = lo;
    // Split into runs of the same number of digits, then each run by its digits.
    while start <= hi {
        let digits = start.to_string().len() as u32;
        let top = (10u128.pow(digits) - 1).min(hi);
        same_length(&start.to_string(), &top.to_string(), &mut options);
        start = top + 1;
    }
    options.join("|")
}

/// The numbers from `lo` to `hi`, both of the same length.
fn same_length(lo: &str, hi: &str, out: &mut Vec<String>) {
    if lo == hi {
        out.push(lo.to_string());
        return;
    }
    let (l, h) = (lo.as_bytes()[0], hi.as_bytes()[0]);
    let rest = lo.len() - 1;
    if l == h {
        let mut inner = Vec::new();
        same_length(&lo[1..], &hi[1..], &mut inner);
        out.extend(inner.into_iter().map(|s| format!("{}{s}", l as char)));
        return;
    }
    let any = |n: usize| {
        if n == 0 {
            String::new()
        } else {
            format!("[0-9]{{{n}}}")
        }
    };
    // lo's first digit followed by lo's rest up to 99..9.
    let mut low = Vec::new();
    same_length(&lo[1..], &"9".repeat(rest), &mut low);
    out.extend(low.into_iter().map(|s| format!("{}{s}", l as char)));
    if h - l > 1 {
        out.push(format!(
            "[{}-{}]{}",
            (l + 1) as char,
            (h - 1) as char,
            any(rest)
        ));
    }
    let mut high = Vec::new();
    same_length(&"0".repeat(rest), &hi[1..], &mut high);
    out.extend(high.into_iter().map(|s| format!("{}{s}", h as char)));
}

/// A name, as [`name_pattern`] says.
pub fn name(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_NAME_LEN,
        "pattern": name_pattern(),
        "description": format!(
            "1 to {MAX_NAME_LEN} ASCII letters, digits and `{NAME_PUNCTUATION}`, starting with a letter or digit"
        ),
    })
}

/// A unique key or reference id: 1 to 512 characters without NUL.
pub fn key(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LEN,
        "pattern": TEXT_PATTERN,
        "description": format!("1 to {MAX_KEY_LEN} characters, without U+0000"),
    })
}

/// Text without NUL, not empty.
pub fn filter(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "minLength": 1, "pattern": TEXT_PATTERN})
}

/// A duration ([`duration_pattern`]).
pub fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": duration_pattern(),
        "description": "a duration: 0, or numbers with units ms, s, m, h, d, w from the largest to the smallest, each at most once (500ms, 30s, 5m, 1h30m); up to 4 digits a number here",
    })
}

/// A duration of at least one second ([`duration_at_least_1s_pattern`]).
pub fn duration_at_least_1s(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": duration_at_least_1s_pattern(),
        "description": "a duration of at least 1s (30s, 5m, 1h30m)",
    })
}

/// A job's args: a JSON object, default `{}`.
pub fn args(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "default": {},
        "description": format!(
            "A JSON object (default {{}}): at most 1 MiB as compact JSON (a server setting), \
             nested at most {MAX_DEPTH} levels, no U+0000 in any string or key"
        ),
    })
}

/// An `i32`.
pub fn int32(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX})
}

/// An `i32` of at least 1 (`max_attempts`).
pub fn attempts(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "format": "int32", "minimum": 1, "maximum": i32::MAX})
}

/// A rate limit (`errand_core::flow::RateLimit`): `N/DURATION`, a count from 1 and a window
/// from 1ms to 1d written in one unit (the parser also takes sums such as `1m30s`).
pub fn rate_limit(_: &mut SchemaGenerator) -> Schema {
    let window = duration_range_pattern(crate::flow::MIN_RATE_WINDOW, crate::flow::MAX_RATE_WINDOW);
    let window = window.trim_start_matches('^').trim_end_matches('$');
    json_schema!({
        "type": "string",
        "pattern": format!("^[1-9][0-9]{{0,8}}/{window}$"),
        "description": "at most N starts in any window of the duration: `100/1m`, `5/1s`, `1000/1h`",
    })
}

/// A rate limit, or null (no limit).
pub fn rate_limit_or_null(g: &mut SchemaGenerator) -> Schema {
    or_null(rate_limit(g))
}

/// A concurrency limit (`global_concurrency`, `key_concurrency`): at least 1.
pub fn limit(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "format": "int32", "minimum": 1, "maximum": i32::MAX})
}

/// A concurrency limit, or null (no limit).
pub fn limit_or_null(g: &mut SchemaGenerator) -> Schema {
    or_null(limit(g))
}

/// `schema`, or null: how the document says an optional field may be null (the server reads
/// a null as absent).
pub fn or_null(mut schema: Schema) -> Schema {
    schema.insert("nullable".into(), true.into());
    schema
}

/// A name, or null.
pub fn name_or_null(g: &mut SchemaGenerator) -> Schema {
    or_null(name(g))
}

/// A key, or null.
pub fn key_or_null(g: &mut SchemaGenerator) -> Schema {
    or_null(key(g))
}

/// A filter, or null.
pub fn filter_or_null(g: &mut SchemaGenerator) -> Schema {
    or_null(filter(g))
}

/// A duration, or null.
pub fn duration_or_null(g: &mut SchemaGenerator) -> Schema {
    or_null(duration(g))
}

/// A duration of at least a second, or null.
pub fn duration_at_least_1s_or_null(g: &mut SchemaGenerator) -> Schema {
    or_null(duration_at_least_1s(g))
}

/// An `i32`, or null.
pub fn int32_or_null(g: &mut SchemaGenerator) -> Schema {
    or_null(int32(g))
}

/// An attempt budget, or null.
pub fn attempts_or_null(g: &mut SchemaGenerator) -> Schema {
    or_null(attempts(g))
}

/// The condition "each of `fields` is given and not null" (a value of its JSON type: `string`,
/// `array`, ...), for the `not` that states which fields do not go together.
pub fn given(fields: &[(&str, &str)]) -> serde_json::Value {
    let mut properties = serde_json::Map::new();
    for (field, kind) in fields {
        let mut value = serde_json::json!({"type": kind});
        if *kind == "array" {
            // The field's own schema says what the items are; clients want `items` on an array.
            value["items"] = serde_json::json!({});
        }
        properties.insert(field.to_string(), value);
    }
    let required: Vec<&str> = fields.iter().map(|(f, _)| *f).collect();
    serde_json::json!({"required": required, "properties": properties})
}

/// The condition "none of `fields` is given".
pub fn none_given(fields: &[(&str, &str)]) -> serde_json::Value {
    let each: Vec<serde_json::Value> = fields.iter().map(|f| given(&[*f])).collect();
    serde_json::json!({"not": {"anyOf": each}})
}

/// Adds to an object's schema that none of `cases` holds (`not` `anyOf` them). A `not` states
/// the rule for validators and generators, and clients generated from the document (which read
/// `oneOf` and `anyOf` as unions of models) leave it alone.
pub fn forbid(schema: &mut Schema, cases: Vec<serde_json::Value>) {
    let not = if cases.len() == 1 {
        cases.into_iter().next().expect("one case")
    } else {
        serde_json::json!({"anyOf": cases})
    };
    schema.insert("not".into(), not);
}

/// Adds `fields` to an object's `required` (for fields serde fills in, which a checker still
/// needs).
pub fn require(schema: &mut Schema, fields: &[&str]) {
    let required = schema
        .ensure_object()
        .entry("required")
        .or_insert_with(|| serde_json::json!([]));
    if let Some(list) = required.as_array_mut() {
        for f in fields {
            if !list.iter().any(|v| v == f) {
                list.push(serde_json::json!(f));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_duration;
    use crate::validate::{validate_kind_name, NewJob};
    use crate::Limits;
    use regex_automata::meta::Regex;

    fn re(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    /// Durations as people write them, good and bad.
    fn duration_samples() -> Vec<String> {
        let mut out: Vec<String> = [
            "0",
            "",
            "0s",
            "0ms",
            "1s1s",
            "30s1m",
            "1h30m",
            "1w2d3h4m5s6ms",
            "5",
            "s",
            "-5s",
            "1.5s",
            " 5s",
            "5S",
            "9999w",
            "10000w",
            "1ms",
            "999ms",
            "1000ms",
            "1500ms",
            "0h1s",
            "01s",
            "1m0s",
            "60m",
            "3600s",
            "3601s",
            "1h",
            "2h",
            "1h1ms",
            "30s",
            "31s",
            "30000ms",
            "30001ms",
            "4294967295s",
            "4294967296s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [
            0u64, 1, 2, 9, 10, 59, 60, 99, 100, 999, 1000, 3599, 3600, 3601, 9999, 10000,
        ] {
            for (unit, _) in UNITS {
                out.push(format!("{n}{unit}"));
                out.push(format!("{n}{unit}{n}ms"));
            }
        }
        out
    }

    #[test]
    fn the_duration_pattern_matches_what_the_parser_reads() {
        let general = re(&duration_pattern());
        let positive = re(&duration_at_least_1s_pattern());
        for s in duration_samples() {
            let parsed = parse_duration(&s);
            let short_parts = s
                .split(|c: char| !c.is_ascii_digit())
                .all(|n| n.len() <= DURATION_DIGITS);
            if general.is_match(&s) {
                assert!(parsed.is_ok(), "{s:?} matches but does not parse");
            } else if s.trim() == s && short_parts {
                assert!(parsed.is_err(), "{s:?} parses but does not match");
            }
            if positive.is_match(&s) {
                assert!(parsed.unwrap() >= Duration::from_secs(1), "{s:?}");
            } else if general.is_match(&s) && !s.starts_with('0') {
                // Left out: a first part in milliseconds (or zero); never one of a second or more.
                let first_unit = s.trim_start_matches(|c: char| c.is_ascii_digit());
                assert!(
                    first_unit.starts_with("ms"),
                    "{s:?} is at least 1s but does not match"
                );
            }
        }
    }

    #[test]
    fn a_range_pattern_holds_the_range_in_each_unit() {
        for (min, max) in [
            (Duration::from_secs(1), Duration::from_secs(3600)),
            (Duration::ZERO, Duration::from_secs(30)),
            (Duration::from_secs(1), Duration::from_secs(10_000)),
        ] {
            let pattern = re(&duration_range_pattern(min, max));
            let mut matched = 0;
            for s in duration_samples() {
                if pattern.is_match(&s) {
                    let d = parse_duration(&s).unwrap();
                    assert!(min <= d && d <= max, "{s:?} is out of {min:?}..={max:?}");
                    matched += 1;
                } else if let Ok(d) = parse_duration(&s) {
                    // Only sums and leading zeros are left out.
                    let parts = s
                        .split(|c: char| c.is_ascii_alphabetic())
                        .filter(|p| !p.is_empty())
                        .count();
                    let leading_zero =
                        s.starts_with('0') && s.len() > 1 && s.as_bytes()[1].is_ascii_digit();
                    if parts == 1 && !leading_zero && min <= d && d <= max && s.trim() == s {
                        panic!("{s:?} is in {min:?}..={max:?} but does not match");
                    }
                }
            }
            assert!(matched > 5, "{matched}");
        }
    }

    #[test]
    fn the_integer_range_pattern_is_exact() {
        for (lo, hi) in [
            (0, 0),
            (1, 9),
            (0, 100),
            (1, 3600),
            (7, 1234),
            (30, 30000),
            (999, 1001),
        ] {
            let pattern = re(&format!("^(?:{})$", integer_range_pattern(lo, hi)));
            for n in 0..=40_000u128 {
                assert_eq!(
                    pattern.is_match(&n.to_string()),
                    (lo..=hi).contains(&n),
                    "{n} in {lo}..={hi}: {}",
                    integer_range_pattern(lo, hi)
                );
            }
            assert!(!pattern.is_match("01"));
        }
    }

    #[test]
    fn the_name_and_key_patterns_agree_with_the_checks() {
        let name = re(&name_pattern());
        let long = "a".repeat(MAX_NAME_LEN);
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        for s in [
            "a",
            "send_email",
            "a.b:c/d-e",
            "9",
            "",
            "_a",
            "-a",
            "a b",
            "a\u{0}",
            "é",
            "a\u{200b}",
            long.as_str(),
            too_long.as_str(),
            "A-Z_0.9",
        ] {
            assert_eq!(name.is_match(s), validate_kind_name(s).is_ok(), "{s:?}");
        }
        let text = re(TEXT_PATTERN);
        let key = |k: &str| {
            let mut j = NewJob::new("k", serde_json::json!({}));
            j.unique_key = Some(k.to_string());
            j.validate(&Limits::default()).is_ok()
        };
        let max = "é".repeat(MAX_KEY_LEN);
        let over = "é".repeat(MAX_KEY_LEN + 1);
        for s in ["a", "a b é 😀", "a\u{0}b", "", max.as_str(), over.as_str()] {
            let chars = s.chars().count();
            let fits = text.is_match(s) && (1..=MAX_KEY_LEN).contains(&chars);
            assert_eq!(fits, key(s), "{s:?}");
        }
    }
}
