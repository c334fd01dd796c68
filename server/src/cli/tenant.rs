//! `veil tenant …`: the system administrator's tenants.

use clap::Subcommand;
use serde_json::json;

use super::client::{CliError, CliResult, Client};
use super::input::password;
use super::output::{self, text};
use super::{Global, NAMED_COLUMNS, delete_named};

/// `veil tenant ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TenantCmd {
    /// Create a tenant, with its first administrator (the password prompted for, or from stdin).
    Create {
        /// Its name.
        name: String,
        /// The username of its first administrator.
        #[arg(long)]
        admin: Option<String>,
        /// Read the administrator's password from stdin instead of prompting (`--password-stdin`
        /// is the same).
        #[arg(long = "stdin", visible_alias = "password-stdin", requires = "admin")]
        password_stdin: bool,
        /// Refused: a password given as an argument (never echoed).
        #[arg(hide = true, allow_hyphen_values = true)]
        stray: Vec<String>,
    },
    /// List tenants.
    List,
    /// Delete a tenant and everything in it (its chains and integrations stop).
    Delete {
        /// Name or id.
        tenant: String,
    },
}

/// `veil tenant ...`
pub(crate) async fn tenant(global: &Global, cmd: TenantCmd) -> CliResult<()> {
    if let TenantCmd::Create { stray, .. } = &cmd
        && !stray.is_empty()
    {
        return Err(CliError::usage(
            "a password is never taken from the command line (shell history, process list): pipe it on \
             stdin with --stdin, or leave it out to be prompted",
        ));
    }
    let client = Client::authenticated(global.url.as_deref())?;
    let out = global.output;
    match cmd {
        TenantCmd::Create { name, admin, password_stdin, .. } => {
            let mut body = json!({"name": name});
            if let Some(username) = admin {
                body["admin"] = json!({"username": username, "password": password(password_stdin)?});
            }
            let created = client.post("/api/tenants", &body).await?;
            let with = created["admin"]["username"]
                .as_str()
                .map(|u| format!(" and administrator '{u}'"))
                .unwrap_or_default();
            output::done(
                out,
                &created,
                &format!("Created tenant '{name}'{with} with id {}", text(&created["id"])),
            );
        }
        TenantCmd::List => output::page(out, &client.get_all("/api/tenants").await?, NAMED_COLUMNS),
        TenantCmd::Delete { tenant } => delete_named(&client, out, "/api/tenants", "tenant", &tenant).await?,
    }
    Ok(())
}
