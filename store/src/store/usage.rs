//! When secrets were last used: per secret and per configuration, from the use counts (the start
//! of the minute of the last use), kept apart from the audit log so that it outlives the audit
//! retention, and read from the database so that every instance's uses count.

use std::collections::HashMap;

use uuid::Uuid;

use super::Store;
use crate::access::{Actor, Operation};
use crate::audit::{AuditAction, AuditQuery, NewAuditEntry};
use crate::error::Result;
use crate::model::SecretId;

impl Store {
    /// Records the last uses among `entries` (the use counts being written to the audit log).
    pub(super) async fn record_last_uses(&self, entries: &[NewAuditEntry]) {
        let uses: Vec<(SecretId, Uuid, i64)> = entries
            .iter()
            .filter(|e| e.action == AuditAction::Use)
            .filter_map(|e| {
                let secret = e.target_id.as_deref()?.parse().ok()?;
                let owner = e.actor_id.as_deref()?.parse().ok()?;
                Some((secret, owner, e.time))
            })
            .collect();
        if uses.is_empty() {
            return;
        }
        if let Err(e) = self.inner.backend.record_uses(&uses).await {
            tracing::warn!("recording when secrets were last used failed: {e}");
        }
    }

    /// When each of the actor's tenant's secrets was last used by any configuration (absent:
    /// never, as far as the use counts tell). Counts not yet written are written first. A
    /// customer user learns nothing of the tenant's uses: an empty map.
    pub async fn last_used(&self, actor: &Actor) -> Result<HashMap<SecretId, i64>> {
        actor.require(Operation::Read)?;
        if actor.customer_id.is_some() {
            return Ok(HashMap::new());
        }
        self.flush_uses().await;
        let mut latest: HashMap<SecretId, i64> = HashMap::new();
        for (secret, _, time) in self.inner.backend.last_used(actor.tenant_id, None).await? {
            let at = latest.entry(secret).or_insert(time);
            *at = (*at).max(time);
        }
        Ok(latest)
    }

    /// When each of the secrets `ids` was last used (a page's secrets: the cost follows the page,
    /// not the tenant's uses); a customer user learns nothing (empty).
    pub async fn last_used_among(&self, actor: &Actor, ids: &[SecretId]) -> Result<HashMap<SecretId, i64>> {
        actor.require(Operation::Read)?;
        if actor.customer_id.is_some() {
            return Ok(HashMap::new());
        }
        self.flush_uses().await;
        let mut latest: HashMap<SecretId, i64> = HashMap::new();
        for (secret, _, time) in self.inner.backend.last_used(actor.tenant_id, Some(ids)).await? {
            let at = latest.entry(secret).or_insert(time);
            *at = (*at).max(time);
        }
        Ok(latest)
    }

    /// When any configuration last used the secret `id` (one secret's rows, not the tenant's; a
    /// customer user learns nothing: `None`).
    pub async fn last_used_of(&self, actor: &Actor, id: SecretId) -> Result<Option<i64>> {
        self.visible(actor, id)?;
        actor.require(Operation::Read)?;
        if actor.customer_id.is_some() {
            return Ok(None);
        }
        Ok(self.last_used_by(actor, id).await?.into_values().max())
    }

    /// When each configuration last used the secret `id`.
    pub(super) async fn last_used_by(&self, actor: &Actor, id: SecretId) -> Result<HashMap<Uuid, i64>> {
        self.flush_uses().await;
        let uses = self.inner.backend.last_used(actor.tenant_id, Some(&[id])).await?;
        Ok(uses.into_iter().map(|(_, owner, time)| (owner, time)).collect())
    }

    /// How many times each configuration used the secret `id` since `since` (from the use counts
    /// of the audit log). Needs SECRET:WRITE: it is what a change of the value would touch.
    pub async fn uses_since(&self, actor: &Actor, id: SecretId, since: i64) -> Result<HashMap<Uuid, u64>> {
        self.visible(actor, id)?;
        actor.require(Operation::Write)?;
        self.flush_uses().await;
        let mut uses: HashMap<Uuid, u64> = HashMap::new();
        for page in 0.. {
            let query = AuditQuery {
                secret_id: Some(id),
                from: Some(since),
                page,
                page_size: 1000,
                ..Default::default()
            };
            let (entries, total) = self.inner.backend.audit_logs(actor.tenant_id, &query).await?;
            for entry in entries.iter().filter(|e| e.action == AuditAction::Use) {
                let owner = entry.actor_id.as_deref().and_then(|o| o.parse().ok());
                if let Some(owner) = owner {
                    *uses.entry(owner).or_default() += entry.details["count"].as_u64().unwrap_or(0);
                }
            }
            if (page + 1) * 1000 >= usize::try_from(total).unwrap_or(usize::MAX) {
                break;
            }
        }
        Ok(uses)
    }
}
