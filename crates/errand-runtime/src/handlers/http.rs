//! HTTP handlers (design.md, Handlers): each attempt POSTs the job's args JSON to a URL from
//! the task's definition (`[tasks.NAME] http` in `errand.toml`), with the configured headers
//! and `Errand-Job-Id`, `Errand-Attempt`,
//! `Errand-Kind` and `Errand-Queue`.
//!
//! | the response | the job |
//! | --- | --- |
//! | 2xx | succeeded; a JSON body is the result (an empty or non-JSON body: no result) |
//! | 408, 429, 5xx | an ordinary failed attempt, retried; after `Retry-After: <seconds>` if given |
//! | another 4xx | failed for good, with the status and the start of the body |
//! | 3xx | failed for good: redirects are not followed (a POST must not turn into a GET) |
//! | no response (refused, reset, timed out) | an ordinary failed attempt, retried |
//!
//! The request's timeout is the job's execution timeout. `https://` servers are checked as
//! `handlers::tls` says ([`HttpTls`]).

use errand::worker::JobContext;
use errand::{HandlerError, JobArgs};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use std::collections::BTreeMap;
use std::time::Duration;

use super::tls::{client_config, HttpTls};

/// How much of an error response's body goes into the job's error.
const ERROR_BODY_BYTES: usize = 1024;
/// The largest 2xx body read as a result; past it the job succeeds without one.
const MAX_RESULT_BYTES: usize = 4 * 1024 * 1024;

/// POSTs each attempt's args to one URL.
#[derive(Debug, Clone)]
pub struct HttpHandler {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
}

impl HttpHandler {
    /// A handler for `url` sending `headers` (both validated by the configuration), over
    /// `client` (one per process, so connections are pooled).
    pub fn new(
        client: reqwest::Client,
        url: &str,
        headers: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let url = Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| format!("header {name}: not a valid HTTP header value"))?;
            value.set_sensitive(true);
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name:?} is not a valid HTTP header name"))?;
            map.insert(name, value);
        }
        Ok(HttpHandler {
            client,
            url,
            headers: map,
        })
    }

    /// A client for HTTP handlers, shared by every task with the same `tls` so connections are
    /// pooled: no redirects, a recognisable user agent, TLS as [`HttpTls`] says.
    pub fn client(tls: &HttpTls) -> Result<reqwest::Client, String> {
        reqwest::Client::builder()
            .tls_backend_preconfigured(client_config(tls)?)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("errand/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    }

    /// The URL without its query, for messages (a query may carry a token).
    fn shown_url(&self) -> String {
        let mut u = self.url.clone();
        u.set_query(None);
        u.to_string()
    }

    /// Runs one attempt of `ctx`'s job.
    pub async fn run(
        &self,
        ctx: JobContext,
        args: JobArgs,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header("Errand-Job-Id", ctx.id().to_string())
            .header("Errand-Attempt", ctx.attempt().to_string())
            .header("Errand-Kind", ctx.kind())
            .header("Errand-Queue", ctx.queue())
            .json(&args);
        if let Some(timeout) = ctx.timeout() {
            request = request.timeout(timeout);
        }
        let exchange = async {
            let response = request.send().await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let limit = if status.is_success() {
                MAX_RESULT_BYTES
            } else {
                ERROR_BODY_BYTES
            };
            let (body, complete) = read_body(response, limit).await?;
            Ok::<_, reqwest::Error>((status, retry_after, body, complete))
        };
        let (status, retry_after, body, complete) = tokio::select! {
            answer = exchange => answer.map_err(|e| self.request_error(e))?,
            reason = ctx.cancelled() => {
                // Not recorded: the stop reason decides the outcome.
                return Err(HandlerError::Error { message: format!("request abandoned ({reason:?})") });
            }
        };
        if status.is_success() && !complete {
            tracing::warn!(
                job_id = ctx.id(),
                kind = ctx.kind(),
                attempt = ctx.attempt(),
                "response body over {MAX_RESULT_BYTES} bytes: the job succeeds without a result"
            );
            return Ok(None);
        }
        outcome(status, retry_after, &body)
    }

    fn request_error(&self, e: reqwest::Error) -> HandlerError {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else {
            "failed"
        };
        let detail = HandlerError::from(e.without_url());
        HandlerError::Error {
            message: format!("POST {} {what}: {}", self.shown_url(), detail.message()),
        }
    }
}

/// Reads at most `limit` bytes of the body; the flag is false if there was more.
async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// The job's outcome from the response.
fn outcome(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Option<serde_json::Value>, HandlerError> {
    if status.is_success() {
        return Ok(serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .filter(|v| !v.is_null()));
    }
    let message = {
        let text = body_excerpt(body);
        if text.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {text}")
        }
    };
    let retryable = status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error();
    if retryable {
        return Err(match retry_after {
            Some(delay) => HandlerError::retry_after(message, delay),
            None => HandlerError::Error { message },
        });
    }
    if status.is_redirection() {
        return Err(HandlerError::permanent(format!(
            "{message} (redirects are not followed: point the task's url at the final address)"
        )));
    }
    Err(HandlerError::permanent(message))
}

/// The first [`ERROR_BODY_BYTES`] of a body as text, cut at a character boundary.
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_BYTES)]);
    let text = text.trim_end_matches('\u{FFFD}').trim();
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn success_stores_a_json_body_and_nothing_else() {
        assert_eq!(
            outcome(StatusCode::OK, None, br#"{"n":1}"#).unwrap(),
            Some(json!({"n": 1}))
        );
        assert_eq!(
            outcome(StatusCode::CREATED, None, b"[1,2]").unwrap(),
            Some(json!([1, 2]))
        );
        assert_eq!(outcome(StatusCode::OK, None, b"").unwrap(), None);
        assert_eq!(outcome(StatusCode::NO_CONTENT, None, b"ok").unwrap(), None);
        assert_eq!(outcome(StatusCode::OK, None, b"null").unwrap(), None);
    }

    #[test]
    fn retryable_statuses_honour_retry_after() {
        let e = outcome(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(Duration::from_secs(7)),
            b"busy",
        )
        .unwrap_err();
        assert_eq!(
            e,
            HandlerError::retry_after("HTTP 503 Service Unavailable: busy", Duration::from_secs(7))
        );
        for s in [408, 429, 500, 502] {
            let e = outcome(StatusCode::from_u16(s).unwrap(), None, b"").unwrap_err();
            assert!(matches!(e, HandlerError::Error { .. }), "{s}: {e:?}");
        }
    }

    #[test]
    fn other_client_errors_are_permanent_with_the_body_start() {
        let body = format!("bad field{}", "x".repeat(5000));
        let e = outcome(StatusCode::BAD_REQUEST, None, body.as_bytes()).unwrap_err();
        assert!(matches!(e, HandlerError::Permanent { .. }));
        assert!(e.message().starts_with("HTTP 400 Bad Request: bad field"));
        assert!(e.message().len() < 1100, "{}", e.message().len());
        let e = outcome(StatusCode::FOUND, None, b"").unwrap_err();
        assert!(matches!(e, HandlerError::Permanent { .. }));
    }
}
