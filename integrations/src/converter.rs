//! Converters: Rhai scripts (sandboxed like the `script` node; `secret("name")` works the same)
//! that turn an uplink payload into rule-chain messages and a message into a downlink.

use std::collections::BTreeMap;

use rhai::Scope;
use serde_json::{Map, Value};
use veil_core::{Msg, RunBudget, Script, from_dynamic, metadata_to_dynamic, to_dynamic};

/// Variables the uplink converter sees.
pub(crate) const UPLINK_INPUTS: &[&str] = &["payload", "metadata"];
/// Variables the downlink converter sees.
pub(crate) const DOWNLINK_INPUTS: &[&str] = &["msg", "metadata", "msgType"];
/// Messages one uplink may produce.
pub const MAX_UPLINK_MESSAGES: usize = 1000;

/// A converter's result and its `print` output.
pub(crate) struct Converted<T> {
    pub(crate) result: Result<T, String>,
    pub(crate) notes: Vec<String>,
}

/// Runs the uplink converter (see `Script::run`) and turns its output into messages.
pub(crate) async fn uplink(
    script: &Script,
    budget: &RunBudget<'_>,
    payload: Value,
    metadata: &BTreeMap<String, String>,
) -> Converted<Vec<Msg>> {
    fn fill((payload, metadata): &(Value, BTreeMap<String, String>), scope: &mut Scope<'static>) {
        scope.push_dynamic("payload", to_dynamic(payload));
        scope.push_dynamic("metadata", metadata_to_dynamic(metadata));
    }
    let base = metadata.clone();
    let input = (payload, metadata.clone());
    let depth = script.max_data_depth();
    let run = script
        .run(budget, &input, fill, move |out| from_dynamic(&out, depth).and_then(|out| messages(out, &base)))
        .await;
    Converted { result: run.result, notes: run.notes }
}

/// Runs the downlink converter on a message (see `Script::run`).
pub(crate) async fn downlink(script: &Script, budget: &RunBudget<'_>, msg: &Msg) -> Converted<Value> {
    fn fill(msg: &Msg, scope: &mut Scope<'static>) {
        scope.push_dynamic("msg", to_dynamic(&msg.data));
        scope.push_dynamic("metadata", metadata_to_dynamic(&msg.metadata));
        scope.push("msgType", msg.msg_type.clone());
    }
    let depth = script.max_data_depth();
    let run = script.run(budget, msg, fill, move |out| from_dynamic(&out, depth)).await;
    Converted { result: run.result, notes: run.notes }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a map",
    }
}

/// ThingsBoard's converter output — `#{deviceName, deviceType?, telemetry?, attributes?,
/// metadata?}` or an array of them — as messages: one `POST_TELEMETRY_REQUEST` per device, plus a
/// `POST_ATTRIBUTES_REQUEST` when it has attributes.
fn messages(output: Value, base: &BTreeMap<String, String>) -> Result<Vec<Msg>, String> {
    let (items, indexed) = match output {
        Value::Array(items) => (items, true),
        item @ Value::Object(_) => (vec![item], false),
        other => {
            return Err(format!(
                "the uplink converter must return #{{deviceName, telemetry}} or an array of them, not {}",
                kind(&other)
            ));
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = |field: &str| if indexed { format!("[{i}].{field}") } else { field.to_owned() };
        let Value::Object(mut fields) = item else {
            return Err(format!(
                "{}: expected a map #{{deviceName, telemetry}}",
                if indexed { format!("[{i}]") } else { "result".into() }
            ));
        };
        for field in ["deviceName", "deviceType"] {
            if matches!(fields.get(field), Some(Value::String(s)) if s.contains(veil_core::MARKER_START)) {
                return Err(format!("{}: a Secret cannot name a device (it stays sealed)", at(field)));
            }
        }
        let device = match fields.remove("deviceName") {
            Some(Value::String(name)) if !name.trim().is_empty() => name,
            Some(Value::String(_)) | None => return Err(format!("{}: is required", at("deviceName"))),
            Some(other) => {
                return Err(format!("{}: must be a string, not {}", at("deviceName"), kind(&other)));
            }
        };
        let mut metadata = base.clone();
        metadata.insert("deviceName".into(), device.clone());
        match fields.remove("deviceType") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) => {
                metadata.insert("deviceType".into(), t);
            }
            Some(other) => {
                return Err(format!("{}: must be a string, not {}", at("deviceType"), kind(&other)));
            }
        }
        match fields.remove("metadata") {
            None | Some(Value::Null) => {}
            Some(Value::Object(extra)) => {
                for (k, v) in extra {
                    metadata.insert(k, if let Value::String(s) = v { s } else { v.to_string() });
                }
            }
            Some(other) => return Err(format!("{}: must be a map, not {}", at("metadata"), kind(&other))),
        }
        let telemetry = match fields.remove("telemetry") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(t @ (Value::Object(_) | Value::Array(_))) => t,
            Some(other) => {
                return Err(format!("{}: must be a map or an array, not {}", at("telemetry"), kind(&other)));
            }
        };
        let attributes = match fields.remove("attributes") {
            None | Some(Value::Null) => None,
            Some(Value::Object(a)) if a.is_empty() => None,
            Some(a @ Value::Object(_)) => Some(a),
            Some(other) => return Err(format!("{}: must be a map, not {}", at("attributes"), kind(&other))),
        };
        if let Some(unknown) = fields.keys().next() {
            return Err(format!(
                "{}: unknown field (expected deviceName, deviceType, telemetry, attributes, metadata)",
                at(unknown)
            ));
        }
        let mut msg = Msg::new("POST_TELEMETRY_REQUEST", device.clone(), telemetry);
        msg.metadata = metadata.clone();
        out.push(msg);
        if let Some(attributes) = attributes {
            let mut msg = Msg::new("POST_ATTRIBUTES_REQUEST", device, attributes);
            msg.metadata = metadata;
            out.push(msg);
        }
        if out.len() > MAX_UPLINK_MESSAGES {
            return Err(format!("the uplink converter produced more than {MAX_UPLINK_MESSAGES} messages"));
        }
    }
    Ok(out)
}
