//! Integration objects and deploying one: parse, compile the configuration against the type's
//! secret-capable fields, compile the converters, check every secret use, build the integration.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use veil_core::{
    Accepts, BuildCtx, Limits, Problem, Proposal, Script, Scripts, SecretUse, Secrets, check_secret_uses,
    compile, parse_doc,
};
use veil_store::{Actor, SecretRef, Store};

use crate::converter::{DOWNLINK_INPUTS, UPLINK_INPUTS};
use crate::integration::{Integration, IntegrationDescriptor, IntegrationRegistry};

/// An integration as users write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntegrationDef {
    /// Display name.
    pub name: String,
    /// `LORIOT` or `HTTP`.
    #[serde(rename = "type")]
    pub integration_type: String,
    /// A disabled integration keeps its routing key but accepts no uplinks and sends no downlinks.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The rule chain uplink messages go to.
    pub rule_chain_id: Uuid,
    /// The last segment of the uplink URL; generated at deploy when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Type-specific settings; secret-capable fields may hold placeholders.
    #[serde(default = "empty_object")]
    pub configuration: Value,
    /// Rhai: `payload`, `metadata` → `#{deviceName, deviceType?, telemetry?, attributes?}` or an array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink_converter: Option<String>,
    /// Rhai: `msg`, `metadata`, `msgType` → what the integration sends (LORIOT: `#{EUI, port, data}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downlink_converter: Option<String>,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Longest routing key accepted.
pub const MAX_ROUTING_KEY: usize = 128;

/// A validated integration ready to run.
pub struct IntegrationDeployment {
    /// The definition to persist: placeholders as written, routing key filled in.
    pub def: IntegrationDef,
    /// Every secret reference, with its field.
    pub references: Vec<SecretRef>,
    pub(crate) descriptor: &'static IntegrationDescriptor,
    pub(crate) integration: Box<dyn Integration>,
    pub(crate) uplink: Option<Script>,
    pub(crate) downlink: Option<Script>,
    pub(crate) secret_names: Vec<String>,
    pub(crate) secrets: Secrets,
    /// The limits of the registry it was deployed with (its converters' script time per message).
    pub(crate) limits: Limits,
}

impl std::fmt::Debug for IntegrationDeployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationDeployment")
            .field("def", &self.def)
            .field("references", &self.references)
            .finish_non_exhaustive()
    }
}

fn check_routing_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_ROUTING_KEY {
        return Err(format!("must be 1 to {MAX_ROUTING_KEY} characters"));
    }
    match key.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))) {
        Some(c) => Err(format!("'{c}' is not allowed (letters, digits, - _ . ~)")),
        None => Ok(()),
    }
}

fn converter(
    scripts: &Arc<Scripts>,
    secrets: &Secrets,
    source: Option<&str>,
    pointer: &str,
    inputs: &[&str],
    uses: &mut Vec<SecretUse>,
    problems: &mut Vec<Problem>,
) -> Option<Script> {
    let source = source.filter(|s| !s.trim().is_empty())?;
    match Script::compile(scripts, secrets, source, inputs) {
        Ok(script) => {
            uses.extend(script.secrets().iter().map(|name| SecretUse {
                name: name.clone(),
                pointer: pointer.to_owned(),
                accepts: Accepts::Any,
            }));
            Some(script)
        }
        Err(errors) => {
            problems.extend(errors.iter().map(|e| Problem::new(pointer, e.to_string())));
            None
        }
    }
}

/// Validates and builds an integration. Every problem is reported at once with its JSON pointer.
pub fn deploy_integration(
    registry: &IntegrationRegistry,
    store: &Store,
    actor: &Actor,
    doc: &Value,
) -> Result<IntegrationDeployment, Vec<Problem>> {
    deploy_integration_proposed(registry, store, actor, doc, None)
}

