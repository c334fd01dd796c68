//! The `veil` CLI over the REST API: log in once, then manage secrets, rule chains, integrations,
//! users, customers, read the audit log and the node and integration types. Secret values come from stdin or a file, never from an
//! argument (arguments land in shell history and process listings).

mod client;
mod output;

use std::io::Read as _;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Subcommand;
use serde_json::{Value, json};

pub(crate) use self::client::CliError;
use self::client::{CliResult, Client, Credentials, query, save_credentials, server_url};
pub(crate) use self::output::Format;
use self::output::{Column, Field, text, time};

/// Options every client command takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Global {
    /// The server, e.g. http://127.0.0.1:8080 (default: the one `veil login` saved).
    #[arg(long, env = "VEIL_URL", global = true)]
    pub(crate) url: Option<String>,
    /// How to print answers.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub(crate) output: Format,
}

/// `veil login`
#[derive(Debug, clap::Args)]
pub(crate) struct LoginArgs {
    /// The user name.
    #[arg(long, short)]
    username: String,
    /// Read the password from stdin instead of prompting.
    #[arg(long)]
    password_stdin: bool,
    /// Refused: a password given as an argument (never echoed).
    #[arg(hide = true, allow_hyphen_values = true)]
    stray: Vec<String>,
}

/// `veil logout`
#[derive(Debug, clap::Args)]
pub(crate) struct LogoutArgs {
    /// End every session of the account (other browsers and terminals too), not only this one.
    #[arg(long)]
    everywhere: bool,
}

/// `veil secret ...`
#[derive(Debug, Subcommand)]
pub(crate) enum SecretCmd {
    /// Create a secret; the value comes from stdin (or --file), never from an argument.
    Create {
        /// Its name (never changes).
        name: String,
        /// TEXT (passwords, tokens) or FILE (certificates).
        #[arg(long = "type", default_value = "TEXT", value_parser = ["TEXT", "FILE", "text", "file"])]
        kind: String,
        /// A description for people.
        #[arg(long)]
        description: Option<String>,
        /// Read the value from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
        /// FILE secrets: the file name to show (default: the file's name).
        #[arg(long)]
        file_name: Option<String>,
        /// A destination the value may be sent to: `host`, `*.domain` or `host:port` (repeat;
        /// none: anywhere).
        #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
        allow_hosts: Vec<String>,
        /// Refused: a value on the command line lands in shell history.
        #[arg(long, hide = true)]
        value: Option<String>,
        /// Refused: values given after the name (never echoed, however many).
        #[arg(hide = true, allow_hyphen_values = true)]
        stray: Vec<String>,
    },
    /// List secrets (metadata only).
    List {
        /// Only names containing this (case-insensitive).
        #[arg(long)]
        search: Option<String>,
        /// Page (from 0).
        #[arg(long, default_value_t = 0)]
        page: usize,
        /// Secrets per page.
        #[arg(long, default_value_t = 100)]
        page_size: usize,
    },
    /// Show one secret's metadata.
    Show {
        /// Name or id.
        secret: String,
    },
    /// Change the value (from stdin with --stdin, or --file) and/or the description.
    Update {
        /// Name or id.
        secret: String,
        /// A new description.
        #[arg(long)]
        description: Option<String>,
        /// Read the new value from stdin.
        #[arg(long)]
        stdin: bool,
        /// Read the new value from this file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Replace the allowed destinations with these (repeat).
        #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
        allow_hosts: Vec<String>,
        /// Allow every destination again (clears the list).
        #[arg(long, conflicts_with = "allow_hosts")]
        allow_any_host: bool,
        /// Refused: a value on the command line lands in shell history.
        #[arg(long, hide = true)]
        value: Option<String>,
        /// Refused: values given after the name (never echoed, however many).
        #[arg(hide = true, allow_hyphen_values = true)]
        stray: Vec<String>,
    },
    /// Delete a secret (refused while configurations use it).
    Delete {
        /// Name or id.
        secret: String,
    },
    /// Which rule chains and integrations use a secret.
    Usages {
        /// Name or id.
        secret: String,
    },
    /// Let a customer's users use a secret (never read it).
    Share {
        /// Name or id.
        secret: String,
        /// Customer name or id.
        #[arg(long)]
        customer: String,
    },
    /// Stop sharing (refused while the customer's configurations use it).
    Unshare {
        /// Name or id.
        secret: String,
        /// Customer name or id.
        #[arg(long)]
        customer: String,
    },
}

