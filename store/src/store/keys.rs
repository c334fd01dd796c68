//! Data key rotation, online: a new data key seals every new value at once (on every instance:
//! the change feed announces it), then a job seals every stored value again under it — each
//! secret version, pending value and system value — in batches, under the cluster-wide lease,
//! resuming where it stopped after a crash (on any instance). Before the older keys are retired,
//! every stored value is checked to decrypt; no value is ever left without a key that opens it.

use std::time::Instant;

use super::Store;
use crate::access::{Actor, Operation, Resource};
use crate::audit::{AuditAction, NewAuditEntry};
use crate::backend::SecretRow;
use crate::crypto::{Keyring, Sealed};
use crate::error::{Result, StoreError};
use crate::keys::{KeyRotation, KeyStatus, StoredValue, ValueTable};
use crate::model::{SecretId, now_ms};

/// Passes over every table before a job gives up for now (the next check tries again).
const MAX_PASSES: usize = 5;
/// Values sealed again per transaction.
const BATCH: i64 = 500;
/// The lease's owner and work: one rotation job in the cluster at a time.
const LEASE_OWNER: uuid::Uuid = uuid::Uuid::nil();
const LEASE_WORK: &str = "key-rotation";

/// What a finished rotation job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRotationReport {
    /// The new data key.
    pub key_id: i64,
    /// Values this job sealed again.
    pub resealed: u64,
    /// Values checked to decrypt before the older keys were retired.
    pub checked: u64,
}

impl Store {
    /// The data keys, the values each seals, and the latest rotation (SYS_ADMIN).
    pub async fn key_status(&self, actor: &Actor) -> Result<KeyStatus> {
        actor.require_on(Resource::Tenant, Operation::Read)?;
        let active_key = self.keyring().active();
        // The rotation first, then the keys: two reads, not one snapshot. A rotation read as
        // finished was committed with its retired keys deleted, so the keys read after it never
        // show a retired one (read the other way round, a finish committing between the two reads
        // showed a finished rotation beside the old key).
        let rotation = self.inner.backend.key_rotation().await?;
        let keys = self.inner.backend.data_keys_info().await?;
        Ok(KeyStatus { active_key, keys, rotation })
    }

    /// Makes a new data key the one new values are sealed with, here at once and on the other
    /// instances as soon as the change feed tells them (SYS_ADMIN); refused (409) while a
    /// rotation runs. [`Store::continue_key_rotation`] then seals the stored values again.
    pub async fn start_key_rotation(&self, actor: &Actor) -> Result<KeyRotation> {
        actor.require_on(Resource::Tenant, Operation::Write)?;
        let _guard = self.inner.write.lock().await;
        self.reload_keys().await?;
        let stored = self.inner.backend.data_keys_info().await?.iter().map(|k| k.id).max().unwrap_or(0);
        let active = self.keyring().active();
        let id = stored.max(active) + 1;
        let key = Keyring::new_wrapped_key(&self.inner.master, id);
        let audit =
            [key_entry(Some(actor), AuditAction::KeyRotationStart, id, serde_json::json!({ "keyId": id }))];
        let rotation =
            self.inner.backend.start_key_rotation(&key, &actor.username, &audit).await?.ok_or_else(|| {
                StoreError::Conflict("a key rotation is running; wait for it to finish".into())
            })?;
        self.reload_keys().await?;
        tracing::info!(key = id, values = rotation.total, actor = %actor.username, "data key rotation started");
        Ok(rotation)
    }

    /// Loads data keys added by other instances (a rotation they began): keys already known stay,
    /// the newest one seals new values from now on.
    pub(crate) async fn reload_keys(&self) -> Result<()> {
        let stored = self.inner.backend.load_data_keys().await?;
        let loaded = Keyring::unwrap_all(&self.inner.master, &stored)?;
        let mut keyring = self.inner.keyring.write().unwrap_or_else(|e| e.into_inner());
        keyring.merge(loaded);
        Ok(())
    }

    /// Makes sure the key `id` is known here (a value another instance sealed with a key this
    /// one has not loaded yet).
    pub(crate) async fn ensure_key(&self, id: i64) -> Result<()> {
        let known = self.keyring().knows(id);
        if known { Ok(()) } else { self.reload_keys().await }
    }

