//! A ThingsBoard rule chain export converted into a Veil rule chain, and the report of what
//! became of each node.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use veil_core::{FormField, Problem, limit_error};
use veil_store::Actor;

use super::{NODE_TYPES, value_secrets_to_veil};
use crate::host::Host;

/// An export as ThingsBoard writes it (keys Veil does not read are ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Export {
    rule_chain: ExportedChain,
    metadata: Metadata,
}

#[derive(Deserialize)]
struct ExportedChain {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    first_node_index: Option<usize>,
    nodes: Vec<ExportedNode>,
    connections: Option<Vec<Connection>>,
    rule_chain_connections: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportedNode {
    #[serde(rename = "type")]
    class: String,
    name: String,
    debug_mode: Option<bool>,
    configuration: Option<Value>,
    additional_info: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    from_index: usize,
    to_index: usize,
    #[serde(rename = "type")]
    relation: String,
}

/// What became of the export: per node, the connections and links left out, and the secrets
/// the chain names that do not exist (yet).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImportReport {
    pub(crate) nodes: Vec<NodeOutcome>,
    pub(crate) left_out: Vec<String>,
    pub(crate) missing_secrets: Vec<MissingSecret>,
}

/// One node of the export and what became of it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeOutcome {
    /// Its index in the export's `metadata.nodes`.
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) thingsboard_type: String,
    /// `imported` (as `veilType`), `placeholder` (kept for the chain's shape) or `leftOut`.
    pub(crate) outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) veil_type: Option<String>,
    /// Why it was not imported as a Veil node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// Settings of its configuration Veil's node does not have (pointers), left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) ignored_settings: Vec<String>,
    /// Credentials the export holds written out rather than as secrets (pointers): imported as
    /// they are, to be moved into secrets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) written_out_credentials: Vec<String>,
}

/// What became of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Outcome {
    Imported,
    Placeholder,
    LeftOut,
}

/// A secret the chain names that the importing user cannot find: create it before saving.
#[derive(Debug, Serialize)]
pub(crate) struct MissingSecret {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
}

/// The converted chain (not stored) and its report.
pub(crate) struct Imported {
    pub(crate) chain: Value,
    pub(crate) report: ImportReport,
}

/// A node converted, or why it could not be.
enum Converted {
    Node { node: Value, veil_type: String, ignored: Vec<String>, written_out: Vec<String> },
    Unsupported { reason: String, ignored: Vec<String> },
}

