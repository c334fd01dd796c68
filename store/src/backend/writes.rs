//! The write choreographies, written once: which statements a write runs, in which order, what
//! each refusal means and what is kept in memory after the commit. A backend supplies the
//! statements ([`WriteTx`]: SQL text and binding) and its transaction; everything else is here.
//!
//! The guards ([`WriteTx::hold_tenant`], [`WriteTx::hold_customer`], [`WriteTx::hold_secrets`],
//! [`WriteTx::lock_secret`]) are where instances race: PostgreSQL takes row locks, SQLite (one
//! writer process, serial transactions) has nothing to hold and answers at once.

use uuid::Uuid;

use super::rows::decode_err;
use super::{DeleteOutcome, EarlierValue, EarlierValues, Expected, NewVersion, OwnerWrite, SecretRow};
use crate::audit::NewAuditEntry;
use crate::crypto::Sealed;
use crate::directory::{CustomerRecord, RoleRecord, UserRecord};
use crate::error::{NameConflict, NeededKind, Result, StoreError};
use crate::model::{CustomerId, SecretId, TenantId};
use crate::quota::Quota;
use crate::references::{Owner, OwnerLink, OwnerType, ResolvedRef, Usages};
use crate::rotation::PendingRow;

/// The statements of one write transaction of a backend. Each runs inside the transaction;
/// [`WriteTx::commit`] ends it, dropping it rolls everything back.
pub(crate) trait WriteTx: Sized {
    /// Refuses a write for a tenant being deleted, and keeps it from being deleted until the end.
    async fn hold_tenant(&mut self, tenant: TenantId) -> Result<()>;
    /// Keeps a customer from being deleted until the end; false when it does not exist (any more).
    async fn hold_customer(&mut self, customer: CustomerId) -> Result<bool>;
    /// Of `wanted` (sorted, no repeats), the secrets of `tenant` that exist and, with
    /// `visible_to`, are shared with that customer, each kept until the end.
    async fn hold_secrets(
        &mut self,
        tenant: TenantId,
        visible_to: Option<CustomerId>,
        wanted: &[SecretId],
    ) -> Result<Vec<SecretId>>;
    /// Locks a secret's row (if it exists) against saves that would reference it.
    async fn lock_secret(&mut self, id: SecretId) -> Result<()>;
    /// The value of a secret still as `expected`, locked for the change; `None` when it is not.
    async fn value_as(&mut self, id: SecretId, expected: Expected) -> Result<Option<Sealed>>;

    async fn insert_secret_row(&mut self, row: &SecretRow) -> sqlx::Result<()>;
    /// True when the row was still at `version` and is now `row`.
    async fn update_secret_row(&mut self, row: &SecretRow, version: i64) -> Result<bool>;
    async fn delete_secret_row(&mut self, id: SecretId) -> sqlx::Result<()>;
    /// Keeps `sealed`, the value `version` of secret `id`, in `secret_history`.
    async fn keep_earlier(&mut self, id: SecretId, version: i64, sealed: &Sealed) -> Result<()>;
    /// Drops all but the last `kept` earlier values of `id`; the remaining ones, newest first.
    async fn trim_earlier(&mut self, id: SecretId, kept: i64) -> Result<Vec<EarlierValue>>;
    /// Records a new version's metadata.
    async fn insert_version(&mut self, id: SecretId, version: &NewVersion) -> Result<()>;
    /// Stores a pending value unless one is pending for the same version already (false); one
    /// staged on an older version is replaced.
    async fn put_pending(&mut self, id: SecretId, row: &PendingRow) -> Result<bool>;
    /// Deletes a secret's pending value and its probe results; whether there was one.
    async fn drop_pending(&mut self, id: SecretId) -> Result<bool>;
    /// The configurations that use a secret; with `customer`, only that customer's.
    async fn usages(&mut self, id: SecretId, customer: Option<CustomerId>) -> Result<Usages>;

