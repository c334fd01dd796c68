//! The embedded default: one SQLite file in WAL mode with `synchronous=FULL`, so every acknowledged
//! write survives `kill -9` and power loss. One connection behind a mutex: SQLite has one writer
//! anyway, reads on the hot path come from the in-memory index, and closing it is deterministic
//! (a pool returns connections from background tasks, which can race a close at exit and leave a
//! `-wal` file behind after a refused start).

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteRow, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, Sqlite, Transaction};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use uuid::Uuid;

mod directory;

use self::directory::audit_rows;
use crate::audit::NewAuditEntry;

use super::rows::{Columns, decode_err, owner_from, sealed_from, user_from};
use super::{
    DeleteOutcome, EARLIER_VALUES_KEPT, EarlierValue, EarlierValues, Expected, Held, OwnerRecord, OwnerWrite,
    Recorded, SecretRow, destinations_from, destinations_text,
};
use crate::crypto::{Sealed, WrappedKey};
use crate::directory::{TenantRecord, UserRecord};
use crate::error::{NameConflict, NeededKind, Result, StoreError};

use crate::model::{CustomerId, SecretId, SecretInfo, SecretType, TenantId, UserId, now_ms};
use crate::quota::Quota;
use crate::references::{OwnerType, SecretRef, Usages};

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