/// Converts a ThingsBoard export for `actor`. Nodes Veil has no equivalent for (and scripts that
/// do not run as Rhai) are left out, with their connections, or with `keep_unsupported` kept as
/// `placeholder` nodes. Problems only when the export itself cannot be read.
pub(crate) fn import(
    host: &Host,
    actor: &Actor,
    doc: &Value,
    keep_unsupported: bool,
) -> Result<Imported, Vec<Problem>> {
    let export: Export = veil_core::parse_doc(doc)?;
    let max = host.limits().max_nodes_per_chain;
    if export.metadata.nodes.len() > max {
        return Err(vec![Problem::new(
            "/metadata/nodes",
            limit_error(
                "maxNodesPerChain",
                max,
                format!("the export has {} nodes", export.metadata.nodes.len()),
            ),
        )]);
    }
    let mut secrets = Vec::new();
    let mut outcomes = Vec::new();
    let mut nodes = Vec::new();
    // The export's index of each node → its index in the chain, for those kept.
    let mut kept: Vec<Option<usize>> = Vec::new();
    for (index, exported) in export.metadata.nodes.iter().enumerate() {
        let mut outcome = NodeOutcome {
            index,
            name: exported.name.clone(),
            thingsboard_type: exported.class.clone(),
            outcome: Outcome::Imported,
            veil_type: None,
            reason: None,
            ignored_settings: Vec::new(),
            written_out_credentials: Vec::new(),
        };
        let mut node = match convert(host, actor, exported, &mut secrets) {
            Converted::Node { node, veil_type, ignored, written_out } => {
                outcome.veil_type = Some(veil_type);
                outcome.ignored_settings = ignored;
                outcome.written_out_credentials = written_out;
                node
            }
            Converted::Unsupported { reason, ignored } => {
                outcome.ignored_settings = ignored;
                outcome.reason = Some(reason.clone());
                if !keep_unsupported {
                    outcome.outcome = Outcome::LeftOut;
                    outcomes.push(outcome);
                    kept.push(None);
                    continue;
                }
                outcome.outcome = Outcome::Placeholder;
                outcome.veil_type = Some("placeholder".into());
                json!({
                    "type": "placeholder",
                    "name": exported.name,
                    "configuration": {"originalType": exported.class, "reason": reason},
                })
            }
        };
        node["debugMode"] = json!(exported.debug_mode.unwrap_or(false));
        if let Some(info @ Value::Object(_)) = &exported.additional_info {
            node["additionalInfo"] = info.clone();
        }
        kept.push(Some(nodes.len()));
        nodes.push(node);
        outcomes.push(outcome);
    }
    let mut left_out = Vec::new();
    let mut connections = Vec::new();
    let name_of = |i: usize| export.metadata.nodes.get(i).map_or("?", |n| n.name.as_str());
    for c in export.metadata.connections.iter().flatten() {
        match (kept.get(c.from_index).copied().flatten(), kept.get(c.to_index).copied().flatten()) {
            (Some(from), Some(to)) => {
                connections.push(json!({"fromIndex": from, "toIndex": to, "type": c.relation}))
            }
            _ => left_out.push(format!(
                "connection '{}' from '{}' to '{}': a node it joins was left out",
                c.relation,
                name_of(c.from_index),
                name_of(c.to_index)
            )),
        }
    }
    for link in export.metadata.rule_chain_connections.iter().flatten() {
        let relation = link.get("type").and_then(Value::as_str).unwrap_or("?");
        let from = link.get("fromIndex").and_then(Value::as_u64).map_or("?", |i| name_of(i as usize));
        left_out.push(format!(
            "connection '{relation}' from '{from}' to another rule chain: Veil chains do not call each other"
        ));
    }
    let first = export.metadata.first_node_index.and_then(|i| kept.get(i).copied().flatten()).unwrap_or(0);
    secrets.sort();
    secrets.dedup_by(|a, b| a.0 == b.0);
    let missing_secrets = secrets
        .into_iter()
        .filter(|(name, _)| host.store().find(actor, name).is_none())
        .map(|(name, kind)| MissingSecret { name, kind })
        .collect();
    Ok(Imported {
        chain: json!({
            "name": export.rule_chain.name,
            "firstNodeIndex": first,
            "nodes": nodes,
            "connections": connections,
        }),
        report: ImportReport { nodes: outcomes, left_out, missing_secrets },
    })
}

