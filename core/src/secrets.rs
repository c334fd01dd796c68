//! What a node or an integration may reach of the store: the secrets its configuration declared,
//! nothing else. A [`Secrets`] handle is made for each node (and each integration) at deploy; the
//! names are fixed once the node is built (its placeholders, plus what its factory declared with
//! `BuildCtx::use_secret`, e.g. a script's `secret("name")` calls) — the same list the reference
//! registry gets, so every secret a plugin can resolve is one the store knows it uses.

use std::sync::{Arc, OnceLock};

use secrecy::ExposeSecret;
use veil_store::{SecretValue, Store, TenantId, UseContext};

use crate::error::{InvalidHeader, RenderError};
use crate::message::Msg;
use crate::template::{RenderCtx, Rendered, Template};

/// A capability to resolve and render the declared secrets of one node or integration. Cheap to
/// clone (connection-oriented nodes keep one to reconnect with).
#[derive(Clone)]
pub struct Secrets {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    tenant: TenantId,
    /// Sorted; set once, after the node was built.
    declared: OnceLock<Vec<String>>,
    /// The linked ones among them (values from providers), set with them.
    linked: OnceLock<Vec<String>>,
    /// Whether sealed values in messages open here (not in a customer's rule chain: customers use
    /// secrets, they never read them, and a sealed value names secrets not shared with them).
    opens_sealed: bool,
    /// The rule chain whose messages this node (or integration's converters) handles: sealed
    /// values are made for it and open only in it. Set once, when the chain starts.
    scope: OnceLock<uuid::Uuid>,
    /// The running configuration every resolve is counted as a use by. Set once, when it starts.
    user: OnceLock<UseContext>,
    /// A probe's handle: this secret resolves to this (pending) value instead of the store's.
    overlay: Option<(String, SecretValue)>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("declared", &self.inner.declared.get()).finish_non_exhaustive()
    }
}

impl Secrets {
    /// A handle whose names are declared later (by the deployment, once the node is built).
    pub(crate) fn pending(store: &Store, tenant: TenantId) -> Self {
        Self::pending_with(store, tenant, true)
    }

    /// A pending handle; `opens_sealed` is false for a customer's configuration.
    pub(crate) fn pending_with(store: &Store, tenant: TenantId, opens_sealed: bool) -> Self {
        let inner = Inner {
            store: store.clone(),
            tenant,
            declared: OnceLock::new(),
            linked: OnceLock::new(),
            opens_sealed,
            scope: OnceLock::new(),
            user: OnceLock::new(),
            overlay: None,
        };
        Self { inner: Arc::new(inner) }
    }

    /// A copy of this handle in which the declared secret `name` resolves to `value` (a pending
    /// value being probed) and every other one as before. Resolves through it are not counted as
    /// uses, and it opens no sealed values.
    pub fn with_value(&self, name: &str, value: SecretValue) -> Self {
        let inner = Inner {
            store: self.inner.store.clone(),
            tenant: self.inner.tenant,
            declared: self.inner.declared.clone(),
            linked: self.inner.linked.clone(),
            opens_sealed: false,
            scope: OnceLock::new(),
            user: OnceLock::new(),
            overlay: Some((name.to_owned(), value)),
        };
        Self { inner: Arc::new(inner) }
    }

    /// A handle for exactly `names` of `tenant` (for hosts and tests that render templates
    /// themselves).
    pub fn for_names(store: &Store, tenant: TenantId, names: impl IntoIterator<Item = String>) -> Self {
        let this = Self::pending(store, tenant);
        this.declare(names);
        this
    }

    /// Fixes the names (the first call wins).
    pub(crate) fn declare(&self, names: impl IntoIterator<Item = String>) {
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        names.dedup();
        let linked =
            names.iter().filter(|n| self.inner.store.is_linked(self.inner.tenant, n)).cloned().collect();
        if self.inner.declared.set(names).is_ok() {
            let _ = self.inner.linked.set(linked);
        }
    }

    /// Makes sure the declared secrets that are linked to a provider have a value to use now:
    /// those whose cache period is over are fetched (one fetch however many messages wait).
    /// Call it before rendering or resolving; for stored secrets it does nothing. A failure
    /// names the secret and the provider, with a masked reason.
    pub async fn prepare(&self) -> Result<(), RenderError> {
        match self.inner.linked.get() {
            Some(linked) if !linked.is_empty() => {
                self.inner.store.refresh_linked(self.inner.tenant, linked).await.map_err(RenderError::Linked)
            }
            _ => Ok(()),
        }
    }

