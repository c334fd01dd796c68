//! Data key rotation's statements for PostgreSQL: the new key and its rotation row, the
//! values still sealed with other keys (in batches), their new ciphertexts, and retiring old keys.

use sqlx::Row;
use uuid::Uuid;

use super::PostgresBackend;
use super::directory::audit_rows;
use crate::audit::NewAuditEntry;
use crate::backend::rows::{Columns, decode_err, sealed_from};
use crate::crypto::{Sealed, WrappedKey};
use crate::error::Result;
use crate::keys::{
    DataKeyInfo, KEYS_SQL, KeyRotation, OTHER_KEY_COUNT_SQL, RETIRE_SQL, ROTATION_SQL, StoredValue,
    ValueTable, rotation_from,
};
use crate::model::now_ms;

/// The `SELECT` of a table's values with the columns [`StoredValue`] needs.
fn select(table: ValueTable) -> &'static str {
    match table {
        ValueTable::Secrets => {
            "SELECT id::text AS k, tenant_id::text AS t, version, key_id, nonce, ciphertext FROM secrets"
        }
        ValueTable::History => {
            "SELECT h.secret_id::text AS k, s.tenant_id::text AS t, h.version, h.key_id, h.nonce, h.ciphertext \
             FROM secret_history h JOIN secrets s ON s.id = h.secret_id"
        }
        ValueTable::Pending => {
            "SELECT p.secret_id::text AS k, s.tenant_id::text AS t, p.version, p.key_id, p.nonce, p.ciphertext \
             FROM secret_pending p JOIN secrets s ON s.id = p.secret_id"
        }
        ValueTable::System => {
            "SELECT name AS k, NULL::text AS t, 0::bigint AS version, key_id, nonce, ciphertext FROM system_secrets"
        }
    }
}

/// The key column (for `WHERE … key_id <> $1` and the order) of a table's select.
fn qualified(table: ValueTable) -> (&'static str, &'static str) {
    match table {
        ValueTable::Secrets => ("key_id", "id"),
        ValueTable::History => ("h.key_id", "h.secret_id, h.version"),
        ValueTable::Pending => ("p.key_id", "p.secret_id"),
        ValueTable::System => ("key_id", "name"),
    }
}

impl PostgresBackend {
    /// Adds `key` and a rotation to it (counting the values to seal again), unless one is
    /// running: `None` then.
    pub(crate) async fn start_key_rotation(
        &self,
        key: &WrappedKey,
        started_by: &str,
        audit: &[NewAuditEntry],
    ) -> Result<Option<KeyRotation>> {
        let mut tx = self.db().begin().await?;
        // One rotation at a time, across instances.
        sqlx::query("LOCK TABLE key_rotations IN EXCLUSIVE MODE").execute(&mut *tx).await?;
        let running: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM key_rotations WHERE finished_time IS NULL")
                .fetch_one(&mut *tx)
                .await?;
        if running > 0 {
            return Ok(None);
        }
        let now = now_ms();
        sqlx::query("INSERT INTO data_keys (id, wrapped, created_time) VALUES ($1, $2, $3)")
            .bind(key.id)
            .bind(&key.wrapped)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let total: i64 = sqlx::query_scalar(OTHER_KEY_COUNT_SQL).bind(key.id).fetch_one(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO key_rotations (key_id, started_time, started_by, total) VALUES ($1, $2, $3, $4)",
        )
        .bind(key.id)
        .bind(now)
        .bind(started_by)
        .bind(total)
        .execute(&mut *tx)
        .await?;
        audit_rows(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(KeyRotation {
            key_id: key.id,
            done: 0,
            total,
            started_time: now,
            started_by: started_by.to_owned(),
            finished_time: None,
        }))
    }

    /// The latest rotation.
    pub(crate) async fn key_rotation(&self) -> Result<Option<KeyRotation>> {
        let row = sqlx::query(ROTATION_SQL).fetch_optional(&*self.db()).await?;
        row.as_ref().map(rotation_from).transpose()
    }

    /// Every data key, with how many values it seals.
    pub(crate) async fn data_keys_info(&self) -> Result<Vec<DataKeyInfo>> {
        let rows = sqlx::query(KEYS_SQL).fetch_all(&*self.db()).await?;
        rows.iter()
            .map(|r| {
                Ok(DataKeyInfo { id: r.int("id")?, created: r.int("created_time")?, values: r.int("used")? })
            })
            .collect()
    }

