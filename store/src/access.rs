//! Who may do what: actors, resources, operations, built-in roles. The store checks these at its
//! boundary so every entry point (HTTP, CLI, engine) enforces the same rules.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::model::{CustomerId, SecretInfo, TenantId, UserId};

/// What a permission is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resource {
    /// Secrets (USE = reference one from a configuration).
    Secret,
    /// Rule chains.
    RuleChain,
    /// Integrations.
    Integration,
    /// Customers of the tenant.
    Customer,
    /// User accounts of the tenant.
    User,
    /// Custom roles of the tenant.
    Role,
    /// The audit log of the tenant.
    AuditLog,
    /// Tenants (system administrators only).
    Tenant,
    /// Secret providers (where linked secrets' values live).
    SecretProvider,
}

impl Resource {
    /// Every resource.
    pub const ALL: [Resource; 9] = [
        Self::Secret,
        Self::RuleChain,
        Self::Integration,
        Self::Customer,
        Self::User,
        Self::Role,
        Self::AuditLog,
        Self::Tenant,
        Self::SecretProvider,
    ];

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "SECRET",
            Self::RuleChain => "RULE_CHAIN",
            Self::Integration => "INTEGRATION",
            Self::Customer => "CUSTOMER",
            Self::User => "USER",
            Self::Role => "ROLE",
            Self::AuditLog => "AUDIT_LOG",
            Self::Tenant => "TENANT",
            Self::SecretProvider => "SECRET_PROVIDER",
        }
    }
}

/// An operation on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// See (for secrets: metadata, never the value).
    Read,
    /// Create.
    Create,
    /// Change.
    Write,
    /// Delete.
    Delete,
    /// Reference a secret from a configuration.
    Use,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 5] = [Self::Read, Self::Create, Self::Write, Self::Delete, Self::Use];

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

/// Operations per resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions([u8; Resource::ALL.len()]);

impl Permissions {
    /// Every operation on every resource of a tenant (not tenants themselves).
    pub const ALL: Permissions =
        Permissions([0b1_1111, 0b1_1111, 0b1_1111, 0b1_1111, 0b1_1111, 0b1_1111, 0b1_1111, 0, 0b1_1111]);

    /// The given operations on secrets.
    pub fn of(ops: &[Operation]) -> Self {
        Self::default().with(Resource::Secret, ops)
    }

    /// These permissions plus `ops` on `resource`.
    pub fn with(mut self, resource: Resource, ops: &[Operation]) -> Self {
        self.0[resource as usize] |= ops.iter().fold(0, |acc, op| acc | op.bit());
        self
    }

    /// Whether `op` on secrets is in the set.
    pub fn allows(self, op: Operation) -> bool {
        self.allows_on(Resource::Secret, op)
    }

    /// Whether `op` on `resource` is in the set.
    pub fn allows_on(self, resource: Resource, op: Operation) -> bool {
        self.0[resource as usize] & op.bit() != 0
    }

    /// The union of two sets.
    pub fn union(self, other: Self) -> Self {
        let mut out = self;
        for (a, b) in out.0.iter_mut().zip(other.0) {
            *a |= b;
        }
        out
    }

    /// The set as `{RESOURCE: [OPERATION, ...]}` pairs, for people and the API.
    pub fn grants(self) -> Vec<(Resource, Vec<Operation>)> {
        Resource::ALL
            .iter()
            .filter_map(|&r| {
                let ops: Vec<Operation> =
                    Operation::ALL.iter().copied().filter(|&o| self.allows_on(r, o)).collect();
                (!ops.is_empty()).then_some((r, ops))
            })
            .collect()
    }
}

/// The built-in roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Manages tenants; sees nothing inside them.
    SysAdmin,
    /// Everything within its tenant.
    TenantAdmin,
    /// READ, CREATE, WRITE, DELETE on secrets.
    SecretManager,
    /// READ and USE secrets; writes rule chains and integrations.
    RuleChainAuthor,
    /// READ and USE secrets shared with its customer; writes its customer's rule chains.
    CustomerUser,
}

impl Role {
    /// Every built-in role.
    pub const ALL: [Role; 5] =
        [Self::SysAdmin, Self::TenantAdmin, Self::SecretManager, Self::RuleChainAuthor, Self::CustomerUser];

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SysAdmin => "SYS_ADMIN",
            Self::TenantAdmin => "TENANT_ADMIN",
            Self::SecretManager => "SECRET_MANAGER",
            Self::RuleChainAuthor => "RULE_CHAIN_AUTHOR",
            Self::CustomerUser => "CUSTOMER_USER",
        }
    }

    /// A built-in role by its name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// What this role grants.
    pub fn permissions(self) -> Permissions {
        use Operation::*;
        const ALL_OPS: &[Operation] = &[Read, Create, Write, Delete];
        match self {
            Self::SysAdmin => Permissions::default().with(Resource::Tenant, ALL_OPS),
            Self::TenantAdmin => Permissions::ALL,
            Self::SecretManager => Permissions::of(&[Read, Create, Write, Delete]),
            Self::RuleChainAuthor => Permissions::of(&[Read, Use])
                .with(Resource::RuleChain, ALL_OPS)
                .with(Resource::Integration, ALL_OPS),
            Self::CustomerUser => Permissions::of(&[Read, Use]).with(Resource::RuleChain, ALL_OPS),
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
    /// What the user may do.
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

    /// Fails with `Forbidden` naming the missing permission on secrets.
    pub fn require(&self, op: Operation) -> Result<()> {
        self.require_on(Resource::Secret, op)
    }

    /// Fails with `Forbidden` naming the missing permission, e.g. `RULE_CHAIN:WRITE`.
    pub fn require_on(&self, resource: Resource, op: Operation) -> Result<()> {
        if self.may(resource, op) {
            Ok(())
        } else {
            Err(StoreError::Forbidden(format!("missing permission {}:{}", resource.as_str(), op.as_str())))
        }
    }

    /// Whether the actor may do `op` on `resource` (customer users are capped whatever their roles).
    pub fn may(&self, resource: Resource, op: Operation) -> bool {
        self.permissions.allows_on(resource, op) && (self.customer_id.is_none() || customer_may(resource, op))
    }

    /// Whether the secret exists for this actor at all (tenant isolation, customer sharing).
    pub fn can_see(&self, info: &SecretInfo) -> bool {
        info.tenant_id == self.tenant_id && self.customer_id.is_none_or(|c| info.shared_with.contains(&c))
    }
}

/// Customers use and read metadata of shared secrets and manage their own rule chains; they
/// never manage secrets, integrations (tenant credentials), users, customers, roles or the audit log.
fn customer_may(resource: Resource, op: Operation) -> bool {
    match resource {
        Resource::Secret => matches!(op, Operation::Read | Operation::Use),
        Resource::RuleChain => op != Operation::Use,
        _ => false,
    }
}