    fn declared(&self) -> &[String] {
        self.inner.declared.get().map_or(&[], Vec::as_slice)
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The tenant the secrets belong to.
    pub fn tenant(&self) -> TenantId {
        self.inner.tenant
    }

    /// Whether sealed values in messages open for this node (false in a customer's rule chain:
    /// there they show as `***` to scripts, and a field that would open one fails).
    pub fn opens_sealed(&self) -> bool {
        self.inner.opens_sealed
    }

    /// Sets the rule chain whose messages this handle's node or converters handle (the first
    /// call wins): sealed values made here are for that chain, and only its markers open here.
    pub fn set_scope(&self, chain: uuid::Uuid) {
        let _ = self.inner.scope.set(chain);
    }

    /// Sets the running configuration (rule chain or integration) that every resolve through this
    /// handle is counted as a use by (the first call wins).
    pub fn set_user(&self, user: UseContext) {
        let _ = self.inner.user.set(user);
    }

    /// The rule chain set with [`Secrets::set_scope`].
    pub fn scope(&self) -> Option<uuid::Uuid> {
        self.inner.scope.get().copied()
    }

    /// The declared names, sorted.
    pub fn names(&self) -> &[String] {
        self.declared()
    }

    /// The value of a declared secret now. Any other name is refused, whatever the store holds.
    pub fn resolve(&self, name: &str) -> Result<SecretValue, RenderError> {
        if self.declared().binary_search_by(|n| n.as_str().cmp(name)).is_err() {
            return Err(RenderError::Undeclared(name.to_owned()));
        }
        if let Some((overlaid, value)) = &self.inner.overlay
            && overlaid == name
        {
            return Ok(SecretValue::new(value.expose_bytes().to_vec()));
        }
        self.inner
            .store
            .resolve_used_by(self.inner.tenant, name, self.inner.user.get())
            .map_err(|source| RenderError::Secret { name: name.to_owned(), source })
    }

    /// Renders a template with the secrets of this moment (`msg` for message templates; `None`
    /// for connection settings).
    pub fn render<'t>(&self, template: &'t Template, msg: Option<&Msg>) -> Result<Rendered<'t>, RenderError> {
        RenderCtx::with_secrets(self, msg).render(template)
    }

    /// The current versions of the declared secrets, in name order: a connection made with other
    /// versions is stale (this notices a rotation as soon as it commits).
    pub fn versions(&self) -> Vec<Option<i64>> {
        self.declared().iter().map(|name| self.inner.store.version(self.inner.tenant, name)).collect()
    }
}

/// A send refused because a secret it would carry may not go to that destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}; nothing was sent", self.reason())]
pub struct DestinationRefused {
    /// The secret's name.
    pub secret: String,
    /// `host:port` of the send.
    pub destination: String,
    /// Its list, or that it has none and the tenant requires one.
    pub why: String,
}

impl DestinationRefused {
    /// Which secret may not go where, and why (a refusal at save, where nothing is being sent).
    pub fn reason(&self) -> String {
        format!("secret '{}' may not be sent to {} ({})", self.secret, self.destination, self.why)
    }
}

/// A change not stored yet that a deployment is validated against: a secret's new
/// `allowedDestinations`, or the tenant's "destinations required". A change is checked against
/// every configuration it touches before it is stored ([`crate::BuildCtx::with_proposal`]).
#[derive(Debug, Clone, Default)]
pub struct Proposal {
    list: Option<(String, Vec<String>)>,
    required: Option<bool>,
}

impl Proposal {
    /// As if the secret `name` had the allowed destinations `list`.
    pub fn destinations(name: &str, list: Vec<String>) -> Self {
        Self { list: Some((name.to_owned(), list)), required: None }
    }

    /// As if the tenant's "destinations required" were `required`.
    pub fn destinations_required(required: bool) -> Self {
        Self { list: None, required: Some(required) }
    }

    /// The allowed destinations of the secret `name` and whether `tenant` requires them, as this
    /// change would make them.
    fn effective(&self, store: &Store, tenant: TenantId, name: &str) -> (Vec<String>, bool) {
        let list = match &self.list {
            Some((n, list)) if n == name => list.clone(),
            _ => store.allowed_destinations(tenant, name).unwrap_or_default(),
        };
        (list, self.required.unwrap_or_else(|| store.destinations_required(tenant)))
    }
}

