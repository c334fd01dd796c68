//! Probes: a node or an integration tests a secret's pending value against the outside service
//! it uses (connect and authenticate, log in, a TLS handshake, a named request) without sending
//! a message, so a staged rotation can be promoted knowing every consumer accepts the new value.

use serde::Serialize;

/// What a probe found. The reason is written by the node and masked by the host before anyone
/// sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The service accepted the value; the detail says what was tried.
    Ok(String),
    /// The service refused it, or could not be reached; the reason says which.
    Failed(String),
    /// This use cannot be tested without a message (a script, an incoming credential, a
    /// `rest_api_call` without a `probe`); the reason says why.
    NotProbed(String),
}

/// A probe's result as the rotation API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProbeResult {
    /// Accepted.
    Ok,
    /// Refused or unreachable.
    Failed,
    /// Not testable without a message.
    NotProbed,
    /// Still running.
    Probing,
}

impl ProbeResult {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Failed => "FAILED",
            Self::NotProbed => "NOT_PROBED",
            Self::Probing => "PROBING",
        }
    }

    /// The result of a stored spelling.
    pub fn named(name: &str) -> Option<Self> {
        [Self::Ok, Self::Failed, Self::NotProbed, Self::Probing].into_iter().find(|r| r.as_str() == name)
    }
}

impl Probe {
    /// A use that cannot be tested without a message.
    pub fn not_probed(reason: impl Into<String>) -> Self {
        Self::NotProbed(reason.into())
    }

    /// The result and its reason.
    pub fn into_parts(self) -> (ProbeResult, String) {
        match self {
            Self::Ok(detail) => (ProbeResult::Ok, detail),
            Self::Failed(reason) => (ProbeResult::Failed, reason),
            Self::NotProbed(reason) => (ProbeResult::NotProbed, reason),
        }
    }
}

/// How long one probe may take before it counts as failed.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs `probe` under [`PROBE_TIMEOUT`].
pub async fn bounded(probe: impl std::future::Future<Output = Probe>) -> Probe {
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .unwrap_or_else(|_| Probe::Failed(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())))
}
