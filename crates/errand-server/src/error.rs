//! The one error shape of the API, `{"error": {"code", "message", "field"?}}`, and the one
//! place where library errors become status codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use errand_store::StoreError;
use serde_json::json;

/// An error response: a status, a stable snake_case code, a message naming what is wrong
/// and, for bad input, the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Bad input in a named field: 400.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A rejected job: 400 for a malformed field, 422 (`unknown_kind`) for a kind no
    /// configured task knows. `field` is the API's name of the field.
    pub fn rejected(
        field: impl Into<String>,
        message: impl Into<String>,
        why: errand::Rejection,
    ) -> Self {
        let mut e = ApiError::invalid(field, message);
        if why == errand::Rejection::UnknownKind {
            e.status = StatusCode::UNPROCESSABLE_ENTITY;
            e.code = "unknown_kind";
        }
        e
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// The request is valid but the job is not in a state that allows it: 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound(_) | StoreError::ScheduleNotFound(_) => {
                ApiError::not_found(e.to_string())
            }
            StoreError::Conflict(_) => ApiError::conflict("conflict", e.to_string()),
            StoreError::Stale { .. } => ApiError::conflict("stale", e.to_string()),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "request failed: database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                )
            }
            StoreError::DiskFull(_) => {
                tracing::error!(error = %e, "request failed: the database's disk is full");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "disk_full",
                    format!("{e}; nothing was written: free space on it and retry"),
                )
            }
            StoreError::Unsupported(_) => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "unsupported", e.to_string())
            }
            StoreError::Schema(_) | StoreError::Database(_) => {
                tracing::error!(error = %e, "request failed: database error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "database_error",
                    e.to_string(),
                )
            }
        }
    }
}

impl From<errand::Error> for ApiError {
    fn from(e: errand::Error) -> Self {
        match e {
            errand::Error::Invalid(v) => ApiError::rejected(v.field, v.to_string(), v.rejection),
            errand::Error::InvalidLimits(e) => ApiError::invalid(e.field, e.to_string()),
            errand::Error::InvalidInBatch { index, source } => ApiError::rejected(
                format!("jobs[{index}].{}", source.field),
                format!("job {index} of the batch: {source}"),
                source.rejection,
            ),
            errand::Error::InvalidSchedule(e) => {
                // `schedules.NAME.cron` names the body's field `cron`; a problem with the whole
                // schedule (`schedules.NAME`) keeps the path.
                let field = e.path.splitn(3, '.').nth(2).unwrap_or(&e.path).to_string();
                ApiError::invalid(field, e.to_string())
            }
            errand::Error::ConfigOwned(_) => ApiError::conflict("config_owned", e.to_string()),
            errand::Error::Store(s) => s.into(),
            other => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                other.to_string(),
            ),
        }
    }
}
