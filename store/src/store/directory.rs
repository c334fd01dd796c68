//! Tenants, customers, users and custom roles. Every call takes the
//! acting user and checks its permissions here; another tenant's object is "not found".

use std::collections::BTreeSet;

use uuid::Uuid;

use super::Store;
use crate::access::{Actor, Operation, Permissions, Resource, Role};
use crate::directory::{
    CustomerRecord, Grant, RoleRecord, SYSTEM_TENANT, TenantRecord, UserInfo, UserRecord, UserUpdate,
};
use crate::error::{FieldProblem, NameConflict, NeededKind, Result, StoreError};
use crate::model::{CustomerId, TenantId, UserId, check_name_chars, lookalike, now_ms, skeleton};
use crate::quota::Quota;

/// Longest name of a tenant, customer, role or user.
pub const MAX_DIRECTORY_NAME: usize = 100;

/// A user to create; the caller hashes the password.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name, unique across the installation.
    pub username: String,
    /// A PHC-format password hash.
    pub password_hash: String,
    /// Makes it a customer user.
    pub customer_id: Option<CustomerId>,
    /// Role names: built-in or the tenant's custom roles.
    pub roles: Vec<String>,
}

/// A name with case and separators folded: dashes and hyphens of any kind, spaces and other
/// connector punctuation, and runs of them, read as one `_` (`TENANT‑ADMIN` with a non-breaking hyphen, `tenant admin`
/// and `TENANT_ADMIN` fold to the same).
fn fold_separators(name: &str) -> String {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    let mut folded = String::with_capacity(name.len());
    for c in name.trim().chars() {
        let separator = c.is_whitespace()
            || matches!(
                c.general_category(),
                GeneralCategory::DashPunctuation
                    | GeneralCategory::ConnectorPunctuation
                    | GeneralCategory::SpaceSeparator
            );
        if !separator {
            folded.extend(c.to_lowercase());
        } else if !folded.ends_with('_') {
            // A run of separators reads as one.
            folded.push('_');
        }
    }
    folded
}

fn check_name(field: &str, name: &str) -> Result<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(StoreError::input(field, "must not be empty"));
    }
    if trimmed.chars().count() > MAX_DIRECTORY_NAME {
        return Err(StoreError::input(field, format!("must be at most {MAX_DIRECTORY_NAME} characters")));
    }
    check_name_chars(field, trimmed).map_err(|p| StoreError::InvalidInput(vec![p]))?;
    Ok(trimmed.to_owned())
}

/// Refuses a new name that looks like (has the same UTS #39 skeleton as) an existing different
/// name of the same kind ([`NameConflict::Lookalike`]).
fn refuse_lookalike<'a>(
    field: &str,
    what: &str,
    name: &str,
    existing: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    match lookalike(name, existing) {
        Some(other) => Err(StoreError::NameUnavailable {
            conflict: NameConflict::Lookalike,
            message: format!(
                "{field}: '{name}' looks like the existing {what} '{other}'; choose a name that can be told apart"
            ),
        }),
        None => Ok(()),
    }
}

/// Whether every permission of `wanted` is also in `held`.
fn within(wanted: Permissions, held: Permissions) -> bool {
    wanted.grants().iter().all(|(r, ops)| ops.iter().all(|&op| held.allows_on(*r, op)))
}

impl Store {
    /// The actor a user acts as: the union of its built-in and custom roles.
    pub async fn actor_for(&self, user: &UserRecord) -> Result<Actor> {
        let custom = if user.roles.iter().any(|r| Role::from_name(r).is_none()) {
            self.inner.backend.roles(user.tenant_id).await?
        } else {
            Vec::new()
        };
        let permissions =
            user.roles.iter().fold(Permissions::default(), |acc, name| match Role::from_name(name) {
                Some(role) => acc.union(role.permissions()),
                None => {
                    custom.iter().find(|r| &r.name == name).map_or(acc, |r| acc.union(r.permission_set()))
                }
            });
        Ok(Actor {
            user_id: user.id,
            username: user.username.clone(),
            tenant_id: user.tenant_id,
            customer_id: user.customer_id,
            permissions,
        })
    }

    // ---- tenants (system administrators) ----

    /// Every tenant (not the system tenant).
    pub async fn tenants(&self, actor: &Actor) -> Result<Vec<TenantRecord>> {
        actor.require_on(Resource::Tenant, Operation::Read)?;
        let mut all = self.inner.backend.tenants().await?;
        all.retain(|t| t.id != SYSTEM_TENANT);
        Ok(all)
    }