    /// Values of `table`: with `not_under`, only those sealed with another key (the first
    /// `limit`); otherwise a page of all of them (for checking).
    pub(crate) async fn stored_values(
        &self,
        table: ValueTable,
        not_under: Option<i64>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<StoredValue>> {
        let (key, order) = qualified(table);
        // Every table's key ids are positive: -1 filters nothing.
        let sql = format!("{} WHERE {key} <> $1 ORDER BY {order} LIMIT $2 OFFSET $3", select(table));
        let rows = sqlx::query(&sql)
            .bind(not_under.unwrap_or(-1))
            .bind(limit)
            .bind(offset)
            .fetch_all(&*self.db())
            .await?;
        rows.iter()
            .map(|r| {
                let tenant: Option<String> = r.try_get("t")?;
                Ok(StoredValue {
                    table,
                    key: r.try_get("k")?,
                    tenant: tenant.and_then(|t| t.parse().ok()),
                    version: r.int("version")?,
                    sealed: sealed_from(r)?,
                })
            })
            .collect()
    }

    /// Writes the new ciphertexts of values still as they were read (a value changed meanwhile
    /// is left to its writer) and counts them as done for `rotation`; how many were written.
    pub(crate) async fn reseal_values(
        &self,
        rotation: i64,
        changes: &[(StoredValue, Sealed)],
    ) -> Result<u64> {
        let mut tx = self.db().begin().await?;
        let mut written = 0;
        for (old, new) in changes {
            let sql = match old.table {
                ValueTable::Secrets => {
                    "UPDATE secrets SET key_id = $1, nonce = $2, ciphertext = $3 \
                     WHERE id = $4 AND key_id = $5 AND nonce = $6 AND version = $7"
                }
                ValueTable::History => {
                    "UPDATE secret_history SET key_id = $1, nonce = $2, ciphertext = $3 \
                     WHERE secret_id = $4 AND key_id = $5 AND nonce = $6 AND version = $7"
                }
                ValueTable::Pending => {
                    "UPDATE secret_pending SET key_id = $1, nonce = $2, ciphertext = $3 \
                     WHERE secret_id = $4 AND key_id = $5 AND nonce = $6 AND version = $7"
                }
                ValueTable::System => {
                    "UPDATE system_secrets SET key_id = $1, nonce = $2, ciphertext = $3 \
                     WHERE name = $4 AND key_id = $5 AND nonce = $6 AND 0 = $7"
                }
            };
            let query = sqlx::query(sql).bind(new.key_id).bind(new.nonce.as_slice()).bind(&new.ciphertext);
            let query = if old.table == ValueTable::System {
                query.bind(old.key.clone())
            } else {
                query.bind(old.key.parse::<Uuid>().map_err(|_| decode_err("bad id"))?)
            };
            let done = query
                .bind(old.sealed.key_id)
                .bind(old.sealed.nonce.as_slice())
                .bind(old.version)
                .execute(&mut *tx)
                .await?;
            written += done.rows_affected();
        }
        sqlx::query("UPDATE key_rotations SET done = done + $1 WHERE key_id = $2")
            .bind(i64::try_from(written).unwrap_or(i64::MAX))
            .bind(rotation)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(written)
    }

    /// Retires every other key no value uses and ends `rotation`, unless a value sealed with
    /// another key remains (a writer that had not heard of the new key): false then.
    pub(crate) async fn finish_key_rotation(&self, rotation: i64, audit: &[NewAuditEntry]) -> Result<bool> {
        let mut tx = self.db().begin().await?;
        let left: i64 = sqlx::query_scalar(OTHER_KEY_COUNT_SQL).bind(rotation).fetch_one(&mut *tx).await?;
        if left > 0 {
            return Ok(false);
        }
        sqlx::query(RETIRE_SQL).bind(rotation).execute(&mut *tx).await?;
        // Finished means retired: a key still there (a value sealed with it since the count)
        // leaves the rotation open for another pass.
        let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_keys WHERE id <> $1")
            .bind(rotation)
            .fetch_one(&mut *tx)
            .await?;
        if kept > 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE key_rotations SET finished_time = $1 WHERE key_id = $2")
            .bind(now_ms())
            .bind(rotation)
            .execute(&mut *tx)
            .await?;
        audit_rows(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}
