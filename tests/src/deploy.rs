//! Running chains and integrations over a [`TempStore`] through the server's own [`Host`]: the
//! same deploy, checks, save (with references, in one transaction) and start as the API's.

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;
use veil_core::{ChainRuntime, Limits, Problem, Registry};
use veil_integrations::IntegrationRuntime;
use veil_server::{Host, HostError};

use crate::TempStore;

/// A host's refusal as problems (what a test asserts on); any other failure is a broken test
/// environment.
fn problems(e: HostError) -> Vec<Problem> {
    match e {
        HostError::Invalid(problems) => problems,
        e => panic!("the host failed: {e}"),
    }
}

impl TempStore {
    /// The server's node registry: the built-in nodes and `integration_downlink`, which reaches
    /// this store's running integrations.
    pub fn registry(&self) -> Registry {
        self.host.node_registry().clone()
    }

    /// Validates, saves (with references) and starts a chain, as `PUT /api/rule-chains/{id}` does.
    pub async fn deploy_chain(&self, chain: &Value) -> Result<Arc<ChainRuntime>, Vec<Problem>> {
        deploy_chain_on(&self.host, self, chain).await
    }

    /// [`TempStore::deploy_chain`] on a host of its own with other `limits` (the chain runs
    /// under them, the store's other chains under theirs).
    pub async fn deploy_chain_with(
        &self,
        limits: Limits,
        chain: &Value,
    ) -> Result<Arc<ChainRuntime>, Vec<Problem>> {
        deploy_chain_on(&Host::new(self.store.clone(), limits), self, chain).await
    }

    /// A running rule chain for integrations to feed (one `log` node); its id.
    pub async fn chain_to_feed(&self) -> Uuid {
        let chain = serde_json::json!({
            "name": "Uplinks",
            "nodes": [{"type": "log", "name": "Log", "configuration": {}}],
            "connections": []
        });
        self.deploy_chain(&chain).await.expect("a one-node chain deploys").id()
    }

    /// Validates, saves (with references) and starts an integration with a new id.
    pub async fn deploy_integration(&self, doc: &Value) -> Result<Arc<IntegrationRuntime>, Vec<Problem>> {
        self.deploy_integration_as(Uuid::new_v4(), doc).await
    }

    /// Validates, saves (with references) and starts the integration `id` (a new one or a
    /// replacement; the one running under that id stops), as `PUT /api/integrations/{id}` does.
    pub async fn deploy_integration_as(
        &self,
        id: Uuid,
        doc: &Value,
    ) -> Result<Arc<IntegrationRuntime>, Vec<Problem>> {
        self.host.save_integration(&self.admin, id, doc.clone()).await.map_err(problems)?;
        Ok(self.host.running_integration(self.admin.tenant_id, id).expect("a saved integration runs"))
    }
}

async fn deploy_chain_on(
    host: &Host,
    env: &TempStore,
    chain: &Value,
) -> Result<Arc<ChainRuntime>, Vec<Problem>> {
    let id = Uuid::new_v4();
    host.save_chain(&env.admin, id, chain).await.map_err(problems)?;
    Ok(host.chain(id).expect("a saved chain runs"))
}
