//! Running rule chains: the set of runtimes by id, and a chain's save, check, start, removal
//! and the watch of its events.

use std::sync::Arc;

use dashmap::DashMap;
use serde_json::Value;
use tokio_util::task::TaskTracker;
use uuid::Uuid;
use veil_core::{Admission, ChainRuntime, Consumers, Msg, Problem, TraceStep, deploy};
use veil_store::{
    Actor, CustomerId, Operation, Owner, OwnerLink, OwnerRecord, OwnerType, Resource, StoreError, TenantId,
};

use super::{Host, HostError, HostResult, owner_actor};

/// How many locks [`ChainWrites`] spreads the rule chains over.
const WRITE_STRIPES: usize = 32;

/// Saves, deletes and reloads of a rule chain, one at a time per chain (the chains spread over a
/// few locks by id): a save commits and replaces the running chain under the lock, and a reload
/// (a change made through another instance) reads the database under it. So the chain that runs
/// is the one committed last, and so are its consumers of secrets — never one whose save raced a
/// later one through this instance or another.
#[derive(Debug)]
pub(crate) struct ChainWrites([tokio::sync::Mutex<()>; WRITE_STRIPES]);

impl Default for ChainWrites {
    fn default() -> Self {
        Self(std::array::from_fn(|_| tokio::sync::Mutex::new(())))
    }
}

impl ChainWrites {
    /// The lock of the chain `id`.
    pub(crate) async fn one(&self, id: Uuid) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = (id.as_u128() % WRITE_STRIPES as u128) as usize;
        self.0[stripe].lock().await
    }

    /// The locks of every chain (taken in one order: two takers of all never wait for each other
    /// crosswise, and a taker of one holds no other).
    pub(crate) async fn all(&self) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut held = Vec::with_capacity(WRITE_STRIPES);
        for stripe in &self.0 {
            held.push(stripe.lock().await);
        }
        held
    }
}

/// The running rule chains, by id.
#[derive(Debug, Default)]
pub(crate) struct Chains {
    by_id: DashMap<Uuid, Arc<ChainRuntime>>,
    /// The customer each chain belongs to (`None`: the tenant's), for visibility checks that
    /// need no database read.
    customers: DashMap<Uuid, Option<CustomerId>>,
    /// The chains that reference each secret: a change is told to them only.
    consumers: Consumers,
    /// The messages running in the background (uplinks, messages sent without `wait`): a
    /// shutdown waits for them.
    work: TaskTracker,
    /// Saves, deletes and reloads of each chain, one at a time.
    pub(super) writes: ChainWrites,
}

impl Chains {
    /// Runs `runtime` (of `customer`, or the tenant's) in place of the chain with the same id.
    pub(super) fn insert(&self, runtime: ChainRuntime, customer: Option<CustomerId>) {
        self.customers.insert(runtime.id(), customer);
        let runtime = Arc::new(runtime);
        self.consumers.add(runtime.tenant(), runtime.id(), runtime.secret_names());
        if let Some(old) = self.by_id.insert(runtime.id(), Arc::clone(&runtime)) {
            old.stop();
            old.remove_metrics(Some(&runtime));
            self.forget_consumer(&old);
        }
    }

    /// Forgets that `old` (stopped) uses its secrets, except those the chain running under its
    /// id now uses.
    fn forget_consumer(&self, old: &ChainRuntime) {
        let current = self.get(old.id()).filter(|c| c.tenant() == old.tenant());
        self.consumers.remove(old.tenant(), old.id(), old.secret_names(), |name| {
            current.as_ref().is_some_and(|c| c.secret_names().contains(name))
        });
    }

    /// The ids of the running chains.
    pub(super) fn ids(&self) -> Vec<Uuid> {
        self.by_id.iter().map(|c| *c.key()).collect()
    }

    /// Forgets a chain.
    pub(super) fn remove(&self, id: Uuid) {
        if let Some((_, old)) = self.by_id.remove(&id) {
            old.stop();
            old.remove_metrics(None);
            self.forget_consumer(&old);
        }
        self.customers.remove(&id);
    }

    /// Forgets every chain of a tenant (the tenant was deleted).
    pub(super) fn remove_tenant(&self, tenant: TenantId) {
        self.by_id.retain(|_, c| {
            let keep = c.tenant() != tenant;
            if !keep {
                c.stop();
                c.remove_metrics(None);
            }
            keep
        });
        self.customers.retain(|id, _| self.by_id.contains_key(id));
        self.consumers.remove_tenant(tenant);
    }

