//! Running a deployed chain: messages are routed along relations on tokio; a node error routes
//! the input to `Failure` with the redacted error in metadata `error`; a message that keeps
//! looping is stopped after [`MAX_STEPS`] node executions; nodes in debug mode record redacted
//! debug events in a bounded in-memory log.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use veil_store::{Store, TenantId};

use crate::chain::Deployment;
use crate::message::Msg;
use crate::node::{Failed, Node, NodeCtx, relation};
use crate::redact::Redactor;

/// The most node executions one incoming message may cause (a loop in the chain ends here).
pub const MAX_STEPS: usize = 1000;
/// Debug events kept per chain (oldest dropped first).
pub const DEBUG_EVENTS_KEPT: usize = 1000;

/// One node execution, as `?wait=true` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}

/// An output recorded in a debug event.
#[derive(Debug, Clone, Serialize)]
pub struct DebugOutput {
    /// The relation.
    pub relation: String,
    /// The message sent (redacted).
    pub msg: Value,
}

/// A node execution recorded because the node is in debug mode. Everything in it is redacted.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DebugEvent {
    /// When it started (ms since the epoch).
    pub ts: i64,
    /// The node's id.
    pub node_id: String,
    /// The node's name.
    pub node_name: String,
    /// The message it got.
    pub input: Value,
    /// What it sent on.
    pub outputs: Vec<DebugOutput>,
    /// Lines the node wrote (a script's `print`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The error, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in microseconds.
    pub duration_micros: u64,
}

struct Slot {
    id: String,
    name: String,
    debug: bool,
    node: Box<dyn Node>,
    secret_names: Vec<String>,
    routes: HashMap<String, Vec<usize>>,
}

/// A deployed chain, ready to process messages.
pub struct ChainRuntime {
    id: Uuid,
    name: String,
    tenant: TenantId,
    store: Store,
    first: usize,
    slots: Vec<Slot>,
    redactor: Redactor,
    events: Mutex<VecDeque<DebugEvent>>,
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
        let Deployment { def, nodes, references } = deployment;
        let mut slots: Vec<Slot> = def
            .nodes
            .iter()
            .zip(nodes)
            .map(|(d, built)| Slot {
                id: d.id.clone().unwrap_or_default(),
                name: d.name.clone(),
                debug: d.debug_mode,
                node: built.node,
                secret_names: built.secret_names,
                routes: HashMap::new(),
            })
            .collect();
        for c in &def.connections {
            slots[c.from_index].routes.entry(c.relation.clone()).or_default().push(c.to_index);
        }
        let redactor = Redactor::new(store.clone(), tenant, references.into_iter().map(|r| r.secret_name));
        // Learn the values now: one replaced before anything was masked must still be masked.
        redactor.learn();
        Self {
            id,
            name: def.name,
            tenant,
            store,
            first: def.first_node_index,
            slots,
            redactor,
            events: Mutex::new(VecDeque::new()),
        }
    }

    /// The chain's id.
    pub fn id(&self) -> Uuid {
        self.id
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
        self.events.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// Processes one message to the end and returns what every node did.
    pub async fn process(&self, msg: Msg) -> Vec<TraceStep> {
        // Every secret resolved while this message runs is counted as used by this chain.
        let context = veil_store::UseContext {
            kind: veil_store::OwnerType::RuleChain,
            id: self.id,
            name: self.name.clone(),
        };
        veil_store::with_use_context(context, self.run(msg)).await
    }

    async fn run(&self, msg: Msg) -> Vec<TraceStep> {
        let mut trace = Vec::new();
        let mut queue = VecDeque::from([(self.first, msg)]);
        let mut steps = 0;
        while let Some((index, msg)) = queue.pop_front() {
            steps += 1;
            let slot = &self.slots[index];
            if steps > MAX_STEPS {
                let error = format!(
                    "stopped: one message caused more than {MAX_STEPS} node executions (a loop in rule chain '{}'?)",
                    self.name
                );
                tracing::warn!(chain = %self.name, "{error}");
                trace.push(TraceStep {
                    node_id: slot.id.clone(),
                    node_name: slot.name.clone(),
                    relation: vec![],
                    error: Some(error),
                });
                break;
            }
            let input = slot.debug.then(|| to_json(&msg));
            // Clock reads only for debug events: they are a visible share of a fast node's cost.
            let started = slot.debug.then(|| (Instant::now(), msg_now()));
            let ctx = NodeCtx::new(&self.store, self.tenant).with_redactor(&self.redactor);
            let (outputs, error) = match slot.node.process(&ctx, msg).await {
                Ok(outputs) => (outputs, None),
                Err(Failed { msg, error }) => {
                    let error = self.redactor.mask(&error.to_string());
                    tracing::warn!(chain = %self.name, node = %slot.name, "node failed: {error}");
                    let msg = msg.with_metadata("error", error.clone());
                    (vec![(relation::FAILURE.into(), msg)], Some(error))
                }
            };
            if let (Some(mut input), Some((started, ts))) = (input, started) {
                self.record(slot, ts, &mut input, &outputs, ctx.take_notes(), error.clone(), started);
            }
            trace.push(TraceStep {
                node_id: slot.id.clone(),
                node_name: slot.name.clone(),
                relation: outputs.iter().map(|(r, _)| self.shown_relation(slot, r)).collect(),
                error,
            });
            for (rel, out) in outputs {
                if let Some(targets) = slot.routes.get(rel.as_ref()) {
                    if let Some((last, rest)) = targets.split_last() {
                        for &t in rest {
                            queue.push_back((t, out.clone()));
                        }
                        queue.push_back((*last, out));
                    }
                }
            }
        }
        trace
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        slot: &Slot,
        ts: i64,
        input: &mut Value,
        outputs: &[(crate::node::Relation, Msg)],
        notes: Vec<String>,
        error: Option<String>,
        started: Instant,
    ) {
        self.redactor.mask_json(input);
        let outputs = outputs
            .iter()
            .map(|(rel, m)| {
                let mut msg = to_json(m);
                self.redactor.mask_json(&mut msg);
                DebugOutput { relation: self.shown_relation(slot, rel), msg }
            })
            .collect();
        let event = DebugEvent {
            ts,
            node_id: slot.id.clone(),
            node_name: slot.name.clone(),
            input: std::mem::take(input),
            outputs,
            notes: notes.iter().map(|n| self.redactor.mask(n)).collect(),
            error,
            duration_micros: started.elapsed().as_micros() as u64,
        };
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() == DEBUG_EVENTS_KEPT {
            events.pop_front();
        }
        events.push_back(event);
    }
}

fn msg_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
