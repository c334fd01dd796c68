//! The statements of PostgreSQL's write transactions ([`WriteTx`]); the choreographies that run
//! them are in `backend/writes.rs`. The guards are row locks: instances race here.

use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::directory::audit_rows;
use super::{PostgresBackend, customer_alive, tenant_alive, usages_in, within};
use crate::audit::NewAuditEntry;
use crate::backend::rows::{
    PENDING_SQL, PROBES_SQL, RECORD_PROBE_SQL, pending_from, probe_from, sealed_from,
};
use crate::backend::writes::{self, Deleting, Staged, WriteTx};
use crate::backend::{
    DeleteOutcome, EarlierValue, Expected, NewVersion, OwnerWrite, SecretRow, destinations_text,
    metadata_text,
};
use crate::crypto::Sealed;
use crate::directory::{CustomerRecord, RoleRecord, UserRecord};
use crate::error::Result;
use crate::model::{CustomerId, SecretId, TenantId, now_ms};
use crate::quota::Quota;
use crate::references::{Owner, OwnerLink, ResolvedRef, Usages};
use crate::rotation::{PendingRow, ProbeRecord};

/// A write transaction on a connection of the pool.
pub(super) struct Tx(Transaction<'static, Postgres>);

impl WriteTx for Tx {
    async fn hold_tenant(&mut self, tenant: TenantId) -> Result<()> {
        tenant_alive(&mut self.0, tenant).await
    }

    async fn hold_customer(&mut self, customer: CustomerId) -> Result<bool> {
        customer_alive(&mut self.0, customer).await
    }

    async fn hold_secrets(
        &mut self,
        tenant: TenantId,
        visible_to: Option<CustomerId>,
        wanted: &[SecretId],
    ) -> Result<Vec<SecretId>> {
        let wanted: Vec<Uuid> = wanted.iter().map(|id| id.0).collect();
        // In id order, so two saves lock the secrets they share in the same order.
        let mut present: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM secrets WHERE id = ANY($1) AND tenant_id = $2 ORDER BY id FOR KEY SHARE",
        )
        .bind(&wanted)
        .bind(tenant.0)
        .fetch_all(&mut *self.0)
        .await?;
        if let Some(customer) = visible_to {
            present = sqlx::query_scalar(
                "SELECT secret_id FROM secret_shares WHERE customer_id = $1 AND secret_id = ANY($2)",
            )
            .bind(customer.0)
            .bind(&present)
            .fetch_all(&mut *self.0)
            .await?;
        }
        Ok(present.into_iter().map(SecretId).collect())
    }

    async fn lock_secret(&mut self, id: SecretId) -> Result<()> {
        sqlx::query("SELECT id FROM secrets WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(())
    }

    /// `FOR NO KEY UPDATE`: saves that reference the secret need not wait.
    async fn value_as(&mut self, id: SecretId, expected: Expected) -> Result<Option<Sealed>> {
        let row = sqlx::query(
            "SELECT key_id, nonce, ciphertext FROM secrets WHERE id = $1 AND version = $2 \
             AND ($3::bigint IS NULL OR updated_time = $3) FOR NO KEY UPDATE",
        )
        .bind(id.0)
        .bind(expected.version)
        .bind(expected.updated_time)
        .fetch_optional(&mut *self.0)
        .await?;
        row.as_ref().map(sealed_from).transpose()
    }

    async fn insert_secret_row(&mut self, row: &SecretRow) -> sqlx::Result<()> {
        let i = &row.info;
        sqlx::query(
            "INSERT INTO secrets (id, tenant_id, name, type, description, file_name, version, \
             created_time, updated_time, key_id, nonce, ciphertext, allowed_destinations, max_versions, \
             expires_at, certificate, private_key, source) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(i.id.0)
        .bind(i.tenant_id.0)
        .bind(&i.name)
        .bind(i.kind.as_str())
        .bind(&i.description)
        .bind(&i.file_name)
        .bind(i.version)
        .bind(i.created_time)
        .bind(i.updated_time)
        .bind(row.sealed.key_id)
        .bind(row.sealed.nonce.as_slice())
        .bind(&row.sealed.ciphertext)
        .bind(destinations_text(&i.allowed_destinations))
        .bind(i.max_versions)
        .bind(i.expires_at)
        .bind(metadata_text(&i.certificate))
        .bind(metadata_text(&i.private_key))
        .bind(metadata_text(&i.source))
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn update_secret_row(&mut self, row: &SecretRow, version: i64) -> Result<bool> {
        let i = &row.info;
        let done = sqlx::query(
            "UPDATE secrets SET description = $1, file_name = $2, version = $3, updated_time = $4, \
             key_id = $5, nonce = $6, ciphertext = $7, allowed_destinations = $8, max_versions = $9, \
             expires_at = $10, certificate = $11, private_key = $12, source = $13 WHERE id = $14 AND version = $15",
        )
        .bind(&i.description)
        .bind(&i.file_name)
        .bind(i.version)
        .bind(i.updated_time)
        .bind(row.sealed.key_id)
        .bind(row.sealed.nonce.as_slice())
        .bind(&row.sealed.ciphertext)
        .bind(destinations_text(&i.allowed_destinations))
        .bind(i.max_versions)
        .bind(i.expires_at)
        .bind(metadata_text(&i.certificate))
        .bind(metadata_text(&i.private_key))
        .bind(metadata_text(&i.source))
        .bind(i.id.0)
        .bind(version)
        .execute(&mut *self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_secret_row(&mut self, id: SecretId) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM secrets WHERE id = $1").bind(id.0).execute(&mut *self.0).await?;
        Ok(())
    }

    async fn keep_earlier(&mut self, id: SecretId, version: i64, sealed: &Sealed) -> Result<()> {
        sqlx::query(
            "INSERT INTO secret_history (secret_id, version, key_id, nonce, ciphertext, replaced_time) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (secret_id, version) DO UPDATE SET key_id = excluded.key_id, \
             nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
             replaced_time = excluded.replaced_time",
        )
        .bind(id.0)
        .bind(version)
        .bind(sealed.key_id)
        .bind(sealed.nonce.as_slice())
        .bind(&sealed.ciphertext)
        .bind(now_ms())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn trim_earlier(&mut self, id: SecretId, kept: i64) -> Result<Vec<EarlierValue>> {
        sqlx::query(
            "DELETE FROM secret_history WHERE secret_id = $1 AND version NOT IN \
             (SELECT version FROM secret_history WHERE secret_id = $1 ORDER BY version DESC LIMIT $2)",
        )
        .bind(id.0)
        .bind(kept)
        .execute(&mut *self.0)
        .await?;
        let rows = sqlx::query(
            "SELECT version, key_id, nonce, ciphertext FROM secret_history \
             WHERE secret_id = $1 ORDER BY version DESC",
        )
        .bind(id.0)
        .fetch_all(&mut *self.0)
        .await?;
        rows.iter()
            .map(|r| Ok(EarlierValue { version: r.try_get("version")?, sealed: sealed_from(r)? }))
            .collect()
    }

    async fn insert_version(&mut self, id: SecretId, v: &NewVersion) -> Result<()> {
        sqlx::query(
            "INSERT INTO secret_versions (secret_id, version, created_time, created_by, fingerprint) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.0)
        .bind(v.version)
        .bind(v.created_time)
        .bind(&v.created_by)
        .bind(&v.fingerprint)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn put_pending(&mut self, id: SecretId, row: &PendingRow) -> Result<bool> {
        sqlx::query("DELETE FROM secret_pending WHERE secret_id = $1 AND version <> $2")
            .bind(id.0)
            .bind(row.info.version)
            .execute(&mut *self.0)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO secret_pending (secret_id, version, key_id, nonce, ciphertext, file_name, \
             created_time, created_by, fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (secret_id) DO NOTHING",
        )
        .bind(id.0)
        .bind(row.info.version)
        .bind(row.sealed.key_id)
        .bind(row.sealed.nonce.as_slice())
        .bind(&row.sealed.ciphertext)
        .bind(&row.info.file_name)
        .bind(row.info.created_time)
        .bind(&row.info.created_by)
        .bind(&row.info.fingerprint)
        .execute(&mut *self.0)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn drop_pending(&mut self, id: SecretId) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM secret_pending WHERE secret_id = $1")
            .bind(id.0)
            .execute(&mut *self.0)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn usages(&mut self, id: SecretId, customer: Option<CustomerId>) -> Result<Usages> {
        usages_in(&mut self.0, id, customer).await
    }

    async fn upsert_owner(
        &mut self,
        tenant: TenantId,
        owner: &Owner,
        body: &str,
        now: i64,
    ) -> sqlx::Result<u64> {
        let saved = sqlx::query(
            "INSERT INTO owners (id, tenant_id, type, name, customer_id, body, created_time, updated_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, body = excluded.body, \
             updated_time = excluded.updated_time \
             WHERE owners.tenant_id = excluded.tenant_id AND owners.type = excluded.type",
        )
        .bind(owner.id)
        .bind(tenant.0)
        .bind(owner.kind.as_str())
        .bind(&owner.name)
        .bind(owner.customer_id.map(|c| c.0))
        .bind(body)
        .bind(now)
        .bind(now)
        .execute(&mut *self.0)
        .await?;
        Ok(saved.rows_affected())
    }

    /// One statement for all of them (`UNNEST` of one array per column).
    async fn replace_refs(&mut self, owner: Uuid, refs: &[ResolvedRef<'_>]) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM secret_refs WHERE owner_id = $1").bind(owner).execute(&mut *self.0).await?;
        if refs.is_empty() {
            return Ok(());
        }
        let secret_ids: Vec<Uuid> = refs.iter().map(|r| r.secret_id.0).collect();
        let node_ids: Vec<Option<String>> = refs.iter().map(|r| r.reference.node_id.clone()).collect();
        let node_names: Vec<Option<String>> = refs.iter().map(|r| r.reference.node_name.clone()).collect();
        let pointers: Vec<String> = refs.iter().map(|r| r.reference.pointer.clone()).collect();
        sqlx::query(
            "INSERT INTO secret_refs (secret_id, owner_id, node_id, node_name, pointer) \
             SELECT s, $1, n, nn, p \
             FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[]) AS r(s, n, nn, p)",
        )
        .bind(owner)
        .bind(&secret_ids)
        .bind(&node_ids)
        .bind(&node_names)
        .bind(&pointers)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn clear_links(&mut self, owner: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM owner_links WHERE owner_id = $1").bind(owner).execute(&mut *self.0).await?;
        Ok(())
    }

    async fn insert_link(&mut self, tenant: TenantId, owner: Uuid, link: &OwnerLink) -> sqlx::Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO owner_links (owner_id, target_id, node_id, node_name, pointer) \
             SELECT $1, id, $2, $3, $4 FROM owners WHERE id = $5 AND tenant_id = $6 AND type = $7",
        )
        .bind(owner)
        .bind(&link.node_id)
        .bind(&link.node_name)
        .bind(&link.pointer)
        .bind(link.target)
        .bind(tenant.0)
        .bind(link.kind.as_str())
        .execute(&mut *self.0)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn insert_user_row(&mut self, u: &UserRecord, roles: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO users (id, tenant_id, customer_id, username, password_hash, roles, created_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(u.id.0)
        .bind(u.tenant_id.0)
        .bind(u.customer_id.map(|c| c.0))
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(roles)
        .bind(u.created_time)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn insert_customer_row(&mut self, c: &CustomerRecord) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO customers (id, tenant_id, name, created_time) VALUES ($1, $2, $3, $4)")
            .bind(c.id.0)
            .bind(c.tenant_id.0)
            .bind(&c.name)
            .bind(c.created_time)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn insert_role_row(&mut self, r: &RoleRecord, permissions: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO roles (id, tenant_id, name, permissions, created_time) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(r.id)
        .bind(r.tenant_id.0)
        .bind(&r.name)
        .bind(permissions)
        .bind(r.created_time)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn insert_share_row(&mut self, secret: SecretId, customer: CustomerId) -> Result<()> {
        sqlx::query(
            "INSERT INTO secret_shares (secret_id, customer_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(secret.0)
        .bind(customer.0)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn delete_share_row(&mut self, secret: SecretId, customer: CustomerId) -> Result<()> {
        sqlx::query("DELETE FROM secret_shares WHERE secret_id = $1 AND customer_id = $2")
            .bind(secret.0)
            .bind(customer.0)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn within(&mut self, tenant: TenantId, quota: Quota) -> Result<()> {
        within(&mut self.0, tenant, quota).await
    }

    async fn audit(&mut self, entries: &[NewAuditEntry]) -> Result<()> {
        audit_rows(&mut self.0, entries).await
    }

    async fn commit(self) -> Result<()> {
        Ok(self.0.commit().await?)
    }
}

impl PostgresBackend {
    pub(crate) async fn stage_pending(
        &self,
        id: SecretId,
        tenant: TenantId,
        row: &PendingRow,
        expected: Expected,
        quota: Quota,
        audit: &[NewAuditEntry],
    ) -> Result<Staged> {
        let tx = self.begin_write().await?;
        writes::stage_pending(tx, id, tenant, row, expected, quota, audit).await
    }

    pub(crate) async fn drop_pending(&self, id: SecretId, audit: &[NewAuditEntry]) -> Result<bool> {
        let tx = self.begin_write().await?;
        writes::drop_pending(tx, id, audit).await
    }

    pub(crate) async fn pending(&self, id: SecretId) -> Result<Option<PendingRow>> {
        let row = sqlx::query(PENDING_SQL).bind(id.0).fetch_optional(&*self.db()).await?;
        row.as_ref().map(pending_from).transpose()
    }

    pub(crate) async fn record_probes(
        &self,
        id: SecretId,
        version: i64,
        probes: &[ProbeRecord],
    ) -> Result<()> {
        for p in probes {
            sqlx::query(RECORD_PROBE_SQL)
                .bind(id.0)
                .bind(version)
                .bind(p.owner_type.as_str())
                .bind(p.id)
                .bind(&p.name)
                .bind(&p.node_id)
                .bind(&p.node)
                .bind(&p.field)
                .bind(&p.result)
                .bind(&p.reason)
                .bind(p.time)
                .execute(&*self.db())
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn probes(&self, id: SecretId, version: i64) -> Result<Vec<ProbeRecord>> {
        let rows = sqlx::query(PROBES_SQL).bind(id.0).bind(version).fetch_all(&*self.db()).await?;
        rows.iter().map(probe_from).collect()
    }

    async fn begin_write(&self) -> Result<Tx> {
        Ok(Tx(self.db().begin().await?))
    }

    pub(crate) async fn insert_secret(
        &self,
        row: &SecretRow,
        version: &NewVersion,
        quotas: &[Quota],
        audit: &[NewAuditEntry],
    ) -> Result<()> {
        writes::insert_secret(self.begin_write().await?, row, version, quotas, audit).await
    }

    pub(crate) async fn update_secret(
        &self,
        row: &SecretRow,
        version: Option<&NewVersion>,
        expected: Expected,
        quota: Option<Quota>,
        audit: &[NewAuditEntry],
    ) -> Result<bool> {
        let tx = self.begin_write().await?;
        writes::update_secret(tx, row, version, expected, quota, audit, &self.earlier).await
    }

    pub(crate) async fn delete_secret(&self, id: SecretId, audit: &[NewAuditEntry]) -> Result<DeleteOutcome> {
        match writes::delete_secret(self.begin_write().await?, id, audit, &self.earlier).await? {
            Deleting::Done(outcome) => Ok(outcome),
            Deleting::ReferencedMeanwhile => {
                Ok(DeleteOutcome::InUse(usages_in(&mut *self.db().acquire().await?, id, None).await?))
            }
        }
    }

    pub(crate) async fn save_owner(&self, write: OwnerWrite<'_>) -> Result<bool> {
        writes::save_owner(self.begin_write().await?, write).await
    }

    pub(crate) async fn insert_share(
        &self,
        secret: SecretId,
        customer: CustomerId,
        audit: &[NewAuditEntry],
    ) -> Result<()> {
        writes::insert_share(self.begin_write().await?, secret, customer, audit).await
    }

    pub(crate) async fn delete_share(
        &self,
        secret: SecretId,
        customer: CustomerId,
        audit: &[NewAuditEntry],
    ) -> Result<Option<Usages>> {
        writes::delete_share(self.begin_write().await?, secret, customer, audit).await
    }
    pub(crate) async fn insert_user(&self, u: &UserRecord, quota: Option<Quota>) -> Result<()> {
        writes::insert_user(self.begin_write().await?, u, quota).await
    }

    pub(crate) async fn insert_customer(&self, c: &CustomerRecord, quota: Quota) -> Result<()> {
        writes::insert_customer(self.begin_write().await?, c, quota).await
    }

    pub(crate) async fn insert_role(&self, r: &RoleRecord, quota: Quota) -> Result<()> {
        writes::insert_role(self.begin_write().await?, r, quota).await
    }
}
