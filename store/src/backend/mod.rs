//! Persistence: a closed set of backends (SQLite, PostgreSQL), one file each with its SQL and
//! bindings, and one list of operations, [`Backend`]'s, forwarded to both from here. The writes'
//! choreographies (which statements, in which order, what a refusal means) are written once in
//! `writes.rs` over each backend's statements; rows are decoded once in `rows.rs`. What every
//! operation guarantees, whichever backend runs it:
//!
//! - **One transaction per write.** A write and everything it checks commit together or not at
//!   all: a secret with its quota counts and its audit row; a configuration with its references,
//!   links and quota count; a delete with the check that nothing references the secret (a
//!   foreign key is the last word); a value change with the replaced value moved to
//!   `secret_history` and recorded as a version (the values of the last `maxVersions` kept).
//! - **Optimistic versions.** An update names the version (and time) it was based on ([`Expected`]);
//!   a stale one changes nothing and says so (`false`), so two writers never overwrite each other.
//! - **Row locks where instances race** (PostgreSQL): a delete or an unshare locks the secret's row
//!   before counting its users, and a save holds the secrets it references `FOR KEY SHARE`, so a
//!   delete on one instance and a save on another never leave a dangling reference. SQLite has one
//!   writer process: its transactions are serial.
//! - **Unique names and routing keys** are database constraints: a race is a clear `NameTaken`.
//! - **Ordering.** Reads return rows in a stable order (secrets by name, audit entries newest
//!   first); the change feed ([`ChangeFeed`], PostgreSQL only) announces changes by key in commit
//!   order, and the reader reads the row back as committed.
//! - **Tenants being deleted** refuse writes (`NotFound`) from any instance.

mod lease;
mod postgres;
pub(crate) mod rows;
mod sqlite;
mod writes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use uuid::Uuid;

pub(crate) use self::lease::{Held, Recorded};
pub(crate) use self::postgres::PostgresBackend;
pub(crate) use self::sqlite::SqliteBackend;
pub(crate) use self::writes::Staged;
use crate::audit::{AuditEntry, AuditQuery, NewAuditEntry};
use crate::crypto::{Sealed, WrappedKey};
use crate::directory::{CustomerRecord, RoleRecord, TenantRecord, TenantSettings, UserRecord};
use crate::error::Result;
use crate::feed::FeedItem;
use crate::keys::{DataKeyInfo, KeyRotation, StoredValue, ValueTable};
use crate::model::{CustomerId, SecretId, SecretInfo, SecretVersion, TenantId, UserId};
use crate::quota::Quota;
use crate::references::{Owner, OwnerLink, OwnerType, ResolvedRef, Usages};
use crate::rotation::{PendingRow, ProbeRecord};

/// A configuration to save, with everything its transaction checks and writes.
#[derive(Clone, Copy)]
pub(crate) struct OwnerWrite<'a> {
    /// The tenant it belongs to.
    pub(crate) tenant: TenantId,
    /// The customer of the saving customer user: every referenced secret must be shared with it.
    pub(crate) visible_to: Option<CustomerId>,
    pub(crate) owner: &'a Owner,
    pub(crate) body: &'a serde_json::Value,
    pub(crate) refs: &'a [ResolvedRef<'a>],
    pub(crate) links: &'a [OwnerLink],
    /// For a new configuration: the quota it is counted against in the same transaction.
    pub(crate) quota: Option<Quota>,
}

/// Which database holds the store.
#[derive(Clone)]
pub enum Database {
    /// The embedded default: a SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database that several instances may share, as a URL
    /// (`postgres://user:password@host:5432/veil`). `Debug` and `Display` hide the password.
    Postgres(String),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&redact_url(url)).finish(),
        }
    }
}

/// Where the data is, for logs: the SQLite file's path, or the PostgreSQL URL without its
/// password.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

