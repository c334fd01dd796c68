//! Tenants, customers, users, custom roles, shares and the audit log in SQLite.

use sqlx::{Connection, Row};
use uuid::Uuid;

use super::{SqliteBackend, decode_err, parse_id};
use crate::audit::{AuditAction, AuditEntry, AuditQuery, NewAuditEntry};
use crate::backend::CustomerUse;
use crate::backend::rows::{audit_from, customer_from, role_from, tenant_from, user_from};
use crate::directory::{CustomerRecord, RoleRecord, TenantRecord, TenantSettings, UserRecord};
use crate::error::Result;
use crate::model::{CustomerId, TenantId, UserId};

impl SqliteBackend {
    pub(crate) async fn tenant_by_id(&self, id: TenantId) -> Result<Option<TenantRecord>> {
        let row =
            sqlx::query("SELECT id, name, created_time, destinations_required, cas_required, strict_values, expiry_notices FROM tenants WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut *self.conn().await?)
                .await?;
        row.as_ref().map(tenant_from).transpose()
    }

    pub(crate) async fn set_tenant_settings(&self, id: TenantId, s: &TenantSettings) -> Result<()> {
        sqlx::query(
            "UPDATE tenants SET destinations_required = ?, cas_required = ?, strict_values = ?, \
             expiry_notices = ? WHERE id = ?",
        )
        .bind(i64::from(s.destinations_required))
        .bind(i64::from(s.cas_required))
        .bind(i64::from(s.strict_values))
        .bind(crate::backend::metadata_text(&s.expiry_notices))
        .bind(id.to_string())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    pub(crate) async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        let rows =
            sqlx::query("SELECT id, name, created_time, destinations_required, cas_required, strict_values, expiry_notices FROM tenants ORDER BY name")
                .fetch_all(&mut *self.conn().await?)
                .await?;
        rows.iter().map(tenant_from).collect()
    }

    /// Deletes a tenant with everything in it (the audit log stays).
    pub(crate) async fn delete_tenant(&self, id: TenantId) -> Result<bool> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let t = id.to_string();
        for sql in [
            "DELETE FROM secret_refs WHERE owner_id IN (SELECT id FROM owners WHERE tenant_id = ?)",
            "DELETE FROM owners WHERE tenant_id = ?",
            "DELETE FROM secret_shares WHERE secret_id IN (SELECT id FROM secrets WHERE tenant_id = ?)",
            "DELETE FROM secrets WHERE tenant_id = ?",
            "DELETE FROM users WHERE tenant_id = ?",
            "DELETE FROM customers WHERE tenant_id = ?",
            "DELETE FROM roles WHERE tenant_id = ?",
        ] {
            sqlx::query(sql).bind(&t).execute(&mut *tx).await?;
        }
        let gone = sqlx::query("DELETE FROM tenants WHERE id = ?").bind(&t).execute(&mut *tx).await?;
        tx.commit().await?;
        // secret_history rows went with the secrets (ON DELETE CASCADE).
        self.forget_earlier_values_of(id);
        Ok(gone.rows_affected() == 1)
    }

    pub(crate) async fn customers(&self, tenant: TenantId) -> Result<Vec<CustomerRecord>> {
        let rows = sqlx::query("SELECT * FROM customers WHERE tenant_id = ? ORDER BY name")
            .bind(tenant.to_string())
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(customer_from).collect()
    }

    pub(crate) async fn customer(&self, tenant: TenantId, id: CustomerId) -> Result<Option<CustomerRecord>> {
        let row = sqlx::query("SELECT * FROM customers WHERE tenant_id = ? AND id = ?")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(customer_from).transpose()
    }