fn is_kind(e: &sqlx::Error, kind: sqlx::error::ErrorKind) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == kind)
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
    let mut grouped = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get("type")?;
        grouped.push((
            OwnerType::parse(&kind).ok_or_else(|| decode_err("owners.type"))?,
            parse_id::<Uuid>(row, "id")?,
            row.try_get::<String, _>("name")?,
            SecretRef {
                secret_name: String::new(),
                node_id: row.try_get("node_id")?,
                node_name: row.try_get("node_name")?,
                pointer: row.try_get("pointer")?,
            },
        ));
    }
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

    async fn conn(&self) -> Result<MappedMutexGuard<'_, SqliteConnection>> {
        self.queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        MutexGuard::try_map(self.conn.lock().await, Option::as_mut)
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
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, type, description, file_name, version, created_time, \
             updated_time, allowed_destinations, key_id, nonce, ciphertext FROM secrets",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let shares = sqlx::query("SELECT secret_id, customer_id FROM secret_shares ORDER BY customer_id")
            .fetch_all(&mut *self.conn().await?)
            .await?;
        let mut shared: std::collections::HashMap<SecretId, Vec<_>> = Default::default();
        for s in &shares {
            shared.entry(parse_id(s, "secret_id")?).or_default().push(parse_id(s, "customer_id")?);
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: SecretId = parse_id(row, "id")?;
            let kind: String = row.try_get("type")?;
            out.push(SecretRow {
                info: SecretInfo {
                    id,
                    tenant_id: parse_id(row, "tenant_id")?,
                    name: row.try_get("name")?,
                    kind: SecretType::parse(&kind).ok_or_else(|| decode_err("secrets.type"))?,
                    description: row.try_get("description")?,
                    file_name: row.try_get("file_name")?,
                    version: row.try_get("version")?,
                    created_time: row.try_get("created_time")?,
                    updated_time: row.try_get("updated_time")?,
                    shared_with: shared.remove(&id).unwrap_or_default(),
                    allowed_destinations: destinations_from(row)?,
                },
                sealed: sealed_from(row)?,
            });
        }
        let history = sqlx::query(
            "SELECT secret_id, version, key_id, nonce, ciphertext FROM secret_history \
             ORDER BY secret_id, version DESC",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let tenants: std::collections::HashMap<SecretId, TenantId> =
            out.iter().map(|r| (r.info.id, r.info.tenant_id)).collect();
        let mut earlier: std::collections::HashMap<SecretId, Vec<EarlierValue>> = Default::default();
        for row in &history {
            earlier
                .entry(parse_id(row, "secret_id")?)
                .or_default()
                .push(EarlierValue { version: row.try_get("version")?, sealed: sealed_from(row)? });
        }
        self.earlier.load(earlier, &tenants);
        Ok(out)
    }

    pub(crate) async fn insert_secret(
        &self,
        row: &SecretRow,
        quotas: &[Quota],
        audit: &[NewAuditEntry],
    ) -> Result<()> {
        let i = &row.info;
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let result = sqlx::query(
            "INSERT INTO secrets (id, tenant_id, name, type, description, file_name, version, \
             created_time, updated_time, key_id, nonce, ciphertext, allowed_destinations) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(i.id.to_string())
        .bind(i.tenant_id.to_string())
        .bind(&i.name)
        .bind(i.kind.as_str())
        .bind(&i.description)
        .bind(&i.file_name)
        .bind(i.version)
        .bind(i.created_time)
        .bind(i.updated_time)
        .bind(row.sealed.key_id)
        .bind(row.sealed.nonce.as_slice())
        .bind(&row.sealed.ciphertext)
        .bind(destinations_text(&i.allowed_destinations))
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(e) if is_kind(&e, sqlx::error::ErrorKind::UniqueViolation) => {
                return Err(StoreError::NameTaken(i.name.clone()));
            }
            Err(e) => return Err(e.into()),
        }
        for quota in quotas {
            within(&mut tx, i.tenant_id, *quota).await?;
        }
        audit_rows(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) fn earlier_values(&self, id: SecretId) -> Vec<EarlierValue> {
        self.earlier.get(id)
    }

    /// Forgets the earlier values of a tenant's secrets (the rows went with the secrets).
    pub(crate) fn forget_earlier_values_of(&self, tenant: TenantId) {
        self.earlier.forget_tenant(tenant);
    }

    /// Changes a secret's row if it is still at `expected_version`. When the version moves (a new
    /// value), the value it replaces goes to `secret_history` in the same transaction, which then
    /// keeps the last [`EARLIER_VALUES_KEPT`] of that secret.
    pub(crate) async fn update_secret(
        &self,
        row: &SecretRow,
        expected: impl Into<Expected>,
        quota: Option<Quota>,
        audit: &[NewAuditEntry],
    ) -> Result<bool> {
        let expected = expected.into();
        let expected_version = expected.version;
        let i = &row.info;
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let new_value = i.version != expected_version;
        if new_value {
            sqlx::query(
                "INSERT OR REPLACE INTO secret_history \
                 (secret_id, version, key_id, nonce, ciphertext, replaced_time) \
                 SELECT id, version, key_id, nonce, ciphertext, ? FROM secrets WHERE id = ? AND version = ?",
            )
            .bind(now_ms())
            .bind(i.id.to_string())
            .bind(expected_version)
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query(
            "UPDATE secrets SET description = ?, file_name = ?, version = ?, updated_time = ?, \
             key_id = ?, nonce = ?, ciphertext = ?, allowed_destinations = ? WHERE id = ? AND version = ? \
             AND (? IS NULL OR updated_time = ?)",
        )
        .bind(&i.description)
        .bind(&i.file_name)
        .bind(i.version)
        .bind(i.updated_time)
        .bind(row.sealed.key_id)
        .bind(row.sealed.nonce.as_slice())
        .bind(&row.sealed.ciphertext)
        .bind(destinations_text(&i.allowed_destinations))
        .bind(i.id.to_string())
        .bind(expected_version)
        .bind(expected.updated_time)
        .bind(expected.updated_time)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            // Dropping the transaction rolls the history row back too.
            return Ok(false);
        }
        if !new_value {
            audit_rows(&mut tx, audit).await?;
            tx.commit().await?;
            return Ok(true);
        }
        if let Some(quota) = quota {
            within(&mut tx, i.tenant_id, quota).await?;
        }
        sqlx::query(
            "DELETE FROM secret_history WHERE secret_id = ? AND version NOT IN \
             (SELECT version FROM secret_history WHERE secret_id = ? ORDER BY version DESC LIMIT ?)",
        )
        .bind(i.id.to_string())
        .bind(i.id.to_string())
        .bind(EARLIER_VALUES_KEPT)
        .execute(&mut *tx)
        .await?;
        let kept = sqlx::query(
            "SELECT version, key_id, nonce, ciphertext FROM secret_history \
             WHERE secret_id = ? ORDER BY version DESC",
        )
        .bind(i.id.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let kept = kept
            .iter()
            .map(|r| Ok(EarlierValue { version: r.try_get("version")?, sealed: sealed_from(r)? }))
            .collect::<Result<Vec<_>>>()?;
        audit_rows(&mut tx, audit).await?;
        tx.commit().await?;
        self.earlier.set(i.id, i.tenant_id, kept);
        Ok(true)
    }

    pub(crate) async fn delete_secret(&self, id: SecretId, audit: &[NewAuditEntry]) -> Result<DeleteOutcome> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let usages = usages_in(&mut tx, id, None).await?;
        if !usages.is_empty() {
            return Ok(DeleteOutcome::InUse(usages));
        }
        let result =
            sqlx::query("DELETE FROM secrets WHERE id = ?").bind(id.to_string()).execute(&mut *tx).await;
        match result {
            Ok(_) => {
                // The secret's history rows go with it (ON DELETE CASCADE).
                audit_rows(&mut tx, audit).await?;
                tx.commit().await?;
                self.earlier.remove(id);
                Ok(DeleteOutcome::Deleted)
            }
            // A reference committed between our read and the delete (another instance).
            Err(e) if is_kind(&e, sqlx::error::ErrorKind::ForeignKeyViolation) => {
                drop(tx);
                let mut tx = conn.begin().await?;
                Ok(DeleteOutcome::InUse(usages_in(&mut tx, id, None).await?))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn usages(&self, id: SecretId, customer: Option<CustomerId>) -> Result<Usages> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        usages_in(&mut tx, id, customer).await
    }

    /// Saves a configuration and replaces its references and links, in one transaction.
    /// `_visible_to` needs no check here: the store's index, which already checked it, is the
    /// whole truth when one process writes.
    pub(crate) async fn save_owner(&self, write: OwnerWrite<'_>) -> Result<bool> {
        let OwnerWrite { tenant, visible_to: _visible_to, owner, body, refs, links, quota } = write;
        let now = now_ms();
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let saved = sqlx::query(
            "INSERT INTO owners (id, tenant_id, type, name, customer_id, body, created_time, updated_time) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, body = excluded.body, \
             updated_time = excluded.updated_time \
             WHERE owners.tenant_id = excluded.tenant_id AND owners.type = excluded.type",
        )
        .bind(owner.id.to_string())
        .bind(tenant.to_string())
        .bind(owner.kind.as_str())
        .bind(&owner.name)
        .bind(owner.customer_id.map(|c| c.to_string()))
        .bind(body.to_string())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| super::owner_write_error(e, body))?;
        if saved.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(quota) = quota {
            within(&mut tx, tenant, quota).await?;
        }
        sqlx::query("DELETE FROM secret_refs WHERE owner_id = ?")
            .bind(owner.id.to_string())
            .execute(&mut *tx)
            .await?;
        for r in refs {
            let inserted = sqlx::query(
                "INSERT INTO secret_refs (secret_id, owner_id, node_id, node_name, pointer) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(r.secret_id.to_string())
            .bind(owner.id.to_string())
            .bind(&r.reference.node_id)
            .bind(&r.reference.node_name)
            .bind(&r.reference.pointer)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_kind(&e, sqlx::error::ErrorKind::ForeignKeyViolation) => {
                    return Err(StoreError::UnknownSecrets(vec![r.reference.secret_name.clone()]));
                }
                Err(e) => return Err(e.into()),
            }
        }
        sqlx::query("DELETE FROM owner_links WHERE owner_id = ?")
            .bind(owner.id.to_string())
            .execute(&mut *tx)
            .await?;
        for link in links {
            let inserted = sqlx::query(
                "INSERT INTO owner_links (owner_id, target_id, node_id, node_name, pointer) \
                 SELECT ?, id, ?, ?, ? FROM owners WHERE id = ? AND tenant_id = ? AND type = ?",
            )
            .bind(owner.id.to_string())
            .bind(&link.node_id)
            .bind(&link.node_name)
            .bind(&link.pointer)
            .bind(link.target.to_string())
            .bind(tenant.to_string())
            .bind(link.kind.as_str())
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::NotFound { kind: "integration", id: link.target.to_string() });
            }
        }
        tx.commit().await?;
        Ok(true)
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
            .await;
        match done {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) if is_kind(&e, sqlx::error::ErrorKind::ForeignKeyViolation) => Err(StoreError::Needed {
                kind: NeededKind::Integration,
                message: format!("{} '{id}' is used by a rule chain", kind.as_str()),
            }),
            Err(e) => Err(e.into()),
        }
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
            sqlx::query("SELECT id, name, created_time, destinations_required FROM tenants WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *self.conn().await?)
                .await?;
        row.map(|r| {
            Ok(TenantRecord {
                id: parse_id(&r, "id")?,
                name: r.try_get("name")?,
                created_time: r.try_get("created_time")?,
                destinations_required: r.try_get::<i64, _>("destinations_required")? != 0,
            })
        })
        .transpose()
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

    pub(crate) async fn insert_user(&self, u: &UserRecord, quota: Option<Quota>) -> Result<()> {
        let roles = serde_json::to_string(&u.roles).map_err(|_| decode_err("roles"))?;
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let result = sqlx::query(
            "INSERT INTO users (id, tenant_id, customer_id, username, password_hash, roles, created_time) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(u.id.to_string())
        .bind(u.tenant_id.to_string())
        .bind(u.customer_id.map(|c| c.to_string()))
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(roles)
        .bind(u.created_time)
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {
                if let Some(quota) = quota {
                    within(&mut tx, u.tenant_id, quota).await?;
                }
                tx.commit().await?;
                Ok(())
            }
            Err(e) if is_kind(&e, sqlx::error::ErrorKind::UniqueViolation) => {
                Err(StoreError::NameUnavailable {
                    conflict: NameConflict::Taken,
                    message: format!("username: '{}' is already taken", u.username),
                })
            }
            Err(e) => Err(e.into()),
        }
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

#[cfg(test)]
mod history_tests {
    use super::*;

    fn row(id: SecretId, tenant: TenantId, version: i64) -> SecretRow {
        let info = SecretInfo {
            id,
            tenant_id: tenant,
            name: "s".into(),
            kind: SecretType::Text,
            description: String::new(),
            file_name: None,
            version,
            created_time: 0,
            updated_time: 0,
            shared_with: Vec::new(),
            allowed_destinations: Vec::new(),
        };
        // The backend never looks inside a ciphertext: the version in it is enough here.
        let sealed = Sealed { key_id: 1, nonce: [0; 12], ciphertext: version.to_be_bytes().to_vec() };
        SecretRow { info, sealed }
    }

    async fn history_rows(b: &SqliteBackend, id: SecretId) -> Vec<(i64, Vec<u8>)> {
        sqlx::query_as("SELECT version, ciphertext FROM secret_history WHERE secret_id = ? ORDER BY version")
            .bind(id.to_string())
            .fetch_all(&mut *b.conn().await.unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_value_change_keeps_the_last_five_earlier_values_until_the_secret_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("veil.db");
        let b = SqliteBackend::connect(&path).await.unwrap();
        b.migrate().await.unwrap();
        b.insert_data_key(&WrappedKey { id: 1, wrapped: vec![0; 60] }).await.unwrap();
        let (id, tenant) = (SecretId::new_random(), TenantId::new_random());
        b.insert_secret(&row(id, tenant, 1), &[], &[]).await.unwrap();
        // A description change (same version) keeps nothing.
        assert!(b.update_secret(&row(id, tenant, 1), 1, None, &[]).await.unwrap());
        assert!(history_rows(&b, id).await.is_empty());
        for version in 2..=8 {
            assert!(b.update_secret(&row(id, tenant, version), version - 1, None, &[]).await.unwrap());
        }
        // A stale update changes nothing, history included.
        assert!(!b.update_secret(&row(id, tenant, 9), 3, None, &[]).await.unwrap());
        let kept: Vec<i64> = history_rows(&b, id).await.iter().map(|(v, _)| *v).collect();
        assert_eq!(kept, [3, 4, 5, 6, 7]);
        for (version, ciphertext) in history_rows(&b, id).await {
            assert_eq!(ciphertext, version.to_be_bytes(), "the ciphertext the row held at that version");
        }
        let in_memory: Vec<i64> = b.earlier_values(id).iter().map(|e| e.version).collect();
        assert_eq!(in_memory, [7, 6, 5, 4, 3]);
        b.close().await;

        // Reopened: loaded with the secrets.
        let b = SqliteBackend::connect(&path).await.unwrap();
        b.load_secrets().await.unwrap();
        let loaded: Vec<i64> = b.earlier_values(id).iter().map(|e| e.version).collect();
        assert_eq!(loaded, [7, 6, 5, 4, 3]);
        assert!(matches!(b.delete_secret(id, &[]).await.unwrap(), DeleteOutcome::Deleted));
        assert!(history_rows(&b, id).await.is_empty(), "deleted with the secret");
        assert!(b.earlier_values(id).is_empty());

        // Deleting a tenant takes its secrets' history too.
        let other = SecretId::new_random();
        b.insert_secret(&row(other, tenant, 1), &[], &[]).await.unwrap();
        assert!(b.update_secret(&row(other, tenant, 2), 1, None, &[]).await.unwrap());
        assert_eq!(history_rows(&b, other).await.len(), 1);
        b.delete_tenant(tenant).await.unwrap();
        assert!(history_rows(&b, other).await.is_empty());
        assert!(b.earlier_values(other).is_empty());
        b.close().await;
    }
}
