//! Secrets: create, read, list, update, delete, share, and resolve a value for a running
//! configuration. Every call checks the actor's permissions here.

use std::sync::Arc;

use super::audit::secret_entry;
use super::{ListQuery, Page, Store};
use crate::access::{Actor, Operation};
use crate::audit::AuditAction;
use crate::audit::UseContext;
use crate::backend::{DeleteOutcome, SecretRow};
use crate::error::{NameConflict, Result, StoreError};
use crate::events::ChangeKind;
use crate::model::{
    CustomerId, NewSecret, SecretId, SecretInfo, SecretUpdate, SecretValue, TenantId, now_ms, validate_update,
};
use crate::provider::Source;
use crate::quota::Quota;
use crate::references::Usages;

impl Store {
    /// Creates a secret (version 1).
    pub async fn create(&self, actor: &Actor, req: NewSecret) -> Result<SecretInfo> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.create_inner(&actor, req, None).await }).await
    }

    /// Creates a linked secret: its value comes from `source` (a provider of the tenant) at
    /// execution time and is never stored; `req.value` is ignored. A FILE secret without a file
    /// name takes the key's last part.
    pub async fn create_linked(
        &self,
        actor: &Actor,
        mut req: NewSecret,
        source: Source,
    ) -> Result<SecretInfo> {
        if req.kind == crate::SecretType::File && req.file_name.is_none() {
            req.file_name = source.key.rsplit('/').next().map(str::to_owned);
        }
        let actor = actor.clone();
        self.detached(move |s| async move { s.create_inner(&actor, req, Some(source)).await }).await
    }

    /// Points a linked secret at another source (SECRET:WRITE): its next use fetches from there.
    pub async fn relink(&self, actor: &Actor, id: SecretId, source: Source) -> Result<SecretInfo> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.relink_inner(&actor, id, source).await }).await
    }

    async fn relink_inner(&self, actor: &Actor, id: SecretId, source: Source) -> Result<SecretInfo> {
        self.visible(actor, id)?;
        actor.require(Operation::Write)?;
        let _guard = self.inner.write.lock().await;
        let current = self.visible(actor, id)?;
        if current.info.source.is_none() {
            return Err(StoreError::invalid(
                "source",
                format!(
                    "secret '{}' is stored in Veil; a stored secret cannot become a linked one",
                    current.info.name
                ),
            ));
        }
        self.check_source(actor.tenant_id, &source)?;
        let mut info = current.info.clone();
        if info.source.as_ref() == Some(&source) {
            return Ok(self.with_status(shown(actor, &info)));
        }
        let details = serde_json::json!({ "source": source });
        info.source = Some(source);
        info.updated_time = now_ms();
        let row = SecretRow { info: info.clone(), sealed: current.sealed.clone() };
        let expected = crate::backend::Expected {
            version: current.info.version,
            updated_time: Some(current.info.updated_time),
        };
        let audit = [secret_entry(actor, AuditAction::SourceChange, &info, true, details)];
        if !self.inner.backend.update_secret(&row, None, expected, None, &audit).await? {
            return Err(StoreError::Conflict(info.name));
        }
        self.inner.index.insert(row);
        self.inner.linked.expire(info.id);
        tracing::info!(secret = %info.name, actor = %actor.username, "linked secret's source changed");
        self.publish(&info, ChangeKind::DescriptionUpdated);
        Ok(self.with_status(shown(actor, &info)))
    }

    async fn create_inner(
        &self,
        actor: &Actor,
        req: NewSecret,
        source: Option<Source>,
    ) -> Result<SecretInfo> {
        actor.require(Operation::Create)?;
        let valid = crate::model::validate_new_secret(&req, &self.inner.limits, source.is_none())?;
        if let Some(source) = &source {
            self.check_source(actor.tenant_id, source)?;
        }
        let _guard = self.inner.write.lock().await;
        self.tenant_alive(actor.tenant_id)?;
        if self.inner.index.by_name(actor.tenant_id, &valid.name).is_some() {
            return Err(StoreError::NameTaken(valid.name));
        }
        self.refuse_lookalike_secret(actor.tenant_id, &valid.name)?;
        let now = now_ms();
        let mut info = SecretInfo {
            id: SecretId::new_random(),
            tenant_id: actor.tenant_id,
            name: valid.name,
            kind: req.kind,
            description: valid.description,
            file_name: valid.file_name,
            version: 1,
            created_time: now,
            updated_time: now,
            shared_with: Vec::new(),
            allowed_destinations: valid.allowed_destinations,
            max_versions: valid.max_versions,
            expires_at: valid.expires_at,
            certificate: None,
            private_key: None,
            source,
            status: None,
        };
        // A linked secret's row holds an encrypted empty value: its value is never Veil's.
        let value = match info.source {
            Some(_) => &SecretValue::new(Vec::new()),
            None => &req.value,
        };
        describe_value(&mut info, value);
        let sealed = self.keyring().seal(info.tenant_id, info.id, info.version, value);
        let version = self.new_version(actor, &info, value);
        let row = SecretRow { info: info.clone(), sealed };
        let limits = self.inner.limits;
        let quotas = [
            Quota::Secrets(limits.max_secrets_per_tenant),
            Quota::SecretBytes(limits.max_secret_bytes_per_tenant),
        ];
        let details = serde_json::json!({ "type": info.kind, "version": info.version });
        let audit = [secret_entry(actor, AuditAction::Create, &info, true, details)];
        self.inner.backend.insert_secret(&row, &version, &quotas, &audit).await?;
        self.inner.index.insert(row);
        tracing::info!(secret = %info.name, id = %info.id, actor = %actor.username, "secret created");
        self.publish(&info, ChangeKind::Created);
        Ok(self.with_status(info))
    }

    /// Refuses a new secret name that looks like (has the same UTS #39 skeleton as) another
    /// secret of the tenant: `s-b\u{430}sic` next to `s-basic` would be a trap in every
    /// configuration that references one of them.
    fn refuse_lookalike_secret(&self, tenant: TenantId, name: &str) -> Result<()> {
        match self.inner.index.lookalike(tenant, name) {
            Some(other) => Err(StoreError::NameUnavailable {
                conflict: NameConflict::Lookalike,
                message: format!(
                    "name: '{name}' looks like the existing secret '{other}'; choose a name that can be told apart"
                ),
            }),
            None => Ok(()),
        }
    }

    /// Metadata of one secret.
    pub fn get(&self, actor: &Actor, id: SecretId) -> Result<SecretInfo> {
        let row = self.visible(actor, id)?;
        actor.require(Operation::Read)?;
        Ok(self.with_status(shown(actor, &row.info)))
    }

    /// Metadata of a secret by name, if the actor can see it (used to validate configurations).
    pub fn find(&self, actor: &Actor, name: &str) -> Option<SecretInfo> {
        self.inner
            .index
            .by_name(actor.tenant_id, name)
            .filter(|row| actor.can_see(&row.info))
            .map(|row| row.info.clone())
    }

    /// Whether [`Store::find`] finds `name` for `actor`, without copying what it would give.
    pub fn sees(&self, actor: &Actor, name: &str) -> bool {
        self.inner.index.by_name(actor.tenant_id, name).is_some_and(|row| actor.can_see(&row.info))
    }

    /// One page of the actor's secrets, sorted by name.
    pub fn list(&self, actor: &Actor, query: &ListQuery) -> Result<Page<SecretInfo>> {
        let searching = query.text_search.as_deref().is_some_and(|s| !s.is_empty());
        if actor.customer_id.is_some() || searching {
            return self.list_where(actor, query, |_| true);
        }
        // A tenant user sees every secret of the tenant: the page is found by position.
        actor.require(Operation::Read)?;
        let (page, size) = (query.page, super::checked_page_size(query.page_size)?);
        let (total, rows) =
            self.inner.index.name_order_page(actor.tenant_id, page.saturating_mul(size), size);
        let data = rows.iter().map(|row| self.with_status(shown(actor, &row.info))).collect();
        Ok(Page::counted(data, total, page, size))
    }

    /// [`Store::list`] of the secrets `keep` keeps (before paging).
    pub fn list_where(
        &self,
        actor: &Actor,
        query: &ListQuery,
        keep: impl Fn(&SecretInfo) -> bool,
    ) -> Result<Page<SecretInfo>> {
        actor.require(Operation::Read)?;
        let (page, size) = (query.page, super::checked_page_size(query.page_size)?);
        let needle = query.text_search.as_deref().map(str::to_lowercase).filter(|s| !s.is_empty());
        // The tenant's secrets are kept in name order: count the matches and copy only the
        // page's rows (a search looks at the names first, the rows of matching names only).
        let first = page.saturating_mul(size);
        let mut total = 0usize;
        let mut data = Vec::with_capacity(size);
        let finder = needle.as_deref().map(memchr::memmem::Finder::new);
        self.inner.index.in_name_order(actor.tenant_id, |lowercase, row| {
            if finder.as_ref().is_none_or(|f| f.find(lowercase.as_bytes()).is_some())
                && actor.can_see(&row.info)
                && keep(&row.info)
            {
                if total >= first && data.len() < size {
                    data.push(self.with_status(shown(actor, &row.info)));
                }
                total += 1;
            }
            true
        });
        Ok(Page::counted(data, total, page, size))
    }

    /// Changes value and/or description. A new value is a new version; with
    /// `expected_version` (check-and-set) nothing changes unless that is still the current one.
    pub async fn update(&self, actor: &Actor, id: SecretId, req: SecretUpdate) -> Result<SecretInfo> {
        self.change(actor, id, req, None).await
    }

    /// [`Store::update`], with the value change audited as `value_action` (a rollback) instead.
    pub(super) async fn change(
        &self,
        actor: &Actor,
        id: SecretId,
        req: SecretUpdate,
        value_action: Option<(AuditAction, serde_json::Value)>,
    ) -> Result<SecretInfo> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.update_inner(&actor, id, req, value_action).await }).await
    }

    async fn update_inner(
        &self,
        actor: &Actor,
        id: SecretId,
        req: SecretUpdate,
        value_action: Option<(AuditAction, serde_json::Value)>,
    ) -> Result<SecretInfo> {
        self.visible(actor, id)?;
        actor.require(Operation::Write)?;
        let _guard = self.inner.write.lock().await;
        let current = self.at_expected(actor, id, req.expected_version, req.value.is_some()).await?;
        if req.value.is_some() && !matches!(value_action, Some((AuditAction::Promote, _))) {
            self.refuse_if_pending(&current.info).await?;
        }
        let valid = validate_update(&current.info, &req, &self.inner.limits)?;
        let mut info = current.info.clone();
        let description_changed = valid.description.as_ref().is_some_and(|d| *d != info.description)
            || valid.file_name.as_ref().is_some_and(|f| Some(f) != info.file_name.as_ref());
        let destinations_changed =
            valid.allowed_destinations.as_ref().is_some_and(|d| *d != info.allowed_destinations);
        if let Some(d) = valid.description {
            info.description = d;
        }
        if let Some(f) = valid.file_name {
            info.file_name = Some(f);
        }
        if let Some(list) = valid.allowed_destinations {
            info.allowed_destinations = list;
        }
        let max_versions_changed = valid.max_versions.is_some_and(|m| m != info.max_versions);
        if let Some(max) = valid.max_versions {
            info.max_versions = max;
        }
        let expiry_changed = req.expires_at.is_some_and(|at| at != info.expires_at);
        if let Some(at) = req.expires_at {
            info.expires_at = at;
        }
        if let Some(value) = &req.value {
            describe_value(&mut info, value);
        }
        let (sealed, version) = match &req.value {
            Some(value) => {
                info.version += 1;
                let sealed = self.keyring().seal(info.tenant_id, info.id, info.version, value);
                (sealed, Some(self.new_version(actor, &info, value)))
            }
            None => (current.sealed.clone(), None),
        };
        info.updated_time = now_ms();
        let row = SecretRow { info: info.clone(), sealed };
        let expected = crate::backend::Expected {
            version: current.info.version,
            updated_time: Some(current.info.updated_time),
        };
        let quota =
            req.value.is_some().then_some(Quota::SecretBytes(self.inner.limits.max_secret_bytes_per_tenant));
        let mut audit = Vec::new();
        if req.value.is_some() {
            let (action, mut details) =
                value_action.unwrap_or((AuditAction::ValueChange, serde_json::json!({})));
            if let Some(map) = details.as_object_mut() {
                map.insert("version".into(), info.version.into());
            }
            audit.push(secret_entry(actor, action, &info, true, details));
        }
        if expiry_changed {
            let details = serde_json::json!({ "expiresAt": info.expires_at });
            audit.push(secret_entry(actor, AuditAction::ExpiryChange, &info, true, details));
        }
        if max_versions_changed {
            let details = serde_json::json!({ "maxVersions": info.max_versions });
            audit.push(secret_entry(actor, AuditAction::MaxVersionsChange, &info, true, details));
        }
        if description_changed {
            audit.push(secret_entry(
                actor,
                AuditAction::DescriptionChange,
                &info,
                true,
                serde_json::json!({}),
            ));
        }
        if destinations_changed {
            let details = serde_json::json!({ "allowedDestinations": info.allowed_destinations });
            audit.push(secret_entry(actor, AuditAction::DestinationsChange, &info, true, details));
        }
        if !self.inner.backend.update_secret(&row, version.as_ref(), expected, quota, &audit).await? {
            // Another instance changed it first (this one's index has not heard yet).
            if let Some(expected) = req.expected_version
                && let Some(feed) = self.inner.backend.change_feed()
                && let Some(now) = feed.reload_secret(id).await?
            {
                return Err(self.version_mismatch(&now.info, expected));
            }
            return Err(StoreError::Conflict(info.name));
        }
        self.inner.index.insert(row);
        tracing::info!(secret = %info.name, version = info.version, actor = %actor.username, "secret updated");
        if req.value.is_some() {
            self.publish(&info, ChangeKind::ValueUpdated(info.version));
        }
        if description_changed || destinations_changed || expiry_changed || max_versions_changed {
            self.publish(&info, ChangeKind::DescriptionUpdated);
        }
        Ok(info)
    }

    /// The secret as the caller expects it: with `expected` (check-and-set), only while that is
    /// its current version (asking the database first when another instance may have written
    /// it); a value change without one is refused when the tenant requires check-and-set.
    pub(super) async fn at_expected(
        &self,
        actor: &Actor,
        id: SecretId,
        expected: Option<i64>,
        value_change: bool,
    ) -> Result<Arc<SecretRow>> {
        let mut current = self.visible(actor, id)?;
        if value_change && let Some(source) = &current.info.source {
            return Err(StoreError::invalid(
                "value",
                format!(
                    "secret '{}' is linked to provider '{}': its value is changed there, not in Veil",
                    current.info.name, source.provider
                ),
            ));
        }
        if value_change && expected.is_none() && self.tenant_settings(actor.tenant_id).cas_required {
            return Err(StoreError::VersionRequired {
                name: current.info.name.clone(),
                current: current.info.version,
            });
        }
        if let Some(expected) = expected
            && expected != current.info.version
        {
            // The caller may have read a version another instance wrote that this one has not
            // heard of yet: ask the database before refusing.
            if expected > current.info.version
                && let Some(feed) = self.inner.backend.change_feed()
            {
                let now = feed.reload_secret(id).await?;
                self.replace_row(Some(&current), now);
                current = self.visible(actor, id)?;
            }
            if expected != current.info.version {
                return Err(self.version_mismatch(&current.info, expected));
            }
        }
        Ok(current)
    }

    pub(super) fn version_mismatch(&self, current: &SecretInfo, expected: i64) -> StoreError {
        StoreError::VersionMismatch { name: current.name.clone(), expected, current: current.version }
    }

    /// Deletes a secret; refused with the list of users while any configuration references it.
    pub async fn delete(&self, actor: &Actor, id: SecretId) -> Result<()> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.delete_inner(&actor, id).await }).await
    }

    async fn delete_inner(&self, actor: &Actor, id: SecretId) -> Result<()> {
        self.visible(actor, id)?;
        actor.require(Operation::Delete)?;
        let _guard = self.inner.write.lock().await;
        let current = self.visible(actor, id)?;
        let details = serde_json::json!({ "version": current.info.version });
        let audit = [secret_entry(actor, AuditAction::Delete, &current.info, true, details)];
        match self.inner.backend.delete_secret(id, &audit).await? {
            DeleteOutcome::InUse(usages) => {
                let details = serde_json::json!({ "references": usages });
                self.audit_refusal(actor, AuditAction::DeleteRefused, &current.info, details).await;
                Err(StoreError::InUse {
                    name: current.info.name.clone(),
                    usages: Box::new(self.visible_usages(actor, usages)),
                })
            }
            DeleteOutcome::Deleted => {
                self.inner.index.remove(&current.info);
                self.inner.linked.remove(current.info.id);
                tracing::info!(secret = %current.info.name, actor = %actor.username, "secret deleted");
                self.publish(&current.info, ChangeKind::Deleted);
                Ok(())
            }
        }
    }

    /// Who references a secret, grouped by owner type.
    pub async fn usages(&self, actor: &Actor, id: SecretId) -> Result<Usages> {
        self.visible(actor, id)?;
        actor.require(Operation::Read)?;
        let mut usages = self.inner.backend.usages(id, actor.customer_id).await?;
        let used = self.last_used_by(actor, id).await?;
        for owner in usages.rule_chains.iter_mut().chain(usages.integrations.iter_mut()) {
            owner.last_used_time = used.get(&owner.id).copied();
        }
        Ok(usages)
    }

    /// What a refused delete may show the actor: tenant users see every use; customer users never
    /// act on secrets, so this is for completeness.
    fn visible_usages(&self, actor: &Actor, usages: Usages) -> Usages {
        if actor.customer_id.is_some() { Usages::default() } else { usages }
    }

    /// Decrypts a secret for execution. Internal capability: only the engine and integrations call
    /// this, never an HTTP route. Errors carry the name, never the value. Not counted as a use;
    /// see [`Store::resolve_used_by`].
    pub fn resolve(&self, tenant: TenantId, name: &str) -> Result<SecretValue> {
        self.decrypt(tenant, name, None)
    }

    /// [`Store::resolve`] for the running configuration `user` (when there is one): counted as its
    /// use of the secret, written to the audit log per minute.
    pub fn resolve_used_by(
        &self,
        tenant: TenantId,
        name: &str,
        user: Option<&UseContext>,
    ) -> Result<SecretValue> {
        self.decrypt(tenant, name, user)
    }

    /// Like [`Store::resolve`], but not counted as a use in the audit log: for learning values to
    /// mask them, which is not using them.
    pub fn resolve_for_masking(&self, tenant: TenantId, name: &str) -> Result<SecretValue> {
        self.decrypt(tenant, name, None)
    }

    /// Every value of a secret that must stay masked: the current one first, then the earlier
    /// values the store keeps (of the last `maxVersions` versions, newest first), so that a rotated-out value is masked
    /// after a restart and by configurations created after the rotation. For the redactor only:
    /// never returned through any API; not counted as a use. An earlier value that no longer
    /// decrypts is skipped.
    pub fn values_for_masking(&self, tenant: TenantId, name: &str) -> Result<Vec<SecretValue>> {
        let row = self.inner.index.by_name(tenant, name).ok_or_else(|| StoreError::secret_not_found(name))?;
        let info = &row.info;
        if info.source.is_some() {
            return Ok(self.linked_masking(info));
        }
        let keyring = self.keyring();
        let current = keyring
            .open(info.tenant_id, info.id, info.version, &row.sealed)
            .ok_or_else(|| StoreError::Integrity(info.name.clone()))?;
        let mut values = vec![current];
        for earlier in self.inner.backend.earlier_values(info.id) {
            values.extend(keyring.open(info.tenant_id, info.id, earlier.version, &earlier.sealed));
        }
        Ok(values)
    }

    fn decrypt(&self, tenant: TenantId, name: &str, user: Option<&UseContext>) -> Result<SecretValue> {
        // Decrypt under the index's read guards instead of cloning the row's Arc: readers never
        // block each other, and it keeps two atomic operations off the hot path.
        let names = self.inner.index.by_name.get(&tenant);
        let row = names
            .as_ref()
            .and_then(|names| names.get(name))
            .ok_or_else(|| StoreError::secret_not_found(name))?;
        let info = &row.info;
        if let Some(user) = user {
            self.inner.uses.count(tenant, info.id, name, user);
        }
        if info.source.is_some() {
            return self.linked_value(info);
        }
        self.keyring()
            .open(info.tenant_id, info.id, info.version, &row.sealed)
            .ok_or_else(|| StoreError::Integrity(info.name.clone()))
    }

    /// The largest value a secret could hold: its type's limit (from the index, no decryption).
    /// What a script may assume of a sealed value's length, whatever the value is.
    pub fn max_value_bytes(&self, tenant: TenantId, name: &str) -> Option<usize> {
        let kind = self.inner.index.by_name.get(&tenant)?.get(name).map(|row| row.info.kind)?;
        let limits = self.limits();
        Some(match kind {
            crate::SecretType::Text => limits.max_text_bytes,
            crate::SecretType::File => limits.max_file_bytes,
        })
    }

    /// The current version of a secret, from the index (no decryption). Lets callers that cache
    /// something derived from a value notice a change.
    pub fn version(&self, tenant: TenantId, name: &str) -> Option<i64> {
        self.value_key(tenant, name).map(|(_, version)| version)
    }

    /// The id and current version of a secret: what identifies its values (a secret deleted and
    /// made again under the same name has another id).
    /// For a linked secret the version is its generation on this instance: +1 for every
    /// different value fetched.
    pub fn value_key(&self, tenant: TenantId, name: &str) -> Option<(SecretId, i64)> {
        self.inner.index.by_name.get(&tenant)?.get(name).map(|row| match row.info.source {
            Some(_) => (row.info.id, self.linked_generation(&row.info)),
            None => (row.info.id, row.info.version),
        })
    }

    /// Every secret's metadata, of every tenant (for checking a copy).
    pub(crate) fn all_secrets(&self) -> Vec<SecretInfo> {
        self.inner.index.by_id.iter().map(|r| r.value().info.clone()).collect()
    }

    /// Shares a secret with a customer of the tenant: its users may use it, never read its value.
    pub async fn share(&self, actor: &Actor, id: SecretId, customer: CustomerId) -> Result<SecretInfo> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.share_inner(&actor, id, customer, true).await }).await
    }

    /// Stops sharing; refused while the customer's configurations use the secret.
    pub async fn unshare(&self, actor: &Actor, id: SecretId, customer: CustomerId) -> Result<SecretInfo> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.share_inner(&actor, id, customer, false).await }).await
    }

    async fn share_inner(
        &self,
        actor: &Actor,
        id: SecretId,
        customer: CustomerId,
        share: bool,
    ) -> Result<SecretInfo> {
        self.visible(actor, id)?;
        actor.require(Operation::Write)?;
        if actor.customer_id.is_some() {
            return Err(StoreError::Forbidden("missing permission SECRET:WRITE".into()));
        }
        let c = self.customer(actor, customer).await?;
        let _guard = self.inner.write.lock().await;
        let current = self.visible(actor, id)?;
        let mut info = current.info.clone();
        let details = serde_json::json!({ "customerId": c.id, "customerName": c.name });
        let action = if share { AuditAction::Share } else { AuditAction::Unshare };
        let audit = [secret_entry(actor, action, &info, true, details.clone())];
        if share {
            self.inner.backend.insert_share(id, customer, &audit).await?;
            if !info.shared_with.contains(&customer) {
                info.shared_with.push(customer);
                info.shared_with.sort();
            }
        } else {
            if let Some(usages) = self.inner.backend.delete_share(id, customer, &audit).await? {
                self.audit_refusal(actor, AuditAction::UnshareRefused, &info, details).await;
                return Err(StoreError::InUse { name: info.name.clone(), usages: Box::new(usages) });
            }
            info.shared_with.retain(|c| *c != customer);
        }
        self.inner.index.insert(super::SecretRow { info: info.clone(), sealed: current.sealed.clone() });
        Ok(info)
    }
}

/// What a FILE value is (its certificate and key metadata), kept with the secret's metadata.
fn describe_value(info: &mut SecretInfo, value: &SecretValue) {
    (info.certificate, info.private_key) = match info.kind {
        crate::SecretType::File => crate::inspect::inspect(value.expose_bytes()),
        crate::SecretType::Text => (None, None),
    };
}

/// A secret's metadata as `actor` may see it: a customer learns of no other customer.
fn shown(actor: &Actor, info: &SecretInfo) -> SecretInfo {
    let mut info = info.clone();
    if let Some(own) = actor.customer_id {
        info.shared_with.retain(|c| *c == own);
    }
    info
}
