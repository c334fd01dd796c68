use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use veil_store::{
    Actor, Database, Limits, MasterKeySource, NewSecret, SecretType, SecretValue, Store, StoreConfig,
    TenantId, UserId,
};

pub(crate) struct TestStore {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) store: Store,
    pub(crate) admin: Actor,
}

pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join("veil.db")
}

pub(crate) async fn open_at(dir: &Path, key: MasterKeySource) -> veil_store::Result<Store> {
    Store::open(StoreConfig {
        database: Database::Sqlite(db_path(dir)),
        master_key: key,
        limits: Limits::default(),
    })
    .await
}

pub(crate) fn generated_key(dir: &Path) -> MasterKeySource {
    MasterKeySource::Generated(dir.join("master.key"))
}

pub(crate) fn explicit_key(byte: u8) -> MasterKeySource {
    MasterKeySource::Base64(base64::engine::general_purpose::STANDARD.encode([byte; 32]).into())
}

pub(crate) fn admin_of(tenant: TenantId) -> Actor {
    Actor::tenant_admin(tenant, UserId::new_random(), "admin")
}

impl TestStore {
    pub(crate) async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(dir.path(), generated_key(dir.path())).await.unwrap();
        Self { dir, store, admin: admin_of(TenantId::new_random()) }
    }

    /// Closes and opens the same directory again, as a restart would.
    pub(crate) async fn reopen(self) -> Self {
        self.store.close().await;
        let store = open_at(self.dir.path(), generated_key(self.dir.path())).await.unwrap();
        Self { store, ..self }
    }

    pub(crate) async fn text(&self, name: &str, value: &str) -> veil_store::SecretInfo {
        self.store.create(&self.admin, text_secret(name, value)).await.unwrap()
    }
}

pub(crate) fn text_secret(name: &str, value: &str) -> NewSecret {
    NewSecret {
        name: name.into(),
        kind: SecretType::Text,
        description: None,
        value: SecretValue::from(value),
        file_name: None,
    }
}

pub(crate) fn file_secret(name: &str, bytes: Vec<u8>) -> NewSecret {
    NewSecret {
        name: name.into(),
        kind: SecretType::File,
        description: Some("a certificate".into()),
        value: SecretValue::new(bytes),
        file_name: Some("client.pem".into()),
    }
}

/// Every file below `dir` with its content.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
