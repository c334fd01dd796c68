//! What the server's start-up needs before any user exists: system secrets, look-ups by name
//! for signing in, and — through [`Bootstrap`], which only the opener of a store receives
//! ([`Store::open_for_startup`]) — the first tenant and user, made without an acting user.

use super::Store;
use crate::crypto::random_bytes;
use crate::directory::{TenantRecord, UserRecord};
use crate::error::{Result, StoreError};
use crate::model::{SecretValue, TenantId, UserId, now_ms};

impl Store {
    /// An internal random value (e.g. the token signing key), created on first use and stored
    /// encrypted like a secret. Every instance sharing the database gets the same value.
    pub async fn system_secret(&self, name: &str, len: usize) -> Result<SecretValue> {
        let _guard = self.inner.write.lock().await;
        if self.inner.backend.system_secret(name).await?.is_none() {
            let sealed = self.keyring().seal_system(name, &SecretValue::new(random_bytes(len)));
            self.inner.backend.insert_system_secret(name, &sealed).await?;
        }
        let sealed = self
            .inner
            .backend
            .system_secret(name)
            .await?
            .ok_or_else(|| StoreError::NotFound { kind: "system secret", id: name.to_owned() })?;
        self.keyring()
            .open_system(name, &sealed)
            .ok_or_else(|| StoreError::Integrity(format!("system:{name}")))
    }

    /// Opens a store as the server's start-up does: with the [`Bootstrap`] that makes the first
    /// tenant and user. Nothing else hands one out.
    pub async fn open_for_startup(config: super::StoreConfig) -> Result<(Self, Bootstrap)> {
        let store = Self::open(config).await?;
        Ok((store.clone(), Bootstrap(store)))
    }

    /// Creates a tenant (unchecked: callers check the actor first).
    pub(super) async fn insert_tenant(&self, name: &str) -> Result<TenantRecord> {
        let t = TenantRecord {
            id: TenantId::new_random(),
            name: name.to_owned(),
            created_time: now_ms(),
            destinations_required: false,
            cas_required: false,
            strict_values: false,
            expiry_notices: None,
        };
        self.inner.backend.insert_tenant(&t).await?;
        Ok(t)
    }

    /// A tenant by name.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRecord>> {
        self.inner.backend.tenant_by_name(name).await
    }

    /// Creates a user (the caller hashes the password; unchecked: callers check the actor first).
    /// The user name must follow the name rules and not look like another user's (see
    /// [`Store::check_new_username`]).
    pub(super) async fn insert_user(&self, user: &UserRecord) -> Result<()> {
        let _guard = self.inner.write.lock().await;
        let _changed = self.directory_write();
        if self.check_new_username(user.tenant_id, &user.username).await? != user.username {
            return Err(StoreError::input("username", "must not start or end with spaces"));
        }
        self.inner.backend.insert_user(user, None).await
    }

    /// A user by login name.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        self.inner.backend.user_by_name(username).await
    }

    /// A user by id.
    pub async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        self.inner.backend.user_by_id(id).await
    }

    /// How many users exist (0 on a fresh database).
    pub async fn count_users(&self) -> Result<i64> {
        self.inner.backend.count_users().await
    }
}

/// Makes what exists before anyone can act: the first tenant and its first users, without an
/// acting user's permissions. Only the opener of a store gets one ([`Store::open_for_startup`]):
/// the server's start-up (and the test kit, which plays it).
#[derive(Debug, Clone)]
pub struct Bootstrap(Store);

impl Bootstrap {
    /// Creates a tenant.
    pub async fn create_tenant(&self, name: &str) -> Result<TenantRecord> {
        self.0.insert_tenant(name).await
    }

    /// Creates a user (the caller hashes the password), under the same name rules as any.
    pub async fn create_user(&self, user: &UserRecord) -> Result<()> {
        self.0.insert_user(user).await
    }
}
