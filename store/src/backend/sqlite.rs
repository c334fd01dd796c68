//! The embedded default: one SQLite file in WAL mode with `synchronous=FULL`, so every acknowledged
//! write survives `kill -9` and power loss. One connection behind a mutex: SQLite has one writer
//! anyway, reads on the hot path come from the in-memory index, and closing it is deterministic
//! (a pool returns connections from background tasks, which can race a close at exit and leave a
//! `-wal` file behind after a refused start).

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::metrics::Timed;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteRow, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, Sqlite, Transaction};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use uuid::Uuid;

mod directory;
mod keys;
mod writes;

use super::rows::{
    Columns, SECRET_COLUMNS, VERSIONS_SQL, decode_err, owner_from, sealed_from, secret_info_from,
    tenant_from, usage_from, user_from, version_from,
};
use super::{EarlierValue, EarlierValues, Held, OwnerRecord, Recorded, SecretRow};
use crate::crypto::{Sealed, WrappedKey};
use crate::directory::{TenantRecord, UserRecord};
use crate::error::{Result, StoreError};

use crate::model::{CustomerId, SecretId, SecretVersion, TenantId, UserId, now_ms};
use crate::quota::Quota;
use crate::references::{OwnerType, Usages};

/// The in-process lock of one leased piece of work.
type LeaseLock = std::sync::Arc<Mutex<()>>;

pub(crate) struct SqliteBackend {
    /// The database file.
    path: std::path::PathBuf,
    /// `None` once closed.
    conn: Mutex<Option<SqliteConnection>>,
    /// `secret_history` in memory (see [`EarlierValues`]).
    earlier: EarlierValues,
    /// Statements sent so far (each takes the connection once).
    queries: std::sync::atomic::AtomicU64,
    /// One lock per leased piece of work (one process: a lease is an in-process lock).
    leases: std::sync::Mutex<std::collections::HashMap<(Uuid, String), LeaseLock>>,
}

