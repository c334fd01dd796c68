//! `tenant_usage`, the per-tenant count of secrets and of their kept values' bytes that the secret
//! quotas read (kept by triggers; SQLite migration 0019, PostgreSQL 0017). A database that held
//! secrets before that migration gets counts equal to its rows, and the quotas then refuse exactly
//! where they should; concurrent writers on two instances keep the counts equal to the rows and
//! never go past the quota.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection, SqliteConnection};
use uuid::Uuid;
use veil_store::{
    Actor, Database, Limits, NewProvider, Owner, OwnerType, ProviderPolicy, SecretRef, SecretUpdate,
    SecretValue, Store, StoreConfig, StoreError, TenantId, UserId,
};
use veil_tests::{PostgresDatabase, StoreKind, TempStore, file_secret, generated_key, text_secret};

/// The last migration before `tenant_usage`: SQLite 0018, PostgreSQL 0016.
fn last_before_usage(kind: StoreKind) -> i64 {
    match kind {
        StoreKind::Sqlite => 18,
        StoreKind::Postgres => 16,
    }
}

/// Takes a store's database back to [`last_before_usage`]: drops what the later migrations made
/// (SQLite 0019 `tenant_usage`, 0020 `audit_uses_per_minute` and 0021 `owners_by_tenant`; PostgreSQL 0017 `tenant_usage`
/// and 0018, its recount, which makes nothing) and their records. The schema left is checked against one that migrations up to that version build
/// ([`schema`]), so a migration added later makes the test fail here until it is undone too.
fn downgrade_sql(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Sqlite => {
            "DROP TRIGGER tenant_usage_secret_insert;
             DROP TRIGGER tenant_usage_secret_update;
             DROP TRIGGER tenant_usage_secret_delete;
             DROP TRIGGER tenant_usage_history_insert;
             DROP TRIGGER tenant_usage_history_update;
             DROP TRIGGER tenant_usage_history_delete;
             DROP TRIGGER tenant_usage_pending_insert;
             DROP TRIGGER tenant_usage_pending_update;
             DROP TRIGGER tenant_usage_pending_delete;
             DROP TABLE tenant_usage;
             DROP INDEX audit_uses_per_minute;
             DROP INDEX owners_by_tenant;
             DELETE FROM _sqlx_migrations WHERE version > 18;"
        }
        StoreKind::Postgres => {
            "DROP TRIGGER tenant_usage_secret_insert ON secrets;
             DROP TRIGGER tenant_usage_secret_update ON secrets;
             DROP TRIGGER tenant_usage_secret_delete ON secrets;
             DROP TRIGGER tenant_usage_history ON secret_history;
             DROP TRIGGER tenant_usage_pending ON secret_pending;
             DROP FUNCTION veil_tenant_usage_secret();
             DROP FUNCTION veil_tenant_usage_value();
             DROP TABLE tenant_usage;
             DELETE FROM _sqlx_migrations WHERE version > 16;"
        }
    }
}

