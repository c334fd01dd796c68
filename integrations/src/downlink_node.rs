//! `integration_downlink`: a rule node that hands the message to an integration of the chain's
//! tenant, whose downlink converter and credentials send it on (`Success`), or says why not
//! (`Failure`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use veil_core::{
    BoxFuture, BuildCtx, CompiledConfig, Failed, Msg, Node, NodeCtx, NodeDescriptor, NodeResult, Problem,
    relation,
};
use veil_store::OwnerType;

use crate::runtime::Integrations;

/// The node type; the server registers it with the running [`Integrations`] as a service.
pub static DOWNLINK_NODE: NodeDescriptor = NodeDescriptor {
    type_name: "integration_downlink",
    description: "Sends the message as a downlink through an integration (its converter and credentials)",
    default_config: || json!({ "integrationId": "" }),
    fields: &[],
    schema: || schemars::schema_for!(DownlinkConfig).to_value(),
    relations: &["Success", "Failure"],
    named_relations: false,
    build,
};

/// `integration_downlink` configuration.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DownlinkConfig {
    /// The id of an integration of the chain's tenant.
    #[schemars(required)]
    integration_id: Option<String>,
}

struct DownlinkNode {
    integration: Uuid,
    running: Arc<Integrations>,
}

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn Node>, Vec<Problem>> {
    if ctx.customer_id.is_some() {
        // Integrations belong to the tenant; their credentials are not the customer's to use.
        return Err(vec![ctx.problem("", "customer rule chains cannot send downlinks through integrations")]);
    }
    let settings: DownlinkConfig = ctx.parse(&config)?;
    let id = match settings.integration_id.as_deref() {
        Some(raw) => raw.parse::<Uuid>().map_err(|_| {
            vec![ctx.problem("/integrationId", format!("'{raw}' is not an integration id (UUID)"))]
        })?,
        None => return Err(vec![ctx.problem("/integrationId", "is required (the id of an integration)")]),
    };
    // Tracked like a secret reference: the server checks the integration exists in the tenant
    // and that the author may send through it (INTEGRATION:WRITE), and it cannot be deleted
    // while this chain uses it.
    ctx.use_owner(OwnerType::Integration, id, "/integrationId");
    let running = ctx
        .service::<Integrations>()
        .ok_or_else(|| vec![ctx.problem("", "integration downlinks are not available in this deployment")])?;
    Ok(Box::new(DownlinkNode { integration: id, running }))
}

impl Node for DownlinkNode {
    fn process<'a>(&'a self, ctx: &'a NodeCtx<'a>, msg: Msg) -> BoxFuture<'a, NodeResult> {
        Box::pin(async move {
            let Some(integration) = self.running.get(ctx.tenant(), self.integration) else {
                return Err(Failed::new(msg, format!("integration '{}' is not running", self.integration)));
            };
            match integration.downlink(ctx.budget(), &msg).await {
                Ok(_) => Ok(vec![(relation::SUCCESS.into(), msg)]),
                Err(e) => Err(Failed::new(msg, e.to_string())),
            }
        })
    }
}
