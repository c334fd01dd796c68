//! Hot-path and startup benchmarks of the secret store.
//!
//! - `resolve/text-32B`: `Store::resolve` of a 32-byte TEXT secret by name among 1,000 secrets
//!   (index look-up + AES-256-GCM decrypt). Target: under 300 ns median.
//! - `startup/open-10k-secrets`: `Store::open` of a database holding 10,000 secrets (migrations
//!   check, keyring unwrap, index load). Target: under 1 s.

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
        };
        store.create(actor, req).await.expect("create");
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let actor = Actor::tenant_admin(TenantId::new_random(), UserId::new_random(), "bench");

    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt.block_on(Store::open(config(dir.path()))).expect("open");
    rt.block_on(fill(&store, &actor, 1_000));
    let tenant = actor.tenant_id;
    assert_eq!(store.resolve(tenant, "secret-00500").unwrap().len(), 32);
    c.bench_function("resolve/text-32B", |b| {
        b.iter(|| black_box(store.resolve(tenant, black_box("secret-00500")).unwrap()))
    });
    rt.block_on(store.close());

    let big = tempfile::tempdir().expect("tempdir");
    let store = rt.block_on(Store::open(config(big.path()))).expect("open");
    rt.block_on(fill(&store, &actor, 10_000));
    rt.block_on(store.close());
    let mut group = c.benchmark_group("startup");
    group.sample_size(10);
    group.bench_function("open-10k-secrets", |b| {
        b.iter(|| {
            rt.block_on(async {
                let store = Store::open(config(big.path())).await.expect("open");
                assert_eq!(store.secret_count(), 10_000);
                store.close().await;
            })
        })
    });
    group.finish();
}

// The macro generates an undocumented `pub fn`.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(store_benches, super::benches);
}
criterion_main!(group::store_benches);
