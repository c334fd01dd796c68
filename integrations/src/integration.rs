//! The integration plugin API: a descriptor (type name, default configuration, secret-capable
//! fields) and a factory that builds an [`Integration`] from its compiled configuration, listed in an
//! explicit [`IntegrationRegistry`] — the same shape as rule nodes.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde_json::Value;
use veil_core::{
    BoxFuture, BuildCtx, CompiledConfig, FieldSpec, Limits, Probe, Problem, Redactor, RenderError, Rendered,
    Scripts, Secrets, Template,
};

use crate::error::{IntegrationError, UplinkError};

/// What an integration can reach while it works.
pub struct IntegrationCtx<'a> {
    /// The secrets its configuration and converters declared, resolved at the moment of use.
    pub secrets: &'a Secrets,
    /// The integration's name.
    pub name: &'a str,
    /// Masks every secret the integration uses: for logs and errors.
    pub redactor: &'a Redactor,
}

impl IntegrationCtx<'_> {
    /// Renders a configuration template with the secrets of this moment.
    pub fn render<'t>(&self, template: &'t Template) -> Result<Rendered<'t>, RenderError> {
        self.secrets.render(template, None)
    }
}

/// A running integration.
pub trait Integration: Send + Sync + 'static {
    /// Connects to the outside service: logs in, creates what must exist there. Called when the
    /// integration starts and again after a secret it uses changes.
    fn start<'a>(&'a self, ctx: &'a IntegrationCtx<'a>) -> BoxFuture<'a, Result<(), IntegrationError>>;

    /// Checks an uplink request (security headers, body shape) and returns the payload the uplink
    /// converter sees: the body parsed as JSON, or a string.
    fn accept_uplink(
        &self,
        ctx: &IntegrationCtx<'_>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Value, UplinkError>;

    /// Sends one downlink (the downlink converter's output) to the outside service and describes
    /// what happened.
    fn downlink<'a>(
        &'a self,
        ctx: &'a IntegrationCtx<'a>,
        downlink: Value,
    ) -> BoxFuture<'a, Result<Value, IntegrationError>>;

    /// A secret the integration uses changed: drop sessions or connections made with the old value.
    fn secret_changed(&self, _name: &str) {}

    /// Whether it holds a session or connection its secrets open, which a change of one of them
    /// closes and opens again.
    fn reconnects(&self) -> bool {
        false
    }

    /// Tests `ctx`'s secrets — one of them, `name`, holding a pending value — against the outside
    /// service (a login), without sending or receiving anything else. Integrations with nothing to
    /// test answer [`Probe::NotProbed`].
    fn probe<'a>(&'a self, _ctx: &'a IntegrationCtx<'a>, _name: &'a str) -> BoxFuture<'a, Probe> {
        Box::pin(async { Probe::not_probed("an incoming credential is tested by the devices that send it") })
    }

    /// The integration was deleted: remove what [`Integration::start`] created at the outside
    /// service (LORIOT's HTTP push output). Called once, by the instance that deleted it.
    fn removed<'a>(&'a self, _ctx: &'a IntegrationCtx<'a>) -> BoxFuture<'a, Result<(), IntegrationError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Builds an integration from its compiled configuration, or explains what is wrong with it.
/// `BuildCtx::problem` prefixes pointers with `/configuration`.
pub type IntegrationFactory = fn(&BuildCtx<'_>, CompiledConfig) -> Result<Box<dyn Integration>, Vec<Problem>>;

/// An integration type.
pub struct IntegrationDescriptor {
    /// The `type` of an integration object, e.g. `LORIOT`.
    pub type_name: &'static str,
    /// The path segment of its uplink endpoint: `/api/v1/integrations/{uplink_path}/{routingKey}`.
    pub uplink_path: &'static str,
    /// One line for people.
    pub description: &'static str,
    /// The configuration a new integration starts with.
    pub default_config: fn() -> Value,
    /// Fields that may hold secret placeholders.
    pub fields: &'static [FieldSpec],
    /// The configuration's JSON Schema, derived from its typed form (see [`veil_core::form_fields`]).
    pub schema: fn() -> Value,
    /// The factory.
    pub build: IntegrationFactory,
}

impl std::fmt::Debug for IntegrationDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationDescriptor").field("type_name", &self.type_name).finish_non_exhaustive()
    }
}

/// The integration types a server offers, listed explicitly.
#[derive(Debug, Default, Clone)]
pub struct IntegrationRegistry {
    types: Vec<&'static IntegrationDescriptor>,
    limits: Limits,
    /// The script sandbox its converters compile for and run in.
    scripts: Arc<Scripts>,
}

impl IntegrationRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a type (the last registration of a name wins).
    pub fn with(mut self, descriptor: &'static IntegrationDescriptor) -> Self {
        self.types.retain(|d| d.type_name != descriptor.type_name);
        self.types.push(descriptor);
        self
    }

    /// A type by its name.
    pub fn get(&self, type_name: &str) -> Option<&'static IntegrationDescriptor> {
        self.types.iter().copied().find(|d| d.type_name == type_name)
    }

    /// A type by its uplink path segment (`loriot`).
    pub fn by_uplink_path(&self, path: &str) -> Option<&'static IntegrationDescriptor> {
        self.types.iter().copied().find(|d| d.uplink_path == path)
    }

    /// Every registered type.
    /// The same registry under `limits`, its converters in `scripts` (the host shares the node
    /// registry's sandbox, so scripts and converters take turns on the same threads).
    pub fn with_scripts(mut self, limits: Limits, scripts: &Arc<Scripts>) -> Self {
        self.limits = limits;
        self.scripts = Arc::clone(scripts);
        self
    }

    /// The limits its deployments run under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The script sandbox of its converters.
    pub fn scripts(&self) -> &Arc<Scripts> {
        &self.scripts
    }

    /// Every registered type.
    pub fn types(&self) -> impl Iterator<Item = &'static IntegrationDescriptor> + '_ {
        self.types.iter().copied()
    }
}
