//! [`Store`]: the one entry point. Writes go to the database first and, once committed, to the
//! in-memory index and the event channel; reads (and `resolve`) come from the index only.

use std::sync::{Arc, RwLock};

use tokio::sync::{Mutex, broadcast};

mod audit;
mod bootstrap;
mod configs;
mod destinations;
mod directory;
mod feed;
mod index;
mod keys;
mod providers;
mod rotation;
mod secrets;
mod sessions;
mod usage;
mod versions;

pub use self::bootstrap::Bootstrap;
pub use self::directory::{MAX_DIRECTORY_NAME, NewUser};
use self::index::Index;
pub use self::keys::KeyRotationReport;
pub use self::providers::{NewProvider, ProviderInfo};
pub use self::versions::Verification;
use crate::access::Actor;
use crate::audit::UseCounter;
use crate::backend::{Backend, Database, SecretRow};
use crate::crypto::{Keyring, MasterKey, MasterKeySource};
use crate::error::{Result, StoreError};
use crate::events::{ChangeKind, SecretEvent};
use crate::feed::OwnerChange;
use crate::model::{Limits, SecretId, SecretInfo, TenantId};
use crate::sessions::SessionCache;

/// How to open a store.
#[derive(Debug)]
pub struct StoreConfig {
    /// Where the data lives.
    pub database: Database,
    /// Where the master key comes from.
    pub master_key: MasterKeySource,
    /// Value size limits.
    pub limits: Limits,
}

/// A page of a listing, in the API's shape.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page.
    pub data: Vec<T>,
    /// How many items match in all.
    pub total_elements: usize,
    /// How many pages there are at this page size.
    pub total_pages: usize,
    /// Whether a later page exists.
    pub has_next: bool,
}

impl<T> Page<T> {
    /// Page `page` (zero-based) of `items`, `page_size` (1..=1000) per page.
    pub fn of(items: impl ExactSizeIterator<Item = T>, page: usize, page_size: usize) -> Result<Self> {
        let page_size = checked_page_size(page_size)?;
        let total = items.len();
        let total_pages = total.div_ceil(page_size);
        let data = items.skip(page.saturating_mul(page_size)).take(page_size).collect();
        Ok(Self { data, total_elements: total, total_pages, has_next: page.saturating_add(1) < total_pages })
    }

    /// Page `page` of `total` items at `page_size` (1..=1000) per page, holding `data`.
    pub(crate) fn counted(data: Vec<T>, total: usize, page: usize, page_size: usize) -> Self {
        let total_pages = total.div_ceil(page_size);
        Self { data, total_elements: total, total_pages, has_next: page.saturating_add(1) < total_pages }
    }
}

/// `size` when it is a page size the API allows (1..=1000).
pub(crate) fn checked_page_size(size: usize) -> Result<usize> {
    if (1..=1000).contains(&size) {
        Ok(size)
    } else {
        Err(StoreError::invalid("pageSize", "must be between 1 and 1000"))
    }
}

/// Which page of secrets to list.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Zero-based page number.
    pub page: usize,
    /// Items per page, 1..=1000.
    pub page_size: usize,
    /// Case-insensitive substring of the name.
    pub text_search: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self { page: 0, page_size: 20, text_search: None }
    }
}

