//! The statements of SQLite's write transactions ([`WriteTx`]); the choreographies that run them
//! are in `backend/writes.rs`. One connection is the only writer, so the guards hold nothing.

use sqlx::{Connection, Row, Sqlite, Transaction};
use uuid::Uuid;

use super::directory::audit_rows;
use super::{SqliteBackend, usages_in, within};
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

/// A write transaction on the one connection.
pub(super) struct Tx<'c>(Transaction<'c, Sqlite>);

impl WriteTx for Tx<'_> {
    async fn hold_tenant(&mut self, _tenant: TenantId) -> Result<()> {
        Ok(())
    }

    async fn hold_customer(&mut self, _customer: CustomerId) -> Result<bool> {
        Ok(true)
    }

    /// The store's index, which checked them already, is the whole truth when one process writes.
    async fn hold_secrets(
        &mut self,
        _tenant: TenantId,
        _visible_to: Option<CustomerId>,
        wanted: &[SecretId],
    ) -> Result<Vec<SecretId>> {
        Ok(wanted.to_vec())
    }

    async fn lock_secret(&mut self, _id: SecretId) -> Result<()> {
        Ok(())
    }

    async fn value_as(&mut self, id: SecretId, expected: Expected) -> Result<Option<Sealed>> {
        let row = sqlx::query(
            "SELECT key_id, nonce, ciphertext FROM secrets WHERE id = ? AND version = ? \
             AND (? IS NULL OR updated_time = ?)",
        )
        .bind(id.to_string())
        .bind(expected.version)
        .bind(expected.updated_time)
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(i.id.to_string())
        .bind(i.tenant_id.to_string())
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
            "UPDATE secrets SET description = ?, file_name = ?, version = ?, updated_time = ?, \
             key_id = ?, nonce = ?, ciphertext = ?, allowed_destinations = ?, max_versions = ?, \
             expires_at = ?, certificate = ?, private_key = ?, source = ? WHERE id = ? AND version = ?",
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
        .bind(i.id.to_string())
        .bind(version)
        .execute(&mut *self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_secret_row(&mut self, id: SecretId) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM secrets WHERE id = ?").bind(id.to_string()).execute(&mut *self.0).await?;
        Ok(())
    }

    async fn keep_earlier(&mut self, id: SecretId, version: i64, sealed: &Sealed) -> Result<()> {
        sqlx::query(
            // An upsert, not INSERT OR REPLACE: a replaced row must fire the update trigger that
            // keeps `tenant_usage` (a REPLACE deletes without firing delete triggers).
            "INSERT INTO secret_history \
             (secret_id, version, key_id, nonce, ciphertext, replaced_time) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (secret_id, version) DO UPDATE SET key_id = excluded.key_id, \
             nonce = excluded.nonce, ciphertext = excluded.ciphertext, replaced_time = excluded.replaced_time",
        )
        .bind(id.to_string())
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
            "DELETE FROM secret_history WHERE secret_id = ? AND version NOT IN \
             (SELECT version FROM secret_history WHERE secret_id = ? ORDER BY version DESC LIMIT ?)",
        )
        .bind(id.to_string())
        .bind(id.to_string())
        .bind(kept)
        .execute(&mut *self.0)
        .await?;
        let rows = sqlx::query(
            "SELECT version, key_id, nonce, ciphertext FROM secret_history \
             WHERE secret_id = ? ORDER BY version DESC",
        )
        .bind(id.to_string())
        .fetch_all(&mut *self.0)
        .await?;
        rows.iter()
            .map(|r| Ok(EarlierValue { version: r.try_get("version")?, sealed: sealed_from(r)? }))
            .collect()
    }

    async fn insert_version(&mut self, id: SecretId, v: &NewVersion) -> Result<()> {
        sqlx::query(
            "INSERT INTO secret_versions (secret_id, version, created_time, created_by, fingerprint) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
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
            .bind(id.to_string())
            .bind(row.info.version)
            .execute(&mut *self.0)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO secret_pending (secret_id, version, key_id, nonce, ciphertext, file_name, \
             created_time, created_by, fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (secret_id) DO NOTHING",
        )
        .bind(id.to_string())
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
            .bind(id.to_string())
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, body = excluded.body, \
             updated_time = excluded.updated_time \
             WHERE owners.tenant_id = excluded.tenant_id AND owners.type = excluded.type",
        )
        .bind(owner.id.to_string())
        .bind(tenant.to_string())
        .bind(owner.kind.as_str())
        .bind(&owner.name)
        .bind(owner.customer_id.map(|c| c.to_string()))
        .bind(body)
        .bind(now)
        .bind(now)
        .execute(&mut *self.0)
        .await?;
        Ok(saved.rows_affected())
    }

    async fn replace_refs(&mut self, owner: Uuid, refs: &[ResolvedRef<'_>]) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM secret_refs WHERE owner_id = ?")
            .bind(owner.to_string())
            .execute(&mut *self.0)
            .await?;
        for r in refs {
            sqlx::query(
                "INSERT INTO secret_refs (secret_id, owner_id, node_id, node_name, pointer) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(r.secret_id.to_string())
            .bind(owner.to_string())
            .bind(&r.reference.node_id)
            .bind(&r.reference.node_name)
            .bind(&r.reference.pointer)
            .execute(&mut *self.0)
            .await?;
        }
        Ok(())
    }

    async fn clear_links(&mut self, owner: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM owner_links WHERE owner_id = ?")
            .bind(owner.to_string())
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn insert_link(&mut self, tenant: TenantId, owner: Uuid, link: &OwnerLink) -> sqlx::Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO owner_links (owner_id, target_id, node_id, node_name, pointer) \
             SELECT ?, id, ?, ?, ? FROM owners WHERE id = ? AND tenant_id = ? AND type = ?",
        )
        .bind(owner.to_string())
        .bind(&link.node_id)
        .bind(&link.node_name)
        .bind(&link.pointer)
        .bind(link.target.to_string())
        .bind(tenant.to_string())
        .bind(link.kind.as_str())
        .execute(&mut *self.0)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn insert_user_row(&mut self, u: &UserRecord, roles: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO users (id, tenant_id, customer_id, username, password_hash, roles, created_time) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(u.id.to_string())
        .bind(u.tenant_id.to_string())
        .bind(u.customer_id.map(|c| c.to_string()))
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(roles)
        .bind(u.created_time)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn insert_customer_row(&mut self, c: &CustomerRecord) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO customers (id, tenant_id, name, created_time) VALUES (?, ?, ?, ?)")
            .bind(c.id.to_string())
            .bind(c.tenant_id.to_string())
            .bind(&c.name)
            .bind(c.created_time)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn insert_role_row(&mut self, r: &RoleRecord, permissions: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO roles (id, tenant_id, name, permissions, created_time) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(r.id.to_string())
        .bind(r.tenant_id.to_string())
        .bind(&r.name)
        .bind(permissions)
        .bind(r.created_time)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn insert_share_row(&mut self, secret: SecretId, customer: CustomerId) -> Result<()> {
        sqlx::query(
            "INSERT INTO secret_shares (secret_id, customer_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(secret.to_string())
        .bind(customer.to_string())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn delete_share_row(&mut self, secret: SecretId, customer: CustomerId) -> Result<()> {
        sqlx::query("DELETE FROM secret_shares WHERE secret_id = ? AND customer_id = ?")
            .bind(secret.to_string())
            .bind(customer.to_string())
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

impl SqliteBackend {
    pub(crate) async fn stage_pending(
        &self,
        id: SecretId,
        tenant: TenantId,
        row: &PendingRow,
        expected: Expected,
        quota: Quota,
        audit: &[NewAuditEntry],
    ) -> Result<Staged> {
        let mut conn = self.conn().await?;
        let tx = Tx(conn.begin().await?);
        writes::stage_pending(tx, id, tenant, row, expected, quota, audit).await
    }

    pub(crate) async fn drop_pending(&self, id: SecretId, audit: &[NewAuditEntry]) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = Tx(conn.begin().await?);
        writes::drop_pending(tx, id, audit).await
    }

    pub(crate) async fn pending(&self, id: SecretId) -> Result<Option<PendingRow>> {
        let row =
            sqlx::query(PENDING_SQL).bind(id.to_string()).fetch_optional(&mut *self.conn().await?).await?;
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
                .bind(id.to_string())
                .bind(version)
                .bind(p.owner_type.as_str())
                .bind(p.id.to_string())
                .bind(&p.name)
                .bind(&p.node_id)
                .bind(&p.node)
                .bind(&p.field)
                .bind(&p.result)
                .bind(&p.reason)
                .bind(p.time)
                .execute(&mut *self.conn().await?)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn probes(&self, id: SecretId, version: i64) -> Result<Vec<ProbeRecord>> {
        let rows = sqlx::query(PROBES_SQL)
            .bind(id.to_string())
            .bind(version)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(probe_from).collect()
    }

    pub(crate) async fn insert_secret(
        &self,
        row: &SecretRow,
        version: &NewVersion,
        quotas: &[Quota],
        audit: &[NewAuditEntry],
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        writes::insert_secret(Tx(conn.begin().await?), row, version, quotas, audit).await
    }

    pub(crate) async fn update_secret(
        &self,
        row: &SecretRow,
        version: Option<&NewVersion>,
        expected: Expected,
        quota: Option<Quota>,
        audit: &[NewAuditEntry],
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = Tx(conn.begin().await?);
        writes::update_secret(tx, row, version, expected, quota, audit, &self.earlier).await
    }

    pub(crate) async fn delete_secret(&self, id: SecretId, audit: &[NewAuditEntry]) -> Result<DeleteOutcome> {
        let mut conn = self.conn().await?;
        let deleting = writes::delete_secret(Tx(conn.begin().await?), id, audit, &self.earlier).await?;
        match deleting {
            Deleting::Done(outcome) => Ok(outcome),
            Deleting::ReferencedMeanwhile => {
                let mut tx = conn.begin().await?;
                Ok(DeleteOutcome::InUse(usages_in(&mut tx, id, None).await?))
            }
        }
    }

    pub(crate) async fn save_owner(&self, write: OwnerWrite<'_>) -> Result<bool> {
        let mut conn = self.conn().await?;
        writes::save_owner(Tx(conn.begin().await?), write).await
    }

    pub(crate) async fn insert_share(
        &self,
        secret: SecretId,
        customer: CustomerId,
        audit: &[NewAuditEntry],
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        writes::insert_share(Tx(conn.begin().await?), secret, customer, audit).await
    }

    pub(crate) async fn delete_share(
        &self,
        secret: SecretId,
        customer: CustomerId,
        audit: &[NewAuditEntry],
    ) -> Result<Option<Usages>> {
        let mut conn = self.conn().await?;
        writes::delete_share(Tx(conn.begin().await?), secret, customer, audit).await
    }
    pub(crate) async fn insert_user(&self, u: &UserRecord, quota: Option<Quota>) -> Result<()> {
        let mut conn = self.conn().await?;
        writes::insert_user(Tx(conn.begin().await?), u, quota).await
    }

    pub(crate) async fn insert_customer(&self, c: &CustomerRecord, quota: Quota) -> Result<()> {
        let mut conn = self.conn().await?;
        writes::insert_customer(Tx(conn.begin().await?), c, quota).await
    }

    pub(crate) async fn insert_role(&self, r: &RoleRecord, quota: Quota) -> Result<()> {
        let mut conn = self.conn().await?;
        writes::insert_role(Tx(conn.begin().await?), r, quota).await
    }
}
