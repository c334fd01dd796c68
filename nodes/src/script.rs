//! `script`: a Rhai filter, transform or switch, as ThingsBoard's script nodes. The script sees
//! `msg` (the data), `metadata` and `msgType`; `secret("name")` gives the script the secret
//! sealed (a literal name, tracked as a reference like a placeholder; see `veil_core::Sealed`).

use std::collections::BTreeMap;

use rhai::{Dynamic, Map, Scope};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use veil_core::{
    Accepts, BoxFuture, BuildCtx, CompiledConfig, Failed, Msg, Node, NodeCtx, NodeDescriptor, NodeResult,
    Outputs, Problem, Script, Sealed, from_dynamic, limit_error, metadata_to_dynamic, relation, to_dynamic,
};

pub(crate) static DESCRIPTOR: NodeDescriptor = NodeDescriptor {
    type_name: "script",
    description: "Filters, transforms or switches messages with a Rhai script; secret(\"name\") gives a sealed secret",
    default_config: || json!({ "mode": "filter", "script": "msg.temperature > 20" }),
    fields: &[],
    schema: || schemars::schema_for!(ScriptConfig).to_value(),
    relations: &["Success", "True", "False", "Failure"],
    named_relations: true,
    build,
};

/// What a script node does with its script's result.
#[derive(Clone, Copy, JsonSchema)]
#[schemars(rename_all = "lowercase")]
enum Mode {
    /// `True`/`False` by the script's boolean.
    Filter,
    /// `Success` with the script's message.
    Transform,
    /// The relations the script names.
    Switch,
}

/// `script` configuration (ThingsBoard's script nodes).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScriptConfig {
    /// `filter` (relation `True`/`False`), `transform` (`Success`) or `switch` (named relations).
    #[schemars(with = "Option<Mode>", required)]
    mode: Option<String>,
    /// The Rhai source.
    #[schemars(required, extend("format" = "rhai"))]
    script: Option<String>,
}

struct ScriptNode {
    mode: Mode,
    script: Script,
}

const INPUTS: &[&str] = &["msg", "metadata", "msgType"];

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn Node>, Vec<Problem>> {
    let settings: ScriptConfig = ctx.parse(&config)?;
    let mut problems = Vec::new();
    let mode = match settings.mode.as_deref() {
        Some("filter") => Some(Mode::Filter),
        Some("transform") => Some(Mode::Transform),
        Some("switch") => Some(Mode::Switch),
        other => {
            problems.push(ctx.problem(
                "/mode",
                format!(
                    "{} is not one of filter, transform, switch",
                    other.map_or("nothing".into(), |m| format!("'{m}'"))
                ),
            ));
            None
        }
    };
    let script = match settings.script.as_deref() {
        Some(source) => match Script::compile(&ctx.scripts(), &ctx.secrets(), source, INPUTS) {
            Ok(script) if ctx.customer_id.is_some() && !script.secrets().is_empty() => {
                // A script's one-way helpers give a hash of the value for any data it picks,
                // which would let a customer test guesses: customers use secrets, they never
                // read them.
                problems.push(ctx.problem(
                    "/script",
                    "secret() is not available in a customer's rule chain: reference the secret in a \
                     secret-capable field of another node instead",
                ));
                None
            }
            Ok(script) => {
                for name in script.secrets() {
                    ctx.use_secret(name, "/script", Accepts::Any);
                }
                Some(script)
            }
            Err(errors) => {
                problems.extend(errors.iter().map(|e| ctx.problem("/script", e.to_string())));
                None
            }
        },
        None => {
            problems.push(ctx.problem("/script", "is required (Rhai source)"));
            None
        }
    };
    match (mode, script) {
        (Some(mode), Some(script)) if problems.is_empty() => Ok(Box::new(ScriptNode { mode, script })),
        _ => Err(problems),
    }
}

/// Most relation names one switch run may return (each is a copy of the message).
pub(crate) const MAX_SWITCH_RELATIONS: usize = 100;

/// What a run decided, converted from the script's value on the script thread.
enum Decision {
    Filter(bool),
    Transform { data: Option<Value>, metadata: Option<BTreeMap<String, String>>, msg_type: Option<String> },
    Switch(Vec<String>),
}