/// `veil chain ...` and `veil integration ...`: JSON documents.
#[derive(Debug, Subcommand)]
pub(crate) enum DocCmd {
    /// Create from a JSON file (`-` for stdin).
    Create {
        /// The document.
        file: PathBuf,
    },
    /// List.
    List,
    /// Show one as JSON.
    Show {
        /// Its id.
        id: String,
    },
    /// Replace from a JSON file (`-` for stdin).
    Update {
        /// Its id.
        id: String,
        /// The document.
        file: PathBuf,
    },
    /// Delete.
    Delete {
        /// Its id.
        id: String,
    },
    /// Rule chains: process a message; integrations: send a downlink.
    Send {
        /// Its id.
        id: String,
        /// The message data (JSON).
        #[arg(long, default_value = "{}")]
        data: String,
        /// Message metadata (JSON object of strings).
        #[arg(long)]
        metadata: Option<String>,
        /// Message type (default POST_TELEMETRY_REQUEST).
        #[arg(long = "type")]
        msg_type: Option<String>,
        /// Originator (default `api`).
        #[arg(long)]
        originator: Option<String>,
        /// Rule chains: wait and print what every node did.
        #[arg(long)]
        wait: bool,
    },
}

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
        /// Read the password from stdin.
        #[arg(long)]
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
        /// Read a new password from stdin.
        #[arg(long)]
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

/// `veil settings`
#[derive(Debug, clap::Args)]
pub(crate) struct SettingsArgs {
    /// Require every secret to name its allowed destinations (`true`), or not (`false`).
    #[arg(long, value_name = "true|false")]
    destinations_required: Option<bool>,
}

/// `veil audit`
#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// Entries about this secret (name or id).
    #[arg(long)]
    secret: Option<String>,
    /// Entries by this actor (user name).
    #[arg(long)]
    actor: Option<String>,
    /// From this time (RFC 3339, e.g. 2026-11-27T10:00:00Z, or ms since the epoch).
    #[arg(long)]
    from: Option<String>,
    /// Before this time.
    #[arg(long)]
    to: Option<String>,
    /// Page (from 0).
    #[arg(long, default_value_t = 0)]
    page: usize,
    /// Entries per page.
    #[arg(long, default_value_t = 50)]
    page_size: usize,
}

const VALUE_ARG_REFUSED: &str = "refusing --value: a value on the command line lands in shell history and \
     process listings; pipe it on stdin (printf %s \"$VALUE\" | veil secret create NAME) or use --file";

const PASSWORD_ARG_REFUSED: &str = "refusing an extra argument: a password on the command line lands in shell \
     history and process listings; type it at the prompt or pipe it with --password-stdin";

/// A password (or anything) given where no argument belongs is refused before anything else
/// happens, and never echoed.
fn refuse_stray(stray: &[String]) -> CliResult<()> {
    if stray.is_empty() { Ok(()) } else { Err(CliError::usage(PASSWORD_ARG_REFUSED)) }
}

fn read_stdin() -> CliResult<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).map_err(|e| CliError::failure(format!("reading stdin: {e}")))?;
    Ok(buf)
}

/// A TEXT value from stdin: one trailing newline (what `echo` adds) is dropped.
fn text_value(bytes: Vec<u8>) -> CliResult<String> {
    let mut text = String::from_utf8(bytes)
        .map_err(|_| CliError::usage("the value is not UTF-8 text; use --type FILE"))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

fn read_file(path: &PathBuf) -> CliResult<Vec<u8>> {
    if path.as_os_str() == "-" {
        return read_stdin();
    }
    std::fs::read(path).map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))
}

fn json_arg(name: &str, raw: &str) -> CliResult<Value> {
    serde_json::from_str(raw).map_err(|e| CliError::usage(format!("--{name}: not JSON ({e})")))
}

