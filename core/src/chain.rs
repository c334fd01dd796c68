//! Rule chains in ThingsBoard's shape, and deploying one: parse, compile every node's
//! configuration once, check every secret reference against the store, build the nodes.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use veil_store::{Actor, Operation, OwnerLink, SecretRef, Store};

use crate::budget::{TenantBudgets, deeper_than};
use crate::config::parse_doc;
use crate::error::Problem;
use crate::limits::limit_error;
use crate::node::{BuildCtx, Node, Registry};
use crate::secrets::{Proposal, Secrets};
use crate::template::{SecretUse, compile};

/// A rule chain as users write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleChainDef {
    /// Display name.
    pub name: String,
    /// Where messages enter.
    #[serde(default)]
    pub first_node_index: usize,
    /// The nodes.
    pub nodes: Vec<NodeDef>,
    /// Relations between nodes.
    #[serde(default)]
    pub connections: Vec<ConnectionDef>,
}

/// One node of a chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeDef {
    /// Stable id; assigned at deploy when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Node type name, e.g. `rest_api_call`.
    #[serde(rename = "type")]
    pub node_type: String,
    /// Display name.
    pub name: String,
    /// Type-specific configuration; may hold placeholders in secret-capable fields.
    #[serde(default = "empty_object")]
    pub configuration: Value,
    /// Record debug events for this node.
    #[serde(default)]
    pub debug_mode: bool,
    /// Where and how the editor shows the node, in ThingsBoard's shape: `layoutX`, `layoutY`
    /// (numbers), `description` (text); other keys are kept as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_info: Option<serde_json::Map<String, Value>>,
}

/// Problems of a node's `additionalInfo` at `base`: the layout is a pair of finite numbers, the
/// description text, and the whole of it as shallow as `max_depth`.
fn additional_info_problems(
    info: &serde_json::Map<String, Value>,
    base: &str,
    max_depth: usize,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for key in ["layoutX", "layoutY"] {
        if let Some(value) = info.get(key).filter(|v| !v.is_null())
            && !value.as_f64().is_some_and(f64::is_finite)
        {
            problems.push(Problem::new(format!("{base}/{key}"), "must be a number (the node's position)"));
        }
    }
    if let Some(value) = info.get("description").filter(|v| !v.is_null())
        && !value.is_string()
    {
        problems.push(Problem::new(format!("{base}/description"), "must be text"));
    }
    if info.values().any(|v| deeper_than(v, max_depth)) {
        problems.push(Problem::new(
            base.to_owned(),
            limit_error("maxDataDepth", max_depth, "additionalInfo nests arrays and objects deeper"),
        ));
    }
    problems
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A relation from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDef {
    /// Index of the source node.
    pub from_index: usize,
    /// Index of the target node.
    pub to_index: usize,
    /// Relation name (`Success`, `Failure`, `True`, ...).
    #[serde(rename = "type")]
    pub relation: String,
}

/// A node ready to run.
pub(crate) struct BuiltNode {
    pub(crate) node: Box<dyn Node>,
    pub(crate) secret_names: Vec<String>,
    pub(crate) secrets: Secrets,
}

/// A validated chain: its definition (with node ids filled in), its references for the store,
/// and its built nodes.
pub struct Deployment {
    /// The definition to persist: placeholders as written, never values.
    pub def: RuleChainDef,
    /// Every secret reference, with node and field.
    pub references: Vec<SecretRef>,
    /// Every other configuration its nodes use (integrations), with node and field.
    pub links: Vec<OwnerLink>,
    pub(crate) nodes: Vec<BuiltNode>,
    pub(crate) budgets: Arc<TenantBudgets>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment").field("def", &self.def).field("references", &self.references).finish()
    }
}

/// Parses a chain document, reporting a type error with its path.
pub fn parse_chain(doc: &Value) -> Result<RuleChainDef, Vec<Problem>> {
    parse_doc(doc)
}

/// Checks that every secret use exists for the actor, has an accepted type, and that the actor
/// may USE it. One problem per failing use, at `base + pointer`.
pub fn check_secret_uses(
    store: &Store,
    actor: &Actor,
    base: &str,
    uses: &[SecretUse],
    problems: &mut Vec<Problem>,
) {
    for u in uses {
        let path = format!("{base}{}", u.pointer);
        match store.find(actor, &u.name) {
            None => problems.push(Problem::new(path, format!("secret '{}' does not exist", u.name))),
            Some(info) if !u.accepts.allows(info.kind) => problems.push(Problem::new(
                path,
                format!(
                    "secret '{}' is a {} secret; this field accepts {}",
                    u.name,
                    info.kind,
                    u.accepts.describe()
                ),
            )),
            Some(info) => {
                if let Some(problem) = u.accepts.content_problem(&info) {
                    let message =
                        format!("secret '{}' {problem}; this field accepts {}", u.name, u.accepts.describe());
                    problems.push(Problem::new(path, message));
                } else if actor.require(Operation::Use).is_err() {
                    problems.push(Problem::permission(
                        path,
                        format!("missing permission SECRET:USE to reference secret '{}'", u.name),
                    ));
                }
            }
        }
    }
}

/// A name shown on screens and terminals must hold no control or invisible formatting characters.
pub(crate) fn label_problem(path: &str, label: &str, problems: &mut Vec<Problem>) {
    if let Err(p) = veil_store::validate_label(path, label) {
        problems.push(Problem::new(path, p.message));
    }
}

/// Validates and builds a chain. Every problem is reported at once, each with its JSON pointer.
pub fn deploy(
    registry: &Registry,
    store: &Store,
    actor: &Actor,
    doc: &Value,
) -> Result<Deployment, Vec<Problem>> {
    deploy_proposed(registry, store, actor, doc, None)
}

