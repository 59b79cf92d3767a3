//! Reading requests: JSON bodies, queries and ids, each failing with an [`ApiError`] that
//! names what is wrong (and, for bodies, the path of the bad field: `jobs[2].priority`).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query as AxumQuery, Request};
use axum::http::request::Parts;
use axum::http::{header::CONTENT_TYPE, StatusCode};
use errand_core::JobId;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// When a request's body must have arrived (set by `serve` for every request it reads;
/// absent when the router is driven another way, and then the body has no deadline).
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub tokio::time::Instant);

/// A JSON request body. Unknown fields are refused by the body types themselves
/// (`deny_unknown_fields`). A body that has not arrived by the request's [`BodyDeadline`] is a
/// `408` (`server.body_read_timeout`).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
            let essence = ct.split(';').next().unwrap_or_default().trim();
            if !(essence == "application/json" || essence.ends_with("+json")) {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("the body must be JSON (Content-Type: application/json), got `{ct}`"),
                ));
            }
        }
        let deadline = req.extensions().get::<BodyDeadline>().copied();
        let read = Bytes::from_request(req, state);
        let read = match deadline {
            Some(BodyDeadline(at)) => match tokio::time::timeout_at(at, read).await {
                Ok(read) => read,
                Err(_) => {
                    return Err(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "body_timeout",
                        "the request body did not arrive in time (server.body_read_timeout)",
                    ))
                }
            },
            None => read.await,
        };
        let bytes = read.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is over the server's limit (server.max_body_bytes)",
                )
            } else {
                ApiError::new(e.status(), "bad_body", e.body_text())
            }
        })?;
        parse(&bytes).map(Body)
    }
}

/// Parses a JSON body into `T`, naming the failing field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the request body is empty; this endpoint expects a JSON object",
        ));
    }
    // serde reads a struct from an array too; every body of this API is an object.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the request body must be a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    if value.is_ok() {
        // Trailing data after the value is an error too.
        if let Err(e) = de.end() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the request body is not valid JSON: {e}"),
            ));
        }
    }
    value.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the request body is not valid JSON: {inner}"),
            )
        } else if path.is_empty() || path == "." {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("invalid body: {inner}"),
            )
        } else {
            let unknown = inner.to_string().starts_with("unknown field");
            ApiError {
                status: StatusCode::BAD_REQUEST,
                code: if unknown {
                    "unknown_field"
                } else {
                    "invalid_field"
                },
                message: format!("`{path}`: {inner}"),
                field: Some(path),
            }
        }
    })
}

/// A query string read into `T`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        AxumQuery::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| {
                let text = e.body_text();
                let text = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("invalid query string: {text}"),
                )
            })
    }
}

/// A job id from the path.
pub fn job_id(raw: &str) -> Result<JobId, ApiError> {
    errand_core::parse_job_id(raw).ok_or_else(|| {
        ApiError::invalid(
            "id",
            format!("job id `{raw}` is not a positive integer (decimal digits only)"),
        )
    })
}

/// A human duration (`30s`, `5m`) from a named field.
pub fn duration(field: &str, raw: &str) -> Result<Duration, ApiError> {
    errand_core::parse_duration(raw)
        .map_err(|e| ApiError::invalid(field, format!("`{field}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Batch {
        jobs: Vec<Item>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        kind: String,
        priority: Option<i32>,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse::<Batch>(br#"{"jobs":[{"kind":"a"},{"kind":"b","priority":"high"}]}"#)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("jobs[1].priority"));
        assert!(e.message.contains("invalid type"), "{}", e.message);
        let e = parse::<Batch>(br#"{"jobs":[{"kind":"a","prio":1}]}"#).unwrap_err();
        assert!(e.message.contains("unknown field `prio`"), "{}", e.message);
        let e = parse::<Batch>(br#"{"jobs":[{"kind":"a"}"#).unwrap_err();
        assert_eq!(e.code, "malformed_json");
        let e = parse::<Batch>(b"").unwrap_err();
        assert_eq!(e.code, "malformed_json");
        let e = parse::<Batch>(br#"{"jobs":[]} x"#).unwrap_err();
        assert_eq!(e.code, "malformed_json");
        assert!(job_id("abc").is_err());
        assert!(job_id("-3").is_err());
        assert!(job_id("+1").is_err());
        assert_eq!(job_id("42").unwrap(), 42);
    }
}

/// The `{id}` of a job path, checked to be a positive integer.
#[derive(Debug, Clone, Copy)]
pub struct IdParam(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for IdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = path_param(parts, state).await?;
        job_id(&raw).map(IdParam)
    }
}

/// The `{name}` of a queue path.
#[derive(Debug, Clone)]
pub struct QueueName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for QueueName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_param(parts, state).await.map(QueueName)
    }
}

/// The `{name}` of a schedule path.
#[derive(Debug, Clone)]
pub struct ScheduleName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ScheduleName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_param(parts, state).await.map(ScheduleName)
    }
}

async fn path_param<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<String, ApiError> {
    axum::extract::Path::<String>::from_request_parts(parts, state)
        .await
        .map(|p| p.0)
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                format!("invalid path parameter: {}", e.body_text()),
            )
        })
}