    /// A running chain `actor` can see (its tenant's; a customer user's only when its customer's).
    pub(super) fn visible(&self, actor: &Actor, id: Uuid) -> Option<Arc<ChainRuntime>> {
        let chain = self.get(id).filter(|c| c.tenant() == actor.tenant_id)?;
        let customer = *self.customers.get(&id)?;
        (actor.customer_id.is_none() || actor.customer_id == customer).then_some(chain)
    }

    /// A running chain by id.
    pub(super) fn get(&self, id: Uuid) -> Option<Arc<ChainRuntime>> {
        self.by_id.get(&id).map(|r| Arc::clone(r.value()))
    }

    /// How many run.
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Publishes what each chain runs now (for a scrape of the metrics).
    pub(super) fn publish_in_flight(&self) {
        for chain in self.by_id.iter() {
            chain.publish_in_flight();
        }
    }

    /// Waits up to `grace` for the messages running in the background; false when some were
    /// still running then.
    pub(super) async fn finish_work(&self, grace: std::time::Duration) -> bool {
        self.work.close();
        tokio::time::timeout(grace, self.work.wait()).await.is_ok()
    }

    /// How many messages run in the background now.
    pub(super) fn work_in_progress(&self) -> usize {
        self.work.len()
    }

    /// Stops every chain and lets its nodes close their connections.
    pub(super) async fn shutdown(&self) {
        let chains: Vec<Arc<ChainRuntime>> = self.by_id.iter().map(|c| Arc::clone(c.value())).collect();
        futures_util::future::join_all(chains.iter().map(|c| c.shutdown())).await;
    }

    /// Runs `messages` through `chain` in order, in the background; the admission is held until
    /// the last one is done.
    pub(crate) fn dispatch(&self, chain: Arc<ChainRuntime>, messages: Vec<Msg>, admission: Admission) {
        dispatch(&self.work, chain, messages, admission);
    }

    /// Tells the chains of `tenant` that reference `name` that it changed (the others learn it
    /// when they next mask something: their redactors check versions then).
    pub(super) fn secret_changed(&self, tenant: TenantId, name: &str) {
        for id in self.consumers.of(tenant, name) {
            if let Some(chain) = self.get(id).filter(|c| c.tenant() == tenant) {
                chain.secret_changed(name);
            }
        }
    }

    /// Tells every chain that any secret may have changed.
    pub(super) fn all_secrets_changed(&self) {
        for chain in self.by_id.iter() {
            chain.all_secrets_changed();
        }
    }
}

/// Runs `messages` through `chain` in order, in the background (tracked by `work`); the admission
/// is held until the last one is done.
fn dispatch(work: &TaskTracker, chain: Arc<ChainRuntime>, messages: Vec<Msg>, admission: Admission) {
    work.spawn(async move {
        for msg in messages {
            chain.process(msg).await;
        }
        drop(admission);
    });
}

