//! Redaction of secret-looking values in job arguments, so that tokens and passwords in
//! payloads never reach logs, events or read-only views (design.md, Interfaces).

use crate::JobArgs;
use serde_json::Value;

/// Replacement text for a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Key fragments that mark a value as secret (matched case-insensitively, anywhere in the key).
const SECRET_FRAGMENTS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "authorization",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "cookie",
];

/// True when a key's name says its value is secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_FRAGMENTS.iter().any(|f| k.contains(f))
}

/// A copy of `value` with every value under a secret-looking key replaced, at any depth.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) {
                        Value::String(REDACTED.into())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// Shortest secret value that is searched for in output: shorter ones would blank out
/// ordinary words and numbers, and say little on their own.
pub const MIN_SECRET_LEN: usize = 4;

/// The values under secret-looking keys of `args` (every scalar below such a key), as text,
/// longest first, each also in its JSON-escaped spelling when that differs. These are what
/// [`redact_text`] removes from a job's output.
pub fn secret_values(args: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_secrets(args, false, &mut found);
    let escaped: Vec<String> = found
        .iter()
        .filter_map(|s| {
            let json = serde_json::to_string(s).ok()?;
            let inner = &json[1..json.len() - 1];
            (inner != s).then(|| inner.to_string())
        })
        .collect();
    found.extend(escaped);
    found.retain(|s| s.chars().count() >= MIN_SECRET_LEN);
    found.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    found.dedup();
    found
}

/// [`secret_values`] of a job's args as they travel (text). Most args have no secret-looking
/// key, and text that spells none holds none, so the tree is built only when the text may:
/// it contains a key fragment (ignoring ASCII case, as [`is_secret_key`] does) or an escape
/// (which could spell a fragment's letter).
pub fn secret_values_in(args: &JobArgs) -> Vec<String> {
    let text = args.get().as_bytes();
    let may_hold = text.contains(&b'\\')
        || SECRET_FRAGMENTS.iter().any(|f| {
            text.windows(f.len())
                .any(|w| w.eq_ignore_ascii_case(f.as_bytes()))
        });
    if may_hold {
        secret_values(&args.to_value())
    } else {
        Vec::new()
    }
}

fn collect_secrets(value: &Value, secret: bool, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                collect_secrets(v, secret || is_secret_key(k), out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_secrets(v, secret, out)),
        Value::String(s) if secret => out.push(s.clone()),
        Value::Number(n) if secret => out.push(n.to_string()),
        _ => {}
    }
}

/// `text` with every occurrence of each secret replaced by [`REDACTED`].
pub fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

/// A handler's output (a result) with the job's secret values removed from every string and
/// key. The output's own keys are left alone (a result may hold a token the handler made on
/// purpose); views for non-admins redact those as they redact args.
pub fn redact_output(value: &Value, secrets: &[String]) -> Value {
    match value.clone() {
        Value::String(s) => Value::String(redact_text(&s, secrets)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| redact_output(v, secrets)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (redact_text(k, secrets), redact_output(v, secrets)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_of_the_args_are_removed_from_output() {
        let args = json!({
            "user": "ada",
            "password": "hunter2!",
            "auth": {"api_key": "k\"ey-123", "nested": {"token": 987654}},
            "pin": "12"
        });
        let secrets = secret_values(&args);
        assert!(secrets.contains(&"hunter2!".to_string()));
        assert!(secrets.contains(&"987654".to_string()));
        assert!(secrets.contains(&"k\\\"ey-123".to_string()), "{secrets:?}");
        let stderr = "cannot log in with {'user': 'ada', 'password': 'hunter2!'} token=987654";
        let out = redact_text(stderr, &secrets);
        assert_eq!(
            out,
            "cannot log in with {'user': 'ada', 'password': '[redacted]'} token=[redacted]"
        );
        let json_echo = serde_json::to_string(&args).unwrap();
        let out = redact_text(&json_echo, &secrets);
        assert!(
            !out.contains("hunter2") && !out.contains("ey-123") && !out.contains("987654"),
            "{out}"
        );
        let result = json!({"echo": "pw was hunter2!", "session_token": "abc", "n": [1, "987654"]});
        assert_eq!(
            redact_output(&result, &secrets),
            json!({"echo": "pw was [redacted]", "session_token": "abc", "n": [1, REDACTED]})
        );
        // Short values are not hunted for in text.
        assert!(secret_values(&json!({"password": "abc"})).is_empty());
    }

    #[test]
    fn secrets_are_found_in_the_text_as_in_the_tree() {
        for args in [
            json!({"user": "ada", "n": 1}),
            json!({"PassWord": "hunter2!"}),
            json!({"a": {"x_Api_Key": ["k-1234", 98765]}}),
            json!({"to\u{6b}en": "spelled-plainly"}),
            json!({"quote\"d": "tokenish but not a key", "ok": "x"}),
        ] {
            let text = JobArgs::from_value(&args);
            assert_eq!(secret_values_in(&text), secret_values(&args), "{args}");
        }
        // An escape that spells a fragment's letter is still found.
        let escaped = JobArgs::from_json(r#"{"to\u006ben": "abcd-1234"}"#.into()).unwrap();
        assert_eq!(secret_values_in(&escaped), vec!["abcd-1234".to_string()]);
    }

    #[test]
    fn redacts_nested_secret_keys_and_keeps_the_rest() {
        let args = json!({
            "to": "a@example.com",
            "access_token": "abc",
            "nested": {"Password": "p", "list": [{"client_secret": 1}, {"ok": 2}]},
            "Authorization": {"scheme": "Bearer"}
        });
        assert_eq!(
            redact(&args),
            json!({
                "to": "a@example.com",
                "access_token": REDACTED,
                "nested": {"Password": REDACTED, "list": [{"client_secret": REDACTED}, {"ok": 2}]},
                "Authorization": REDACTED
            })
        );
    }
}
