//! `veil secret …`: create, list, show, update, delete, usages, share and unshare; versions,
//! verify and rollback (staged rotation in `rotation.rs`).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::client::{CliError, CliResult, Client, query};
use super::input::{VALUE_ARG_REFUSED, new_value};
use super::output::{self, Column, Field, text, time};
use super::{Global, id_in, is_uuid};

/// `veil secret ...`
#[derive(Debug, Subcommand)]
pub(crate) enum SecretCmd {
    /// Create a secret; the value comes from stdin (a pipe, --stdin, or a prompt) or --file, never
    /// from an argument.
    Create {
        /// Its name (never changes).
        name: String,
        /// TEXT (passwords, tokens) or FILE (certificates).
        #[arg(long = "type", default_value = "TEXT", value_parser = ["TEXT", "FILE", "text", "file"])]
        kind: String,
        /// A description for people.
        #[arg(long)]
        description: Option<String>,
        /// Read the value from stdin (a pipe is read without it too; a terminal is prompted).
        #[arg(long, conflicts_with = "file")]
        stdin: bool,
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
        /// How many versions keep their value, the current one included (1..100, default 10).
        #[arg(long, value_name = "N")]
        max_versions: Option<i64>,
        /// When it expires (RFC 3339, e.g. 2027-01-31T00:00:00Z), e.g. a token's known expiry.
        #[arg(long, value_name = "TIME", value_parser = rfc3339_ms)]
        expires_at: Option<i64>,
        #[command(flatten)]
        source: SourceArgs,
        /// Refused: a value on the command line lands in shell history.
        #[arg(long, hide = true)]
        value: Option<String>,
        /// Refused: values given after the name (never echoed, however many).
        #[arg(hide = true, allow_hyphen_values = true)]
        stray: Vec<String>,
    },
    /// Create linked secrets for keys of a provider: `PREFIX` + key each (keys given, or --all of
    /// what the provider lists; neither: show what it lists).
    Import {
        /// The provider's name or id.
        #[arg(long)]
        provider: String,
        /// Put before each key to make the secret's name.
        #[arg(long, default_value = "")]
        prefix: String,
        /// TEXT or FILE.
        #[arg(long = "type", default_value = "TEXT", value_parser = ["TEXT", "FILE", "text", "file"])]
        kind: String,
        /// Every key the provider lists.
        #[arg(long, conflicts_with = "keys")]
        all: bool,
        /// The keys to link.
        keys: Vec<String>,
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
        /// Only secrets no rule chain or integration used in the last DAYS days (or ever).
        #[arg(long, value_name = "DAYS")]
        unused: Option<u32>,
        /// Only secrets that expire within DAYS days (or have expired).
        #[arg(long, value_name = "DAYS")]
        expiring: Option<u32>,
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
        /// How many versions keep their value, the current one included (1..100).
        #[arg(long, value_name = "N")]
        max_versions: Option<i64>,
        /// Check-and-set: change nothing unless version N is still the current one.
        #[arg(long, value_name = "N")]
        expect_version: Option<i64>,
        /// When it expires (RFC 3339, e.g. 2027-01-31T00:00:00Z).
        #[arg(long, value_name = "TIME", value_parser = rfc3339_ms, conflicts_with = "no_expiry")]
        expires_at: Option<i64>,
        /// Forget the expiry set with --expires-at.
        #[arg(long)]
        no_expiry: bool,
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
    /// A secret's versions, newest first: state, author and fingerprint (never a value).
    Versions {
        /// Name or id.
        secret: String,
    },
    /// Check whether a value (from stdin, a prompt or --file) is one of a secret's versions,
    /// without showing any value.
    Verify {
        /// Name or id.
        secret: String,
        /// Read the candidate from this file (FILE secrets).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Read the candidate from stdin (a pipe is read without it too).
        #[arg(long)]
        stdin: bool,
    },
    /// Bring back an earlier version's value as a new current version.
    Rollback {
        /// Name or id.
        secret: String,
        /// The version whose value comes back.
        #[arg(long)]
        version: i64,
        /// Check-and-set: change nothing unless version N is still the current one.
        #[arg(long, value_name = "N")]
        expect_version: Option<i64>,
    },
    /// Stage a pending value (from stdin or --file): every rule chain node and integration that
    /// uses the secret tests it (connect, log in, a TLS handshake) while they keep the current one.
    Stage(super::rotation::Stage),
    /// The pending value's probe results, one row per consumer.
    Rotation(super::rotation::Show),
    /// Make the pending value the current version everywhere (refused while a probe failed,
    /// unless --force).
    Promote(super::rotation::Promote),
    /// Drop the pending value.
    DropPending {
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

/// Where a linked secret's value comes from (`veil secret create NAME --provider P --key K`).
#[derive(Debug, clap::Args)]
pub(crate) struct SourceArgs {
    /// Make a linked secret: its value comes from this provider (no value is read).
    #[arg(long, requires = "key", conflicts_with_all = ["file", "stdin"])]
    provider: Option<String>,
    /// The key in the provider (a file name, a secret id or path).
    #[arg(long, requires = "provider")]
    key: Option<String>,
    /// A field of the provider's secret (AWS: a key of a JSON SecretString; Vault: the field).
    #[arg(long, requires = "provider")]
    field: Option<String>,
    /// A fixed version (AWS VersionId, Vault version number); default: the current one.
    #[arg(long = "source-version", requires = "provider")]
    version: Option<String>,
    /// AWS version stage (default AWSCURRENT).
    #[arg(long, requires = "provider")]
    stage: Option<String>,
}

impl SourceArgs {
    fn source(&self) -> Option<serde_json::Value> {
        let provider = self.provider.as_ref()?;
        let mut source = json!({ "provider": provider, "key": self.key });
        for (name, value) in [("field", &self.field), ("version", &self.version), ("stage", &self.stage)] {
            if let Some(value) = value {
                source[name] = json!(value);
            }
        }
        Some(source)
    }
}

/// The id of a secret given by name or id.
pub(super) async fn secret_id(client: &Client, secret: &str) -> CliResult<String> {
    if is_uuid(secret) {
        return Ok(secret.to_owned());
    }
    let page = client.get_all(&format!("/api/secrets?textSearch={}", query(secret))).await?;
    page["data"]
        .as_array()
        .and_then(|items| items.iter().find(|s| s["name"] == secret))
        .and_then(|s| s["id"].as_str().map(str::to_owned))
        .ok_or_else(|| CliError::not_found(format!("secret '{secret}' not found (not_found)")))
}

/// The names of the customers the caller can see (a customer user: its own), by id.
async fn customer_names(client: &Client) -> std::collections::HashMap<String, String> {
    let mut names = std::collections::HashMap::new();
    if let Ok(all) = client.get_all("/api/customers").await {
        for c in all["data"].as_array().into_iter().flatten() {
            if let (Some(id), Some(name)) = (c["id"].as_str(), c["name"].as_str()) {
                names.insert(id.to_owned(), name.to_owned());
            }
        }
    }
    if let Ok(me) = client.get("/api/auth/session").await
        && let (Some(id), Some(name)) = (me["customerId"].as_str(), me["customerName"].as_str())
    {
        names.insert(id.to_owned(), name.to_owned());
    }
    names
}

/// A secret's `sharedWith` by customer name, for a table (`--output json` keeps the API's ids).
fn name_shares(secret: &mut serde_json::Value, names: &std::collections::HashMap<String, String>) {
    for share in secret["sharedWith"].as_array_mut().into_iter().flatten() {
        if let Some(name) = share.as_str().and_then(|id| names.get(id)) {
            *share = json!(name);
        }
    }
}

pub(super) const SECRET_FIELDS: &[Field] = &[
    ("name", |v| text(&v["name"])),
    ("type", |v| text(&v["type"])),
    ("version", |v| text(&v["version"])),
    ("description", |v| text(&v["description"])),
    ("fileName", |v| text(&v["fileName"])),
    ("sharedWith", |v| text(&v["sharedWith"])),
    ("allowedDestinations", |v| text(&v["allowedDestinations"])),
    ("maxVersions", |v| text(&v["maxVersions"])),
    ("lastUsed", |v| time(&v["lastUsedTime"])),
    ("expires", |v| time(expiry(v))),
    ("source", |v| if v["source"].is_null() { String::new() } else { v["source"].to_string() }),
    ("lastFetched", |v| time(&v["status"]["lastFetchedTime"])),
    ("fetchError", |v| text(&v["status"]["error"])),
    ("certificate", |v| certificate(&v["certificate"])),
    ("privateKey", |v| private_key(&v["privateKey"])),
    ("created", |v| time(&v["createdTime"])),
    ("updated", |v| time(&v["updatedTime"])),
    ("id", |v| text(&v["id"])),
];

/// An RFC 3339 time as milliseconds since the epoch (for `--expires-at`).
fn rfc3339_ms(text: &str) -> Result<i64, String> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("'{text}' is not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z)"))?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| format!("'{text}' is out of range"))
}

