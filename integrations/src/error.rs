//! The errors of veil-integrations. Messages name fields and integrations, never a secret's value
//! (and they are redacted before anyone sees them). Uplink errors carry a kind; the server chooses
//! the HTTP status and code for each.

use veil_core::RenderError;

/// Why an integration could not do its work.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct IntegrationError {
    message: String,
    transient: bool,
    /// What it came from, when that is an error of its own (a template that did not render).
    #[source]
    source: Option<std::sync::Arc<RenderError>>,
}

impl IntegrationError {
    /// An error with this message (retrying will not help: wrong credentials, bad configuration).
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), transient: false, source: None }
    }

    /// An error that may go away by itself (the service is unreachable or overloaded): a failed
    /// start is retried.
    pub fn transient(message: impl Into<String>) -> Self {
        Self { message: message.into(), transient: true, source: None }
    }

    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

impl From<RenderError> for IntegrationError {
    fn from(e: RenderError) -> Self {
        Self { message: e.to_string(), transient: false, source: Some(std::sync::Arc::new(e)) }
    }
}

impl IntegrationError {
    /// The template error it came from, if any.
    pub fn render_error(&self) -> Option<&RenderError> {
        self.source.as_deref()
    }
}

/// What kind of refusal an uplink got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UplinkErrorKind {
    /// The body is not what the integration accepts.
    Invalid,
    /// The request headers do not match the integration's security filter.
    Unauthorized,
    /// The integration was removed.
    NotFound,
    /// The integration is disabled.
    Disabled,
    /// The uplink converter failed (or refused the payload).
    ConverterFailed,
    /// The integration cannot take uplinks now (no converter, a security value cannot be read).
    Unavailable,
}

/// A refused uplink: its kind and a message for the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UplinkError {
    /// What kind of refusal.
    pub kind: UplinkErrorKind,
    /// For a person; names the field and the problem, never a value.
    pub message: String,
}

impl UplinkError {
    /// A refusal of `kind`.
    pub fn new(kind: UplinkErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// The body is not what the integration accepts.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(UplinkErrorKind::Invalid, message)
    }

    /// The request headers do not match the integration's security filter.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(UplinkErrorKind::Unauthorized, message)
    }
}
