//! The node plugin API. A node type is a [`NodeDescriptor`] — type name, description, default
//! configuration, the fields that may hold secrets or message templates — plus a factory that
//! builds a [`Node`] from the compiled configuration. Registration is an explicit [`Registry`].

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use veil_store::{OwnerType, SecretValue, Store, TenantId};

use crate::probe::Probe;
use crate::script::Scripts;
use crate::secrets::{Proposal, Secrets};

use crate::budget::TenantBudgets;
use crate::error::{NodeError, Problem, ProblemKind, RenderError};
use crate::limits::Limits;
use crate::message::Msg;
use crate::redact::Redactor;
use crate::run::RunBudget;
use crate::template::{Accepts, CompiledConfig, FieldSpec, Rendered, SecretUse, Template};

/// A boxed future, so nodes can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The relation names every node may use.
pub mod relation {
    /// The node did its job.
    pub const SUCCESS: &str = "Success";
    /// The node failed; the message carries the (redacted) error in metadata `error`.
    pub const FAILURE: &str = "Failure";
    /// A filter matched.
    pub const TRUE: &str = "True";
    /// A filter did not match.
    pub const FALSE: &str = "False";
}

/// A relation name: one of [`relation`]'s, or a switch node's own.
pub type Relation = Cow<'static, str>;

/// What a node sends on: zero or more (relation, message) pairs.
pub type Outputs = Vec<(Relation, Msg)>;

/// A failed execution: the input message (to route to `Failure`) and the error. The message is
/// boxed so results stay small on the success path.
#[derive(Debug)]
pub struct Failed {
    /// The message as it came in.
    pub msg: Box<Msg>,
    /// What went wrong.
    pub error: NodeError,
}

impl Failed {
    /// Pairs the input message with an error.
    pub fn new(msg: Msg, error: impl Into<NodeError>) -> Self {
        Self { msg: Box::new(msg), error: error.into() }
    }
}

/// Result of processing one message.
pub type NodeResult = Result<Outputs, Failed>;

/// What a node can reach while it executes: its declared secrets, the chain's redactor.
pub struct NodeCtx<'a> {
    secrets: &'a Secrets,
    redactor: Option<&'a Redactor>,
    /// The incoming message's budget (the engine's), or one of its own made when first asked for.
    budget: Option<&'a RunBudget<'a>>,
    own_budget: std::sync::OnceLock<RunBudget<'static>>,
    notes: Mutex<Vec<String>>,
}

impl<'a> NodeCtx<'a> {
    /// A context for one execution of a node with `secrets`, under a budget of its own with the
    /// process's limits (the engine gives every step the message's: [`NodeCtx::with_budget`]).
    pub fn new(secrets: &'a Secrets) -> Self {
        Self {
            secrets,
            redactor: None,
            budget: None,
            own_budget: std::sync::OnceLock::new(),
            notes: Mutex::new(Vec::new()),
        }
    }

    /// The same context charging `budget` (the incoming message's).
    pub fn with_budget(mut self, budget: &'a RunBudget<'a>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// What the incoming message may still spend: pass it to [`crate::Script::run`].
    pub fn budget(&self) -> &RunBudget<'a> {
        self.budget.unwrap_or_else(|| {
            self.own_budget.get_or_init(|| RunBudget::detached(self.secrets.tenant(), &Limits::default()))
        })
    }

    /// The same context masking with `redactor` (the chain's).
    pub fn with_redactor(mut self, redactor: &'a Redactor) -> Self {
        self.redactor = Some(redactor);
        self
    }

    /// `text` with the values of every secret the chain uses masked: use it for anything a node
    /// writes to a log.
    pub fn redact(&self, text: &str) -> String {
        match self.redactor {
            Some(r) => r.mask(text),
            None => crate::sealed::mask_sealed(text).into_owned(),
        }
    }

