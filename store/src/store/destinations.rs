//! Where a secret may be sent: each secret's `allowedDestinations` and the tenant's
//! "destinations required", both answered from memory on the message path.

use super::Store;
use crate::access::{Actor, Operation};
use crate::directory::TenantSettings;
use crate::error::Result;
use crate::model::TenantId;

impl Store {
    /// Whether the secret `name` of `tenant` may be sent to `host` on `port`: `Err` with its
    /// allowed destinations when not (an empty list when the tenant requires a list and the
    /// secret has none). An unknown secret is not refused here: resolving it fails.
    pub fn destination_allowed(
        &self,
        tenant: TenantId,
        name: &str,
        host: &str,
        port: u16,
    ) -> std::result::Result<(), Vec<String>> {
        match self.inner.index.by_name(tenant, name) {
            Some(row) => self.list_allows(tenant, &row.info.allowed_destinations, host, port, None),
            None => Ok(()),
        }
    }

    /// Whether `list` (a secret's, or one proposed for it) lets a secret of `tenant` go to
    /// `host:port`; `required` overrides the tenant's "destinations required" (for a change not
    /// stored yet).
    pub fn list_allows(
        &self,
        tenant: TenantId,
        list: &[String],
        host: &str,
        port: u16,
        required: Option<bool>,
    ) -> std::result::Result<(), Vec<String>> {
        if list.is_empty() {
            // Only an empty list asks the tenant's setting (a lock), not every send.
            let required = required.unwrap_or_else(|| self.destinations_required(tenant));
            return if required { Err(Vec::new()) } else { Ok(()) };
        }
        if crate::destinations::destination_allowed(list, host, port) { Ok(()) } else { Err(list.to_vec()) }
    }

    /// The allowed destinations of the secret `name` of `tenant` (`None`: no such secret).
    pub fn allowed_destinations(&self, tenant: TenantId, name: &str) -> Option<Vec<String>> {
        self.inner.index.by_name(tenant, name).map(|row| row.info.allowed_destinations.clone())
    }

    /// Whether `tenant` requires every secret to name its allowed destinations.
    pub fn destinations_required(&self, tenant: TenantId) -> bool {
        let settings = self.inner.settings.read().unwrap_or_else(|e| e.into_inner());
        settings.get(&tenant).is_some_and(|s| s.destinations_required)
    }

    /// The tenants that want expiry notices, with where and when.
    pub fn expiry_notices(&self) -> Vec<(TenantId, crate::directory::ExpiryNotices)> {
        let settings = self.inner.settings.read().unwrap_or_else(|e| e.into_inner());
        settings.iter().filter_map(|(t, s)| Some((*t, s.expiry_notices.clone()?))).collect()
    }

    /// The settings of `tenant` (from memory, kept current like the index: read on the message
    /// and request paths, never from the database).
    pub fn tenant_settings(&self, tenant: TenantId) -> TenantSettings {
        let settings = self.inner.settings.read().unwrap_or_else(|e| e.into_inner());
        settings.get(&tenant).cloned().unwrap_or_default()
    }

    pub(super) fn remember_settings(&self, tenant: TenantId, now: Option<TenantSettings>) {
        let mut settings = self.inner.settings.write().unwrap_or_else(|e| e.into_inner());
        match now {
            Some(s) if s != TenantSettings::default() => settings.insert(tenant, s),
            _ => settings.remove(&tenant),
        };
    }

    pub(super) async fn load_settings(&self) -> Result<()> {
        let now: std::collections::HashMap<TenantId, TenantSettings> = self
            .inner
            .backend
            .tenants()
            .await?
            .into_iter()
            .map(|t| (t.id, t.settings()))
            .filter(|(_, s)| *s != TenantSettings::default())
            .collect();
        *self.inner.settings.write().unwrap_or_else(|e| e.into_inner()) = now;
        Ok(())
    }

    /// Changes the actor's tenant's settings (tenant administrators: it takes `ROLE:WRITE`, what
    /// manages access). The caller checks the configurations first when destinations become
    /// required.
    pub async fn set_tenant_settings(
        &self,
        actor: &Actor,
        settings: TenantSettings,
    ) -> Result<TenantSettings> {
        actor.require_on(crate::access::Resource::Role, Operation::Write)?;
        self.inner.backend.set_tenant_settings(actor.tenant_id, &settings).await?;
        self.remember_settings(actor.tenant_id, Some(settings.clone()));
        tracing::info!(tenant = %actor.tenant_id, ?settings, actor = %actor.username, "tenant settings changed");
        Ok(settings)
    }
}
