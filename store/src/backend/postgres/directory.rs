//! Tenants, customers, users, custom roles, shares and the audit log in PostgreSQL.

use sqlx::Row;
use uuid::Uuid;

use super::{PostgresBackend, decode_err};
use crate::audit::{AuditEntry, AuditQuery, NewAuditEntry};
use crate::backend::CustomerUse;
use crate::backend::rows::{audit_from, customer_from, role_from, tenant_from, user_from};
use crate::directory::{CustomerRecord, RoleRecord, TenantRecord, TenantSettings, UserRecord};
use crate::error::Result;
use crate::model::{CustomerId, TenantId, UserId, now_ms};

/// The audit log's filter: `$1` tenant, `$2` target, `$3` actor, `$4` from, `$5` to.
const AUDIT_FILTER: &str = "tenant_id = $1 AND ($2::text IS NULL OR target_id = $2) \
     AND ($3::text IS NULL OR actor_name = $3 OR actor_id = $3) \
     AND ($4::bigint IS NULL OR time >= $4) AND ($5::bigint IS NULL OR time < $5)";

impl PostgresBackend {
    pub(crate) async fn tenant_by_id(&self, id: TenantId) -> Result<Option<TenantRecord>> {
        let row =
            sqlx::query("SELECT id, name, created_time, destinations_required, cas_required, strict_values, expiry_notices FROM tenants WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&*self.db())
                .await?;
        row.as_ref().map(tenant_from).transpose()
    }

    pub(crate) async fn set_tenant_settings(&self, id: TenantId, s: &TenantSettings) -> Result<()> {
        sqlx::query(
            "UPDATE tenants SET destinations_required = $1, cas_required = $2, strict_values = $3, \
             expiry_notices = $4 WHERE id = $5",
        )
        .bind(i64::from(s.destinations_required))
        .bind(i64::from(s.cas_required))
        .bind(i64::from(s.strict_values))
        .bind(crate::backend::metadata_text(&s.expiry_notices))
        .bind(id.0)
        .execute(&*self.db())
        .await?;
        Ok(())
    }

    pub(crate) async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        let rows = sqlx::query(
            "SELECT id, name, created_time, destinations_required, cas_required, strict_values, expiry_notices FROM tenants ORDER BY name COLLATE \"C\"",
        )
        .fetch_all(&*self.db())
        .await?;
        rows.iter().map(tenant_from).collect()
    }

    /// Deletes a tenant with everything in it (the audit log stays), in one transaction. The
    /// tenant's row is locked first: secret and configuration writes of the tenant (any
    /// instance) hold it `FOR KEY SHARE` until they commit, so the delete waits for them and sees
    /// what they wrote, and writes after it find the tenant in `deleted_tenants` and are refused.
    pub(crate) async fn delete_tenant(&self, id: TenantId) -> Result<bool> {
        let mut tx = self.db().begin().await?;
        sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        for sql in [
            // Links stay within a tenant; removing them first keeps the link foreign key from
            // depending on the order in which the owners' rows go.
            "DELETE FROM owner_links WHERE owner_id IN (SELECT id FROM owners WHERE tenant_id = $1)",
            "DELETE FROM secret_refs WHERE owner_id IN (SELECT id FROM owners WHERE tenant_id = $1)",
            "DELETE FROM owners WHERE tenant_id = $1",
            "DELETE FROM secret_shares WHERE secret_id IN (SELECT id FROM secrets WHERE tenant_id = $1)",
            "DELETE FROM secrets WHERE tenant_id = $1",
            "DELETE FROM users WHERE tenant_id = $1",
            "DELETE FROM customers WHERE tenant_id = $1",
            "DELETE FROM roles WHERE tenant_id = $1",
        ] {
            sqlx::query(sql).bind(id.0).execute(&mut *tx).await?;
        }
        let gone = sqlx::query("DELETE FROM tenants WHERE id = $1").bind(id.0).execute(&mut *tx).await?;
        if gone.rows_affected() == 1 {
            sqlx::query(
                "INSERT INTO deleted_tenants (id, deleted_time) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(id.0)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        // secret_history rows went with the secrets (ON DELETE CASCADE).
        self.earlier.forget_tenant(id);
        Ok(gone.rows_affected() == 1)
    }

    pub(crate) async fn customers(&self, tenant: TenantId) -> Result<Vec<CustomerRecord>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, created_time FROM customers WHERE tenant_id = $1 \
             ORDER BY name COLLATE \"C\"",
        )
        .bind(tenant.0)
        .fetch_all(&*self.db())
        .await?;
        rows.iter().map(customer_from).collect()
    }