fn migrator() -> Migrator {
    Migrator {
        migrations: Cow::Owned(vec![
            Migration::new(
                1,
                Cow::Borrowed("init"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0001_init.sql")),
                false,
            ),
            Migration::new(
                2,
                Cow::Borrowed("directory audit"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0002_directory_audit.sql")),
                false,
            ),
            Migration::new(
                3,
                Cow::Borrowed("token revocation"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0003_token_revocation.sql")),
                false,
            ),
            Migration::new(
                4,
                Cow::Borrowed("secret history"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0004_secret_history.sql")),
                false,
            ),
            Migration::new(
                5,
                Cow::Borrowed("owner links"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0005_owner_links.sql")),
                false,
            ),
            Migration::new(
                6,
                Cow::Borrowed("routing keys"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0006_routing_keys.sql")),
                false,
            ),
            Migration::new(
                7,
                Cow::Borrowed("cluster work"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0007_cluster_work.sql")),
                false,
            ),
            Migration::new(
                8,
                Cow::Borrowed("allowed destinations"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0008_allowed_destinations.sql")),
                false,
            ),
            Migration::new(
                9,
                Cow::Borrowed("destinations required"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0009_destinations_required.sql")),
                false,
            ),
            Migration::new(
                10,
                Cow::Borrowed("revoked sessions"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0010_revoked_sessions.sql")),
                false,
            ),
            Migration::new(
                11,
                Cow::Borrowed("secret versions"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0011_secret_versions.sql")),
                false,
            ),
            Migration::new(
                12,
                Cow::Borrowed("tenant settings"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0012_tenant_settings.sql")),
                false,
            ),
            Migration::new(
                13,
                Cow::Borrowed("secret uses"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0013_secret_uses.sql")),
                false,
            ),
            Migration::new(
                14,
                Cow::Borrowed("secret expiry"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0014_secret_expiry.sql")),
                false,
            ),
            Migration::new(
                15,
                Cow::Borrowed("expiry notices"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0015_expiry_notices.sql")),
                false,
            ),
            Migration::new(
                16,
                Cow::Borrowed("pending values"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0016_pending_values.sql")),
                false,
            ),
            Migration::new(
                17,
                Cow::Borrowed("key rotation"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0017_key_rotation.sql")),
                false,
            ),
            Migration::new(
                18,
                Cow::Borrowed("linked secrets"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0018_linked_secrets.sql")),
                false,
            ),
            Migration::new(
                19,
                Cow::Borrowed("tenant usage"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0019_tenant_usage.sql")),
                false,
            ),
            Migration::new(
                20,
                Cow::Borrowed("audit uses index"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0020_audit_uses_index.sql")),
                false,
            ),
            Migration::new(
                21,
                Cow::Borrowed("owners by tenant"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0021_owners_by_tenant.sql")),
                false,
            ),
        ]),
        ..Migrator::DEFAULT
    }
}

/// An id kept as text.
fn parse_id<T: FromStr>(row: &SqliteRow, col: &str) -> Result<T> {
    let text: String = row.try_get(col)?;
    text.parse().map_err(|_| decode_err(&format!("column {col}: bad id '{text}'")))
}

fn parse_opt_id<T: FromStr>(row: &SqliteRow, col: &str) -> Result<Option<T>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| t.parse().map_err(|_| decode_err(&format!("column {col}: bad id '{t}'")))).transpose()
}

/// SQLite keeps ids as text.
impl Columns for SqliteRow {
    fn uuid(&self, col: &str) -> Result<Uuid> {
        parse_id(self, col)
    }
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>> {
        parse_opt_id(self, col)
    }
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn bytes(&self, col: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(col)?)
    }
}

/// The configurations that use a secret; with `customer`, only that customer's.
async fn usages_in(
    tx: &mut Transaction<'_, Sqlite>,
    id: SecretId,
    customer: Option<CustomerId>,
) -> Result<Usages> {
    let customer = customer.map(|c| c.to_string());
    let rows = sqlx::query(
        "SELECT o.type, o.id, o.name, r.node_id, r.node_name, r.pointer \
         FROM secret_refs r JOIN owners o ON o.id = r.owner_id \
         WHERE r.secret_id = ? AND (? IS NULL OR o.customer_id = ?) ORDER BY o.type, o.name, o.id, r.pointer",
    )
    .bind(id.to_string())
    .bind(&customer)
    .bind(&customer)
    .fetch_all(&mut **tx)
    .await?;
    let grouped = rows.iter().map(usage_from).collect::<Result<Vec<_>>>()?;
    Ok(Usages::group(grouped))
}

/// Creates the database file with mode 0600 before SQLite opens it, and tightens an existing
/// database and its `-wal`/`-shm` files to 0600: SQLite gives the WAL and SHM files it creates
/// the database file's mode, and the database holds password hashes, names and the audit log.
#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let io = |context: String| move |source| StoreError::Io { context, source };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("cannot open the database file {}", path.display())))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io(format!("cannot make {} private (mode 0600)", path.display())))?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = std::path::PathBuf::from(side);
        match std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::Io {
                    context: format!("cannot make {} private (mode 0600)", side.display()),
                    source: e,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) -> Result<()> {
    Ok(())
}

impl SqliteBackend {
    pub(crate) async fn connect(path: &Path) -> Result<Self> {
        restrict_to_owner(path)?;
        let conn = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .connect()
            .await?;
        Ok(Self {
            path: path.to_owned(),
            conn: Mutex::new(Some(conn)),
            earlier: Default::default(),
            queries: Default::default(),
            leases: Default::default(),
        })
    }

    /// Brings the schema up to date. Runs after the master key was checked against the keyring,
    /// so a refused start never changes the schema.
    pub(crate) async fn migrate(&self) -> Result<()> {
        migrator().run(&mut *self.conn().await?).await?;
        Ok(())
    }

    /// Whether the connection is free now.
    pub(crate) fn idle(&self) -> bool {
        self.conn.try_lock().is_ok()
    }

    /// The connection, counting one use of the database and timing it (waiting for the
    /// connection included) until the returned guard is dropped.
    async fn conn(&self) -> Result<Timed<MappedMutexGuard<'_, SqliteConnection>>> {
        self.queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = std::time::Instant::now();
        MutexGuard::try_map(self.conn.lock().await, Option::as_mut)
            .map(|conn| Timed::since(conn, "sqlite", started))
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))
    }

    /// Takes the in-process lock of `work` of `owner`, then reads what was recorded for it.
    pub(crate) async fn begin_lease(&self, owner: Uuid, work: &str) -> Result<(Held, Option<Recorded>)> {
        let lock = {
            let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
            // Locks nobody holds or waits for go, so the map stays as small as the work in flight.
            leases.retain(|_, lock| std::sync::Arc::strong_count(lock) > 1);
            std::sync::Arc::clone(leases.entry((owner, work.to_owned())).or_default())
        };
        let guard = lock.lock_owned().await;
        let row = sqlx::query(
            "SELECT fingerprint, failure, done_time FROM cluster_work WHERE owner_id = ? AND work = ?",
        )
        .bind(owner.to_string())
        .bind(work)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        let found = row.as_ref().map(Recorded::from_row).transpose()?;
        Ok((Held::Local(guard), found))
    }

    /// Records the outcome of leased work; the lease goes when `held` drops.
    pub(crate) async fn record_lease(&self, held: Held, owner: Uuid, work: &str, r: &Recorded) -> Result<()> {
        sqlx::query(
            "INSERT INTO cluster_work (owner_id, work, fingerprint, failure, done_time) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (owner_id, work) DO UPDATE SET fingerprint = excluded.fingerprint, \
             failure = excluded.failure, done_time = excluded.done_time",
        )
        .bind(owner.to_string())
        .bind(work)
        .bind(&r.fingerprint)
        .bind(&r.failure)
        .bind(r.done_time)
        .execute(&mut *self.conn().await?)
        .await?;
        drop(held);
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// How many times the database was used so far.
    pub(crate) fn queries(&self) -> u64 {
        self.queries.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take()
            && let Err(e) = conn.close().await
        {
            tracing::warn!(error = %e, "closing the database");
        }
    }

    pub(crate) async fn load_data_keys(&self) -> Result<Vec<WrappedKey>> {
        let schema: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'data_keys'",
        )
        .fetch_one(&mut *self.conn().await?)
        .await?;
        if schema == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query("SELECT id, wrapped FROM data_keys ORDER BY id")
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(|r| Ok(WrappedKey { id: r.try_get("id")?, wrapped: r.try_get("wrapped")? })).collect()
    }

    pub(crate) async fn insert_data_key(&self, key: &WrappedKey) -> Result<()> {
        sqlx::query("INSERT INTO data_keys (id, wrapped, created_time) VALUES (?, ?, ?)")
            .bind(key.id)
            .bind(&key.wrapped)
            .bind(now_ms())
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    pub(crate) async fn system_secret(&self, name: &str) -> Result<Option<Sealed>> {
        let row = sqlx::query("SELECT key_id, nonce, ciphertext FROM system_secrets WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(sealed_from).transpose()
    }

    pub(crate) async fn insert_system_secret(&self, name: &str, sealed: &Sealed) -> Result<()> {
        sqlx::query(
            "INSERT INTO system_secrets (name, key_id, nonce, ciphertext) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(sealed.key_id)
        .bind(sealed.nonce.as_slice())
        .bind(&sealed.ciphertext)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    pub(crate) async fn load_secrets(&self) -> Result<Vec<SecretRow>> {
        use futures_util::TryStreamExt as _;
        let shares = sqlx::query("SELECT secret_id, customer_id FROM secret_shares ORDER BY customer_id")
            .fetch_all(&mut *self.conn().await?)
            .await?;
        let mut shared: std::collections::HashMap<SecretId, Vec<_>> = Default::default();
        for s in &shares {
            shared.entry(parse_id(s, "secret_id")?).or_default().push(parse_id(s, "customer_id")?);
        }
        // Row by row as they are read: a large store is never held twice (as rows, then as
        // secrets), which kept start-up slower and its memory higher after it.
        let mut out = Vec::new();
        {
            let mut conn = self.conn().await?;
            let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets");
            let mut rows = sqlx::query(&sql).fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                let id: SecretId = parse_id(&row, "id")?;
                out.push(SecretRow {
                    info: secret_info_from(&row, shared.remove(&id).unwrap_or_default())?,
                    sealed: sealed_from(&row)?,
                });
            }
        }
        let tenants: std::collections::HashMap<SecretId, TenantId> =
            out.iter().map(|r| (r.info.id, r.info.tenant_id)).collect();
        let mut earlier: std::collections::HashMap<SecretId, Vec<EarlierValue>> = Default::default();
        {
            let mut conn = self.conn().await?;
            let mut history = sqlx::query(
                "SELECT secret_id, version, key_id, nonce, ciphertext FROM secret_history \
                 ORDER BY secret_id, version DESC",
            )
            .fetch(&mut *conn);
            while let Some(row) = history.try_next().await? {
                earlier
                    .entry(parse_id(&row, "secret_id")?)
                    .or_default()
                    .push(EarlierValue { version: row.try_get("version")?, sealed: sealed_from(&row)? });
            }
        }
        self.earlier.load(earlier, &tenants);
        Ok(out)
    }

    pub(crate) fn earlier_values(&self, id: SecretId) -> Vec<EarlierValue> {
        self.earlier.get(id)
    }

    pub(crate) async fn versions(
        &self,
        id: SecretId,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<SecretVersion>, i64)> {
        let mut conn = self.conn().await?;
        let rows = sqlx::query(VERSIONS_SQL)
            .bind(id.to_string())
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM secret_versions WHERE secret_id = ?")
            .bind(id.to_string())
            .fetch_one(&mut *conn)
            .await?;
        Ok((rows.iter().map(version_from).collect::<Result<_>>()?, total))
    }

    pub(crate) async fn record_uses(&self, uses: &[(SecretId, Uuid, i64)]) -> Result<()> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        for (secret, owner, time) in uses {
            sqlx::query(
                "INSERT INTO secret_uses (secret_id, owner_id, last_used_time) \
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM secrets WHERE id = ?1) \
                 ON CONFLICT (secret_id, owner_id) DO UPDATE SET \
                 last_used_time = MAX(last_used_time, excluded.last_used_time)",
            )
            .bind(secret.to_string())
            .bind(owner.to_string())
            .bind(time)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn last_used(
        &self,
        tenant: TenantId,
        secrets: Option<&[SecretId]>,
    ) -> Result<Vec<(SecretId, Uuid, i64)>> {
        // CROSS JOIN: SQLite reads the uses (of the secrets asked for, by its index) and looks
        // each secret up, instead of walking every secret of the tenant for its uses (most
        // secrets of a large tenant have none): the cost follows the uses, not the secrets.
        let sql = match secrets {
            Some([]) => return Ok(Vec::new()),
            Some(ids) => format!(
                "SELECT u.secret_id, u.owner_id, u.last_used_time FROM secret_uses u \
                 CROSS JOIN secrets s ON s.id = u.secret_id WHERE s.tenant_id = ? AND u.secret_id IN ({})",
                vec!["?"; ids.len()].join(", ")
            ),
            None => "SELECT u.secret_id, u.owner_id, u.last_used_time FROM secret_uses u \
                 CROSS JOIN secrets s ON s.id = u.secret_id WHERE s.tenant_id = ?"
                .to_owned(),
        };
        let mut query = sqlx::query(&sql).bind(tenant.to_string());
        for id in secrets.unwrap_or_default() {
            query = query.bind(id.to_string());
        }
        let rows = query.fetch_all(&mut *self.conn().await?).await?;
        rows.iter()
            .map(|r| Ok((parse_id(r, "secret_id")?, parse_id(r, "owner_id")?, r.try_get("last_used_time")?)))
            .collect()
    }

    pub(crate) async fn rewrap_data_keys(&self, keys: &[WrappedKey]) -> Result<()> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        for key in keys {
            let done = sqlx::query("UPDATE data_keys SET wrapped = ? WHERE id = ?")
                .bind(&key.wrapped)
                .bind(key.id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Internal(format!("data key {} changed during the rekey", key.id)));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn versions_without_fingerprint(&self) -> Result<Vec<(SecretId, i64)>> {
        let rows = sqlx::query("SELECT secret_id, version FROM secret_versions WHERE fingerprint IS NULL")
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(|r| Ok((parse_id(r, "secret_id")?, r.try_get("version")?))).collect()
    }

    pub(crate) async fn set_fingerprint(&self, id: SecretId, version: i64, fingerprint: &str) -> Result<()> {
        sqlx::query("UPDATE secret_versions SET fingerprint = ? WHERE secret_id = ? AND version = ?")
            .bind(fingerprint)
            .bind(id.to_string())
            .bind(version)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    /// Forgets the earlier values of a tenant's secrets (the rows went with the secrets).
    pub(crate) fn forget_earlier_values_of(&self, tenant: TenantId) {
        self.earlier.forget_tenant(tenant);
    }

    pub(crate) async fn usages(&self, id: SecretId, customer: Option<CustomerId>) -> Result<Usages> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        usages_in(&mut tx, id, customer).await
    }

    /// The configurations whose nodes use `id`: (owner name, node name).
    pub(crate) async fn links_to(&self, id: Uuid) -> Result<Vec<(String, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT o.name AS owner_name, l.node_name AS node_name FROM owner_links l \
             JOIN owners o ON o.id = l.owner_id WHERE l.target_id = ? ORDER BY o.name, l.node_name",
        )
        .bind(id.to_string())
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("owner_name")?, r.try_get("node_name")?))).collect()
    }

    pub(crate) async fn delete_owner(&self, tenant: TenantId, kind: OwnerType, id: Uuid) -> Result<bool> {
        // References go with the owner (ON DELETE CASCADE), in the same statement; an owner
        // another one links to stays (RESTRICT).
        let done = sqlx::query("DELETE FROM owners WHERE id = ? AND tenant_id = ? AND type = ?")
            .bind(id.to_string())
            .bind(tenant.to_string())
            .bind(kind.as_str())
            .execute(&mut *self.conn().await?)
            .await
            .map(|done| done.rows_affected());
        super::writes::owner_deleted(done, kind, id)
    }

    pub(crate) async fn owner(
        &self,
        tenant: TenantId,
        kind: OwnerType,
        id: Uuid,
    ) -> Result<Option<OwnerRecord>> {
        let row = sqlx::query("SELECT * FROM owners WHERE id = ? AND tenant_id = ? AND type = ?")
            .bind(id.to_string())
            .bind(tenant.to_string())
            .bind(kind.as_str())
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(owner_from).transpose()
    }

    pub(crate) async fn owners(&self, tenant: TenantId, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        let rows = sqlx::query("SELECT * FROM owners WHERE tenant_id = ? AND type = ? ORDER BY name, id")
            .bind(tenant.to_string())
            .bind(kind.as_str())
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(owner_from).collect()
    }

    pub(crate) async fn owner_summaries(
        &self,
        tenant: TenantId,
        kind: OwnerType,
    ) -> Result<Vec<OwnerRecord>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, type, name, customer_id, created_time, updated_time, \
             json_object('type', body -> '$.type', 'enabled', body -> '$.enabled') AS body \
             FROM owners WHERE tenant_id = ? AND type = ? ORDER BY name, id",
        )
        .bind(tenant.to_string())
        .bind(kind.as_str())
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(owner_from).collect()
    }

    pub(crate) async fn all_owners(&self, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        let rows = sqlx::query("SELECT * FROM owners WHERE type = ? ORDER BY tenant_id, name, id")
            .bind(kind.as_str())
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(owner_from).collect()
    }

    pub(crate) async fn dangling_references(&self) -> Result<i64> {
        let n = sqlx::query_scalar(
            "SELECT COUNT(*) FROM secret_refs r LEFT JOIN secrets s ON s.id = r.secret_id \
             WHERE s.id IS NULL",
        )
        .fetch_one(&mut *self.conn().await?)
        .await?;
        Ok(n)
    }

    pub(crate) async fn insert_tenant(&self, t: &TenantRecord) -> Result<()> {
        sqlx::query("INSERT INTO tenants (id, name, created_time) VALUES (?, ?, ?)")
            .bind(t.id.to_string())
            .bind(&t.name)
            .bind(t.created_time)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    pub(crate) async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRecord>> {
        let row =
            sqlx::query("SELECT id, name, created_time, destinations_required, cas_required, strict_values, expiry_notices FROM tenants WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *self.conn().await?)
                .await?;
        row.as_ref().map(tenant_from).transpose()
    }

    pub(crate) async fn revoke_session(
        &self,
        user: UserId,
        sid: &str,
        expires: i64,
        max: usize,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("INSERT OR IGNORE INTO revoked_sessions (sid, user_id, expires_time) VALUES (?, ?, ?)")
            .bind(sid)
            .bind(user.to_string())
            .bind(expires)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM revoked_sessions WHERE user_id = ? AND expires_time < ?")
            .bind(user.to_string())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM revoked_sessions WHERE user_id = ?")
            .bind(user.to_string())
            .fetch_one(&mut *tx)
            .await?;
        let over = usize::try_from(kept).unwrap_or(usize::MAX) > max;
        if over {
            sqlx::query("DELETE FROM revoked_sessions WHERE user_id = ?")
                .bind(user.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(over)
    }

    pub(crate) async fn revoked_sessions(&self, user: UserId) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT sid FROM revoked_sessions WHERE user_id = ? AND expires_time >= ?")
            .bind(user.to_string())
            .bind(now_ms())
            .fetch_all(&mut *self.conn().await?)
            .await?)
    }

    pub(crate) async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    pub(crate) async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    pub(crate) async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&mut *self.conn().await?).await?)
    }
}

/// Inside a write transaction, after its insert: refuses when the tenant is over `quota` (SQLite
/// has one writer at a time, so the count is exact until the commit).
async fn within(conn: &mut sqlx::SqliteConnection, tenant: TenantId, quota: Quota) -> Result<()> {
    let used: i64 =
        sqlx::query_scalar(quota.count_sql()).bind(tenant.to_string()).fetch_one(&mut *conn).await?;
    quota.check(used)
}
