//! The shape of `errand.toml` as serde types: which tables exist and which keys each may
//! hold (`deny_unknown_fields`), read with `serde_path_to_error` so that an unknown key or a
//! value where a table belongs is named by its path, with a suggestion for a misspelt key.
//! Leaves stay TOML values: `read`, `tasks` and `server` check each one's type and range with
//! messages of their own. Also here: where a key path is in the file ([`locate`]), so that
//! every error about the file names its line and column.

use errand_core::settings::nearest;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use toml::Value;

/// The file's top level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawConfig {
    pub database_url: Option<Value>,
    pub database_tls: Option<RawDatabaseTls>,
    pub http: Option<RawHttpDefaults>,
    pub workers: Option<RawWorkers>,
    pub limits: Option<RawLimits>,
    pub queues: Option<Tables<RawQueue>>,
    pub tasks: Option<Tables<RawTask>>,
    pub server: Option<RawServer>,
    pub scheduler: Option<RawScheduler>,
    pub schedules: Option<Tables<errand::ScheduleSpec>>,
    pub retention: Option<RawRetention>,
}

/// `[database_tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawDatabaseTls {
    pub mode: Option<Value>,
    pub ca_file: Option<Value>,
    pub cert_file: Option<Value>,
    pub key_file: Option<Value>,
}

/// `[workers]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawWorkers {
    pub enabled: Option<Value>,
    pub lease: Option<Value>,
    pub poll_interval: Option<Value>,
    pub shutdown_grace: Option<Value>,
    pub cancel_grace: Option<Value>,
}

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawLimits {
    pub max_args_bytes: Option<Value>,
}

/// `[queues.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawQueue {
    pub concurrency: Option<Value>,
    pub global_concurrency: Option<Value>,
    pub key_concurrency: Option<Value>,
    pub rate_limit: Option<Value>,
}

/// `[tasks.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawTask {
    pub queue: Option<Value>,
    pub command: Option<Value>,
    pub http: Option<RawHttp>,
    pub remote: Option<Value>,
    pub timeout: Option<Value>,
    pub max_attempts: Option<Value>,
    pub backoff: Option<RawBackoff>,
    pub concurrency_key: Option<Value>,
    pub key_concurrency: Option<Value>,
}

/// `[tasks.NAME] http`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawHttp {
    pub url: Option<Value>,
    pub headers: Option<Value>,
    pub ca_file: Option<Value>,
    pub insecure_skip_verify: Option<Value>,
}

/// `[http]`: what every HTTP task shares.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawHttpDefaults {
    pub ca_file: Option<Value>,
}

/// `[tasks.NAME] backoff`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawBackoff {
    pub base: Option<Value>,
    pub cap: Option<Value>,
    pub jitter: Option<Value>,
}

/// `[server]`. `tokens` is an array of tables in the file and a `role:token,...` string from
/// the environment: read by `server`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawServer {
    pub enabled: Option<Value>,
    pub listen: Option<Value>,
    pub max_body_bytes: Option<Value>,
    pub tokens: Option<Value>,
    pub header_read_timeout: Option<Value>,
    pub body_read_timeout: Option<Value>,
    pub keep_alive_timeout: Option<Value>,
    pub max_connections: Option<Value>,
}

/// `[[server.tokens]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawToken {
    pub name: Option<Value>,
    pub token: Option<Value>,
    pub role: Option<Value>,
}

/// `[scheduler]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawScheduler {
    pub enabled: Option<Value>,
}

/// `[retention]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawRetention {
    pub enabled: Option<Value>,
    pub succeeded: Option<Value>,
    pub cancelled: Option<Value>,
    pub failed: Option<Value>,
    pub interval: Option<Value>,
}

/// A table of named tables (`[tasks.NAME]`, `[queues.NAME]`, `[schedules.NAME]`), in name
/// order.
#[derive(Debug)]
pub(super) struct Tables<T>(pub BTreeMap<String, T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Tables<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Named<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Named<T> {
            type Value = Tables<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tables<T>, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((name, value)) = map.next_entry::<String, T>()? {
                    out.insert(name, value);
                }
                Ok(Tables(out))
            }
        }
        deserializer.deserialize_map(Named(PhantomData))
    }
}

/// A shape error: the path of the table (or value) it is about, the path to point at in the
/// file (the unknown key itself, for an unknown key), and the problem.
pub(super) struct ShapeError {
    pub path: Vec<String>,
    pub at: Vec<String>,
    pub problem: String,
}

