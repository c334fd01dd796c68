//! Every error type of veil-core, in one place: validation problems (with their JSON pointers),
//! malformed placeholders, rendering, node and script failures, full in-flight budgets, header
//! values. Messages name fields, secrets and limits — never a secret's value.

use serde::Serialize;
use veil_store::StoreError;

/// What kind of problem a [`Problem`] is: the API chooses its status by it, and a host picks the
/// problems it asked about by it (never by the message's words).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The document is wrong (400).
    #[default]
    Invalid,
    /// A permission is missing (403).
    Permission,
    /// A secret the configuration sends may not go to a destination known at save.
    DestinationRefused {
        /// The secret's name.
        secret: String,
        /// `host:port`.
        destination: String,
    },
}

/// One validation problem: where (a JSON pointer from the document's root) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// JSON pointer, e.g. `/nodes/2/configuration/credentials/password`.
    pub path: String,
    /// What is wrong, for a person.
    pub message: String,
    /// What kind of problem it is.
    #[serde(skip)]
    pub kind: ProblemKind,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into(), kind: ProblemKind::Invalid }
    }

    /// A missing permission at `path`.
    pub fn permission(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { kind: ProblemKind::Permission, ..Self::new(path, message) }
    }

    /// Whether it is a missing permission.
    pub fn is_permission(&self) -> bool {
        self.kind == ProblemKind::Permission
    }

    /// The secret, when the problem is that it may not be sent where the configuration sends it.
    pub fn refused_secret(&self) -> Option<&str> {
        match &self.kind {
            ProblemKind::DestinationRefused { secret, .. } => Some(secret),
            _ => None,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A malformed placeholder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed placeholder at character {position}: {problem}")]
pub struct PlaceholderError {
    /// Character offset (not byte) of the `$` that starts the placeholder.
    pub position: usize,
    /// What is wrong.
    pub problem: String,
}

/// Why a marker could not be opened for a send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a sealed value in the message cannot be opened here: it was not sealed for this rule chain (by its scripts, or the converters of an integration feeding it) in this process"
)]
pub struct ForeignMarker;

/// Why a template could not be rendered. Carries names, never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The secret could not be resolved (deleted, integrity failure).
    #[error("secret '{name}' cannot be used: {source}")]
    Secret {
        /// The secret's name.
        name: String,
        /// Why.
        source: StoreError,
    },
    /// A linked secret's value could not be fetched from its provider (names both; masked).
    #[error("{0}")]
    Linked(StoreError),
    /// A FILE secret that is not UTF-8 was used in a text field.
    #[error("secret '{0}' is not valid UTF-8 text and cannot be used in this field")]
    NotText(String),
    /// A message template failed.
    #[error("message template: {0}")]
    Template(String),
    /// A sealed value in the message was not made for this tenant and rule chain in this process.
    #[error("message template: {0}")]
    ForeignMarker(#[from] ForeignMarker),
    /// A sealed value reached a field of a customer's rule chain, where none opens.
    #[error("message template: a sealed value in the message cannot be opened in a customer's rule chain")]
    SealedInCustomerChain,
    /// A sealed value was made from a secret deleted since.
    #[error(
        "message template: a sealed value in the message was made from secret '{0}', which no longer exists"
    )]
    SealedSecretDeleted(String),
    /// A node or integration asked for a secret its configuration does not declare.
    #[error("secret '{0}' is not declared by this configuration and cannot be used")]
    Undeclared(String),
}

/// Why a node failed. Its text is redacted before anyone sees it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// What the node says went wrong.
    #[error("{0}")]
    Message(String),
    /// A field could not be rendered (a secret, a message template).
    #[error(transparent)]
    Render(#[from] RenderError),
}

impl NodeError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self::Message(message.into())
    }
}

impl From<String> for NodeError {
    fn from(s: String) -> Self {
        Self::Message(s)
    }
}

impl From<&str> for NodeError {
    fn from(s: &str) -> Self {
        Self::Message(s.to_owned())
    }
}

/// A compile problem: where in the script and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptProblem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ScriptProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// A message refused because too many are being processed; retry later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// The limit that is full (`maxInFlightPerChain` or `maxInFlightPerTenant`).
    pub limit: &'static str,
    /// Its value.
    pub value: usize,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::limits::limit_message(
            self.limit,
            self.value,
            "too many messages are being processed; retry later",
        ))
    }
}

impl std::error::Error for Busy {}

/// A rendered value that cannot be an HTTP header value (a control character, a line break).
#[derive(Debug, thiserror::Error)]
#[error("{0}: the rendered value is not a valid HTTP header value")]
pub struct InvalidHeader(pub(crate) String);
