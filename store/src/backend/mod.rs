//! Persistence: a closed set of backends, one file each, with the same operations.

mod sqlite;

use std::path::PathBuf;

use uuid::Uuid;

pub(crate) use self::sqlite::{CustomerUse, SqliteBackend};
use crate::audit::{AuditEntry, AuditQuery, NewAuditEntry};
use crate::crypto::{Sealed, WrappedKey};
use crate::directory::{CustomerRecord, RoleRecord, TenantRecord, UserRecord};
use crate::error::Result;
use crate::model::{CustomerId, SecretId, SecretInfo, TenantId, UserId};
use crate::references::{Owner, OwnerLink, OwnerType, ResolvedRef, Usages};

/// Which database holds the store.
#[derive(Debug, Clone)]
pub enum Database {
    /// The embedded default: a SQLite file.
    Sqlite(PathBuf),
}

/// A secret as persisted: metadata plus ciphertext.
#[derive(Clone)]
pub(crate) struct SecretRow {
    pub(crate) info: SecretInfo,
    pub(crate) sealed: Sealed,
}

/// An earlier value of a secret, kept encrypted as it was so that it stays masked: the ciphertext
/// of `version`, bound to the secret's tenant, id and that version by its associated data.
#[derive(Clone)]
pub(crate) struct EarlierValue {
    pub(crate) version: i64,
    pub(crate) sealed: Sealed,
}

/// How many earlier values are kept per secret.
pub(crate) const EARLIER_VALUES_KEPT: i64 = 5;

/// A stored configuration that may own references.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerRecord {
    /// Who it is.
    pub owner: Owner,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The configuration document, with placeholders (never plaintext).
    pub body: serde_json::Value,
    /// Milliseconds since the epoch.
    pub created_time: i64,
    /// Milliseconds since the epoch.
    pub updated_time: i64,
}

/// Result of deleting a secret inside one transaction.
pub(crate) enum DeleteOutcome {
    Deleted,
    InUse(Usages),
}

/// The persistence backends.
pub(crate) enum Backend {
    Sqlite(SqliteBackend),
}

macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Backend::Sqlite(b) => b.$method($($arg),*).await,
        }
    };
}

impl Backend {
    pub(crate) async fn connect(db: &Database) -> Result<Self> {
        match db {
            Database::Sqlite(path) => Ok(Self::Sqlite(SqliteBackend::connect(path).await?)),
        }
    }

    pub(crate) fn queries(&self) -> u64 {
        match self {
            Self::Sqlite(b) => b.queries(),
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
        }
    }