    /// One tenant.
    pub async fn tenant(&self, actor: &Actor, id: TenantId) -> Result<TenantRecord> {
        actor.require_on(Resource::Tenant, Operation::Read)?;
        self.inner
            .backend
            .tenant_by_id(id)
            .await?
            .filter(|t| t.id != SYSTEM_TENANT)
            .ok_or_else(|| StoreError::NotFound { kind: "tenant", id: id.to_string() })
    }

    /// Creates a tenant.
    pub async fn create_tenant_as(&self, actor: &Actor, name: &str) -> Result<TenantRecord> {
        let _changed = self.directory_write();
        actor.require_on(Resource::Tenant, Operation::Create)?;
        let name = check_name("name", name)?;
        let _guard = self.inner.write.lock().await;
        if self.inner.backend.tenant_by_name(&name).await?.is_some() {
            return Err(StoreError::NameUnavailable {
                conflict: NameConflict::Taken,
                message: format!("name: a tenant named '{name}' already exists"),
            });
        }
        let tenants = self.inner.backend.tenants().await?;
        refuse_lookalike("name", "tenant", &name, tenants.iter().map(|t| t.name.as_str()))?;
        self.insert_tenant(&name).await
    }

    /// Creates the first administrator of a tenant just made by `actor` (who may create tenants:
    /// a system administrator). `user` must be a tenant administrator, with no customer, of a
    /// tenant that exists and has no user yet (not the system tenant); its name follows the rules
    /// of every user name.
    pub async fn create_tenant_admin_as(&self, actor: &Actor, user: &UserRecord) -> Result<()> {
        actor.require_on(Resource::Tenant, Operation::Create)?;
        if user.customer_id.is_some() || user.roles != [Role::TenantAdmin.as_str()] {
            return Err(StoreError::input("admin.roles", "a tenant's first user is its TENANT_ADMIN"));
        }
        let missing = || StoreError::NotFound { kind: "tenant", id: user.tenant_id.to_string() };
        if user.tenant_id == SYSTEM_TENANT || self.inner.backend.tenant_by_id(user.tenant_id).await?.is_none()
        {
            return Err(missing());
        }
        if !self.inner.backend.users(user.tenant_id).await?.is_empty() {
            return Err(StoreError::input(
                "admin",
                "the tenant has users already: its administrators add more",
            ));
        }
        self.insert_user(user).await
    }

    /// Creates the system tenant (idempotent); system administrators belong to it.
    pub async fn ensure_system_tenant(&self) -> Result<bool> {
        if self.inner.backend.tenant_by_id(SYSTEM_TENANT).await?.is_some() {
            return Ok(false);
        }
        let t = TenantRecord {
            id: SYSTEM_TENANT,
            name: "System".to_owned(),
            created_time: now_ms(),
            destinations_required: false,
            cas_required: false,
            strict_values: false,
            expiry_notices: None,
        };
        self.inner.backend.insert_tenant(&t).await?;
        Ok(true)
    }

    /// Deletes a tenant with its secrets, configurations, customers, users and roles. The caller
    /// stops its running configurations.
    pub async fn delete_tenant(&self, actor: &Actor, id: TenantId) -> Result<()> {
        let _changed = self.directory_write();
        actor.require_on(Resource::Tenant, Operation::Delete)?;
        if id == SYSTEM_TENANT || id == actor.tenant_id {
            return Err(StoreError::Forbidden("the system tenant cannot be deleted".into()));
        }
        self.tenant(actor, id).await?;
        let _guard = self.inner.write.lock().await;
        if !self.inner.backend.delete_tenant(id).await? {
            return Err(StoreError::NotFound { kind: "tenant", id: id.to_string() });
        }
        self.inner.deleted_tenants.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        self.forget_tenant_providers(id);
        self.inner.index.remove_tenant(id);
        tracing::info!(tenant = %id, actor = %actor.username, "tenant deleted");
        Ok(())
    }

    // ---- customers ----

    /// Creates a customer in the actor's tenant.
    pub async fn create_customer(&self, actor: &Actor, name: &str) -> Result<CustomerRecord> {
        actor.require_on(Resource::Customer, Operation::Create)?;
        let c = CustomerRecord {
            id: CustomerId::new_random(),
            tenant_id: actor.tenant_id,
            name: check_name("name", name)?,
            created_time: now_ms(),
        };
        let _guard = self.inner.write.lock().await;
        let existing = self.inner.backend.customers(actor.tenant_id).await?;
        refuse_lookalike("name", "customer", &c.name, existing.iter().map(|c| c.name.as_str()))?;
        self.inner
            .backend
            .insert_customer(&c, Quota::Customers(self.inner.limits.max_customers_per_tenant))
            .await?;
        Ok(c)
    }