/// [`deploy`] validated against a change not stored yet (`proposal`), to see what it would break.
pub fn deploy_proposed(
    registry: &Registry,
    store: &Store,
    actor: &Actor,
    doc: &Value,
    proposal: Option<&Proposal>,
) -> Result<Deployment, Vec<Problem>> {
    let mut def = parse_chain(doc)?;
    let limits = registry.limits();
    let mut problems = Vec::new();
    // Sizes first: nothing is built for a chain that is too large.
    if def.nodes.len() > limits.max_nodes_per_chain {
        problems.push(Problem::new(
            "/nodes",
            limit_error(
                "maxNodesPerChain",
                limits.max_nodes_per_chain,
                format!("the chain has {} nodes", def.nodes.len()),
            ),
        ));
    }
    if def.connections.len() > limits.max_connections_per_chain {
        problems.push(Problem::new(
            "/connections",
            limit_error(
                "maxConnectionsPerChain",
                limits.max_connections_per_chain,
                format!("the chain has {} connections", def.connections.len()),
            ),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if def.name.trim().is_empty() {
        problems.push(Problem::new("/name", "must not be empty"));
    }
    label_problem("/name", &def.name, &mut problems);
    if def.nodes.is_empty() {
        problems.push(Problem::new("/nodes", "a rule chain needs at least one node"));
    } else if def.first_node_index >= def.nodes.len() {
        problems.push(Problem::new(
            "/firstNodeIndex",
            format!("is {}, but the chain has {} nodes", def.first_node_index, def.nodes.len()),
        ));
    }
    let mut nodes = Vec::with_capacity(def.nodes.len());
    let mut references = Vec::new();
    let mut links = Vec::new();
    for (i, node) in def.nodes.iter_mut().enumerate() {
        let id = node.id.get_or_insert_with(|| uuid::Uuid::new_v4().to_string()).clone();
        if node.name.trim().is_empty() {
            problems.push(Problem::new(format!("/nodes/{i}/name"), "must not be empty"));
        }
        label_problem(&format!("/nodes/{i}/name"), &node.name, &mut problems);
        if let Some(info) = &node.additional_info {
            let base = format!("/nodes/{i}/additionalInfo");
            problems.extend(additional_info_problems(info, &base, limits.max_data_depth));
        }
        let Some(descriptor) = registry.get(&node.node_type) else {
            let known: Vec<&str> = registry.types().map(|d| d.type_name).collect();
            problems.push(Problem::new(
                format!("/nodes/{i}/type"),
                format!("unknown node type '{}' (known: {})", node.node_type, known.join(", ")),
            ));
            continue;
        };
        let base = format!("/nodes/{i}/configuration");
        if !node.configuration.is_object() {
            problems.push(Problem::new(base, "must be a JSON object"));
            continue;
        }
        if deeper_than(&node.configuration, limits.max_data_depth) {
            problems.push(Problem::new(
                base,
                limit_error(
                    "maxDataDepth",
                    limits.max_data_depth,
                    "the configuration nests arrays and objects deeper",
                ),
            ));
            continue;
        }
        let compiled = compile(&node.configuration, descriptor.fields, &base, &mut problems);
        let mut uses = compiled.secret_uses().to_vec();
        let ctx = BuildCtx::new(store, actor.tenant_id, &base, &node.name)
            .with_services(registry.services())
            .with_limits(*registry.limits())
            .with_scripts(registry.scripts())
            .with_proposal(proposal)
            .for_customer(actor.customer_id);
        let built = (descriptor.build)(&ctx, compiled);
        uses.extend(ctx.take_uses());
        for (kind, target, pointer) in ctx.take_links() {
            links.push(OwnerLink {
                kind,
                target,
                node_id: Some(id.clone()),
                node_name: Some(node.name.clone()),
                pointer: format!("{base}{pointer}"),
            });
        }
        check_secret_uses(store, actor, &base, &uses, &mut problems);
        let mut secret_names: Vec<String> = uses.iter().map(|u| u.name.clone()).collect();
        secret_names.sort();
        secret_names.dedup();
        for u in &uses {
            references.push(SecretRef {
                secret_name: u.name.clone(),
                node_id: Some(id.clone()),
                node_name: Some(node.name.clone()),
                pointer: format!("{base}{}", u.pointer),
            });
        }
        // From now on the node resolves exactly these (and the store tracks exactly these).
        let secrets = ctx.secrets();
        secrets.declare(secret_names.iter().cloned());
        match built {
            Ok(node) => nodes.push(BuiltNode { node, secret_names, secrets }),
            Err(mut p) => problems.append(&mut p),
        }
    }
    let mut seen = HashMap::new();
    for (j, c) in def.connections.iter().enumerate() {
        let first = *seen.entry((c.from_index, c.to_index, c.relation.as_str())).or_insert(j);
        if first != j {
            problems.push(Problem::new(
                format!("/connections/{j}"),
                format!("repeats connection {first} (same fromIndex, toIndex and type): each would send its own copy"),
            ));
        }
        for (field, index) in [("fromIndex", c.from_index), ("toIndex", c.to_index)] {
            if index >= def.nodes.len() {
                problems.push(Problem::new(
                    format!("/connections/{j}/{field}"),
                    format!("is {index}, but the chain has {} nodes", def.nodes.len()),
                ));
            }
        }
        if c.relation.trim().is_empty() {
            problems.push(Problem::new(format!("/connections/{j}/type"), "must not be empty"));
        }
    }
    if problems.is_empty() {
        references.sort_by(|a, b| a.pointer.cmp(&b.pointer));
        references.dedup();
        Ok(Deployment { def, references, links, nodes, budgets: Arc::clone(registry.budgets()) })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {}