    /// Runs the unfinished key rotation, if there is one, to its end: under the cluster-wide
    /// lease (another instance's job makes this one wait, and one that died releases it), from
    /// where the last holder stopped. `None`: nothing to do.
    pub async fn continue_key_rotation(&self) -> Result<Option<KeyRotationReport>> {
        match self.inner.backend.key_rotation().await? {
            Some(r) if r.finished_time.is_none() => {}
            _ => return Ok(None),
        }
        let lease = self.lease(LEASE_OWNER, LEASE_WORK).await?;
        // Read again under the lease: the last holder may have finished it.
        let Some(rotation) = self.inner.backend.key_rotation().await?.filter(|r| r.finished_time.is_none())
        else {
            drop(lease);
            return Ok(None);
        };
        let started = Instant::now();
        self.reload_keys().await?;
        let key = rotation.key_id;
        let mut resealed = 0;
        for _ in 0..MAX_PASSES {
            for table in ValueTable::ALL {
                resealed += self.reseal_table(table, key).await?;
            }
            let checked = self.check_every_value().await?;
            let audit = [key_entry(
                None,
                AuditAction::KeyRotationDone,
                key,
                serde_json::json!({ "keyId": key, "values": checked, "seconds": started.elapsed().as_secs_f64() }),
            )];
            if self.inner.backend.finish_key_rotation(key, &audit).await? {
                drop(lease);
                tracing::info!(
                    key,
                    resealed,
                    checked,
                    secs = started.elapsed().as_secs_f64(),
                    "data key rotation finished"
                );
                return Ok(Some(KeyRotationReport { key_id: key, resealed, checked }));
            }
            // A value was sealed with an older key meanwhile (by an instance that had not heard
            // of the new one yet): another pass.
        }
        drop(lease);
        Err(StoreError::Conflict(format!(
            "data key rotation to key {key}: older keys still in use after {MAX_PASSES} passes; it is tried again"
        )))
    }

    /// Seals every value of `table` not sealed with `key` again under it; how many.
    async fn reseal_table(&self, table: ValueTable, key: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let batch_started = Instant::now();
            let batch = self.inner.backend.stored_values(table, Some(key), 0, BATCH).await?;
            if batch.is_empty() {
                return Ok(total);
            }
            let mut changes = Vec::with_capacity(batch.len());
            for value in batch {
                self.ensure_key(value.sealed.key_id).await?;
                let keyring = self.keyring();
                let resealed = value.aad().and_then(|aad| keyring.reseal(&value.sealed, &aad));
                drop(keyring);
                let Some(new) = resealed.filter(|s| s.key_id == key) else {
                    return Err(StoreError::Integrity(format!(
                        "a stored value ({:?} {}) does not decrypt; the rotation stops, nothing of it changed",
                        value.table, value.key
                    )));
                };
                changes.push((value, new));
            }
            // Under the write lock: this process's own writes and the index stay in step.
            let guard = self.inner.write.lock().await;
            let written = self.inner.backend.reseal_values(key, &changes).await?;
            total += written;
            if table == ValueTable::Secrets {
                self.follow_resealed(&changes);
            }
            drop(guard);
            // At most half of one core: messages keep their pace while a rotation runs.
            tokio::time::sleep(batch_started.elapsed()).await;
        }
    }

    /// The index holds current values' ciphertexts: those sealed again take the new one (when
    /// the row is still the version that was sealed again).
    fn follow_resealed(&self, changes: &[(StoredValue, Sealed)]) {
        for (old, new) in changes {
            let Ok(id) = old.key.parse().map(SecretId) else { continue };
            let Some(row) = self.inner.index.by_id(id) else { continue };
            if row.info.version == old.version && row.sealed.nonce == old.sealed.nonce {
                self.inner.index.insert(SecretRow { info: row.info.clone(), sealed: new.clone() });
            }
        }
    }

    /// Decrypts every stored value (with the keys in memory); how many. Any that does not is an
    /// integrity error: the older keys are then not retired.
    async fn check_every_value(&self) -> Result<u64> {
        let mut checked = 0;
        for table in ValueTable::ALL {
            let mut offset = 0;
            loop {
                let page = self.inner.backend.stored_values(table, None, offset, 1000).await?;
                if page.is_empty() {
                    break;
                }
                for value in &page {
                    self.ensure_key(value.sealed.key_id).await?;
                    let opens = value.aad().is_some_and(|aad| self.keyring().opens(&value.sealed, &aad));
                    if !opens {
                        return Err(StoreError::Integrity(format!("{:?} {}", value.table, value.key)));
                    }
                }
                checked += page.len() as u64;
                offset += i64::try_from(page.len()).unwrap_or(i64::MAX);
            }
        }
        Ok(checked)
    }
}

/// The audit entry of a key action by a user, or (`None`) by the rotation job.
fn key_entry(
    actor: Option<&Actor>,
    action: AuditAction,
    key: i64,
    details: serde_json::Value,
) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: None,
        time: now_ms(),
        actor_id: actor.map(|a| a.user_id.to_string()),
        actor_name: actor.map_or_else(|| "system".to_owned(), |a| a.username.clone()),
        action,
        target_type: Some("DATA_KEY"),
        target_id: Some(key.to_string()),
        target_name: None,
        success: true,
        details,
    }
}