    /// Deletes a customer and its shares unless users or configurations still belong to it.
    pub(crate) async fn delete_customer(
        &self,
        tenant: TenantId,
        id: CustomerId,
    ) -> Result<Option<CustomerUse>> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let c = id.to_string();
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE customer_id = ?")
            .bind(&c)
            .fetch_one(&mut *tx)
            .await?;
        let configurations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM owners WHERE customer_id = ?")
            .bind(&c)
            .fetch_one(&mut *tx)
            .await?;
        if users > 0 || configurations > 0 {
            return Ok(Some(CustomerUse { users, configurations }));
        }
        sqlx::query("DELETE FROM secret_shares WHERE customer_id = ?").bind(&c).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM customers WHERE tenant_id = ? AND id = ?")
            .bind(tenant.to_string())
            .bind(&c)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(None)
    }

    pub(crate) async fn users(&self, tenant: TenantId) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query("SELECT * FROM users WHERE tenant_id = ? ORDER BY username")
            .bind(tenant.to_string())
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(user_from).collect()
    }

    /// Every user name with its tenant (user names are unique across tenants).
    pub(crate) async fn usernames(&self) -> Result<Vec<(TenantId, String)>> {
        let rows =
            sqlx::query("SELECT tenant_id, username FROM users").fetch_all(&mut *self.conn().await?).await?;
        rows.iter().map(|r| Ok((parse_id(r, "tenant_id")?, r.try_get("username")?))).collect()
    }

    pub(crate) async fn update_user(&self, u: &UserRecord) -> Result<()> {
        let roles = serde_json::to_string(&u.roles).map_err(|_| decode_err("roles"))?;
        sqlx::query("UPDATE users SET password_hash = ?, roles = ?, tokens_valid_after = ? WHERE id = ?")
            .bind(&u.password_hash)
            .bind(roles)
            .bind(u.tokens_valid_after)
            .bind(u.id.to_string())
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    pub(crate) async fn delete_user(&self, tenant: TenantId, id: UserId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE tenant_id = ? AND id = ?")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn roles(&self, tenant: TenantId) -> Result<Vec<RoleRecord>> {
        let rows = sqlx::query("SELECT * FROM roles WHERE tenant_id = ? ORDER BY name")
            .bind(tenant.to_string())
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(role_from).collect()
    }

    pub(crate) async fn delete_role(&self, tenant: TenantId, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM roles WHERE tenant_id = ? AND id = ?")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Appends entries; a use of a secret by an owner in a minute already recorded adds its count.
    pub(crate) async fn delete_audit_before(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM audit_log WHERE time < ?")
            .bind(before)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn insert_audit(&self, entries: &[NewAuditEntry]) -> Result<()> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        audit_rows(&mut tx, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One page of a tenant's entries, newest first, and how many match.
    pub(crate) async fn audit_logs(
        &self,
        tenant: TenantId,
        q: &AuditQuery,
    ) -> Result<(Vec<AuditEntry>, i64)> {
        const FILTER: &str = "tenant_id = ? AND (? IS NULL OR target_id = ?) \
             AND (? IS NULL OR actor_name = ? OR actor_id = ?) AND (? IS NULL OR time >= ?) AND (? IS NULL OR time < ?)";
        let secret = q.secret_id.map(|s| s.to_string());
        let mut conn = self.conn().await?;
        let count_sql = format!("SELECT COUNT(*) FROM audit_log WHERE {FILTER}");
        let total: i64 = sqlx::query_scalar(&count_sql)
            .bind(tenant.to_string())
            .bind(&secret)
            .bind(&secret)
            .bind(&q.actor)
            .bind(&q.actor)
            .bind(&q.actor)
            .bind(q.from)
            .bind(q.from)
            .bind(q.to)
            .bind(q.to)
            .fetch_one(&mut *conn)
            .await?;
        let page_sql =
            format!("SELECT * FROM audit_log WHERE {FILTER} ORDER BY time DESC, id DESC LIMIT ? OFFSET ?");
        let rows = sqlx::query(&page_sql)
            .bind(tenant.to_string())
            .bind(&secret)
            .bind(&secret)
            .bind(&q.actor)
            .bind(&q.actor)
            .bind(&q.actor)
            .bind(q.from)
            .bind(q.from)
            .bind(q.to)
            .bind(q.to)
            .bind(i64::try_from(q.page_size).unwrap_or(i64::MAX))
            // A page past i64::MAX entries is past the end: an empty page, never a wrapped offset.
            .bind(i64::try_from(q.page.saturating_mul(q.page_size)).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await?;
        Ok((rows.iter().map(audit_from).collect::<Result<_>>()?, total))
    }
}

/// Appends audit entries inside `tx` (the write they record commits with them, or neither does); a
/// use of a secret by an owner in a minute already recorded adds its count.
pub(super) async fn audit_rows(tx: &mut sqlx::SqliteConnection, entries: &[NewAuditEntry]) -> Result<()> {
    for e in entries {
        if e.action == AuditAction::Use {
            let count = e.details.get("count").and_then(serde_json::Value::as_i64).unwrap_or(0);
            let merged = sqlx::query(
                    "UPDATE audit_log SET details = json_set(details, '$.count', json_extract(details, '$.count') + ?) \
                     WHERE action = 'USE' AND tenant_id IS ? AND actor_id IS ? AND target_id IS ? AND time = ?",
                )
                .bind(count)
                .bind(e.tenant_id.map(|t| t.to_string()))
                .bind(&e.actor_id)
                .bind(&e.target_id)
                .bind(e.time)
                .execute(&mut *tx)
                .await?;
            if merged.rows_affected() > 0 {
                continue;
            }
        }
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, time, actor_id, actor_name, action, target_type, target_id, \
                 target_name, outcome, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.tenant_id.map(|t| t.to_string()))
        .bind(e.time)
        .bind(&e.actor_id)
        .bind(&e.actor_name)
        .bind(e.action.as_str())
        .bind(e.target_type)
        .bind(&e.target_id)
        .bind(&e.target_name)
        .bind(if e.success { "SUCCESS" } else { "FAILURE" })
        .bind(e.details.to_string())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
