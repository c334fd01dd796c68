//! Running chains and integrations over a [`TempStore`] the way the server does: deploy (validate,
//! check every secret use, build), save with references, start.

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;
use veil_core::{ChainRuntime, Problem, Registry};
use veil_integrations::IntegrationRuntime;
use veil_store::{Owner, OwnerType};

use crate::TempStore;

impl TempStore {
    /// The server's node registry: the built-in nodes and `integration_downlink`, which reaches
    /// this store's running integrations.
    pub fn registry(&self) -> Registry {
        veil_nodes::registry()
            .with(&veil_integrations::DOWNLINK_NODE)
            .with_service(Arc::clone(&self.integrations))
    }

    /// Validates, saves (with references) and starts a chain with the server's node registry.
    pub async fn deploy_chain(&self, chain: &Value) -> Result<ChainRuntime, Vec<Problem>> {
        self.deploy_chain_with(&self.registry(), chain).await
    }

    /// [`TempStore::deploy_chain`] with a registry of the test's own (other nodes or limits).
    pub async fn deploy_chain_with(
        &self,
        registry: &Registry,
        chain: &Value,
    ) -> Result<ChainRuntime, Vec<Problem>> {
        let deployment = veil_core::deploy(registry, &self.store, &self.admin, chain)?;
        let id = Uuid::new_v4();
        let owner =
            Owner { kind: OwnerType::RuleChain, id, name: deployment.def.name.clone(), customer_id: None };
        let body = serde_json::to_value(&deployment.def).unwrap();
        self.store.save_owner(&self.admin, &owner, &body, &deployment.references).await.unwrap();
        Ok(ChainRuntime::new(id, self.admin.tenant_id, self.store.clone(), deployment))
    }

    /// Validates, saves (with references) and starts an integration with a new id.
    pub async fn deploy_integration(&self, doc: &Value) -> Result<Arc<IntegrationRuntime>, Vec<Problem>> {
        self.deploy_integration_as(Uuid::new_v4(), doc).await
    }

    /// Validates, saves (with references) and starts the integration `id` (a new one or a
    /// replacement; the one running under that id stops).
    pub async fn deploy_integration_as(
        &self,
        id: Uuid,
        doc: &Value,
    ) -> Result<Arc<IntegrationRuntime>, Vec<Problem>> {
        let deployment = veil_integrations::deploy_integration(
            &veil_integrations::registry(),
            &self.store,
            &self.admin,
            doc,
        )?;
        let owner =
            Owner { kind: OwnerType::Integration, id, name: deployment.def.name.clone(), customer_id: None };
        let body = serde_json::to_value(&deployment.def).unwrap();
        self.store.save_owner(&self.admin, &owner, &body, &deployment.references).await.unwrap();
        let record = self.store.owner(&self.admin, OwnerType::Integration, id).await.unwrap();
        let runtime = IntegrationRuntime::new(&record, self.store.clone(), deployment);
        self.integrations.insert(Arc::clone(&runtime));
        runtime.start();
        Ok(runtime)
    }
}
