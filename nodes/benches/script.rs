//! Script node benchmarks, against a real store (SQLite in a temporary directory).
//!
//! - `script/filter-per-message`: one message through a chain whose only node is the Rhai filter
//!   `msg.temperature > 20`, on a current-thread tokio runtime (scripts run on the script pool).
//! - `script/deploy-1000-nodes`: validating, compiling and starting a chain of 1,000 script nodes.
//!   Target: under 1 s and under 50 MB; the resident memory the deployment adds is measured once
//!   (from /proc/self/statm) before the timing and the bench refuses to run above 50 MB.

use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use serde_json::{Value, json};
use veil_core::{ChainRuntime, Msg};
use veil_store::{Actor, Database, Limits, MasterKeySource, Store, StoreConfig, TenantId, UserId};

fn chain_of_scripts(n: usize) -> Value {
    let nodes: Vec<Value> = (0..n)
        .map(|i| {
            json!({"type": "script", "name": format!("S{i}"),
                   "configuration": {"mode": "filter", "script": format!("msg.temperature > {i}")}})
        })
        .collect();
    let connections: Vec<Value> =
        (1..n).map(|i| json!({"fromIndex": i - 1, "toIndex": i, "type": "True"})).collect();
    json!({"name": "scripts", "nodes": nodes, "connections": connections})
}

/// Resident set size of this process, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()).unwrap_or(0) * 4096
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let actor = Actor::tenant_admin(TenantId::new_random(), UserId::new_random(), "bench");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt
        .block_on(Store::open(StoreConfig {
            database: Database::Sqlite(dir.path().join("veil.db")),
            master_key: MasterKeySource::Generated(dir.path().join("master.key")),
            limits: Limits::default(),
        }))
        .expect("open store");
    let registry = veil_nodes::registry();

    let filter = chain_of_scripts(1);
    let deployment = veil_core::deploy(&registry, &store, &actor, &filter).expect("deploy");
    let runtime = ChainRuntime::new(uuid::Uuid::new_v4(), actor.tenant_id, store.clone(), deployment);
    let msg =
        Msg::new("POST_TELEMETRY_REQUEST", "thermostat-1", json!({"temperature": 21.5, "humidity": 40}));
    let trace = rt.block_on(runtime.process(msg.clone()));
    assert_eq!(trace[0].relation, ["True"], "{trace:?}");
    let mut group = c.benchmark_group("script");
    group.bench_function("filter-per-message", |b| {
        b.iter(|| black_box(rt.block_on(runtime.process(msg.clone()))));
    });

    let big = chain_of_scripts(1000);
    let before = rss();
    let deployment = veil_core::deploy(&registry, &store, &actor, &big).expect("deploy 1000 nodes");
    let held = ChainRuntime::new(uuid::Uuid::new_v4(), actor.tenant_id, store.clone(), deployment);
    let added = rss().saturating_sub(before);
    println!("deploy-1000-nodes: resident memory added {:.1} MB", added as f64 / 1e6);
    assert!(added < 50_000_000, "a 1,000-node chain added {added} bytes (target: under 50 MB)");
    drop(held);
    group.sample_size(10);
    group.bench_function("deploy-1000-nodes", |b| {
        b.iter(|| {
            let deployment = veil_core::deploy(&registry, &store, &actor, &big).expect("deploy");
            black_box(ChainRuntime::new(uuid::Uuid::new_v4(), actor.tenant_id, store.clone(), deployment))
        });
    });
    group.finish();
    rt.block_on(store.close());
}

// The macro generates an undocumented `pub fn`.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::benches);
}
criterion_main!(group::benches);
