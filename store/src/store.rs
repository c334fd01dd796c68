//! [`Store`]: the one entry point. Writes go to the database first and, once committed, to the
//! in-memory index and the event channel; reads (and `resolve`) come from the index only.

use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use tokio::sync::{Mutex, broadcast};
use uuid::Uuid;

mod admin;

pub use self::admin::{MAX_DIRECTORY_NAME, NewUser};
use crate::access::{Actor, Operation};
use crate::audit::{AuditAction, UseCounter};
use crate::backend::OwnerWrite;
use crate::backend::{Backend, Database, DeleteOutcome, OwnerRecord, SecretRow};
use crate::crypto::{Keyring, MasterKey, MasterKeySource, random_bytes};
use crate::directory::{TenantRecord, UserRecord};
use crate::error::{NameConflict, NeededKind, Result, StoreError};
use crate::events::{ChangeKind, SecretEvent};
use crate::feed::{Change, FeedItem, OwnerChange};
use crate::model::{
    CustomerId, Limits, NewSecret, SecretId, SecretInfo, SecretUpdate, SecretValue, TenantId, UserId, now_ms,
    skeleton, validate_new, validate_update,
};
use crate::quota::Quota;
use crate::references::{Owner, OwnerLink, OwnerType, ResolvedRef, SecretRef, Usages};
use crate::sessions::{Session, SessionCache};

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
        if !(1..=1000).contains(&page_size) {
            return Err(StoreError::invalid("pageSize", "must be between 1 and 1000"));
        }
        let total = items.len();
        let total_pages = total.div_ceil(page_size);
        let data = items.skip(page.saturating_mul(page_size)).take(page_size).collect();
        Ok(Self { data, total_elements: total, total_pages, has_next: page.saturating_add(1) < total_pages })
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

/// foldhash: half the cost of SipHash on `resolve`'s two look-ups; seeded randomly per process.
type FastMap<K, V> = DashMap<K, V, foldhash::fast::RandomState>;

/// Metadata and ciphertext of every secret, so look-ups never touch the database.
#[derive(Default)]
struct Index {
    by_id: FastMap<SecretId, Arc<SecretRow>>,
    by_name: FastMap<TenantId, FastMap<String, Arc<SecretRow>>>,
    /// The names of each tenant by their UTS #39 confusable skeleton, so a new name that looks
    /// like an existing one is found without scanning the tenant (several only in databases
    /// written before the rule).
    by_skeleton: FastMap<(TenantId, String), Vec<String>>,
}

