//! The host: the store, the node and integration types, and what runs over them — the rule chains
//! and the integrations — with their whole lifecycle. A configuration is saved here (deploy →
//! check → persist with its references in one transaction → start), removed here (persist →
//! stop), started here at boot, told here about secret changes, and stopped here with its
//! tenant. The HTTP handlers parse requests, call the host or the store, and shape answers.
//!
//! Errors are [`HostError`] kinds; the API chooses status codes for them (`crate::error`).

use std::sync::Arc;

use axum::http::HeaderMap;
use dashmap::DashMap;
use serde_json::{Value, json};
use uuid::Uuid;
use veil_core::{Admission, Busy, ChainRuntime, Limits, Msg, NodeDescriptor, Problem, Registry, deploy};
use veil_integrations::{
    IntegrationDescriptor, IntegrationRegistry, IntegrationRuntime, Integrations, UplinkError,
    deploy_integration,
};
use veil_store::{
    Actor, CustomerId, Operation, Owner, OwnerChange, OwnerLink, OwnerRecord, OwnerType, Resource, SecretId,
    Store, StoreError, TenantId,
};

/// Fields the API adds to an integration; a document read with GET may be sent back with PUT.
const INTEGRATION_VIEW_FIELDS: &[&str] = &["id", "createdTime", "updatedTime", "status", "uplinkPath"];

/// Why the host refused or failed. The API maps each kind to a status and a code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum HostError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration does not deploy: every problem, each with its JSON pointer (a missing
    /// permission among them makes it a refusal rather than a validation error).
    #[error("invalid configuration ({} problems)", .0.len())]
    Invalid(Vec<Problem>),
    /// An integration document that is not a JSON object.
    #[error("body: expected a JSON object (an integration)")]
    NotAnObject,
    /// Another integration holds the routing key.
    #[error("routingKey: '{0}' is used by another integration")]
    RoutingKeyTaken(String),
    /// The rule chain is stored but not running (it did not deploy at boot).
    #[error("rule chain '{0}' is not running; see the server log")]
    ChainNotRunning(Uuid),
    /// The integration is stored but not running.
    #[error("integration '{0}' is not running")]
    IntegrationNotRunning(Uuid),
    /// What a chain computed may show values of secrets the actor may not use.
    #[error("{0}")]
    MayNotWatch(String),
    /// A new `allowedDestinations` would refuse what configurations send at save; the users.
    #[error("{0}")]
    DestinationsInUse(String, Value),
    /// No integration of this uplink type has the routing key.
    #[error("no {0} integration with this routing key")]
    NoUplinkTarget(String),
    /// The rule chain an uplink feeds is not running.
    #[error("the integration's rule chain '{0}' is not running")]
    UplinkChainNotRunning(Uuid),
    /// The rule chain an uplink feeds has too many messages in flight.
    #[error("{0}")]
    UplinkBusy(Busy),
    /// The integration refused or could not convert an uplink.
    #[error("{}", .0.message)]
    Uplink(UplinkError),
    /// A bug; the details go to the log only.
    #[error("{0}")]
    Internal(String),
}

/// Result of a host operation.
pub(crate) type HostResult<T> = Result<T, HostError>;

/// The running rule chains, by id.
#[derive(Debug, Default)]
pub(crate) struct Chains {
    by_id: DashMap<Uuid, Arc<ChainRuntime>>,
    /// The customer each chain belongs to (`None`: the tenant's), for visibility checks that
    /// need no database read.
    customers: DashMap<Uuid, Option<CustomerId>>,
}

impl Chains {
    /// Runs `runtime` (of `customer`, or the tenant's) in place of the chain with the same id.
    fn insert(&self, runtime: ChainRuntime, customer: Option<CustomerId>) {
        self.customers.insert(runtime.id(), customer);
        if let Some(old) = self.by_id.insert(runtime.id(), Arc::new(runtime)) {
            old.stop();
        }
    }

    /// The ids of the running chains.
    fn ids(&self) -> Vec<Uuid> {
        self.by_id.iter().map(|c| *c.key()).collect()
    }

    /// Forgets a chain.
    fn remove(&self, id: Uuid) {
        if let Some((_, old)) = self.by_id.remove(&id) {
            old.stop();
        }
        self.customers.remove(&id);
    }

