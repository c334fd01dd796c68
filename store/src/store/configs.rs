//! Stored configurations (rule chains and integrations): save with their secret references,
//! delete when unused, read as the actor may.

use uuid::Uuid;

use super::Store;
use crate::access::{Actor, Operation};
use crate::backend::{OwnerRecord, OwnerWrite};
use crate::error::{NeededKind, Result, StoreError};
use crate::model::TenantId;
use crate::quota::Quota;
use crate::references::{Owner, OwnerLink, OwnerType, ResolvedRef, SecretRef};

impl Store {
    /// A stored configuration by id as it is now, whoever may see it (for the host, which runs
    /// every tenant's); `None` when it does not exist.
    pub async fn owner_record(
        &self,
        tenant: TenantId,
        kind: OwnerType,
        id: Uuid,
    ) -> Result<Option<OwnerRecord>> {
        self.inner.backend.owner(tenant, kind, id).await
    }

    /// Saves a configuration and replaces all its references in one transaction. Every referenced
    /// secret must exist and be visible to the actor, who needs USE. A customer user may only
    /// overwrite its own customer's configurations.
    pub async fn save_owner(
        &self,
        actor: &Actor,
        owner: &Owner,
        body: &serde_json::Value,
        refs: &[SecretRef],
    ) -> Result<()> {
        self.save_owner_linked(actor, owner, body, refs, &[]).await
    }

    /// [`Store::save_owner`] for a configuration that also uses other configurations (a rule
    /// chain that sends downlinks through integrations): the links are replaced in the same
    /// transaction, each target must exist in the tenant, and the actor needs WRITE on it.
    pub async fn save_owner_linked(
        &self,
        actor: &Actor,
        owner: &Owner,
        body: &serde_json::Value,
        refs: &[SecretRef],
        links: &[OwnerLink],
    ) -> Result<()> {
        let (actor, owner, body, refs, links) =
            (actor.clone(), owner.clone(), body.clone(), refs.to_vec(), links.to_vec());
        self.detached(move |s| async move { s.save_owner_inner(&actor, &owner, &body, &refs, &links).await })
            .await
    }