struct Inner {
    backend: Backend,
    keyring: RwLock<Keyring>,
    index: Index,
    events: broadcast::Sender<SecretEvent>,
    /// Rule chains and integrations changed by other instances (from the change feed).
    owner_events: broadcast::Sender<OwnerChange>,
    /// Serializes writes in this process so the index follows the database's commit order.
    write: Mutex<()>,
    limits: Limits,
    /// Secret uses by running configurations, written to the audit log per minute.
    uses: UseCounter,
    /// Refused sends, written to the audit log per minute like uses.
    blocked: crate::audit::BlockedCounter,
    /// Tenants deleted while this process runs: writes still in flight for them are refused.
    deleted_tenants: std::sync::Mutex<std::collections::HashSet<TenantId>>,
    /// Verified users' actors, so authenticating a request reads no database.
    sessions: SessionCache,
    /// The tenants' settings other than the defaults (from `tenants`, kept current like the
    /// index: read on the message path, never from the database).
    settings: RwLock<std::collections::HashMap<TenantId, crate::directory::TenantSettings>>,
    /// The keys of versions' fingerprints (set once the store is open).
    fingerprints: std::sync::OnceLock<crate::crypto::Fingerprinter>,
    /// The master key: data keys added by a rotation (here or on another instance) are wrapped
    /// and unwrapped with it.
    master: MasterKey,
    /// Secret providers of every tenant, by tenant and name.
    providers: self::providers::Registry,
    /// What providers may reach on this machine.
    provider_policy: RwLock<crate::provider::ProviderPolicy>,
    /// Linked secrets' fetched values.
    linked: crate::provider::cache::LinkedValues,
    /// Per tenant, the slots of its providers' fetches running at once.
    fetch_slots: dashmap::DashMap<TenantId, Arc<tokio::sync::Semaphore>>,
}