    /// Forgets every chain of a tenant (the tenant was deleted).
    fn remove_tenant(&self, tenant: TenantId) {
        self.by_id.retain(|_, c| {
            let keep = c.tenant() != tenant;
            if !keep {
                c.stop();
            }
            keep
        });
        self.customers.retain(|id, _| self.by_id.contains_key(id));
    }

    /// A running chain `actor` can see (its tenant's; a customer user's only when its customer's).
    fn visible(&self, actor: &Actor, id: Uuid) -> Option<Arc<ChainRuntime>> {
        let chain = self.get(id).filter(|c| c.tenant() == actor.tenant_id)?;
        let customer = *self.customers.get(&id)?;
        (actor.customer_id.is_none() || actor.customer_id == customer).then_some(chain)
    }

    /// A running chain by id.
    fn get(&self, id: Uuid) -> Option<Arc<ChainRuntime>> {
        self.by_id.get(&id).map(|r| Arc::clone(r.value()))
    }

    /// How many run.
    fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Tells the chains of `tenant` that `name` changed.
    fn secret_changed(&self, tenant: TenantId, name: &str) {
        for chain in self.by_id.iter().filter(|c| c.tenant() == tenant) {
            chain.secret_changed(name);
        }
    }

    /// Tells every chain that any secret may have changed.
    fn all_secrets_changed(&self) {
        for chain in self.by_id.iter() {
            chain.all_secrets_changed();
        }
    }
}