fn password(from_stdin: bool) -> CliResult<String> {
    if from_stdin {
        let text = text_value(read_stdin()?)?;
        return Ok(text);
    }
    rpassword::prompt_password("Password: ")
        .map_err(|e| CliError::usage(format!("cannot prompt for a password ({e}); use --password-stdin")))
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// The id of a secret given by name or id.
async fn secret_id(client: &Client, secret: &str) -> CliResult<String> {
    if is_uuid(secret) {
        return Ok(secret.to_owned());
    }
    let page = client.get(&format!("/api/secrets?pageSize=1000&textSearch={}", query(secret))).await?;
    page["data"]
        .as_array()
        .and_then(|items| items.iter().find(|s| s["name"] == secret))
        .and_then(|s| s["id"].as_str().map(str::to_owned))
        .ok_or_else(|| CliError::not_found(format!("secret '{secret}' not found (not_found)")))
}

/// The id of a customer, user ... given by name or id, from a listing.
async fn id_in(client: &Client, listing: &str, key: &str, what: &str, wanted: &str) -> CliResult<String> {
    if is_uuid(wanted) {
        return Ok(wanted.to_owned());
    }
    let page = client.get(&format!("{listing}?pageSize=1000")).await?;
    page["data"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i[key] == wanted))
        .and_then(|i| i["id"].as_str().map(str::to_owned))
        .ok_or_else(|| CliError::not_found(format!("{what} '{wanted}' not found (not_found)")))
}

const SECRET_FIELDS: &[Field] = &[
    ("name", |v| text(&v["name"])),
    ("type", |v| text(&v["type"])),
    ("version", |v| text(&v["version"])),
    ("description", |v| text(&v["description"])),
    ("fileName", |v| text(&v["fileName"])),
    ("sharedWith", |v| text(&v["sharedWith"])),
    ("allowedDestinations", |v| text(&v["allowedDestinations"])),
    ("created", |v| time(&v["createdTime"])),
    ("updated", |v| time(&v["updatedTime"])),
    ("id", |v| text(&v["id"])),
];

/// `veil login`: checks the credentials and saves the token (mode 0600).
pub(crate) async fn login(global: &Global, args: LoginArgs) -> CliResult<()> {
    refuse_stray(&args.stray)?;
    let url = server_url(global.url.as_deref());
    let password = password(args.password_stdin)?;
    let client = Client::anonymous(url.clone())?;
    let answer =
        client.post("/api/auth/login", &json!({"username": args.username, "password": password})).await?;
    let token = answer["token"].as_str().ok_or_else(|| CliError::failure("the server sent no token"))?;
    let path = save_credentials(&Credentials { url: url.clone(), token: token.to_owned() })?;
    output::done(
        global.output,
        &json!({"url": url, "username": args.username, "credentials": path}),
        &format!("Logged in to {url} as {} (token saved in {})", args.username, path.display()),
    );
    Ok(())
}

/// `veil logout [--everywhere]`: ends this session at the server (with `--everywhere`, every
/// session of the account) and forgets the saved token.
pub(crate) async fn logout(global: &Global, args: &LogoutArgs) -> CliResult<()> {
    if let Ok(client) = Client::authenticated(global.url.as_deref()) {
        let path = if args.everywhere { "/api/auth/logout?everywhere=true" } else { "/api/auth/logout" };
        // An expired or already revoked token is logged out anyway.
        if let Err(e) = client.post(path, &json!({})).await
            && e.code != client::exit::AUTH
        {
            return Err(e);
        }
    }
    let path = client::credentials_path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => output::done(global.output, &json!({"loggedOut": true}), "Logged out"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            output::done(global.output, &json!({"loggedOut": false}), "Not logged in")
        }
        Err(e) => return Err(CliError::failure(format!("cannot remove {}: {e}", path.display()))),
    }
    Ok(())
}

/// A value on the command line is refused before anything else happens (and never echoed).
fn refuse_value_arguments(cmd: &SecretCmd) -> CliResult<()> {
    match cmd {
        SecretCmd::Create { value, stray, .. } if value.is_some() || !stray.is_empty() => {
            Err(CliError::usage(VALUE_ARG_REFUSED))
        }
        SecretCmd::Update { value, stray, .. } if value.is_some() || !stray.is_empty() => Err(
            CliError::usage(VALUE_ARG_REFUSED.replace("secret create NAME", "secret update NAME --stdin")),
        ),
        _ => Ok(()),
    }
}

