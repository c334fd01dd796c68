//! Errors of the binary and of the HTTP API. API errors render as `{"error", "message", ...}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use veil_store::{NameConflict, NeededKind, StoreError};

use crate::host::HostError;

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
    /// The message queue (`--queue`) could not be reached or set up.
    #[error("the message queue: {0}")]
    Queue(String),
}

/// An error answer of the REST API.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Option<Box<(&'static str, Value)>>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// The status it answers with.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

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
        let forbidden = problems.iter().any(veil_core::Problem::is_permission);
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

    /// The same error naming `field` in its `problems`, so a client tells it apart by the field
    /// rather than by the message's words.
    pub(crate) fn for_field(self, field: &str, problem: &str) -> Self {
        self.with("problems", json!([{ "field": field, "message": problem }]))
    }

    fn with(mut self, key: &'static str, value: Value) -> Self {
        self.extra = Some(Box::new((key, value)));
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
            StoreError::Needed { kind, .. } => Self::new(StatusCode::CONFLICT, needed_code(kind), message),
            StoreError::NameUnavailable { conflict, .. } => {
                Self::new(StatusCode::CONFLICT, name_conflict_code(conflict), message)
            }
            StoreError::TooLarge { .. } => Self::too_large(message),
            StoreError::NameTaken(_) => Self::new(StatusCode::CONFLICT, "name_taken", message),
            StoreError::Immutable { .. } => Self::new(StatusCode::BAD_REQUEST, "immutable_field", message),
            StoreError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            StoreError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            StoreError::LimitReached(_) => Self::limit_reached(message),
            StoreError::UnknownSecrets(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_config", message),
            StoreError::InUse { usages, .. } => {
                Self::new(StatusCode::CONFLICT, "secret_in_use", message).with("references", json!(usages))
            }
            StoreError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            StoreError::VersionMismatch { current, .. } => {
                Self::new(StatusCode::PRECONDITION_FAILED, "precondition_failed", message)
                    .with("currentVersion", json!(current))
            }
            StoreError::VersionRequired { current, .. } => {
                Self::new(StatusCode::PRECONDITION_REQUIRED, "precondition_required", message)
                    .with("currentVersion", json!(current))
            }
            StoreError::VersionDestroyed { .. } => {
                Self::new(StatusCode::CONFLICT, "version_destroyed", message)
            }
            StoreError::RotationPending { version, .. } => {
                Self::new(StatusCode::CONFLICT, "rotation_pending", message)
                    .with("pendingVersion", json!(version))
            }
            StoreError::RoutingKeyTaken(_) => Self::new(StatusCode::CONFLICT, "routing_key_taken", message),
            StoreError::Provider { .. } | StoreError::Fetch { .. } => {
                Self::new(StatusCode::BAD_GATEWAY, "provider_failed", message)
            }
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

/// The code of a refusal to delete something still needed: `customer_in_use`, `role_in_use`,
/// `integration_in_use`.
fn needed_code(kind: NeededKind) -> &'static str {
    match kind {
        NeededKind::Customer => "customer_in_use",
        NeededKind::Role => "role_in_use",
        NeededKind::Integration => "integration_in_use",
        NeededKind::Provider => "provider_in_use",
        _ => "in_use",
    }
}

/// The code of a refused name: `name_taken` or `name_confusable`.
fn name_conflict_code(conflict: NameConflict) -> &'static str {
    match conflict {
        NameConflict::Taken => "name_taken",
        NameConflict::Lookalike => "name_confusable",
        _ => "name_taken",
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        let message = e.to_string();
        match e {
            HostError::Store(e) => e.into(),
            HostError::Invalid(problems) => Self::invalid_config(problems),
            HostError::NotAnObject => Self::bad_request(message),
            HostError::RoutingKeyTaken(_) => Self::new(StatusCode::CONFLICT, "routing_key_taken", message),
            HostError::ChainNotRunning(_) => Self::new(StatusCode::CONFLICT, "chain_not_running", message),
            HostError::IntegrationNotRunning(_) => {
                Self::new(StatusCode::CONFLICT, "integration_not_running", message)
            }
            HostError::MayNotWatch(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            HostError::DestinationsInUse(_, users) => {
                let users = serde_json::to_value(users).unwrap_or_default();
                Self::new(StatusCode::CONFLICT, "destinations_in_use", message).with("references", users)
            }
            HostError::ProbesFailed { consumers, .. } => {
                Self::new(StatusCode::CONFLICT, "probes_failed", message).with("consumers", consumers.clone())
            }
            HostError::NoUplinkTarget(_) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            HostError::UplinkChainNotRunning(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "chain_not_running", message)
            }
            HostError::UplinkBusy(busy) => Self::busy(StatusCode::SERVICE_UNAVAILABLE, &busy),
            HostError::ChainBusy(busy) => Self::busy(StatusCode::TOO_MANY_REQUESTS, &busy),
            HostError::MessageTooLarge(_) => Self::bad_request(message),
            HostError::Uplink(e) => {
                use veil_integrations::UplinkErrorKind as Kind;
                let (status, code) = match e.kind {
                    Kind::Invalid => (StatusCode::BAD_REQUEST, "invalid_uplink"),
                    Kind::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
                    Kind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                    Kind::Disabled => (StatusCode::CONFLICT, "integration_disabled"),
                    Kind::ConverterFailed => (StatusCode::UNPROCESSABLE_ENTITY, "converter_failed"),
                    Kind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "integration_unavailable"),
                    _ => (StatusCode::BAD_REQUEST, "invalid_uplink"),
                };
                Self::new(status, code, e.message)
            }
            HostError::Queue(e) => {
                use crate::queue::QueueError as Q;
                let (status, code, retry) = match e {
                    Q::Full(_) => (StatusCode::SERVICE_UNAVAILABLE, "queue_full", Some(1)),
                    Q::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "queue_unavailable", Some(5)),
                    Q::TooLarge(..) => (StatusCode::PAYLOAD_TOO_LARGE, "message_too_large", None),
                    Q::NoQueue => (StatusCode::CONFLICT, "no_queue", None),
                    Q::NoTrace(..) => (StatusCode::GATEWAY_TIMEOUT, "trace_timeout", None),
                    Q::TraceLost(_) => (StatusCode::BAD_GATEWAY, "trace_lost", None),
                };
                Self { retry_after: retry, ..Self::new(status, code, message) }
            }
            HostError::Internal(detail) => Self::internal(detail),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let (Some(extra), Some(map)) = (self.extra, body.as_object_mut()) {
            let (key, value) = *extra;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(e: impl Into<ApiError>) -> (StatusCode, &'static str, String) {
        let e = e.into();
        (e.status, e.code, e.message)
    }

    #[test]
    fn store_error_kinds_choose_the_api_codes() {
        let needed = |kind| StoreError::Needed { kind, message: "still needed".into() };
        let name = |conflict| StoreError::NameUnavailable { conflict, message: "name: refused".into() };
        let conflict = StatusCode::CONFLICT;
        assert_eq!(
            answer(needed(NeededKind::Customer)),
            (conflict, "customer_in_use", "still needed".into())
        );
        assert_eq!(answer(needed(NeededKind::Role)), (conflict, "role_in_use", "still needed".into()));
        assert_eq!(
            answer(needed(NeededKind::Integration)),
            (conflict, "integration_in_use", "still needed".into())
        );
        assert_eq!(answer(name(NameConflict::Taken)), (conflict, "name_taken", "name: refused".into()));
        assert_eq!(
            answer(name(NameConflict::Lookalike)),
            (conflict, "name_confusable", "name: refused".into())
        );
    }

    #[test]
    fn host_error_kinds_keep_their_statuses_codes_and_messages() {
        let id = uuid::Uuid::nil();
        assert_eq!(
            answer(HostError::ChainNotRunning(id)),
            (
                StatusCode::CONFLICT,
                "chain_not_running",
                format!("rule chain '{id}' is not running; see the server log")
            )
        );
        assert_eq!(
            answer(HostError::UplinkChainNotRunning(id)),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "chain_not_running",
                format!("the integration's rule chain '{id}' is not running")
            )
        );
        assert_eq!(
            answer(HostError::IntegrationNotRunning(id)),
            (StatusCode::CONFLICT, "integration_not_running", format!("integration '{id}' is not running"))
        );
        assert_eq!(
            answer(HostError::RoutingKeyTaken("k1".into())),
            (
                StatusCode::CONFLICT,
                "routing_key_taken",
                "routingKey: 'k1' is used by another integration".into()
            )
        );
        assert_eq!(
            answer(HostError::NoUplinkTarget("loriot".into())),
            (StatusCode::NOT_FOUND, "not_found", "no loriot integration with this routing key".into())
        );
        assert_eq!(
            answer(HostError::NotAnObject),
            (StatusCode::BAD_REQUEST, "bad_request", "body: expected a JSON object (an integration)".into())
        );
        assert_eq!(
            answer(HostError::from(veil_store::StoreError::LimitReached("full".into()))).1,
            "limit_exceeded"
        );
        assert_eq!(
            answer(HostError::MayNotWatch("no".into())),
            (StatusCode::FORBIDDEN, "forbidden", "no".into())
        );
        let busy = veil_core::Busy { limit: "maxInFlightPerChain", value: 1 };
        let e = ApiError::from(HostError::UplinkBusy(busy));
        assert_eq!(
            (e.status, e.code, e.retry_after),
            (StatusCode::SERVICE_UNAVAILABLE, "too_many_messages", Some(1))
        );
    }
}
