//! What both stores can hold, decided once for every path into them.
//!
//! PostgreSQL cannot store the NUL character (U+0000) in `text`, nor `\u0000` in `jsonb`
//! strings or keys; SQLite can. So that both backends behave the same, Errand draws the line
//! here, in two ways:
//!
//! - **Input** (a job's args and keys, filters, schedule and worker names) with a NUL is
//!   refused, naming the field and, inside JSON, the path to the bad string
//!   ([`check_text`], [`check_json`]). Nothing is written.
//! - **Handler output** (a result, an error message, a command's stderr) is never refused,
//!   because refusing it would leave the attempt unrecorded: each NUL is replaced by U+FFFD
//!   and the caller says so in the job's record ([`storable_text`], [`storable_json`]).

use crate::validate::{invalid, ValidationError};
use serde_json::Value;

/// What replaces a character that cannot be stored.
pub const REPLACEMENT: char = '\u{FFFD}';

const NUL: char = '\0';

/// The deepest nesting of arrays and objects accepted in args and kept as-is in a result.
/// JSON readers stop somewhere (serde_json at 128 levels, SQLite's JSON functions at 1,000),
/// and a job that cannot be read back cannot be listed, shown or retried.
pub const MAX_DEPTH: usize = 100;

/// Refuses text holding a NUL character.
pub fn check_text(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.contains(NUL) {
        return Err(invalid(
            field,
            "must not contain the NUL character (U+0000), which PostgreSQL cannot store",
        ));
    }
    Ok(())
}

/// Refuses JSON holding a NUL character in any string or object key; the message gives the
/// path of the first one (`args.user.name`, `args.items[3]`).
pub fn check_json(field: &'static str, value: &Value) -> Result<(), ValidationError> {
    if depth(value) > MAX_DEPTH {
        return Err(invalid(
            field,
            format!("nests arrays and objects deeper than {MAX_DEPTH} levels"),
        ));
    }
    match find_nul(value, field.to_string()) {
        None => Ok(()),
        Some(path) => Err(invalid(
            field,
            format!(
                "must not contain the NUL character (U+0000), which PostgreSQL cannot store: found at {path}"
            ),
        )),
    }
}

/// [`check_json`] on JSON text, without building a tree: the nesting is counted on the bytes,
/// and a NUL can only be spelled `\u0000` inside a JSON string, so text without that spelling
/// holds none. Only text that may hold one is parsed, for [`check_json`] to name the path.
/// `text` must be valid JSON (a [`crate::JobArgs`]).
pub fn check_json_text(field: &'static str, text: &str) -> Result<(), ValidationError> {
    if text_depth(text) > MAX_DEPTH {
        return Err(invalid(
            field,
            format!("nests arrays and objects deeper than {MAX_DEPTH} levels"),
        ));
    }
    if text.contains("\\u0000") {
        // Maybe a NUL (or an escaped backslash before `u0000`): the tree decides. Its depth
        // is within the limit, so it parses.
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            return check_json(field, &value);
        }
    }
    Ok(())
}

/// Nesting depth of JSON text, as [`depth`] counts it on a tree: brackets and braces outside
/// strings.
pub fn text_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn find_nul(value: &Value, path: String) -> Option<String> {
    match value {
        Value::String(s) if s.contains(NUL) => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_nul(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = format!("{path}.{}", k.replace(NUL, "\\u0000"));
            if k.contains(NUL) {
                Some(here)
            } else {
                find_nul(v, here)
            }
        }),
        _ => None,
    }
}

/// `text` with every NUL replaced by U+FFFD, and whether anything was replaced.
pub fn storable_text(text: &str) -> (String, bool) {
    if text.contains(NUL) {
        (text.replace(NUL, &REPLACEMENT.to_string()), true)
    } else {
        (text.to_string(), false)
    }
}

/// Nesting depth: 0 for a scalar, 1 for `[]` or `{"a": 1}`. Iterative, so a hostile value
/// cannot overflow the stack here.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(items) => {
                deepest = deepest.max(d + 1);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(d + 1);
                stack.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// How a value was changed to make it storable, for the job's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Stored as it was.
    None,
    /// NUL characters were replaced by U+FFFD.
    ReplacedNul,
    /// Nested deeper than [`MAX_DEPTH`]: stored as a JSON string holding its compact text.
    StoredAsText,
}

impl Change {
    /// What to tell a reader of the job, or `None` when nothing changed.
    pub fn describe(self, what: &str) -> Option<String> {
        match self {
            Change::None => None,
            Change::ReplacedNul => Some(format!(
                "the {what} held NUL characters (U+0000), which cannot be stored; each was \
                 replaced by U+FFFD"
            )),
            Change::StoredAsText => Some(format!(
                "the {what} nested deeper than {MAX_DEPTH} levels; it is stored as a JSON string \
                 holding its text"
            )),
        }
    }
}