/// A database URL without its password (in the user info or a `password=` parameter).
fn redact_url(url: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (url, None),
    };
    let mut out = match main.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let authority = match authority.rsplit_once('@') {
                Some((user_info, host)) => match user_info.split_once(':') {
                    Some((user, _)) => format!("{user}:[REDACTED]@{host}"),
                    None => authority.to_owned(),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => main.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=[REDACTED]"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// `secrets.allowed_destinations`: a JSON array of patterns, as stored.
pub(crate) fn destinations_text(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

/// A value's certificate or key metadata as kept (JSON text; NULL when there is none).
pub(crate) fn metadata_text<T: serde::Serialize>(metadata: &Option<T>) -> Option<String> {
    metadata.as_ref().and_then(|m| serde_json::to_string(m).ok())
}

/// What an update expects the stored row to be: the version it read and, from the store, the
/// time of its last change (a list or description change keeps the version, so the version alone
/// would let another instance's stale write put the old list back).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected {
    pub(crate) version: i64,
    pub(crate) updated_time: Option<i64>,
}

impl From<i64> for Expected {
    fn from(version: i64) -> Self {
        Self { version, updated_time: None }
    }
}

/// A secret as persisted: metadata plus ciphertext.
#[derive(Clone)]
pub(crate) struct SecretRow {
    pub(crate) info: SecretInfo,
    pub(crate) sealed: Sealed,
}

/// An earlier value of a secret, kept encrypted as it was so that it stays masked: the ciphertext
/// of `version`, bound to the secret's tenant, id and that version by its associated data.
#[derive(Clone)]
pub(crate) struct EarlierValue {
    pub(crate) version: i64,
    pub(crate) sealed: Sealed,
}

/// A new version's metadata, written in the transaction that makes its value current.
pub(crate) struct NewVersion {
    pub(crate) version: i64,
    pub(crate) created_time: i64,
    pub(crate) created_by: String,
    pub(crate) fingerprint: String,
}

/// `secret_history` in memory, so the redactor's synchronous look-ups never touch the database:
/// loaded with the secrets, replaced per secret after each commit that changes it. Earlier values
/// per secret (with its tenant), newest first.
#[derive(Default)]
pub(crate) struct EarlierValues(RwLock<HashMap<SecretId, TenantEarlierValues>>);

/// A secret's tenant and its earlier values, newest first.
type TenantEarlierValues = (TenantId, Arc<[EarlierValue]>);

impl EarlierValues {
    /// Replaces everything with the rows loaded at open (values of unknown secrets are dropped).
    pub(crate) fn load(
        &self,
        rows: HashMap<SecretId, Vec<EarlierValue>>,
        tenants: &HashMap<SecretId, TenantId>,
    ) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = rows
            .into_iter()
            .filter_map(|(id, values)| tenants.get(&id).map(|t| (id, (*t, values.into()))))
            .collect();
    }

    pub(crate) fn get(&self, id: SecretId) -> Vec<EarlierValue> {
        let earlier = self.0.read().unwrap_or_else(|e| e.into_inner());
        earlier.get(&id).map(|(_, values)| values.to_vec()).unwrap_or_default()
    }

    pub(crate) fn set(&self, id: SecretId, tenant: TenantId, values: Vec<EarlierValue>) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).insert(id, (tenant, values.into()));
    }

    pub(crate) fn remove(&self, id: SecretId) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    /// Forgets the earlier values of a tenant's secrets (the rows went with the secrets).
    pub(crate) fn forget_tenant(&self, tenant: TenantId) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).retain(|_, (t, _)| *t != tenant);
    }
}

/// What stands in the way of deleting a customer.
pub(crate) struct CustomerUse {
    pub(crate) users: i64,
    pub(crate) configurations: i64,
}

/// A stored configuration that may own references.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerRecord {
    /// Who it is.
    pub owner: Owner,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The configuration document, with placeholders (never plaintext).
    pub body: serde_json::Value,
    /// Milliseconds since the epoch.
    pub created_time: i64,
    /// Milliseconds since the epoch.
    pub updated_time: i64,
}

/// Result of deleting a secret inside one transaction.
pub(crate) enum DeleteOutcome {
    Deleted,
    InUse(Usages),
}

/// A failed write of a configuration: the unique index on integrations' routing keys refusing it
/// is [`StoreError::RoutingKeyTaken`]; anything else a database error.
pub(crate) fn owner_write_error(e: sqlx::Error, body: &serde_json::Value) -> crate::error::StoreError {
    const INDEX: &str = "owners_routing_key";
    match &e {
        sqlx::Error::Database(d)
            if d.kind() == sqlx::error::ErrorKind::UniqueViolation
                && (d.constraint() == Some(INDEX) || d.message().contains(INDEX)) =>
        {
            let key = body.get("routingKey").and_then(serde_json::Value::as_str).unwrap_or_default();
            crate::error::StoreError::RoutingKeyTaken(key.to_owned())
        }
        _ => e.into(),
    }
}

