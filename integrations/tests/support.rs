use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use uuid::Uuid;
use veil_core::Problem;
use veil_integrations::{IntegrationRuntime, Status, deploy_integration, registry};
use veil_store::{
    Actor, Database, Limits, MasterKeySource, NewSecret, Owner, OwnerType, SecretType, SecretUpdate,
    SecretValue, Store, StoreConfig, TenantId, UserId,
};

pub(crate) struct Env {
    _dir: tempfile::TempDir,
    pub(crate) store: Store,
    pub(crate) admin: Actor,
}

impl Env {
    pub(crate) async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig {
            database: Database::Sqlite(dir.path().join("veil.db")),
            master_key: MasterKeySource::Generated(dir.path().join("master.key")),
            limits: Limits::default(),
        })
        .await
        .unwrap();
        let admin = Actor::tenant_admin(TenantId::new_random(), UserId::new_random(), "admin");
        Self { _dir: dir, store, admin }
    }

    pub(crate) async fn secret(&self, name: &str, value: &str) {
        let req = NewSecret {
            name: name.into(),
            kind: SecretType::Text,
            description: None,
            value: SecretValue::from(value),
            file_name: None,
        };
        self.store.create(&self.admin, req).await.unwrap();
    }

    /// Sets a new value, as `PATCH /api/secrets/{id}` does.
    pub(crate) async fn rotate(&self, name: &str, value: &str) {
        let id = self.store.find(&self.admin, name).unwrap().id;
        let update = SecretUpdate { value: Some(SecretValue::from(value)), ..Default::default() };
        self.store.update(&self.admin, id, update).await.unwrap();
    }

    /// Validates, saves (with references) and starts an integration, as the server does.
    pub(crate) async fn deploy(&self, doc: &Value) -> Result<Arc<IntegrationRuntime>, Vec<Problem>> {
        self.deploy_as(Uuid::new_v4(), doc).await
    }

    pub(crate) async fn deploy_as(
        &self,
        id: Uuid,
        doc: &Value,
    ) -> Result<Arc<IntegrationRuntime>, Vec<Problem>> {
        let deployment = deploy_integration(&registry(), &self.store, &self.admin, doc)?;
        let owner =
            Owner { kind: OwnerType::Integration, id, name: deployment.def.name.clone(), customer_id: None };
        let body = serde_json::to_value(&deployment.def).unwrap();
        self.store.save_owner(&self.admin, &owner, &body, &deployment.references).await.unwrap();
        let runtime = IntegrationRuntime::new(id, self.admin.tenant_id, self.store.clone(), deployment);
        runtime.start();
        Ok(runtime)
    }
}

/// Waits until the integration has left `starting`.
pub(crate) async fn settled(runtime: &IntegrationRuntime) -> Status {
    for _ in 0..200 {
        match runtime.status() {
            Status::Starting => tokio::time::sleep(Duration::from_millis(25)).await,
            other => return other,
        }
    }
    panic!("integration still starting after 5 s");
}

pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

pub(crate) fn paths(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.path.as_str()).collect()
}