/// A new value: from the file (exactly as stored there), or from stdin — prompted for without echo
/// when stdin is a terminal, one trailing newline dropped when piped.
fn new_value(file: Option<&PathBuf>, file_kind: bool) -> CliResult<Value> {
    let bytes = match file {
        Some(path) => read_file(path)?,
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            if file_kind {
                return Err(CliError::usage("FILE values come from --file or a pipe, not the terminal"));
            }
            let typed = rpassword::prompt_password("Value: ")
                .map_err(|e| CliError::usage(format!("cannot read the value from the terminal: {e}")))?;
            return Ok(json!(typed));
        }
        None => {
            let piped = read_stdin()?;
            if file_kind {
                piped
            } else {
                return Ok(json!(text_value(piped)?));
            }
        }
    };
    if file_kind {
        Ok(json!(STANDARD.encode(&bytes)))
    } else {
        String::from_utf8(bytes)
            .map(|t| json!(t))
            .map_err(|_| CliError::usage("the value is not UTF-8 text; use --type FILE"))
    }
}

/// `veil secret ...`
pub(crate) async fn secret(global: &Global, cmd: SecretCmd) -> CliResult<()> {
    refuse_value_arguments(&cmd)?;
    let client = Client::authenticated(global.url.as_deref())?;
    let out = global.output;
    match cmd {
        SecretCmd::Create { name, kind, description, file, file_name, allow_hosts, .. } => {
            let kind = kind.to_uppercase();
            let mut body = json!({"name": name, "type": kind, "description": description});
            if !allow_hosts.is_empty() {
                body["allowedDestinations"] = json!(allow_hosts);
            }
            if kind == "FILE" {
                let shown = file_name
                    .or_else(|| {
                        file.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned())
                    })
                    .ok_or_else(|| {
                        CliError::usage("FILE secrets need --file-name when the value comes from stdin")
                    })?;
                body["fileName"] = json!(shown);
            }
            body["value"] = new_value(file.as_ref(), kind == "FILE")?;
            let created = client.post("/api/secrets", &body).await?;
            output::object(out, &created, SECRET_FIELDS);
        }
        SecretCmd::List { search, page, page_size } => {
            let mut path = format!("/api/secrets?page={page}&pageSize={page_size}");
            if let Some(s) = search {
                path.push_str(&format!("&textSearch={}", query(&s)));
            }
            let answer = client.get(&path).await?;
            output::page(
                out,
                &answer,
                &[
                    Column { heading: "NAME", read: |v| text(&v["name"]) },
                    Column { heading: "TYPE", read: |v| text(&v["type"]) },
                    Column { heading: "VERSION", read: |v| text(&v["version"]) },
                    Column { heading: "DESCRIPTION", read: |v| text(&v["description"]) },
                    Column { heading: "SHARED WITH", read: |v| text(&v["sharedWith"]) },
                    Column { heading: "ID", read: |v| text(&v["id"]) },
                ],
            );
        }
        SecretCmd::Show { secret } => {
            let id = secret_id(&client, &secret).await?;
            output::object(out, &client.get(&format!("/api/secrets/{id}")).await?, SECRET_FIELDS);
        }
        SecretCmd::Update { secret, description, stdin, file, allow_hosts, allow_any_host, .. } => {
            let id = secret_id(&client, &secret).await?;
            let current = client.get(&format!("/api/secrets/{id}")).await?;
            let mut body = json!({});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if !allow_hosts.is_empty() || allow_any_host {
                body["allowedDestinations"] = json!(allow_hosts);
            }
            if file.is_some() || stdin {
                body["value"] = new_value(file.as_ref(), current["type"] == "FILE")?;
            }
            if body.as_object().is_some_and(|m| m.is_empty()) {
                return Err(CliError::usage(
                    "nothing to change: give --description, --stdin, --file, --allow-host or --allow-any-host",
                ));
            }
            let updated =
                client.call(reqwest::Method::PATCH, &format!("/api/secrets/{id}"), Some(&body)).await?;
            output::object(out, &updated, SECRET_FIELDS);
        }
        SecretCmd::Delete { secret } => {
            let id = secret_id(&client, &secret).await?;
            let answer = client.delete(&format!("/api/secrets/{id}")).await?;
            output::done(out, &answer, &format!("Deleted secret '{secret}'"));
        }
        SecretCmd::Usages { secret } => {
            let id = secret_id(&client, &secret).await?;
            let answer = client.get(&format!("/api/secrets/{id}/usages")).await?;
            let mut rows = Vec::new();
            for (kind, key) in [("RULE_CHAIN", "RULE_CHAIN"), ("INTEGRATION", "INTEGRATION")] {
                for owner in answer[key].as_array().into_iter().flatten() {
                    let places: Vec<String> = owner["nodes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|n| format!("{} {}", text(&n["name"]), text(&n["path"])).trim().to_owned())
                        .collect();
                    rows.push(json!({"kind": kind, "name": owner["name"], "id": owner["id"], "where": places.join("; ")}));
                }
            }
            output::list(
                out,
                &answer,
                &rows,
                &[
                    Column { heading: "USED BY", read: |v| text(&v["kind"]) },
                    Column { heading: "NAME", read: |v| text(&v["name"]) },
                    Column { heading: "WHERE", read: |v| text(&v["where"]) },
                    Column { heading: "ID", read: |v| text(&v["id"]) },
                ],
            );
        }
        SecretCmd::Share { secret, customer } => {
            let id = secret_id(&client, &secret).await?;
            let c = id_in(&client, "/api/customers", "name", "customer", &customer).await?;
            let shared = client.post(&format!("/api/secrets/{id}/shares"), &json!({"customerId": c})).await?;
            output::done(out, &shared, &format!("Shared '{secret}' with customer '{customer}'"));
        }
        SecretCmd::Unshare { secret, customer } => {
            let id = secret_id(&client, &secret).await?;
            let c = id_in(&client, "/api/customers", "name", "customer", &customer).await?;
            let unshared = client.delete(&format!("/api/secrets/{id}/shares/{c}")).await?;
            output::done(out, &unshared, &format!("Stopped sharing '{secret}' with customer '{customer}'"));
        }
    }
    Ok(())
}

