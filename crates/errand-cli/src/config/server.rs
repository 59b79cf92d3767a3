//! `[server]`: the HTTP API's address, tokens and body limit, and how its connections are
//! held (header, body and idle timeouts, the connection cap; see `errand_server::serve`).

use super::keys::Kind;
use super::raw::{RawServer, RawToken};
use super::read::{type_name, Reader};
use super::ConfigError;
use errand_runtime::ServerSettings;
use errand_server::{ApiToken, Role, MAX_CONNECTIONS_LIMIT};
use std::time::Duration;
use toml::Value;

/// The shortest timeout `[server]` accepts: shorter would cut off clients on a busy network.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest: a day (longer is no timeout at all in practice).
const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// `tokens` is an array of tables in the file, or a `role:token,...` string from the
/// environment (`ERRAND_SERVER_TOKENS`).
pub(super) const SERVER_KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("listen", Kind::Str),
    ("max_body_bytes", Kind::Int),
    ("tokens", Kind::Str),
    ("header_read_timeout", Kind::Duration),
    ("body_read_timeout", Kind::Duration),
    ("keep_alive_timeout", Kind::Duration),
    ("max_connections", Kind::Int),
];

impl Reader<'_> {
    pub(super) fn server(&self, t: RawServer) -> Result<ServerSettings, ConfigError> {
        let mut s = ServerSettings::default();
        if let Some(v) = t.enabled {
            s.enabled = self.bool("server.enabled", v)?;
        }
        if let Some(v) = t.listen {
            let raw = self.string("server.listen", v)?;
            s.listen = raw.trim().parse().map_err(|_| {
                self.error(
                    "server.listen",
                    format!(
                        "expected an IP address and port such as \"127.0.0.1:7070\", got \"{raw}\""
                    ),
                )
            })?;
        }
        if let Some(v) = t.max_body_bytes {
            s.max_body_bytes = self.int("server.max_body_bytes", v, 1024, i64::MAX)? as usize;
        }
        if let Some(v) = t.tokens {
            s.tokens = self.tokens(v)?;
        }
        let c = &mut s.connections;
        for (key, value, slot) in [
            (
                "header_read_timeout",
                t.header_read_timeout,
                &mut c.header_read_timeout,
            ),
            (
                "body_read_timeout",
                t.body_read_timeout,
                &mut c.body_read_timeout,
            ),
            (
                "keep_alive_timeout",
                t.keep_alive_timeout,
                &mut c.keep_alive_timeout,
            ),
        ] {
            if let Some(v) = value {
                let path = format!("server.{key}");
                let d = self.duration(&path, v)?;
                if d < MIN_TIMEOUT || d > MAX_TIMEOUT {
                    return Err(self.error(
                        &path,
                        format!("must be between {MIN_TIMEOUT:?} and 1d, got {d:?}"),
                    ));
                }
                *slot = d;
            }
        }
        if let Some(v) = t.max_connections {
            let limit = MAX_CONNECTIONS_LIMIT as i64;
            c.max_connections = self.int("server.max_connections", v, 1, limit)? as usize;
        }
        Ok(s)
    }

    fn tokens(&self, v: Value) -> Result<Vec<ApiToken>, ConfigError> {
        let key = "server.tokens";
        let token = |i: usize, name: Option<String>, token: String, role: &str| {
            let role: Role = role
                .trim()
                .parse()
                .map_err(|e: errand_server::UnknownRole| {
                    self.error(key, format!("token {i}: {e}"))
                })?;
            let token = token.trim().to_string();
            if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(self.error(
                    key,
                    format!("token {i}: the token must be non-empty, without spaces"),
                ));
            }
            Ok(ApiToken {
                name: name.unwrap_or_else(|| format!("{role}-{i}")),
                token,
                role,
            })
        };
        match v {
            // From the environment: `role:token,role:token`.
            Value::String(list) => list
                .split(',')
                .filter(|item| !item.trim().is_empty())
                .enumerate()
                .map(|(i, item)| match item.split_once(':') {
                    Some((role, secret)) => token(i, None, secret.to_string(), role),
                    None => Err(self.error(
                        key,
                        format!("token {i}: expected role:token, e.g. admin:s3cret"),
                    )),
                })
                .collect(),
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let path = format!("server.tokens[{i}]");
                    let t: RawToken =
                        self.shape(&["server".into(), format!("tokens[{i}]")], item)?;
                    let name = t
                        .name
                        .map(|v| self.string(&format!("{path}.name"), v))
                        .transpose()?;
                    let secret = match t.token {
                        Some(v) => self.string(&format!("{path}.token"), v)?,
                        None => return Err(self.error(&path, "missing key \"token\"")),
                    };
                    let role = match t.role {
                        Some(v) => self.string(&format!("{path}.role"), v)?,
                        None => {
                            return Err(self.error(
                                &path,
                                "missing key \"role\" (read, enqueue, worker or admin)",
                            ))
                        }
                    };
                    token(i, name, secret, &role)
                })
                .collect(),
            other => Err(self.error(
                key,
                format!(
                    "expected [[server.tokens]] tables with token and role, got {}",
                    type_name(&other)
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use errand_server::ServeOptions;
    use std::collections::HashMap;

    fn read(text: &str, env: &[(&str, &str)]) -> Result<ServerSettings, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse("errand.toml", Some(text), &move |name| {
            env.get(name).cloned()
        })
        .map(|c| c.server)
        .map_err(|e| {
            ConfigError {
                position: None,
                ..e
            }
            .to_string()
        })
    }

    #[test]
    fn connection_limits_from_the_file_and_the_environment() {
        let s = read("", &[]).unwrap();
        assert_eq!(s.connections, ServeOptions::default());
        let text = "[server]\nheader_read_timeout = \"2s\"\nbody_read_timeout = \"5s\"\n\
                    keep_alive_timeout = \"1m\"\nmax_connections = 300\n";
        let s = read(text, &[]).unwrap();
        assert_eq!(
            s.connections,
            ServeOptions {
                header_read_timeout: Duration::from_secs(2),
                body_read_timeout: Duration::from_secs(5),
                keep_alive_timeout: Duration::from_secs(60),
                max_connections: 300,
            }
        );
        let s = read(
            text,
            &[
                ("ERRAND_SERVER_HEADER_READ_TIMEOUT", "500ms"),
                ("ERRAND_SERVER_BODY_READ_TIMEOUT", "1m"),
                ("ERRAND_SERVER_KEEP_ALIVE_TIMEOUT", "3s"),
                ("ERRAND_SERVER_MAX_CONNECTIONS", "5000"),
            ],
        )
        .unwrap();
        assert_eq!(
            s.connections.header_read_timeout,
            Duration::from_millis(500)
        );
        assert_eq!(s.connections.body_read_timeout, Duration::from_secs(60));
        assert_eq!(s.connections.keep_alive_timeout, Duration::from_secs(3));
        assert_eq!(s.connections.max_connections, 5000);
    }

    #[test]
    fn bad_connection_limits_name_the_key() {
        for (text, env, expected) in [
            ("[server]\nheader_read_timeout = \"0\"", None, "errand.toml: server.header_read_timeout: must be between 100ms and 1d, got 0ns"),
            ("[server]\nbody_read_timeout = \"2d\"", None, "errand.toml: server.body_read_timeout: must be between 100ms and 1d"),
            ("[server]\nkeep_alive_timeout = \"soon\"", None, "errand.toml: server.keep_alive_timeout: invalid duration `soon`"),
            ("[server]\nmax_connections = 0", None, "errand.toml: server.max_connections: must be at least 1, got 0"),
            ("", Some(("ERRAND_SERVER_MAX_CONNECTIONS", "lots")), "ERRAND_SERVER_MAX_CONNECTIONS: server.max_connections: expected an integer, got \"lots\""),
            ("", Some(("ERRAND_SERVER_HEADER_READ_TIMEOUT", "1ms")), "ERRAND_SERVER_HEADER_READ_TIMEOUT: server.header_read_timeout: must be between 100ms and 1d, got 1ms"),
        ] {
            let env: Vec<(&str, &str)> = env.into_iter().collect();
            let e = read(text, &env).unwrap_err();
            assert!(e.starts_with(expected), "for {text:?} {env:?}\n  got: {e}\n want: {expected}…");
        }
    }
}
