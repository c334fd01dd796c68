//! [`TempStore`]: a real store (SQLite in a temporary directory, a generated master key) with a
//! tenant administrator, and the pieces to open one by hand.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use veil_integrations::Integrations;
use veil_store::{
    Actor, Database, Limits, MasterKeySource, NewSecret, SecretInfo, SecretType, SecretUpdate, SecretValue,
    Store, StoreConfig, TenantId, UserId,
};

/// A store in a temporary directory, with the administrator of a fresh tenant. It also holds what
/// the server runs over its store ([`TempStore::deploy_chain`], [`TempStore::deploy_integration`]).
pub struct TempStore {
    /// The data directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The open store.
    pub store: Store,
    /// The administrator of the tenant the test works in.
    pub admin: Actor,
    /// The running integrations, as the server keeps them (the `integration_downlink` node reaches
    /// them here).
    pub integrations: Arc<Integrations>,
}

/// The database file in a data directory.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("veil.db")
}

/// Opens (or creates) the store in `dir` with `key`, with default limits.
pub async fn open_at(dir: &Path, key: MasterKeySource) -> veil_store::Result<Store> {
    Store::open(StoreConfig {
        database: Database::Sqlite(db_path(dir)),
        master_key: key,
        limits: Limits::default(),
    })
    .await
}

/// The master key file `dir/master.key`, created on first open.
pub fn generated_key(dir: &Path) -> MasterKeySource {
    MasterKeySource::Generated(dir.join("master.key"))
}

/// A master key given explicitly: 32 times `byte`.
pub fn explicit_key(byte: u8) -> MasterKeySource {
    MasterKeySource::Base64(base64::engine::general_purpose::STANDARD.encode([byte; 32]).into())
}

/// A tenant administrator named `admin` of `tenant`.
pub fn admin_of(tenant: TenantId) -> Actor {
    Actor::tenant_admin(tenant, UserId::new_random(), "admin")
}

/// A request for a TEXT secret.
pub fn text_secret(name: &str, value: &str) -> NewSecret {
    NewSecret {
        name: name.into(),
        kind: SecretType::Text,
        description: None,
        value: SecretValue::from(value),
        file_name: None,
    }
}

/// A request for a FILE secret named `<name>.pem`.
pub fn file_secret(name: &str, bytes: impl Into<Vec<u8>>) -> NewSecret {
    NewSecret {
        name: name.into(),
        kind: SecretType::File,
        description: None,
        value: SecretValue::new(bytes.into()),
        file_name: Some(format!("{name}.pem")),
    }
}

impl TempStore {
    /// A new store in a new temporary directory, for a new tenant.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(dir.path(), generated_key(dir.path())).await.unwrap();
        let admin = admin_of(TenantId::new_random());
        Self { dir, store, admin, integrations: Arc::new(Integrations::new()) }
    }

    /// Closes the store and opens the same directory again, as a restart would (nothing keeps
    /// running).
    pub async fn reopen(self) -> Self {
        self.store.close().await;
        let store = open_at(self.dir.path(), generated_key(self.dir.path())).await.unwrap();
        Self { store, integrations: Arc::new(Integrations::new()), ..self }
    }

    /// Creates the TEXT secret `name` as the administrator.
    pub async fn text(&self, name: &str, value: &str) -> SecretInfo {
        self.store.create(&self.admin, text_secret(name, value)).await.unwrap()
    }

    /// Creates the FILE secret `name` (file name `<name>.pem`) as the administrator.
    pub async fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> SecretInfo {
        self.store.create(&self.admin, file_secret(name, bytes.as_ref())).await.unwrap()
    }

    /// Sets a new value of the secret `name`, as `PATCH /api/secrets/{id}` does.
    pub async fn rotate(&self, name: &str, value: &str) -> SecretInfo {
        let id = self.store.find(&self.admin, name).unwrap().id;
        let update = SecretUpdate { value: Some(SecretValue::from(value)), ..Default::default() };
        self.store.update(&self.admin, id, update).await.unwrap()
    }
}
