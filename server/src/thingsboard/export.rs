//! A Veil rule chain written as a ThingsBoard export.

use serde_json::{Value, json};
use veil_core::Piece;
use veil_store::{Actor, OwnerRecord, SecretType, Store};

use super::NODE_TYPES;

/// ThingsBoard's log node needs a script that formats the line: its default one.
const LOG_SCRIPT: &str = "return '\\nIncoming message:\\n' + JSON.stringify(msg) + '\\nIncoming metadata:\\n' + JSON.stringify(metadata);";

/// The stored chain `record` as a ThingsBoard export: node types as ThingsBoard's classes (a
/// `placeholder` as the type it stands for; a node ThingsBoard has no class for under
/// `veil.<type>`), `$<secret:NAME>` as `${secret:NAME;type:TEXT|FILE}`, positions kept (a node
/// without one is placed on a grid). Scripts are Rhai: ThingsBoard runs them as JavaScript, so a
/// script may need a rewrite there.
pub(crate) fn export(store: &Store, actor: &Actor, record: &OwnerRecord) -> Value {
    let body = &record.body;
    let empty = Vec::new();
    let nodes: Vec<Value> = body["nodes"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let veil_type = node["type"].as_str().unwrap_or_default();
            let configuration = &node["configuration"];
            let (class, configuration) = match veil_type {
                "script" => {
                    let mode = configuration["mode"].as_str().unwrap_or_default();
                    let class = NODE_TYPES.iter().find(|(_, t, m)| *t == "script" && *m == Some(mode));
                    let script = configuration["script"].clone();
                    (
                        class.map(|c| c.0.to_owned()),
                        json!({"scriptLang": "JS", "jsScript": script, "tbelScript": null}),
                    )
                }
                "log" => (
                    NODE_TYPES.iter().find(|(_, t, _)| *t == "log").map(|c| c.0.to_owned()),
                    json!({"scriptLang": "JS", "jsScript": LOG_SCRIPT, "tbelScript": null}),
                ),
                "placeholder" => (configuration["originalType"].as_str().map(str::to_owned), json!({})),
                other => (
                    NODE_TYPES.iter().find(|(_, t, _)| *t == other).map(|c| c.0.to_owned()),
                    secrets_to_thingsboard(configuration, store, actor),
                ),
            };
            let mut info = node["additionalInfo"].as_object().cloned().unwrap_or_default();
            info.entry("layoutX").or_insert(json!(100 + (i % 5) * 250));
            info.entry("layoutY").or_insert(json!(100 + (i / 5) * 150));
            info.entry("description").or_insert(json!(""));
            json!({
                "type": class.unwrap_or_else(|| format!("veil.{veil_type}")),
                "name": node["name"],
                "debugMode": node["debugMode"].as_bool().unwrap_or(false),
                "singletonMode": false,
                "configurationVersion": 0,
                "configuration": configuration,
                "additionalInfo": info,
            })
        })
        .collect();
    json!({
        "ruleChain": {
            "name": body["name"],
            "type": "CORE",
            "firstRuleNodeId": null,
            "root": false,
            "debugMode": false,
            "configuration": null,
            "additionalInfo": {"description": ""},
        },
        "metadata": {
            "firstNodeIndex": body["firstNodeIndex"].as_u64().unwrap_or(0),
            "nodes": nodes,
            "connections": body["connections"].as_array().cloned().unwrap_or_default(),
            "ruleChainConnections": null,
        }
    })
}

/// `value` with every `$<secret:NAME>` written as ThingsBoard's `${secret:NAME;type:T}` (the
/// secret's type as `actor` sees it; TEXT for one it cannot see).
fn secrets_to_thingsboard(value: &Value, store: &Store, actor: &Actor) -> Value {
    match value {
        Value::String(text) => match veil_core::parse(text) {
            Ok(pieces) if pieces.iter().any(|p| matches!(p, Piece::Secret(_))) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Literal(literal) => out.push_str(&literal),
                        Piece::Secret(name) => {
                            let kind = match store.find(actor, name).map(|s| s.kind) {
                                Some(SecretType::File) => "FILE",
                                _ => "TEXT",
                            };
                            out.push_str(&format!("${{secret:{name};type:{kind}}}"));
                        }
                    }
                }
                Value::String(out)
            }
            _ => value.clone(),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| secrets_to_thingsboard(v, store, actor)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter().map(|(k, v)| (k.clone(), secrets_to_thingsboard(v, store, actor))).collect(),
        ),
        other => other.clone(),
    }
}
