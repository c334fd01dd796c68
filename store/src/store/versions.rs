//! A secret's versions: the listing, the keyed fingerprints that confirm a value without
//! revealing it, a check of a candidate value, and a rollback to a kept value.

use super::audit::secret_entry;
use super::{Page, Store};
use crate::access::{Actor, Operation};
use crate::audit::AuditAction;
use crate::backend::NewVersion;
use crate::crypto::{FINGERPRINT_ROOT, Fingerprinter};
use crate::error::{Result, StoreError};
use crate::model::{
    SecretId, SecretInfo, SecretUpdate, SecretValue, SecretVersion, TenantId, VersionState, now_ms,
};

/// What a candidate value is, among a secret's versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    /// Whether one of the secret's versions had this value.
    pub matches: bool,
    /// The newest version that had it.
    pub version: Option<i64>,
}

impl Store {
    /// Loads the root of the fingerprint keys (made on first start) and fills in the
    /// fingerprints of versions written before they were recorded, where the value is kept.
    pub(super) async fn load_fingerprints(&self) -> Result<()> {
        let root = self.system_secret(FINGERPRINT_ROOT, 32).await?;
        let fingerprinter = Fingerprinter::new(&root)
            .ok_or_else(|| StoreError::Integrity(format!("system:{FINGERPRINT_ROOT}")))?;
        let _ = self.inner.fingerprints.set(fingerprinter);
        let missing = self.inner.backend.versions_without_fingerprint().await?;
        for (id, version) in missing {
            let Some(row) = self.inner.index.by_id(id) else { continue };
            if let Some(value) = self.version_value(&row.info, version) {
                let fingerprint = self.fingerprint(row.info.tenant_id, &value);
                self.inner.backend.set_fingerprint(id, version, &fingerprint).await?;
            }
        }
        Ok(())
    }

    /// The keyed fingerprint of `value` for `tenant`.
    pub(super) fn fingerprint(&self, tenant: TenantId, value: &SecretValue) -> String {
        self.inner
            .fingerprints
            .get()
            .expect("fingerprints are loaded when the store opens")
            .fingerprint(tenant, value.expose_bytes())
    }

    /// The metadata of a new version holding `value`, written by `actor`.
    pub(super) fn new_version(&self, actor: &Actor, info: &SecretInfo, value: &SecretValue) -> NewVersion {
        NewVersion {
            version: info.version,
            created_time: now_ms(),
            created_by: actor.username.clone(),
            fingerprint: self.fingerprint(info.tenant_id, value),
        }
    }

    /// The value of `version` of a secret, when it is kept (current or earlier).
    fn version_value(&self, info: &SecretInfo, version: i64) -> Option<SecretValue> {
        let keyring = self.keyring();
        if version == info.version {
            let row = self.inner.index.by_id(info.id)?;
            return keyring.open(info.tenant_id, info.id, info.version, &row.sealed);
        }
        let earlier = self.inner.backend.earlier_values(info.id);
        let kept = earlier.iter().find(|e| e.version == version)?;
        keyring.open(info.tenant_id, info.id, version, &kept.sealed)
    }

    /// A page of a secret's versions, newest first (metadata and fingerprints, never a value).
    pub async fn versions(
        &self,
        actor: &Actor,
        id: SecretId,
        page: usize,
        page_size: usize,
    ) -> Result<Page<SecretVersion>> {
        let row = self.visible(actor, id)?;
        actor.require(Operation::Read)?;
        self.refuse_linked(
            &row.info,
            "Veil keeps no versions of its value (its status counts the values fetched)",
        )?;
        super::checked_page_size(page_size)?;
        // A pending version is the newest: it heads the first page.
        let pending = match actor.customer_id {
            None => self.pending_row(&row.info).await?.map(|p| p.info),
            Some(_) => None,
        };
        let shift = i64::from(pending.is_some());
        let limit = i64::try_from(page_size).unwrap_or(1000);
        let offset = i64::try_from(page.saturating_mul(page_size)).unwrap_or(i64::MAX);
        let (db_limit, db_offset) = if page == 0 { (limit - shift, 0) } else { (limit, offset - shift) };
        let (mut data, total) = self.inner.backend.versions(id, db_limit, db_offset).await?;
        if page == 0
            && let Some(p) = pending
        {
            let created_by = p.created_by;
            let version = SecretVersion {
                version: p.version,
                created_time: p.created_time,
                created_by,
                state: VersionState::Pending,
                fingerprint: Some(p.fingerprint),
            };
            data.insert(0, version);
        }
        let total = usize::try_from(total + shift).unwrap_or(0);
        let total_pages = total.div_ceil(page_size);
        Ok(Page { data, total_elements: total, total_pages, has_next: page.saturating_add(1) < total_pages })
    }

    /// Whether `candidate` is a value the secret has had (compared by keyed fingerprint, so
    /// destroyed versions answer too), audited as VERIFY. Needs SECRET:WRITE: it confirms a
    /// guess, which only someone who may set the value should be able to test.
    pub async fn verify(&self, actor: &Actor, id: SecretId, candidate: SecretValue) -> Result<Verification> {
        let row = self.visible(actor, id)?;
        actor.require(Operation::Write)?;
        if actor.customer_id.is_some() {
            return Err(StoreError::Forbidden("missing permission SECRET:WRITE".into()));
        }
        self.refuse_linked(&row.info, "Veil keeps no value of it to compare with")?;
        let fingerprint = self.fingerprint(row.info.tenant_id, &candidate);
        drop(candidate);
        let mut found = None;
        let mut page = 0;
        while found.is_none() {
            let (versions, _) = self.inner.backend.versions(id, 1000, page * 1000).await?;
            if versions.is_empty() {
                break;
            }
            found =
                versions.iter().find(|v| v.fingerprint.as_deref() == Some(&fingerprint)).map(|v| v.version);
            page += 1;
        }
        let verification = Verification { matches: found.is_some(), version: found };
        let details = serde_json::json!({ "matches": verification.matches, "version": verification.version });
        self.write_audit(vec![secret_entry(actor, AuditAction::Verify, &row.info, true, details)]).await;
        Ok(verification)
    }

    /// Makes a new current version holding version `version`'s value (like `vault kv
    /// rollback`): every consumer's next message uses it. Refused for a destroyed version;
    /// with `expected_version`, only while that is still the current one.
    pub async fn rollback(
        &self,
        actor: &Actor,
        id: SecretId,
        version: i64,
        expected_version: Option<i64>,
    ) -> Result<SecretInfo> {
        let row = self.visible(actor, id)?;
        actor.require(Operation::Write)?;
        if !(1..=row.info.version).contains(&version) {
            return Err(StoreError::NotFound {
                kind: "version",
                id: format!("{} of secret '{}'", version, row.info.name),
            });
        }
        let value = self
            .version_value(&row.info, version)
            .ok_or_else(|| StoreError::VersionDestroyed { name: row.info.name.clone(), version })?;
        let update = SecretUpdate { value: Some(value), expected_version, ..SecretUpdate::default() };
        let details = serde_json::json!({ "fromVersion": version });
        self.change(actor, id, update, Some((AuditAction::Rollback, details))).await
    }
}
