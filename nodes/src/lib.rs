//! veil-nodes: the built-in rule nodes, one file each, registered explicitly in [`registry`].
//!
//! Each file holds a node type's descriptor (type name, description, default configuration, the
//! fields that may hold secrets or message templates) and its factory. Nodes render their
//! secret-capable fields through `NodeCtx::render` at execution time, so a rotated secret is used by
//! the next message.

mod common;
mod credentials;
mod log;
mod mqtt;
mod oauth2;
mod placeholder;
mod rabbitmq;
mod rest_api_call;
mod script;
mod transport;

use veil_core::Registry;

/// Every built-in node type.
pub fn registry() -> Registry {
    Registry::new()
        .with(&rest_api_call::DESCRIPTOR)
        .with(&script::DESCRIPTOR)
        .with(&mqtt::DESCRIPTOR)
        .with(&rabbitmq::DESCRIPTOR)
        .with(&log::DESCRIPTOR)
        .with(&placeholder::DESCRIPTOR)
}