    /// Masks every string of a JSON tree with the chain's redactor, in place (sealed-value
    /// markers show as `***`).
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        match self.redactor {
            Some(r) => r.mask_json(value),
            None => crate::sealed::mask_sealed_json(value),
        }
    }

    /// Tells the chain's redactor to mask the secret `name` from now on: for sealed values this
    /// node opened ([`crate::Rendered::sealed_secrets`]), whose secrets the chain may not
    /// reference itself. False when the redactor cannot learn one more such secret
    /// ([`crate::redact::MAX_LATER_SECRETS`]): the node must not send the value.
    pub fn mask_secret(&self, name: &str) -> bool {
        self.redactor.is_none_or(|r| r.mask_secret(name))
    }

    /// Tells the chain's redactor about a value this node built from secrets, so that it and its
    /// encodings are masked like a secret's value: `user:password` for Basic authentication,
    /// whose base64 does not contain the password's own base64 when the password is short.
    pub fn also_mask(&self, value: &[u8]) {
        if let Some(r) = self.redactor {
            r.also_mask(value);
        }
    }

    /// The node's declared secrets (to render connection settings, or compare versions).
    pub fn secrets(&self) -> &Secrets {
        self.secrets
    }

    /// The chain's tenant.
    pub fn tenant(&self) -> TenantId {
        self.secrets.tenant()
    }

    /// Renders a template against a message; secrets are resolved now.
    pub fn render<'t>(&self, template: &'t Template, msg: &Msg) -> Result<Rendered<'t>, RenderError> {
        self.secrets.render(template, Some(msg))
    }

    /// Resolves a declared secret's value now (FILE secrets used as bytes).
    pub fn resolve(&self, name: &str) -> Result<SecretValue, RenderError> {
        self.secrets.resolve(name)
    }

    /// Adds a line to this execution's debug event (a script's `print`). It is redacted there.
    pub fn note(&self, line: impl Into<String>) {
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).push(line.into());
    }

    pub(crate) fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A running node.
pub trait Node: Send + Sync + 'static {
    /// Turns one message into zero or more (relation, message) outputs.
    fn process<'a>(&'a self, ctx: &'a NodeCtx<'a>, msg: Msg) -> BoxFuture<'a, NodeResult>;

    /// A secret this node references changed; connection-oriented nodes reconnect.
    fn secret_changed(&self, _name: &str) {}

    /// Whether the node holds a connection its secrets open (a broker connection, TLS sessions
    /// with a client certificate), which a change of one of them closes and opens again.
    fn reconnects(&self) -> bool {
        false
    }

    /// Tests `secrets` — the node's own, one of them holding a pending value
    /// ([`Secrets::with_value`]) — against the service the node talks to, without sending a
    /// message: connect and authenticate, then disconnect. Nodes with nothing to test answer
    /// [`Probe::NotProbed`].
    fn probe<'a>(&'a self, _secrets: &'a Secrets, _name: &'a str) -> BoxFuture<'a, Probe> {
        Box::pin(async { Probe::not_probed("this node type has nothing to test a value against") })
    }

    /// The server is stopping and no message is left for this node: close what it holds open
    /// (a broker connection) the way its protocol asks, so the service sees a clean disconnect.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// What a factory gets besides the configuration.
pub struct BuildCtx<'a> {
    secrets: Secrets,
    /// The tenant the chain belongs to.
    pub tenant: TenantId,
    /// JSON pointer of the configuration in the document (`/nodes/3/configuration`).
    pub base: &'a str,
    /// The node's name.
    pub node_name: &'a str,
    /// Set when a customer user deploys: nodes that reach tenant-wide resources refuse.
    pub customer_id: Option<veil_store::CustomerId>,
    services: Option<&'a Services>,
    limits: Limits,
    scripts: Option<Arc<Scripts>>,
    proposal: Option<&'a Proposal>,
    extra_uses: Mutex<Vec<SecretUse>>,
    links: Mutex<Vec<(OwnerType, uuid::Uuid, String)>>,
}

impl<'a> BuildCtx<'a> {
    /// A context for building one node of `tenant`: its secrets are those its configuration
    /// declares and those the factory declares with [`BuildCtx::use_secret`].
    pub fn new(store: &Store, tenant: TenantId, base: &'a str, node_name: &'a str) -> Self {
        Self {
            secrets: Secrets::pending(store, tenant),
            tenant,
            base,
            node_name,
            customer_id: None,
            services: None,
            limits: Limits::default(),
            scripts: None,
            proposal: None,
            extra_uses: Mutex::new(Vec::new()),
            links: Mutex::new(Vec::new()),
        }
    }

    /// The same context for a deployment by a customer user.
    pub fn for_customer(mut self, customer: Option<veil_store::CustomerId>) -> Self {
        self.customer_id = customer;
        if customer.is_some() {
            self.secrets = Secrets::pending_with(self.secrets.store(), self.tenant, false);
        }
        self
    }