/// `veil chain ...` (`integrations = false`) and `veil integration ...`.
pub(crate) async fn documents(global: &Global, cmd: DocCmd, integrations: bool) -> CliResult<()> {
    let client = Client::authenticated(global.url.as_deref())?;
    let out = global.output;
    let (base, what) =
        if integrations { ("/api/integrations", "integration") } else { ("/api/rule-chains", "rule chain") };
    let read_doc = |file: &PathBuf| -> CliResult<Value> {
        let bytes = read_file(file)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| CliError::usage(format!("{}: not JSON ({e})", file.display())))
    };
    match cmd {
        DocCmd::Create { file } => {
            let created = client.post(base, &read_doc(&file)?).await?;
            let line =
                format!("Created {what} '{}' with id {}", text(&created["name"]), text(&created["id"]));
            output::done(out, &created, &line);
        }
        DocCmd::List => {
            let answer = client.get(&format!("{base}?pageSize=1000")).await?;
            let mut columns = vec![Column { heading: "NAME", read: |v| text(&v["name"]) }];
            if integrations {
                columns.push(Column { heading: "TYPE", read: |v| text(&v["type"]) });
                columns.push(Column { heading: "STATUS", read: |v| text(&v["status"]) });
            }
            columns.push(Column { heading: "UPDATED", read: |v| time(&v["updatedTime"]) });
            columns.push(Column { heading: "ID", read: |v| text(&v["id"]) });
            output::page(out, &answer, &columns);
        }
        DocCmd::Show { id } => output::json(&client.get(&format!("{base}/{id}")).await?),
        DocCmd::Update { id, file } => {
            let updated =
                client.call(reqwest::Method::PUT, &format!("{base}/{id}"), Some(&read_doc(&file)?)).await?;
            output::done(out, &updated, &format!("Updated {what} '{}'", text(&updated["name"])));
        }
        DocCmd::Delete { id } => {
            let answer = client.delete(&format!("{base}/{id}")).await?;
            output::done(out, &answer, &format!("Deleted {what} {id}"));
        }
        DocCmd::Send { id, data, metadata, msg_type, originator, wait } => {
            let mut msg = json!({"data": json_arg("data", &data)?});
            if let Some(m) = metadata {
                msg["metadata"] = json_arg("metadata", &m)?;
            }
            if let Some(t) = msg_type {
                msg["type"] = json!(t);
            }
            if let Some(o) = originator {
                msg["originator"] = json!(o);
            }
            if integrations {
                let sent = client.post(&format!("{base}/{id}/downlink"), &msg).await?;
                output::done(out, &sent, &format!("Downlink sent: {}", sent["sent"]));
            } else {
                let path = format!("{base}/{id}/messages{}", if wait { "?wait=true" } else { "" });
                let answer = client.post(&path, &msg).await?;
                let steps = answer["trace"].as_array().cloned().unwrap_or_default();
                if wait {
                    output::list(
                        out,
                        &answer,
                        &steps,
                        &[
                            Column { heading: "NODE", read: |v| text(&v["nodeName"]) },
                            Column { heading: "RELATION", read: |v| text(&v["relation"]) },
                            Column { heading: "ERROR", read: |v| text(&v["error"]) },
                        ],
                    );
                } else {
                    output::done(out, &answer, &format!("Message {} accepted", text(&answer["msgId"])));
                }
            }
        }
    }
    Ok(())
}

