//! The audit log: what each write records, secret uses and refused sends counted per minute,
//! sign-ins, reading the log, and purging old entries.

use super::{Page, Store};
use crate::access::{Actor, Operation, Resource};
use crate::audit::{AuditAction, AuditEntry, AuditQuery, NewAuditEntry};
use crate::directory::UserRecord;
use crate::error::{Result, StoreError};
use crate::model::{SecretInfo, TenantId, now_ms};

impl Store {
    pub(super) async fn write_audit(&self, entries: Vec<NewAuditEntry>) {
        if entries.is_empty() {
            return;
        }
        if let Err(e) = self.inner.backend.insert_audit(&entries).await {
            tracing::error!(error = %e, "writing the audit log failed");
        }
    }

    /// Records a refused action on a secret by a user (nothing was written, so nothing to commit
    /// it with).
    pub(crate) async fn audit_refusal(
        &self,
        actor: &Actor,
        action: AuditAction,
        info: &SecretInfo,
        details: serde_json::Value,
    ) {
        self.write_audit(vec![secret_entry(actor, action, info, false, details)]).await;
    }

    /// Records a send refused because `secret` may not go to `destination` (`host:port`): the
    /// actor is the running configuration `user` (when there is one), with its node.
    /// Counted like uses: one audit entry per secret, configuration, node, destination and minute
    /// (with the count), written with the use counts.
    pub async fn record_blocked_destination(
        &self,
        tenant: TenantId,
        secret: &str,
        destination: &str,
        node: Option<&str>,
        user: Option<&crate::audit::UseContext>,
    ) {
        let context = user;
        let secret_id = self.inner.index.by_name(tenant, secret).map(|row| row.info.id.to_string());
        let owner = context.as_ref().map(|c| (c.kind, c.id));
        let key = crate::audit::BlockedKey::now(tenant, secret, owner, node, destination);
        if self.inner.blocked.count(key, secret_id, context.as_ref().map(|c| c.name.clone())) {
            let actor = context
                .as_ref()
                .map_or_else(|| "veil".to_owned(), |c| format!("{} '{}'", c.kind.as_str(), c.name));
            tracing::warn!(secret, destination, actor = %actor, "send blocked: destination not allowed for the secret (counted per minute)");
        }
    }

    /// Records a login attempt. `user` is the account when the name exists; `address` is the
    /// client's. Failed logins of unknown names are kept without a tenant and without the name
    /// (people type passwords into the username field).
    pub async fn record_login(&self, user: Option<&UserRecord>, success: bool, address: Option<String>) {
        let action = if success { AuditAction::Login } else { AuditAction::LoginFailed };
        self.write_audit(vec![NewAuditEntry {
            tenant_id: user.map(|u| u.tenant_id),
            time: now_ms(),
            actor_id: user.map(|u| u.id.to_string()),
            actor_name: user.map_or_else(|| "(unknown user)".to_owned(), |u| u.username.clone()),
            action,
            target_type: user.map(|_| "USER"),
            target_id: user.map(|u| u.id.to_string()),
            target_name: user.map(|u| u.username.clone()),
            success,
            details: serde_json::json!({ "address": address }),
        }])
        .await;
    }

    /// Writes the use counts gathered so far (all of them, the current minute's too).
    pub async fn flush_uses(&self) {
        let mut entries = self.inner.uses.drain(true);
        self.record_last_uses(&entries).await;
        entries.extend(self.inner.blocked.drain(true));
        self.write_audit(entries).await;
    }

    /// Writes the use counts of finished minutes; the store calls this periodically.
    pub(crate) async fn flush_finished_uses(&self) {
        let mut entries = self.inner.uses.drain(false);
        self.record_last_uses(&entries).await;
        entries.extend(self.inner.blocked.drain(false));
        self.write_audit(entries).await;
    }

    /// Deletes audit entries older than the retention (`auditRetentionDays`), all tenants'.
    pub(crate) async fn purge_old_audit(&self) {
        let days = self.inner.limits.audit_retention_days;
        let before =
            now_ms() - i64::try_from(days).unwrap_or(i64::MAX / 86_400_000).saturating_mul(86_400_000);
        match self.inner.backend.delete_audit_before(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, days, "audit entries past the retention deleted"),
            Err(e) => tracing::warn!("deleting old audit entries failed: {e}"),
        }
    }

    /// One page of the actor's tenant's audit log, newest first. Use counts are flushed first.
    pub async fn audit_logs(&self, actor: &Actor, query: &AuditQuery) -> Result<Page<AuditEntry>> {
        actor.require_on(Resource::AuditLog, Operation::Read)?;
        if !(1..=1000).contains(&query.page_size) {
            return Err(StoreError::input("pageSize", "must be 1..1000"));
        }
        self.flush_uses().await;
        let (entries, total) = self.inner.backend.audit_logs(actor.tenant_id, query).await?;
        let total = total as usize;
        let total_pages = total.div_ceil(query.page_size);
        // A page beyond the end (however large its number) is empty and has no next page, as in
        // every other listing.
        let has_next = query.page.saturating_add(1) < total_pages;
        Ok(Page { data: entries, total_elements: total, total_pages, has_next })
    }
}

/// The audit entry of an action on a secret by a user: a write passes it to its transaction.
pub(crate) fn secret_entry(
    actor: &Actor,
    action: AuditAction,
    info: &SecretInfo,
    success: bool,
    details: serde_json::Value,
) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: Some(info.tenant_id),
        time: now_ms(),
        actor_id: Some(actor.user_id.to_string()),
        actor_name: actor.username.clone(),
        action,
        target_type: Some("SECRET"),
        target_id: Some(info.id.to_string()),
        target_name: Some(info.name.clone()),
        success,
        details,
    }
}
