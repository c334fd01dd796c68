//! `script`: a Rhai filter, transform or switch, as ThingsBoard's script nodes. The script sees
//! `msg` (the data), `metadata` and `msgType`; `secret("name")` gives a secret's value to the
//! script (a literal name, tracked as a reference like a placeholder).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use veil_core::rhai::{Dynamic, Map, Scope};
use veil_core::{
    Accepts, BoxFuture, BuildCtx, CompiledConfig, Failed, Msg, Node, NodeCtx, NodeDescriptor, NodeResult,
    Outputs, Problem, Script, from_dynamic, relation, to_dynamic,
};

pub(crate) static DESCRIPTOR: NodeDescriptor = NodeDescriptor {
    type_name: "script",
    description: "Filters, transforms or switches messages with a Rhai script; secret(\"name\") reads a secret",
    default_config: || json!({ "mode": "filter", "script": "msg.temperature > 20" }),
    fields: &[],
    build,
};

#[derive(Clone, Copy)]
enum Mode {
    Filter,
    Transform,
    Switch,
}

struct ScriptNode {
    mode: Mode,
    script: Script,
}

const INPUTS: &[&str] = &["msg", "metadata", "msgType"];

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn Node>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mode = match config.plain().get("mode").and_then(Value::as_str) {
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
    let script = match config.plain().get("script").and_then(Value::as_str) {
        Some(source) => match Script::compile(ctx.store, ctx.tenant, source, INPUTS) {
            Ok(script) if ctx.customer_id.is_some() && !script.secrets().is_empty() => {
                // A script that holds a value can print or encode it: customers use secrets, they
                // never read them.
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

impl ScriptNode {
    // The error carries the message back so it can go to `Failure`.
    #[allow(clippy::result_large_err)]
    fn outputs(&self, result: Dynamic, mut msg: Msg) -> Result<Outputs, (Msg, String)> {
        match self.mode {
            Mode::Filter => match result.as_bool() {
                Ok(true) => Ok(vec![(relation::TRUE.into(), msg)]),
                Ok(false) => Ok(vec![(relation::FALSE.into(), msg)]),
                Err(t) => Err((msg, format!("a filter script must return true or false, not {t}"))),
            },
            Mode::Transform => {
                let Some(map) = result.try_cast::<Map>() else {
                    return Err((
                        msg,
                        "a transform script must return #{msg: ..., metadata: ..., msgType: ...}".into(),
                    ));
                };
                if let Some(data) = map.get("msg") {
                    msg.data = from_dynamic(data).map_err(|e| (msg.clone(), e))?;
                }
                if let Some(metadata) = map.get("metadata") {
                    let value = from_dynamic(metadata).map_err(|e| (msg.clone(), e))?;
                    let Value::Object(entries) = value else {
                        return Err((msg, "metadata must be a map".into()));
                    };
                    msg.metadata = entries
                        .into_iter()
                        .map(|(k, v)| match v {
                            Value::String(s) => (k, s),
                            other => (k, other.to_string()),
                        })
                        .collect::<BTreeMap<_, _>>();
                }
                if let Some(msg_type) = map.get("msgType") {
                    msg.msg_type = msg_type.to_string();
                }
                Ok(vec![(relation::SUCCESS.into(), msg)])
            }
            Mode::Switch => {
                let names: Vec<String> = if result.is_string() {
                    vec![result.to_string()]
                } else if let Some(items) = result.clone().try_cast::<veil_core::rhai::Array>() {
                    items.iter().map(ToString::to_string).collect()
                } else {
                    return Err((
                        msg,
                        format!(
                            "a switch script must return a relation name or an array of names, not {}",
                            result.type_name()
                        ),
                    ));
                };
                let Some((last, rest)) = names.split_last() else {
                    return Ok(Vec::new());
                };
                let mut out: Outputs = rest.iter().map(|n| (n.clone().into(), msg.clone())).collect();
                out.push((last.clone().into(), msg));
                Ok(out)
            }
        }
    }
}

impl Node for ScriptNode {
    fn process<'a>(&'a self, ctx: &'a NodeCtx<'a>, msg: Msg) -> BoxFuture<'a, NodeResult> {
        Box::pin(async move {
            let mut scope = Scope::new();
            scope.push_dynamic("msg", to_dynamic(&msg.data));
            scope.push_dynamic("metadata", to_dynamic(&msg.metadata));
            scope.push("msgType", msg.msg_type.clone());
            let run = self.script.run(&mut scope);
            for line in run.notes {
                ctx.note(line);
            }
            match run.result {
                Ok(result) => self.outputs(result, msg).map_err(|(msg, e)| Failed::new(msg, e)),
                Err(e) => Err(Failed::new(msg, e)),
            }
        })
    }
}