    /// The same context with the registry's shared services.
    pub fn with_services(mut self, services: &'a Services) -> Self {
        self.services = Some(services);
        self
    }

    /// The same context under `limits` (the registry's).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The same context validating against a change not stored yet: destinations known at save
    /// are checked as `proposal` would have them.
    pub fn with_proposal(mut self, proposal: Option<&'a Proposal>) -> Self {
        self.proposal = proposal;
        self
    }

    /// The same context compiling scripts for `scripts` (the registry's sandbox).
    pub fn with_scripts(mut self, scripts: &Arc<Scripts>) -> Self {
        self.scripts = Some(Arc::clone(scripts));
        self
    }

    /// The script sandbox scripts are compiled for: the registry's, or (for a context made
    /// without one, in tests) a sandbox under this context's limits.
    pub fn scripts(&self) -> Arc<Scripts> {
        self.scripts.clone().unwrap_or_else(|| Scripts::new(&self.limits))
    }

    /// The limits the node runs under (e.g. the largest response body it reads).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The node's secrets: keep a clone to resolve them later (connection-oriented nodes). Only
    /// the names the configuration and [`BuildCtx::use_secret`] declared resolve; they are fixed
    /// when the deployment is done.
    pub fn secrets(&self) -> Secrets {
        self.secrets.clone()
    }

    /// Fixes the secrets the node (or integration) may resolve, once it is built: the host calls
    /// this with every name it tracks as a reference. Factories only get `&BuildCtx`, so they
    /// cannot.
    pub fn finish(self, names: impl IntoIterator<Item = String>) -> Secrets {
        self.secrets.declare(names);
        self.secrets
    }