/// [`deploy_integration`] validated against a change not stored yet (`proposal`), to see what it
/// would break.
pub fn deploy_integration_proposed(
    registry: &IntegrationRegistry,
    store: &Store,
    actor: &Actor,
    doc: &Value,
    proposal: Option<&Proposal>,
) -> Result<IntegrationDeployment, Vec<Problem>> {
    let mut def: IntegrationDef = parse_doc(doc)?;
    let mut problems = Vec::new();
    if def.name.trim().is_empty() {
        problems.push(Problem::new("/name", "must not be empty"));
    }
    if let Err(p) = veil_store::validate_label("/name", &def.name) {
        problems.push(Problem::new("/name", p.message));
    }
    match &def.routing_key {
        Some(key) => {
            if let Err(e) = check_routing_key(key) {
                problems.push(Problem::new("/routingKey", e));
            }
        }
        None => def.routing_key = Some(Uuid::new_v4().simple().to_string()),
    }
    let descriptor = registry.get(&def.integration_type);
    if descriptor.is_none() {
        let known: Vec<&str> = registry.types().map(|d| d.type_name).collect();
        problems.push(Problem::new(
            "/type",
            format!("unknown integration type '{}' (known: {})", def.integration_type, known.join(", ")),
        ));
    }
    let mut config_uses = Vec::new();
    let mut built = None;
    // The integration's secrets (configuration and converters): fixed once everything is built.
    let ctx = BuildCtx::new(store, actor.tenant_id, "/configuration", &def.name)
        .with_limits(*registry.limits())
        .with_scripts(registry.scripts())
        .with_proposal(proposal);
    let secrets = ctx.secrets();
    // What the converters seal is for the chain the integration feeds.
    secrets.set_scope(def.rule_chain_id);
    if !def.configuration.is_object() {
        problems.push(Problem::new("/configuration", "must be a JSON object"));
    } else if let Some(descriptor) = descriptor {
        let base = "/configuration";
        let compiled = compile(&def.configuration, descriptor.fields, base, &mut problems);
        config_uses = compiled.secret_uses().to_vec();
        match (descriptor.build)(&ctx, compiled) {
            Ok(integration) => built = Some(integration),
            Err(mut p) => problems.append(&mut p),
        }
    }
    check_secret_uses(store, actor, "/configuration", &config_uses, &mut problems);
    let mut script_uses = Vec::new();
    let uplink = converter(
        registry.scripts(),
        &secrets,
        def.uplink_converter.as_deref(),
        "/uplinkConverter",
        UPLINK_INPUTS,
        &mut script_uses,
        &mut problems,
    );
    if def.uplink_converter.as_deref().is_none_or(|s| s.trim().is_empty()) {
        problems.push(Problem::new(
            "/uplinkConverter",
            "is required: a Rhai script that returns #{deviceName, telemetry} from payload and metadata",
        ));
    }
    let downlink = converter(
        registry.scripts(),
        &secrets,
        def.downlink_converter.as_deref(),
        "/downlinkConverter",
        DOWNLINK_INPUTS,
        &mut script_uses,
        &mut problems,
    );
    check_secret_uses(store, actor, "", &script_uses, &mut problems);
    let mut references: Vec<SecretRef> = config_uses
        .iter()
        .map(|u| SecretRef {
            secret_name: u.name.clone(),
            node_id: None,
            node_name: None,
            pointer: format!("/configuration{}", u.pointer),
        })
        .chain(script_uses.iter().map(|u| SecretRef {
            secret_name: u.name.clone(),
            node_id: None,
            node_name: None,
            pointer: u.pointer.clone(),
        }))
        .collect();
    references.sort_by(|a, b| (&a.pointer, &a.secret_name).cmp(&(&b.pointer, &b.secret_name)));
    references.dedup();
    let mut secret_names: Vec<String> = references.iter().map(|r| r.secret_name.clone()).collect();
    secret_names.sort();
    secret_names.dedup();
    let secrets = ctx.finish(secret_names.iter().cloned());
    match (descriptor, built) {
        (Some(descriptor), Some(integration)) if problems.is_empty() => Ok(IntegrationDeployment {
            def,
            references,
            descriptor,
            integration,
            uplink,
            downlink,
            secret_names,
            secrets,
            limits: *registry.limits(),
        }),
        _ => Err(problems),
    }
}
