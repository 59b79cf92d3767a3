//! What is stored of a handler's output: the one rule applied to every result and error text
//! before it reaches a store, whichever path reported it (the in-process executor, a command's
//! stderr, an HTTP task's response, a remote worker's report).
//!
//! Two things happen, in this order:
//! 1. the job's secrets are removed: the values under secret-looking keys of its args, wherever
//!    they reappear in the output (a program that prints its args), see [`crate::redact`];
//! 2. what a store cannot hold is made storable ([`crate::storable`]), and the record says so:
//!    appended to an error's text, or returned as a note for the job's events.
//!
//! Nothing is refused here: output that cannot be stored as-is is changed, never dropped, so
//! the attempt is always recorded.

use crate::redact::{redact_output, redact_text, secret_values_in};
use crate::storable::{storable_json, storable_text};
use crate::JobArgs;
use serde_json::Value;

/// Longest error text kept, in bytes (a stack trace or stderr tail fits; a flood does not).
pub const MAX_ERROR_BYTES: usize = 16 * 1024;

/// The error text to store for an attempt of a job with `args`.
pub fn recorded_error(message: &str, args: &JobArgs) -> String {
    let secrets = secret_values_in(args);
    let redacted = redact_text(message, &secrets);
    let (mut text, replaced) = storable_text(&redacted);
    if text.len() > MAX_ERROR_BYTES {
        let mut cut = MAX_ERROR_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" [truncated]");
    }
    if replaced {
        text.push_str(" [NUL characters (U+0000) in this message were replaced by U+FFFD]");
    }
    text
}

/// The result to store for a successful attempt of a job with `args`, and a note to record
/// when it had to be changed to be stored.
pub fn recorded_result(result: Option<&Value>, args: &JobArgs) -> (Option<Value>, Option<String>) {
    let Some(result) = result else {
        return (None, None);
    };
    let secrets = secret_values_in(args);
    let redacted = redact_output(result, &secrets);
    let (stored, change) = storable_json(&redacted);
    (Some(stored), change.describe("result"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_lose_secrets_and_nuls_and_say_so() {
        let args = JobArgs::from_value(&json!({"password": "hunter2!"}));
        let e = recorded_error("bad login hunter2!\0 end", &args);
        assert_eq!(
            e,
            "bad login [redacted]\u{FFFD} end [NUL characters (U+0000) in this message were replaced by U+FFFD]"
        );
        assert_eq!(recorded_error("plain", &args), "plain");
        let long = "é".repeat(MAX_ERROR_BYTES);
        let e = recorded_error(&long, &JobArgs::empty());
        assert!(e.ends_with(" [truncated]") && e.len() <= MAX_ERROR_BYTES + 12);
    }

    #[test]
    fn results_lose_secrets_and_nuls_with_a_note() {
        let args = JobArgs::from_value(&json!({"api_key": "abcd-1234"}));
        let (r, note) = recorded_result(Some(&json!({"s": "\u{0}", "echo": "abcd-1234"})), &args);
        assert_eq!(r, Some(json!({"s": "\u{FFFD}", "echo": "[redacted]"})));
        assert!(note.unwrap().contains("NUL"));
        let (r, note) = recorded_result(Some(&json!({"ok": true})), &args);
        assert_eq!((r, note), (Some(json!({"ok": true})), None));
        assert_eq!(recorded_result(None, &args), (None, None));
    }
}
