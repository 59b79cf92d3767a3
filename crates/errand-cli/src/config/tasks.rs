//! `[tasks.NAME]`: the task's queue, its handler (a command, an HTTP endpoint, or `remote`),
//! timeout, attempt budget and backoff, each checked with the key named.

use super::raw::{RawBackoff, RawHttp, RawTask};
use super::read::{type_name, Reader};
use super::{ConfigError, Handler, TaskDefinition, DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT};
use errand::{Backoff, Limits, NewJob};
use errand_core::validate::validate_queue_name;
use errand_runtime::HttpTls;
use std::collections::BTreeMap;
use toml::Value;

impl Reader<'_> {
    pub(super) fn task(&self, name: &str, t: RawTask) -> Result<TaskDefinition, ConfigError> {
        let path = Self::child("tasks", name);
        if let Err(e) = NewJob::new(name, serde_json::json!({})).validate(&Limits::default()) {
            return Err(self.error(&path, format!("invalid task name: {}", e.problem)));
        }
        let key = |k: &str| Self::child(&path, k);
        let queue = match t.queue {
            Some(v) => {
                let q = self.string(&key("queue"), v)?;
                if let Err(e) = validate_queue_name(&q) {
                    return Err(self.error(&key("queue"), e.problem));
                }
                q
            }
            None => "default".to_string(),
        };
        let remote = match t.remote {
            Some(v) => self.bool(&key("remote"), v)?,
            None => false,
        };
        let handler = match (t.command, t.http, remote) {
            (Some(cmd), None, false) => self.command(&key("command"), cmd)?,
            (None, Some(http), false) => self.http(&key("http"), http)?,
            (None, None, true) => Handler::Remote,
            (_, _, true) => {
                return Err(self.error(
                    &key("remote"),
                    "a remote task runs elsewhere: give it no \"command\" or \"http\"",
                ))
            }
            _ => {
                return Err(self.error(
                    &path,
                    "set exactly one of \"command\" or \"http\" (or `remote = true` for a kind that remote workers serve)",
                ))
            }
        };
        let timeout = match t.timeout {
            Some(v) => self.duration(&key("timeout"), v)?,
            None => DEFAULT_TIMEOUT,
        };
        let max_attempts = match t.max_attempts {
            Some(v) => self.int(&key("max_attempts"), v, 1, i64::from(i32::MAX))? as i32,
            None => DEFAULT_MAX_ATTEMPTS,
        };
        let backoff = match t.backoff {
            Some(v) => self.backoff(&key("backoff"), v)?,
            None => Backoff::default(),
        };
        let concurrency_key = match t.concurrency_key {
            Some(v) => {
                let arg = self.string(&key("concurrency_key"), v)?;
                if arg.is_empty() {
                    return Err(self.error(
                        &key("concurrency_key"),
                        "name the argument whose value is each job's key, e.g. \"program_id\"",
                    ));
                }
                Some(arg)
            }
            None => None,
        };
        let key_concurrency = match t.key_concurrency {
            Some(v) => Some(self.int(&key("key_concurrency"), v, 1, i64::from(i32::MAX))? as i32),
            None => None,
        };
        Ok(TaskDefinition {
            queue,
            handler,
            timeout,
            max_attempts,
            backoff,
            concurrency_key,
            key_concurrency,
        })
    }

    fn command(&self, path: &str, v: Value) -> Result<Handler, ConfigError> {
        let Value::Array(items) = v else {
            return Err(self.error(
                path,
                format!(
                    "expected an array of strings such as [\"python3\", \"job.py\"], got {}",
                    type_name(&v)
                ),
            ));
        };
        let mut argv = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::String(s) => argv.push(s),
                other => {
                    return Err(self.error(
                        path,
                        format!("item {i} must be a string, got {}", type_name(&other)),
                    ))
                }
            }
        }
        match argv.first() {
            None => Err(self.error(path, "must name a program: the array is empty")),
            Some(p) if p.trim().is_empty() => {
                Err(self.error(path, "the program (item 0) is empty"))
            }
            Some(_) => Ok(Handler::Command { argv }),
        }
    }

    fn http(&self, path: &str, t: RawHttp) -> Result<Handler, ConfigError> {
        let url_key = Self::child(path, "url");
        let url = match t.url {
            Some(v) => self.string(&url_key, v)?,
            None => return Err(self.error(path, "missing key \"url\"")),
        };
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(_) => {
                return Err(self.error(
                    &url_key,
                    format!("expected an http:// or https:// URL, got \"{url}\""),
                ))
            }
            Err(e) => return Err(self.error(&url_key, format!("invalid URL \"{url}\": {e}"))),
        }
        let mut headers = BTreeMap::new();
        if let Some(v) = t.headers {
            let headers_key = Self::child(path, "headers");
            let Value::Table(table) = v else {
                return Err(self.error(
                    &headers_key,
                    format!(
                        "expected a table of header names to values, got {}",
                        type_name(&v)
                    ),
                ));
            };
            for (name, value) in table {
                let key = Self::child(&headers_key, &name);
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(self.error(&key, "is not a valid HTTP header name"));
                }
                let value = self.string(&key, value)?;
                if reqwest::header::HeaderValue::from_str(&value).is_err() {
                    return Err(self.error(&key, "is not a valid HTTP header value"));
                }
                headers.insert(name, value);
            }
        }
        let mut tls = HttpTls::default();
        if let Some(v) = t.ca_file {
            tls.ca_files
                .push(self.path(&Self::child(path, "ca_file"), v)?);
        }
        if let Some(v) = t.insecure_skip_verify {
            tls.insecure_skip_verify = self.bool(&Self::child(path, "insecure_skip_verify"), v)?;
        }
        Ok(Handler::Http { url, headers, tls })
    }

    fn backoff(&self, path: &str, t: RawBackoff) -> Result<Backoff, ConfigError> {
        let mut b = Backoff::default();
        if let Some(v) = t.base {
            b.base = self.duration(&Self::child(path, "base"), v)?;
        }
        if let Some(v) = t.cap {
            b.cap = self.duration(&Self::child(path, "cap"), v)?;
        }
        if let Some(v) = t.jitter {
            let key = Self::child(path, "jitter");
            b.jitter = match v {
                Value::Float(f) => f,
                Value::Integer(n) => n as f64,
                other => {
                    return Err(self.error(
                        &key,
                        format!("expected a number, got {}", type_name(&other)),
                    ))
                }
            };
            if !(0.0..=1.0).contains(&b.jitter) {
                return Err(self.error(&key, format!("must be between 0 and 1, got {}", b.jitter)));
            }
        }
        if b.cap < b.base {
            return Err(self.error(
                &Self::child(path, "cap"),
                "must not be shorter than backoff.base",
            ));
        }
        Ok(b)
    }
}
