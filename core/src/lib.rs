//! veil-core: placeholders and templates, redaction, messages and the rule-chain engine.
//!
//! A configuration (a node's or an integration's) is a JSON tree whose declared fields may hold
//! `$<secret:NAME>` placeholders and message templates. At deploy, [`compile`] turns it into a
//! [`CompiledConfig`] — segments of literal text, secrets and message templates — and lists every
//! [`SecretUse`] with its JSON pointer; [`deploy`] does that for a whole rule chain, checks every
//! use against the store (exists, right type, USE permission) and builds the nodes through the
//! explicit node [`Registry`]. At execution, [`NodeCtx::render`] resolves the secrets of the
//! moment through the store and returns a zeroizing `SecretString`; message content is inserted
//! as data and never scanned for placeholders. [`ChainRuntime`] routes [`Msg`]s between nodes and
//! records debug events; a [`Redactor`] masks every value the chain's nodes could have used, in
//! any common encoding, wherever text leaves the engine.
//!
//! Everything a user can make the engine spend is bounded by [`Limits`], which the [`Registry`]
//! carries into deployments: chain size at [`deploy`], fan-out and debug-event bytes in
//! [`ChainRuntime`] (the latter shared per tenant through [`TenantBudgets`]), messages in flight
//! through [`ChainRuntime::admit`]. Scripts ([`Script`]) share one sandboxed Rhai engine; a run
//! starts on the caller's thread with a small budget and otherwise runs on a pool of script
//! threads under a wall-clock limit ([`configure_scripts`]), and its value is depth-checked before
//! it becomes JSON.

mod budget;
mod chain;
mod config;
mod engine;
mod error;
mod form;
mod forms;
mod limits;
mod mask;
mod message;
mod node;
mod pool;
mod redact;
mod run;
mod script;
mod sealed;
mod secrets;
mod template;

pub use crate::budget::{
    Admission, DebugEvent, DebugOutput, EventPage, MAX_EVENT_PAGE, MAX_EVENT_PAGE_BYTES,
    MAX_EVENT_READERS_PER_TENANT, TenantBudgets, deeper_than,
};
pub use crate::chain::{
    ConnectionDef, Deployment, NodeDef, RuleChainDef, check_secret_uses, deploy, deploy_proposed, parse_chain,
};
pub use crate::config::{FieldError, TemplateText, from_document, parse_config, parse_doc, required_field};
pub use crate::engine::{ADMISSION_WAIT, ChainRuntime, DEBUG_EVENTS_KEPT, MAX_STEPS, TraceStep};
pub use crate::error::{
    Busy, ForeignMarker, InvalidHeader, NodeError, PlaceholderError, Problem, ProblemKind, RenderError,
    ScriptProblem,
};
pub use crate::form::{FieldKind, FormField, Variant, accepts_name, empty_schema, form_fields};
pub use crate::forms::MASK;
pub use crate::limits::{Limits, limit_error};
pub use crate::mask::{LARGE_VALUE_BYTES, WINDOW, masked_forms, shared_masks};
pub use crate::message::Msg;
pub use crate::node::{
    BoxFuture, BuildCtx, Factory, Failed, Node, NodeCtx, NodeDescriptor, NodeResult, Outputs, Registry,
    Relation, Services, relation,
};
pub use crate::redact::{MAX_LATER_SECRETS, Redactor};
pub use crate::run::RunBudget;
pub use crate::script::{
    MAX_NOTE_BYTES, MAX_NOTES, MAX_OPERATIONS, Script, ScriptRun, configure_scripts, from_dynamic,
    sandbox_engine, to_dynamic,
};
pub use crate::sealed::{
    MARKER_START, MAX_SEALED_BYTES, MAX_SEALED_VALUE, Sealed, mask_sealed, mask_sealed_json,
};
pub use crate::secrets::{DestinationRefused, Proposal, Secrets, destination, sensitive_header};
pub use crate::template::{
    Accepts, CompiledConfig, Escape, FieldSpec, MAX_RENDERED_BYTES, MAX_TEMPLATE_BYTES, MAX_TEMPLATE_DEPTH,
    MAX_TEMPLATE_WORK, Piece, RenderCtx, Rendered, SecretUse, Template, compile, escape,
    mentions_placeholder, parse, placeholder,
};
pub use rhai;
/// The Rhai version scripts run on, for node crates.
/// Whether a setting is a plain host name or IP address (broker hosts), as the destination
/// checks read it.
pub use veil_store::is_plain_host;