fn decide(mode: Mode, result: Dynamic, depth: usize) -> Result<Decision, String> {
    match mode {
        Mode::Filter => match result.as_bool() {
            Ok(b) => Ok(Decision::Filter(b)),
            Err(t) => Err(format!("a filter script must return true or false, not {t}")),
        },
        Mode::Transform => {
            let Some(map) = result.try_cast::<Map>() else {
                return Err("a transform script must return #{msg: ..., metadata: ..., msgType: ...}".into());
            };
            let data = map.get("msg").map(|v| from_dynamic(v, depth)).transpose()?;
            let metadata = match map.get("metadata").map(|v| from_dynamic(v, depth)).transpose()? {
                None => None,
                Some(Value::Object(entries)) => Some(
                    entries
                        .into_iter()
                        .map(|(k, v)| match v {
                            Value::String(s) => (k, s),
                            other => (k, other.to_string()),
                        })
                        .collect(),
                ),
                Some(_) => return Err("metadata must be a map".into()),
            };
            let msg_type = match map.get("msgType") {
                Some(t) if t.is::<Sealed>() => {
                    return Err("msgType: a Secret cannot be a message type".into());
                }
                Some(t) if t.is_string() => Some(t.to_string()),
                Some(t) if t.is_unit() => None,
                Some(t) => {
                    return Err(format!("msgType: a message type must be a string, not {}", t.type_name()));
                }
                None => None,
            };
            Ok(Decision::Transform { data, metadata, msg_type })
        }
        Mode::Switch => {
            let sealed = result.is::<Sealed>()
                || result
                    .read_lock::<rhai::Array>()
                    .is_some_and(|items| items.iter().any(|i| i.is::<Sealed>()));
            if sealed {
                return Err("a switch script's relation names cannot be Secrets".into());
            }
            let mut names: Vec<String> = if result.is_string() {
                vec![result.to_string()]
            } else if let Some(items) = result.clone().try_cast::<rhai::Array>() {
                items.iter().map(ToString::to_string).collect()
            } else {
                return Err(format!(
                    "a switch script must return a relation name or an array of names, not {}",
                    result.type_name()
                ));
            };
            let mut seen = std::collections::HashSet::new();
            names.retain(|n| seen.insert(n.clone()));
            if names.len() > MAX_SWITCH_RELATIONS {
                return Err(limit_error(
                    "maxSwitchRelations",
                    MAX_SWITCH_RELATIONS,
                    format!("the switch script returned {} relation names", names.len()),
                ));
            }
            Ok(Decision::Switch(names))
        }
    }
}

fn outputs(decision: Decision, mut msg: Msg) -> Outputs {
    match decision {
        Decision::Filter(true) => vec![(relation::TRUE.into(), msg)],
        Decision::Filter(false) => vec![(relation::FALSE.into(), msg)],
        Decision::Transform { data, metadata, msg_type } => {
            if let Some(data) = data {
                msg.data = data;
            }
            if let Some(metadata) = metadata {
                msg.metadata = metadata;
            }
            if let Some(msg_type) = msg_type {
                msg.msg_type = msg_type;
            }
            vec![(relation::SUCCESS.into(), msg)]
        }
        Decision::Switch(names) => {
            let Some((last, rest)) = names.split_last() else {
                return Vec::new();
            };
            let mut out: Outputs = rest.iter().map(|n| (n.clone().into(), msg.clone())).collect();
            out.push((last.clone().into(), msg));
            out
        }
    }
}

/// What a script node's script sees: `msg` (the data), `metadata` and `msgType`.
fn fill(msg: &Msg, scope: &mut Scope<'static>) {
    scope.push_dynamic("msg", to_dynamic(&msg.data));
    scope.push_dynamic("metadata", metadata_to_dynamic(&msg.metadata));
    scope.push("msgType", msg.msg_type.clone());
}

impl Node for ScriptNode {
    fn process<'a>(&'a self, ctx: &'a NodeCtx<'a>, msg: Msg) -> BoxFuture<'a, NodeResult> {
        Box::pin(async move {
            let mode = self.mode;
            let depth = self.script.max_data_depth();
            let run =
                self.script.run(ctx.budget(), &msg, fill, move |result| decide(mode, result, depth)).await;
            for line in run.notes {
                ctx.note(line);
            }
            match run.result {
                Ok(decision) => Ok(outputs(decision, msg)),
                Err(e) => Err(Failed::new(msg, e)),
            }
        })
    }
    fn probe<'a>(
        &'a self,
        _secrets: &'a veil_core::Secrets,
        _name: &'a str,
    ) -> BoxFuture<'a, veil_core::Probe> {
        Box::pin(async {
            veil_core::Probe::not_probed("a script's use of a secret can only be tested by a message")
        })
    }
}
