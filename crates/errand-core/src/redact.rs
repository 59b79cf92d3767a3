//! Redaction of secret-looking values in job arguments, so that tokens and passwords in
//! payloads never reach logs, events or read-only views (SPEC section 8).

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