/// The encrypted secret store. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend.kind())
            .field("secrets", &self.inner.index.by_id.len())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database, checks the master key against the keyring and
    /// loads the index. A wrong master key fails with [`StoreError::WrongMasterKey`] and writes nothing.
    pub async fn open(config: StoreConfig) -> Result<Self> {
        // Parse an explicit key before touching the database, so a typo changes no file.
        let master = MasterKey::load(&config.master_key)?;
        let backend = Backend::connect(&config.database).await?;
        match Self::init(&backend, master, &config.master_key).await {
            Ok((keyring, rows, master)) => {
                let index = Index::default();
                for row in rows {
                    index.insert(row);
                }
                let (events, _) = broadcast::channel(1024);
                let (owner_events, _) = broadcast::channel(1024);
                let store = Self {
                    inner: Arc::new(Inner {
                        backend,
                        keyring: RwLock::new(keyring),
                        index,
                        events,
                        owner_events,
                        write: Mutex::new(()),
                        limits: config.limits,
                        uses: UseCounter::default(),
                        blocked: Default::default(),
                        deleted_tenants: Default::default(),
                        sessions: SessionCache::default(),
                        settings: Default::default(),
                        fingerprints: Default::default(),
                        master,
                        providers: Default::default(),
                        provider_policy: Default::default(),
                        linked: Default::default(),
                        fetch_slots: Default::default(),
                    }),
                };
                if let Err(e) = store.load_settings().await {
                    store.close().await;
                    return Err(e);
                }
                if let Err(e) = store.load_fingerprints().await {
                    store.close().await;
                    return Err(e);
                }
                if let Err(e) = store.load_providers().await {
                    store.close().await;
                    return Err(e);
                }
                store.flush_uses_periodically();
                store.sweep_linked_periodically();
                if let Err(e) = store.follow_feed().await {
                    store.close().await;
                    return Err(e);
                }
                Ok(store)
            }
            Err(e) => {
                backend.close().await;
                Err(e)
            }
        }
    }

    async fn init(
        backend: &Backend,
        master: Option<MasterKey>,
        source: &MasterKeySource,
    ) -> Result<(Keyring, Vec<SecretRow>, MasterKey)> {
        let stored = backend.load_data_keys().await?;
        let master = match (master, source) {
            (Some(m), _) => m,
            (None, MasterKeySource::Generated(path)) if stored.is_empty() => {
                tracing::warn!(
                    path = %path.display(),
                    "generated a new master key; back it up and keep it apart from the database, \
                     or set VEIL_MASTER_KEY / --master-key-file"
                );
                MasterKey::generate(path)?
            }
            (None, MasterKeySource::Generated(path)) => {
                return Err(StoreError::MasterKey(format!(
                    "{} is missing but the database holds a keyring; restore the key file or set \
                     VEIL_MASTER_KEY (a new key would make every secret unreadable)",
                    path.display()
                )));
            }
            (None, _) => unreachable!("explicit key sources always load a key or fail"),
        };
        // Check the key before anything is written (the schema migration included).
        let keyring = if stored.is_empty() {
            backend.migrate().await?;
            let key = Keyring::new_wrapped_key(&master, 1);
            backend.insert_data_key(&key).await?;
            // Read back: another instance may have made the first key at the same moment.
            Keyring::unwrap_all(&master, &backend.load_data_keys().await?)?
        } else {
            let keyring = Keyring::unwrap_all(&master, &stored)?;
            backend.migrate().await?;
            keyring
        };
        debug_assert!(!keyring.is_empty());
        let rows = backend.load_secrets().await?;
        Ok((keyring, rows, master))
    }

    /// Writes finished minutes of use counts every few seconds while the store is alive.
    fn flush_uses_periodically(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
            // Old audit entries go a minute after start, then once an hour: idempotent, any
            // instance may.
            let mut next_purge = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let store = Store { inner };
                store.flush_finished_uses().await;
                if std::time::Instant::now() >= next_purge {
                    store.purge_old_audit().await;
                    next_purge = std::time::Instant::now() + std::time::Duration::from_secs(3600);
                }
            }
        });
    }

    /// Writes pending use counts and closes the database cleanly.
    pub async fn close(&self) {
        self.flush_uses().await;
        self.inner.backend.close().await;
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// The backend's name (`sqlite` or `postgres`).
    pub fn backend_kind(&self) -> &'static str {
        self.inner.backend.kind()
    }

    /// How many times this process used the database so far (reads and writes). Processing
    /// messages and authenticating known users use it not at all: a test checks that.
    pub fn database_queries(&self) -> u64 {
        self.inner.backend.queries()
    }

    /// Sets the gauges read when the metrics are scraped: the database pool's connections and
    /// whether the change feed listens.
    pub fn publish_metrics(&self) {
        let m = &*crate::metrics::STORE;
        let backend = crate::metrics::BackendLabels { backend: self.backend_kind().to_owned() };
        let (open, idle) = self.inner.backend.pool_use();
        m.db_connections.get_or_create(&backend).set(i64::from(open));
        m.db_idle_connections.get_or_create(&backend).set(idle as i64);
        m.feed_listening.set(i64::from(self.feed_listening()));
    }

    /// Whether this instance hears the other instances' changes now: always with SQLite (there
    /// are none); with PostgreSQL, while the change feed's connection listens.
    pub fn feed_listening(&self) -> bool {
        self.inner.backend.change_feed().is_none_or(|feed| feed.listening())
    }

    /// The configured value limits.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// How many secrets all tenants hold.
    pub fn secret_count(&self) -> usize {
        self.inner.index.by_id.len()
    }

    /// The SQLite file, when the store is one.
    pub(crate) fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.inner.backend.sqlite_file()
    }

    /// Change events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SecretEvent> {
        self.inner.events.subscribe()
    }

    fn publish(&self, info: &SecretInfo, kind: ChangeKind) {
        // No subscriber is fine: nothing is running that needs to refresh.
        let _ = self.inner.events.send(SecretEvent {
            tenant_id: info.tenant_id,
            secret_id: info.id,
            name: info.name.clone(),
            kind,
        });
    }

    /// Runs a write to completion even when the caller stops waiting: a client that disconnects
    /// mid-request must not leave the database committed and the index unchanged.
    async fn detached<T, F, Fut>(&self, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Store) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        tokio::spawn(write(self.clone()))
            .await
            .map_err(|e| StoreError::Internal(format!("a store write did not finish: {e}")))?
    }

    fn visible(&self, actor: &Actor, id: SecretId) -> Result<Arc<SecretRow>> {
        self.inner
            .index
            .by_id(id)
            .filter(|row| actor.can_see(&row.info))
            .ok_or_else(|| StoreError::secret_not_found(id))
    }

    /// Fails for a tenant deleted while a request of its users was in flight.
    fn tenant_alive(&self, tenant: TenantId) -> Result<()> {
        if self.inner.deleted_tenants.lock().unwrap_or_else(|e| e.into_inner()).contains(&tenant) {
            Err(StoreError::NotFound { kind: "tenant", id: tenant.to_string() })
        } else {
            Ok(())
        }
    }

    fn keyring(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        self.inner.keyring.read().unwrap_or_else(|e| e.into_inner())
    }
}
