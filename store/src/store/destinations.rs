//! Where a secret may be sent: each secret's `allowedDestinations` and the tenant's
//! "destinations required", both answered from memory on the message path.

use super::Store;
use crate::access::{Actor, Operation};
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
        self.inner.destinations_required.read().unwrap_or_else(|e| e.into_inner()).contains(&tenant)
    }

    pub(super) fn remember_destinations_required(&self, tenant: TenantId, on: bool) {
        let mut set = self.inner.destinations_required.write().unwrap_or_else(|e| e.into_inner());
        if on {
            set.insert(tenant);
        } else {
            set.remove(&tenant);
        }
    }

    pub(super) async fn load_destinations_required(&self) -> Result<()> {
        let on: std::collections::HashSet<TenantId> = self
            .inner
            .backend
            .tenants()
            .await?
            .into_iter()
            .filter(|t| t.destinations_required)
            .map(|t| t.id)
            .collect();
        *self.inner.destinations_required.write().unwrap_or_else(|e| e.into_inner()) = on;
        Ok(())
    }

    /// Turns the actor's tenant's "destinations required" on or off (tenant administrators: it
    /// takes `ROLE:WRITE`, what manages access). The caller checks the configurations first.
    pub async fn set_destinations_required(&self, actor: &Actor, on: bool) -> Result<bool> {
        actor.require_on(crate::access::Resource::Role, Operation::Write)?;
        self.inner.backend.set_destinations_required(actor.tenant_id, on).await?;
        self.remember_destinations_required(actor.tenant_id, on);
        tracing::info!(tenant = %actor.tenant_id, on, actor = %actor.username, "destinations required changed");
        Ok(on)
    }
}