/// The persistence backends.
pub(crate) enum Backend {
    Sqlite(SqliteBackend),
    Postgres(PostgresBackend),
}

/// A backend's change feed: other instances' committed changes, announced by key, and the rows
/// they name read back as committed. A capability only a shared backend has.
pub(crate) struct ChangeFeed<'a>(&'a PostgresBackend);

impl ChangeFeed<'_> {
    /// Starts listening: every change committed from now on is sent, in commit order per key.
    pub(crate) async fn listen(&self) -> Result<tokio::sync::mpsc::UnboundedReceiver<FeedItem>> {
        self.0.listen().await
    }

    /// Whether it listens now (false while a lost connection is made again).
    pub(crate) fn listening(&self) -> bool {
        self.0.feed_up()
    }

    /// One secret as committed now (`None`: deleted).
    pub(crate) async fn reload_secret(&self, id: SecretId) -> Result<Option<SecretRow>> {
        self.0.reload_secret(id).await
    }
}

macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Backend::Sqlite(b) => b.$method($($arg),*).await,
            Backend::Postgres(b) => b.$method($($arg),*).await,
        }
    };
}

impl Backend {
    pub(crate) async fn connect(db: &Database) -> Result<Self> {
        match db {
            Database::Sqlite(path) => Ok(Self::Sqlite(SqliteBackend::connect(path).await?)),
            Database::Postgres(url) => Ok(Self::Postgres(PostgresBackend::connect(url).await?)),
        }
    }

    /// Open and idle connections (SQLite: its one connection, idle when not in use).
    pub(crate) fn pool_use(&self) -> (u32, usize) {
        match self {
            Self::Sqlite(b) => (1, usize::from(b.idle())),
            Self::Postgres(b) => b.pool_use(),
        }
    }

    pub(crate) fn queries(&self) -> u64 {
        match self {
            Self::Sqlite(b) => b.queries(),
            Self::Postgres(b) => b.queries(),
        }
    }

