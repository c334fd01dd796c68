//! Hot-path and startup benchmarks of the secret store.
//!
//! - `resolve/text-32B`: `Store::resolve` of a 32-byte TEXT secret by name among 1,000 secrets
//!   (index look-up + AES-256-GCM decrypt). Target: under 300 ns median.
//! - `startup/open-10k-secrets`: `Store::open` of a database holding 10,000 secrets (migrations
//!   check, keyring unwrap, index load). Target: under 1 s.
//! - With `VEIL_TEST_POSTGRES` (a PostgreSQL server URL, as for the tests) both again on
//!   PostgreSQL (`…/postgres`), in a database made for the run (the 10,000 secrets copied there
//!   by `veil migrate`'s copy): `resolve` is the same in-memory path — the bench checks that it
//!   used the database not once — and opening stays under 1 s (checked too).

use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use veil_store::{
    Actor, Database, Limits, MasterKeySource, NewSecret, SecretType, SecretValue, Store, StoreConfig,
    TenantId, UserId,
};

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        database: Database::Sqlite(dir.join("veil.db")),
        master_key: MasterKeySource::Generated(dir.join("master.key")),
        limits: Limits::default(),
    }
}

async fn fill(store: &Store, actor: &Actor, count: usize) {
    for i in 0..count {
        let req = NewSecret {
            name: format!("secret-{i:05}"),
            kind: SecretType::Text,
            description: None,
            value: SecretValue::from(format!("{i:0>32}")),
            file_name: None,
            allowed_destinations: Vec::new(),
            max_versions: None,
            expires_at: None,
        };
        store.create(actor, req).await.expect("create");
    }
}

/// `resolve` of one secret among those in `store`, checking that it never touches the database.
fn bench_resolve(c: &mut Criterion, id: &str, store: &Store, tenant: TenantId) {
    assert_eq!(store.resolve(tenant, "secret-00500").unwrap().len(), 32);
    let queries = store.database_queries();
    c.bench_function(id, |b| b.iter(|| black_box(store.resolve(tenant, black_box("secret-00500")).unwrap())));
    assert_eq!(store.database_queries(), queries, "{id}: resolve used the database");
}

/// `Store::open` of `config`'s 10,000 secrets; the median must stay under a second.
fn bench_open(c: &mut Criterion, rt: &tokio::runtime::Runtime, id: &str, config: impl Fn() -> StoreConfig) {
    let mut group = c.benchmark_group("startup");
    group.sample_size(10);
    let mut times = Vec::new();
    group.bench_function(id, |b| {
        b.iter(|| {
            rt.block_on(async {
                let started = std::time::Instant::now();
                let store = Store::open(config()).await.expect("open");
                assert_eq!(store.secret_count(), 10_000);
                times.push(started.elapsed());
                store.close().await;
            })
        })
    });
    group.finish();
    times.sort();
    let median = times[times.len() / 2];
    assert!(median < std::time::Duration::from_secs(1), "startup/{id}: median {median:?}, target under 1 s");
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let actor = Actor::tenant_admin(TenantId::new_random(), UserId::new_random(), "bench");

    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt.block_on(Store::open(config(dir.path()))).expect("open");
    rt.block_on(fill(&store, &actor, 1_000));
    let tenant = actor.tenant_id;
    bench_resolve(c, "resolve/text-32B", &store, tenant);
    rt.block_on(store.close());

    let big = tempfile::tempdir().expect("tempdir");
    let store = rt.block_on(Store::open(config(big.path()))).expect("open");
    rt.block_on(fill(&store, &actor, 10_000));
    rt.block_on(store.close());
    bench_open(c, &rt, "open-10k-secrets", || config(big.path()));

    if std::env::var_os(veil_tests::POSTGRES_ENV).is_none() {
        eprintln!("PostgreSQL benchmarks not run: set {} to a server URL", veil_tests::POSTGRES_ENV);
        return;
    }
    let (_db, database) = veil_tests::PostgresDatabase::create();
    let Database::Postgres(url) = database.clone() else { unreachable!("a PostgreSQL database") };
    let key = || MasterKeySource::Generated(big.path().join("master.key"));
    rt.block_on(veil_store::migrate_to_postgres(
        &big.path().join("veil.db"),
        key(),
        &url,
        false,
        &mut |_| {},
    ))
    .expect("copy to PostgreSQL");
    let on_postgres =
        || StoreConfig { database: database.clone(), master_key: key(), limits: Limits::default() };
    let store = rt.block_on(Store::open(on_postgres())).expect("open");
    bench_resolve(c, "resolve/text-32B/postgres", &store, tenant);
    rt.block_on(store.close());
    bench_open(c, &rt, "open-10k-secrets/postgres", on_postgres);
}

// The macro generates an undocumented `pub fn`.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(store_benches, super::benches);
}
criterion_main!(group::store_benches);
