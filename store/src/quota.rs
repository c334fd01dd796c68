//! Per-tenant quotas, counted in the database transaction that inserts: the insert happens, the
//! tenant's count is read in the same transaction, and the transaction is rolled back when the
//! count is over the quota. On SQLite one writer at a time makes that exact; on PostgreSQL the
//! transaction first takes a transaction-scoped advisory lock for the tenant, so quota-counted
//! inserts of one tenant run one after another, on every instance — a concurrent burst cannot go
//! past the value.

use crate::error::{Result, StoreError};
use crate::model::Limits;

/// What a quota counts, with the tenant's most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quota {
    /// Rule chains.
    Chains(usize),
    /// Integrations.
    Integrations(usize),
    /// Secrets.
    Secrets(usize),
    /// Bytes of the secrets' kept values, current and earlier versions (their ciphertexts).
    SecretBytes(usize),
    /// Users, customer users included.
    Users(usize),
    /// Custom roles.
    Roles(usize),
    /// Customers.
    Customers(usize),
    /// Secret providers.
    Providers(usize),
}

impl Quota {
    /// The quota of a new configuration of `kind` under `limits`.
    pub(crate) fn for_owner(kind: crate::OwnerType, limits: &Limits) -> Self {
        match kind {
            crate::OwnerType::RuleChain => Self::Chains(limits.max_chains_per_tenant),
            crate::OwnerType::Integration => Self::Integrations(limits.max_integrations_per_tenant),
            crate::OwnerType::SecretProvider => Self::Providers(crate::provider::MAX_PROVIDERS_PER_TENANT),
        }
    }

    /// The query that counts what the quota counts for the tenant bound as `$1`.
    pub(crate) fn count_sql(self) -> &'static str {
        match self {
            Self::Chains(_) => "SELECT COUNT(*) FROM owners WHERE tenant_id = $1 AND type = 'RULE_CHAIN'",
            Self::Integrations(_) => {
                "SELECT COUNT(*) FROM owners WHERE tenant_id = $1 AND type = 'INTEGRATION'"
            }
            // Kept by triggers in every write's transaction (migration `tenant_usage`): one row
            // read, however many secrets the tenant holds.
            Self::Secrets(_) => "SELECT COALESCE((SELECT secrets FROM tenant_usage WHERE tenant_id = $1), 0)",
            Self::SecretBytes(_) => {
                "SELECT COALESCE((SELECT secret_bytes FROM tenant_usage WHERE tenant_id = $1), 0)"
            }
            Self::Users(_) => "SELECT COUNT(*) FROM users WHERE tenant_id = $1",
            Self::Roles(_) => "SELECT COUNT(*) FROM roles WHERE tenant_id = $1",
            Self::Customers(_) => "SELECT COUNT(*) FROM customers WHERE tenant_id = $1",
            Self::Providers(_) => {
                "SELECT COUNT(*) FROM owners WHERE tenant_id = $1 AND type = 'SECRET_PROVIDER'"
            }
        }
    }

    fn describe(self) -> (&'static str, usize, &'static str) {
        match self {
            Self::Chains(max) => ("maxChainsPerTenant", max, "rule chains"),
            Self::Integrations(max) => ("maxIntegrationsPerTenant", max, "integrations"),
            Self::Secrets(max) => ("maxSecretsPerTenant", max, "secrets"),
            Self::SecretBytes(max) => ("maxSecretBytesPerTenant", max, "bytes of secret values"),
            Self::Users(max) => ("maxUsersPerTenant", max, "users"),
            Self::Roles(max) => ("maxRolesPerTenant", max, "roles"),
            Self::Customers(max) => ("maxCustomersPerTenant", max, "customers"),
            Self::Providers(max) => ("maxSecretProvidersPerTenant", max, "secret providers"),
        }
    }

    /// Refuses when `used` (the count after the insert) is over the quota.
    pub(crate) fn check(self, used: i64) -> Result<()> {
        let (name, max, what) = self.describe();
        if usize::try_from(used).unwrap_or(usize::MAX) <= max {
            return Ok(());
        }
        Err(StoreError::LimitReached(format!(
            "limit {name} ({max}) exceeded: the tenant would have {used} {what}; delete some first"
        )))
    }
}