/// The id of a user given by name or id. Your own account resolves without USER:READ (so anyone
/// can change their own password by name).
async fn user_id(client: &Client, wanted: &str) -> CliResult<String> {
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

/// `--current-password-stdin`: the current password on stdin's first line, the new one on the
/// second (one trailing newline dropped).
fn current_and_new_password() -> CliResult<(String, String)> {
    let text = text_value(read_stdin()?)?;
    let (current, new) = text.split_once('\n').ok_or_else(|| {
        CliError::usage("--current-password-stdin: put the current password on the first line of stdin and the new one on the second")
    })?;
    Ok((current.strip_suffix('\r').unwrap_or(current).to_owned(), new.to_owned()))
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
            let answer = client.get("/api/users?pageSize=1000").await?;
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
                    if !current_password_stdin && e.message.contains("currentPassword: is required") {
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
            let answer = client.get("/api/customers?pageSize=1000").await?;
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

/// A time argument: ms since the epoch or RFC 3339.
fn time_arg(name: &str, raw: &str) -> CliResult<i64> {
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(ms);
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| CliError::usage(format!("--{name}: '{raw}' is neither RFC 3339 nor milliseconds")))
}

/// `veil audit`
pub(crate) async fn audit(global: &Global, args: AuditArgs) -> CliResult<()> {
    let client = Client::authenticated(global.url.as_deref())?;
    let mut path = format!("/api/audit-logs?page={}&pageSize={}", args.page, args.page_size);
    if let Some(s) = &args.secret {
        path.push_str(&format!("&secretId={}", secret_id(&client, s).await?));
    }
    if let Some(a) = &args.actor {
        path.push_str(&format!("&actor={}", query(a)));
    }
    if let Some(f) = &args.from {
        path.push_str(&format!("&from={}", time_arg("from", f)?));
    }
    if let Some(t) = &args.to {
        path.push_str(&format!("&to={}", time_arg("to", t)?));
    }
    let answer = client.get(&path).await?;
    output::page(
        global.output,
        &answer,
        &[
            Column { heading: "TIME", read: |v| time(&v["time"]) },
            Column { heading: "ACTOR", read: |v| text(&v["actorName"]) },
            Column { heading: "ACTION", read: |v| text(&v["action"]) },
            Column { heading: "TARGET", read: |v| text(&v["targetName"]) },
            Column { heading: "OUTCOME", read: |v| text(&v["outcome"]) },
            Column {
                heading: "DETAILS",
                read: |v| match &v["details"] {
                    Value::Object(m) if m.is_empty() => String::new(),
                    other => other.to_string(),
                },
            },
        ],
    );
    Ok(())
}

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

/// `veil node-types` (`integrations = false`) and `veil integration-types`: one row per type, or
/// the API's descriptors as JSON.
/// `veil settings`: shows the tenant's settings, or changes them.
pub(crate) async fn settings(global: &Global, args: SettingsArgs) -> CliResult<()> {
    let client = Client::authenticated(global.url.as_deref())?;
    let answer = match args.destinations_required {
        Some(on) => {
            let body = json!({ "destinationsRequired": on });
            client.call(reqwest::Method::PUT, "/api/tenant-settings", Some(&body)).await?
        }
        None => client.get("/api/tenant-settings").await?,
    };
    output::object(global.output, &answer, &[("destinationsRequired", |v| text(&v["destinationsRequired"]))]);
    Ok(())
}

pub(crate) async fn types(global: &Global, integrations: bool) -> CliResult<()> {
    let client = Client::authenticated(global.url.as_deref())?;
    let path = if integrations { "/api/integration-types" } else { "/api/node-types" };
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
