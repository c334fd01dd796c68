//! `veil node-types` and `veil integration-types`: what configurations may use.

use serde_json::Value;

use super::Global;
use super::client::{CliResult, Client};
use super::documents::DocKind;
use super::output::{self, Column, text};

/// The secret-capable fields of a type descriptor: `pointer (TEXT|FILE|ANY)`, comma-separated.
fn secret_fields(descriptor: &Value) -> String {
    descriptor["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["secret"].is_string())
        .map(|f| format!("{} ({})", text(&f["pointer"]), text(&f["secret"])))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `veil node-types` and `veil integration-types`: one row per type, or the API's descriptors as
/// JSON.
pub(crate) async fn types(global: &Global, kind: DocKind) -> CliResult<()> {
    let client = Client::authenticated(global.url.as_deref())?;
    let path = if kind == DocKind::Integration { "/api/integration-types" } else { "/api/node-types" };
    let answer = client.get(path).await?;
    let items = answer.as_array().cloned().unwrap_or_default();
    output::list(
        global.output,
        &answer,
        &items,
        &[
            Column { heading: "TYPE", read: |v| text(&v["type"]) },
            Column { heading: "DESCRIPTION", read: |v| text(&v["description"]) },
            Column { heading: "SECRET FIELDS", read: secret_fields },
        ],
    );
    Ok(())
}
