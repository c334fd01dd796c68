//! [`TempStore`]: a real store (SQLite in a temporary directory, or a fresh PostgreSQL database;
//! a generated master key) with a tenant administrator, and the pieces to open one by hand.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use veil_server::Host;
use veil_store::{
    Actor, Bootstrap, Database, Limits, MasterKeySource, NewSecret, SecretInfo, SecretType, SecretUpdate,
    SecretValue, Store, StoreConfig, TenantId, UserId,
};

/// The environment variable naming the PostgreSQL server the PostgreSQL variants of tests use, as
/// a URL without a database (`postgres://postgres@127.0.0.1:5432`). The user must be allowed to
/// create databases: each [`TempStore::postgres`] makes one and drops it afterwards.
pub const POSTGRES_ENV: &str = "VEIL_TEST_POSTGRES";

/// Which database a [`TempStore`] keeps its data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `veil.db` in the temporary directory.
    Sqlite,
    /// A fresh database on the server named by [`POSTGRES_ENV`].
    Postgres,
}

/// A store in a temporary directory (SQLite, or a fresh PostgreSQL database with the master key
/// file in the directory), with the administrator of a fresh tenant. It also holds what the
/// server runs over its store ([`TempStore::deploy_chain`], [`TempStore::deploy_integration`]).
pub struct TempStore {
    /// The data directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The open store.
    pub store: Store,
    /// What the server's start-up makes the first tenant and users with (see
    /// [`veil_store::Bootstrap`]): the kit plays the start-up.
    pub bootstrap: Bootstrap,
    /// The administrator of the tenant the test works in.
    pub admin: Actor,
    /// The server's host over this store, with the built-in node and integration types and
    /// default limits: what [`TempStore::deploy_chain`] and [`TempStore::deploy_integration`]
    /// deploy through.
    pub host: Arc<Host>,
    /// Where the store keeps its data ([`TempStore::reopen`] and [`TempStore::open_instance`]
    /// open it again).
    pub database: Database,
    /// The PostgreSQL database made for this store, dropped with it.
    _postgres: Option<PostgresDatabase>,
}

/// A database made on the test server named by [`POSTGRES_ENV`], dropped (connections and all)
/// when this is dropped. Made and dropped with `psql`, which comes with every PostgreSQL
/// installation.
pub struct PostgresDatabase {
    /// The server URL to administer it from.
    admin_url: String,
    name: String,
}

/// Runs one statement with `psql` on `url`.
fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql (the PostgreSQL client; install it): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("psql -c '{sql}': {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl PostgresDatabase {
    /// Makes `veil_test_<random>` on the server named by [`POSTGRES_ENV`] (panics naming the
    /// variable when it is not set); returns it with its URL.
    pub fn create() -> (Self, Database) {
        let server = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
            panic!(
                "{POSTGRES_ENV} is not set: the PostgreSQL variants of the store tests need a server \
                 (e.g. {POSTGRES_ENV}=postgres://postgres@127.0.0.1:5432; .ci/run sets it)"
            )
        });
        let admin_url = admin_url(&server);
        let name = format!("veil_test_{}", uuid::Uuid::new_v4().simple());
        psql(&admin_url, &format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("cannot make a test database on {POSTGRES_ENV}={server}: {e}"));
        let database = Database::Postgres(with_database(&server, &name));
        (Self { admin_url, name }, database)
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        // FORCE: a store that was not closed still holds connections.
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.admin_url, &sql) {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

/// `server` (a URL) with its path replaced by `/database`, its parameters kept.
fn with_database(server: &str, database: &str) -> String {
    let mut url = reqwest::Url::parse(server).unwrap_or_else(|e| panic!("{POSTGRES_ENV}: not a URL ({e})"));
    url.set_path(&format!("/{database}"));
    url.into()
}

/// Where to create and drop test databases from: the URL's database if it names one, else
/// `postgres`.
fn admin_url(server: &str) -> String {
    match reqwest::Url::parse(server) {
        Ok(url) if url.path().len() > 1 => server.to_owned(),
        _ => with_database(server, "postgres"),
    }
}

/// The database file in a data directory.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("veil.db")
}