    /// Inserts or changes a configuration of `tenant`; rows changed (0: the id is another
    /// tenant's or another kind's).
    async fn upsert_owner(
        &mut self,
        tenant: TenantId,
        owner: &Owner,
        body: &str,
        now: i64,
    ) -> sqlx::Result<u64>;
    /// Replaces the owner's references.
    async fn replace_refs(&mut self, owner: Uuid, refs: &[ResolvedRef<'_>]) -> sqlx::Result<()>;
    async fn clear_links(&mut self, owner: Uuid) -> Result<()>;
    /// Links `owner` to a configuration of `tenant`; false when that one does not exist.
    async fn insert_link(&mut self, tenant: TenantId, owner: Uuid, link: &OwnerLink) -> sqlx::Result<bool>;

    async fn insert_user_row(&mut self, u: &UserRecord, roles: &str) -> sqlx::Result<()>;
    async fn insert_customer_row(&mut self, c: &CustomerRecord) -> sqlx::Result<()>;
    async fn insert_role_row(&mut self, r: &RoleRecord, permissions: &str) -> sqlx::Result<()>;

    async fn insert_share_row(&mut self, secret: SecretId, customer: CustomerId) -> Result<()>;
    async fn delete_share_row(&mut self, secret: SecretId, customer: CustomerId) -> Result<()>;

    /// Refuses when the tenant is over `quota` (after the write's insert).
    async fn within(&mut self, tenant: TenantId, quota: Quota) -> Result<()>;
    /// Writes the audit rows of the write.
    async fn audit(&mut self, entries: &[NewAuditEntry]) -> Result<()>;
    async fn commit(self) -> Result<()>;
}

/// A database error of the given kind (unique or foreign key violation).
pub(crate) fn is_kind(e: &sqlx::Error, kind: sqlx::error::ErrorKind) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == kind)
}

fn foreign_key(e: &sqlx::Error) -> bool {
    is_kind(e, sqlx::error::ErrorKind::ForeignKeyViolation)
}

/// An insert whose unique name may be taken: a clear error naming the field.
pub(crate) fn unique_name(result: sqlx::Result<()>, what: &str, name: &str) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if is_kind(&e, sqlx::error::ErrorKind::UniqueViolation) => Err(StoreError::NameUnavailable {
            conflict: NameConflict::Taken,
            message: format!("name: a {what} named '{name}' already exists"),
        }),
        Err(e) => Err(e.into()),
    }
}

