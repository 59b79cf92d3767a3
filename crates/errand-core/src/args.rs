//! A job's arguments as they travel: JSON text, encoded once where the job is described and
//! decoded once by the handler that runs it.
//!
//! [`JobArgs`] holds the text behind an `Arc` (cheap to copy with the job). The interfaces
//! encode it once: a typed task with [`JobArgs::encode`], a JSON value from the HTTP API, the
//! CLI, a schedule or [`crate::NewJob::new`] with [`JobArgs::from_value`]; the stores bind the
//! text as it is and hand it back as text from a claim ([`JobArgs::from_json`] checks only its
//! syntax); the handler decodes it once, into its own type ([`JobArgs::decode`]), or passes the
//! text on (a command's stdin, an HTTP task's body, a remote worker's claim). The rules for
//! what args may hold (an object, the size limit, depth and NUL) are checked once, by
//! [`crate::NewJob::validate`], on the text ([`crate::storable::check_json_text`]).
//!
//! Readers that need a tree (the views, which redact secret-looking keys) ask for one with
//! [`JobArgs::to_value`]; a `Value` made from the text compares and prints as before, so the
//! public JSON shape of a job does not depend on how its args were encoded.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// A job's arguments: JSON text, syntactically valid, shared.
///
/// Compares by meaning (two texts that parse to the same value are equal), so a job read back
/// from PostgreSQL (which prints `{"a": 1}`) equals the one that was written (`{"a":1}`).
#[derive(Clone)]
pub struct JobArgs(Arc<RawValue>);

impl JobArgs {
    /// `{}`.
    pub fn empty() -> JobArgs {
        JobArgs::from_raw(RawValue::from_string("{}".into()).expect("`{}` is JSON"))
    }

    /// The compact text of `value` (keys in the value's order, as its `Value` prints).
    pub fn from_value(value: &Value) -> JobArgs {
        // A `Value` always serializes (its keys are strings).
        JobArgs::encode(value).unwrap_or_else(|_| JobArgs::empty())
    }

    /// Encodes `value` (a typed task) to compact JSON text, once.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<JobArgs, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(JobArgs::from_raw)
    }

    /// JSON text as a store holds it, kept as it is; only its syntax is checked.
    pub fn from_json(text: String) -> Result<JobArgs, serde_json::Error> {
        RawValue::from_string(text).map(JobArgs::from_raw)
    }

    /// Already-checked JSON text.
    pub fn from_raw(raw: Box<RawValue>) -> JobArgs {
        JobArgs(Arc::from(raw))
    }

    /// The JSON text. May hold secrets: do not log it.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The JSON text as serde_json's raw value (serializes as the text itself).
    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }

    /// Decodes the text into `T`: the one decode of a job's args on its way to a handler.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.get())
    }

    /// The args as a tree, for readers that walk them (views, redaction). Text that does not
    /// parse as a tree (deeper than serde_json reads, only possible for rows not written by
    /// Errand) comes back as [`JobArgs::UNREADABLE`], never as the text itself: redaction
    /// could not look inside it, so it may hold secrets.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.get()).unwrap_or_else(|_| Value::String(Self::UNREADABLE.into()))
    }

    /// What [`JobArgs::to_value`] shows for args it cannot read as a tree.
    pub const UNREADABLE: &'static str = "[args not shown: nested too deeply to read]";
}

impl Default for JobArgs {
    fn default() -> JobArgs {
        JobArgs::empty()
    }
}

impl From<Value> for JobArgs {
    fn from(value: Value) -> JobArgs {
        JobArgs::from_value(&value)
    }
}

impl From<&Value> for JobArgs {
    fn from(value: &Value) -> JobArgs {
        JobArgs::from_value(value)
    }
}

impl PartialEq for JobArgs {
    fn eq(&self, other: &JobArgs) -> bool {
        if self.get() == other.get() {
            return true;
        }
        let tree = |a: &JobArgs| serde_json::from_str::<Value>(a.get()).ok();
        matches!((tree(self), tree(other)), (Some(a), Some(b)) if a == b)
    }
}

impl PartialEq<Value> for JobArgs {
    fn eq(&self, other: &Value) -> bool {
        self.to_value() == *other
    }
}

impl fmt::Debug for JobArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobArgs({})", self.get())
    }
}

impl fmt::Display for JobArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// Serializes as the JSON it holds (serde_json writes the text itself).
impl Serialize for JobArgs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Reads any JSON value and keeps its compact text: whitespace goes, and a key given twice
/// keeps its last value, as a `Value` reads it (whether it is an object is checked by
/// validation, which names the field).
impl<'de> Deserialize<'de> for JobArgs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JobArgs, D::Error> {
        Value::deserialize(deserializer).map(|v| JobArgs::from_value(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Email {
        to: String,
        n: u32,
    }

    #[test]
    fn encoded_once_and_decoded_once() {
        let args = JobArgs::encode(&Email {
            to: "a@b".into(),
            n: 3,
        })
        .unwrap();
        assert_eq!(args.get(), r#"{"to":"a@b","n":3}"#);
        let back: Email = args.decode().unwrap();
        assert_eq!(back.n, 3);
        // Serializing embeds the text as it is.
        #[derive(Serialize)]
        struct Claimed<'a> {
            args: &'a JobArgs,
        }
        assert_eq!(
            serde_json::to_string(&Claimed { args: &args }).unwrap(),
            r#"{"args":{"to":"a@b","n":3}}"#
        );
    }

    #[test]
    fn compares_by_meaning() {
        let stored = JobArgs::from_json(r#"{"n": 3, "to": "a@b"}"#.into()).unwrap();
        let written = JobArgs::from_value(&json!({"to": "a@b", "n": 3}));
        assert_eq!(stored, written);
        assert_eq!(stored, json!({"to": "a@b", "n": 3}));
        assert_ne!(stored, JobArgs::empty());
        assert!(JobArgs::from_json("{".into()).is_err());
    }

    #[test]
    fn deserializing_normalizes_like_a_value() {
        let args: JobArgs =
            serde_json::from_str(r#" { "b" : 1 , "a" : [ 1 , 2 ], "b": 2 } "#).unwrap();
        assert_eq!(args.get(), r#"{"a":[1,2],"b":2}"#);
        assert_eq!(JobArgs::default().get(), "{}");
    }

    #[test]
    fn text_too_deep_for_a_tree_is_not_shown() {
        // A secret inside args too deep to read as a tree: redaction cannot see it, so the
        // text is never shown.
        let deep = format!(
            r#"{{"password":"hunter2","x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let args = JobArgs::from_json(deep.clone()).unwrap();
        assert_eq!(args.to_value(), Value::String(JobArgs::UNREADABLE.into()));
        assert!(!args.to_value().to_string().contains("hunter2"));
        // Two different unreadable texts are not equal.
        let other = JobArgs::from_json(deep.replace("hunter2", "other")).unwrap();
        assert_ne!(args, other);
        assert_eq!(args, JobArgs::from_json(deep).unwrap());
    }
}
