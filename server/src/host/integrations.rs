//! Running integrations: save (routing keys and runtimes follow the database), start, removal
//! and the uplinks they receive.

use std::sync::Arc;

use axum::http::HeaderMap;
use serde_json::{Value, json};
use uuid::Uuid;
use veil_integrations::{IntegrationRuntime, deploy_integration};
use veil_store::{Actor, Owner, OwnerRecord, OwnerType, StoreError, TenantId};

use super::{Host, HostError, HostResult, owner_actor};

/// Fields the API adds to an integration; a document read with GET may be sent back with PUT.
const INTEGRATION_VIEW_FIELDS: &[&str] = &["id", "createdTime", "updatedTime", "status", "uplinkPath"];

impl Host {
    /// Runs a stored integration in place of the running one (if any); one that no longer
    /// deploys is logged and stopped.
    pub(super) fn start_integration(&self, record: &OwnerRecord) {
        let actor = owner_actor(record);
        match deploy_integration(&self.integration_types, &self.store, &actor, &record.body) {
            Ok(deployment) => {
                let runtime = IntegrationRuntime::new(record, self.store.clone(), deployment);
                self.integrations.insert(Arc::clone(&runtime));
                runtime.start();
            }
            Err(problems) => {
                self.integrations.remove(record.owner.id);
                let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                tracing::error!(integration = %record.owner.name, id = %record.owner.id, "integration not started: {}", problems.join("; "));
            }
        }
    }

    /// Validates, persists (with references, in one transaction) and starts an integration. The
    /// fields the API adds to its view are dropped; an update without a routing key keeps the
    /// stored one. The routing key is reserved before the save and given back when it fails.
    pub async fn save_integration(&self, actor: &Actor, id: Uuid, mut doc: Value) -> HostResult<OwnerRecord> {
        // One save or delete of integrations at a time: routing keys and runtimes follow the database.
        let _one_at_a_time = self.integration_writes.lock().await;
        let stored = match self.store.owner_visible(actor, OwnerType::Integration, id).await {
            Ok(record) => record.body.get("routingKey").and_then(Value::as_str).map(str::to_owned),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let Value::Object(map) = &mut doc else {
            return Err(HostError::NotAnObject);
        };
        for field in INTEGRATION_VIEW_FIELDS {
            map.remove(*field);
        }
        // An update without a routing key keeps the one LORIOT already pushes to.
        if map.get("routingKey").is_none_or(Value::is_null) {
            map.remove("routingKey");
            if let Some(key) = &stored {
                map.insert("routingKey".into(), json!(key));
            }
        }
        let deployed = deploy_integration(&self.integration_types, &self.store, actor, &doc);
        let chain_problem = self.check_chain(actor, &doc).await?;
        let deployment = match (deployed, chain_problem) {
            (Ok(d), None) => d,
            (Ok(_), Some(p)) => return Err(HostError::Invalid(vec![p])),
            (Err(mut problems), p) => {
                problems.extend(p);
                return Err(HostError::Invalid(problems));
            }
        };
        let key = deployment.def.routing_key.clone().unwrap_or_default();
        if !self.integrations.reserve_key(&key, id) {
            return Err(HostError::RoutingKeyTaken(key));
        }
        let owner = Owner {
            kind: OwnerType::Integration,
            id,
            name: deployment.def.name.clone(),
            customer_id: actor.customer_id,
        };
        let saved = async {
            let body =
                serde_json::to_value(&deployment.def).map_err(|e| HostError::Internal(e.to_string()))?;
            self.store.save_owner(actor, &owner, &body, &deployment.references).await?;
            Ok::<_, HostError>(())
        }
        .await;
        if let Err(e) = saved {
            if stored.as_deref() != Some(key.as_str()) {
                self.integrations.release_key(&key, id);
            }
            return Err(e);
        }
        let record = self.store.owner_visible(actor, OwnerType::Integration, id).await?;
        let runtime = IntegrationRuntime::new(&record, self.store.clone(), deployment);
        self.integrations.insert(Arc::clone(&runtime));
        runtime.start();
        tracing::info!(integration = %owner.name, %id, actor = %actor.username, "integration saved");
        Ok(record)
    }

    /// Deletes an integration (its references go with it) and stops it.
    pub(crate) async fn remove_integration(&self, actor: &Actor, id: Uuid) -> HostResult<()> {
        let _one_at_a_time = self.integration_writes.lock().await;
        self.store.delete_owner(actor, OwnerType::Integration, id).await?;
        let running = self.integrations.get(actor.tenant_id, id);
        self.integrations.remove(id);
        // What it made at the outside service (LORIOT's push output) goes too, in the background:
        // the deletion is done; a failure is logged.
        if let Some(running) = running {
            tokio::spawn(async move {
                if let Err(e) = running.removed().await {
                    tracing::warn!(integration = %running.def().name, "removing what the integration created failed: {e}");
                }
            });
        }
        Ok(())
    }

    /// The running integration `id` of `tenant`, if it runs.
    pub fn running_integration(&self, tenant: TenantId, id: Uuid) -> Option<Arc<IntegrationRuntime>> {
        self.integrations.get(tenant, id)
    }

    /// The id of the integration an uplink URL addresses, if any.
    pub(crate) fn uplink_target(&self, uplink_path: &str, key: &str) -> Option<Uuid> {
        self.integrations.by_routing_key(uplink_path, key).map(|r| r.id())
    }

    /// Every running integration.
    pub(crate) fn integration_runtimes(&self) -> Vec<Arc<IntegrationRuntime>> {
        self.integrations.all()
    }

    /// An uplink to the integration of type `uplink_path` with routing key `key`: admitted into
    /// its rule chain before the converter runs (a full chain costs the sender nothing but the
    /// answer), converted, and processed in order in the background. Returns how many messages
    /// the converter made.
    pub(crate) async fn uplink(
        &self,
        uplink_path: &str,
        key: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> HostResult<usize> {
        let runtime = self
            .integrations
            .by_routing_key(uplink_path, key)
            .ok_or_else(|| HostError::NoUplinkTarget(uplink_path.to_owned()))?;
        let chain_id = runtime.def().rule_chain_id;
        let chain = self
            .chains
            .get(chain_id)
            .filter(|c| c.tenant() == runtime.tenant())
            .ok_or(HostError::UplinkChainNotRunning(chain_id))?;
        if let Some(queue) = self.queue() {
            // Stored before the answer; processed by whichever instance takes them.
            let messages = runtime.uplink(headers, body).await.map_err(HostError::Uplink)?;
            queue.publish(chain.tenant(), chain.id(), &messages).await?;
            return Ok(messages.len());
        }
        let admission = chain.admit().await.map_err(HostError::UplinkBusy)?;
        let messages = runtime.uplink(headers, body).await.map_err(HostError::Uplink)?;
        let count = messages.len();
        self.chains.dispatch(chain, messages, admission);
        Ok(count)
    }
}