impl Host {
    /// Runs a stored chain in place of the running one (if any); one that no longer deploys is
    /// logged and stopped.
    pub(super) fn start_chain(&self, record: &OwnerRecord) {
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

    /// Validates, persists (with references and links, in one transaction) and starts a chain.
    pub async fn save_chain(&self, actor: &Actor, id: Uuid, doc: &Value) -> HostResult<OwnerRecord> {
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
        let one_at_a_time = self.chains.writes.one(id).await;
        self.store.save_owner_linked(actor, &owner, &body, &deployment.references, &deployment.links).await?;
        self.chains.insert(ChainRuntime::new(id, actor.tenant_id, self.store.clone(), deployment), customer);
        drop(one_at_a_time);
        tracing::info!(chain = %owner.name, %id, actor = %actor.username, "rule chain saved");
        Ok(self.store.owner_visible(actor, OwnerType::RuleChain, id).await?)
    }

    /// Saving a chain that integrations feed needs SECRET:USE on the secrets their uplink
    /// converters read: their messages can carry those secrets sealed, and the chain's nodes can
    /// open them (send them in a header).
    pub(super) fn check_fed_secrets(&self, actor: &Actor, id: Uuid) -> HostResult<()> {
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
    pub(super) async fn check_links(&self, actor: &Actor, links: &[OwnerLink]) -> HostResult<()> {
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

    /// The running chain `id`, whoever may see it (for programs that embed the host; the API
    /// checks the actor first).
    pub fn chain(&self, id: Uuid) -> Option<Arc<ChainRuntime>> {
        self.chains.get(id)
    }

    /// Deletes a chain (its references go with it) and stops it.
    pub(crate) async fn remove_chain(&self, actor: &Actor, id: Uuid) -> HostResult<()> {
        let _one_at_a_time = self.chains.writes.one(id).await;
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
            names.into_iter().filter(|name| !may_use || !self.store.sees(actor, name)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(HostError::MayNotWatch(format!(
            "{what} of rule chain '{}' can show values computed from its secrets: it needs SECRET:USE on '{}'",
            runtime.name(),
            missing.join("', '")
        )))
    }

    /// A rule chain the actor can see, or a problem at `/ruleChainId`.
    pub(super) async fn check_chain(&self, actor: &Actor, doc: &Value) -> HostResult<Option<Problem>> {
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

    /// A sender of messages to the rule chain `id` for `actor`, who needs RULE_CHAIN:WRITE (and,
    /// to `wait` for the trace, the right to watch it): checked before a message is parsed.
    pub(crate) async fn sender(
        &self,
        actor: &Actor,
        id: Uuid,
        wait: bool,
        messages: bool,
    ) -> HostResult<ChainSender> {
        let runtime = self.running_chain(actor, id, Operation::Write).await?;
        if wait {
            self.check_may_watch(actor, &runtime, "the trace")?;
        }
        let work = self.chains.work.clone();
        let queue = self.queue().cloned();
        Ok(ChainSender { runtime, wait, messages, max_data_depth: self.limits().max_data_depth, work, queue })
    }
}

/// Sends one message to a running chain the actor may send to (see [`Host::sender`]).
pub(crate) struct ChainSender {
    runtime: Arc<ChainRuntime>,
    wait: bool,
    /// The trace carries each step's message in and out (costs a masked copy per step).
    messages: bool,
    max_data_depth: usize,
    /// Where a message sent without `wait` runs (see [`Chains`]).
    work: TaskTracker,
    /// The message queue, when the server runs with one: the message is stored there first.
    queue: Option<Arc<crate::queue::Queue>>,
}

impl ChainSender {
    /// Admits `msg` under the chain's in-flight bound, then runs it to the end (the trace) or
    /// hands it to the chain's workers (only its id).
    pub(crate) async fn send(self, msg: Msg) -> HostResult<Sent> {
        if veil_core::deeper_than(&msg.data, self.max_data_depth) {
            let why = veil_core::limit_error(
                "maxDataDepth",
                self.max_data_depth,
                "it nests arrays and objects deeper",
            );
            return Err(HostError::MessageTooLarge(format!("data: {why}")));
        }
        let msg_id = msg.id;
        if let Some(queue) = &self.queue {
            let (tenant, chain) = (self.runtime.tenant(), self.runtime.id());
            if self.wait {
                let trace = queue.publish_and_wait(tenant, chain, &msg, self.messages, TRACE_WAIT).await?;
                return Ok(Sent::Traced { msg_id, trace });
            }
            queue.publish(tenant, chain, std::slice::from_ref(&msg)).await?;
            return Ok(Sent::Accepted { msg_id });
        }
        let admission = self.runtime.admit().await.map_err(HostError::ChainBusy)?;
        if self.wait {
            let trace = if self.messages {
                self.runtime.process_watched(msg).await
            } else {
                self.runtime.process(msg).await
            };
            drop(admission);
            Ok(Sent::Traced { msg_id, trace: Trace::Steps(trace) })
        } else {
            dispatch(&self.work, self.runtime, vec![msg], admission);
            Ok(Sent::Accepted { msg_id })
        }
    }
}

/// How long `?wait=true` waits for the trace of a queued message (the request's own timeout,
/// `--request-timeout-secs`, may end it sooner).
const TRACE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Each step of a message's run: from this process, or as JSON from the instance that ran it.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub(crate) enum Trace {
    /// Run here.
    Steps(Vec<TraceStep>),
    /// Run by the instance that took it from the queue.
    Json(Value),
}

/// What a message sent to a rule chain through the API got.
pub(crate) enum Sent {
    /// It ran to the end: what every node did.
    Traced {
        /// Its id.
        msg_id: Uuid,
        /// Each node's step.
        trace: Trace,
    },
    /// It was admitted and runs on.
    Accepted {
        /// Its id.
        msg_id: Uuid,
    },
}
