//! What the HTTP handlers can reach, and the parts extractors take from it (axum `FromRef`
//! substates): a handler or extractor names the part it needs — the [`Host`], the [`Store`], the
//! [`TokenKeys`] — not the whole state, so `auth` works without knowing this type.

use std::sync::Arc;

use axum::extract::FromRef;
use veil_store::Store;

use crate::auth::{LoginLimiter, PublicHosts, TokenKeys};
use crate::host::Host;

/// The router's state; clones share everything.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The store and the running chains and integrations.
    pub(crate) host: Arc<Host>,
    /// Signs and checks tokens.
    pub(crate) tokens: TokenKeys,
    /// Failed logins per user name and address.
    pub(crate) login_limiter: Arc<LoginLimiter>,
    /// Verified against on unknown usernames so a login takes as long either way.
    pub(crate) dummy_hash: Arc<str>,
    /// The host names browser sessions are served for.
    pub(crate) public_hosts: PublicHosts,
    /// Who may read `/metrics` here.
    pub(crate) metrics: crate::metrics::MetricsAccess,
    /// Set when the server stops (`/api/ready` answers 503).
    pub(crate) stopping: crate::lifecycle::Stopping,
}

impl FromRef<AppState> for crate::lifecycle::Stopping {
    fn from_ref(state: &AppState) -> Self {
        state.stopping.clone()
    }
}

impl FromRef<AppState> for crate::metrics::MetricsAccess {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

impl FromRef<AppState> for PublicHosts {
    fn from_ref(state: &AppState) -> Self {
        state.public_hosts.clone()
    }
}

impl FromRef<AppState> for Arc<Host> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.host)
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(state: &AppState) -> Self {
        state.host.store().clone()
    }
}

impl FromRef<AppState> for TokenKeys {
    fn from_ref(state: &AppState) -> Self {
        state.tokens.clone()
    }
}
