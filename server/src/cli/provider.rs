//! `veil provider …`: secret providers, where linked secrets' values live (`files`, `exec`,
//! `aws-secrets-manager`, `vault-kv2`). A provider's credentials are secrets named in its
//! configuration as `$<secret:NAME>`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{CliError, CliResult, Client};
use super::output::{self, Column, Field, text, time};
use super::{Global, delete_named, id_in};

const LISTING: &str = "/api/secret-providers";

/// `veil provider ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ProviderCmd {
    /// Create a provider.
    Create {
        /// Its name (never changes).
        name: String,
        /// files, exec, aws-secrets-manager or vault-kv2.
        #[arg(long = "type", value_parser = ["files", "exec", "aws-secrets-manager", "vault-kv2"])]
        kind: String,
        /// Its configuration as a JSON object, e.g. '{"directory": "/run/secrets"}'; credentials
        /// as "$<secret:NAME>".
        #[arg(long, value_name = "JSON")]
        config: String,
        /// Seconds a fetched value is used before it is fetched again (default 60).
        #[arg(long, value_name = "SECS")]
        cache_seconds: Option<u64>,
    },
    /// List the providers.
    List,
    /// Show one provider.
    Show {
        /// Name or id.
        provider: String,
    },
    /// Change a provider's configuration or cache period.
    Update {
        /// Name or id.
        provider: String,
        /// The new configuration (JSON object).
        #[arg(long, value_name = "JSON")]
        config: Option<String>,
        /// Seconds a fetched value is used before it is fetched again.
        #[arg(long, value_name = "SECS")]
        cache_seconds: Option<u64>,
    },
    /// Delete a provider (refused while linked secrets come from it).
    Delete {
        /// Name or id.
        provider: String,
    },
    /// Check that the provider answers with its credentials.
    Test {
        /// Name or id.
        provider: String,
    },
    /// The keys the provider can list (what `veil secret import` can link).
    Keys {
        /// Name or id.
        provider: String,
    },
}

const FIELDS: &[Field] = &[
    ("name", |v| text(&v["name"])),
    ("type", |v| text(&v["type"])),
    ("configuration", |v| v["configuration"].to_string()),
    ("cacheSeconds", |v| text(&v["cacheSeconds"])),
    ("created", |v| time(&v["createdTime"])),
    ("updated", |v| time(&v["updatedTime"])),
    ("id", |v| text(&v["id"])),
];

fn configuration(raw: &str) -> CliResult<Value> {
    match serde_json::from_str::<Value>(raw) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(CliError::usage("--config: expected a JSON object")),
        Err(e) => Err(CliError::usage(format!("--config: not JSON ({e})"))),
    }
}

/// The id of a provider given by name or id.
pub(super) async fn provider_id(client: &Client, provider: &str) -> CliResult<String> {
    id_in(client, LISTING, "name", "secret provider", provider).await
}

/// `veil provider ...`
pub(crate) async fn provider(global: &Global, cmd: ProviderCmd) -> CliResult<()> {
    let client = Client::authenticated(global.url.as_deref())?;
    let out = global.output;
    match cmd {
        ProviderCmd::Create { name, kind, config, cache_seconds } => {
            let mut body = json!({ "name": name, "type": kind, "configuration": configuration(&config)? });
            if let Some(secs) = cache_seconds {
                body["cacheSeconds"] = json!(secs);
            }
            output::object(out, &client.post(LISTING, &body).await?, FIELDS);
        }
        ProviderCmd::List => output::page(
            out,
            &client.get(LISTING).await?,
            &[
                Column { heading: "NAME", read: |v| text(&v["name"]) },
                Column { heading: "TYPE", read: |v| text(&v["type"]) },
                Column { heading: "CACHE SECONDS", read: |v| text(&v["cacheSeconds"]) },
                Column { heading: "ID", read: |v| text(&v["id"]) },
            ],
        ),
        ProviderCmd::Show { provider } => {
            let id = provider_id(&client, &provider).await?;
            output::object(out, &client.get(&format!("{LISTING}/{id}")).await?, FIELDS);
        }
        ProviderCmd::Update { provider, config, cache_seconds } => {
            let id = provider_id(&client, &provider).await?;
            let mut body = client.get(&format!("{LISTING}/{id}")).await?;
            if let Some(config) = config {
                body["configuration"] = configuration(&config)?;
            }
            if let Some(secs) = cache_seconds {
                body["cacheSeconds"] = json!(secs);
            }
            let changed = client.call(reqwest::Method::PUT, &format!("{LISTING}/{id}"), Some(&body)).await?;
            output::object(out, &changed, FIELDS);
        }
        ProviderCmd::Delete { provider } => {
            delete_named(&client, out, LISTING, "secret provider", &provider).await?;
        }
        ProviderCmd::Test { provider } => {
            let id = provider_id(&client, &provider).await?;
            let answer = client.post(&format!("{LISTING}/{id}/test"), &json!({})).await?;
            output::done(out, &answer, &text(&answer["message"]));
            if answer["ok"] != true {
                return Err(CliError::failure(format!("provider '{provider}' failed its test")));
            }
        }
        ProviderCmd::Keys { provider } => {
            let id = provider_id(&client, &provider).await?;
            let answer = client.get(&format!("{LISTING}/{id}/keys")).await?;
            let items: Vec<Value> = answer["keys"].as_array().cloned().unwrap_or_default();
            output::list(out, &answer, &items, &[Column { heading: "KEY", read: text }]);
        }
    }
    Ok(())
}
