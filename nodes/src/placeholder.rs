//! `placeholder`: stands for a node imported from another platform (a ThingsBoard rule chain)
//! that Veil has no equivalent for, so the chain keeps its shape: its connections and position.
//! It runs nothing: every message that reaches it fails there, naming what it stands for. The
//! editor shows it greyed out; replace it with a node that does the work.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use veil_core::{
    BoxFuture, BuildCtx, CompiledConfig, Failed, Msg, Node, NodeCtx, NodeDescriptor, NodeError, NodeResult,
    Problem,
};

pub(crate) static DESCRIPTOR: NodeDescriptor = NodeDescriptor {
    type_name: "placeholder",
    description: "Stands for an imported node Veil cannot run (kept for the chain's shape); every message fails here",
    default_config: || json!({ "originalType": "an imported node", "reason": "" }),
    fields: &[],
    schema: || schemars::schema_for!(PlaceholderConfig).to_value(),
    relations: &["Failure"],
    named_relations: false,
    build,
};

/// `placeholder` configuration: what the node stood for. The original configuration is not kept
/// (it may hold credentials in plain text).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PlaceholderConfig {
    /// The node type it was on the platform it came from, e.g.
    /// `org.thingsboard.rule.engine.telemetry.TbMsgTimeseriesNode`.
    #[schemars(required)]
    original_type: Option<String>,
    /// Why it was not imported as a Veil node.
    reason: Option<String>,
}

struct Placeholder {
    original_type: String,
    reason: String,
}

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn Node>, Vec<Problem>> {
    let settings: PlaceholderConfig = ctx.parse(&config)?;
    let original_type = settings.original_type.unwrap_or_default();
    if original_type.trim().is_empty() || original_type.chars().any(char::is_control) {
        return Err(vec![ctx.problem(
            "/originalType",
            "is required: the type name it stands for, without control characters",
        )]);
    }
    let reason =
        settings.reason.filter(|r| !r.trim().is_empty()).map(|r| format!(" ({r})")).unwrap_or_default();
    Ok(Box::new(Placeholder { original_type, reason }))
}

impl Node for Placeholder {
    fn process<'a>(&'a self, _ctx: &'a NodeCtx<'a>, msg: Msg) -> BoxFuture<'a, NodeResult> {
        Box::pin(async move {
            Err(Failed::new(
                msg,
                NodeError::new(format!(
                    "this node stands for '{}', which Veil does not run{}: replace it with a node that does the work",
                    self.original_type, self.reason
                )),
            ))
        })
    }
}
