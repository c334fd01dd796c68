//! Why the host refused or failed: [`HostError`] kinds, mapped to status codes by the API.

use uuid::Uuid;
use veil_core::{Busy, Problem};
use veil_integrations::UplinkError;
use veil_store::StoreError;

/// Why the host refused or failed. The API maps each kind to a status and a code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration does not deploy: every problem, each with its JSON pointer (a missing
    /// permission among them makes it a refusal rather than a validation error).
    #[error("invalid configuration ({} problems)", .0.len())]
    Invalid(Vec<Problem>),
    /// An integration document that is not a JSON object.
    #[error("body: expected a JSON object (an integration)")]
    NotAnObject,
    /// Another integration holds the routing key.
    #[error("routingKey: '{0}' is used by another integration")]
    RoutingKeyTaken(String),
    /// The rule chain is stored but not running (it did not deploy at boot).
    #[error("rule chain '{0}' is not running; see the server log")]
    ChainNotRunning(Uuid),
    /// The integration is stored but not running.
    #[error("integration '{0}' is not running")]
    IntegrationNotRunning(Uuid),
    /// What a chain computed may show values of secrets the actor may not use.
    #[error("{0}")]
    MayNotWatch(String),
    /// A new `allowedDestinations` would refuse what configurations send at save; the users.
    #[error("{0}")]
    DestinationsInUse(String, Vec<super::destinations::BrokenConfig>),
    /// No integration of this uplink type has the routing key.
    #[error("no {0} integration with this routing key")]
    NoUplinkTarget(String),
    /// The rule chain an uplink feeds is not running.
    #[error("the integration's rule chain '{0}' is not running")]
    UplinkChainNotRunning(Uuid),
    /// The rule chain has too many messages in flight for one more sent through the API.
    #[error("{0}")]
    ChainBusy(Busy),
    /// A message's content goes past a limit (its text names it).
    #[error("{0}")]
    MessageTooLarge(String),
    /// The rule chain an uplink feeds has too many messages in flight.
    #[error("{0}")]
    UplinkBusy(Busy),
    /// The integration refused or could not convert an uplink.
    #[error("{}", .0.message)]
    Uplink(UplinkError),
    /// A promote refused: a consumer's probe failed or is still running; the rows.
    #[error("{message}")]
    ProbesFailed {
        /// Which consumers, and what they said.
        message: String,
        /// Their probe rows.
        consumers: serde_json::Value,
    },
    /// The message queue refused or failed.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    /// A bug; the details go to the log only.
    #[error("{0}")]
    Internal(String),
}

/// Result of a host operation.
pub type HostResult<T> = Result<T, HostError>;
