//! The `veil` CLI over the REST API: log in once, then manage secrets, rule chains, integrations,
//! users, customers, read the audit log and the node and integration types. Secret values come from stdin or a file, never from an
//! argument (arguments land in shell history and process listings).

mod audit;
mod client;
mod customer;
mod documents;
mod input;
mod keys;
mod output;
mod provider;
mod rotation;
mod secret;
mod tenant;
mod types;
mod user;

use serde_json::json;

pub(crate) use self::client::CliError;
use self::client::{CliResult, Client, Credentials, save_credentials, server_url};
use self::input::{password, refuse_stray};
use self::output::Format;
use self::output::text;

pub(crate) use self::audit::{AuditArgs, audit};
pub(crate) use self::customer::{CustomerCmd, customer};
pub(crate) use self::documents::{ChainCmd, DocCmd, DocKind, chain, documents};
pub(crate) use self::keys::{RotateArgs, key_status, rotate_keys};
pub(crate) use self::provider::{ProviderCmd, provider};
pub(crate) use self::secret::{SecretCmd, secret};
pub(crate) use self::tenant::{TenantCmd, tenant};
pub(crate) use self::types::types;
pub(crate) use self::user::{UserCmd, user};

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
    /// Read the password from stdin instead of prompting (`--password-stdin` is the same).
    #[arg(long = "stdin", visible_alias = "password-stdin")]
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

/// `veil settings`
#[derive(Debug, clap::Args)]
pub(crate) struct SettingsArgs {
    /// Require every secret to name its allowed destinations (`true`), or not (`false`).
    #[arg(long, value_name = "true|false")]
    destinations_required: Option<bool>,
    /// Require every value change to name the version it is based on (If-Match).
    #[arg(long, value_name = "true|false")]
    cas_required: Option<bool>,
    /// Refuse values with surrounding whitespace or quotes, a trailing newline, or too short to
    /// mask, instead of accepting them with a warning.
    #[arg(long, value_name = "true|false")]
    strict_values: Option<bool>,
    /// Send a SECRET_EXPIRY message into this rule chain (id) as secrets near their expiry.
    #[arg(long, value_name = "CHAIN_ID", requires = "expiry_days", conflicts_with = "no_expiry_notices")]
    expiry_notices: Option<String>,
    /// With --expiry-notices: how many days before (comma-separated, e.g. 30,7,1).
    #[arg(long, value_name = "DAYS", value_delimiter = ',')]
    expiry_days: Vec<u32>,
    /// Send no expiry notices any more.
    #[arg(long)]
    no_expiry_notices: bool,
}

pub(super) fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// The columns of a listing of named things (customers, tenants): name, created, id.
pub(super) const NAMED_COLUMNS: &[output::Column] = &[
    output::Column { heading: "NAME", read: |v| text(&v["name"]) },
    output::Column { heading: "CREATED", read: |v| output::time(&v["createdTime"]) },
    output::Column { heading: "ID", read: |v| text(&v["id"]) },
];

/// Deletes the `what` (a customer, a tenant) given by name or id in `listing`, saying so.
pub(super) async fn delete_named(
    client: &Client,
    out: Format,
    listing: &str,
    what: &str,
    wanted: &str,
) -> CliResult<()> {
    let id = id_in(client, listing, "name", what, wanted).await?;
    let answer = client.delete(&format!("{listing}/{id}")).await?;
    output::done(out, &answer, &format!("Deleted {what} '{wanted}'"));
    Ok(())
}

/// The id of a customer, user ... given by name or id, from a listing.
pub(super) async fn id_in(
    client: &Client,
    listing: &str,
    key: &str,
    what: &str,
    wanted: &str,
) -> CliResult<String> {
    if is_uuid(wanted) {
        return Ok(wanted.to_owned());
    }
    let page = client.get_all(listing).await?;
    page["data"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i[key] == wanted))
        .and_then(|i| i["id"].as_str().map(str::to_owned))
        .ok_or_else(|| CliError::not_found(format!("{what} '{wanted}' not found (not_found)")))
}

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

/// `veil settings`: shows the tenant's settings, or changes them.
pub(crate) async fn settings(global: &Global, args: SettingsArgs) -> CliResult<()> {
    let client = Client::authenticated(global.url.as_deref())?;
    let mut change = serde_json::Map::new();
    for (key, value) in [
        ("destinationsRequired", args.destinations_required),
        ("casRequired", args.cas_required),
        ("strictValues", args.strict_values),
    ] {
        if let Some(on) = value {
            change.insert(key.into(), json!(on));
        }
    }
    if let Some(chain) = args.expiry_notices {
        change.insert("expiryNotices".into(), json!({"ruleChainId": chain, "daysBefore": args.expiry_days}));
    }
    if args.no_expiry_notices {
        change.insert("expiryNotices".into(), serde_json::Value::Null);
    }
    let answer = if change.is_empty() {
        client.get("/api/tenant-settings").await?
    } else {
        client.call(reqwest::Method::PUT, "/api/tenant-settings", Some(&change.into())).await?
    };
    output::object(
        global.output,
        &answer,
        &[
            ("destinationsRequired", |v| text(&v["destinationsRequired"])),
            ("casRequired", |v| text(&v["casRequired"])),
            ("strictValues", |v| text(&v["strictValues"])),
            ("expiryNotices", |v| {
                let n = &v["expiryNotices"];
                if n.is_null() {
                    return String::new();
                }
                let days: Vec<String> =
                    n["daysBefore"].as_array().into_iter().flatten().map(|d| d.to_string()).collect();
                format!("rule chain {} at {} days", text(&n["ruleChainId"]), days.join(", "))
            }),
        ],
    );
    Ok(())
}
