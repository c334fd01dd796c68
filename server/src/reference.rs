//! The node and integration reference of the guides, generated from the descriptors (their
//! configuration types' forms): `veil docs nodes` and `veil docs integrations` print it, and a
//! test checks that nodes/README.md and integrations/README.md hold exactly what they print.

use std::fmt::Write as _;

use serde_json::Value;
use veil_core::{FieldKind, FieldSpec, FormField, form_fields};

/// Which reference to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reference {
    /// Every node type rule chains may use.
    Nodes,
    /// Every integration type.
    Integrations,
}

/// One table cell: one line, `|` escaped.
fn cell(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

fn kind(field: &FormField) -> String {
    let mut kind = match field.kind {
        FieldKind::Text => "text".to_owned(),
        FieldKind::Number => "number".to_owned(),
        FieldKind::Boolean => "boolean".to_owned(),
        FieldKind::Enum => field.values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", "),
        FieldKind::List => "list".to_owned(),
        FieldKind::Map => "name → value".to_owned(),
        FieldKind::Any => "JSON".to_owned(),
    };
    if field.template {
        kind.push_str(", template");
    }
    kind
}

/// One type's section: its description and a table of its fields.
fn section(out: &mut String, type_name: &str, description: &str, fields: &[FieldSpec], schema: &Value) {
    let _ = writeln!(out, "### `{type_name}` configuration\n\n{}\n", cell(description));
    let form = form_fields(schema, fields);
    if form.is_empty() {
        out.push_str("No configuration fields.\n\n");
        return;
    }
    out.push_str(
        "| Field | Holds | Required | Default | Secrets | Description |\n|---|---|---|---|---|---|\n",
    );
    for field in &form {
        let mut name = format!("`{}`", field.pointer.trim_start_matches('/'));
        if let Some(variant) = &field.variant {
            let tag = variant.pointer.trim_start_matches('/');
            let _ = write!(name, " (when `{tag}` is `{}`)", variant.value);
        }
        let default = field.default.as_ref().map(|d| format!("`{d}`")).unwrap_or_default();
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {default} | {} | {} |",
            kind(field),
            if field.required { "yes" } else { "" },
            field.secret.unwrap_or(""),
            cell(field.description.as_deref().unwrap_or("")),
        );
    }
    out.push('\n');
}

/// The reference in Markdown, one section per type in registration order.
pub fn reference(which: Reference) -> String {
    let mut out = String::new();
    match which {
        Reference::Nodes => {
            let registry = veil_nodes::registry().with(&veil_integrations::DOWNLINK_NODE);
            for d in registry.types() {
                section(&mut out, d.type_name, d.description, d.fields, &(d.schema)());
            }
        }
        Reference::Integrations => {
            for d in veil_integrations::registry().types() {
                section(&mut out, d.type_name, d.description, d.fields, &(d.schema)());
            }
        }
    }
    out
}