/// `value` made storable: every NUL in its strings and keys replaced by U+FFFD (two keys that
/// become equal keep the later value), and a value nested deeper than [`MAX_DEPTH`] turned
/// into a string of its compact JSON text (itself with NULs replaced).
pub fn storable_json(value: &Value) -> (Value, Change) {
    if depth(value) > MAX_DEPTH {
        let text = serde_json::to_string(value).unwrap_or_default();
        return (Value::String(storable_text(&text).0), Change::StoredAsText);
    }
    let mut changed = false;
    let out = replace_nul(value, &mut changed);
    (
        out,
        if changed {
            Change::ReplacedNul
        } else {
            Change::None
        },
    )
}

fn replace_nul(value: &Value, changed: &mut bool) -> Value {
    match value {
        Value::String(s) => {
            let (s, c) = storable_text(s);
            *changed |= c;
            Value::String(s)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| replace_nul(v, changed)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let (k, c) = storable_text(k);
                    *changed |= c;
                    (k, replace_nul(v, changed))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        let mut v = json!("leaf");
        for _ in 0..levels {
            v = json!([v]);
        }
        v
    }

    #[test]
    fn depth_is_measured_and_limited() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]})), 4);
        assert_eq!(depth(&nested(MAX_DEPTH)), MAX_DEPTH);
        let deep = json!({ "x": nested(MAX_DEPTH) });
        let e = check_json("args", &deep).unwrap_err();
        assert!(e.problem.contains("deeper than 100"), "{}", e.problem);
        assert!(check_json("args", &nested(MAX_DEPTH)).is_ok());
        let (v, change) = storable_json(&deep);
        assert_eq!(change, Change::StoredAsText);
        let text = v.as_str().unwrap();
        assert!(
            text.starts_with("{\"x\":[[[") && text.ends_with("]]]}"),
            "{text}"
        );
        assert!(change
            .describe("result")
            .unwrap()
            .contains("deeper than 100"));
    }

    #[test]
    fn text_is_checked_as_its_tree_is() {
        let cases = [
            json!({"a": [1, {"b": r#"x]}[{"\"#}]}),
            json!({"user": {"names": ["ok", "b\u{0}d"]}}),
            json!({"k\u{0}": 1}),
            json!({"fine": ["\\u0000 is only text here", null]}),
            json!({ "x": nested(MAX_DEPTH) }),
            nested(MAX_DEPTH),
            json!({}),
        ];
        for v in cases {
            let text = serde_json::to_string(&v).unwrap();
            assert_eq!(text_depth(&text), depth(&v), "{text}");
            assert_eq!(
                check_json_text("args", &text),
                check_json("args", &v),
                "{text}"
            );
        }
    }

    #[test]
    fn input_with_a_nul_is_refused_with_its_path() {
        assert!(check_text("unique_key", "a\0b")
            .unwrap_err()
            .problem
            .contains("U+0000"));
        assert!(check_text("unique_key", "ab").is_ok());
        let e = check_json("args", &json!({"user": {"names": ["ok", "b\u{0}d"]}})).unwrap_err();
        assert_eq!(e.field, "args");
        assert!(
            e.problem.ends_with("found at args.user.names[1]"),
            "{}",
            e.problem
        );
        let e = check_json("args", &json!({"k\u{0}": 1})).unwrap_err();
        assert!(
            e.problem.ends_with("found at args.k\\u0000"),
            "{}",
            e.problem
        );
        assert!(check_json("args", &json!({"fine": [1, "two", null]})).is_ok());
    }

    #[test]
    fn output_with_a_nul_is_made_storable_and_says_so() {
        let (v, changed) = storable_json(&json!({"s": "a\u{0}", "k\u{0}": ["\u{0}"], "n": 1}));
        assert_eq!(changed, Change::ReplacedNul);
        assert_eq!(
            v,
            json!({"s": "a\u{FFFD}", "k\u{FFFD}": ["\u{FFFD}"], "n": 1})
        );
        let (v, changed) = storable_json(&json!({"s": "plain"}));
        assert_eq!(changed, Change::None);
        assert_eq!(v, json!({"s": "plain"}));
        assert!(changed.describe("result").is_none());
        assert_eq!(storable_text("x\0y"), ("x\u{FFFD}y".to_string(), true));
        assert_eq!(storable_text("xy"), ("xy".to_string(), false));
    }
}