/// The store's own migrations, read from `store/migrations/<backend>`, up to `last` (the same
/// SQL, so the same checksums as the store's migrator: the store later runs the rest).
async fn migrations_up_to(kind: StoreKind, last: i64) -> Migrator {
    let backend = match kind {
        StoreKind::Sqlite => "sqlite",
        StoreKind::Postgres => "postgres",
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    let mut migrator = Migrator::new(dir).await.unwrap();
    let kept: Vec<_> = migrator.migrations.iter().filter(|m| m.version <= last).cloned().collect();
    let versions: Vec<i64> = kept.iter().map(|m| m.version).collect();
    assert_eq!(versions, (1..=last).collect::<Vec<_>>(), "the {backend} migrations up to {last}");
    migrator.migrations = kept.into();
    migrator
}

/// A plain connection to a store's database, beside the store.
enum Raw {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Raw {
    async fn open(database: &Database) -> Self {
        match database {
            Database::Sqlite(path) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .foreign_keys(true)
                    .create_if_missing(true);
                Self::Sqlite(SqliteConnection::connect_with(&options).await.unwrap())
            }
            Database::Postgres(url) => Self::Postgres(PgConnection::connect(url).await.unwrap()),
        }
    }

    async fn script(&mut self, sql: &str) {
        match self {
            Self::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
            Self::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
    }

    async fn migrate(&mut self, migrator: &Migrator) {
        match self {
            Self::Sqlite(c) => migrator.run(c).await,
            Self::Postgres(c) => migrator.run(c).await,
        }
        .unwrap();
    }

    /// The first column of every row, as text.
    async fn texts(&mut self, sql: &str) -> Vec<String> {
        match self {
            Self::Sqlite(c) => sqlx::query_scalar(sql).fetch_all(c).await,
            Self::Postgres(c) => sqlx::query_scalar(sql).fetch_all(c).await,
        }
        .unwrap_or_else(|e| panic!("{e}: {sql}"))
    }

    /// Rows of (tenant id as text, a count, another count).
    async fn per_tenant(&mut self, sql: &str) -> BTreeMap<String, (i64, i64)> {
        let rows: Vec<(String, i64, i64)> = match self {
            Self::Sqlite(c) => sqlx::query_as(sql).fetch_all(c).await,
            Self::Postgres(c) => sqlx::query_as(sql).fetch_all(c).await,
        }
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
        rows.into_iter().map(|(tenant, a, b)| (tenant, (a, b))).collect()
    }

    /// Every table, column, index, constraint, trigger and function, one line each, and the
    /// migrations recorded as applied.
    async fn schema(&mut self) -> Vec<String> {
        let sql = match self {
            Self::Sqlite(_) => {
                "SELECT type || ' ' || name || ' ' || tbl_name || ' ' || COALESCE(sql, '') FROM sqlite_master \
                 UNION ALL SELECT 'applied ' || version FROM _sqlx_migrations ORDER BY 1"
            }
            Self::Postgres(_) => {
                "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
                   || ' ' || COALESCE(column_default, '') FROM information_schema.columns WHERE table_schema = 'public' \
                 UNION ALL SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public' \
                 UNION ALL SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' \
                   || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace \
                 UNION ALL SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t \
                   JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal \
                 UNION ALL SELECT 'function ' || proname || ' ' || md5(prosrc) FROM pg_proc \
                   WHERE pronamespace = 'public'::regnamespace \
                 UNION ALL SELECT 'applied ' || version FROM _sqlx_migrations ORDER BY 1"
            }
        };
        self.texts(sql).await
    }

    /// What `tenant_usage` says per tenant (secrets, bytes), rows of zeros left out.
    async fn usage(&mut self) -> BTreeMap<String, (i64, i64)> {
        self.per_tenant(
            "SELECT CAST(tenant_id AS TEXT), secrets, secret_bytes FROM tenant_usage \
             WHERE secrets <> 0 OR secret_bytes <> 0",
        )
        .await
    }

    /// What the rows are per tenant: its secrets, and the bytes of their current, earlier and
    /// pending ciphertexts (what the quotas counted before `tenant_usage`).
    async fn real(&mut self) -> BTreeMap<String, (i64, i64)> {
        self.per_tenant(
            "SELECT CAST(s.tenant_id AS TEXT), COUNT(*), \
               CAST(SUM(LENGTH(s.ciphertext) \
                 + COALESCE((SELECT SUM(LENGTH(h.ciphertext)) FROM secret_history h WHERE h.secret_id = s.id), 0) \
                 + COALESCE((SELECT SUM(LENGTH(p.ciphertext)) FROM secret_pending p WHERE p.secret_id = s.id), 0)) \
                 AS BIGINT) \
             FROM secrets s GROUP BY s.tenant_id",
        )
        .await
    }

    async fn close(self) {
        match self {
            Self::Sqlite(c) => c.close().await.unwrap(),
            Self::Postgres(c) => c.close().await.unwrap(),
        }
    }
}

/// A fresh, empty database of `kind` (a file in `dir`, or a new PostgreSQL database dropped with
/// the returned guard).
fn empty_database(kind: StoreKind, dir: &std::path::Path) -> (Database, Option<PostgresDatabase>) {
    match kind {
        StoreKind::Sqlite => (Database::Sqlite(dir.join("reference.db")), None),
        StoreKind::Postgres => {
            let (made, database) = PostgresDatabase::create();
            (database, Some(made))
        }
    }
}

/// Takes the (closed) store's database back to the version before `tenant_usage`, with every row
/// it holds, and checks that its schema is the one migrations up to SQLite 0018 / PostgreSQL 0016
/// build on an empty database.
async fn back_to_before_usage(t: &TempStore) {
    let kind = t.kind();
    let mut raw = Raw::open(&t.database).await;
    raw.script(downgrade_sql(kind)).await;
    let (reference_db, _dropped_after) = empty_database(kind, t.dir.path());
    let mut reference = Raw::open(&reference_db).await;
    reference.migrate(&migrations_up_to(kind, last_before_usage(kind)).await).await;
    assert_eq!(raw.schema().await, reference.schema().await, "the schema before tenant_usage");
    reference.close().await;
    raw.close().await;
}

/// What one kept value takes: its bytes and AES-GCM's 16-byte tag.
fn kept(len: usize) -> i64 {
    i64::try_from(len).unwrap() + 16
}

fn value(len: usize, fill: u8) -> SecretValue {
    SecretValue::new(vec![fill; len])
}

fn new_value(v: SecretValue) -> SecretUpdate {
    SecretUpdate { value: Some(v), ..Default::default() }
}

fn chain(name: &str) -> Owner {
    Owner { kind: OwnerType::RuleChain, id: Uuid::new_v4(), name: name.into(), customer_id: None }
}

fn uses(secret: &str, node: &str, pointer: &str) -> SecretRef {
    SecretRef {
        secret_name: secret.into(),
        node_id: Some(node.into()),
        node_name: Some(node.into()),
        pointer: pointer.into(),
    }
}

/// A tenant made by the start-up, with its administrator.
async fn tenant(t: &TempStore, name: &str) -> Actor {
    let tenant = t.bootstrap.create_tenant(name).await.unwrap();
    Actor::tenant_admin(tenant.id, UserId::new_random(), "admin")
}

fn limit_error(err: StoreError) -> String {
    match err {
        StoreError::LimitReached(message) => message,
        other => panic!("expected a quota refusal, got: {other}"),
    }
}

const MAX_SECRETS: usize = 5;

backend_tests! {
    #[tokio::test]
    async fn secrets_kept_before_tenant_usage_are_counted_by_its_migration(t: TempStore) {
        // What each tenant keeps, as the store writes it (the tables are the same before the
        // migration: it only adds `tenant_usage` and its triggers); the bytes are counted here
        // from the values written, not read back.
        let mut expected: BTreeMap<TenantId, (i64, i64)> = BTreeMap::new();

        // Acme: five secrets of every kind, at the secrets quota.
        let acme = tenant(&t, "Acme Corp").await;
        let s = &t.store;
        // Three values: the current one and two earlier ones kept.
        let token = s.create(&acme, text_secret("api-token", "tok-v1")).await.unwrap();
        s.update(&acme, token.id, new_value("tok-v2-longer".into())).await.unwrap();
        s.update(&acme, token.id, new_value("tok-v3".into())).await.unwrap();
        let mut acme_bytes = kept(6) + kept(13) + kept(6);
        let ca = s.create(&acme, file_secret("ca-cert", vec![b'c'; 1200])).await.unwrap();
        acme_bytes += kept(1200);
        // A staged rotation: its pending value is kept too.
        let mqtt = s.create(&acme, text_secret("mqtt-password", "mq-old-pass")).await.unwrap();
        s.stage(&acme, mqtt.id, "mq-new-pass-2".into(), None, None).await.unwrap();
        acme_bytes += kept(11) + kept(13);
        // Two versions kept at most: of four values, the last two.
        let mut db = text_secret("db-password", "db-1");
        db.max_versions = Some(2);
        let db = s.create(&acme, db).await.unwrap();
        for v in ["db-22", "db-333", "db-4444"] {
            s.update(&acme, db.id, new_value(v.into())).await.unwrap();
        }
        acme_bytes += kept(6) + kept(7);
        // A linked secret: its value stays in the provider; the row holds an encrypted empty value.
        let mounts = t.dir.path().join("mounts");
        std::fs::create_dir(&mounts).unwrap();
        s.set_provider_policy(ProviderPolicy { file_roots: vec![mounts.clone()], commands: vec![] });
        let provider = NewProvider {
            name: "mounted".into(),
            kind: "files".into(),
            configuration: json!({ "directory": mounts }),
            cache_seconds: Some(0),
        };
        s.create_provider(&acme, provider).await.unwrap();
        let (linked, source) = veil_tests::linked_secret("vault-token", "mounted", "token");
        s.create_linked(&acme, linked, source).await.unwrap();
        acme_bytes += kept(0);
        // Gone, with its earlier value: counts for nothing.
        let old = s.create(&acme, text_secret("old-key", "old-1")).await.unwrap();
        s.update(&acme, old.id, new_value("old-2".into())).await.unwrap();
        s.delete(&acme, old.id).await.unwrap();
        // Shared with a customer, used by a rule chain.
        let customer = s.create_customer(&acme, "Customer A").await.unwrap();
        s.share(&acme, token.id, customer.id).await.unwrap();
        let refs = [
            uses("api-token", "call", "/nodes/0/configuration/credentials/token"),
            uses("mqtt-password", "publish", "/nodes/1/configuration/credentials/password"),
        ];
        s.save_owner(&acme, &chain("Forward"), &json!({"name": "Forward", "nodes": []}), &refs).await.unwrap();
        expected.insert(acme.tenant_id, (5, acme_bytes));

        // Beta: three secrets, room for two more.
        let beta = tenant(&t, "Beta Ltd").await;
        s.create(&beta, text_secret("s1", "one")).await.unwrap();
        s.create(&beta, text_secret("s2", "two-two")).await.unwrap();
        s.create(&beta, file_secret("s3", vec![b'3'; 100])).await.unwrap();
        let gone = s.create(&beta, text_secret("s4", "four")).await.unwrap();
        s.delete(&beta, gone.id).await.unwrap();
        expected.insert(beta.tenant_id, (3, kept(3) + kept(7) + kept(100)));

        // Gamma: every secret deleted again.
        let gamma = tenant(&t, "Gamma GmbH").await;
        for name in ["g1", "g2"] {
            let made = s.create(&gamma, text_secret(name, "gone")).await.unwrap();
            s.delete(&gamma, made.id).await.unwrap();
        }

        // Delta: rule chains, no secret.
        let delta = tenant(&t, "Delta Inc").await;
        for name in ["c1", "c2"] {
            s.save_owner(&delta, &chain(name), &json!({"name": name, "nodes": []}), &[]).await.unwrap();
        }
        t.store.close().await;

        back_to_before_usage(&t).await;

        // The next start runs the remaining migrations.
        let limits = Limits {
            max_secrets_per_tenant: MAX_SECRETS,
            max_secret_bytes_per_tenant: usize::try_from(acme_bytes).unwrap() + 200,
            max_chains_per_tenant: 2,
            ..Limits::default()
        };
        let config = StoreConfig { database: t.database.clone(), master_key: generated_key(t.dir.path()), limits };
        let s = Store::open(config).await.unwrap();
        let mut raw = Raw::open(&t.database).await;
        let text_ids = |counts: &BTreeMap<TenantId, (i64, i64)>| -> BTreeMap<String, (i64, i64)> {
            counts.iter().map(|(tenant, n)| (tenant.to_string(), *n)).collect()
        };
        assert_eq!(raw.real().await, text_ids(&expected), "the rows");
        assert_eq!(raw.usage().await, text_ids(&expected), "tenant_usage after the migration");

        // Acme is at its secrets quota: refused, naming the limit and the count.
        let err = s.create(&acme, text_secret("sixth", "x")).await.unwrap_err();
        assert_eq!(
            limit_error(err),
            "limit maxSecretsPerTenant (5) exceeded: the tenant would have 6 secrets; delete some first"
        );
        // And 200 bytes under its bytes quota: a new value keeps the old one as an earlier
        // version, so a value of 185 bytes (201 with its tag) is one byte too many, 184 fit.
        let max_bytes = acme_bytes + 200;
        let err = s.update(&acme, ca.id, new_value(value(185, b'n'))).await.unwrap_err();
        assert_eq!(
            limit_error(err),
            format!(
                "limit maxSecretBytesPerTenant ({max_bytes}) exceeded: the tenant would have {} bytes \
                 of secret values; delete some first",
                max_bytes + 1
            )
        );
        assert_eq!(s.update(&acme, ca.id, new_value(value(184, b'n'))).await.unwrap().version, 2);
        // Deleting a secret gives back its place and all its kept values' bytes.
        s.delete(&acme, db.id).await.unwrap();
        s.create(&acme, text_secret("sixth", "x")).await.unwrap();
        let err = s.create(&acme, text_secret("seventh", "x")).await.unwrap_err();
        assert!(limit_error(err).contains("would have 6 secrets"));
        let acme_now = max_bytes - kept(6) - kept(7) + kept(1);
        expected.insert(acme.tenant_id, (5, acme_now));

        // Beta has room for exactly two more.
        s.create(&beta, text_secret("s5", "five")).await.unwrap();
        s.create(&beta, text_secret("s6", "six")).await.unwrap();
        let err = s.create(&beta, text_secret("s7", "seven")).await.unwrap_err();
        assert!(limit_error(err).starts_with("limit maxSecretsPerTenant (5) exceeded: the tenant would have 6"));
        expected.get_mut(&beta.tenant_id).unwrap().0 += 2;
        expected.get_mut(&beta.tenant_id).unwrap().1 += kept(4) + kept(3);

        // Gamma starts from nothing: all five fit, not a sixth.
        for i in 0..MAX_SECRETS {
            s.create(&gamma, text_secret(&format!("g{i}"), "again")).await.unwrap();
        }
        let err = s.create(&gamma, text_secret("g5", "again")).await.unwrap_err();
        assert!(limit_error(err).contains("would have 6 secrets"));
        expected.insert(gamma.tenant_id, (5, 5 * kept(5)));

        // Delta's chains are at their quota; a secret is its first.
        let err = s.save_owner(&delta, &chain("c3"), &json!({"name": "c3", "nodes": []}), &[]).await.unwrap_err();
        assert!(limit_error(err).starts_with("limit maxChainsPerTenant (2) exceeded"));
        s.create(&delta, text_secret("d1", "delta")).await.unwrap();
        expected.insert(delta.tenant_id, (1, kept(5)));

        // The triggers kept counting from the migrated rows.
        assert_eq!(raw.real().await, text_ids(&expected), "the rows at the end");
        assert_eq!(raw.usage().await, text_ids(&expected), "tenant_usage at the end");
        raw.close().await;
        s.close().await;
    }
}

/// One tenant's secrets and bytes as the rows have them and as `tenant_usage` has them, read by
/// one statement (one snapshot of what is committed): `(rows, counted, row bytes, counted bytes)`.
const SNAPSHOT: &str = "SELECT \
    (SELECT COUNT(*) FROM secrets WHERE CAST(tenant_id AS TEXT) = $1), \
    COALESCE((SELECT secrets FROM tenant_usage WHERE CAST(tenant_id AS TEXT) = $1), 0), \
    COALESCE((SELECT SUM(LENGTH(ciphertext)) FROM secrets WHERE CAST(tenant_id AS TEXT) = $1), 0) \
      + COALESCE((SELECT SUM(LENGTH(h.ciphertext)) FROM secret_history h JOIN secrets s ON s.id = h.secret_id \
                  WHERE CAST(s.tenant_id AS TEXT) = $1), 0) \
      + COALESCE((SELECT SUM(LENGTH(p.ciphertext)) FROM secret_pending p JOIN secrets s ON s.id = p.secret_id \
                  WHERE CAST(s.tenant_id AS TEXT) = $1), 0), \
    COALESCE((SELECT secret_bytes FROM tenant_usage WHERE CAST(tenant_id AS TEXT) = $1), 0)";

impl Raw {
    async fn snapshot(&mut self, tenant: TenantId) -> (i64, i64, i64, i64) {
        let tenant = tenant.to_string();
        match self {
            Self::Sqlite(c) => sqlx::query_as(SNAPSHOT).bind(tenant).fetch_one(c).await,
            Self::Postgres(c) => sqlx::query_as(SNAPSHOT).bind(tenant).fetch_one(c).await,
        }
        .unwrap()
    }
}

/// What the writers of the concurrency test did.
#[derive(Debug, Default)]
struct Tally {
    created: usize,
    refused: usize,
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_creates_and_deletes_near_the_quota_keep_tenant_usage_exact(t: TempStore) {
        const MAX: usize = 6;
        const KEPT: usize = 4;
        let limits = Limits { max_secrets_per_tenant: MAX, ..Limits::default() };
        // On PostgreSQL, two instances on one database, as two members of a cluster. A SQLite file
        // belongs to one server: there the writers share one instance.
        let a = t.open_instance_with(limits).await;
        let b = match t.kind() {
            StoreKind::Postgres => t.open_instance_with(limits).await,
            StoreKind::Sqlite => a.clone(),
        };
        let admin = t.admin.clone();
        let tenant = admin.tenant_id;
        for i in 0..KEPT {
            a.create(&admin, text_secret(&format!("kept-{i}"), "kept")).await.unwrap();
        }

        // Watches every committed state while the writers run: the counts always equal the rows,
        // and the rows never go past the quota.
        let stop = Arc::new(AtomicBool::new(false));
        let mut raw = Raw::open(&t.database).await;
        let watching = Arc::clone(&stop);
        let watcher = tokio::spawn(async move {
            let (mut most, mut looks) = (0, 0);
            while !watching.load(Ordering::Relaxed) {
                let (rows, counted, bytes, counted_bytes) = raw.snapshot(tenant).await;
                assert_eq!((counted, counted_bytes), (rows, bytes), "tenant_usage against the rows, look {looks}");
                most = most.max(rows);
                looks += 1;
                tokio::task::yield_now().await;
            }
            (raw, most, looks)
        });

        // Writers on both instances, each creating secrets (two places are free), giving them a
        // new value of another size or a pending one, and deleting them again.
        const WRITERS: usize = 8;
        const ROUNDS: usize = 12;
        let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let store = if w % 2 == 0 { a.clone() } else { b.clone() };
            let (admin, barrier) = (admin.clone(), Arc::clone(&barrier));
            writers.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut tally = Tally::default();
                for round in 0..ROUNDS {
                    let name = format!("w{w}-r{round}");
                    let made = match store.create(&admin, text_secret(&name, &"v".repeat(1 + round))).await {
                        Ok(made) => made,
                        Err(StoreError::LimitReached(message)) => {
                            assert!(message.starts_with("limit maxSecretsPerTenant (6) exceeded"), "{message}");
                            tally.refused += 1;
                            tokio::task::yield_now().await;
                            continue;
                        }
                        Err(other) => panic!("{name}: {other}"),
                    };
                    tally.created += 1;
                    if round % 2 == 0 {
                        let longer = new_value("w".repeat(40 + w).as_str().into());
                        store.update(&admin, made.id, longer).await.unwrap_or_else(|e| panic!("{name}: {e}"));
                    } else {
                        let pending = SecretValue::from("p".repeat(20 + round).as_str());
                        store.stage(&admin, made.id, pending, None, None).await.unwrap_or_else(|e| panic!("{name}: {e}"));
                    }
                    store.delete(&admin, made.id).await.unwrap_or_else(|e| panic!("{name}: {e}"));
                }
                tally
            }));
        }
        let mut total = Tally::default();
        for writer in writers {
            let tally = writer.await.unwrap();
            total.created += tally.created;
            total.refused += tally.refused;
        }
        stop.store(true, Ordering::Relaxed);
        let (mut raw, most, looks) = watcher.await.unwrap();
        assert_eq!(total.created + total.refused, WRITERS * ROUNDS);
        // The quota was reached again and again, and never passed.
        assert!(total.created > MAX - KEPT && total.refused > 0, "{total:?}");
        assert!(looks > 0);
        assert!(most <= i64::try_from(MAX).unwrap(), "{most} secrets were committed at once; the quota is {MAX}");

        // What is left: the kept secrets, counted exactly.
        let kept_bytes = i64::try_from(KEPT).unwrap() * kept(4);
        assert_eq!(raw.snapshot(tenant).await, (4, 4, kept_bytes, kept_bytes));
        raw.close().await;
        // And the quota still stops at its place, on either instance.
        a.create(&admin, text_secret("fifth", "x")).await.unwrap();
        b.create(&admin, text_secret("sixth", "x")).await.unwrap();
        let err = a.create(&admin, text_secret("seventh", "x")).await.unwrap_err();
        assert_eq!(
            limit_error(err),
            "limit maxSecretsPerTenant (6) exceeded: the tenant would have 7 secrets; delete some first"
        );
    }
}