    pub(crate) async fn close(&self) {
        dispatch!(self.close())
    }
    pub(crate) async fn migrate(&self) -> Result<()> {
        dispatch!(self.migrate())
    }
    pub(crate) async fn load_data_keys(&self) -> Result<Vec<WrappedKey>> {
        dispatch!(self.load_data_keys())
    }
    pub(crate) async fn insert_data_key(&self, key: &WrappedKey) -> Result<()> {
        dispatch!(self.insert_data_key(key))
    }
    pub(crate) async fn system_secret(&self, name: &str) -> Result<Option<Sealed>> {
        dispatch!(self.system_secret(name))
    }
    pub(crate) async fn insert_system_secret(&self, name: &str, sealed: &Sealed) -> Result<()> {
        dispatch!(self.insert_system_secret(name, sealed))
    }
    pub(crate) async fn load_secrets(&self) -> Result<Vec<SecretRow>> {
        dispatch!(self.load_secrets())
    }
    pub(crate) async fn insert_secret(&self, row: &SecretRow) -> Result<()> {
        dispatch!(self.insert_secret(row))
    }
    pub(crate) async fn update_secret(&self, row: &SecretRow, expected_version: i64) -> Result<bool> {
        dispatch!(self.update_secret(row, expected_version))
    }
    /// The earlier values kept for a secret, newest first (from memory: loaded at open and kept
    /// in step with this process's commits).
    pub(crate) fn earlier_values(&self, id: SecretId) -> Vec<EarlierValue> {
        match self {
            Backend::Sqlite(b) => b.earlier_values(id),
        }
    }
    pub(crate) async fn delete_secret(&self, id: SecretId) -> Result<DeleteOutcome> {
        dispatch!(self.delete_secret(id))
    }
    pub(crate) async fn usages(&self, id: SecretId, customer: Option<CustomerId>) -> Result<Usages> {
        dispatch!(self.usages(id, customer))
    }
    pub(crate) async fn save_owner(
        &self,
        tenant: TenantId,
        owner: &Owner,
        body: &serde_json::Value,
        refs: &[ResolvedRef<'_>],
        links: &[OwnerLink],
    ) -> Result<bool> {
        dispatch!(self.save_owner(tenant, owner, body, refs, links))
    }
    pub(crate) async fn links_to(&self, id: Uuid) -> Result<Vec<(String, Option<String>)>> {
        dispatch!(self.links_to(id))
    }
    pub(crate) async fn delete_owner(&self, tenant: TenantId, kind: OwnerType, id: Uuid) -> Result<bool> {
        dispatch!(self.delete_owner(tenant, kind, id))
    }
    pub(crate) async fn owner(
        &self,
        tenant: TenantId,
        kind: OwnerType,
        id: Uuid,
    ) -> Result<Option<OwnerRecord>> {
        dispatch!(self.owner(tenant, kind, id))
    }
    pub(crate) async fn owners(&self, tenant: TenantId, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        dispatch!(self.owners(tenant, kind))
    }
    pub(crate) async fn all_owners(&self, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        dispatch!(self.all_owners(kind))
    }
    pub(crate) async fn dangling_references(&self) -> Result<i64> {
        dispatch!(self.dangling_references())
    }
    pub(crate) async fn insert_tenant(&self, t: &TenantRecord) -> Result<()> {
        dispatch!(self.insert_tenant(t))
    }
    pub(crate) async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRecord>> {
        dispatch!(self.tenant_by_name(name))
    }
    pub(crate) async fn insert_user(&self, u: &UserRecord) -> Result<()> {
        dispatch!(self.insert_user(u))
    }
    pub(crate) async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        dispatch!(self.user_by_name(username))
    }
    pub(crate) async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        dispatch!(self.user_by_id(id))
    }
    pub(crate) async fn count_users(&self) -> Result<i64> {
        dispatch!(self.count_users())
    }
    pub(crate) async fn tenant_by_id(&self, id: TenantId) -> Result<Option<TenantRecord>> {
        dispatch!(self.tenant_by_id(id))
    }
    pub(crate) async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        dispatch!(self.tenants())
    }
    pub(crate) async fn delete_tenant(&self, id: TenantId) -> Result<bool> {
        dispatch!(self.delete_tenant(id))
    }
    pub(crate) async fn insert_customer(&self, c: &CustomerRecord) -> Result<()> {
        dispatch!(self.insert_customer(c))
    }
    pub(crate) async fn customers(&self, tenant: TenantId) -> Result<Vec<CustomerRecord>> {
        dispatch!(self.customers(tenant))
    }
    pub(crate) async fn customer(&self, tenant: TenantId, id: CustomerId) -> Result<Option<CustomerRecord>> {
        dispatch!(self.customer(tenant, id))
    }
    pub(crate) async fn delete_customer(
        &self,
        tenant: TenantId,
        id: CustomerId,
    ) -> Result<Option<CustomerUse>> {
        dispatch!(self.delete_customer(tenant, id))
    }
    pub(crate) async fn users(&self, tenant: TenantId) -> Result<Vec<UserRecord>> {
        dispatch!(self.users(tenant))
    }
    pub(crate) async fn usernames(&self) -> Result<Vec<(TenantId, String)>> {
        dispatch!(self.usernames())
    }
    pub(crate) async fn update_user(&self, u: &UserRecord) -> Result<()> {
        dispatch!(self.update_user(u))
    }
    pub(crate) async fn delete_user(&self, tenant: TenantId, id: UserId) -> Result<bool> {
        dispatch!(self.delete_user(tenant, id))
    }
    pub(crate) async fn insert_role(&self, r: &RoleRecord) -> Result<()> {
        dispatch!(self.insert_role(r))
    }
    pub(crate) async fn roles(&self, tenant: TenantId) -> Result<Vec<RoleRecord>> {
        dispatch!(self.roles(tenant))
    }
    pub(crate) async fn delete_role(&self, tenant: TenantId, id: Uuid) -> Result<bool> {
        dispatch!(self.delete_role(tenant, id))
    }
    pub(crate) async fn insert_share(&self, secret: SecretId, customer: CustomerId) -> Result<()> {
        dispatch!(self.insert_share(secret, customer))
    }
    pub(crate) async fn delete_share(
        &self,
        secret: SecretId,
        customer: CustomerId,
    ) -> Result<Option<Usages>> {
        dispatch!(self.delete_share(secret, customer))
    }
    pub(crate) async fn insert_audit(&self, entries: &[NewAuditEntry]) -> Result<()> {
        dispatch!(self.insert_audit(entries))
    }
    pub(crate) async fn audit_logs(
        &self,
        tenant: TenantId,
        q: &AuditQuery,
    ) -> Result<(Vec<AuditEntry>, i64)> {
        dispatch!(self.audit_logs(tenant, q))
    }
}
