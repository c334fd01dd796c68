//! `GET /api/node-types` and `GET /api/integration-types`: what a configuration form (the key
//! icon on secret-capable fields) and the CLI need to know about each type.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use veil_core::{FieldSpec, FormField, accepts_name, form_fields};

use crate::auth::AuthActor;
use crate::host::Host;

/// One node or integration type.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TypeView {
    /// The `type` in chain or integration JSON.
    #[serde(rename = "type")]
    type_name: &'static str,
    /// One line for people.
    description: &'static str,
    /// The configuration a new one starts with.
    default_configuration: Value,
    /// Every field that takes secret placeholders and/or message templates.
    fields: Vec<FieldView>,
    /// Every field of the configuration, as a form shows it: its kind (an enum with its values),
    /// whether it is required, its default, its description and the variant it belongs to,
    /// derived from the configuration's type.
    form: Vec<FormField>,
    /// Node types: the relations a node answers with (what the editor offers when connecting).
    #[serde(skip_serializing_if = "Option::is_none")]
    relations: Option<&'static [&'static str]>,
    /// Node types: whether it also answers relations its configuration names (a switch script).
    #[serde(skip_serializing_if = "Option::is_none")]
    named_relations: Option<bool>,
}

/// One declared field of a configuration.
#[derive(Debug, Serialize)]
pub(crate) struct FieldView {
    /// JSON pointer relative to the configuration; `*` matches any one segment.
    pointer: &'static str,
    /// The secret types it takes (`TEXT`, `FILE`, `ANY`), or null when it takes none.
    secret: Option<&'static str>,
    /// Whether message templates (`{{msg.x}}`, `${metadataKey}`, `$[dataKey]`) are expanded.
    template: bool,
}

fn fields(specs: &[FieldSpec]) -> Vec<FieldView> {
    specs
        .iter()
        .map(|f| FieldView {
            pointer: f.pointer,
            secret: f.secret.map(accepts_name),
            template: f.message_template,
        })
        .collect()
}

/// A descriptor as the API shows it.
fn view(
    type_name: &'static str,
    description: &'static str,
    default_config: fn() -> Value,
    declared: &[FieldSpec],
    schema: fn() -> Value,
) -> TypeView {
    TypeView {
        type_name,
        description,
        default_configuration: default_config(),
        fields: fields(declared),
        form: form_fields(&schema(), declared),
        relations: None,
        named_relations: None,
    }
}

/// `GET /api/node-types`: every node type rule chains may use.
#[utoipa::path(
    get,
    path = "/api/node-types",
    tag = "types",
    operation_id = "types_node_types",
    responses((status = 200, description = "Every node type: fields, forms, relations", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn node_types(State(host): State<Arc<Host>>, _caller: AuthActor) -> Json<Vec<TypeView>> {
    Json(
        host.node_types()
            .map(|d| TypeView {
                relations: Some(d.relations),
                named_relations: Some(d.named_relations),
                ..view(d.type_name, d.description, d.default_config, d.fields, d.schema)
            })
            .collect(),
    )
}

/// `GET /api/integration-types`: every integration type.
#[utoipa::path(
    get,
    path = "/api/integration-types",
    tag = "types",
    operation_id = "types_integration_types",
    responses((status = 200, description = "Every integration type: fields and forms", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn integration_types(
    State(host): State<Arc<Host>>,
    _caller: AuthActor,
) -> Json<Vec<TypeView>> {
    Json(
        host.integration_types()
            .map(|d| view(d.type_name, d.description, d.default_config, d.fields, d.schema))
            .collect(),
    )
}
