//! Errors of the binary and of the HTTP API. API errors render as `{"error", "message", ...}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use veil_store::StoreError;

/// Why `veil` stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ServerError {
    /// The store could not be opened (wrong master key, database error...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// An error answer of the REST API.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Option<(&'static str, Value)>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), extra: None, retry_after: None }
    }

    /// A 429: too many attempts; try again after `seconds`.
    pub(crate) fn too_many(message: impl Into<String>, seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
        }
    }

    /// Too many messages in flight: 429 for a client's own messages, 503 for uplinks; both say
    /// when to try again.
    pub(crate) fn busy(status: StatusCode, busy: &veil_core::Busy) -> Self {
        Self { retry_after: Some(1), ..Self::new(status, "too_many_messages", busy.to_string()) }
    }

    /// A per-tenant limit on how many of something may exist was reached.
    pub(crate) fn limit_reached(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "limit_exceeded", message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn invalid_secret(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_secret", format!("{field}: {message}"))
            .with("problems", json!([{ "field": field, "message": message.to_string() }]))
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// A configuration failed validation: 400 `invalid_config`, or 403 when a permission is missing.
    pub(crate) fn invalid_config(problems: Vec<veil_core::Problem>) -> Self {
        let forbidden = problems.iter().any(|p| p.permission);
        let first = problems.first().map(ToString::to_string).unwrap_or_default();
        let message = match problems.len() {
            1 => format!("invalid configuration: {first}"),
            n => format!("invalid configuration ({n} problems): {first}; ..."),
        };
        let (status, code) = if forbidden {
            (StatusCode::FORBIDDEN, "forbidden")
        } else {
            (StatusCode::BAD_REQUEST, "invalid_config")
        };
        Self::new(status, code, message).with("problems", json!(problems))
    }

    /// A 500 whose details go to the log only.
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {detail}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error; see the server log")
    }

    fn with(mut self, key: &'static str, value: Value) -> Self {
        self.extra = Some((key, value));
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e {
            StoreError::Invalid(problems) => Self::new(StatusCode::BAD_REQUEST, "invalid_secret", message)
                .with("problems", json!(problems)),
            StoreError::InvalidInput(problems) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
                    .with("problems", json!(problems))
            }
            StoreError::Needed { code, .. } => Self::new(StatusCode::CONFLICT, code, message),
            StoreError::TooLarge { .. } => Self::too_large(message),
            StoreError::NameTaken(_) => Self::new(StatusCode::CONFLICT, "name_taken", message),
            StoreError::Immutable { .. } => Self::new(StatusCode::BAD_REQUEST, "immutable_field", message),
            StoreError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            StoreError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            StoreError::UnknownSecrets(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_config", message),
            StoreError::InUse { usages, .. } => {
                Self::new(StatusCode::CONFLICT, "secret_in_use", message).with("references", json!(usages))
            }
            StoreError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            StoreError::Integrity(_) => {
                tracing::error!("{message}");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "integrity_error", message)
            }
            other => {
                // Details (database paths, driver messages) go to the log, not to the client.
                tracing::error!(error = %other, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error; see the server log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let (Some((key, value)), Some(map)) = (self.extra, body.as_object_mut()) {
            map.insert(key.to_owned(), value);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// Result of an API handler.
pub(crate) type ApiResult<T> = Result<T, ApiError>;
