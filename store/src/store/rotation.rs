//! Staged rotation in the store: a pending value kept beside the current one (sealed for the
//! version it will become), the probe results consumers report for it, its promotion (an
//! ordinary value change, so every instance and consumer follows through the change feed) and
//! its dropping. One pending value per secret; no other value change while one is pending.

use super::Store;
use super::audit::secret_entry;
use crate::access::{Actor, Operation};
use crate::audit::AuditAction;
use crate::backend::Staged;
use crate::error::{FieldProblem, Result, StoreError};
use crate::model::{SecretId, SecretInfo, SecretUpdate, SecretValue, now_ms, validate_update};
use crate::quota::Quota;
use crate::rotation::{PendingRow, PendingVersion, ProbeRecord};

impl Store {
    /// Stages `value` as the secret's pending value (SECRET:WRITE): consumers keep using the
    /// current one until it is promoted. With `expected_version`, only while that is current;
    /// refused while another value is pending.
    pub async fn stage(
        &self,
        actor: &Actor,
        id: SecretId,
        value: SecretValue,
        file_name: Option<String>,
        expected_version: Option<i64>,
    ) -> Result<PendingVersion> {
        self.visible(actor, id)?;
        actor.require(Operation::Write)?;
        let _guard = self.inner.write.lock().await;
        let current = self.at_expected(actor, id, expected_version, true).await?;
        let info = &current.info;
        let check = SecretUpdate { value: Some(value), file_name, ..SecretUpdate::default() };
        let valid = validate_update(info, &check, &self.inner.limits).map_err(pending_field)?;
        let value = check.value.expect("set above");
        let version = info.version + 1;
        let pending = PendingVersion {
            version,
            created_time: now_ms(),
            created_by: Some(actor.username.clone()),
            fingerprint: self.fingerprint(info.tenant_id, &value),
            file_name: valid.file_name,
        };
        let row = PendingRow {
            info: pending.clone(),
            sealed: self.keyring().seal(info.tenant_id, id, version, &value),
        };
        drop(value);
        let details = serde_json::json!({ "version": version });
        let audit = [secret_entry(actor, AuditAction::PendingValue, info, true, details)];
        let quota = Quota::SecretBytes(self.inner.limits.max_secret_bytes_per_tenant);
        match self.inner.backend.stage_pending(id, info.tenant_id, &row, info.version, quota, &audit).await? {
            Staged::Done => {
                tracing::info!(secret = %info.name, version, actor = %actor.username, "pending value staged");
                Ok(pending)
            }
            Staged::Pending => Err(StoreError::RotationPending { name: info.name.clone(), version }),
            Staged::Moved => match expected_version {
                Some(expected) => Err(self.version_mismatch(info, expected)),
                None => Err(StoreError::Conflict(info.name.clone())),
            },
        }
    }

    /// The secret's pending value, if one is pending for its current version (SECRET:WRITE: who
    /// may change the value sees the rotation; customers never do).
    pub async fn pending(&self, actor: &Actor, id: SecretId) -> Result<Option<PendingVersion>> {
        let row = self.visible(actor, id)?;
        actor.require(Operation::Write)?;
        if actor.customer_id.is_some() {
            return Err(StoreError::Forbidden("missing permission SECRET:WRITE".into()));
        }
        Ok(self.pending_row(&row.info).await?.map(|p| p.info))
    }

    /// The pending row of a secret, unless it was staged on an earlier version.
    pub(super) async fn pending_row(&self, info: &SecretInfo) -> Result<Option<PendingRow>> {
        Ok(self.inner.backend.pending(info.id).await?.filter(|p| p.info.version == info.version + 1))
    }

    /// The pending value itself, for the host that probes consumers with it (after checking
    /// the caller with [`Store::pending`]). Never shown to anyone.
    pub async fn open_pending(
        &self,
        actor: &Actor,
        id: SecretId,
    ) -> Result<Option<(PendingVersion, SecretValue)>> {
        let row = self.visible(actor, id)?;
        actor.require(Operation::Write)?;
        let Some(pending) = self.pending_row(&row.info).await? else { return Ok(None) };
        self.ensure_key(pending.sealed.key_id).await?;
        let value = self
            .keyring()
            .open(row.info.tenant_id, id, pending.info.version, &pending.sealed)
            .ok_or_else(|| StoreError::Integrity(format!("pending value of '{}'", row.info.name)))?;
        Ok(Some((pending.info, value)))
    }

    /// Refuses a value change while a value is pending for the current version.
    pub(super) async fn refuse_if_pending(&self, info: &SecretInfo) -> Result<()> {
        match self.pending_row(info).await? {
            Some(p) => Err(StoreError::RotationPending { name: info.name.clone(), version: p.info.version }),
            None => Ok(()),
        }
    }

    /// Records what consumers said of the pending `version` (ignored once it is promoted or
    /// dropped).
    pub async fn record_probes(&self, id: SecretId, version: i64, probes: &[ProbeRecord]) -> Result<()> {
        self.inner.backend.record_probes(id, version, probes).await
    }

    /// The probe results recorded for the pending `version`.
    pub async fn probe_results(&self, actor: &Actor, id: SecretId, version: i64) -> Result<Vec<ProbeRecord>> {
        self.visible(actor, id)?;
        actor.require(Operation::Write)?;
        self.inner.backend.probes(id, version).await
    }

    /// Makes the pending value the current version (the current one becomes PREVIOUS): every
    /// consumer's next message uses it, on every instance. With `expected_version`, only while
    /// that is still current.
    pub async fn promote(
        &self,
        actor: &Actor,
        id: SecretId,
        expected_version: Option<i64>,
    ) -> Result<SecretInfo> {
        let row = self.visible(actor, id)?;
        let Some((pending, value)) = self.open_pending(actor, id).await? else {
            return Err(StoreError::NotFound {
                kind: "pending value",
                id: format!("of secret '{}'", row.info.name),
            });
        };
        let update = SecretUpdate {
            value: Some(value),
            file_name: pending.file_name,
            expected_version,
            ..SecretUpdate::default()
        };
        let details = serde_json::json!({ "pendingVersion": pending.version });
        self.change(actor, id, update, Some((AuditAction::Promote, details))).await
    }

    /// Drops the pending value; consumers never saw it.
    pub async fn drop_pending(&self, actor: &Actor, id: SecretId) -> Result<()> {
        let row = self.visible(actor, id)?;
        actor.require(Operation::Write)?;
        let Some(pending) = self.pending(actor, id).await? else {
            return Err(StoreError::NotFound {
                kind: "pending value",
                id: format!("of secret '{}'", row.info.name),
            });
        };
        let details = serde_json::json!({ "version": pending.version });
        let audit = [secret_entry(actor, AuditAction::PendingDropped, &row.info, true, details)];
        if !self.inner.backend.drop_pending(id, &audit).await? {
            return Err(StoreError::NotFound {
                kind: "pending value",
                id: format!("of secret '{}'", row.info.name),
            });
        }
        tracing::info!(secret = %row.info.name, version = pending.version, actor = %actor.username, "pending value dropped");
        Ok(())
    }
}

/// Value problems of a pending value name the field it came in.
fn pending_field(error: StoreError) -> StoreError {
    match error {
        StoreError::Invalid(problems) => {
            StoreError::Invalid(
                problems
                    .into_iter()
                    .map(|p| {
                        if p.field == "value" {
                            FieldProblem { field: "pendingValue".into(), ..p }
                        } else {
                            p
                        }
                    })
                    .collect(),
            )
        }
        other => other,
    }
}
