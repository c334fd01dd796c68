//! Tenants and users as stored. Password hashing and tokens belong to the server; the store keeps
//! the hash and the roles.

use serde::Serialize;

use crate::access::{Actor, Permissions, Role};
use crate::model::{CustomerId, TenantId, UserId};

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
    /// Granted roles.
    pub roles: Vec<Role>,
    /// Milliseconds since the epoch.
    pub created_time: i64,
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

impl UserRecord {
    /// The actor this user acts as.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.id,
            username: self.username.clone(),
            tenant_id: self.tenant_id,
            customer_id: self.customer_id,
            permissions: self.roles.iter().fold(Permissions::default(), |acc, r| acc.union(r.permissions())),
        }
    }
}