/// One node of the export as a Veil node (`type`, `name`, `configuration`), or why not.
fn convert(
    host: &Host,
    actor: &Actor,
    exported: &ExportedNode,
    secrets: &mut Vec<(String, String)>,
) -> Converted {
    let Some((_, veil_type, mode)) = NODE_TYPES.iter().find(|(class, _, _)| *class == exported.class) else {
        return Converted::Unsupported {
            reason: "Veil has no node that does what it does".into(),
            ignored: Vec::new(),
        };
    };
    let config = match &exported.configuration {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let mut written_out = Vec::new();
    let (mut configuration, ignored) = match (*veil_type, mode) {
        ("script", Some(mode)) => {
            let (script, ignored) = script_of(&config);
            let configuration = json!({"mode": mode, "script": script});
            if let Some(problem) = script_problem(host, actor, &exported.name, &configuration) {
                let language = config.get("scriptLang").and_then(Value::as_str).unwrap_or("JS");
                return Converted::Unsupported {
                    reason: format!("its {language} script does not run as Rhai: {problem}"),
                    ignored,
                };
            }
            (configuration, ignored)
        }
        // Veil's log writes the message as it is: ThingsBoard's formatting script has no place.
        ("log", _) => (json!({}), config.keys().map(|k| format!("/{}", escape(k))).collect()),
        (veil_type, _) => {
            let Some(descriptor) = host.node_registry().get(veil_type) else {
                return Converted::Unsupported {
                    reason: format!("node type {veil_type} is not available"),
                    ignored: Vec::new(),
                };
            };
            let form = veil_core::form_fields(&(descriptor.schema)(), descriptor.fields);
            let root = Value::Object(config.clone());
            let mut ignored = Vec::new();
            let kept = Value::Object(keep_known(&config, "", &form, &root, &mut ignored));
            // A credential field (secret-capable, no message templates) holding a value rather
            // than a ThingsBoard secret placeholder.
            for f in form.iter().filter(|f| f.secret.is_some() && !f.template && !f.pointer.contains('*')) {
                let value = kept.pointer(&f.pointer).and_then(Value::as_str).unwrap_or_default();
                if !value.trim().is_empty()
                    && !value.contains(super::TB_SECRET)
                    && !written_out.contains(&f.pointer)
                {
                    written_out.push(f.pointer.clone());
                }
            }
            (kept, ignored)
        }
    };
    value_secrets_to_veil(&mut configuration, secrets);
    Converted::Node {
        node: json!({"type": veil_type, "name": exported.name, "configuration": configuration}),
        veil_type: (*veil_type).to_owned(),
        ignored,
        written_out,
    }
}

/// The script a ThingsBoard script node runs (`tbelScript` for `scriptLang` TBEL, `jsScript`
/// otherwise), and its other settings, left out.
fn script_of(config: &Map<String, Value>) -> (String, Vec<String>) {
    let tbel = config.get("scriptLang").and_then(Value::as_str) == Some("TBEL");
    let key = if tbel { "tbelScript" } else { "jsScript" };
    let script = config.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let ignored = config
        .keys()
        .filter(|k| !matches!(k.as_str(), "scriptLang" | "jsScript" | "tbelScript"))
        .map(|k| format!("/{}", escape(k)))
        .collect();
    (script, ignored)
}

/// Why the script does not build as a Veil script node, if it does not.
fn script_problem(host: &Host, actor: &Actor, name: &str, configuration: &Value) -> Option<String> {
    let chain = json!({"name": "import", "nodes": [{"type": "script", "name": name, "configuration": configuration}]});
    match veil_core::deploy(host.node_registry(), host.store(), actor, &chain) {
        Ok(_) => None,
        Err(problems) => {
            problems.into_iter().find(|p| p.path.starts_with("/nodes/0/configuration")).map(|p| p.message)
        }
    }
}

/// The keys of `config` (at pointer `at`) the node's form has, for the variant `root` chooses;
/// every other one is added to `ignored`. Nulls go too (the absent value is the default).
fn keep_known(
    config: &Map<String, Value>,
    at: &str,
    form: &[FormField],
    root: &Value,
    ignored: &mut Vec<String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in config {
        let pointer = format!("{at}/{}", escape(key));
        if value.is_null() {
            continue;
        }
        let field = form.iter().find(|f| f.pointer == pointer);
        let in_variant = |f: &FormField| {
            f.variant
                .as_ref()
                .is_none_or(|v| root.pointer(&v.pointer).and_then(Value::as_str) == Some(&v.value))
        };
        match (field, value) {
            (Some(f), _) if in_variant(f) => {
                out.insert(key.clone(), value.clone());
            }
            (None, Value::Object(inner))
                if form.iter().any(|f| f.pointer.starts_with(&format!("{pointer}/"))) =>
            {
                out.insert(key.clone(), Value::Object(keep_known(inner, &pointer, form, root, ignored)));
            }
            _ => ignored.push(pointer),
        }
    }
    out
}

/// A key as a JSON pointer segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