/// Opens (or creates) the SQLite store in `dir` with `key`, with default limits.
pub async fn open_at(dir: &Path, key: MasterKeySource) -> veil_store::Result<Store> {
    open_with(Database::Sqlite(db_path(dir)), key).await
}

/// Opens (or creates) the store in `database` with `key`, with default limits.
pub async fn open_with(database: Database, key: MasterKeySource) -> veil_store::Result<Store> {
    Store::open(StoreConfig { database, master_key: key, limits: Limits::default() }).await
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
        allowed_destinations: Vec::new(),
        max_versions: None,
        expires_at: None,
    }
}

/// A request for a TEXT secret linked to `key` of the provider `provider` (for
/// [`Store::create_linked`]; its value stays in the provider).
pub fn linked_secret(name: &str, provider: &str, key: &str) -> (NewSecret, veil_store::Source) {
    let source = veil_store::Source {
        provider: provider.into(),
        key: key.into(),
        field: None,
        version: None,
        stage: None,
    };
    (text_secret(name, ""), source)
}

/// A request for a FILE secret named `<name>.pem`.
pub fn file_secret(name: &str, bytes: impl Into<Vec<u8>>) -> NewSecret {
    NewSecret {
        name: name.into(),
        kind: SecretType::File,
        description: None,
        value: SecretValue::new(bytes.into()),
        file_name: Some(format!("{name}.pem")),
        allowed_destinations: Vec::new(),
        max_versions: None,
        expires_at: None,
    }
}

impl TempStore {
    /// A new SQLite store in a new temporary directory, for a new tenant.
    pub async fn new() -> Self {
        Self::sqlite().await
    }

    /// A new SQLite store in a new temporary directory, for a new tenant.
    pub async fn sqlite() -> Self {
        Self::with(StoreKind::Sqlite).await
    }

    /// A new store in a fresh PostgreSQL database on the server named by [`POSTGRES_ENV`]
    /// (panics naming the variable when it is not set), for a new tenant. The database is
    /// dropped with the `TempStore`.
    pub async fn postgres() -> Self {
        Self::with(StoreKind::Postgres).await
    }

    /// A new store of `kind`, for a new tenant.
    pub async fn with(kind: StoreKind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (database, postgres) = match kind {
            StoreKind::Sqlite => (Database::Sqlite(db_path(dir.path())), None),
            StoreKind::Postgres => {
                let (made, database) = PostgresDatabase::create();
                (database, Some(made))
            }
        };
        let config = StoreConfig {
            database: database.clone(),
            master_key: generated_key(dir.path()),
            limits: Limits::default(),
        };
        let (store, bootstrap) = Store::open_for_startup(config).await.unwrap();
        let admin = admin_of(TenantId::new_random());
        let host = Arc::new(Host::new(store.clone(), veil_core::Limits::default()));
        Self { dir, store, bootstrap, admin, host, database, _postgres: postgres }
    }

    /// Which database the store keeps its data in.
    pub fn kind(&self) -> StoreKind {
        match self.database {
            Database::Postgres(_) => StoreKind::Postgres,
            _ => StoreKind::Sqlite,
        }
    }

    /// Closes the store and opens the same database again, as a restart would (nothing keeps
    /// running).
    pub async fn reopen(self) -> Self {
        self.store.close().await;
        let config = StoreConfig {
            database: self.database.clone(),
            master_key: generated_key(self.dir.path()),
            limits: Limits::default(),
        };
        let (store, bootstrap) = Store::open_for_startup(config).await.unwrap();
        let host = Arc::new(Host::new(store.clone(), veil_core::Limits::default()));
        Self { store, bootstrap, host, ..self }
    }

    /// Another store on the same database and master key, as a second `veil` instance would
    /// open it: it loads what is committed now and learns nothing of later changes by the first.
    pub async fn open_instance(&self) -> Store {
        open_with(self.database.clone(), generated_key(self.dir.path())).await.unwrap()
    }

    /// Another store on the same database and master key, under `limits` (as a second `veil`
    /// instance started with other settings would open it).
    pub async fn open_instance_with(&self, limits: Limits) -> Store {
        let key = generated_key(self.dir.path());
        Store::open(StoreConfig { database: self.database.clone(), master_key: key, limits }).await.unwrap()
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
