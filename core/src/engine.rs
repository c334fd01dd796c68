//! Running a deployed chain: messages are routed along relations on tokio; a node error routes
//! the input to `Failure` with the redacted error in metadata `error`; a message that keeps
//! looping is stopped after [`MAX_STEPS`] node executions, one that fans out is stopped when more
//! than `maxQueuedMessages` of its messages would wait at once or its copies would exceed
//! `maxFanoutBytes`; nodes in
//! debug mode record redacted debug events, each message cut to `maxEventMessageBytes`, in a log
//! bounded per chain ([`DEBUG_EVENTS_KEPT`]) and per tenant (`maxEventBytesPerTenant`). Callers
//! [`ChainRuntime::admit`] a message before processing it: messages in flight are bounded per
//! chain and per tenant.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures_util::FutureExt as _;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument as _;
use uuid::Uuid;
use veil_store::{SecretValue, Store, TenantId};

use crate::budget::{
    Admission, ChainEvents, DebugEvent, DebugOutput, EventPage, TenantBudget, approx_msg_bytes,
};
use crate::chain::Deployment;
use crate::error::Busy;
use crate::limits::{Limits, limit_error};
use crate::message::Msg;
use crate::metrics::{ChainMetrics, NodeMetrics};
use crate::node::{Failed, Node, NodeCtx, relation};
use crate::probe::Probe;
use crate::redact::Redactor;
use crate::run::{RunBudget, stopped_error};
use crate::secrets::Secrets;

/// The most node executions one incoming message may cause (a loop in the chain ends here).
pub const MAX_STEPS: usize = 1000;
/// How long a message waits for a place in a full in-flight budget before it is refused.
pub const ADMISSION_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Debug events kept per chain (oldest dropped first).
pub const DEBUG_EVENTS_KEPT: usize = 1000;

/// How many bytes of messages a watched trace shows ([`ChainRuntime::process_watched`]): the
/// steps after them show their relation and error only.
pub const MAX_WATCHED_BYTES: usize = 256 * 1024;

/// One node execution, as `?wait=true` reports it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceStep {
    /// The node's id.
    pub node_id: String,
    /// The node's name.
    pub node_name: String,
    /// The relation(s) it sent messages on (empty when it dropped the message).
    pub relation: Vec<String>,
    /// The redacted error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A watched run ([`ChainRuntime::process_watched`]): the message the node got, masked and
    /// cut as debug events are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// A watched run: what it sent on, masked and cut as debug events are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<DebugOutput>>,
}

impl TraceStep {
    /// The step where a message was stopped, at `slot`'s node, with why.
    fn stopped(slot: &Slot, error: String) -> Self {
        Self {
            node_id: slot.id.clone(),
            node_name: slot.name.clone(),
            relation: vec![],
            error: Some(error),
            input: None,
            outputs: None,
        }
    }
}

struct Slot {
    id: String,
    name: String,
    debug: bool,
    node: Box<dyn Node>,
    secret_names: Vec<String>,
    secrets: Secrets,
    routes: HashMap<String, Vec<usize>>,
    metrics: NodeMetrics,
}

/// A deployed chain, ready to process messages.
pub struct ChainRuntime {
    id: Uuid,
    name: String,
    tenant: TenantId,
    first: usize,
    slots: Vec<Slot>,
    redactor: Redactor,
    secret_names: Vec<String>,
    events: ChainEvents,
    limits: Limits,
    budget: Arc<TenantBudget>,
    in_flight: Arc<Semaphore>,
    /// Places to wait for `in_flight` (as many as it holds): a sender beyond is refused at once,
    /// so waiting requests are bounded too.
    waiting: Arc<Semaphore>,
    /// Set by [`ChainRuntime::stop`]: the messages still running stop at their next step.
    stopped: Arc<AtomicBool>,
    metrics: ChainMetrics,
}

impl std::fmt::Debug for ChainRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainRuntime").field("id", &self.id).field("name", &self.name).finish_non_exhaustive()
    }
}

fn to_json(msg: &Msg) -> Value {
    serde_json::to_value(msg).unwrap_or(Value::Null)
}

