//! PostgreSQL, for several `veil` instances on one database. A pool of connections (reads on the
//! hot path come from the in-memory index, so a few are plenty); every write of several rows is
//! one transaction, and every rule that must hold across instances is held by the database:
//! unique names and foreign keys are constraints, an update commits only at the version it read
//! (`WHERE version = expected`, under the row lock), a delete of a secret locks its row before it
//! looks for references and a save locks the rows of the secrets it references (`FOR KEY SHARE`,
//! as the RESTRICT foreign key does too), so no interleaving leaves a reference to a deleted
//! secret. Durability is PostgreSQL's: a commit is acknowledged once it is in the WAL on disk.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::Timed;
use sqlx::Row;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use tokio::sync::mpsc;
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
use crate::feed::{self, FeedItem};

use crate::model::{CustomerId, SecretId, SecretVersion, TenantId, UserId, now_ms};
use crate::quota::Quota;
use crate::references::{OwnerType, Usages};

/// Connections kept open at most by one instance.
const MAX_CONNECTIONS: u32 = 8;
/// Leases held at once by one instance: each holds a connection while its work runs (a login to
/// an outside service), so they never take more than this many of the pool's.
const MAX_LEASES: usize = 2;

pub(crate) struct PostgresBackend {
    pool: PgPool,
    /// This instance, as its connections tell the change feed (`veil.instance`).
    instance: String,
    /// The task listening to the change feed, stopped at close (it holds a connection).
    listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// `secret_history` in memory (see [`EarlierValues`]).
    earlier: EarlierValues,
    /// Times the database was used so far (each operation counts once, as in SQLite).
    queries: AtomicU64,
    /// Permits to hold a lease (see [`MAX_LEASES`]).
    leases: std::sync::Arc<tokio::sync::Semaphore>,
    /// Whether the change feed's connection is up (false from its loss until it listens again).
    feed_up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn migrator() -> Migrator {
    Migrator {
        migrations: Cow::Owned(vec![
            Migration::new(
                1,
                Cow::Borrowed("init"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0001_init.sql")),
                false,
            ),
            Migration::new(
                2,
                Cow::Borrowed("change feed"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0002_change_feed.sql")),
                false,
            ),
            Migration::new(
                3,
                Cow::Borrowed("routing keys"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0003_routing_keys.sql")),
                false,
            ),
            Migration::new(
                4,
                Cow::Borrowed("cluster work"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0004_cluster_work.sql")),
                false,
            ),
            Migration::new(
                5,
                Cow::Borrowed("allowed destinations"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0005_allowed_destinations.sql")),
                false,
            ),
            Migration::new(
                6,
                Cow::Borrowed("destinations required"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0006_destinations_required.sql")),
                false,
            ),
            Migration::new(
                7,
                Cow::Borrowed("revoked sessions"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0007_revoked_sessions.sql")),
                false,
            ),
            Migration::new(
                8,
                Cow::Borrowed("secret versions"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0008_secret_versions.sql")),
                false,
            ),
            Migration::new(
                9,
                Cow::Borrowed("tenant settings"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0009_tenant_settings.sql")),
                false,
            ),
            Migration::new(
                10,
                Cow::Borrowed("secret uses"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0010_secret_uses.sql")),
                false,
            ),
            Migration::new(
                11,
                Cow::Borrowed("secret expiry"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0011_secret_expiry.sql")),
                false,
            ),
            Migration::new(
                12,
                Cow::Borrowed("expiry notices"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0012_expiry_notices.sql")),
                false,
            ),
            Migration::new(
                13,
                Cow::Borrowed("pending values"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0013_pending_values.sql")),
                false,
            ),
            Migration::new(
                14,
                Cow::Borrowed("key rotation"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0014_key_rotation.sql")),
                false,
            ),
            Migration::new(
                15,
                Cow::Borrowed("feed time"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0015_feed_time.sql")),
                false,
            ),
            Migration::new(
                16,
                Cow::Borrowed("linked secrets"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0016_linked_secrets.sql")),
                false,
            ),
            Migration::new(
                17,
                Cow::Borrowed("tenant usage"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0017_tenant_usage.sql")),
                false,
            ),
            Migration::new(
                18,
                Cow::Borrowed("tenant usage recount"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/postgres/0018_tenant_usage_recount.sql")),
                false,
            ),
        ]),
        ..Migrator::DEFAULT
    }
}

/// PostgreSQL keeps ids as `uuid`.
impl Columns for PgRow {
    fn uuid(&self, col: &str) -> Result<Uuid> {
        Ok(self.try_get(col)?)
    }
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>> {
        Ok(self.try_get(col)?)
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

/// The columns of [`owner_from`]. Listings sort text `COLLATE "C"` (byte-wise, as SQLite's BINARY
/// does), whatever the database's collation: both backends list in the same order.
const OWNER_COLUMNS: &str = "id, tenant_id, type, name, customer_id, body, created_time, updated_time";

/// The configurations that use a secret; with `customer`, only that customer's.
async fn usages_in(conn: &mut PgConnection, id: SecretId, customer: Option<CustomerId>) -> Result<Usages> {
    let rows = sqlx::query(
        "SELECT o.type, o.id, o.name, r.node_id, r.node_name, r.pointer \
         FROM secret_refs r JOIN owners o ON o.id = r.owner_id \
         WHERE r.secret_id = $1 AND ($2::uuid IS NULL OR o.customer_id = $2) \
         ORDER BY o.type COLLATE \"C\", o.name COLLATE \"C\", o.id, r.pointer COLLATE \"C\"",
    )
    .bind(id.0)
    .bind(customer.map(|c| c.0))
    .fetch_all(&mut *conn)
    .await?;
    let grouped = rows.iter().map(usage_from).collect::<Result<Vec<_>>>()?;
    Ok(Usages::group(grouped))
}

/// Inside a write transaction: refuses a write for a tenant that another instance deleted, and
/// keeps the tenant from being deleted until the transaction ends (its row stays locked
/// `FOR KEY SHARE`; `delete_tenant` takes `FOR UPDATE` on it first). A tenant without a row
/// (only tests make those) is never deleted and always writable.
async fn tenant_alive(conn: &mut PgConnection, tenant: TenantId) -> Result<()> {
    let row = sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR KEY SHARE")
        .bind(tenant.0)
        .fetch_optional(&mut *conn)
        .await?;
    if row.is_some() {
        return Ok(());
    }
    // A new statement sees a delete that committed while the lock above waited for it.
    let deleted: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM deleted_tenants WHERE id = $1)")
        .bind(tenant.0)
        .fetch_one(&mut *conn)
        .await?;
    if deleted { Err(StoreError::NotFound { kind: "tenant", id: tenant.to_string() }) } else { Ok(()) }
}

/// Inside a write transaction, after its insert: refuses when the tenant is over `quota`. A
/// transaction-scoped advisory lock per tenant comes first (quota-counted writes of one tenant wait
/// for each other, on every instance; nothing else takes it), so the count, read by a statement
/// that starts after the lock, holds every committed insert.
pub(super) async fn within(conn: &mut PgConnection, tenant: TenantId, quota: Quota) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('veil quota ' || $1::text, 0))")
        .bind(tenant.0)
        .execute(&mut *conn)
        .await?;
    let used: i64 = sqlx::query_scalar(quota.count_sql()).bind(tenant.0).fetch_one(&mut *conn).await?;
    quota.check(used)
}

/// Inside a write transaction: keeps a customer from being deleted until the transaction ends
/// (`delete_customer` locks its row `FOR UPDATE` before counting what belongs to it); false when
/// it does not exist (any more).
async fn customer_alive(conn: &mut PgConnection, customer: CustomerId) -> Result<bool> {
    let row = sqlx::query("SELECT id FROM customers WHERE id = $1 FOR KEY SHARE")
        .bind(customer.0)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// A connection listening to the change feed (held apart from the pool's use).
async fn subscribe(pool: &PgPool) -> Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(feed::CHANNEL).await?;
    Ok(listener)
}

impl PostgresBackend {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`). The
    /// first connection is made here, so a wrong URL fails the start.
    pub(crate) async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("veil");
        let instance = Uuid::new_v4().to_string();
        let tag = instance.clone();
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            // Every write names this instance to the change feed's triggers.
            .after_connect(move |conn, _| {
                let tag = tag.clone();
                Box::pin(async move {
                    sqlx::query("SELECT set_config('veil.instance', $1, false)")
                        .bind(tag)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            instance,
            listener: Default::default(),
            earlier: Default::default(),
            queries: Default::default(),
            leases: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_LEASES)),
            feed_up: Default::default(),
        })
    }

    /// Brings the schema up to date (sqlx holds an advisory lock while it migrates, so instances
    /// starting together migrate once). Runs after the master key was checked against the
    /// keyring, so a refused start never changes the schema.
    pub(crate) async fn migrate(&self) -> Result<()> {
        migrator().run(&*self.db()).await?;
        Ok(())
    }

    /// Takes the cluster-wide advisory lock of `work` of `owner` in a transaction (waiting up to a
    /// minute for another instance's holder), then reads what was recorded for it.
    pub(crate) async fn begin_lease(&self, owner: Uuid, work: &str) -> Result<(Held, Option<Recorded>)> {
        let permit = std::sync::Arc::clone(&self.leases)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        let mut tx = self.db().begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '60s'").execute(&mut *tx).await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("veil-lease/{owner}/{work}"))
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT fingerprint, failure, done_time FROM cluster_work WHERE owner_id = $1 AND work = $2",
        )
        .bind(owner)
        .bind(work)
        .fetch_optional(&mut *tx)
        .await?;
        let found = row.as_ref().map(Recorded::from_row).transpose()?;
        Ok((Held::Postgres(tx, permit), found))
    }

    /// Records the outcome of leased work in the lease's transaction and commits it, which
    /// releases the lock.
    pub(crate) async fn record_lease(&self, held: Held, owner: Uuid, work: &str, r: &Recorded) -> Result<()> {
        let Held::Postgres(mut tx, _permit) = held else {
            return Err(StoreError::Internal("a PostgreSQL lease held by another backend".into()));
        };
        sqlx::query(
            "INSERT INTO cluster_work (owner_id, work, fingerprint, failure, done_time) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (owner_id, work) DO UPDATE SET fingerprint = excluded.fingerprint, \
             failure = excluded.failure, done_time = excluded.done_time",
        )
        .bind(owner)
        .bind(work)
        .bind(&r.fingerprint)
        .bind(&r.failure)
        .bind(r.done_time)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The pool, for `veil migrate`'s bulk copy.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool, counting one use of the database and timing it until the returned guard is
    /// dropped (the end of the statement that uses it).
    fn db(&self) -> Timed<&PgPool> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        Timed::new(&self.pool, "postgres")
    }

    /// Open and idle connections of the pool (for the metrics).
    pub(crate) fn pool_use(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// How many times the database was used so far.
    pub(crate) fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Stops the change feed and closes every connection (waits for the ones in use to come
    /// back).
    pub(crate) async fn close(&self) {
        let listener = self.listener.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = listener {
            task.abort();
            let _ = task.await;
        }
        self.pool.close().await;
    }

    /// Starts listening to the change feed: other instances' committed changes, and a
    /// [`FeedItem::Resync`] whenever the listening connection was lost and is back (what was
    /// announced meanwhile is gone). Listening has begun when this returns.
    pub(crate) async fn listen(&self) -> Result<mpsc::UnboundedReceiver<FeedItem>> {
        let mut listener = subscribe(&self.pool).await?;
        self.feed_up.store(true, Ordering::SeqCst);
        let (tx, rx) = mpsc::unbounded_channel();
        let (pool, instance) = (self.pool.clone(), self.instance.clone());
        let up = std::sync::Arc::clone(&self.feed_up);
        let task = tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        let Some(change) = feed::parse(notification.payload(), &instance) else { continue };
                        if tx.send(FeedItem::Change(change)).is_err() {
                            return;
                        }
                    }
                    // The connection dropped (and sqlx would reconnect on the next call): listen
                    // on a new one first, then resync, so nothing falls between the two.
                    Ok(None) | Err(_) => {
                        tracing::warn!("change feed: the listening connection was lost; reconnecting");
                        up.store(false, Ordering::SeqCst);
                        listener = loop {
                            match subscribe(&pool).await {
                                Ok(l) => break l,
                                Err(e) => {
                                    tracing::warn!(error = %e, "change feed: cannot listen yet; retrying in 1 s");
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                            }
                        };
                        up.store(true, Ordering::SeqCst);
                        if tx.send(FeedItem::Resync).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        *self.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(rx)
    }

    /// Whether the change feed listens now (false while its lost connection is made again).
    pub(crate) fn feed_up(&self) -> bool {
        self.feed_up.load(Ordering::SeqCst)
    }

    /// One secret as it is now, with its shares, its earlier values brought up to date in memory;
    /// `None` when it no longer exists.
    pub(crate) async fn reload_secret(&self, id: SecretId) -> Result<Option<SecretRow>> {
        let rows = self.secrets_where(Some(id)).await?;
        Ok(rows.into_iter().next())
    }

    pub(crate) async fn load_data_keys(&self) -> Result<Vec<WrappedKey>> {
        let schema: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'data_keys')",
        )
        .fetch_one(&*self.db())
        .await?;
        if !schema {
            return Ok(Vec::new());
        }
        let rows =
            sqlx::query("SELECT id, wrapped FROM data_keys ORDER BY id").fetch_all(&*self.db()).await?;
        rows.iter().map(|r| Ok(WrappedKey { id: r.try_get("id")?, wrapped: r.try_get("wrapped")? })).collect()
    }

    pub(crate) async fn insert_data_key(&self, key: &WrappedKey) -> Result<()> {
        // Instances starting together on an empty database: the first key stays (the caller
        // reads the keyring back).
        sqlx::query(
            "INSERT INTO data_keys (id, wrapped, created_time) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
            .bind(key.id)
            .bind(&key.wrapped)
            .bind(now_ms())
            .execute(&*self.db())
            .await?;
        Ok(())
    }

    pub(crate) async fn system_secret(&self, name: &str) -> Result<Option<Sealed>> {
        let row = sqlx::query("SELECT key_id, nonce, ciphertext FROM system_secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&*self.db())
            .await?;
        row.as_ref().map(sealed_from).transpose()
    }

    /// Stores a system secret unless one of that name exists (another instance may have won).
    pub(crate) async fn insert_system_secret(&self, name: &str, sealed: &Sealed) -> Result<()> {
        sqlx::query(
            "INSERT INTO system_secrets (name, key_id, nonce, ciphertext) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(sealed.key_id)
        .bind(sealed.nonce.as_slice())
        .bind(&sealed.ciphertext)
        .execute(&*self.db())
        .await?;
        Ok(())
    }

    /// Every secret with its shares, and the earlier values into memory: one snapshot
    /// (REPEATABLE READ), so the three reads agree.
    pub(crate) async fn load_secrets(&self) -> Result<Vec<SecretRow>> {
        self.secrets_where(None).await
    }

    /// Every secret, or the one with id `only`, in one snapshot; their earlier values replace
    /// the ones in memory (all of them, or that secret's).
    async fn secrets_where(&self, only: Option<SecretId>) -> Result<Vec<SecretRow>> {
        let only = only.map(|id| id.0);
        let mut tx = self.db().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let rows =
            sqlx::query(&format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE $1::uuid IS NULL OR id = $1"))
                .bind(only)
                .fetch_all(&mut *tx)
                .await?;
        let shares = sqlx::query(
            "SELECT secret_id, customer_id FROM secret_shares WHERE $1::uuid IS NULL OR secret_id = $1 \
             ORDER BY customer_id",
        )
        .bind(only)
        .fetch_all(&mut *tx)
        .await?;
        let history = sqlx::query(
            "SELECT secret_id, version, key_id, nonce, ciphertext FROM secret_history \
             WHERE $1::uuid IS NULL OR secret_id = $1 ORDER BY secret_id, version DESC",
        )
        .bind(only)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut shared: HashMap<SecretId, Vec<CustomerId>> = HashMap::new();
        for s in &shares {
            shared
                .entry(SecretId(s.try_get("secret_id")?))
                .or_default()
                .push(CustomerId(s.try_get("customer_id")?));
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = SecretId(row.try_get("id")?);
            out.push(SecretRow {
                info: secret_info_from(row, shared.remove(&id).unwrap_or_default())?,
                sealed: sealed_from(row)?,
            });
        }
        let tenants: HashMap<SecretId, TenantId> =
            out.iter().map(|r| (r.info.id, r.info.tenant_id)).collect();
        let mut earlier: HashMap<SecretId, Vec<EarlierValue>> = HashMap::new();
        for row in &history {
            earlier
                .entry(SecretId(row.try_get("secret_id")?))
                .or_default()
                .push(EarlierValue { version: row.try_get("version")?, sealed: sealed_from(row)? });
        }
        match only {
            None => self.earlier.load(earlier, &tenants),
            Some(id) => match out.first() {
                Some(row) => self.earlier.set(
                    row.info.id,
                    row.info.tenant_id,
                    earlier.remove(&row.info.id).unwrap_or_default(),
                ),
                None => self.earlier.remove(SecretId(id)),
            },
        }
        Ok(out)
    }

    pub(crate) async fn versions(
        &self,
        id: SecretId,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<SecretVersion>, i64)> {
        let rows =
            sqlx::query(VERSIONS_SQL).bind(id.0).bind(limit).bind(offset).fetch_all(&*self.db()).await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM secret_versions WHERE secret_id = $1")
            .bind(id.0)
            .fetch_one(&*self.db())
            .await?;
        Ok((rows.iter().map(version_from).collect::<Result<_>>()?, total))
    }

    pub(crate) async fn record_uses(&self, uses: &[(SecretId, Uuid, i64)]) -> Result<()> {
        let mut tx = self.db().begin().await?;
        for (secret, owner, time) in uses {
            sqlx::query(
                "INSERT INTO secret_uses (secret_id, owner_id, last_used_time) \
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM secrets WHERE id = $1) \
                 ON CONFLICT (secret_id, owner_id) DO UPDATE SET \
                 last_used_time = GREATEST(secret_uses.last_used_time, excluded.last_used_time)",
            )
            .bind(secret.0)
            .bind(owner)
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
        let rows = sqlx::query(match secrets {
            // The uses of the secrets asked for by their index (a page of the secrets list),
            // not every use of the tenant.
            Some(_) => {
                "SELECT u.secret_id, u.owner_id, u.last_used_time FROM secret_uses u \
                 JOIN secrets s ON s.id = u.secret_id WHERE s.tenant_id = $1 AND u.secret_id = ANY($2)"
            }
            None => {
                "SELECT u.secret_id, u.owner_id, u.last_used_time FROM secret_uses u \
                 JOIN secrets s ON s.id = u.secret_id WHERE s.tenant_id = $1 AND $2::uuid[] IS NULL"
            }
        })
        .bind(tenant.0)
        .bind(secrets.map(|ids| ids.iter().map(|s| s.0).collect::<Vec<Uuid>>()))
        .fetch_all(&*self.db())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((SecretId(r.try_get("secret_id")?), r.try_get("owner_id")?, r.try_get("last_used_time")?))
            })
            .collect()
    }

    pub(crate) async fn rewrap_data_keys(&self, keys: &[WrappedKey]) -> Result<()> {
        let mut tx = self.db().begin().await?;
        for key in keys {
            let done = sqlx::query("UPDATE data_keys SET wrapped = $1 WHERE id = $2")
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
            .fetch_all(&*self.db())
            .await?;
        rows.iter().map(|r| Ok((SecretId(r.try_get("secret_id")?), r.try_get("version")?))).collect()
    }

    pub(crate) async fn set_fingerprint(&self, id: SecretId, version: i64, fingerprint: &str) -> Result<()> {
        sqlx::query("UPDATE secret_versions SET fingerprint = $1 WHERE secret_id = $2 AND version = $3")
            .bind(fingerprint)
            .bind(id.0)
            .bind(version)
            .execute(&*self.db())
            .await?;
        Ok(())
    }

    pub(crate) fn earlier_values(&self, id: SecretId) -> Vec<EarlierValue> {
        self.earlier.get(id)
    }

    pub(crate) async fn usages(&self, id: SecretId, customer: Option<CustomerId>) -> Result<Usages> {
        let mut conn = self.db().acquire().await?;
        usages_in(&mut conn, id, customer).await
    }

    /// The configurations whose nodes use `id`: (owner name, node name).
    pub(crate) async fn links_to(&self, id: Uuid) -> Result<Vec<(String, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT o.name AS owner_name, l.node_name AS node_name FROM owner_links l \
             JOIN owners o ON o.id = l.owner_id WHERE l.target_id = $1 \
             ORDER BY o.name COLLATE \"C\", l.node_name COLLATE \"C\"",
        )
        .bind(id)
        .fetch_all(&*self.db())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("owner_name")?, r.try_get("node_name")?))).collect()
    }

    pub(crate) async fn delete_owner(&self, tenant: TenantId, kind: OwnerType, id: Uuid) -> Result<bool> {
        // References and the owner's own links go with it (ON DELETE CASCADE), in the same
        // statement; an owner another one links to stays (the foreign key, checked at statement end).
        let done = sqlx::query("DELETE FROM owners WHERE id = $1 AND tenant_id = $2 AND type = $3")
            .bind(id)
            .bind(tenant.0)
            .bind(kind.as_str())
            .execute(&*self.db())
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
        let sql =
            format!("SELECT {OWNER_COLUMNS} FROM owners WHERE id = $1 AND tenant_id = $2 AND type = $3");
        let row =
            sqlx::query(&sql).bind(id).bind(tenant.0).bind(kind.as_str()).fetch_optional(&*self.db()).await?;
        row.as_ref().map(owner_from).transpose()
    }

    pub(crate) async fn owners(&self, tenant: TenantId, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        let sql = format!(
            "SELECT {OWNER_COLUMNS} FROM owners WHERE tenant_id = $1 AND type = $2 \
             ORDER BY name COLLATE \"C\", id"
        );
        let rows = sqlx::query(&sql).bind(tenant.0).bind(kind.as_str()).fetch_all(&*self.db()).await?;
        rows.iter().map(owner_from).collect()
    }

    pub(crate) async fn owner_summaries(
        &self,
        tenant: TenantId,
        kind: OwnerType,
    ) -> Result<Vec<OwnerRecord>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, type, name, customer_id, created_time, updated_time, \
             json_build_object('type', body::json -> 'type', 'enabled', body::json -> 'enabled')::text AS body \
             FROM owners WHERE tenant_id = $1 AND type = $2 ORDER BY name COLLATE \"C\", id",
        )
        .bind(tenant.0)
        .bind(kind.as_str())
        .fetch_all(&*self.db())
        .await?;
        rows.iter().map(owner_from).collect()
    }

    pub(crate) async fn all_owners(&self, kind: OwnerType) -> Result<Vec<OwnerRecord>> {
        let sql = format!(
            "SELECT {OWNER_COLUMNS} FROM owners WHERE type = $1 ORDER BY tenant_id, name COLLATE \"C\", id"
        );
        let rows = sqlx::query(&sql).bind(kind.as_str()).fetch_all(&*self.db()).await?;
        rows.iter().map(owner_from).collect()
    }

    pub(crate) async fn dangling_references(&self) -> Result<i64> {
        let n = sqlx::query_scalar(
            "SELECT COUNT(*) FROM secret_refs r LEFT JOIN secrets s ON s.id = r.secret_id \
             WHERE s.id IS NULL",
        )
        .fetch_one(&*self.db())
        .await?;
        Ok(n)
    }

    pub(crate) async fn insert_tenant(&self, t: &TenantRecord) -> Result<()> {
        sqlx::query("INSERT INTO tenants (id, name, created_time) VALUES ($1, $2, $3)")
            .bind(t.id.0)
            .bind(&t.name)
            .bind(t.created_time)
            .execute(&*self.db())
            .await?;
        Ok(())
    }

    pub(crate) async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRecord>> {
        let row =
            sqlx::query("SELECT id, name, created_time, destinations_required, cas_required, strict_values, expiry_notices FROM tenants WHERE name = $1")
                .bind(name)
                .fetch_optional(&*self.db())
                .await?;
        row.as_ref().map(tenant_from).transpose()
    }

    /// Inserts a user; a taken user name (on any instance) is refused by the unique constraint. A
    /// customer user's customer must exist, and stays until the user is committed. The tenant is
    /// locked before the customer, in the order `delete_tenant` takes them.
    pub(crate) async fn revoke_session(
        &self,
        user: UserId,
        sid: &str,
        expires: i64,
        max: usize,
    ) -> Result<bool> {
        let mut tx = self.db().begin().await?;
        sqlx::query("INSERT INTO revoked_sessions (sid, user_id, expires_time) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(sid)
            .bind(user.0)
            .bind(expires)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM revoked_sessions WHERE user_id = $1 AND expires_time < $2")
            .bind(user.0)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM revoked_sessions WHERE user_id = $1")
            .bind(user.0)
            .fetch_one(&mut *tx)
            .await?;
        let over = usize::try_from(kept).unwrap_or(usize::MAX) > max;
        if over {
            sqlx::query("DELETE FROM revoked_sessions WHERE user_id = $1")
                .bind(user.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(over)
    }

    pub(crate) async fn revoked_sessions(&self, user: UserId) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT sid FROM revoked_sessions WHERE user_id = $1 AND expires_time >= $2")
            .bind(user.0)
            .bind(now_ms())
            .fetch_all(&*self.db())
            .await?)
    }

    pub(crate) async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&*self.db())
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    pub(crate) async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        let row =
            sqlx::query("SELECT * FROM users WHERE id = $1").bind(id.0).fetch_optional(&*self.db()).await?;
        row.as_ref().map(user_from).transpose()
    }

    pub(crate) async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&*self.db()).await?)
    }
}