    /// The tenant's customers (a customer user sees its own).
    pub async fn customers(&self, actor: &Actor) -> Result<Vec<CustomerRecord>> {
        actor.require_on(Resource::Customer, Operation::Read)?;
        let mut all = self.inner.backend.customers(actor.tenant_id).await?;
        all.retain(|c| actor.customer_id.is_none_or(|own| own == c.id));
        Ok(all)
    }

    /// One customer of the actor's tenant.
    pub async fn customer(&self, actor: &Actor, id: CustomerId) -> Result<CustomerRecord> {
        self.inner
            .backend
            .customer(actor.tenant_id, id)
            .await?
            .filter(|c| actor.customer_id.is_none_or(|own| own == c.id))
            .ok_or_else(|| StoreError::NotFound { kind: "customer", id: id.to_string() })
    }

    /// Deletes a customer (its shares go too); refused while users or configurations belong to it.
    pub async fn delete_customer(&self, actor: &Actor, id: CustomerId) -> Result<()> {
        let _changed = self.directory_write();
        let customer = self.customer(actor, id).await?;
        actor.require_on(Resource::Customer, Operation::Delete)?;
        let _guard = self.inner.write.lock().await;
        if let Some(used) = self.inner.backend.delete_customer(actor.tenant_id, id).await? {
            return Err(StoreError::Needed {
                kind: NeededKind::Customer,
                message: format!(
                    "customer '{}' still has {} user(s) and {} configuration(s); delete them first",
                    customer.name, used.users, used.configurations
                ),
            });
        }
        self.inner.index.forget_customer(actor.tenant_id, id);
        Ok(())
    }

    // ---- custom roles ----

    /// The tenant's custom roles.
    pub async fn roles(&self, actor: &Actor) -> Result<Vec<RoleRecord>> {
        actor.require_on(Resource::Role, Operation::Read)?;
        self.inner.backend.roles(actor.tenant_id).await
    }

    /// Creates a custom role; it cannot grant more than the actor has.
    pub async fn create_role(&self, actor: &Actor, name: &str, grants: Vec<Grant>) -> Result<RoleRecord> {
        let _changed = self.directory_write();
        actor.require_on(Resource::Role, Operation::Create)?;
        let name = check_name("name", name)?;
        if Role::from_name(&name).is_some() {
            return Err(StoreError::input("name", format!("'{name}' is a built-in role")));
        }
        if let Some(built_in) = Role::ALL.iter().find(|r| r.as_str().eq_ignore_ascii_case(&name)) {
            return Err(StoreError::input(
                "name",
                format!(
                    "'{name}' differs from the built-in role '{}' only in case; choose a name that can be told apart",
                    built_in.as_str()
                ),
            ));
        }
        if let Some(built_in) = lookalike(&name, Role::ALL.iter().map(|r| r.as_str())) {
            return Err(StoreError::input(
                "name",
                format!(
                    "'{name}' looks like the built-in role '{built_in}'; choose a name that can be told apart"
                ),
            ));
        }
        let folded = fold_separators(&name);
        if let Some(built_in) =
            Role::ALL.iter().map(|r| r.as_str()).find(|b| skeleton(&fold_separators(b)) == skeleton(&folded))
        {
            return Err(StoreError::input(
                "name",
                format!(
                    "'{name}' reads like the built-in role '{built_in}' (only separators or case differ); choose a name that can be told apart"
                ),
            ));
        }
        if grants.is_empty() || grants.iter().any(|g| g.operations.is_empty()) {
            return Err(StoreError::input(
                "permissions",
                "grant at least one operation on each resource listed",
            ));
        }
        if grants.iter().any(|g| g.resource == Resource::Tenant) {
            return Err(StoreError::input("permissions", "TENANT is for system administrators only"));
        }
        let role = RoleRecord {
            id: Uuid::new_v4(),
            tenant_id: actor.tenant_id,
            name,
            permissions: grants,
            created_time: now_ms(),
        };
        if !within(role.permission_set(), actor.permissions) {
            return Err(StoreError::Forbidden("a role cannot grant more than its creator has".into()));
        }
        let _guard = self.inner.write.lock().await;
        let existing = self.inner.backend.roles(actor.tenant_id).await?;
        refuse_lookalike("name", "role", &role.name, existing.iter().map(|r| r.name.as_str()))?;
        self.inner.backend.insert_role(&role, Quota::Roles(self.inner.limits.max_roles_per_tenant)).await?;
        Ok(role)
    }