    pub(crate) fn sqlite_file(&self) -> Option<&std::path::Path> {
        match self {
            Self::Sqlite(b) => Some(b.path()),
            Self::Postgres(_) => None,
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub(crate) async fn close(&self) {
        dispatch!(self.close())
    }

    /// The change feed, on a backend several instances share (PostgreSQL); `None` for SQLite,
    /// whose one process applies its own writes as it makes them.
    pub(crate) fn change_feed(&self) -> Option<ChangeFeed<'_>> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(b) => Some(ChangeFeed(b)),
        }
    }
    pub(crate) async fn migrate(&self) -> Result<()> {
        dispatch!(self.migrate())
    }
    /// Takes the lease on `work` of `owner` and reads what its last holder recorded.
    pub(crate) async fn begin_lease(&self, owner: Uuid, work: &str) -> Result<(Held, Option<Recorded>)> {
        dispatch!(self.begin_lease(owner, work))
    }
    /// Records the outcome under the lease, then releases it.
    pub(crate) async fn record_lease(&self, held: Held, owner: Uuid, work: &str, r: &Recorded) -> Result<()> {
        dispatch!(self.record_lease(held, owner, work, r))
    }
    pub(crate) async fn load_data_keys(&self) -> Result<Vec<WrappedKey>> {
        dispatch!(self.load_data_keys())
    }
    pub(crate) async fn insert_data_key(&self, key: &WrappedKey) -> Result<()> {
        dispatch!(self.insert_data_key(key))
    }
    /// Replaces the wrapped form of every data key, in one transaction.
    pub(crate) async fn rewrap_data_keys(&self, keys: &[WrappedKey]) -> Result<()> {
        dispatch!(self.rewrap_data_keys(keys))
    }
    pub(crate) async fn system_secret(&self, name: &str) -> Result<Option<Sealed>> {
        dispatch!(self.system_secret(name))
    }
    pub(crate) async fn insert_system_secret(&self, name: &str, sealed: &Sealed) -> Result<()> {
        dispatch!(self.insert_system_secret(name, sealed))
    }
    pub(crate) async fn load_secrets(&self) -> Result<Vec<SecretRow>> {
        dispatch!(self.load_secrets())
    }
    /// Inserts a secret, checked against `quotas` and recorded by `audit`, in one transaction.
    pub(crate) async fn insert_secret(
        &self,
        row: &SecretRow,
        version: &NewVersion,
        quotas: &[Quota],
        audit: &[NewAuditEntry],
    ) -> Result<()> {
        dispatch!(self.insert_secret(row, version, quotas, audit))
    }
    /// Changes a secret; a new value (`version`) is checked against `quota` (bytes), and the
    /// change recorded by `audit`, in the same transaction.
    pub(crate) async fn update_secret(
        &self,
        row: &SecretRow,
        version: Option<&NewVersion>,
        expected: impl Into<Expected>,
        quota: Option<Quota>,
        audit: &[NewAuditEntry],
    ) -> Result<bool> {
        let expected = expected.into();
        dispatch!(self.update_secret(row, version, expected, quota, audit))
    }
    /// Stages a pending value for a secret still at `expected`, within the bytes `quota`.
    pub(crate) async fn stage_pending(
        &self,
        id: SecretId,
        tenant: TenantId,
        row: &PendingRow,
        expected: impl Into<Expected>,
        quota: Quota,
        audit: &[NewAuditEntry],
    ) -> Result<Staged> {
        let expected = expected.into();
        dispatch!(self.stage_pending(id, tenant, row, expected, quota, audit))
    }
    /// Drops a secret's pending value (and its probe results); false when there was none.
    pub(crate) async fn drop_pending(&self, id: SecretId, audit: &[NewAuditEntry]) -> Result<bool> {
        dispatch!(self.drop_pending(id, audit))
    }
    /// A secret's pending value, as committed now.
    pub(crate) async fn pending(&self, id: SecretId) -> Result<Option<PendingRow>> {
        dispatch!(self.pending(id))
    }
    /// Records probe results for the pending `version` (ignored once it is gone).
    pub(crate) async fn record_probes(
        &self,
        id: SecretId,
        version: i64,
        probes: &[ProbeRecord],
    ) -> Result<()> {
        dispatch!(self.record_probes(id, version, probes))
    }
    /// The probe results recorded for the pending `version`.
    pub(crate) async fn probes(&self, id: SecretId, version: i64) -> Result<Vec<ProbeRecord>> {
        dispatch!(self.probes(id, version))
    }
    /// Adds `key` and a rotation to it, unless a rotation is running (`None`).
    pub(crate) async fn start_key_rotation(
        &self,
        key: &WrappedKey,
        started_by: &str,
        audit: &[NewAuditEntry],
    ) -> Result<Option<KeyRotation>> {
        dispatch!(self.start_key_rotation(key, started_by, audit))
    }
    /// The latest key rotation.
    pub(crate) async fn key_rotation(&self) -> Result<Option<KeyRotation>> {
        dispatch!(self.key_rotation())
    }
    /// Every data key with how many values it seals.
    pub(crate) async fn data_keys_info(&self) -> Result<Vec<DataKeyInfo>> {
        dispatch!(self.data_keys_info())
    }
    /// Stored values of `table` (only those not sealed with `not_under`, when given).
    pub(crate) async fn stored_values(
        &self,
        table: ValueTable,
        not_under: Option<i64>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<StoredValue>> {
        dispatch!(self.stored_values(table, not_under, offset, limit))
    }
    /// Writes values sealed again, counted as done for `rotation`.
    pub(crate) async fn reseal_values(
        &self,
        rotation: i64,
        changes: &[(StoredValue, Sealed)],
    ) -> Result<u64> {
        dispatch!(self.reseal_values(rotation, changes))
    }
    /// Retires the older keys and ends `rotation`; false while a value still uses another key.
    pub(crate) async fn finish_key_rotation(&self, rotation: i64, audit: &[NewAuditEntry]) -> Result<bool> {
        dispatch!(self.finish_key_rotation(rotation, audit))
    }
    /// A page of a secret's versions, newest first, and how many there are.
    pub(crate) async fn versions(
        &self,
        id: SecretId,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<SecretVersion>, i64)> {
        dispatch!(self.versions(id, limit, offset))
    }
    /// Records `(secret, configuration, minute)` uses: each pair keeps its latest.
    pub(crate) async fn record_uses(&self, uses: &[(SecretId, Uuid, i64)]) -> Result<()> {
        dispatch!(self.record_uses(uses))
    }
    /// When each configuration last used each secret of `tenant` (or only `secrets`).
    pub(crate) async fn last_used(
        &self,
        tenant: TenantId,
        secrets: Option<&[SecretId]>,
    ) -> Result<Vec<(SecretId, Uuid, i64)>> {
        dispatch!(self.last_used(tenant, secrets))
    }
    /// The versions written before fingerprints were recorded that still have a value: `(secret,
    /// version)`, for [`Backend::set_fingerprint`].
    pub(crate) async fn versions_without_fingerprint(&self) -> Result<Vec<(SecretId, i64)>> {
        dispatch!(self.versions_without_fingerprint())
    }
    pub(crate) async fn set_fingerprint(&self, id: SecretId, version: i64, fingerprint: &str) -> Result<()> {
        dispatch!(self.set_fingerprint(id, version, fingerprint))
    }
    /// The earlier values kept for a secret, newest first (from memory: loaded at open and kept
    /// in step with this process's commits).
    pub(crate) fn earlier_values(&self, id: SecretId) -> Vec<EarlierValue> {
        match self {
            Backend::Sqlite(b) => b.earlier_values(id),
            Backend::Postgres(b) => b.earlier_values(id),
        }
    }
    /// Deletes a secret unless it is in use; a delete is recorded by `audit` in its transaction.
    pub(crate) async fn delete_secret(&self, id: SecretId, audit: &[NewAuditEntry]) -> Result<DeleteOutcome> {
        dispatch!(self.delete_secret(id, audit))
    }
    pub(crate) async fn usages(&self, id: SecretId, customer: Option<CustomerId>) -> Result<Usages> {
        dispatch!(self.usages(id, customer))
    }
    /// Saves a configuration with its references and links, in one transaction.
    pub(crate) async fn save_owner(&self, write: OwnerWrite<'_>) -> Result<bool> {
        dispatch!(self.save_owner(write))
    }
    pub(crate) async fn links_to(&self, id: Uuid) -> Result<Vec<(String, Option<String>)>> {
        dispatch!(self.links_to(id))
    }
    pub(crate) async fn delete_owner(&self, tenant: TenantId, kind: OwnerType, id: Uuid) -> Result<bool> {
        dispatch!(self.delete_owner(tenant, kind, id))
    }
    pub(crate) async fn owner(
        &self,
        tenant: TenantId,
        kind: OwnerType,
        id: Uuid,
    ) -> Result<Option<OwnerRecord>> {
        dispatch!(self.owner(tenant, kind, id))
    }
    pub(crate) async fn owners(&self, tenant: TenantId, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        dispatch!(self.owners(tenant, kind))
    }
    /// A tenant's configurations of `kind` without their bodies: each body holds only `type` and
    /// `enabled` (what a list shows), so a listing never loads every configuration.
    pub(crate) async fn owner_summaries(
        &self,
        tenant: TenantId,
        kind: OwnerType,
    ) -> Result<Vec<OwnerRecord>> {
        dispatch!(self.owner_summaries(tenant, kind))
    }
    pub(crate) async fn all_owners(&self, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        dispatch!(self.all_owners(kind))
    }
    pub(crate) async fn dangling_references(&self) -> Result<i64> {
        dispatch!(self.dangling_references())
    }
    pub(crate) async fn insert_tenant(&self, t: &TenantRecord) -> Result<()> {
        dispatch!(self.insert_tenant(t))
    }
    pub(crate) async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRecord>> {
        dispatch!(self.tenant_by_name(name))
    }
    /// Ends one session of `user` (its tokens carry `sid`) until `expires` (ms); expired ones go.
    /// True when the user then has more than `max` ended sessions kept: they were all forgotten
    /// (the caller ends every session instead).
    pub(crate) async fn revoke_session(
        &self,
        user: UserId,
        sid: &str,
        expires: i64,
        max: usize,
    ) -> Result<bool> {
        dispatch!(self.revoke_session(user, sid, expires, max))
    }
    /// The ended sessions of `user` that have not expired.
    pub(crate) async fn revoked_sessions(&self, user: UserId) -> Result<Vec<String>> {
        dispatch!(self.revoked_sessions(user))
    }
    /// Inserts a user, counted against `quota` (none for a tenant's first administrator).
    pub(crate) async fn insert_user(&self, u: &UserRecord, quota: Option<Quota>) -> Result<()> {
        dispatch!(self.insert_user(u, quota))
    }
    pub(crate) async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        dispatch!(self.user_by_name(username))
    }
    pub(crate) async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        dispatch!(self.user_by_id(id))
    }
    pub(crate) async fn count_users(&self) -> Result<i64> {
        dispatch!(self.count_users())
    }
    pub(crate) async fn tenant_by_id(&self, id: TenantId) -> Result<Option<TenantRecord>> {
        dispatch!(self.tenant_by_id(id))
    }
    pub(crate) async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        dispatch!(self.tenants())
    }
    pub(crate) async fn set_tenant_settings(&self, id: TenantId, settings: &TenantSettings) -> Result<()> {
        dispatch!(self.set_tenant_settings(id, settings))
    }
    pub(crate) async fn delete_tenant(&self, id: TenantId) -> Result<bool> {
        dispatch!(self.delete_tenant(id))
    }
    pub(crate) async fn insert_customer(&self, c: &CustomerRecord, quota: Quota) -> Result<()> {
        dispatch!(self.insert_customer(c, quota))
    }
    pub(crate) async fn customers(&self, tenant: TenantId) -> Result<Vec<CustomerRecord>> {
        dispatch!(self.customers(tenant))
    }
    pub(crate) async fn customer(&self, tenant: TenantId, id: CustomerId) -> Result<Option<CustomerRecord>> {
        dispatch!(self.customer(tenant, id))
    }
    pub(crate) async fn delete_customer(
        &self,
        tenant: TenantId,
        id: CustomerId,
    ) -> Result<Option<CustomerUse>> {
        dispatch!(self.delete_customer(tenant, id))
    }
    pub(crate) async fn users(&self, tenant: TenantId) -> Result<Vec<UserRecord>> {
        dispatch!(self.users(tenant))
    }
    pub(crate) async fn usernames(&self) -> Result<Vec<(TenantId, String)>> {
        dispatch!(self.usernames())
    }
    pub(crate) async fn update_user(&self, u: &UserRecord) -> Result<()> {
        dispatch!(self.update_user(u))
    }
    pub(crate) async fn delete_user(&self, tenant: TenantId, id: UserId) -> Result<bool> {
        dispatch!(self.delete_user(tenant, id))
    }
    pub(crate) async fn insert_role(&self, r: &RoleRecord, quota: Quota) -> Result<()> {
        dispatch!(self.insert_role(r, quota))
    }
    pub(crate) async fn roles(&self, tenant: TenantId) -> Result<Vec<RoleRecord>> {
        dispatch!(self.roles(tenant))
    }
    pub(crate) async fn delete_role(&self, tenant: TenantId, id: Uuid) -> Result<bool> {
        dispatch!(self.delete_role(tenant, id))
    }
    /// Shares a secret with a customer, recorded by `audit` in the same transaction.
    pub(crate) async fn insert_share(
        &self,
        secret: SecretId,
        customer: CustomerId,
        audit: &[NewAuditEntry],
    ) -> Result<()> {
        dispatch!(self.insert_share(secret, customer, audit))
    }
    /// Stops sharing unless the customer uses the secret; recorded by `audit` in its transaction.
    pub(crate) async fn delete_share(
        &self,
        secret: SecretId,
        customer: CustomerId,
        audit: &[NewAuditEntry],
    ) -> Result<Option<Usages>> {
        dispatch!(self.delete_share(secret, customer, audit))
    }
    /// Deletes audit entries older than `before` (ms since the epoch); how many went.
    pub(crate) async fn delete_audit_before(&self, before: i64) -> Result<u64> {
        dispatch!(self.delete_audit_before(before))
    }
    pub(crate) async fn insert_audit(&self, entries: &[NewAuditEntry]) -> Result<()> {
        dispatch!(self.insert_audit(entries))
    }
    pub(crate) async fn audit_logs(
        &self,
        tenant: TenantId,
        q: &AuditQuery,
    ) -> Result<(Vec<AuditEntry>, i64)> {
        dispatch!(self.audit_logs(tenant, q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_shown_without_its_password() {
        let shown = |url: &str| {
            let db = Database::Postgres(url.into());
            (db.to_string(), format!("{db:?}"))
        };
        let (display, debug) = shown("postgres://veil:s3cret@db.example:5432/veil?sslmode=require");
        assert_eq!(display, "postgres://veil:[REDACTED]@db.example:5432/veil?sslmode=require");
        assert_eq!(debug, format!("Postgres({display:?})"));
        let (display, _) = shown("postgresql://veil@db/veil?user=x&password=s3cret");
        assert_eq!(display, "postgresql://veil@db/veil?user=x&password=[REDACTED]");
        assert_eq!(shown("postgres://p%40ss:w@rd@host/db").0, "postgres://p%40ss:[REDACTED]@host/db");
        assert_eq!(Database::Sqlite("/data/veil.db".into()).to_string(), "/data/veil.db");
    }
}