    /// A service the registry was given with [`Registry::with_service`] (e.g. the running
    /// integrations, for the node that sends downlinks).
    pub fn service<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.services?.get::<T>()
    }

    /// Declares a secret use found by other means than a placeholder (a script's
    /// `secret("name")`): it is validated and tracked like a placeholder at `pointer`.
    pub fn use_secret(&self, name: &str, pointer: &str, accepts: Accepts) {
        self.extra_uses.lock().unwrap_or_else(|e| e.into_inner()).push(SecretUse {
            name: name.to_owned(),
            pointer: pointer.to_owned(),
            accepts,
        });
    }

    /// Declares that the node uses another configuration (the integration a downlink goes
    /// through), named at `pointer`: the host checks it exists and may be used, and it cannot be
    /// deleted while the chain uses it.
    pub fn use_owner(&self, kind: OwnerType, id: uuid::Uuid, pointer: &str) {
        self.links.lock().unwrap_or_else(|e| e.into_inner()).push((kind, id, pointer.to_owned()));
    }

    pub(crate) fn take_links(&self) -> Vec<(OwnerType, uuid::Uuid, String)> {
        std::mem::take(&mut *self.links.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn take_uses(&self) -> Vec<SecretUse> {
        std::mem::take(&mut *self.extra_uses.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The configuration in its typed form (`#[serde(deny_unknown_fields)]`, ThingsBoard's names):
    /// an unknown or misspelt key, or a value of the wrong type, is a problem at its pointer.
    /// Its [`crate::TemplateText`] fields come bound to their compiled templates
    /// ([`CompiledConfig::bound`]).
    pub fn parse<T: serde::de::DeserializeOwned>(&self, config: &CompiledConfig) -> Result<T, Vec<Problem>> {
        crate::config::parse_compiled(config, self.base, |_| {})
    }

    /// [`BuildCtx::parse`] of the configuration as `prepare` leaves a copy of it.
    pub fn parse_with<T: serde::de::DeserializeOwned>(
        &self,
        config: &CompiledConfig,
        prepare: impl FnOnce(&mut Value),
    ) -> Result<T, Vec<Problem>> {
        crate::config::parse_compiled(config, self.base, prepare)
    }

    /// For a destination known at save (a literal URL, a broker's host): a problem at `pointer`
    /// when one of `names` may not be sent to `host:port`.
    pub fn check_destination<'n>(
        &self,
        pointer: &str,
        names: impl IntoIterator<Item = &'n str>,
        host: &str,
        port: u16,
    ) -> Option<Problem> {
        crate::secrets::destination_refused(
            self.secrets.store(),
            self.tenant,
            names,
            host,
            port,
            self.proposal,
        )
        .map(|refused| Problem {
            kind: ProblemKind::DestinationRefused {
                secret: refused.secret.clone(),
                destination: refused.destination.clone(),
            },
            ..self.problem(pointer, refused.reason())
        })
    }

    /// The compiled template a typed configuration's `field` is bound to, for the node or
    /// integration to keep. `None` when it did not compile (its problem is reported already);
    /// a field its type declares as a template but its descriptor does not is a bug of the type,
    /// reported as a problem of the configuration, not a panic.
    pub fn bound(
        &self,
        config: &CompiledConfig,
        field: &crate::TemplateText,
        problems: &mut Vec<Problem>,
    ) -> Option<crate::Template> {
        if !config.declares(field) {
            problems.push(self.problem("", "a template field its type does not declare (a bug of the type)"));
        }
        config.bound(field).cloned()
    }

    /// A problem at a pointer relative to the configuration.
    pub fn problem(&self, pointer: &str, message: impl Into<String>) -> Problem {
        Problem::new(format!("{}{pointer}", self.base), message)
    }
}

/// Builds a node from its compiled configuration, or explains what is wrong with it.
pub type Factory = fn(&BuildCtx<'_>, CompiledConfig) -> Result<Box<dyn Node>, Vec<Problem>>;

/// A node type.
pub struct NodeDescriptor {
    /// The `type` in chain JSON, e.g. `rest_api_call`.
    pub type_name: &'static str,
    /// One line for people.
    pub description: &'static str,
    /// The configuration a new node starts with.
    pub default_config: fn() -> Value,
    /// Fields that may hold secret placeholders and/or message templates.
    pub fields: &'static [FieldSpec],
    /// The configuration's JSON Schema, derived from its typed form (see [`crate::form_fields`]).
    pub schema: fn() -> Value,
    /// The relations a node of this type answers with (the editor offers them when connecting).
    pub relations: &'static [&'static str],
    /// Whether it also answers relations its configuration names (a switch script's).
    pub named_relations: bool,
    /// The factory.
    pub build: Factory,
}

impl std::fmt::Debug for NodeDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeDescriptor").field("type_name", &self.type_name).finish_non_exhaustive()
    }
}

/// Shared objects node factories may need beyond the store, one per type.
#[derive(Default, Clone)]
pub struct Services {
    by_type: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Services {
    /// The service of type `T`, if one was added.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.by_type.get(&TypeId::of::<T>()).and_then(|s| Arc::clone(s).downcast::<T>().ok())
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").field("count", &self.by_type.len()).finish()
    }
}

/// The node types a deployment may use, listed explicitly, and the services their factories reach.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    types: Vec<&'static NodeDescriptor>,
    services: Services,
    limits: Limits,
    budgets: Arc<TenantBudgets>,
    /// The script sandbox its scripts compile for and run in (under `limits`).
    scripts: Arc<Scripts>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node type (the last registration of a name wins).
    pub fn with(mut self, descriptor: &'static NodeDescriptor) -> Self {
        self.types.retain(|d| d.type_name != descriptor.type_name);
        self.types.push(descriptor);
        self
    }

    /// Adds a shared service (replacing one of the same type) that factories reach through
    /// [`BuildCtx::service`].
    pub fn with_service<T: Any + Send + Sync>(mut self, service: Arc<T>) -> Self {
        self.services.by_type.insert(TypeId::of::<T>(), service);
        self
    }

    /// The shared services.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The same registry deploying under `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self.budgets = Arc::new(TenantBudgets::new(limits));
        self.scripts = Scripts::new(&limits);
        self
    }

    /// What the tenants' chains share (messages in flight, debug-event bytes).
    pub fn budgets(&self) -> &Arc<TenantBudgets> {
        &self.budgets
    }

    /// The limits deployments and their runtimes are held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The script sandbox of its deployments (integrations share it, see the host).
    pub fn scripts(&self) -> &Arc<Scripts> {
        &self.scripts
    }

    /// A node type by name.
    pub fn get(&self, type_name: &str) -> Option<&'static NodeDescriptor> {
        self.types.iter().copied().find(|d| d.type_name == type_name)
    }

    /// Every registered type.
    pub fn types(&self) -> impl Iterator<Item = &'static NodeDescriptor> + '_ {
        self.types.iter().copied()
    }
}