    /// Deletes a custom role no user holds.
    pub async fn delete_role(&self, actor: &Actor, id: Uuid) -> Result<()> {
        let _changed = self.directory_write();
        let roles = self.inner.backend.roles(actor.tenant_id).await?;
        let role = roles
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| StoreError::NotFound { kind: "role", id: id.to_string() })?;
        actor.require_on(Resource::Role, Operation::Delete)?;
        let holders: Vec<String> = self
            .inner
            .backend
            .users(actor.tenant_id)
            .await?
            .into_iter()
            .filter(|u| u.roles.contains(&role.name))
            .map(|u| u.username)
            .collect();
        if !holders.is_empty() {
            return Err(StoreError::Needed {
                kind: NeededKind::Role,
                message: format!("role '{}' is held by {}", role.name, holders.join(", ")),
            });
        }
        self.inner.backend.delete_role(actor.tenant_id, id).await?;
        Ok(())
    }

    // ---- users ----

    /// Checks role names and the customer for a user of the actor's tenant.
    async fn check_roles(&self, actor: &Actor, roles: &[String], customer: Option<CustomerId>) -> Result<()> {
        let mut problems = Vec::new();
        if roles.is_empty() {
            problems.push(FieldProblem::new("roles", "name at least one role"));
        }
        let custom = self.inner.backend.roles(actor.tenant_id).await?;
        let mut granted = Permissions::default();
        for name in roles.iter().collect::<BTreeSet<_>>() {
            match (Role::from_name(name), custom.iter().find(|r| &r.name == name)) {
                (Some(Role::SysAdmin), _) => {
                    problems.push(FieldProblem::new("roles", "SYS_ADMIN cannot be granted here"))
                }
                (Some(role), _) => {
                    if customer.is_some() && role != Role::CustomerUser {
                        problems.push(FieldProblem::new(
                            "roles",
                            format!("a customer user can hold CUSTOMER_USER or custom roles, not {name}"),
                        ));
                    }
                    if customer.is_none() && role == Role::CustomerUser {
                        problems.push(FieldProblem::new("customerId", "is required for CUSTOMER_USER"));
                    }
                    granted = granted.union(role.permissions());
                }
                (None, Some(r)) => granted = granted.union(r.permission_set()),
                (None, None) => problems.push(FieldProblem::new(
                    "roles",
                    format!("'{name}' is not a role (built-in: TENANT_ADMIN, SECRET_MANAGER, RULE_CHAIN_AUTHOR, CUSTOMER_USER)"),
                )),
            }
        }
        if let Some(c) = customer
            && self.inner.backend.customer(actor.tenant_id, c).await?.is_none()
        {
            problems.push(FieldProblem::new("customerId", format!("customer '{c}' does not exist")));
        }
        if !problems.is_empty() {
            return Err(StoreError::InvalidInput(problems));
        }
        if !within(granted, actor.permissions) {
            return Err(StoreError::Forbidden(
                "cannot grant roles with more permissions than you have".into(),
            ));
        }
        Ok(())
    }

    /// Someone who manages users may only touch users with no more permissions than they have:
    /// a help desk with USER:WRITE cannot take over an administrator's account.
    async fn require_outranks(&self, actor: &Actor, target: &UserRecord) -> Result<()> {
        let theirs = self.actor_for(target).await?.permissions;
        if within(theirs, actor.permissions) {
            Ok(())
        } else {
            Err(StoreError::Forbidden(format!(
                "user '{}' has permissions you do not have; only someone with all of them may change it",
                target.username
            )))
        }
    }

    fn visible_user(actor: &Actor, user: Option<UserRecord>, id: UserId) -> Result<UserRecord> {
        user.filter(|u| u.tenant_id == actor.tenant_id)
            .filter(|u| actor.customer_id.is_none_or(|c| u.customer_id == Some(c)))
            .ok_or_else(|| StoreError::NotFound { kind: "user", id: id.to_string() })
    }

    /// Users of the actor's tenant.
    pub async fn users(&self, actor: &Actor) -> Result<Vec<UserInfo>> {
        actor.require_on(Resource::User, Operation::Read)?;
        let all = self.inner.backend.users(actor.tenant_id).await?;
        Ok(all
            .iter()
            .filter(|u| actor.customer_id.is_none_or(|c| u.customer_id == Some(c)))
            .map(UserInfo::from)
            .collect())
    }

    /// One user of the actor's tenant.
    pub async fn user(&self, actor: &Actor, id: UserId) -> Result<UserInfo> {
        let user = Self::visible_user(actor, self.inner.backend.user_by_id(id).await?, id)?;
        if user.id != actor.user_id {
            actor.require_on(Resource::User, Operation::Read)?;
        }
        Ok(UserInfo::from(&user))
    }

    /// Creates a user in the actor's tenant.
    pub async fn create_user_as(&self, actor: &Actor, new: NewUser) -> Result<UserInfo> {
        let _changed = self.directory_write();
        actor.require_on(Resource::User, Operation::Create)?;
        let username = check_name("username", &new.username)?;
        self.check_roles(actor, &new.roles, new.customer_id).await?;
        let _guard = self.inner.write.lock().await;
        self.refuse_lookalike_username(actor.tenant_id, &username).await?;
        let user = UserRecord {
            id: UserId::new_random(),
            tenant_id: actor.tenant_id,
            customer_id: new.customer_id,
            username,
            password_hash: new.password_hash,
            roles: new.roles,
            created_time: now_ms(),
            tokens_valid_after: 0,
        };
        self.inner
            .backend
            .insert_user(&user, Some(Quota::Users(self.inner.limits.max_users_per_tenant)))
            .await?;
        tracing::info!(user = %user.username, actor = %actor.username, "user created");
        Ok(UserInfo::from(&user))
    }

    /// Changes a user's password or roles. Users may change their own password.
    pub async fn update_user(&self, actor: &Actor, id: UserId, update: UserUpdate) -> Result<UserInfo> {
        let _changed = self.directory_write();
        let mut user = Self::visible_user(actor, self.inner.backend.user_by_id(id).await?, id)?;
        let own_password_only = user.id == actor.user_id && update.roles.is_none();
        if !own_password_only {
            actor.require_on(Resource::User, Operation::Write)?;
            self.require_outranks(actor, &user).await?;
        }
        if let Some(roles) = update.roles {
            if user.id == actor.user_id {
                return Err(StoreError::Forbidden("you cannot change your own roles".into()));
            }
            self.check_roles(actor, &roles, user.customer_id).await?;
            user.roles = roles;
        }
        if update.password_hash.is_some() && user.id == actor.user_id && !update.current_password_verified {
            return Err(StoreError::input(
                "currentPassword",
                "is required to change your own password (send the current password as currentPassword)",
            ));
        }
        if let Some(hash) = update.password_hash {
            user.password_hash = hash;
            // Sessions opened with the old password end.
            user.tokens_valid_after = now_ms();
        }
        self.inner.backend.update_user(&user).await?;
        Ok(UserInfo::from(&user))
    }

    /// Checks a new login name: the name rules, and not a lookalike of an existing user name
    /// (user names are global). Call before creating anything that depends on the user.
    pub async fn check_new_username(&self, tenant: TenantId, username: &str) -> Result<String> {
        let username = check_name("username", username)?;
        self.refuse_lookalike_username(tenant, &username).await?;
        Ok(username)
    }

    /// Refuses a user name that looks like another user's. A lookalike in another tenant is not
    /// named: user names are global, but other tenants' users are none of the caller's business.
    async fn refuse_lookalike_username(&self, tenant: TenantId, username: &str) -> Result<()> {
        let all = self.inner.backend.usernames().await?;
        let Some(other) = lookalike(username, all.iter().map(|(_, name)| name.as_str())) else {
            return Ok(());
        };
        let same_tenant = all.iter().any(|(t, name)| name == other && *t == tenant);
        let message = if same_tenant {
            format!(
                "username: '{username}' looks like the existing user '{other}'; choose a name that can be told apart"
            )
        } else {
            format!(
                "username: '{username}' looks like an existing user name; choose a name that can be told apart"
            )
        };
        Err(StoreError::NameUnavailable { conflict: NameConflict::Lookalike, message })
    }

    /// Deletes a user (not oneself).
    pub async fn delete_user(&self, actor: &Actor, id: UserId) -> Result<()> {
        let _changed = self.directory_write();
        Self::visible_user(actor, self.inner.backend.user_by_id(id).await?, id)?;
        let user = Self::visible_user(actor, self.inner.backend.user_by_id(id).await?, id)?;
        actor.require_on(Resource::User, Operation::Delete)?;
        if id == actor.user_id {
            return Err(StoreError::Forbidden("you cannot delete yourself".into()));
        }
        self.require_outranks(actor, &user).await?;
        self.inner.backend.delete_user(actor.tenant_id, id).await?;
        Ok(())
    }

    // ---- sharing ----
}