/// Reads `value` as `T`, naming what is wrong and where (`path` is where `value` sits).
pub(super) fn shape<T: serde::de::DeserializeOwned>(
    path: &[String],
    value: Value,
) -> Result<T, ShapeError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut at: Vec<String> = path.to_vec();
        for segment in e.path() {
            match segment {
                serde_path_to_error::Segment::Map { key } => at.push(key.clone()),
                serde_path_to_error::Segment::Seq { index } => match at.last_mut() {
                    Some(last) => last.push_str(&format!("[{index}]")),
                    None => at.push(format!("[{index}]")),
                },
                _ => {}
            }
        }
        let message = e.inner().message().trim_end().to_string();
        match unknown_field(&message) {
            Some((unknown, expected)) => {
                // The path may or may not end at the unknown key: the error is the table's.
                if at.last() == Some(&unknown) {
                    at.pop();
                }
                let mut key_at = at.clone();
                key_at.push(unknown.clone());
                let hint = match nearest(&unknown, expected.iter().map(String::as_str)) {
                    Some(k) => format!(" (did you mean \"{k}\"?)"),
                    None => String::new(),
                };
                ShapeError {
                    path: at,
                    at: key_at,
                    problem: format!(
                        "unknown key \"{unknown}\"{hint}; expected one of: {}",
                        expected.join(", ")
                    ),
                }
            }
            None => ShapeError {
                path: at.clone(),
                at,
                problem: invalid_type(&message).unwrap_or(message),
            },
        }
    })
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`", or "there are no
/// fields") as the unknown name and the expected ones.
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let expected = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((unknown.to_string(), expected))
}

/// serde's "invalid type: integer `4`, expected a table" as "expected a table, got integer
/// `4`": what was expected first, as every other message of the reader reads.
fn invalid_type(message: &str) -> Option<String> {
    let rest = message.strip_prefix("invalid type: ")?;
    let (got, expected) = rest.rsplit_once(", expected ")?;
    Some(format!("expected {expected}, got {got}"))
}

/// The line and column (from 1) of the key `path` in `text`: of its deepest part found (a
/// missing key points at its table). `None` when the text does not parse.
pub(super) fn locate(text: &str, path: &[String]) -> Option<(usize, usize)> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut span = None;
    let mut table = Some(root.get_ref());
    let mut array: Option<&toml::de::DeArray<'_>> = None;
    for part in path {
        let (name, indices) = split_indices(part);
        let found = if name.is_empty() {
            None
        } else {
            table.and_then(|t| t.get_key_value(name))
        };
        let Some((key, mut value)) = found else {
            // An index straight after an array (`tokens[0]` as its own part).
            let Some(items) = array else { break };
            let Some(item) = indices.first().and_then(|i| items.get(*i)) else {
                break;
            };
            span = Some(item.span());
            table = match item.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
            array = None;
            continue;
        };
        span = Some(key.span());
        for i in indices {
            let DeValue::Array(items) = value.get_ref() else {
                break;
            };
            let Some(item) = items.get(i) else { break };
            span = Some(item.span());
            value = item;
        }
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(a)),
            _ => (None, None),
        };
    }
    Some(position(text, span?.start))
}

/// The line and column (from 1, the column in characters) of byte `offset` of `text`.
pub(super) fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// `tokens[0][1]` as `tokens` and `[0, 1]`.
pub(super) fn split_indices(part: &str) -> (&str, Vec<usize>) {
    let (name, mut rest) = match part.find('[') {
        Some(i) if part.ends_with(']') => (&part[..i], &part[i..]),
        _ => return (part, Vec::new()),
    };
    let mut indices = Vec::new();
    while let Some(inner) = rest.strip_prefix('[') {
        let Some((n, tail)) = inner.split_once(']') else {
            return (part, Vec::new());
        };
        match n.parse() {
            Ok(i) => indices.push(i),
            Err(_) => return (part, Vec::new()),
        }
        rest = tail;
    }
    (name, indices)
}

/// A dotted key path as written in messages (`tasks.t.http.headers."Bad Header"`,
/// `server.tokens[0]`) back into its parts.
pub(super) fn parts(dotted: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in dotted.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !current.is_empty() || !out.is_empty() {
        out.push(current);
    }
    out
}

/// The keys a table of shape `T` may hold, as its serde definition names them (for the tests
/// that keep the README and the environment's key tables in step with the shape).
#[cfg(test)]
pub(super) fn keys_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::value::Error;
    use serde::de::Error as _;
    /// A deserializer that only records the fields a struct asks for.
    struct FieldNames<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for FieldNames<'_> {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}
