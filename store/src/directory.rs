//! Tenants, customers, users and custom roles as stored. Password hashing and tokens belong to the
//! server; the store keeps the hash and the role names.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::access::{Operation, Permissions, Resource};
use crate::model::{CustomerId, TenantId, UserId};

/// The tenant system administrators belong to; it holds nothing else and is never listed.
pub const SYSTEM_TENANT: TenantId = TenantId(Uuid::nil());

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRecord {
    /// Its id.
    pub id: TenantId,
    /// Its unique name.
    pub name: String,
    /// Milliseconds since the epoch.
    pub created_time: i64,
    /// Every secret must name its allowed destinations: one with an empty list is sent nowhere.
    pub destinations_required: bool,
    /// Every value change must name the version it is based on (`If-Match`).
    pub cas_required: bool,
    /// Values with leading or trailing whitespace, a trailing newline, surrounding quotes or
    /// shorter than the masking minimum are refused instead of accepted with a warning.
    pub strict_values: bool,
    /// Where to send a message when a secret is about to expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_notices: Option<ExpiryNotices>,
}

/// A `SECRET_EXPIRY` message goes into the rule chain `rule_chain_id` when a secret's version
/// comes within each of `days_before` days of its expiry (once per threshold per version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpiryNotices {
    /// The rule chain that receives them.
    pub rule_chain_id: uuid::Uuid,
    /// How many days before the expiry (each 1..365).
    pub days_before: Vec<u32>,
}

impl TenantRecord {
    /// Its settings.
    pub fn settings(&self) -> TenantSettings {
        TenantSettings {
            destinations_required: self.destinations_required,
            cas_required: self.cas_required,
            strict_values: self.strict_values,
            expiry_notices: self.expiry_notices.clone(),
        }
    }
}

/// What a tenant administrator decides for the whole tenant (`GET/PUT /api/tenant-settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantSettings {
    /// See [`TenantRecord::destinations_required`].
    pub destinations_required: bool,
    /// See [`TenantRecord::cas_required`].
    pub cas_required: bool,
    /// See [`TenantRecord::strict_values`].
    pub strict_values: bool,
    /// See [`TenantRecord::expiry_notices`] (`null`: none).
    pub expiry_notices: Option<ExpiryNotices>,
}

/// A customer of a tenant: its users use secrets shared with it, never read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerRecord {
    /// Its id.
    pub id: CustomerId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Unique within the tenant.
    pub name: String,
    /// Milliseconds since the epoch.
    pub created_time: i64,
}

/// Operations on one resource, as a custom role grants them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The resource.
    pub resource: Resource,
    /// The operations.
    pub operations: Vec<Operation>,
}

/// A custom role: a named set of grants within a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRecord {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Unique within the tenant; never a built-in role's name.
    pub name: String,
    /// What it grants.
    pub permissions: Vec<Grant>,
    /// Milliseconds since the epoch.
    pub created_time: i64,
}

impl RoleRecord {
    /// The grants as a permission set.
    pub fn permission_set(&self) -> Permissions {
        self.permissions.iter().fold(Permissions::default(), |acc, g| acc.with(g.resource, &g.operations))
    }
}

/// A user account.
#[derive(Clone)]
pub struct UserRecord {
    /// Its id.
    pub id: UserId,
    /// The tenant it belongs to.
    pub tenant_id: TenantId,
    /// Set for customer users.
    pub customer_id: Option<CustomerId>,
    /// Unique login name.
    pub username: String,
    /// A PHC-format password hash (argon2).
    pub password_hash: String,
    /// Granted roles: built-in names (`TENANT_ADMIN`, ...) or the tenant's custom roles.
    pub roles: Vec<String>,
    /// Milliseconds since the epoch.
    pub created_time: i64,
    /// Tokens issued before this (milliseconds since the epoch) are no longer accepted.
    pub tokens_valid_after: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("customer_id", &self.customer_id)
            .field("username", &self.username)
            .field("password_hash", &"[REDACTED]")
            .field("roles", &self.roles)
            .finish()
    }
}

/// A user as the API shows it: no password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// Its id.
    pub id: UserId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Set for customer users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    /// Login name.
    pub username: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Milliseconds since the epoch.
    pub created_time: i64,
}

impl From<&UserRecord> for UserInfo {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id,
            tenant_id: u.tenant_id,
            customer_id: u.customer_id,
            username: u.username.clone(),
            roles: u.roles.clone(),
            created_time: u.created_time,
        }
    }
}

/// Changes to a user; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// A new password hash.
    pub password_hash: Option<String>,
    /// New role names.
    pub roles: Option<Vec<String>>,
    /// The caller checked the actor's current password. Users changing their own password must
    /// have given it (a stolen session alone must not take over the account); administrators
    /// resetting someone else's password need not.
    pub current_password_verified: bool,
}