    async fn save_owner_inner(
        &self,
        actor: &Actor,
        owner: &Owner,
        body: &serde_json::Value,
        refs: &[SecretRef],
        links: &[OwnerLink],
    ) -> Result<()> {
        if !refs.is_empty() {
            actor.require(Operation::Use)?;
        }
        for link in links {
            actor.require_on(owner_resource(link.kind), Operation::Write)?;
        }
        let resource = owner_resource(owner.kind);
        let exists = self.inner.backend.owner(actor.tenant_id, owner.kind, owner.id).await?.is_some();
        actor.require_on(resource, if exists { Operation::Write } else { Operation::Create })?;
        let _guard = self.inner.write.lock().await;
        self.tenant_alive(actor.tenant_id)?;
        if let Some(customer) = actor.customer_id {
            let existing = self.inner.backend.owner(actor.tenant_id, owner.kind, owner.id).await?;
            if existing.is_some_and(|o| o.owner.customer_id != Some(customer))
                || owner.customer_id != Some(customer)
            {
                return Err(StoreError::NotFound {
                    kind: owner_kind_name(owner.kind),
                    id: owner.id.to_string(),
                });
            }
        }
        let mut missing = Vec::new();
        let mut resolved = Vec::with_capacity(refs.len());
        for r in refs {
            match self.inner.index.by_name(actor.tenant_id, &r.secret_name) {
                Some(row) if actor.can_see(&row.info) => {
                    resolved.push(ResolvedRef { secret_id: row.info.id, reference: r })
                }
                _ => missing.push(r.secret_name.clone()),
            }
        }
        if !missing.is_empty() {
            missing.sort();
            missing.dedup();
            return Err(StoreError::UnknownSecrets(missing));
        }
        if self
            .inner
            .backend
            .save_owner(OwnerWrite {
                tenant: actor.tenant_id,
                visible_to: actor.customer_id,
                owner,
                body,
                refs: &resolved,
                links,
                quota: (!exists).then(|| Quota::for_owner(owner.kind, &self.inner.limits)),
            })
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::NotFound { kind: owner_kind_name(owner.kind), id: owner.id.to_string() })
        }
    }

    /// Deletes a configuration and its references in one statement.
    pub async fn delete_owner(&self, actor: &Actor, kind: OwnerType, id: Uuid) -> Result<()> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.delete_owner_inner(&actor, kind, id).await }).await
    }

    async fn delete_owner_inner(&self, actor: &Actor, kind: OwnerType, id: Uuid) -> Result<()> {
        // Visibility first: another customer's configuration does not exist for this actor.
        self.owner_visible(actor, kind, id).await?;
        actor.require_on(owner_resource(kind), Operation::Delete)?;
        let _guard = self.inner.write.lock().await;
        let users = self.inner.backend.links_to(id).await?;
        if !users.is_empty() {
            let record = self.owner_visible(actor, kind, id).await?;
            let places: Vec<String> = users
                .iter()
                .map(|(chain, node)| match node {
                    Some(node) => format!("rule chain '{chain}' (node '{node}')"),
                    None => format!("rule chain '{chain}'"),
                })
                .collect();
            return Err(StoreError::Needed {
                kind: NeededKind::Integration,
                message: format!(
                    "{} '{}' is in use by {}: change or delete those first",
                    owner_kind_name(kind),
                    record.owner.name,
                    places.join(", ")
                ),
            });
        }
        if self.inner.backend.delete_owner(actor.tenant_id, kind, id).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound { kind: owner_kind_name(kind), id: id.to_string() })
        }
    }

    /// One stored configuration of the actor's tenant, for reading.
    pub async fn owner(&self, actor: &Actor, kind: OwnerType, id: Uuid) -> Result<OwnerRecord> {
        self.owner_for(actor, kind, id, Operation::Read).await
    }

    /// One stored configuration the actor wants to act on with `op`: not found (404) when it
    /// cannot see it, forbidden (403) when it can but lacks the permission — in that order.
    pub async fn owner_for(
        &self,
        actor: &Actor,
        kind: OwnerType,
        id: Uuid,
        op: Operation,
    ) -> Result<OwnerRecord> {
        let found = self.owner_visible(actor, kind, id).await?;
        actor.require_on(owner_resource(kind), op)?;
        Ok(found)
    }

    /// A stored configuration if the actor can see it, whatever its permissions (the caller
    /// checks the one its operation needs).
    pub async fn owner_visible(&self, actor: &Actor, kind: OwnerType, id: Uuid) -> Result<OwnerRecord> {
        self.inner
            .backend
            .owner(actor.tenant_id, kind, id)
            .await?
            .filter(|o| actor.customer_id.is_none() || o.owner.customer_id == actor.customer_id)
            .ok_or_else(|| StoreError::NotFound { kind: owner_kind_name(kind), id: id.to_string() })
    }

    /// Every stored configuration of a kind in the actor's tenant (customer users: their own).
    pub async fn owners(&self, actor: &Actor, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        actor.require_on(owner_resource(kind), Operation::Read)?;
        let mut all = self.inner.backend.owners(actor.tenant_id, kind).await?;
        all.retain(|o| actor.customer_id.is_none() || o.owner.customer_id == actor.customer_id);
        Ok(all)
    }

    /// The configurations of a kind the actor can see, for a list: names, times, and of the body
    /// only `type` and `enabled` (a listing never loads every configuration whole).
    pub async fn owner_summaries(&self, actor: &Actor, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        actor.require_on(owner_resource(kind), Operation::Read)?;
        let mut all = self.inner.backend.owner_summaries(actor.tenant_id, kind).await?;
        all.retain(|o| actor.customer_id.is_none() || o.owner.customer_id == actor.customer_id);
        Ok(all)
    }

    /// Every stored configuration of a kind, across tenants: for starting them at boot. Not for
    /// serving requests (no actor, no access check).
    pub async fn all_owners(&self, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        self.inner.backend.all_owners(kind).await
    }

    /// Consistency check: references whose secret no longer exists (always 0).
    pub async fn dangling_references(&self) -> Result<i64> {
        self.inner.backend.dangling_references().await
    }
}

fn owner_resource(kind: OwnerType) -> crate::access::Resource {
    match kind {
        OwnerType::RuleChain => crate::access::Resource::RuleChain,
        OwnerType::Integration => crate::access::Resource::Integration,
        OwnerType::SecretProvider => crate::access::Resource::SecretProvider,
    }
}

pub(super) fn owner_kind_name(kind: OwnerType) -> &'static str {
    match kind {
        OwnerType::RuleChain => "rule chain",
        OwnerType::Integration => "integration",
        OwnerType::SecretProvider => "secret provider",
    }
}