/// The store and what runs over it.
pub(crate) struct Host {
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

/// `Ok` when nothing broke; otherwise the 409 naming each configuration and its fields.
fn destinations_in_use(what: String, broken: Vec<Value>) -> HostResult<()> {
    if broken.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = broken
        .iter()
        .map(|b| {
            let kind = if b["type"] == "RULE_CHAIN" { "rule chain" } else { "integration" };
            let sends: Vec<&str> =
                b["problems"].as_array().into_iter().flatten().filter_map(|p| p["path"].as_str()).collect();
            format!("{kind} '{}' ({})", b["name"].as_str().unwrap_or_default(), sends.join(", "))
        })
        .collect();
    Err(HostError::DestinationsInUse(
        format!("allowedDestinations: {what}: {}", names.join("; ")),
        Value::Array(broken),
    ))
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

/// Runs `messages` through `chain` in order, in the background; the admission is held until the
/// last one is done.
pub(crate) fn dispatch(chain: Arc<ChainRuntime>, messages: Vec<Msg>, admission: Admission) {
    tokio::spawn(async move {
        for msg in messages {
            chain.process(msg).await;
        }
        drop(admission);
    });
}

impl Host {
    /// A host over `store` with the built-in node and integration types, nothing running yet.
    pub(crate) fn new(store: Store, limits: Limits) -> Self {
        let integrations = Arc::new(Integrations::new());
        let node_types = veil_nodes::registry()
            .with(&veil_integrations::DOWNLINK_NODE)
            .with_service(Arc::clone(&integrations))
            .with_limits(limits);
        Self {
            store,
            node_types,
            integration_types: veil_integrations::registry(),
            chains: Chains::default(),
            integrations,
            integration_writes: tokio::sync::Mutex::new(()),
        }
    }

    /// The secret store.
    pub(crate) fn store(&self) -> &Store {
        &self.store
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

    /// Runs a stored chain in place of the running one (if any); one that no longer deploys is
    /// logged and stopped.
    fn start_chain(&self, record: &OwnerRecord) {
        let actor = owner_actor(record);
        match deploy(&self.node_types, &self.store, &actor, &record.body) {
            Ok(deployment) => self.chains.insert(
                ChainRuntime::new(record.owner.id, record.tenant_id, self.store.clone(), deployment),
                record.owner.customer_id,
            ),
            Err(problems) => {
                self.chains.remove(record.owner.id);
                let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                tracing::error!(chain = %record.owner.name, id = %record.owner.id, "rule chain not started: {}", problems.join("; "));
            }
        }
    }

    /// Runs a stored integration in place of the running one (if any); one that no longer
    /// deploys is logged and stopped.
    fn start_integration(&self, record: &OwnerRecord) {
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

    /// Follows rule chains and integrations saved or deleted through other instances sharing
    /// the database (the store's change feed): each is started, restarted or stopped here too;
    /// after a lost feed connection everything that runs is compared with the database.
    pub(crate) fn follow_owner_changes(self: &Arc<Self>) {
        let mut changes = self.store.subscribe_owners();
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

    async fn reload_owner(&self, kind: OwnerType, id: Uuid, tenant: TenantId) -> veil_store::Result<()> {
        let record = self.store.owner_record(tenant, kind, id).await?;
        match (kind, record) {
            (OwnerType::RuleChain, Some(record)) => self.start_chain(&record),
            (OwnerType::RuleChain, None) => self.chains.remove(id),
            (OwnerType::Integration, Some(record)) => {
                let _one_at_a_time = self.integration_writes.lock().await;
                self.start_integration(&record);
            }
            (OwnerType::Integration, None) => {
                let _one_at_a_time = self.integration_writes.lock().await;
                self.integrations.remove(id);
            }
        }
        Ok(())
    }

    async fn reload_all_owners(&self) -> veil_store::Result<()> {
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
        let integrations = self.store.all_owners(OwnerType::Integration).await?;
        let stored: std::collections::HashSet<Uuid> = integrations.iter().map(|r| r.owner.id).collect();
        let _one_at_a_time = self.integration_writes.lock().await;
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
    pub(crate) fn follow_secret_changes(self: &Arc<Self>) {
        let mut events = self.store.subscribe();
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

    /// Validates, persists (with references and links, in one transaction) and starts a chain.
    pub(crate) async fn save_chain(&self, actor: &Actor, id: Uuid, doc: &Value) -> HostResult<OwnerRecord> {
        // A customer's chain stays the customer's and is validated as the customer's, whoever
        // edits it: a tenant user cannot put a secret that is not shared with the customer into it.
        let customer = match self.store.owner_visible(actor, OwnerType::RuleChain, id).await {
            Ok(existing) => existing.owner.customer_id,
            Err(StoreError::NotFound { .. }) => actor.customer_id,
            Err(e) => return Err(e.into()),
        };
        let scoped = Actor { customer_id: customer, ..actor.clone() };
        let actor = &scoped;
        let deployment = deploy(&self.node_types, &self.store, actor, doc).map_err(HostError::Invalid)?;
        self.check_links(actor, &deployment.links).await?;
        self.check_fed_secrets(actor, id)?;
        let owner = Owner {
            kind: OwnerType::RuleChain,
            id,
            name: deployment.def.name.clone(),
            customer_id: customer,
        };
        let body = serde_json::to_value(&deployment.def).map_err(|e| HostError::Internal(e.to_string()))?;
        self.store.save_owner_linked(actor, &owner, &body, &deployment.references, &deployment.links).await?;
        self.chains.insert(ChainRuntime::new(id, actor.tenant_id, self.store.clone(), deployment), customer);
        tracing::info!(chain = %owner.name, %id, actor = %actor.username, "rule chain saved");
        Ok(self.store.owner_visible(actor, OwnerType::RuleChain, id).await?)
    }

    /// Saving a chain that integrations feed needs SECRET:USE on the secrets their uplink
    /// converters read: their messages can carry those secrets sealed, and the chain's nodes can
    /// open them (send them in a header).
    fn check_fed_secrets(&self, actor: &Actor, id: Uuid) -> HostResult<()> {
        let may_use = actor.require(Operation::Use).is_ok();
        let mut problems = Vec::new();
        for integration in self.integrations.feeding(actor.tenant_id, id) {
            let missing: Vec<&str> = integration
                .uplink_secrets()
                .iter()
                .map(String::as_str)
                .filter(|name| !may_use || self.store.find(actor, name).is_none())
                .collect();
            if !missing.is_empty() {
                problems.push(Problem::permission(
                    "/nodes",
                    format!(
                        "integration '{}' feeds this rule chain with values sealed from secret '{}': saving \
                         the chain needs SECRET:USE on them",
                        integration.def().name,
                        missing.join("', '")
                    ),
                ));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(HostError::Invalid(problems)) }
    }

    /// Every integration the chain's nodes send through exists in the tenant and the actor may
    /// send through it (INTEGRATION:WRITE, as `POST /api/integrations/{id}/downlink` needs).
    async fn check_links(&self, actor: &Actor, links: &[OwnerLink]) -> HostResult<()> {
        let mut problems = Vec::new();
        for link in links {
            match self.store.owner_for(actor, link.kind, link.target, Operation::Write).await {
                Ok(_) => {}
                Err(StoreError::NotFound { .. }) => problems.push(Problem::new(
                    link.pointer.clone(),
                    format!("integration '{}' does not exist", link.target),
                )),
                Err(StoreError::Forbidden(_)) => problems.push(Problem::permission(
                    link.pointer.clone(),
                    format!(
                        "missing permission INTEGRATION:WRITE to send downlinks through integration '{}'",
                        link.target
                    ),
                )),
                Err(e) => return Err(e.into()),
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(HostError::Invalid(problems)) }
    }

    /// Deletes a chain (its references go with it) and stops it.
    pub(crate) async fn remove_chain(&self, actor: &Actor, id: Uuid) -> HostResult<()> {
        self.store.delete_owner(actor, OwnerType::RuleChain, id).await?;
        self.chains.remove(id);
        Ok(())
    }

    /// The running chain, if the actor may do `op` on it.
    pub(crate) async fn running_chain(
        &self,
        actor: &Actor,
        id: Uuid,
        op: Operation,
    ) -> HostResult<Arc<ChainRuntime>> {
        // A running chain the actor can see needs no database read (the message path).
        if let Some(chain) = self.chains.visible(actor, id) {
            actor.require_on(Resource::RuleChain, op)?;
            return Ok(chain);
        }
        // Not running, or not visible: the store tells 404 from 403.
        self.store.owner_for(actor, OwnerType::RuleChain, id, op).await?;
        self.chains.get(id).ok_or(HostError::ChainNotRunning(id))
    }

    /// Refuses to show what a chain computed to an actor who may not use every secret it
    /// references, or that the integrations feeding it convert with: its debug events and traces
    /// can hold values derived from them (masking hides exact forms only).
    pub(crate) fn check_may_watch(
        &self,
        actor: &Actor,
        runtime: &ChainRuntime,
        what: &str,
    ) -> HostResult<()> {
        let may_use = actor.require(Operation::Use).is_ok();
        let feeding = self.integrations.feeding(runtime.tenant(), runtime.id());
        let mut names: Vec<&str> = runtime.secret_names().iter().map(String::as_str).collect();
        names.extend(feeding.iter().flat_map(|i| i.uplink_secrets().iter().map(String::as_str)));
        names.sort_unstable();
        names.dedup();
        let missing: Vec<&str> =
            names.into_iter().filter(|name| !may_use || self.store.find(actor, name).is_none()).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(HostError::MayNotWatch(format!(
            "{what} of rule chain '{}' can show values computed from its secrets: it needs SECRET:USE on '{}'",
            runtime.name(),
            missing.join("', '")
        )))
    }

    // ---- integrations ----

    /// A rule chain the actor can see, or a problem at `/ruleChainId`.
    async fn check_chain(&self, actor: &Actor, doc: &Value) -> HostResult<Option<Problem>> {
        let Some(id) = doc.get("ruleChainId").and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok())
        else {
            return Ok(None);
        };
        match self.store.owner_visible(actor, OwnerType::RuleChain, id).await {
            Ok(_) => Ok(None),
            Err(StoreError::NotFound { .. }) => {
                Ok(Some(Problem::new("/ruleChainId", format!("rule chain '{id}' does not exist"))))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Validates, persists (with references, in one transaction) and starts an integration. The
    /// fields the API adds to its view are dropped; an update without a routing key keeps the
    /// stored one. The routing key is reserved before the save and given back when it fails.
    pub(crate) async fn save_integration(
        &self,
        actor: &Actor,
        id: Uuid,
        mut doc: Value,
    ) -> HostResult<OwnerRecord> {
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

    /// A new `allowedDestinations` for the secret `id`: every configuration that uses it is
    /// deployed again (not started) as if the list were stored; one whose destination known at
    /// save (a literal URL, a broker, LORIOT's API) the list would refuse makes the change a 409
    /// listing them, as a delete of a used secret is. A list that does not validate is left to
    /// the store's validation.
    pub(crate) async fn check_destinations_change(
        &self,
        actor: &Actor,
        id: SecretId,
        list: &[String],
    ) -> HostResult<()> {
        let Some(list) = veil_store::normalize_destinations(list) else { return Ok(()) };
        let info = self.store.get(actor, id)?;
        let system = system_actor(actor.tenant_id);
        let usages = self.store.usages(&system, id).await?;
        let mut records = Vec::new();
        for (kind, users) in
            [(OwnerType::RuleChain, &usages.rule_chains), (OwnerType::Integration, &usages.integrations)]
        {
            for user in users {
                if let Ok(record) = self.store.owner(&system, kind, user.id).await {
                    records.push(record);
                }
            }
        }
        let refusal = format!("secret '{}' may not be sent to", info.name);
        let broken = self.refused_sends(&records, &refusal, |deploy| {
            veil_core::with_proposed_destinations(actor.tenant_id, &info.name, list.clone(), deploy)
        });
        destinations_in_use(
            format!("the new list would refuse where these configurations send '{}'", info.name),
            broken,
        )
    }

    /// Turns the tenant's "destinations required" on or off. Turning it on first deploys every
    /// configuration of the tenant again as if it were on: one that sends a secret without a
    /// list to a destination known at save makes it a 409 listing them.
    pub(crate) async fn set_destinations_required(&self, actor: &Actor, on: bool) -> HostResult<bool> {
        actor.require_on(Resource::Role, Operation::Write)?;
        if on {
            let system = system_actor(actor.tenant_id);
            let mut records = self.store.owners(&system, OwnerType::RuleChain).await?;
            records.extend(self.store.owners(&system, OwnerType::Integration).await?);
            let broken = self.refused_sends(&records, "secret '", |deploy| {
                veil_core::with_proposed_destinations_required(actor.tenant_id, true, deploy)
            });
            destinations_in_use(
                "these configurations send secrets that have no allowedDestinations".into(),
                broken,
            )?;
        }
        Ok(self.store.set_destinations_required(actor, on).await?)
    }

    /// Deploys each configuration (not started) inside `scope` and keeps the destination problems
    /// (messages starting with `refusal` and naming a refused destination), per configuration.
    /// Up to a tenant's whole set of configurations is built: off the async workers' turn
    /// (`block_in_place`), so other requests keep being served meanwhile.
    fn refused_sends(
        &self,
        records: &[OwnerRecord],
        refusal: &str,
        scope: impl Fn(&mut dyn FnMut() -> Option<Vec<Problem>>) -> Option<Vec<Problem>>,
    ) -> Vec<Value> {
        tokio::task::block_in_place(|| {
            records.iter().filter_map(|record| self.refused_send(record, refusal, &scope)).collect()
        })
    }

    /// [`Host::refused_sends`] for one configuration.
    fn refused_send(
        &self,
        record: &OwnerRecord,
        refusal: &str,
        scope: &impl Fn(&mut dyn FnMut() -> Option<Vec<Problem>>) -> Option<Vec<Problem>>,
    ) -> Option<Value> {
        let owner = owner_actor(record);
        let mut deploy_it = || match record.owner.kind {
            OwnerType::RuleChain => deploy(&self.node_types, &self.store, &owner, &record.body).err(),
            _ => deploy_integration(&self.integration_types, &self.store, &owner, &record.body).err(),
        };
        let problems = scope(&mut deploy_it).unwrap_or_default();
        let refused: Vec<&Problem> = problems
            .iter()
            .filter(|p| p.message.starts_with(refusal) && p.message.contains(" may not be sent to "))
            .collect();
        (!refused.is_empty()).then(|| {
            json!({
                "type": record.owner.kind.as_str(), "id": record.owner.id, "name": record.owner.name,
                "problems": refused.iter().map(|p| json!({"path": p.path, "message": p.message})).collect::<Vec<_>>(),
            })
        })
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
    pub(crate) fn running_integration(&self, tenant: TenantId, id: Uuid) -> Option<Arc<IntegrationRuntime>> {
        self.integrations.get(tenant, id)
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
        let admission = chain.admit().await.map_err(HostError::UplinkBusy)?;
        let messages = runtime.uplink(headers, body).await.map_err(HostError::Uplink)?;
        let count = messages.len();
        dispatch(chain, messages, admission);
        Ok(count)
    }
}