/// A rolling upgrade on PostgreSQL: one instance starts with the version that adds
/// `tenant_usage` while another, still on the version before, deletes a secret. The delete
/// commits after the migration counted the rows and before its triggers exist; the count must
/// still end equal to the rows, or the tenant is refused a place it has (or given one it has not)
/// for good (PostgreSQL 0018 counts again once no write is in flight).
#[tokio::test]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn a_delete_by_an_instance_of_the_version_before_during_the_migration_is_counted() {
    let t = TempStore::postgres().await;
    let admin = t.admin.clone();
    for name in ["first", "second"] {
        t.store.create(&admin, text_secret(name, "value")).await.unwrap();
    }
    t.store.close().await;
    back_to_before_usage(&t).await;
    let Database::Postgres(url) = &t.database else { unreachable!() };

    // The instance of the version before deletes a secret; its transaction is still open.
    let mut old = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("BEGIN; DELETE FROM secrets WHERE name = 'second'").execute(&mut old).await.unwrap();
    // The new instance starts: its migration counts the rows, then waits for the delete's lock
    // to create its triggers.
    let limits = Limits { max_secrets_per_tenant: 2, ..Limits::default() };
    let config =
        StoreConfig { database: t.database.clone(), master_key: generated_key(t.dir.path()), limits };
    let mut watch = PgConnection::connect(url).await.unwrap();
    let waiting = "SELECT COUNT(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%tenant_usage%'";
    let commit_once_waiting = async {
        let mut looks = 0;
        while sqlx::query_scalar::<_, i64>(waiting).fetch_one(&mut watch).await.unwrap() == 0 {
            assert!(looks < 300, "the migration never waited for the open delete");
            looks += 1;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        sqlx::raw_sql("COMMIT").execute(&mut old).await.unwrap();
    };
    let (store, ()) = tokio::join!(Store::open(config), commit_once_waiting);
    let store = store.unwrap();

    let mut raw = Raw::Postgres(watch);
    let tenant = admin.tenant_id;
    let one = kept(5);
    assert_eq!(raw.snapshot(tenant).await, (1, 1, one, one), "(rows, counted, bytes, counted bytes)");
    // One secret: one more fits under a quota of two, not a third.
    store.create(&admin, text_secret("again", "value")).await.unwrap();
    let err = store.create(&admin, text_secret("third", "value")).await.unwrap_err();
    assert_eq!(
        limit_error(err),
        "limit maxSecretsPerTenant (2) exceeded: the tenant would have 3 secrets; delete some first"
    );
    raw.close().await;
    old.close().await.unwrap();
    store.close().await;
}