impl Index {
    fn insert(&self, row: SecretRow) {
        let row = Arc::new(row);
        let (tenant, name) = (row.info.tenant_id, row.info.name.clone());
        self.by_id.insert(row.info.id, Arc::clone(&row));
        let known = self.by_name.entry(tenant).or_default().insert(name.clone(), row).is_some();
        if !known {
            let mut names = self.by_skeleton.entry((tenant, skeleton(&name))).or_default();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }

    fn remove(&self, info: &SecretInfo) {
        self.by_id.remove(&info.id);
        if let Some(names) = self.by_name.get(&info.tenant_id) {
            names.remove(&info.name);
        }
        let key = (info.tenant_id, skeleton(&info.name));
        if let Some(mut names) = self.by_skeleton.get_mut(&key) {
            names.retain(|n| *n != info.name);
        }
        self.by_skeleton.remove_if(&key, |_, names| names.is_empty());
    }

    /// Another name of the tenant that looks like `name`.
    fn lookalike(&self, tenant: TenantId, name: &str) -> Option<String> {
        let names = self.by_skeleton.get(&(tenant, skeleton(name)))?;
        names.iter().find(|n| *n != name).cloned()
    }

    fn by_name(&self, tenant: TenantId, name: &str) -> Option<Arc<SecretRow>> {
        self.by_name.get(&tenant).and_then(|names| names.get(name).map(|r| Arc::clone(r.value())))
    }

    fn by_id(&self, id: SecretId) -> Option<Arc<SecretRow>> {
        self.by_id.get(&id).map(|r| Arc::clone(r.value()))
    }

    fn remove_tenant(&self, tenant: TenantId) {
        self.by_id.retain(|_, row| row.info.tenant_id != tenant);
        self.by_name.remove(&tenant);
        self.by_skeleton.retain(|(t, _), _| *t != tenant);
    }

    fn forget_customer(&self, tenant: TenantId, customer: CustomerId) {
        let shared: Vec<Arc<SecretRow>> = self
            .by_id
            .iter()
            .filter(|r| r.info.tenant_id == tenant && r.info.shared_with.contains(&customer))
            .map(|r| Arc::clone(r.value()))
            .collect();
        for row in shared {
            let mut info = row.info.clone();
            info.shared_with.retain(|c| *c != customer);
            self.insert(SecretRow { info, sealed: row.sealed.clone() });
        }
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
    /// Tenants whose secrets must name their allowed destinations (from `tenants`, kept current
    /// like the index: read on the message path, never from the database).
    destinations_required: RwLock<std::collections::HashSet<TenantId>>,
}

/// Clears the session cache when dropped: held by every directory write, so the clearing comes
/// after its commit (and happens on every way out of it).
pub(crate) struct DirectoryWrite<'a>(&'a Store);

impl Drop for DirectoryWrite<'_> {
    fn drop(&mut self) {
        self.0.inner.sessions.clear();
    }
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
            Ok((keyring, rows)) => {
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
                        destinations_required: Default::default(),
                    }),
                };
                if let Err(e) = store.load_destinations_required().await {
                    store.close().await;
                    return Err(e);
                }
                store.flush_uses_periodically();
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
    ) -> Result<(Keyring, Vec<SecretRow>)> {
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
        Ok((keyring, rows))
    }

    /// Applies other instances' committed changes as they come (PostgreSQL), until the store
    /// closes. Listening has begun when this returns: what commits later is seen.
    async fn follow_feed(&self) -> Result<()> {
        let Some(mut feed) = self.inner.backend.listen().await? else { return Ok(()) };
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            // What committed between loading at open and listening was announced to nobody here:
            // read everything once more now that nothing can be missed.
            // (The index and the tenants' settings; configurations are read by the host after open.)
            if let Some(inner) = weak.upgrade() {
                let store = Store { inner };
                if let Err(e) = store.resync_once().await {
                    tracing::warn!(error = %e, "change feed: the first reload failed; reloading everything");
                    store.resync().await;
                }
            }
            while let Some(item) = feed.recv().await {
                let Some(inner) = weak.upgrade() else { break };
                Store { inner }.apply(item).await;
            }
        });
        Ok(())
    }

    /// Brings this instance's memory up to date with a change committed by another one: the
    /// index, sessions and deleted tenants here; running chains and integrations through
    /// [`Store::subscribe_owners`].
    async fn apply(&self, item: FeedItem) {
        let change = match item {
            FeedItem::Change(change) => change,
            FeedItem::Resync => return self.resync().await,
        };
        let applied = match change {
            Change::Secret(id) => self.reload_secret(id).await,
            Change::Owner { kind, id, tenant } => {
                let _ = self.inner.owner_events.send(OwnerChange::Changed { kind, id, tenant });
                Ok(())
            }
            Change::Tenant(id) => self.reload_tenant(id).await,
            Change::Directory => {
                self.inner.sessions.clear();
                Ok(())
            }
        };
        if let Err(e) = applied {
            tracing::warn!(error = %e, "change feed: a change could not be read; reloading everything");
            self.resync().await;
        }
    }

    /// Reads one secret again and updates the index, announcing what changed.
    async fn reload_secret(&self, id: SecretId) -> Result<()> {
        // Under the write lock: a write of this process commits and updates the index as one step.
        let _guard = self.inner.write.lock().await;
        let now = self.inner.backend.reload_secret(id).await?;
        let before = self.inner.index.by_id(id);
        self.replace_row(before.as_deref(), now);
        Ok(())
    }

    /// Puts `now` in the index in place of `before`, announcing the difference.
    fn replace_row(&self, before: Option<&SecretRow>, now: Option<SecretRow>) {
        match (before, now) {
            (None, None) => {}
            (Some(old), None) => {
                self.inner.index.remove(&old.info);
                self.publish(&old.info, ChangeKind::Deleted);
            }
            (old, Some(row)) => {
                let info = row.info.clone();
                self.inner.index.insert(row);
                match old {
                    None => self.publish(&info, ChangeKind::Created),
                    Some(old) => {
                        if old.info.version != info.version {
                            self.publish(&info, ChangeKind::ValueUpdated(info.version));
                        }
                        if old.info.description != info.description || old.info.file_name != info.file_name {
                            self.publish(&info, ChangeKind::DescriptionUpdated);
                        }
                    }
                }
            }
        }
    }

    /// A tenant that no longer exists is deleted here too: its secrets leave the index and
    /// writes still in flight for it are refused.
    async fn reload_tenant(&self, id: TenantId) -> Result<()> {
        self.inner.sessions.clear();
        let tenant = self.inner.backend.tenant_by_id(id).await?;
        self.remember_destinations_required(id, tenant.as_ref().is_some_and(|t| t.destinations_required));
        if tenant.is_none() {
            let _guard = self.inner.write.lock().await;
            self.inner.deleted_tenants.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
            self.inner.index.remove_tenant(id);
        }
        Ok(())
    }

    /// After notifications may have been lost: every secret read again, sessions verified again,
    /// and the host told to compare what runs with the database. Retries until the database
    /// answers.
    async fn resync(&self) {
        loop {
            match self.resync_once().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "change feed: cannot reload yet; retrying in 1 s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
        self.inner.sessions.clear();
        let _ = self.inner.owner_events.send(OwnerChange::Resync);
        tracing::info!(secrets = self.secret_count(), "change feed: resynchronized");
    }

    async fn resync_once(&self) -> Result<()> {
        self.load_destinations_required().await?;
        let _guard = self.inner.write.lock().await;
        let rows = self.inner.backend.load_secrets().await?;
        let mut gone: std::collections::HashMap<SecretId, Arc<SecretRow>> =
            self.inner.index.by_id.iter().map(|e| (*e.key(), Arc::clone(e.value()))).collect();
        for row in rows {
            let before = gone.remove(&row.info.id);
            self.replace_row(before.as_deref(), Some(row));
        }
        for old in gone.into_values() {
            self.replace_row(Some(&old), None);
        }
        Ok(())
    }

    /// Rule chains and integrations saved or deleted through other instances, from now on.
    pub fn subscribe_owners(&self) -> broadcast::Receiver<OwnerChange> {
        self.inner.owner_events.subscribe()
    }

    /// A stored configuration by id as it is now, whoever may see it (for the host, which runs
    /// every tenant's); `None` when it does not exist.
    pub async fn owner_record(
        &self,
        tenant: TenantId,
        kind: OwnerType,
        id: Uuid,
    ) -> Result<Option<OwnerRecord>> {
        self.inner.backend.owner(tenant, kind, id).await
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

    /// The configured value limits.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// How many secrets all tenants hold.
    pub fn secret_count(&self) -> usize {
        self.inner.index.by_id.len()
    }

    /// Whether the secret `name` of `tenant` may be sent to `host` on `port`: `Err` with its
    /// allowed destinations when not (an empty list when the tenant requires a list and the
    /// secret has none). An unknown secret is not refused here: resolving it fails.
    pub fn destination_allowed(
        &self,
        tenant: TenantId,
        name: &str,
        host: &str,
        port: u16,
    ) -> std::result::Result<(), Vec<String>> {
        match self.inner.index.by_name(tenant, name) {
            Some(row) => self.list_allows(tenant, &row.info.allowed_destinations, host, port, None),
            None => Ok(()),
        }
    }

    /// Whether `list` (a secret's, or one proposed for it) lets a secret of `tenant` go to
    /// `host:port`; `required` overrides the tenant's "destinations required" (for a change not
    /// stored yet).
    pub fn list_allows(
        &self,
        tenant: TenantId,
        list: &[String],
        host: &str,
        port: u16,
        required: Option<bool>,
    ) -> std::result::Result<(), Vec<String>> {
        if list.is_empty() {
            // Only an empty list asks the tenant's setting (a lock), not every send.
            let required = required.unwrap_or_else(|| self.destinations_required(tenant));
            return if required { Err(Vec::new()) } else { Ok(()) };
        }
        if crate::destinations::destination_allowed(list, host, port) { Ok(()) } else { Err(list.to_vec()) }
    }

    /// The allowed destinations of the secret `name` of `tenant` (`None`: no such secret).
    pub fn allowed_destinations(&self, tenant: TenantId, name: &str) -> Option<Vec<String>> {
        self.inner.index.by_name(tenant, name).map(|row| row.info.allowed_destinations.clone())
    }

    /// Whether `tenant` requires every secret to name its allowed destinations.
    pub fn destinations_required(&self, tenant: TenantId) -> bool {
        self.inner.destinations_required.read().unwrap_or_else(|e| e.into_inner()).contains(&tenant)
    }

    fn remember_destinations_required(&self, tenant: TenantId, on: bool) {
        let mut set = self.inner.destinations_required.write().unwrap_or_else(|e| e.into_inner());
        if on {
            set.insert(tenant);
        } else {
            set.remove(&tenant);
        }
    }

    async fn load_destinations_required(&self) -> Result<()> {
        let on: std::collections::HashSet<TenantId> = self
            .inner
            .backend
            .tenants()
            .await?
            .into_iter()
            .filter(|t| t.destinations_required)
            .map(|t| t.id)
            .collect();
        *self.inner.destinations_required.write().unwrap_or_else(|e| e.into_inner()) = on;
        Ok(())
    }

    /// Turns the actor's tenant's "destinations required" on or off (tenant administrators: it
    /// takes `ROLE:WRITE`, what manages access). The caller checks the configurations first.
    pub async fn set_destinations_required(&self, actor: &Actor, on: bool) -> Result<bool> {
        actor.require_on(crate::access::Resource::Role, Operation::Write)?;
        self.inner.backend.set_destinations_required(actor.tenant_id, on).await?;
        self.remember_destinations_required(actor.tenant_id, on);
        tracing::info!(tenant = %actor.tenant_id, on, actor = %actor.username, "destinations required changed");
        Ok(on)
    }

    /// Every secret's metadata, of every tenant (for checking a copy).
    pub(crate) fn all_secrets(&self) -> Vec<SecretInfo> {
        self.inner.index.by_id.iter().map(|r| r.value().info.clone()).collect()
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

    /// Creates a secret (version 1).
    pub async fn create(&self, actor: &Actor, req: NewSecret) -> Result<SecretInfo> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.create_inner(&actor, req).await }).await
    }

    async fn create_inner(&self, actor: &Actor, req: NewSecret) -> Result<SecretInfo> {
        actor.require(Operation::Create)?;
        let valid = validate_new(&req, &self.inner.limits)?;
        let _guard = self.inner.write.lock().await;
        self.tenant_alive(actor.tenant_id)?;
        if self.inner.index.by_name(actor.tenant_id, &valid.name).is_some() {
            return Err(StoreError::NameTaken(valid.name));
        }
        self.refuse_lookalike_secret(actor.tenant_id, &valid.name)?;
        let now = now_ms();
        let info = SecretInfo {
            id: SecretId::new_random(),
            tenant_id: actor.tenant_id,
            name: valid.name,
            kind: req.kind,
            description: valid.description,
            file_name: valid.file_name,
            version: 1,
            created_time: now,
            updated_time: now,
            shared_with: Vec::new(),
            allowed_destinations: valid.allowed_destinations,
        };
        let sealed = self.keyring().seal(info.tenant_id, info.id, info.version, &req.value);
        let row = SecretRow { info: info.clone(), sealed };
        let limits = self.inner.limits;
        let quotas = [
            Quota::Secrets(limits.max_secrets_per_tenant),
            Quota::SecretBytes(limits.max_secret_bytes_per_tenant),
        ];
        self.inner.backend.insert_secret(&row, &quotas).await?;
        self.inner.index.insert(row);
        tracing::info!(secret = %info.name, id = %info.id, actor = %actor.username, "secret created");
        self.publish(&info, ChangeKind::Created);
        let details = serde_json::json!({ "type": info.kind, "version": info.version });
        self.audit_secret(actor, AuditAction::Create, &info, true, details).await;
        Ok(info)
    }

    /// Refuses a new secret name that looks like (has the same UTS #39 skeleton as) another
    /// secret of the tenant: `s-b\u{430}sic` next to `s-basic` would be a trap in every
    /// configuration that references one of them.
    fn refuse_lookalike_secret(&self, tenant: TenantId, name: &str) -> Result<()> {
        match self.inner.index.lookalike(tenant, name) {
            Some(other) => Err(StoreError::NameUnavailable {
                conflict: NameConflict::Lookalike,
                message: format!(
                    "name: '{name}' looks like the existing secret '{other}'; choose a name that can be told apart"
                ),
            }),
            None => Ok(()),
        }
    }

    /// Metadata of one secret.
    pub fn get(&self, actor: &Actor, id: SecretId) -> Result<SecretInfo> {
        let row = self.visible(actor, id)?;
        actor.require(Operation::Read)?;
        Ok(shown(actor, &row.info))
    }

    /// Metadata of a secret by name, if the actor can see it (used to validate configurations).
    pub fn find(&self, actor: &Actor, name: &str) -> Option<SecretInfo> {
        self.inner
            .index
            .by_name(actor.tenant_id, name)
            .filter(|row| actor.can_see(&row.info))
            .map(|row| row.info.clone())
    }

    /// One page of the actor's secrets, sorted by name.
    pub fn list(&self, actor: &Actor, query: &ListQuery) -> Result<Page<SecretInfo>> {
        actor.require(Operation::Read)?;
        let needle = query.text_search.as_deref().map(str::to_lowercase).filter(|s| !s.is_empty());
        let mut matches: Vec<SecretInfo> = match self.inner.index.by_name.get(&actor.tenant_id) {
            Some(names) => names
                .iter()
                .filter(|e| actor.can_see(&e.value().info))
                .filter(|e| needle.as_deref().is_none_or(|n| e.value().info.name.to_lowercase().contains(n)))
                .map(|e| shown(actor, &e.value().info))
                .collect(),
            None => Vec::new(),
        };
        matches.sort_by(|a, b| a.name.cmp(&b.name));
        Page::of(matches.into_iter(), query.page, query.page_size)
    }

    /// Changes value and/or description. A new value increments the version.
    pub async fn update(&self, actor: &Actor, id: SecretId, req: SecretUpdate) -> Result<SecretInfo> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.update_inner(&actor, id, req).await }).await
    }

    async fn update_inner(&self, actor: &Actor, id: SecretId, req: SecretUpdate) -> Result<SecretInfo> {
        self.visible(actor, id)?;
        actor.require(Operation::Write)?;
        let _guard = self.inner.write.lock().await;
        let current = self.visible(actor, id)?;
        let valid = validate_update(&current.info, &req, &self.inner.limits)?;
        let mut info = current.info.clone();
        let description_changed = valid.description.as_ref().is_some_and(|d| *d != info.description)
            || valid.file_name.as_ref().is_some_and(|f| Some(f) != info.file_name.as_ref());
        let destinations_changed =
            valid.allowed_destinations.as_ref().is_some_and(|d| *d != info.allowed_destinations);
        if let Some(d) = valid.description {
            info.description = d;
        }
        if let Some(f) = valid.file_name {
            info.file_name = Some(f);
        }
        if let Some(list) = valid.allowed_destinations {
            info.allowed_destinations = list;
        }
        let sealed = match &req.value {
            Some(value) => {
                info.version += 1;
                self.keyring().seal(info.tenant_id, info.id, info.version, value)
            }
            None => current.sealed.clone(),
        };
        info.updated_time = now_ms();
        let row = SecretRow { info: info.clone(), sealed };
        let expected = crate::backend::Expected {
            version: current.info.version,
            updated_time: Some(current.info.updated_time),
        };
        let quota =
            req.value.is_some().then_some(Quota::SecretBytes(self.inner.limits.max_secret_bytes_per_tenant));
        if !self.inner.backend.update_secret(&row, expected, quota).await? {
            return Err(StoreError::Conflict(info.name));
        }
        self.inner.index.insert(row);
        tracing::info!(secret = %info.name, version = info.version, actor = %actor.username, "secret updated");
        if req.value.is_some() {
            self.publish(&info, ChangeKind::ValueUpdated(info.version));
            let details = serde_json::json!({ "version": info.version });
            self.audit_secret(actor, AuditAction::ValueChange, &info, true, details).await;
        }
        if description_changed {
            self.publish(&info, ChangeKind::DescriptionUpdated);
            self.audit_secret(actor, AuditAction::DescriptionChange, &info, true, serde_json::json!({}))
                .await;
        }
        if destinations_changed {
            self.publish(&info, ChangeKind::DescriptionUpdated);
            let details = serde_json::json!({ "allowedDestinations": info.allowed_destinations });
            self.audit_secret(actor, AuditAction::DestinationsChange, &info, true, details).await;
        }
        Ok(info)
    }

    /// Deletes a secret; refused with the list of users while any configuration references it.
    pub async fn delete(&self, actor: &Actor, id: SecretId) -> Result<()> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.delete_inner(&actor, id).await }).await
    }

    async fn delete_inner(&self, actor: &Actor, id: SecretId) -> Result<()> {
        self.visible(actor, id)?;
        actor.require(Operation::Delete)?;
        let _guard = self.inner.write.lock().await;
        let current = self.visible(actor, id)?;
        match self.inner.backend.delete_secret(id).await? {
            DeleteOutcome::InUse(usages) => {
                let details = serde_json::json!({ "references": usages });
                self.audit_secret(actor, AuditAction::DeleteRefused, &current.info, false, details).await;
                Err(StoreError::InUse {
                    name: current.info.name.clone(),
                    usages: self.visible_usages(actor, usages),
                })
            }
            DeleteOutcome::Deleted => {
                self.inner.index.remove(&current.info);
                tracing::info!(secret = %current.info.name, actor = %actor.username, "secret deleted");
                self.publish(&current.info, ChangeKind::Deleted);
                let details = serde_json::json!({ "version": current.info.version });
                self.audit_secret(actor, AuditAction::Delete, &current.info, true, details).await;
                Ok(())
            }
        }
    }

    /// Who references a secret, grouped by owner type.
    pub async fn usages(&self, actor: &Actor, id: SecretId) -> Result<Usages> {
        self.visible(actor, id)?;
        actor.require(Operation::Read)?;
        self.inner.backend.usages(id, actor.customer_id).await
    }

    /// What a refused delete may show the actor: tenant users see every use; customer users never
    /// act on secrets, so this is for completeness.
    fn visible_usages(&self, actor: &Actor, usages: Usages) -> Usages {
        if actor.customer_id.is_some() { Usages::default() } else { usages }
    }

    /// Decrypts a secret for execution. Internal capability: only the engine and integrations call
    /// this, never an HTTP route. Errors carry the name, never the value.
    pub fn resolve(&self, tenant: TenantId, name: &str) -> Result<SecretValue> {
        self.decrypt(tenant, name, true)
    }

    /// Like [`Store::resolve`], but not counted as a use in the audit log: for learning values to
    /// mask them, which is not using them.
    pub fn resolve_for_masking(&self, tenant: TenantId, name: &str) -> Result<SecretValue> {
        self.decrypt(tenant, name, false)
    }

    /// Every value of a secret that must stay masked: the current one first, then the earlier
    /// values the store keeps (the last 5, newest first), so that a rotated-out value is masked
    /// after a restart and by configurations created after the rotation. For the redactor only:
    /// never returned through any API; not counted as a use. An earlier value that no longer
    /// decrypts is skipped.
    pub fn values_for_masking(&self, tenant: TenantId, name: &str) -> Result<Vec<SecretValue>> {
        let row = self.inner.index.by_name(tenant, name).ok_or_else(|| StoreError::secret_not_found(name))?;
        let info = &row.info;
        let keyring = self.keyring();
        let current = keyring
            .open(info.tenant_id, info.id, info.version, &row.sealed)
            .ok_or_else(|| StoreError::Integrity(info.name.clone()))?;
        let mut values = vec![current];
        for earlier in self.inner.backend.earlier_values(info.id) {
            values.extend(keyring.open(info.tenant_id, info.id, earlier.version, &earlier.sealed));
        }
        Ok(values)
    }

    fn decrypt(&self, tenant: TenantId, name: &str, counted: bool) -> Result<SecretValue> {
        // Decrypt under the index's read guards instead of cloning the row's Arc: readers never
        // block each other, and it keeps two atomic operations off the hot path.
        let names = self.inner.index.by_name.get(&tenant);
        let row = names
            .as_ref()
            .and_then(|names| names.get(name))
            .ok_or_else(|| StoreError::secret_not_found(name))?;
        let info = &row.info;
        if counted {
            self.inner.uses.count(tenant, info.id, name);
        }
        self.keyring()
            .open(info.tenant_id, info.id, info.version, &row.sealed)
            .ok_or_else(|| StoreError::Integrity(info.name.clone()))
    }

    /// The largest value a secret could hold: its type's limit (from the index, no decryption).
    /// What a script may assume of a sealed value's length, whatever the value is.
    pub fn max_value_bytes(&self, tenant: TenantId, name: &str) -> Option<usize> {
        let kind = self.inner.index.by_name.get(&tenant)?.get(name).map(|row| row.info.kind)?;
        let limits = self.limits();
        Some(match kind {
            crate::SecretType::Text => limits.max_text_bytes,
            crate::SecretType::File => limits.max_file_bytes,
        })
    }

    /// The current version of a secret, from the index (no decryption). Lets callers that cache
    /// something derived from a value notice a change.
    pub fn version(&self, tenant: TenantId, name: &str) -> Option<i64> {
        self.inner.index.by_name.get(&tenant)?.get(name).map(|row| row.info.version)
    }

    /// The id and current version of a secret: what identifies its values (a secret deleted and
    /// made again under the same name has another id).
    pub fn value_key(&self, tenant: TenantId, name: &str) -> Option<(SecretId, i64)> {
        self.inner.index.by_name.get(&tenant)?.get(name).map(|row| (row.info.id, row.info.version))
    }

    /// Saves a configuration and replaces all its references in one transaction. Every referenced
    /// secret must exist and be visible to the actor, who needs USE. A customer user may only
    /// overwrite its own customer's configurations.
    pub async fn save_owner(
        &self,
        actor: &Actor,
        owner: &Owner,
        body: &serde_json::Value,
        refs: &[SecretRef],
    ) -> Result<()> {
        self.save_owner_linked(actor, owner, body, refs, &[]).await
    }

    /// [`Store::save_owner`] for a configuration that also uses other configurations (a rule
    /// chain that sends downlinks through integrations): the links are replaced in the same
    /// transaction, each target must exist in the tenant, and the actor needs WRITE on it.
    pub async fn save_owner_linked(
        &self,
        actor: &Actor,
        owner: &Owner,
        body: &serde_json::Value,
        refs: &[SecretRef],
        links: &[OwnerLink],
    ) -> Result<()> {
        let (actor, owner, body, refs, links) =
            (actor.clone(), owner.clone(), body.clone(), refs.to_vec(), links.to_vec());
        self.detached(move |s| async move { s.save_owner_inner(&actor, &owner, &body, &refs, &links).await })
            .await
    }

    async fn save_owner_inner(
        &self,
        actor: &Actor,
        owner: &Owner,
        body: &serde_json::Value,
        refs: &[SecretRef],
        links: &[OwnerLink],
    ) -> Result<()> {
        if !refs.is_empty() {
            actor.require(Operation::Use)?;
        }
        for link in links {
            actor.require_on(owner_resource(link.kind), Operation::Write)?;
        }
        let resource = owner_resource(owner.kind);
        let exists = self.inner.backend.owner(actor.tenant_id, owner.kind, owner.id).await?.is_some();
        actor.require_on(resource, if exists { Operation::Write } else { Operation::Create })?;
        let _guard = self.inner.write.lock().await;
        self.tenant_alive(actor.tenant_id)?;
        if let Some(customer) = actor.customer_id {
            let existing = self.inner.backend.owner(actor.tenant_id, owner.kind, owner.id).await?;
            if existing.is_some_and(|o| o.owner.customer_id != Some(customer))
                || owner.customer_id != Some(customer)
            {
                return Err(StoreError::NotFound {
                    kind: owner_kind_name(owner.kind),
                    id: owner.id.to_string(),
                });
            }
        }
        let mut missing = Vec::new();
        let mut resolved = Vec::with_capacity(refs.len());
        for r in refs {
            match self.inner.index.by_name(actor.tenant_id, &r.secret_name) {
                Some(row) if actor.can_see(&row.info) => {
                    resolved.push(ResolvedRef { secret_id: row.info.id, reference: r })
                }
                _ => missing.push(r.secret_name.clone()),
            }
        }
        if !missing.is_empty() {
            missing.sort();
            missing.dedup();
            return Err(StoreError::UnknownSecrets(missing));
        }
        if self
            .inner
            .backend
            .save_owner(OwnerWrite {
                tenant: actor.tenant_id,
                visible_to: actor.customer_id,
                owner,
                body,
                refs: &resolved,
                links,
                quota: (!exists).then(|| Quota::for_owner(owner.kind, &self.inner.limits)),
            })
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::NotFound { kind: owner_kind_name(owner.kind), id: owner.id.to_string() })
        }
    }

    /// Deletes a configuration and its references in one statement.
    pub async fn delete_owner(&self, actor: &Actor, kind: OwnerType, id: Uuid) -> Result<()> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.delete_owner_inner(&actor, kind, id).await }).await
    }

    async fn delete_owner_inner(&self, actor: &Actor, kind: OwnerType, id: Uuid) -> Result<()> {
        // Visibility first: another customer's configuration does not exist for this actor.
        self.owner_visible(actor, kind, id).await?;
        actor.require_on(owner_resource(kind), Operation::Delete)?;
        let _guard = self.inner.write.lock().await;
        let users = self.inner.backend.links_to(id).await?;
        if !users.is_empty() {
            let record = self.owner_visible(actor, kind, id).await?;
            let places: Vec<String> = users
                .iter()
                .map(|(chain, node)| match node {
                    Some(node) => format!("rule chain '{chain}' (node '{node}')"),
                    None => format!("rule chain '{chain}'"),
                })
                .collect();
            return Err(StoreError::Needed {
                kind: NeededKind::Integration,
                message: format!(
                    "{} '{}' is in use by {}: change or delete those first",
                    owner_kind_name(kind),
                    record.owner.name,
                    places.join(", ")
                ),
            });
        }
        if self.inner.backend.delete_owner(actor.tenant_id, kind, id).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound { kind: owner_kind_name(kind), id: id.to_string() })
        }
    }

    /// One stored configuration of the actor's tenant, for reading.
    pub async fn owner(&self, actor: &Actor, kind: OwnerType, id: Uuid) -> Result<OwnerRecord> {
        self.owner_for(actor, kind, id, Operation::Read).await
    }

    /// One stored configuration the actor wants to act on with `op`: not found (404) when it
    /// cannot see it, forbidden (403) when it can but lacks the permission — in that order.
    pub async fn owner_for(
        &self,
        actor: &Actor,
        kind: OwnerType,
        id: Uuid,
        op: Operation,
    ) -> Result<OwnerRecord> {
        let found = self.owner_visible(actor, kind, id).await?;
        actor.require_on(owner_resource(kind), op)?;
        Ok(found)
    }

    /// A stored configuration if the actor can see it, whatever its permissions (the caller
    /// checks the one its operation needs).
    pub async fn owner_visible(&self, actor: &Actor, kind: OwnerType, id: Uuid) -> Result<OwnerRecord> {
        self.inner
            .backend
            .owner(actor.tenant_id, kind, id)
            .await?
            .filter(|o| actor.customer_id.is_none() || o.owner.customer_id == actor.customer_id)
            .ok_or_else(|| StoreError::NotFound { kind: owner_kind_name(kind), id: id.to_string() })
    }

    /// Every stored configuration of a kind in the actor's tenant (customer users: their own).
    pub async fn owners(&self, actor: &Actor, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        actor.require_on(owner_resource(kind), Operation::Read)?;
        let mut all = self.inner.backend.owners(actor.tenant_id, kind).await?;
        all.retain(|o| actor.customer_id.is_none() || o.owner.customer_id == actor.customer_id);
        Ok(all)
    }

    /// The configurations of a kind the actor can see, for a list: names, times, and of the body
    /// only `type` and `enabled` (a listing never loads every configuration whole).
    pub async fn owner_summaries(&self, actor: &Actor, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        actor.require_on(owner_resource(kind), Operation::Read)?;
        let mut all = self.inner.backend.owner_summaries(actor.tenant_id, kind).await?;
        all.retain(|o| actor.customer_id.is_none() || o.owner.customer_id == actor.customer_id);
        Ok(all)
    }

    /// Every stored configuration of a kind, across tenants: for starting them at boot. Not for
    /// serving requests (no actor, no access check).
    pub async fn all_owners(&self, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        self.inner.backend.all_owners(kind).await
    }

    /// Consistency check: references whose secret no longer exists (always 0).
    pub async fn dangling_references(&self) -> Result<i64> {
        self.inner.backend.dangling_references().await
    }

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

    /// Creates a tenant.
    pub async fn create_tenant(&self, name: &str) -> Result<TenantRecord> {
        let t = TenantRecord {
            id: TenantId::new_random(),
            name: name.to_owned(),
            created_time: now_ms(),
            destinations_required: false,
        };
        self.inner.backend.insert_tenant(&t).await?;
        Ok(t)
    }

    /// A tenant by name.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRecord>> {
        self.inner.backend.tenant_by_name(name).await
    }

    /// Creates a user (the caller hashes the password). The user name must follow the name rules
    /// and not look like another user's (see [`Store::check_new_username`]).
    pub async fn create_user(&self, user: &UserRecord) -> Result<()> {
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

/// A secret's metadata as `actor` may see it: a customer learns of no other customer.
fn shown(actor: &Actor, info: &SecretInfo) -> SecretInfo {
    let mut info = info.clone();
    if let Some(own) = actor.customer_id {
        info.shared_with.retain(|c| *c == own);
    }
    info
}

fn owner_resource(kind: OwnerType) -> crate::access::Resource {
    match kind {
        OwnerType::RuleChain => crate::access::Resource::RuleChain,
        OwnerType::Integration => crate::access::Resource::Integration,
    }
}

fn owner_kind_name(kind: OwnerType) -> &'static str {
    match kind {
        OwnerType::RuleChain => "rule chain",
        OwnerType::Integration => "integration",
    }
}

impl Store {
    /// Marks a directory write: the session cache is cleared when the returned guard drops.
    pub(crate) fn directory_write(&self) -> DirectoryWrite<'_> {
        DirectoryWrite(self)
    }

    /// What authenticating a token of user `id` needs, from memory when it is there (no database
    /// read); `None` when the user does not exist. Directory writes clear what is kept.
    pub async fn session(&self, id: UserId) -> Result<Option<Session>> {
        if let Some(session) = self.inner.sessions.get(id) {
            return Ok(Some(session));
        }
        let generation = self.inner.sessions.generation();
        let Some(user) = self.inner.backend.user_by_id(id).await? else {
            return Ok(None);
        };
        let revoked = self.inner.backend.revoked_sessions(id).await?.into();
        let session = Session {
            tokens_valid_after: user.tokens_valid_after,
            revoked,
            actor: self.actor_for(&user).await?,
        };
        self.inner.sessions.put(id, &session, generation);
        Ok(Some(session))
    }
}
