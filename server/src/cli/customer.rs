//! `veil customer …`.

use clap::Subcommand;
use serde_json::json;

use super::client::{CliResult, Client};
use super::output::{self, Column, text, time};
use super::{Global, id_in};

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
        CustomerCmd::List => {
            let answer = client.get_all("/api/customers").await?;
            output::page(
                out,
                &answer,
                &[
                    Column { heading: "NAME", read: |v| text(&v["name"]) },
                    Column { heading: "CREATED", read: |v| time(&v["createdTime"]) },
                    Column { heading: "ID", read: |v| text(&v["id"]) },
                ],
            );
        }
        CustomerCmd::Delete { customer } => {
            let id = id_in(&client, "/api/customers", "name", "customer", &customer).await?;
            let answer = client.delete(&format!("/api/customers/{id}")).await?;
            output::done(out, &answer, &format!("Deleted customer '{customer}'"));
        }
    }
    Ok(())
}
