//! `log`: writes the message to the server log (redacted) and passes it on as `Success`.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use veil_core::{
    BoxFuture, BuildCtx, CompiledConfig, Msg, Node, NodeCtx, NodeDescriptor, NodeResult, Problem, relation,
};

pub(crate) static DESCRIPTOR: NodeDescriptor = NodeDescriptor {
    type_name: "log",
    description: "Writes each message to the server log at info level, with secret values masked",
    default_config: || json!({ "prefix": "" }),
    fields: &[],
    schema: || schemars::schema_for!(LogConfig).to_value(),
    relations: &["Success"],
    named_relations: false,
    build,
};

/// `log` configuration.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogConfig {
    /// Written before each line.
    #[serde(default)]
    #[schemars(extend("default" = ""))]
    prefix: Option<String>,
}

struct LogNode {
    prefix: String,
}

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn Node>, Vec<Problem>> {
    let settings: LogConfig = ctx.parse(&config)?;
    Ok(Box::new(LogNode { prefix: settings.prefix.unwrap_or_default() }))
}

impl Node for LogNode {
    fn process<'a>(&'a self, ctx: &'a NodeCtx<'a>, msg: Msg) -> BoxFuture<'a, NodeResult> {
        Box::pin(async move {
            let line = format!(
                "{}type={} originator={} metadata={} data={}",
                self.prefix,
                msg.msg_type,
                msg.originator,
                serde_json::to_string(&msg.metadata).unwrap_or_default(),
                msg.data
            );
            tracing::info!(target: "veil::log_node", "{}", ctx.redact(&line));
            Ok(vec![(relation::SUCCESS.into(), msg)])
        })
    }
}
