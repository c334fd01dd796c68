//! Who may do what: actors, operations on secrets, built-in roles. The store checks these at its
//! boundary so every entry point (HTTP, CLI, engine) enforces the same rules.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::model::{CustomerId, SecretInfo, TenantId, UserId};

/// An operation on the SECRET resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// See metadata (never the value).
    Read,
    /// Create secrets.
    Create,
    /// Change value or description.
    Write,
    /// Delete secrets.
    Delete,
    /// Reference a secret from a configuration.
    Use,
}

impl Operation {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Create => "CREATE",
            Self::Write => "WRITE",
            Self::Delete => "DELETE",
            Self::Use => "USE",
        }
    }
}

/// A set of operations on secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// Every operation.
    pub const ALL: Permissions = Permissions(0b1_1111);

    /// A set of the given operations.
    pub fn of(ops: &[Operation]) -> Self {
        Self(ops.iter().fold(0, |acc, op| acc | op.bit()))
    }

    /// Whether `op` is in the set.
    pub fn allows(self, op: Operation) -> bool {
        self.0 & op.bit() != 0
    }

    /// The union of two sets.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// The built-in roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Everything within its tenant.
    TenantAdmin,
    /// READ, CREATE, WRITE, DELETE on secrets.
    SecretManager,
    /// READ and USE secrets.
    RuleChainAuthor,
    /// READ and USE secrets shared with its customer.
    CustomerUser,
}

impl Role {
    /// The operations on secrets this role grants.
    pub fn permissions(self) -> Permissions {
        use Operation::*;
        match self {
            Self::TenantAdmin => Permissions::ALL,
            Self::SecretManager => Permissions::of(&[Read, Create, Write, Delete]),
            Self::RuleChainAuthor | Self::CustomerUser => Permissions::of(&[Read, Use]),
        }
    }
}

/// Someone acting on the store: a user of a tenant, or of one of its customers.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The user.
    pub user_id: UserId,
    /// The user's name, for audit and messages.
    pub username: String,
    /// The tenant the user belongs to.
    pub tenant_id: TenantId,
    /// Set for customer users: they see only secrets shared with this customer.
    pub customer_id: Option<CustomerId>,
    /// What the user may do with secrets.
    pub permissions: Permissions,
}

impl Actor {
    /// A tenant administrator.
    pub fn tenant_admin(tenant_id: TenantId, user_id: UserId, username: &str) -> Self {
        Self {
            user_id,
            username: username.to_owned(),
            tenant_id,
            customer_id: None,
            permissions: Role::TenantAdmin.permissions(),
        }
    }

    /// Fails with `Forbidden` naming the missing permission.
    pub fn require(&self, op: Operation) -> Result<()> {
        if self.permissions.allows(op) && (self.customer_id.is_none() || customer_may(op)) {
            Ok(())
        } else {
            Err(StoreError::Forbidden(format!("missing permission SECRET:{}", op.as_str())))
        }
    }

    /// Whether the secret exists for this actor at all (tenant isolation, customer sharing).
    pub fn can_see(&self, info: &SecretInfo) -> bool {
        info.tenant_id == self.tenant_id && self.customer_id.is_none_or(|c| info.shared_with.contains(&c))
    }
}

/// Customers use and read metadata of shared secrets; they never manage them.
fn customer_may(op: Operation) -> bool {
    matches!(op, Operation::Read | Operation::Use)
}