/// A configuration's delete: true when it went, false when there was none; refused while another
/// configuration links to it (a rule chain's node to an integration).
pub(crate) fn owner_deleted(done: sqlx::Result<u64>, kind: OwnerType, id: Uuid) -> Result<bool> {
    match done {
        Ok(rows) => Ok(rows == 1),
        Err(e) if foreign_key(&e) => Err(StoreError::Needed {
            kind: NeededKind::Integration,
            message: format!("{} '{id}' is used by a rule chain", kind.as_str()),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Inserts a secret, checked against `quotas` and recorded by `audit`.
pub(crate) async fn insert_secret(
    mut tx: impl WriteTx,
    row: &SecretRow,
    version: &NewVersion,
    quotas: &[Quota],
    audit: &[NewAuditEntry],
) -> Result<()> {
    let i = &row.info;
    tx.hold_tenant(i.tenant_id).await?;
    match tx.insert_secret_row(row).await {
        Ok(()) => {}
        Err(e) if is_kind(&e, sqlx::error::ErrorKind::UniqueViolation) => {
            return Err(StoreError::NameTaken(i.name.clone()));
        }
        Err(e) => return Err(e.into()),
    }
    tx.insert_version(i.id, version).await?;
    for quota in quotas {
        tx.within(i.tenant_id, *quota).await?;
    }
    tx.audit(audit).await?;
    tx.commit().await
}

/// Changes a secret's row if it is still as `expected` (false otherwise: another writer got there
/// first). The row is locked first, so the value moved to `secret_history` is exactly the one
/// replaced; a new value (`version`) is recorded as a version; history then keeps the values of
/// the last `maxVersions` versions (the current one included: older ones are destroyed), the
/// quota counts what is kept, and `earlier` follows after the commit.
pub(crate) async fn update_secret(
    mut tx: impl WriteTx,
    row: &SecretRow,
    version: Option<&NewVersion>,
    expected: Expected,
    quota: Option<Quota>,
    audit: &[NewAuditEntry],
    earlier: &EarlierValues,
) -> Result<bool> {
    let i = &row.info;
    let Some(replaced) = tx.value_as(i.id, expected).await? else {
        return Ok(false);
    };
    if let Some(version) = version {
        tx.keep_earlier(i.id, expected.version, &replaced).await?;
        tx.insert_version(i.id, version).await?;
        // A pending value never outlives the version it was staged on (a promote is this
        // change with the pending value).
        tx.drop_pending(i.id).await?;
    }
    if !tx.update_secret_row(row, expected.version).await? {
        // Cannot happen under the lock; dropping the transaction rolls everything back.
        return Ok(false);
    }
    let kept = tx.trim_earlier(i.id, i.max_versions.max(1) - 1).await?;
    if let Some(quota) = quota {
        tx.within(i.tenant_id, quota).await?;
    }
    tx.audit(audit).await?;
    tx.commit().await?;
    earlier.set(i.id, i.tenant_id, kept);
    Ok(true)
}

/// What staging a pending value came to.
pub(crate) enum Staged {
    Done,
    /// The secret is no longer at the expected version (another writer got there first).
    Moved,
    /// A value is pending for this version already.
    Pending,
}

/// Stages a pending value for a secret still at `expected` (locked for it, so no value change
/// slips between), within the tenant's bytes `quota`, recorded by `audit`.
pub(crate) async fn stage_pending(
    mut tx: impl WriteTx,
    id: SecretId,
    tenant: TenantId,
    row: &PendingRow,
    expected: Expected,
    quota: Quota,
    audit: &[NewAuditEntry],
) -> Result<Staged> {
    if tx.value_as(id, expected).await?.is_none() {
        return Ok(Staged::Moved);
    }
    if !tx.put_pending(id, row).await? {
        return Ok(Staged::Pending);
    }
    tx.within(tenant, quota).await?;
    tx.audit(audit).await?;
    tx.commit().await?;
    Ok(Staged::Done)
}

/// Drops a secret's pending value, recorded by `audit`; false when there was none.
pub(crate) async fn drop_pending(
    mut tx: impl WriteTx,
    id: SecretId,
    audit: &[NewAuditEntry],
) -> Result<bool> {
    if !tx.drop_pending(id).await? {
        return Ok(false);
    }
    tx.audit(audit).await?;
    tx.commit().await?;
    Ok(true)
}

/// A delete's outcome, or the news that a reference was committed between the check and the
/// delete (the caller reads the usages again outside the rolled-back transaction).
pub(crate) enum Deleting {
    Done(DeleteOutcome),
    ReferencedMeanwhile,
}

/// Deletes a secret unless a configuration references it. The secret's row is locked first: a
/// save that references it either committed before (its references are seen) or waits and then
/// fails (the secret is gone). The RESTRICT foreign key is the last word either way; the
/// secret's shares and history rows go with it (ON DELETE CASCADE).
pub(crate) async fn delete_secret(
    mut tx: impl WriteTx,
    id: SecretId,
    audit: &[NewAuditEntry],
    earlier: &EarlierValues,
) -> Result<Deleting> {
    tx.lock_secret(id).await?;
    let usages = tx.usages(id, None).await?;
    if !usages.is_empty() {
        return Ok(Deleting::Done(DeleteOutcome::InUse(usages)));
    }
    match tx.delete_secret_row(id).await {
        Ok(()) => {
            tx.audit(audit).await?;
            tx.commit().await?;
            earlier.remove(id);
            Ok(Deleting::Done(DeleteOutcome::Deleted))
        }
        Err(e) if foreign_key(&e) => Ok(Deleting::ReferencedMeanwhile),
        Err(e) => Err(e.into()),
    }
}

/// Saves a configuration and replaces its references and links. False when the id belongs to
/// another tenant's or another kind's configuration. With `visible_to` (a customer user saves),
/// every referenced secret must be shared with that customer.
pub(crate) async fn save_owner(mut tx: impl WriteTx, write: OwnerWrite<'_>) -> Result<bool> {
    let OwnerWrite { tenant, visible_to, owner, body, refs, links, quota } = write;
    tx.hold_tenant(tenant).await?;
    if let Some(customer) = owner.customer_id
        && !tx.hold_customer(customer).await?
    {
        return Err(StoreError::NotFound { kind: "customer", id: customer.to_string() });
    }
    // The referenced secrets stay until the end (a delete or an unshare waits, then sees the
    // references); one that is gone was deleted by another writer, one no longer shared with the
    // saving customer was unshared by another writer.
    let mut wanted: Vec<SecretId> = refs.iter().map(|r| r.secret_id).collect();
    wanted.sort_unstable_by_key(|id| id.0);
    wanted.dedup();
    if !wanted.is_empty() {
        let present = tx.hold_secrets(tenant, visible_to, &wanted).await?;
        if present.len() != wanted.len() {
            return Err(unknown_secrets(refs.iter().filter(|r| !present.contains(&r.secret_id))));
        }
    }
    let saved = tx
        .upsert_owner(tenant, owner, &body.to_string(), crate::model::now_ms())
        .await
        .map_err(|e| super::owner_write_error(e, body))?;
    if saved == 0 {
        return Ok(false);
    }
    if let Some(quota) = quota {
        tx.within(tenant, quota).await?;
    }
    match tx.replace_refs(owner.id, refs).await {
        Ok(()) => {}
        // Held above, so only if a secret went between that read and this insert.
        Err(e) if foreign_key(&e) => return Err(unknown_secrets(refs.iter())),
        Err(e) => return Err(e.into()),
    }
    tx.clear_links(owner.id).await?;
    for link in links {
        let present = match tx.insert_link(tenant, owner.id, link).await {
            Ok(present) => present,
            // Deleted by another writer after it was read.
            Err(e) if foreign_key(&e) => false,
            Err(e) => return Err(e.into()),
        };
        if !present {
            return Err(StoreError::NotFound { kind: "integration", id: link.target.to_string() });
        }
    }
    tx.commit().await?;
    Ok(true)
}

/// The names of `refs`' secrets, sorted, each once.
fn unknown_secrets<'a>(refs: impl Iterator<Item = &'a ResolvedRef<'a>>) -> StoreError {
    let mut names: Vec<String> = refs.map(|r| r.reference.secret_name.clone()).collect();
    names.sort();
    names.dedup();
    StoreError::UnknownSecrets(names)
}

/// Inserts a user, counted against `quota` (none for a tenant's first administrator).
pub(crate) async fn insert_user(mut tx: impl WriteTx, u: &UserRecord, quota: Option<Quota>) -> Result<()> {
    let roles = serde_json::to_string(&u.roles).map_err(|_| decode_err("roles"))?;
    tx.hold_tenant(u.tenant_id).await?;
    if let Some(customer) = u.customer_id
        && !tx.hold_customer(customer).await?
    {
        return Err(StoreError::input("customerId", format!("customer '{customer}' does not exist")));
    }
    match tx.insert_user_row(u, &roles).await {
        Ok(()) => {}
        Err(e) if is_kind(&e, sqlx::error::ErrorKind::UniqueViolation) => {
            return Err(StoreError::NameUnavailable {
                conflict: NameConflict::Taken,
                message: format!("username: '{}' is already taken", u.username),
            });
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(quota) = quota {
        tx.within(u.tenant_id, quota).await?;
    }
    tx.commit().await
}

/// Inserts a customer with a unique name, counted against `quota`.
pub(crate) async fn insert_customer(mut tx: impl WriteTx, c: &CustomerRecord, quota: Quota) -> Result<()> {
    unique_name(tx.insert_customer_row(c).await, "customer", &c.name)?;
    tx.within(c.tenant_id, quota).await?;
    tx.commit().await
}

/// Inserts a custom role with a unique name, counted against `quota`.
pub(crate) async fn insert_role(mut tx: impl WriteTx, r: &RoleRecord, quota: Quota) -> Result<()> {
    let permissions = serde_json::to_string(&r.permissions).map_err(|_| decode_err("permissions"))?;
    unique_name(tx.insert_role_row(r, &permissions).await, "role", &r.name)?;
    tx.within(r.tenant_id, quota).await?;
    tx.commit().await
}

/// Shares a secret with a customer (sharing twice changes nothing), recorded by `audit`.
pub(crate) async fn insert_share(
    mut tx: impl WriteTx,
    secret: SecretId,
    customer: CustomerId,
    audit: &[NewAuditEntry],
) -> Result<()> {
    tx.insert_share_row(secret, customer).await?;
    tx.audit(audit).await?;
    tx.commit().await
}

/// Removes a share unless the customer's configurations use the secret (then their usages). The
/// secret's row is locked first, so a save of the customer that references it is either counted
/// here or checks the share after this commits.
pub(crate) async fn delete_share(
    mut tx: impl WriteTx,
    secret: SecretId,
    customer: CustomerId,
    audit: &[NewAuditEntry],
) -> Result<Option<Usages>> {
    tx.lock_secret(secret).await?;
    let usages = tx.usages(secret, Some(customer)).await?;
    if !usages.is_empty() {
        return Ok(Some(usages));
    }
    tx.delete_share_row(secret, customer).await?;
    tx.audit(audit).await?;
    tx.commit().await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;

    use super::*;
    use crate::backend::{Backend, Database};
    use crate::crypto::WrappedKey;
    use crate::model::{SecretInfo, SecretType};

    fn row(id: SecretId, tenant: TenantId, version: i64) -> SecretRow {
        let info = SecretInfo {
            id,
            tenant_id: tenant,
            name: "s".into(),
            kind: SecretType::Text,
            description: String::new(),
            file_name: None,
            version,
            created_time: 0,
            updated_time: 0,
            shared_with: Vec::new(),
            allowed_destinations: Vec::new(),
            max_versions: 6,
            expires_at: None,
            certificate: None,
            private_key: None,
            source: None,
            status: None,
        };
        // The backend never looks inside a ciphertext: the version in it is enough here.
        let sealed = Sealed { key_id: 1, nonce: [0; 12], ciphertext: version.to_be_bytes().to_vec() };
        SecretRow { info, sealed }
    }

    fn new_version(version: i64) -> NewVersion {
        NewVersion {
            version,
            created_time: version,
            created_by: "test".into(),
            fingerprint: format!("fp{version}"),
        }
    }

    /// The earlier values of `id` a backend opened afresh on `db` loads (what its rows hold).
    async fn stored_earlier(db: &Database, id: SecretId) -> Vec<(i64, Vec<u8>)> {
        let b = Backend::connect(db).await.unwrap();
        b.load_secrets().await.unwrap();
        let values = b.earlier_values(id).into_iter().map(|e| (e.version, e.sealed.ciphertext)).collect();
        b.close().await;
        values
    }

    fn versions(b: &Backend, id: SecretId) -> Vec<i64> {
        b.earlier_values(id).iter().map(|e| e.version).collect()
    }

    async fn a_value_change_keeps_the_last_five_earlier_values(db: Database) {
        let b = Backend::connect(&db).await.unwrap();
        b.migrate().await.unwrap();
        b.insert_data_key(&WrappedKey { id: 1, wrapped: vec![0; 60] }).await.unwrap();
        let (id, tenant) = (SecretId::new_random(), TenantId::new_random());
        b.insert_secret(&row(id, tenant, 1), &new_version(1), &[], &[]).await.unwrap();
        // A description change (same version) keeps nothing.
        assert!(b.update_secret(&row(id, tenant, 1), None, 1, None, &[]).await.unwrap());
        assert!(stored_earlier(&db, id).await.is_empty());
        for version in 2..=8 {
            assert!(
                b.update_secret(
                    &row(id, tenant, version),
                    Some(&new_version(version)),
                    version - 1,
                    None,
                    &[]
                )
                .await
                .unwrap()
            );
        }
        // A stale update changes nothing, history included.
        assert!(!b.update_secret(&row(id, tenant, 9), Some(&new_version(9)), 3, None, &[]).await.unwrap());
        assert_eq!(versions(&b, id), [7, 6, 5, 4, 3]);
        let stored = stored_earlier(&db, id).await;
        assert_eq!(stored.iter().map(|(v, _)| *v).collect::<Vec<_>>(), [7, 6, 5, 4, 3]);
        for (version, ciphertext) in stored {
            assert_eq!(ciphertext, version.to_be_bytes(), "the ciphertext the row held at that version");
        }

        assert!(matches!(b.delete_secret(id, &[]).await.unwrap(), DeleteOutcome::Deleted));
        assert!(versions(&b, id).is_empty());
        assert!(stored_earlier(&db, id).await.is_empty(), "deleted with the secret");

        // Deleting a tenant takes its secrets' history too.
        let other = SecretId::new_random();
        b.insert_secret(&row(other, tenant, 1), &new_version(1), &[], &[]).await.unwrap();
        assert!(b.update_secret(&row(other, tenant, 2), Some(&new_version(2)), 1, None, &[]).await.unwrap());
        assert_eq!(stored_earlier(&db, other).await.len(), 1);
        b.delete_tenant(tenant).await.unwrap();
        assert!(stored_earlier(&db, other).await.is_empty());
        b.close().await;
    }

    #[tokio::test]
    async fn sqlite_keeps_the_last_five_earlier_values_until_the_secret_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        a_value_change_keeps_the_last_five_earlier_values(Database::Sqlite(dir.path().join("veil.db"))).await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
    async fn postgres_keeps_the_last_five_earlier_values_until_the_secret_is_deleted() {
        let server = std::env::var("VEIL_TEST_POSTGRES")
            .expect("VEIL_TEST_POSTGRES is not set (e.g. postgres://postgres@127.0.0.1:5432)");
        let server = server.trim_end_matches('/').to_owned();
        let name = format!("veil_unit_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.unwrap();
        a_value_change_keeps_the_last_five_earlier_values(Database::Postgres(format!("{server}/{name}")))
            .await;
        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        sqlx::query(&drop).execute(&mut admin).await.unwrap();
    }
}