    pub(crate) async fn customer(&self, tenant: TenantId, id: CustomerId) -> Result<Option<CustomerRecord>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name, created_time FROM customers WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(&*self.db())
        .await?;
        row.as_ref().map(customer_from).transpose()
    }

    /// Deletes a customer and its shares unless users or configurations still belong to it. Its
    /// row is locked first: a user or configuration being written for it (any instance) holds
    /// the row `FOR KEY SHARE`, so it is either counted here or refused after.
    pub(crate) async fn delete_customer(
        &self,
        tenant: TenantId,
        id: CustomerId,
    ) -> Result<Option<CustomerUse>> {
        let mut tx = self.db().begin().await?;
        sqlx::query("SELECT id FROM customers WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
            .bind(tenant.0)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE customer_id = $1")
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        let configurations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM owners WHERE customer_id = $1")
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        if users > 0 || configurations > 0 {
            return Ok(Some(CustomerUse { users, configurations }));
        }
        sqlx::query("DELETE FROM secret_shares WHERE customer_id = $1").bind(id.0).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM customers WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(None)
    }

    pub(crate) async fn users(&self, tenant: TenantId) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query("SELECT * FROM users WHERE tenant_id = $1 ORDER BY username COLLATE \"C\"")
            .bind(tenant.0)
            .fetch_all(&*self.db())
            .await?;
        rows.iter().map(user_from).collect()
    }

    /// Every user name with its tenant (user names are unique across tenants).
    pub(crate) async fn usernames(&self) -> Result<Vec<(TenantId, String)>> {
        let rows = sqlx::query("SELECT tenant_id, username FROM users").fetch_all(&*self.db()).await?;
        rows.iter().map(|r| Ok((TenantId(r.try_get("tenant_id")?), r.try_get("username")?))).collect()
    }

    pub(crate) async fn update_user(&self, u: &UserRecord) -> Result<()> {
        let roles = serde_json::to_string(&u.roles).map_err(|_| decode_err("roles"))?;
        sqlx::query("UPDATE users SET password_hash = $1, roles = $2, tokens_valid_after = $3 WHERE id = $4")
            .bind(&u.password_hash)
            .bind(roles)
            .bind(u.tokens_valid_after)
            .bind(u.id.0)
            .execute(&*self.db())
            .await?;
        Ok(())
    }

    pub(crate) async fn delete_user(&self, tenant: TenantId, id: UserId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(id.0)
            .execute(&*self.db())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn roles(&self, tenant: TenantId) -> Result<Vec<RoleRecord>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, permissions, created_time FROM roles WHERE tenant_id = $1 \
             ORDER BY name COLLATE \"C\"",
        )
        .bind(tenant.0)
        .fetch_all(&*self.db())
        .await?;
        rows.iter().map(role_from).collect()
    }

    pub(crate) async fn delete_role(&self, tenant: TenantId, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM roles WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(id)
            .execute(&*self.db())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Appends entries; a use of a secret by an owner in a minute already recorded (by any
    /// instance) adds its count to that entry.
    pub(crate) async fn delete_audit_before(&self, before: i64) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM audit_log WHERE time < $1").bind(before).execute(&*self.db()).await?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn insert_audit(&self, entries: &[NewAuditEntry]) -> Result<()> {
        let mut tx = self.db().begin().await?;
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
        let secret = q.secret_id.map(|s| s.to_string());
        let count_sql = format!("SELECT COUNT(*) FROM audit_log WHERE {AUDIT_FILTER}");
        let total: i64 = sqlx::query_scalar(&count_sql)
            .bind(tenant.0)
            .bind(&secret)
            .bind(&q.actor)
            .bind(q.from)
            .bind(q.to)
            .fetch_one(&*self.db())
            .await?;
        let page_sql = format!(
            "SELECT id, tenant_id, time, actor_id, actor_name, action, target_type, target_id, \
             target_name, outcome, details FROM audit_log WHERE {AUDIT_FILTER} \
             ORDER BY time DESC, id DESC LIMIT $6 OFFSET $7"
        );
        let rows = sqlx::query(&page_sql)
            .bind(tenant.0)
            .bind(&secret)
            .bind(&q.actor)
            .bind(q.from)
            .bind(q.to)
            .bind(i64::try_from(q.page_size).unwrap_or(i64::MAX))
            // A page past i64::MAX entries is past the end: an empty page, never a wrapped offset.
            .bind(i64::try_from(q.page.saturating_mul(q.page_size)).unwrap_or(i64::MAX))
            .fetch_all(&*self.db())
            .await?;
        Ok((rows.iter().map(audit_from).collect::<Result<_>>()?, total))
    }
}

/// Appends audit entries inside `tx` (the write they record commits with them, or neither does); a
/// use of a secret by an owner in a minute already recorded (by any instance) adds its count.
pub(super) async fn audit_rows(tx: &mut sqlx::PgConnection, entries: &[NewAuditEntry]) -> Result<()> {
    for e in entries {
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, time, actor_id, actor_name, action, target_type, \
                 target_id, target_name, outcome, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (tenant_id, actor_id, target_id, time) WHERE action = 'USE' DO UPDATE \
                 SET details = jsonb_set(audit_log.details::jsonb, '{count}', to_jsonb( \
                 COALESCE((audit_log.details::jsonb ->> 'count')::bigint, 0) \
                 + COALESCE((excluded.details::jsonb ->> 'count')::bigint, 0)))::text",
        )
        .bind(e.tenant_id.map(|t| t.0))
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
