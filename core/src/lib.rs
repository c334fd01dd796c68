//! veil-core: the rule engine and everything that touches a secret's value on its way to a send.
//!
//! **Configurations.** A node's or an integration's configuration is a JSON tree read into its
//! typed form ([`parse_config`]: every unknown key and type error at its JSON pointer, told by
//! [`FieldError`] kind); its declared fields ([`FieldSpec`]) may hold `$<secret:NAME>` placeholders
//! and message templates. [`compile`] turns it into a [`CompiledConfig`] and lists every
//! [`SecretUse`]; [`deploy`] does that for a whole rule chain, checks each use against the store
//! (exists, right type, USE permission, allowed destinations known at save) and builds the nodes
//! through the explicit node [`Registry`]. A descriptor's form ([`form_fields`]) is derived from the
//! configuration type's JSON Schema: the chain editor and the guides read it.
//!
//! **The `Secrets` capability.** A node or integration never holds the store: it gets a
//! [`Secrets`] handle that resolves exactly the names its configuration declared, renders its
//! templates with the values of the moment ([`NodeCtx::render`]), counts each resolve as a use by
//! the running configuration, and checks every send against the secrets' `allowedDestinations`
//! ([`Secrets::check_destination`]; a change not stored yet is checked with a [`Proposal`]).
//!
//! **Sealed values.** A script's `secret("name")` is a [`Sealed`] value scripts can combine and
//! derive one-way values from, never read; in a message it travels as a marker only this
//! process can open, and a secret-capable field opens it for the send ([`RenderCtx::render`]).
//!
//! **Running.** [`ChainRuntime`] routes [`Msg`]s between nodes under one [`RunBudget`] per message
//! and records debug events; a [`Redactor`] masks every value the chain's nodes could have used, in
//! any common encoding ([`masked_forms`]), wherever text leaves the engine. Everything a user can
//! make the engine spend is bounded by [`Limits`], charged where it is spent: chain size at
//! [`deploy`], fan-out and event bytes per tenant ([`TenantBudgets`]), messages in flight
//! ([`ChainRuntime::admit`]), script time on the registry's script threads ([`Scripts`]), shared
//! fairly between tenants, template size, depth and work ([`MAX_TEMPLATE_BYTES`] …).

mod budget;
mod chain;
mod config;
mod consumers;
mod engine;
mod error;
mod form;
mod forms;
mod limits;
mod mask;
mod message;
pub mod metrics;
mod node;
mod pool;
mod probe;
mod redact;
mod run;
mod script;
mod sealed;
mod secrets;
mod template;

// The exports, by who uses them.

// Node and integration types: a configuration's typed form and declared fields, the build, the
// node's run and what it renders (veil-nodes, veil-integrations).
pub use crate::config::{
    FieldError, TemplateText, from_document, parse_config, parse_config_with, parse_doc, required_field,
};
pub use crate::consumers::Consumers;
pub use crate::form::{
    FieldKind, FormField, Variant, accepts_name, empty_schema, form_fields, settle_variant, variant_keys,
};
pub use crate::message::Msg;
pub use crate::node::{
    BoxFuture, BuildCtx, Factory, Failed, Node, NodeCtx, NodeDescriptor, NodeResult, Outputs, Registry,
    Relation, Services, relation,
};
pub use crate::template::{
    Accepts, CompiledConfig, Escape, FieldSpec, Piece, RenderCtx, Rendered, SecretUse, Template, compile,
    escape, mentions_placeholder, parse, placeholder,
};
/// Whether a setting is a plain host name or IP address (broker hosts), as the destination
/// checks read it.
pub use veil_store::is_plain_host;

// Hosts: deploying rule chains, running them and reading what they did (veil-server).
pub use crate::budget::{
    Admission, DebugEvent, DebugOutput, EventPage, MAX_EVENT_PAGE, MAX_EVENT_PAGE_BYTES,
    MAX_EVENT_READERS_PER_TENANT, TenantBudgets, deeper_than,
};
pub use crate::chain::{
    ConnectionDef, Deployment, NodeDef, RuleChainDef, check_secret_uses, deploy, deploy_proposed, parse_chain,
};
pub use crate::engine::{
    ADMISSION_WAIT, ChainRuntime, DEBUG_EVENTS_KEPT, MAX_STEPS, MAX_WATCHED_BYTES, TraceStep,
};
pub use crate::run::{MAX_NOTE_BYTES, MAX_NOTES, RunBudget};

// Secrets on their way to a send: the capability, sealed values, masking.
pub use crate::forms::MASK;
pub use crate::mask::{LARGE_VALUE_BYTES, WINDOW, masked_forms, shared_masks};
pub use crate::probe::{PROBE_TIMEOUT, Probe, ProbeResult, bounded as bounded_probe};
pub use crate::redact::{MAX_LATER_SECRETS, Redactor};
pub use crate::sealed::{
    MARKER_START, MAX_SEALED_BYTES, MAX_SEALED_VALUE, PortableKey, QUEUED_START, Sealed, mask_sealed,
    mask_sealed_json,
};
pub use crate::secrets::{DestinationRefused, Proposal, Secrets, destination, sensitive_header};

// Scripts: the sandbox chains and converters share.
pub use crate::script::{
    MAX_OPERATIONS, Script, ScriptRun, Scripts, from_dynamic, metadata_to_dynamic, sandbox_engine, to_dynamic,
};

// Bounds and what a refusal says.
pub use crate::error::{
    Busy, ForeignMarker, InvalidHeader, NodeError, PlaceholderError, Problem, ProblemKind, RenderError,
    ScriptProblem,
};
pub use crate::limits::{Limits, limit_error};
pub use crate::template::{MAX_RENDERED_BYTES, MAX_TEMPLATE_BYTES, MAX_TEMPLATE_DEPTH, MAX_TEMPLATE_WORK};

/// What the fuzz targets (`core/fuzz`) reach of the internals; only in fuzzing builds.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use veil_store::TenantId;
    use zeroize::Zeroizing;

    /// The byte ranges of the markers found in `text` (each starts with the marker prefix and lies
    /// on character boundaries).
    pub fn marker_ranges(text: &str) -> Vec<std::ops::Range<usize>> {
        crate::sealed::marker_ranges(text)
    }

    /// Opens the markers of `text` for `tenant` (no rule chain): the text with values, or why not.
    pub fn unseal(text: &str, tenant: TenantId) -> Result<String, String> {
        let mut out = Zeroizing::new(String::new());
        let mut names = Vec::new();
        crate::sealed::unseal_into(text, (tenant, None), crate::template::Escape::None, &mut out, &mut names)
            .map(|()| out.to_string())
            .map_err(|e| e.to_string())
    }
}
