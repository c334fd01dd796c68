//! `log`: writes the message to the server log (redacted) and passes it on as `Success`.

use serde_json::{Value, json};
use veil_core::{
    BoxFuture, BuildCtx, CompiledConfig, Msg, Node, NodeCtx, NodeDescriptor, NodeResult, Problem, relation,
};

pub(crate) static DESCRIPTOR: NodeDescriptor = NodeDescriptor {
    type_name: "log",
    description: "Writes each message to the server log at info level, with secret values masked",
    default_config: || json!({ "prefix": "" }),
    fields: &[],
    build,
};

struct LogNode {
    prefix: String,
}

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn Node>, Vec<Problem>> {
    let prefix = match config.plain().get("prefix") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(vec![ctx.problem("/prefix", "must be a string")]),
    };
    Ok(Box::new(LogNode { prefix }))
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
