//! The host: the store, the node and integration types, and what runs over them — the rule chains
//! and the integrations — with their whole lifecycle. A configuration is saved here (deploy →
//! check → persist with its references in one transaction → start), removed here (persist →
//! stop), started here at boot, told here about secret changes, and stopped here with its
//! tenant. The HTTP handlers parse requests, call the host or the store, and shape answers.
//!
//! Errors are [`HostError`] kinds; the API chooses status codes for them (`crate::error`).

use std::sync::Arc;

use uuid::Uuid;
use veil_core::{Limits, NodeDescriptor, Registry};
use veil_integrations::{IntegrationDescriptor, IntegrationRegistry, Integrations};
use veil_store::{Actor, OwnerChange, OwnerRecord, OwnerType, SecretId, Store, TenantId};

use crate::queue::Queue;

mod chains;
mod destinations;
mod error;
mod expiry;
mod impact;
mod integrations;
mod rotation;

pub(crate) use self::chains::{Chains, Sent, Trace};
pub use self::destinations::BrokenConfig;
pub(crate) use self::destinations::SettingsChange;
pub use self::error::{HostError, HostResult};
pub(crate) use self::expiry::EXPIRY_CHECK_EVERY;

/// The store and what runs over it: the server's whole lifecycle of rule chains and integrations,
/// without HTTP. `veil serve` makes one; the test kit makes its own over a test's store, so tests
/// deploy through the same checks, persistence and start-up as the API.
pub struct Host {
    store: Store,
    /// The node types chains may use.
    node_types: Registry,
    /// The integration types integrations may use.
    integration_types: IntegrationRegistry,
    /// Running rule chains.
    chains: Chains,
    /// Running integrations (shared with the `integration_downlink` node through the registry).
    integrations: Arc<Integrations>,
    /// Serializes saves and deletes of integrations: routing keys and runtimes follow the database.
    integration_writes: tokio::sync::Mutex<()>,
    /// Secrets whose pending value is being probed here: one run per secret at a time.
    probing: std::sync::Mutex<std::collections::HashSet<SecretId>>,
    /// The message queue (`--queue`): messages are stored there before they are acknowledged
    /// and processed by any instance. Without one, in memory.
    queue: std::sync::OnceLock<Arc<Queue>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("chains", &self.chains.len())
            .field("integrations", &self.integrations.len())
            .finish_non_exhaustive()
    }
}

/// A tenant administrator that is nobody: for reading every configuration of a tenant.
fn system_actor(tenant: TenantId) -> Actor {
    Actor::tenant_admin(tenant, veil_store::UserId(Uuid::nil()), "system")
}

/// The identity used to redeploy a stored configuration at boot: its tenant's administrator, or
/// for a customer's configuration a user of that customer, so secrets no longer shared with the
/// customer fail the redeploy.
fn owner_actor(record: &OwnerRecord) -> Actor {
    let mut actor = system_actor(record.tenant_id);
    if let Some(customer) = record.owner.customer_id {
        actor.customer_id = Some(customer);
        actor.permissions = veil_store::Role::CustomerUser.permissions();
    }
    actor
}

impl Host {
    /// A host over `store` with the built-in node and integration types, nothing running yet.
    pub fn new(store: Store, limits: Limits) -> Self {
        let integrations = Arc::new(Integrations::new());
        let node_types = veil_nodes::registry()
            .with(&veil_integrations::DOWNLINK_NODE)
            .with_service(Arc::clone(&integrations))
            .with_limits(limits);
        // Converters run in the same sandbox as the chains' scripts: one pool of script threads,
        // shared fairly by tenants.
        let integration_types = veil_integrations::registry().with_scripts(limits, node_types.scripts());
        Self {
            store,
            node_types,
            integration_types,
            chains: Chains::default(),
            integrations,
            integration_writes: tokio::sync::Mutex::new(()),
            probing: Default::default(),
            queue: std::sync::OnceLock::new(),
        }
    }

    /// Processes messages through `queue` from now on, and starts this instance's consumers.
    pub(crate) fn use_queue(self: &Arc<Self>, queue: Arc<Queue>) {
        queue.start(self);
        let _ = self.queue.set(queue);
    }

    /// The message queue, if the server runs with one.
    pub(crate) fn queue(&self) -> Option<&Arc<Queue>> {
        self.queue.get()
    }

    /// The secret store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The node types chains may use, with this host's limits and script sandbox (and the
    /// `integration_downlink` node, which reaches this host's integrations).
    pub fn node_registry(&self) -> &Registry {
        &self.node_types
    }

    /// The limits chains, integrations and messages are held to.
    pub(crate) fn limits(&self) -> &Limits {
        self.node_types.limits()
    }

    /// Every node type chains may use.
    pub(crate) fn node_types(&self) -> impl Iterator<Item = &'static NodeDescriptor> + '_ {
        self.node_types.types()
    }

    /// Every integration type.
    pub(crate) fn integration_types(&self) -> impl Iterator<Item = &'static IntegrationDescriptor> + '_ {
        self.integration_types.types()
    }

    // ---- boot and secret changes ----

