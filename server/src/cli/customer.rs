//! `veil customer …`.

use clap::Subcommand;
use serde_json::json;

use super::client::{CliResult, Client};
use super::output::{self, text};
use super::{Global, NAMED_COLUMNS, delete_named};

/// `veil customer ...`
#[derive(Debug, Subcommand)]
pub(crate) enum CustomerCmd {
    /// Create a customer.
    Create {
        /// Its name.
        name: String,
    },
    /// List customers.
    List,
    /// Delete a customer (refused while it has users or configurations).
    Delete {
        /// Name or id.
        customer: String,
    },
}

/// `veil customer ...`
pub(crate) async fn customer(global: &Global, cmd: CustomerCmd) -> CliResult<()> {
    let client = Client::authenticated(global.url.as_deref())?;
    let out = global.output;
    match cmd {
        CustomerCmd::Create { name } => {
            let created = client.post("/api/customers", &json!({"name": name})).await?;
            output::done(
                out,
                &created,
                &format!("Created customer '{name}' with id {}", text(&created["id"])),
            );
        }
        CustomerCmd::List => output::page(out, &client.get_all("/api/customers").await?, NAMED_COLUMNS),
        CustomerCmd::Delete { customer } => {
            delete_named(&client, out, "/api/customers", "customer", &customer).await?;
        }
    }
    Ok(())
}
