//! Fuzzes uplink bodies through the integrations and their converters, as an unauthenticated
//! sender can send them: the first byte picks LORIOT or HTTP (and whether the body is declared
//! JSON), the rest is the body. Every uplink is converted into messages or refused with an error;
//! nothing panics, and a converter's messages are JSON objects within the store's limits.

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::json;
use veil_integrations::{IntegrationRuntime, Status, deploy_integration, registry};
use veil_store::{Actor, Database, MasterKeySource, Owner, OwnerType, Store, StoreConfig, UserId};

/// The converter both integrations run: the payload as telemetry, and a look at its fields.
const CONVERTER: &str = r#"
let t = if type_of(payload) == "map" { payload } else { #{ value: payload } };
if "data" in t && type_of(t.data) == "string" { t.bytes = t.data.len(); }
#{ deviceName: "fuzzed", deviceType: "sensor", telemetry: t }
"#;

struct Harness {
    runtime: tokio::runtime::Runtime,
    loriot: Arc<IntegrationRuntime>,
    http: Arc<IntegrationRuntime>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let dir = std::env::temp_dir().join(format!("veil-fuzz-uplink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (loriot, http) = runtime.block_on(async {
            let config = StoreConfig {
                database: Database::Sqlite(dir.join("veil.db")),
                master_key: MasterKeySource::Generated(dir.join("master.key")),
                limits: Default::default(),
            };
            let (store, first_start) = Store::open_for_startup(config).await.unwrap();
            let tenant = first_start.create_tenant("Fuzz").await.unwrap();
            let actor = Actor::tenant_admin(tenant.id, UserId::new_random(), "fuzz");
            let chain = uuid::Uuid::new_v4();
            let loriot = json!({
                "name": "LORIOT", "type": "LORIOT", "ruleChainId": chain, "uplinkConverter": CONVERTER,
                "configuration": {"server": "eu1", "appId": "BE7A0000"}
            });
            let http = json!({
                "name": "HTTP", "type": "HTTP", "ruleChainId": chain, "uplinkConverter": CONVERTER,
                "configuration": {"enableSecurity": false}
            });
            let mut started = Vec::new();
            for doc in [loriot, http] {
                let deployment = deploy_integration(&registry(), &store, &actor, &doc).unwrap();
                let id = uuid::Uuid::new_v4();
                let owner = Owner {
                    kind: OwnerType::Integration,
                    id,
                    name: deployment.def.name.clone(),
                    customer_id: None,
                };
                let body = serde_json::to_value(&deployment.def).unwrap();
                store.save_owner(&actor, &owner, &body, &deployment.references).await.unwrap();
                let record = store.owner(&actor, OwnerType::Integration, id).await.unwrap();
                let runtime = IntegrationRuntime::new(&record, store.clone(), deployment);
                runtime.start();
                for _ in 0..200 {
                    if runtime.status() == Status::Active {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert_eq!(runtime.status(), Status::Active);
                started.push(runtime);
            }
            let http = started.pop().unwrap();
            (started.pop().unwrap(), http)
        });
        Harness { runtime, loriot, http }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let h = harness();
    let target = if pick & 1 == 0 { &h.loriot } else { &h.http };
    let mut headers = HeaderMap::new();
    if pick & 2 == 0 {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Ok(messages) = h.runtime.block_on(target.uplink(&headers, body)) {
        for msg in messages {
            assert!(msg.data.is_object(), "a converted message's data is an object: {}", msg.data);
        }
    }
});