/// The first of `names` of `tenant` that may not be sent to `host:port`, as the store is or as
/// `proposal` would make it.
pub(crate) fn destination_refused<'n>(
    store: &Store,
    tenant: TenantId,
    names: impl IntoIterator<Item = &'n str>,
    host: &str,
    port: u16,
    proposal: Option<&Proposal>,
) -> Option<DestinationRefused> {
    names.into_iter().find_map(|name| {
        // The message path reads the store as it is; only a change being validated pays for a
        // copy of the list.
        let checked = match proposal {
            Some(proposal) => {
                let (list, required) = proposal.effective(store, tenant, name);
                store.list_allows(tenant, &list, host, port, Some(required))
            }
            None => store.destination_allowed(tenant, name, host, port),
        };
        checked.err().map(|allowed| DestinationRefused {
            secret: name.to_owned(),
            destination: destination(host, port),
            why: if allowed.is_empty() {
                "it has no allowedDestinations and the tenant requires them".to_owned()
            } else {
                format!("its allowedDestinations: {}", allowed.join(", "))
            },
        })
    })
}

/// `host:port`, with brackets around an IPv6 host.
pub fn destination(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Secrets {
    /// Checks a send of this node's (or integration's) secrets to `host:port` against every
    /// declared secret's `allowedDestinations`. A refusal is written to the audit log
    /// (`BLOCKED_DESTINATION`, with the running configuration and `node`) and returned: the
    /// caller sends nothing. `shown` masks the destination wherever it is written (the node's
    /// redactor: a host templated from a secret must not reach the audit log, the log or a trace).
    /// `sealed` names the secrets of sealed values the send carries (opened from the message by
    /// [`crate::Rendered::sealed_secrets`]); they are checked like declared ones.
    pub async fn check_destination(
        &self,
        host: &str,
        port: u16,
        node: Option<&str>,
        sealed: &[String],
        shown: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<(), DestinationRefused> {
        let names = self.declared().iter().chain(sealed).map(String::as_str);
        self.refuse_or_allow(names, host, port, node, shown).await
    }

    /// [`Secrets::check_destination`] for a send that carries only some of the declared secrets,
    /// `names` (the token request of `rest_api_call`'s `oauth2` credentials carries the client id
    /// and secret, not the node's other secrets); refused and audited the same way.
    pub async fn check_destination_of(
        &self,
        names: &[String],
        host: &str,
        port: u16,
        node: Option<&str>,
        shown: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<(), DestinationRefused> {
        self.refuse_or_allow(names.iter().map(String::as_str), host, port, node, shown).await
    }

    async fn refuse_or_allow<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
        host: &str,
        port: u16,
        node: Option<&str>,
        shown: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<(), DestinationRefused> {
        match destination_refused(&self.inner.store, self.inner.tenant, names, host, port, None) {
            None => Ok(()),
            Some(mut refused) => {
                refused.destination = shown(&refused.destination);
                self.inner
                    .store
                    .record_blocked_destination(
                        self.inner.tenant,
                        &refused.secret,
                        &refused.destination,
                        node,
                        self.inner.user.get(),
                    )
                    .await;
                Err(refused)
            }
        }
    }
}

/// An HTTP header value made from a rendered secret, marked sensitive so HTTP libraries never
/// print it; `what` names the field in the error, never the value.
pub fn sensitive_header(
    value: &impl ExposeSecret<str>,
    what: &str,
) -> Result<http::HeaderValue, InvalidHeader> {
    let mut header =
        http::HeaderValue::from_str(value.expose_secret()).map_err(|_| InvalidHeader(what.to_owned()))?;
    header.set_sensitive(true);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn a_header_from_a_secret_is_sensitive_and_a_bad_one_names_the_field() {
        let header = sensitive_header(&SecretString::from("Bearer t0ken"), "token").unwrap();
        assert!(header.is_sensitive());
        assert_eq!(format!("{header:?}"), "Sensitive");
        let err = sensitive_header(&SecretString::from("a\r\nInjected: 1"), "token").unwrap_err();
        assert_eq!(err.to_string(), "token: the rendered value is not a valid HTTP header value");
    }
}