/// When a secret expires: `expiresAt`, else its certificate's `notAfter`.
fn expiry(v: &serde_json::Value) -> &serde_json::Value {
    if v["expiresAt"].is_null() { &v["certificate"]["notAfter"] } else { &v["expiresAt"] }
}

/// A certificate's metadata on one line.
fn certificate(c: &serde_json::Value) -> String {
    if c.is_null() {
        return String::new();
    }
    format!(
        "{} (issuer {}, valid {} to {}, {} in the file, SHA-256 {})",
        text(&c["subject"]),
        text(&c["issuer"]),
        time(&c["notBefore"]),
        time(&c["notAfter"]),
        text(&c["certificates"]),
        text(&c["sha256Fingerprint"])
    )
}

/// A private key's metadata on one line.
fn private_key(k: &serde_json::Value) -> String {
    if k.is_null() {
        return String::new();
    }
    let encrypted = if k["encrypted"] == true { ", encrypted" } else { "" };
    format!("{}{encrypted}", text(&k["algorithm"]))
}

/// A value on the command line is refused before anything else happens (and never echoed).
pub(super) fn refuse_value_arguments(cmd: &SecretCmd) -> CliResult<()> {
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

/// `veil secret ...`
pub(crate) async fn secret(global: &Global, cmd: SecretCmd) -> CliResult<()> {
    refuse_value_arguments(&cmd)?;
    let client = Client::authenticated(global.url.as_deref())?;
    let out = global.output;
    match cmd {
        SecretCmd::Create {
            name,
            kind,
            description,
            file,
            file_name,
            allow_hosts,
            max_versions,
            expires_at,
            stdin,
            source,
            ..
        } => {
            let kind = kind.to_uppercase();
            let mut body = json!({"name": name, "type": kind, "description": description});
            let source = source.source();
            if let Some(max) = max_versions {
                body["maxVersions"] = json!(max);
            }
            if let Some(at) = expires_at {
                body["expiresAt"] = json!(at);
            }
            if !allow_hosts.is_empty() {
                body["allowedDestinations"] = json!(allow_hosts);
            }
            if let Some(source) = source {
                body["source"] = source;
                if let Some(shown) = file_name {
                    body["fileName"] = json!(shown);
                }
                let created = client.post("/api/secrets", &body).await?;
                output::object(out, &created, SECRET_FIELDS);
                return Ok(());
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
            body["value"] = new_value(file.as_ref(), kind == "FILE", stdin)?;
            let created = client.post("/api/secrets", &body).await?;
            output::object(out, &created, SECRET_FIELDS);
        }
        SecretCmd::Import { provider, prefix, kind, all, keys } => {
            import(&client, out, &provider, &prefix, &kind.to_uppercase(), all, keys).await?;
        }
        SecretCmd::List { search, page, page_size, unused, expiring } => {
            let mut path = format!("/api/secrets?page={page}&pageSize={page_size}");
            if let Some(s) = search {
                path.push_str(&format!("&textSearch={}", query(&s)));
            }
            if let Some(days) = unused {
                path.push_str(&format!("&unusedForDays={days}"));
            }
            if let Some(days) = expiring {
                path.push_str(&format!("&expiringWithinDays={days}"));
            }
            let mut answer = client.get(&path).await?;
            if out == output::Format::Table {
                let names = customer_names(&client).await;
                answer["data"].as_array_mut().into_iter().flatten().for_each(|s| name_shares(s, &names));
            }
            output::page(
                out,
                &answer,
                &[
                    Column { heading: "NAME", read: |v| text(&v["name"]) },
                    Column { heading: "TYPE", read: |v| text(&v["type"]) },
                    Column { heading: "VERSION", read: |v| text(&v["version"]) },
                    Column { heading: "DESCRIPTION", read: |v| text(&v["description"]) },
                    Column { heading: "SHARED WITH", read: |v| text(&v["sharedWith"]) },
                    Column { heading: "LAST USED", read: |v| time(&v["lastUsedTime"]) },
                    Column { heading: "EXPIRES", read: |v| time(expiry(v)) },
                    Column { heading: "ID", read: |v| text(&v["id"]) },
                ],
            );
        }
        SecretCmd::Show { secret } => {
            let id = secret_id(&client, &secret).await?;
            let mut shown = client.get(&format!("/api/secrets/{id}")).await?;
            if out == output::Format::Table {
                name_shares(&mut shown, &customer_names(&client).await);
            }
            output::object(out, &shown, SECRET_FIELDS);
        }
        SecretCmd::Update {
            secret,
            description,
            stdin,
            file,
            allow_hosts,
            allow_any_host,
            max_versions,
            expect_version,
            expires_at,
            no_expiry,
            ..
        } => {
            let id = secret_id(&client, &secret).await?;
            let current = client.get(&format!("/api/secrets/{id}")).await?;
            let mut body = json!({});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if !allow_hosts.is_empty() || allow_any_host {
                body["allowedDestinations"] = json!(allow_hosts);
            }
            if let Some(max) = max_versions {
                body["maxVersions"] = json!(max);
            }
            if let Some(at) = expires_at {
                body["expiresAt"] = json!(at);
            }
            if no_expiry {
                body["expiresAt"] = serde_json::Value::Null;
            }
            if file.is_some() || stdin {
                body["value"] = new_value(file.as_ref(), current["type"] == "FILE", stdin)?;
            }
            if body.as_object().is_some_and(|m| m.is_empty()) {
                return Err(CliError::usage(
                    "nothing to change: give --description, --stdin, --file, --allow-host, --allow-any-host, --max-versions, --expires-at or --no-expiry",
                ));
            }
            let path = format!("/api/secrets/{id}");
            let updated =
                client.call_if_match(reqwest::Method::PATCH, &path, Some(&body), expect_version).await?;
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
        SecretCmd::Versions { secret } => {
            let id = secret_id(&client, &secret).await?;
            let answer = client.get_all(&format!("/api/secrets/{id}/versions")).await?;
            output::page(
                out,
                &answer,
                &[
                    Column { heading: "VERSION", read: |v| text(&v["version"]) },
                    Column { heading: "STATE", read: |v| text(&v["state"]) },
                    Column { heading: "CREATED", read: |v| time(&v["createdTime"]) },
                    Column { heading: "BY", read: |v| text(&v["createdBy"]) },
                    Column { heading: "FINGERPRINT", read: |v| text(&v["fingerprint"]) },
                ],
            );
        }
        SecretCmd::Verify { secret, file, stdin } => {
            let id = secret_id(&client, &secret).await?;
            let current = client.get(&format!("/api/secrets/{id}")).await?;
            let candidate = new_value(file.as_ref(), current["type"] == "FILE", stdin)?;
            let answer =
                client.post(&format!("/api/secrets/{id}/verify"), &json!({"value": candidate})).await?;
            // No match exits with 1, so a script can branch on it.
            match answer["version"].as_i64() {
                Some(v) if answer["matches"] == true => {
                    output::done(out, &answer, &format!("The value matches version {v} of '{secret}'"))
                }
                _ => {
                    if out == output::Format::Json {
                        output::done(out, &answer, "");
                    }
                    return Err(CliError::failure(format!("the value matches no version of '{secret}'")));
                }
            }
        }
        SecretCmd::Rollback { secret, version, expect_version } => {
            let id = secret_id(&client, &secret).await?;
            let path = format!("/api/secrets/{id}/rollback");
            let body = json!({"version": version});
            let rolled =
                client.call_if_match(reqwest::Method::POST, &path, Some(&body), expect_version).await?;
            output::object(out, &rolled, SECRET_FIELDS);
        }
        SecretCmd::Stage(cmd) => super::rotation::stage(&client, out, cmd).await?,
        SecretCmd::Rotation(cmd) => super::rotation::rotation(&client, out, cmd).await?,
        SecretCmd::Promote(cmd) => super::rotation::promote(&client, out, cmd).await?,
        SecretCmd::DropPending { secret } => super::rotation::drop_pending(&client, out, &secret).await?,
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

/// `veil secret import`: linked secrets for keys of a provider, `prefix` + key each; with
/// neither keys nor `all`, the keys the provider lists are shown and nothing is created.
async fn import(
    client: &Client,
    out: output::Format,
    provider: &str,
    prefix: &str,
    kind: &str,
    all: bool,
    keys: Vec<String>,
) -> CliResult<()> {
    let id = super::provider::provider_id(client, provider).await?;
    let shown = client.get(&format!("/api/secret-providers/{id}")).await?;
    let provider = shown["name"].as_str().unwrap_or(provider);
    let keys = if keys.is_empty() {
        let listed = client.get(&format!("/api/secret-providers/{id}/keys")).await?;
        let listed: Vec<String> = listed["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        if !all {
            output::say(&format!(
                "provider '{provider}' lists {} key(s); name the ones to link, or --all:",
                listed.len()
            ));
            for key in &listed {
                output::say(&format!("  {}", output::escape(key)));
            }
            return Ok(());
        }
        listed
    } else {
        keys
    };
    let mut created = Vec::new();
    let mut failed = Vec::new();
    for key in keys {
        let name = format!("{prefix}{key}");
        let body = json!({ "name": name, "type": kind, "source": { "provider": provider, "key": key } });
        match client.post("/api/secrets", &body).await {
            Ok(info) => created.push(info),
            Err(e) => failed.push(format!("{name}: {}", e.message)),
        }
    }
    let answer = json!({ "created": created, "failed": failed });
    output::done(
        out,
        &answer,
        &format!("Created {} linked secret(s) from provider '{provider}'", created.len()),
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::failure(format!("{} not created:\n  {}", failed.len(), failed.join("\n  "))))
    }
}