impl ChainRuntime {
    /// Starts a runtime for a deployment.
    pub fn new(id: Uuid, tenant: TenantId, store: Store, deployment: Deployment) -> Self {
        let Deployment { def, nodes, references, budgets, .. } = deployment;
        let limits = *budgets.limits();
        let budget = budgets.tenant(tenant);
        let chain_label = id.to_string();
        let mut slots: Vec<Slot> = def
            .nodes
            .iter()
            .zip(nodes)
            .enumerate()
            .map(|(index, (d, built))| Slot {
                metrics: {
                    let relations: Vec<&str> = def
                        .connections
                        .iter()
                        .filter(|c| c.from_index == index)
                        .map(|c| c.relation.as_str())
                        .collect();
                    let node = d.id.clone().filter(|id| !id.is_empty()).unwrap_or_else(|| index.to_string());
                    NodeMetrics::new(&chain_label, node, &d.name, &d.node_type, &relations)
                },
                id: d.id.clone().unwrap_or_default(),
                name: d.name.clone(),
                debug: d.debug_mode,
                node: built.node,
                secret_names: built.secret_names,
                secrets: {
                    built.secrets.set_scope(id);
                    // Every secret its nodes resolve is counted as used by this chain.
                    built.secrets.set_user(veil_store::UseContext {
                        kind: veil_store::OwnerType::RuleChain,
                        id,
                        name: def.name.clone(),
                    });
                    built.secrets
                },
                routes: HashMap::new(),
            })
            .collect();
        for c in &def.connections {
            slots[c.from_index].routes.entry(c.relation.clone()).or_default().push(c.to_index);
        }
        let mut secret_names: Vec<String> = references.into_iter().map(|r| r.secret_name).collect();
        secret_names.sort();
        secret_names.dedup();
        let redactor = Redactor::new(store.clone(), tenant, secret_names.iter().cloned());
        // Learn the values now: one replaced before anything was masked must still be masked.
        redactor.learn();
        let metrics = ChainMetrics::new(&chain_label, &tenant.to_string(), &def.name);
        Self {
            metrics,
            id,
            name: def.name,
            tenant,
            first: def.first_node_index,
            slots,
            redactor,
            secret_names,
            events: ChainEvents::new(Arc::clone(&budget)),
            limits,
            budget,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight_per_chain)),
            waiting: Arc::new(Semaphore::new(limits.max_in_flight_per_chain)),
            stopped: Arc::default(),
        }
    }

    /// Stops the chain's messages still running (the chain was deleted or is replaced): each
    /// stops at its next step, a script on the script threads at its next clock check.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Whether the chain was stopped (deleted or replaced).
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// A message as this chain's debug events show one: masked, cut to `maxEventMessageBytes`.
    pub fn shown_message(&self, msg: &Msg) -> Value {
        self.shown_sized(serde_json::to_value(msg).unwrap_or_default()).0
    }

    /// Takes a place for one message in the chain's and the tenant's in-flight budgets, waiting
    /// up to [`ADMISSION_WAIT`] for one, or says which stayed full. Hold the [`Admission`] until
    /// the message is processed.
    pub async fn admit(&self) -> Result<Admission, Busy> {
        // A full budget slows the sender down first (backpressure), and refuses only when it
        // stays full for ADMISSION_WAIT, both budgets together.
        let deadline = tokio::time::Instant::now() + ADMISSION_WAIT;
        let limits = &self.limits;
        let chain = take(
            &self.in_flight,
            &self.waiting,
            deadline,
            Busy { limit: "maxInFlightPerChain", value: limits.max_in_flight_per_chain },
        )
        .await?;
        let tenant = take(
            &self.budget.in_flight,
            &self.budget.waiting,
            deadline,
            Busy { limit: "maxInFlightPerTenant", value: limits.max_in_flight_per_tenant },
        )
        .await?;
        Ok(Admission::new(chain, tenant))
    }

    /// The names of the secrets the chain references (reading what it computed needs USE on them).
    pub fn secret_names(&self) -> &[String] {
        &self.secret_names
    }

    /// The chain's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The chain's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The chain's tenant.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The redactor for everything this chain's nodes may have seen.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Tells every node that any of its secrets may have changed (change events were lost).
    pub fn all_secrets_changed(&self) {
        self.redactor.learn();
        for slot in &self.slots {
            for name in &slot.secret_names {
                slot.node.secret_changed(name);
            }
        }
    }

    /// A relation as shown in traces and debug events: names the chain declares are shown as
    /// they are; any other (a switch script's output) goes through the redactor.
    fn shown_relation(&self, slot: &Slot, relation: &str) -> String {
        if slot.routes.contains_key(relation)
            || [relation::SUCCESS, relation::FAILURE, relation::TRUE, relation::FALSE].contains(&relation)
        {
            relation.to_owned()
        } else {
            self.redactor.mask(relation)
        }
    }

    /// Probes every node that references `name` with `value` in its place (a staged rotation's
    /// pending value), concurrently, each under [`crate::PROBE_TIMEOUT`]: (node id, node name,
    /// what it found), in the chain's node order. Nothing is sent through the chain.
    pub async fn probe(&self, name: &str, value: &SecretValue) -> Vec<(String, String, Probe)> {
        let probes = self.slots.iter().filter(|slot| slot.secret_names.iter().any(|n| n == name)).map(
            |slot| async move {
                let secrets = slot.secrets.with_value(name, SecretValue::new(value.expose_bytes().to_vec()));
                let found = crate::probe::bounded(slot.node.probe(&secrets, name)).await;
                (slot.id.clone(), slot.name.clone(), found)
            },
        );
        futures_util::future::join_all(probes).await
    }

    /// Stops the chain (see [`ChainRuntime::stop`]) and lets every node close its connections
    /// cleanly ([`Node::shutdown`]), all at once: the server is stopping.
    pub async fn shutdown(&self) {
        self.stop();
        futures_util::future::join_all(self.slots.iter().map(|slot| slot.node.shutdown())).await;
    }

    /// Publishes how many messages the chain runs now (`veil_chain_in_flight`).
    pub fn publish_in_flight(&self) {
        let running = self.limits.max_in_flight_per_chain.saturating_sub(self.in_flight.available_permits());
        self.metrics.set_in_flight(running as i64);
    }

    /// Removes the chain's metric series: all of them when it was deleted, those `replacement`
    /// no longer has when it was redeployed.
    pub fn remove_metrics(&self, replacement: Option<&ChainRuntime>) {
        let nodes = self.slots.iter().map(|s| &s.metrics);
        match replacement {
            Some(new) => {
                let kept: Vec<&NodeMetrics> = new.slots.iter().map(|s| &s.metrics).collect();
                self.metrics.remove(nodes, Some((&new.metrics, &kept)));
            }
            None => self.metrics.remove(nodes, None),
        }
    }

    /// Whether the node `id` holds a connection that a change of its secrets reconnects.
    pub fn node_reconnects(&self, id: &str) -> bool {
        self.slots.iter().any(|slot| slot.id == id && slot.node.reconnects())
    }

    /// Tells the nodes that reference `name` that it changed.
    pub fn secret_changed(&self, name: &str) {
        self.redactor.learn();
        for slot in &self.slots {
            if slot.secret_names.iter().any(|n| n == name) {
                slot.node.secret_changed(name);
            }
        }
    }

    /// The recorded debug events, oldest first.
    pub fn debug_events(&self) -> Vec<DebugEvent> {
        self.events.list()
    }

    /// A page of the recorded debug events: the newest `limit` older than `before`, oldest
    /// first (see [`EventPage`]); `None` when the tenant's event readers are all busy.
    pub fn debug_event_page(&self, limit: usize, before: Option<u64>) -> Option<EventPage> {
        self.events.page(limit, before)
    }

    /// Processes one message to the end and returns what every node did.
    pub async fn process(&self, msg: Msg) -> Vec<TraceStep> {
        let span = self.message_span(&msg);
        self.run(msg, false).instrument(span).await
    }

    /// [`ChainRuntime::process`], with each step's input and outputs in the trace (masked and
    /// cut as debug events are): what a chain author watches a test message do.
    pub async fn process_watched(&self, msg: Msg) -> Vec<TraceStep> {
        let span = self.message_span(&msg);
        self.run(msg, true).instrument(span).await
    }

    /// The span of one incoming message's path through the chain: what a node logs while it
    /// handles the message (or any message made from it) carries the chain and the message id.
    fn message_span(&self, msg: &Msg) -> tracing::Span {
        tracing::info_span!("message", chain = %self.id, id = %msg.id)
    }

    async fn run(&self, msg: Msg, watch: bool) -> Vec<TraceStep> {
        self.metrics.messages.inc();
        let budget = RunBudget::new(self.tenant, &self.stopped, &self.limits);
        let mut trace = Vec::new();
        // Each waiting message with its size, when known: sizes are taken once a message would
        // wait beside another (a message alone in the queue is the one just made from the last).
        let mut queue: VecDeque<(usize, Msg, usize)> = VecDeque::from([(self.first, msg, 0)]);
        let mut queued_bytes = 0usize;
        let mut steps = 0;
        // A watched trace shows messages until they add up to MAX_WATCHED_BYTES; later steps show
        // their relation and error only.
        let mut watched_bytes = 0usize;
        while let Some((index, msg, bytes)) = queue.pop_front() {
            queued_bytes = queued_bytes.saturating_sub(bytes);
            steps += 1;
            let slot = &self.slots[index];
            let stop = if steps > MAX_STEPS {
                Some(format!(
                    "stopped: one message caused more than {MAX_STEPS} node executions (a loop in rule chain '{}'?)",
                    self.name
                ))
            } else if budget.stopped() {
                Some(stopped_error(&self.name))
            } else {
                budget.script_time_left().err()
            };
            if let Some(error) = stop {
                tracing::warn!(chain = %self.name, "{error}");
                trace.push(TraceStep::stopped(slot, error));
                break;
            }
            let watching = watch && watched_bytes < MAX_WATCHED_BYTES;
            let input = (slot.debug || watching).then(|| to_json(&msg));
            let began = Instant::now();
            // The wall clock only for debug events.
            let started = slot.debug.then(|| (began, msg_now()));
            slot.metrics.messages_in.inc();
            let ctx = NodeCtx::new(&slot.secrets).with_redactor(&self.redactor).with_budget(&budget);
            // A panic in a node (a bug) ends this message with the step failed; the process and
            // the chain's other messages go on.
            let processed = match slot.secrets.prepare().await {
                Ok(()) => std::panic::AssertUnwindSafe(slot.node.process(&ctx, msg)).catch_unwind().await,
                Err(e) => Ok(Err(Failed::new(msg, e))),
            };
            slot.metrics.seconds.observe(began.elapsed().as_secs_f64());
            if !matches!(processed, Ok(Ok(_))) {
                slot.metrics.failures.inc();
            }
            let (outputs, error) = match processed {
                Ok(Ok(outputs)) => (outputs, None),
                Ok(Err(Failed { msg, error })) => {
                    let error = self.redactor.mask(&error.to_string());
                    tracing::warn!(chain = %self.name, node = %slot.name, "node failed: {error}");
                    let msg = msg.with_metadata("error", error.clone());
                    (vec![(relation::FAILURE.into(), msg)], Some(error))
                }
                Err(_) => {
                    let error = format!(
                        "node '{}' failed unexpectedly (an internal error); the message was stopped",
                        slot.name
                    );
                    tracing::error!(chain = %self.name, node = %slot.name, "{error}");
                    trace.push(TraceStep::stopped(slot, error));
                    break;
                }
            };
            // What the node got and sent, as debug events and watched traces show it.
            let shown = input.map(|input| {
                let (input, mut bytes) = self.shown_sized(input);
                let sent: Vec<DebugOutput> = outputs
                    .iter()
                    .map(|(rel, m)| {
                        let (msg, size) = self.shown_sized(to_json(m));
                        bytes += size;
                        DebugOutput { relation: self.shown_relation(slot, rel), msg }
                    })
                    .collect();
                if watching {
                    watched_bytes += bytes;
                }
                (input, sent)
            });
            if let (Some((input, sent)), Some((started, ts))) = (&shown, started) {
                self.record(slot, ts, input.clone(), sent.clone(), ctx.take_notes(), error.clone(), started);
            }
            let (input, sent) = match shown.filter(|_| watching) {
                Some((input, sent)) => (Some(input), Some(sent)),
                None => (None, None),
            };
            trace.push(TraceStep {
                node_id: slot.id.clone(),
                node_name: slot.name.clone(),
                relation: outputs.iter().map(|(r, _)| self.shown_relation(slot, r)).collect(),
                error,
                input,
                outputs: sent,
            });
            // Every copy that waits beside another is charged, whatever node made it and on
            // whichever relation (a switch's names, fan-out, loops). A single copy on its own
            // (the usual step) is not measured: it replaces the message that made it.
            let beside = outputs.len() > 1 || !queue.is_empty();
            for (rel, out) in outputs {
                slot.metrics.sent(&rel);
                let Some(targets) = slot.routes.get(rel.as_ref()) else { continue };
                let sized = beside || targets.len() > 1;
                let bytes = if sized { approx_msg_bytes(&out) } else { 0 };
                queued_bytes = queued_bytes.saturating_add(bytes.saturating_mul(targets.len()));
                if let Some(error) = self.fan_out_error(queue.len() + targets.len(), queued_bytes) {
                    tracing::warn!(chain = %self.name, node = %slot.name, "{error}");
                    if let Some(step) = trace.last_mut() {
                        step.error = Some(error);
                    }
                    return trace;
                }
                if let Some((last, rest)) = targets.split_last() {
                    for &t in rest {
                        queue.push_back((t, out.clone(), bytes));
                    }
                    queue.push_back((*last, out, bytes));
                }
            }
        }
        trace
    }

    /// Why a message must stop fanning out, if it must.
    fn fan_out_error(&self, queued: usize, queued_bytes: usize) -> Option<String> {
        let limits = &self.limits;
        if queued > limits.max_queued_messages {
            Some(limit_error(
                "maxQueuedMessages",
                limits.max_queued_messages,
                format!(
                    "one message fanned out into more messages waiting at once in rule chain '{}'; it was stopped",
                    self.name
                ),
            ))
        } else if queued_bytes > limits.max_fanout_bytes {
            Some(limit_error(
                "maxFanoutBytes",
                limits.max_fanout_bytes,
                format!(
                    "one message's copies waiting at once took more bytes in rule chain '{}'; it was stopped",
                    self.name
                ),
            ))
        } else {
            None
        }
    }

    /// A message as a debug event shows it: masked, then cut to `maxEventMessageBytes` (masking
    /// first, so a cut never leaves part of a value unmasked); with the size of its JSON text.
    fn shown_sized(&self, mut value: Value) -> (Value, usize) {
        self.redactor.mask_json(&mut value);
        let text = serde_json::to_string(&value).unwrap_or_default();
        let max = self.limits.max_event_message_bytes;
        if text.len() <= max {
            return (value, text.len());
        }
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        (json!({ "truncated": true, "bytes": text.len(), "preview": &text[..cut] }), cut + 48)
    }

    /// Records a debug event of `slot` from what it got and sent, already shown (masked, cut).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        slot: &Slot,
        ts: i64,
        input: Value,
        outputs: Vec<DebugOutput>,
        notes: Vec<String>,
        error: Option<String>,
        started: Instant,
    ) {
        let notes: Vec<String> = notes.iter().map(|n| self.redactor.mask(n)).collect();
        let event = DebugEvent {
            seq: 0,
            ts,
            node_id: slot.id.clone(),
            node_name: slot.name.clone(),
            input,
            outputs,
            notes,
            error,
            duration_micros: started.elapsed().as_micros() as u64,
        };
        self.events.push(event, DEBUG_EVENTS_KEPT, self.limits.max_event_bytes_per_tenant);
    }
}

/// A place in `budget`: at once, or by waiting until `deadline` when a waiting place is free.
async fn take(
    budget: &Arc<Semaphore>,
    waiting: &Semaphore,
    deadline: tokio::time::Instant,
    busy: Busy,
) -> Result<OwnedSemaphorePermit, Busy> {
    if let Ok(permit) = Arc::clone(budget).try_acquire_owned() {
        return Ok(permit);
    }
    let refused = |busy: Busy| {
        crate::metrics::count_refusal(busy.limit);
        Err(busy)
    };
    let Ok(_waiting) = waiting.try_acquire() else { return refused(busy) };
    match tokio::time::timeout_at(deadline, Arc::clone(budget).acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => refused(busy),
    }
}

fn msg_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
