//! veil-integrations: integrations that bring device traffic from outside services into rule
//! chains and send downlinks back, authenticating with credentials from the secret store.
//!
//! An integration type is an [`IntegrationDescriptor`] (type name, uplink path, default
//! configuration, secret-capable fields) plus a factory, listed in an explicit
//! [`IntegrationRegistry`] ([`registry`] has the built-in ones). [`deploy_integration`] validates
//! an integration object — configuration placeholders and the Rhai converters' `secret()` calls are
//! checked and tracked like a rule chain's — and [`IntegrationRuntime`] runs it: it starts in the
//! background (the status shows `starting`, `active` or a redacted error), turns uplinks into
//! `POST_TELEMETRY_REQUEST` messages through the uplink converter, sends downlinks through the
//! downlink converter, and starts again with the new value when a secret it uses changes.

mod converter;
mod deploy;
mod downlink_node;
mod error;
mod http;
mod integration;
mod loriot;
mod runtime;
mod security;

pub use crate::converter::MAX_UPLINK_MESSAGES;
pub use crate::deploy::{
    IntegrationDef, IntegrationDeployment, MAX_ROUTING_KEY, deploy_integration, deploy_integration_proposed,
};
pub use crate::downlink_node::DOWNLINK_NODE;
pub use crate::error::{IntegrationError, UplinkError, UplinkErrorKind};
pub use crate::integration::{
    Integration, IntegrationCtx, IntegrationDescriptor, IntegrationFactory, IntegrationRegistry,
};
pub use crate::runtime::{IntegrationRuntime, Integrations, Status};

/// Every built-in integration type: `LORIOT` and `HTTP`.
pub fn registry() -> IntegrationRegistry {
    IntegrationRegistry::new().with(&loriot::DESCRIPTOR).with(&http::DESCRIPTOR)
}