    /// Starts the stored rule chains, then the integrations that feed them (at boot). A
    /// configuration that no longer deploys is logged and left stopped.
    pub(crate) async fn start_all(&self) -> veil_store::Result<()> {
        for record in self.store.all_owners(OwnerType::RuleChain).await? {
            self.start_chain(&record);
        }
        tracing::info!(chains = self.chains.len(), "rule chains started");
        for record in self.store.all_owners(OwnerType::Integration).await? {
            self.start_integration(&record);
        }
        tracing::info!(integrations = self.integrations.len(), "integrations started");
        Ok(())
    }

    /// Publishes what each chain runs now (before a scrape of the metrics).
    pub(crate) fn publish_in_flight(&self) {
        self.chains.publish_in_flight();
    }

    /// The server is stopping: waits up to `grace` for the messages running in the background
    /// to finish, then stops every integration (no more uplinks) and every chain, whose nodes
    /// close their broker connections cleanly.
    pub(crate) async fn shutdown(&self, grace: std::time::Duration) {
        let queue = async {
            match self.queue() {
                Some(queue) => queue.stop(grace).await,
                None => true,
            }
        };
        let (finished, queue_finished) = tokio::join!(self.chains.finish_work(grace), queue);
        if !queue_finished {
            tracing::warn!(
                "queued messages still in progress after the shutdown grace period: another instance \
                 takes them after the ack wait"
            );
        }
        if !finished {
            tracing::warn!(
                messages = self.chains.work_in_progress(),
                "messages still in progress after the shutdown grace period; stopping anyway"
            );
        }
        for id in self.integrations.ids() {
            self.integrations.remove(id);
        }
        // Closing connections politely may wait for a broker: bounded, the process exits anyway.
        if tokio::time::timeout(grace.max(std::time::Duration::from_secs(1)), self.chains.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("some broker connections did not close in time");
        }
        tracing::info!("rule chains and integrations stopped");
    }

    /// Follows rule chains and integrations saved or deleted through other instances sharing
    /// the database (the store's change feed): each is started, restarted or stopped here too;
    /// after a lost feed connection everything that runs is compared with the database.
    pub(crate) fn follow_owner_changes(
        self: &Arc<Self>,
        mut changes: tokio::sync::broadcast::Receiver<OwnerChange>,
    ) {
        let host = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let result = match changes.recv().await {
                    Ok(OwnerChange::Changed { kind, id, tenant }) => {
                        host.reload_owner(kind, id, tenant).await
                    }
                    Ok(OwnerChange::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        host.reload_all_owners().await
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "a rule chain or integration changed elsewhere could not be read");
                }
            }
        });
    }

    /// Starts, restarts or stops what changed elsewhere. The record is read under the lock the
    /// configuration's saves here hold: a save through this instance that commits after the change
    /// being followed is what keeps running, not the change as read before it.
    async fn reload_owner(&self, kind: OwnerType, id: Uuid, tenant: TenantId) -> veil_store::Result<()> {
        match kind {
            OwnerType::RuleChain => {
                let _one_at_a_time = self.chains.writes.one(id).await;
                match self.store.owner_record(tenant, kind, id).await? {
                    Some(record) => self.start_chain(&record),
                    None => self.chains.remove(id),
                }
            }
            OwnerType::Integration => {
                let _one_at_a_time = self.integration_writes.lock().await;
                match self.store.owner_record(tenant, kind, id).await? {
                    Some(record) => self.start_integration(&record),
                    None => self.integrations.remove(id),
                }
            }
            // The store follows its providers itself.
            OwnerType::SecretProvider => {}
        }
        Ok(())
    }

    async fn reload_all_owners(&self) -> veil_store::Result<()> {
        {
            let _every_chain = self.chains.writes.all().await;
            let chains = self.store.all_owners(OwnerType::RuleChain).await?;
            let stored: std::collections::HashSet<Uuid> = chains.iter().map(|r| r.owner.id).collect();
            for id in self.chains.ids() {
                if !stored.contains(&id) {
                    self.chains.remove(id);
                }
            }
            for record in &chains {
                self.start_chain(record);
            }
        }
        let _one_at_a_time = self.integration_writes.lock().await;
        let integrations = self.store.all_owners(OwnerType::Integration).await?;
        let stored: std::collections::HashSet<Uuid> = integrations.iter().map(|r| r.owner.id).collect();
        for id in self.integrations.ids() {
            if !stored.contains(&id) {
                self.integrations.remove(id);
            }
        }
        for record in &integrations {
            self.start_integration(record);
        }
        Ok(())
    }

    /// Forwards secret changes to the running chains and integrations of the secret's tenant,
    /// until the store closes.
    pub(crate) fn follow_secret_changes(
        self: &Arc<Self>,
        mut events: tokio::sync::broadcast::Receiver<veil_store::SecretEvent>,
    ) {
        let host = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        host.chains.secret_changed(event.tenant_id, &event.name);
                        host.integrations.secret_changed(event.tenant_id, &event.name);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(
                            missed = n,
                            "secret change events were dropped; refreshing every chain"
                        );
                        host.chains.all_secrets_changed();
                        host.integrations.all_secrets_changed();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }

    /// Deletes a tenant with everything in it; its chains and integrations stop.
    pub(crate) async fn remove_tenant(&self, actor: &Actor, id: TenantId) -> HostResult<()> {
        self.store.delete_tenant(actor, id).await?;
        self.chains.remove_tenant(id);
        self.integrations.remove_tenant(id);
        Ok(())
    }

    // ---- rule chains ----

    // ---- integrations ----
}
