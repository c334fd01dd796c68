//! `HTTP`: any device or service POSTs to `/api/v1/integrations/http/{routingKey}`; with
//! `enableSecurity` the headers in `headersFilter` must carry their expected values (secrets).
//! Downlinks have nowhere to go: the sender does not listen.

use reqwest::header::HeaderMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use veil_core::{Accepts, BoxFuture, BuildCtx, CompiledConfig, FieldSpec, Problem};

use crate::error::{IntegrationError, UplinkError};
use crate::integration::{Integration, IntegrationCtx, IntegrationDescriptor};
use crate::security::{HeaderSecurity, json_or_text};

pub(crate) static DESCRIPTOR: IntegrationDescriptor = IntegrationDescriptor {
    type_name: "HTTP",
    uplink_path: "http",
    description: "HTTP uplinks from devices or services, optionally authenticated by a header whose value is a secret",
    // No secret named by default (one that does not exist would fail the first save): the form's
    // key icon picks one for `headersFilter` when security is turned on.
    default_config: || json!({ "enableSecurity": false, "headersFilter": {} }),
    fields: &[FieldSpec::secret("/headersFilter/*", Accepts::Text)],
    schema: || schemars::schema_for!(HttpConfig).to_value(),
    build,
};

struct Http {
    security: HeaderSecurity,
}

/// `HTTP` integration configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HttpConfig {
    /// Check `headersFilter` on every uplink.
    #[schemars(with = "Option<bool>", extend("default" = false))]
    enable_security: Option<Value>,
    /// Header name to the value every uplink must carry (TEXT secrets allowed).
    headers_filter: Option<std::collections::BTreeMap<String, veil_core::TemplateText>>,
}

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn crate::Integration>, Vec<Problem>> {
    let settings: HttpConfig = ctx.parse(&config)?;
    let mut problems = Vec::new();
    let security = HeaderSecurity::from_config(
        ctx,
        &config,
        settings.enable_security.as_ref(),
        settings.headers_filter.as_ref(),
        &mut problems,
    );
    if problems.is_empty() { Ok(Box::new(Http { security })) } else { Err(problems) }
}

impl Integration for Http {
    fn start<'a>(&'a self, _ctx: &'a IntegrationCtx<'a>) -> BoxFuture<'a, Result<(), IntegrationError>> {
        Box::pin(async { Ok(()) })
    }

    fn accept_uplink(
        &self,
        ctx: &IntegrationCtx<'_>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Value, UplinkError> {
        self.security.check(ctx, headers)?;
        json_or_text(headers, body)
    }

    fn downlink<'a>(
        &'a self,
        _ctx: &'a IntegrationCtx<'a>,
        _downlink: Value,
    ) -> BoxFuture<'a, Result<Value, IntegrationError>> {
        Box::pin(async { Err(IntegrationError::new("HTTP integrations send no downlinks")) })
    }
}
