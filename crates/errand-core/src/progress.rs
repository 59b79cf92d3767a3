//! A running job's progress report: what a handler says about how far it has come, written
//! on the job so operators see it (the job's `progress` and `progress_at`).
//!
//! The value is the handler's to choose, any JSON value; the documented convention is
//! `{"done": 40, "total": 100, "message": "..."}`. Its one limit, [`MAX_PROGRESS_BYTES`] of
//! compact JSON, and the storability rules of [`crate::storable`] (no NUL, bounded nesting)
//! are checked here, once, by [`Progress::new`]: a [`Progress`] cannot be built otherwise, so
//! every path (the Rust context, the HTTP API, Python) refuses the same values with the same
//! message, and a store is never handed one it should not hold. Refusing is safe here, unlike
//! a result: a progress report that is not written costs the attempt nothing.

use crate::storable::{check_json, depth, MAX_DEPTH};
use serde::Serialize;
use serde_json::Value;

/// The largest progress value, in bytes of compact JSON (`serde_json::to_string`): 8 KiB.
pub const MAX_PROGRESS_BYTES: usize = 8 * 1024;

/// Why a progress value was refused; prints as "`progress` <problem>".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`progress` {problem}")]
pub struct ProgressError {
    /// What is wrong, naming the limit it is beyond.
    pub problem: String,
}

fn refuse(problem: impl Into<String>) -> ProgressError {
    ProgressError {
        problem: problem.into(),
    }
}

/// A progress value that passed the checks, with its compact JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    value: Value,
    json: String,
}

impl Progress {
    /// Checks `value`: at most [`MAX_PROGRESS_BYTES`] as compact JSON, no NUL character in a
    /// string or key, nested at most [`MAX_DEPTH`] levels. The error names the limit.
    pub fn new(value: Value) -> Result<Progress, ProgressError> {
        // Depth first: it is counted without recursion, and a value within it serialises
        // without deep recursion.
        if depth(&value) > MAX_DEPTH {
            return Err(refuse(format!(
                "nests arrays and objects deeper than {MAX_DEPTH} levels"
            )));
        }
        // Serialising a `Value` cannot fail (its map keys are strings).
        let json = serde_json::to_string(&value).unwrap_or_else(|_| "null".into());
        if json.len() > MAX_PROGRESS_BYTES {
            return Err(refuse(format!(
                "is {} bytes as compact JSON; the limit is {MAX_PROGRESS_BYTES} bytes (8 KiB)",
                json.len()
            )));
        }
        check_json("progress", &value).map_err(|e| refuse(e.problem))?;
        Ok(Progress { value, json })
    }

    /// [`Progress::new`] of any serialisable value; a value that does not serialise to JSON
    /// (a map with non-string keys, a failing `Serialize`) is refused naming `progress`.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Result<Progress, ProgressError> {
        let value = serde_json::to_value(value)
            .map_err(|e| refuse(format!("could not be serialised to JSON: {e}")))?;
        Progress::new(value)
    }

    /// The value as the handler gave it.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Its compact JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The value, taken out.
    pub fn into_value(self) -> Value {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A string value whose compact JSON (the quotes included) is exactly `bytes` long.
    fn string_of(bytes: usize) -> Value {
        Value::String("x".repeat(bytes - 2))
    }

    #[test]
    fn the_convention_and_any_other_json_value_are_accepted() {
        let p = Progress::new(json!({"done": 40, "total": 100, "message": "copying"})).unwrap();
        assert_eq!(p.json(), r#"{"done":40,"message":"copying","total":100}"#);
        for v in [json!(null), json!(0.5), json!("half"), json!([1, 2])] {
            assert_eq!(Progress::new(v.clone()).unwrap().into_value(), v);
        }
    }

    #[test]
    fn the_limit_is_on_compact_json_bytes() {
        let at = Progress::new(string_of(MAX_PROGRESS_BYTES)).unwrap();
        assert_eq!(at.json().len(), MAX_PROGRESS_BYTES);
        let e = Progress::new(string_of(MAX_PROGRESS_BYTES + 1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`progress` is 8193 bytes as compact JSON; the limit is 8192 bytes (8 KiB)"
        );
        // Multi-byte characters count as their UTF-8 bytes.
        let e = Progress::new(Value::String("é".repeat(MAX_PROGRESS_BYTES / 2))).unwrap_err();
        assert!(e.problem.contains("8194 bytes"), "{}", e.problem);
    }

    #[test]
    fn typed_values_are_serialised_and_what_does_not_serialise_is_refused() {
        #[derive(Serialize)]
        struct Step {
            done: u32,
            total: u32,
        }
        let p = Progress::of(&Step { done: 1, total: 3 }).unwrap();
        assert_eq!(p.value(), &json!({"done": 1, "total": 3}));
        let mut by_pair = std::collections::HashMap::new();
        by_pair.insert((1, 2), "a");
        let e = Progress::of(&by_pair).unwrap_err();
        assert!(
            e.problem.starts_with("could not be serialised to JSON: "),
            "{}",
            e.problem
        );
    }

    #[test]
    fn what_a_store_cannot_hold_is_refused_with_its_path() {
        let e = Progress::new(json!({"step": "a\u{0}b"})).unwrap_err();
        assert!(e.problem.contains("progress.step"), "{}", e.problem);
        let mut deep = json!(1);
        for _ in 0..=MAX_DEPTH {
            deep = json!([deep]);
        }
        let e = Progress::new(deep).unwrap_err();
        assert!(e.problem.contains("deeper than 100"), "{}", e.problem);
    }
}
