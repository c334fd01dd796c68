//! `veil user …`: users of the tenant and their passwords.

use clap::Subcommand;
use serde_json::json;

use super::client::{CliError, CliResult, Client};
use super::input::{current_and_new_password, password, refuse_stray};
use super::output::{self, Column, Field, text, time};
use super::{Global, id_in, is_uuid};

/// `veil user ...`
#[derive(Debug, Subcommand)]
pub(crate) enum UserCmd {
    /// Create a user; the password is prompted for (or read from stdin).
    Create {
        /// Login name.
        username: String,
        /// Roles: TENANT_ADMIN, SECRET_MANAGER, RULE_CHAIN_AUTHOR, CUSTOMER_USER or custom (repeat;
        /// at least one).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Makes it a customer user (name or id).
        #[arg(long)]
        customer: Option<String>,
        /// Read the password from stdin instead of prompting (`--password-stdin` is the same).
        #[arg(long = "stdin", visible_alias = "password-stdin")]
        password_stdin: bool,
        /// Refused: a password given as an argument (never echoed).
        #[arg(hide = true, allow_hyphen_values = true)]
        stray: Vec<String>,
    },
    /// List users.
    List,
    /// Show a user.
    Show {
        /// Name or id.
        user: String,
    },
    /// Change roles and/or the password. Your own password needs the current one too.
    Update {
        /// Name or id.
        user: String,
        /// New roles (repeat).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read a new password from stdin (`--password-stdin` is the same).
        #[arg(long = "stdin", visible_alias = "password-stdin")]
        password_stdin: bool,
        /// Changing your own password: stdin holds the current password on its first line and
        /// the new one on the second.
        #[arg(long, requires = "password_stdin")]
        current_password_stdin: bool,
        /// Refused: a password given as an argument (never echoed).
        #[arg(hide = true, allow_hyphen_values = true)]
        stray: Vec<String>,
    },
    /// Delete a user.
    Delete {
        /// Name or id.
        user: String,
    },
}

/// The id of a user given by name or id. Your own account resolves without USER:READ (so anyone
/// can change their own password by name).
pub(super) async fn user_id(client: &Client, wanted: &str) -> CliResult<String> {
    if is_uuid(wanted) {
        return Ok(wanted.to_owned());
    }
    if let Some(own) = client.token_subject()
        && let Ok(me) = client.get(&format!("/api/users/{own}")).await
        && me["username"] == wanted
    {
        return Ok(own);
    }
    id_in(client, "/api/users", "username", "user", wanted).await
}

/// `veil user ...`
pub(crate) async fn user(global: &Global, cmd: UserCmd) -> CliResult<()> {
    match &cmd {
        UserCmd::Create { stray, roles, .. } => {
            refuse_stray(stray)?;
            // Checked here rather than by clap, so that a stray password is refused first.
            if roles.is_empty() {
                return Err(CliError::usage("give at least one --role"));
            }
        }
        UserCmd::Update { stray, .. } => refuse_stray(stray)?,
        _ => {}
    }
    let client = Client::authenticated(global.url.as_deref())?;
    let out = global.output;
    const USER_FIELDS: &[Field] = &[
        ("username", |v| text(&v["username"])),
        ("roles", |v| text(&v["roles"])),
        ("customerId", |v| text(&v["customerId"])),
        ("created", |v| time(&v["createdTime"])),
        ("id", |v| text(&v["id"])),
    ];
    match cmd {
        UserCmd::Create { username, roles, customer, password_stdin, .. } => {
            let customer_id = match customer {
                Some(c) => Some(id_in(&client, "/api/customers", "name", "customer", &c).await?),
                None => None,
            };
            let password = password(password_stdin)?;
            let body = json!({"username": username, "password": password, "roles": roles, "customerId": customer_id});
            let created = client.post("/api/users", &body).await?;
            output::object(out, &created, USER_FIELDS);
        }
        UserCmd::List => {
            let answer = client.get_all("/api/users").await?;
            output::page(
                out,
                &answer,
                &[
                    Column { heading: "USERNAME", read: |v| text(&v["username"]) },
                    Column { heading: "ROLES", read: |v| text(&v["roles"]) },
                    Column { heading: "CUSTOMER", read: |v| text(&v["customerId"]) },
                    Column { heading: "ID", read: |v| text(&v["id"]) },
                ],
            );
        }
        UserCmd::Show { user } => {
            let id = user_id(&client, &user).await?;
            output::object(out, &client.get(&format!("/api/users/{id}")).await?, USER_FIELDS);
        }
        UserCmd::Update { user, roles, password_stdin, current_password_stdin, .. } => {
            let id = user_id(&client, &user).await?;
            let mut body = json!({});
            if !roles.is_empty() {
                body["roles"] = json!(roles);
            }
            if current_password_stdin {
                let (current, new) = current_and_new_password()?;
                body["currentPassword"] = json!(current);
                body["password"] = json!(new);
            } else if password_stdin {
                body["password"] = json!(password(true)?);
            }
            if body.as_object().is_some_and(|m| m.is_empty()) {
                return Err(CliError::usage("nothing to change: give --role or --password-stdin"));
            }
            let updated = client
                .call(reqwest::Method::PATCH, &format!("/api/users/{id}"), Some(&body))
                .await
                .map_err(|mut e| {
                    if !current_password_stdin && e.fields.iter().any(|f| f == "currentPassword") {
                        e.message.push_str(
                            "\n  hint: changing your own password needs --current-password-stdin, with the \
                             current password on the first line of stdin and the new one on the second",
                        );
                    }
                    e
                })?;
            output::object(out, &updated, USER_FIELDS);
        }
        UserCmd::Delete { user } => {
            let id = id_in(&client, "/api/users", "username", "user", &user).await?;
            let answer = client.delete(&format!("/api/users/{id}")).await?;
            output::done(out, &answer, &format!("Deleted user '{user}'"));
        }
    }
    Ok(())
}
