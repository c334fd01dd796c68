//! `LORIOT`: uplinks pushed by a LORIOT network server's HTTP push output, downlinks sent back to
//! its REST endpoint, the output created on the LORIOT application when asked. Configuration names
//! are ThingsBoard's. The account password (or API token) and the downlink token come from secrets,
//! rendered at the moment of each login or call.

use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use veil_core::{
    Accepts, BoxFuture, BuildCtx, CompiledConfig, FieldSpec, Probe, Problem, Template, TemplateText,
};

use crate::error::{IntegrationError, UplinkError};
use crate::integration::{Integration, IntegrationCtx, IntegrationDescriptor};
use crate::security::{HeaderSecurity, flag, json_body, text, url};

mod api;
mod frames;

use self::api::{CALL_TIMEOUT, excerpt, header};
use self::frames::{check_uplink, is_hex, tx_command};

pub(crate) static DESCRIPTOR: IntegrationDescriptor = IntegrationDescriptor {
    type_name: "LORIOT",
    uplink_path: "loriot",
    description: "LORIOT network server: HTTP push uplinks, REST downlinks, application output created on start",
    default_config: || {
        json!({
            "server": "eu1",
            "domain": "loriot.io",
            "appId": "",
            "createLoriotOutput": false,
            "sendDownlink": false,
            "credentials": { "type": "basic", "username": "", "password": "" },
            "httpEndpoint": "",
            "enableSecurity": false,
            "headersFilter": {}
        })
    },
    schema: || schemars::schema_for!(LoriotConfig).to_value(),
    fields: &[
        FieldSpec::secret("/credentials/username", Accepts::Text),
        FieldSpec::secret("/credentials/password", Accepts::Text),
        FieldSpec::secret("/credentials/token", Accepts::Text),
        FieldSpec::secret("/token", Accepts::Text),
        FieldSpec::secret("/headersFilter/*", Accepts::Text),
    ],
    build,
};

/// Downlink ports LoRaWAN allows for application data.
const PORTS: std::ops::RangeInclusive<i64> = 1..=223;

enum Credentials {
    /// Account login: `POST /1/pub/login`, then `Authorization: Session <session>`.
    Basic { username: Template, password: Template },
    /// `Authorization: Bearer <token>`.
    Token { token: Template },
}

struct Loriot {
    base: String,
    app_id: Option<String>,
    create_output: bool,
    send_downlink: bool,
    credentials: Option<Credentials>,
    token: Option<Template>,
    downlink_url: String,
    http_endpoint: Option<String>,
    security: HeaderSecurity,
    client: reqwest::Client,
    /// The account session and the credentials generation it was made with.
    session: tokio::sync::Mutex<Option<(SecretString, u64)>>,
    /// Bumped when a secret the login uses changes; a session of an older generation is replaced.
    credentials_generation: AtomicU64,
    /// Secrets the account login uses.
    login_secrets: Vec<String>,
    /// Held across "is the output there? create it" so two starts cannot both create one.
    output_lock: tokio::sync::Mutex<()>,
}

/// `LORIOT` integration configuration (ThingsBoard's names, plus `apiBaseUrl`). Values are read
/// as JSON and checked by `build` (each with its own message, every problem at once); the schema
/// says what each one holds.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LoriotConfig {
    /// The LORIOT server (default `eu1`).
    #[schemars(with = "Option<LoriotServer>", extend("default" = "eu1"))]
    server: Option<Value>,
    /// Default `loriot.io`; the API is `https://{server}.{domain}`.
    #[schemars(with = "Option<String>", extend("default" = "loriot.io"))]
    domain: Option<Value>,
    /// Replaces `https://{server}.{domain}` (private installations, the emulator).
    #[schemars(with = "Option<String>")]
    api_base_url: Option<Value>,
    /// The LORIOT application id (hex).
    #[schemars(with = "Option<String>")]
    app_id: Option<Value>,
    /// Account API access.
    credentials: Option<LoriotCredentials>,
    /// On start, make sure the application has an HTTP push output to `httpEndpoint`.
    #[schemars(with = "Option<bool>", extend("default" = false))]
    create_loriot_output: Option<Value>,
    /// The URL LORIOT pushes uplinks to.
    #[schemars(with = "Option<String>")]
    http_endpoint: Option<Value>,
    /// Send downlinks, with `token`.
    #[schemars(with = "Option<bool>", extend("default" = false))]
    send_downlink: Option<Value>,
    /// The application access token (TEXT secret).
    token: Option<TemplateText>,
    /// Default `{base}/1/rest`.
    #[schemars(with = "Option<String>")]
    loriot_downlink_url: Option<Value>,
    /// Check `headersFilter` on every uplink.
    #[schemars(with = "Option<bool>", extend("default" = false))]
    enable_security: Option<Value>,
    /// Header name to the value every uplink must carry (TEXT secrets allowed).
    headers_filter: Option<std::collections::BTreeMap<String, veil_core::TemplateText>>,
}

/// The LORIOT servers.
#[derive(Debug, Clone, Copy, JsonSchema)]
#[schemars(rename_all = "lowercase")]
enum LoriotServer {
    Eu1,
    Us1,
    As1,
    Eu2,
    Ap1,
}

impl LoriotServer {
    const ALL: [(&'static str, Self); 5] =
        [("eu1", Self::Eu1), ("us1", Self::Us1), ("as1", Self::As1), ("eu2", Self::Eu2), ("ap1", Self::Ap1)];

    /// Whether `name` is a LORIOT server (`server` of the API's host name).
    fn is_known(name: &str) -> bool {
        Self::ALL.iter().any(|(n, _)| *n == name)
    }
}

/// `credentials` of `LORIOT`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type")]
enum LoriotCredentials {
    /// Log in with the account's user name and password.
    #[serde(rename = "basic")]
    Basic(LoriotLogin),
    /// An API token.
    #[serde(rename = "token")]
    Token(LoriotToken),
}

/// `basic` credentials of `LORIOT`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoriotLogin {
    /// The account's user name (TEXT secret allowed).
    #[schemars(required)]
    username: Option<TemplateText>,
    /// The account's password (TEXT secret).
    #[schemars(required)]
    password: Option<TemplateText>,
}

/// `token` credentials of `LORIOT`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoriotToken {
    /// An API token (TEXT secret).
    #[schemars(required)]
    token: Option<TemplateText>,
}

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn crate::Integration>, Vec<Problem>> {
    static KEYS: std::sync::OnceLock<Vec<(String, Vec<String>)>> = std::sync::OnceLock::new();
    let settings: LoriotConfig = ctx.parse_with(&config, |doc| {
        // Keys of the other credentials type are ignored, as they always were.
        let keys = KEYS.get_or_init(|| {
            let form = veil_core::form_fields(&schemars::schema_for!(LoriotConfig).to_value(), &[]);
            veil_core::variant_keys(&form, "/credentials/type")
        });
        veil_core::settle_variant(doc, "/credentials/type", keys, None);
    })?;
    let mut problems = Vec::new();
    let server = text(ctx, settings.server.as_ref(), "server", &mut problems).unwrap_or("eu1");
    if !LoriotServer::is_known(server) {
        let names: Vec<&str> = LoriotServer::ALL.iter().map(|(n, _)| *n).collect();
        problems.push(ctx.problem("/server", format!("'{server}' is not one of {}", names.join(", "))));
    }
    let domain = text(ctx, settings.domain.as_ref(), "domain", &mut problems).unwrap_or("loriot.io");
    let base = match text(ctx, settings.api_base_url.as_ref(), "apiBaseUrl", &mut problems) {
        Some(raw) => url(ctx, "/apiBaseUrl", raw, &mut problems),
        None => url(ctx, "/domain", &format!("https://{server}.{domain}"), &mut problems),
    };
    let downlink_url =
        match text(ctx, settings.loriot_downlink_url.as_ref(), "loriotDownlinkUrl", &mut problems) {
            Some(raw) => url(ctx, "/loriotDownlinkUrl", raw, &mut problems),
            None => format!("{base}/1/rest"),
        };
    // Where the secrets go: the account credentials (and the push auth an output is created
    // with) to the API, the application token to the downlink URL.
    let base_pointer = if settings.api_base_url.is_some() { "/apiBaseUrl" } else { "/server" };
    let sent = |prefixes: &[&str]| -> Vec<String> {
        config
            .secret_uses()
            .iter()
            .filter(|u| prefixes.iter().any(|p| u.pointer.starts_with(p)))
            .map(|u| u.name.clone())
            .collect()
    };
    // A problem at `pointer` when one of `names` may not go to the URL `target`.
    let check_url = |pointer: &str, target: &str, names: Vec<String>| {
        let url = reqwest::Url::parse(target).ok()?;
        let (host, port) = (url.host_str().unwrap_or_default(), url.port_or_known_default().unwrap_or(0));
        ctx.check_destination(pointer, names.iter().map(String::as_str), host, port)
    };
    problems.extend(check_url(base_pointer, &base, sent(&["/credentials/", "/headersFilter/"])));
    problems.extend(check_url("/loriotDownlinkUrl", &downlink_url, sent(&["/token"])));
    let create_output =
        flag(ctx, settings.create_loriot_output.as_ref(), "createLoriotOutput", false, &mut problems);
    let send_downlink = flag(ctx, settings.send_downlink.as_ref(), "sendDownlink", false, &mut problems);
    let app_id = text(ctx, settings.app_id.as_ref(), "appId", &mut problems).map(str::to_owned);
    if let Some(id) = &app_id {
        if (!is_hex(id) || id.len() > 16) && !veil_core::mentions_placeholder(id) {
            problems.push(
                ctx.problem("/appId", format!("'{id}' is not a LORIOT application id (hex, e.g. BE7A0000)")),
            );
        }
    } else if create_output || send_downlink {
        problems.push(ctx.problem("/appId", "is required with createLoriotOutput or sendDownlink"));
    }
    let http_endpoint = match text(ctx, settings.http_endpoint.as_ref(), "httpEndpoint", &mut problems) {
        Some(raw) => Some(url(ctx, "/httpEndpoint", raw, &mut problems)),
        None if create_output => {
            problems.push(ctx.problem(
                "/httpEndpoint",
                "is required with createLoriotOutput (the URL LORIOT pushes uplinks to)",
            ));
            None
        }
        None => None,
    };
    let bound = |field: &TemplateText, problems: &mut Vec<Problem>| ctx.bound(&config, field, problems);
    // LORIOT is logged in to (with these) only to create its output: then none may be empty.
    let required = |field: Option<&TemplateText>, pointer: &str, problems: &mut Vec<Problem>| match field {
        Some(text) if create_output && text.is_blank() => {
            problems.push(ctx.problem(pointer, "is required with createLoriotOutput: it is empty"));
            None
        }
        Some(text) => bound(text, problems),
        None => {
            problems.push(ctx.problem(pointer, "is required"));
            None
        }
    };
    let credentials = match &settings.credentials {
        None => {
            if create_output {
                problems.push(ctx.problem("/credentials", "is required with createLoriotOutput"));
            }
            None
        }
        Some(LoriotCredentials::Basic(login)) => {
            let username = required(login.username.as_ref(), "/credentials/username", &mut problems);
            let password = required(login.password.as_ref(), "/credentials/password", &mut problems);
            username.zip(password).map(|(username, password)| Credentials::Basic { username, password })
        }
        Some(LoriotCredentials::Token(token)) => {
            required(token.token.as_ref(), "/credentials/token", &mut problems)
                .map(|token| Credentials::Token { token })
        }
    };
    let token = match &settings.token {
        Some(text) => bound(text, &mut problems),
        None if send_downlink => {
            problems
                .push(ctx.problem("/token", "is required with sendDownlink (the application access token)"));
            None
        }
        None => None,
    };
    let security = HeaderSecurity::from_config(
        ctx,
        &config,
        settings.enable_security.as_ref(),
        settings.headers_filter.as_ref(),
        &mut problems,
    );
    // The output LORIOT is asked to create carries the push Authorization to httpEndpoint.
    if let (true, Some(endpoint)) = (create_output, &http_endpoint) {
        problems.extend(check_url("/httpEndpoint", endpoint, sent(&["/headersFilter/"])));
    }
    if create_output && security.is_enabled() && security.expected("authorization").is_none() {
        problems.push(ctx.problem(
            "/headersFilter",
            "with createLoriotOutput and enableSecurity, name the Authorization header: LORIOT sends \
             only that one (the output's auth)",
        ));
    }
    let client = reqwest::Client::builder()
        // Never a proxy from the environment (HTTP_PROXY …): every send goes straight to the host
        // its destination check allowed.
        .no_proxy()
        .timeout(CALL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| vec![ctx.problem("", format!("cannot create an HTTP client: {e}"))])?;
    if !problems.is_empty() {
        return Err(problems);
    }
    let login_secrets = match &credentials {
        Some(Credentials::Basic { username, password }) => {
            username.secret_names().chain(password.secret_names()).map(str::to_owned).collect()
        }
        _ => Vec::new(),
    };
    Ok(Box::new(Loriot {
        login_secrets,
        base,
        app_id,
        create_output,
        send_downlink,
        credentials,
        token,
        downlink_url,
        http_endpoint,
        security,
        client,
        session: tokio::sync::Mutex::new(None),
        credentials_generation: AtomicU64::new(0),
        output_lock: tokio::sync::Mutex::new(()),
    }))
}

impl Integration for Loriot {
    fn removed<'a>(&'a self, ctx: &'a IntegrationCtx<'a>) -> BoxFuture<'a, Result<(), IntegrationError>> {
        Box::pin(async move { if self.create_output { self.remove_output(ctx).await } else { Ok(()) } })
    }

    fn start<'a>(&'a self, ctx: &'a IntegrationCtx<'a>) -> BoxFuture<'a, Result<(), IntegrationError>> {
        Box::pin(async move {
            match (&self.app_id, &self.credentials) {
                _ if self.create_output => self.ensure_output(ctx).await,
                // Nothing to create, but wrong credentials should show now, not at the first call.
                (Some(app_id), Some(_)) => {
                    let app_url = format!("{}/1/nwk/app/{app_id}", self.base);
                    self.call(ctx, Method::GET, &app_url, None).await.map(drop)
                }
                (None, Some(Credentials::Basic { .. })) => self.authorization(ctx, true).await.map(drop),
                _ => Ok(()),
            }
        })
    }

    fn accept_uplink(
        &self,
        ctx: &IntegrationCtx<'_>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Value, UplinkError> {
        self.security.check(ctx, headers)?;
        let payload = json_body(body)?;
        check_uplink(&payload)?;
        Ok(payload)
    }

    fn downlink<'a>(
        &'a self,
        ctx: &'a IntegrationCtx<'a>,
        downlink: Value,
    ) -> BoxFuture<'a, Result<Value, IntegrationError>> {
        Box::pin(async move {
            if !self.send_downlink {
                return Err(IntegrationError::new("sendDownlink is off for this integration"));
            }
            let (Some(app_id), Some(token)) = (&self.app_id, &self.token) else {
                return Err(IntegrationError::new("appId and token are required for downlinks"));
            };
            let tx = tx_command(&downlink, app_id)?;
            let bearer = header(&format!("Bearer {}", ctx.render(token)?.expose_secret()).into(), "token")?;
            let response = self
                .client
                .post(&self.downlink_url)
                .header(AUTHORIZATION, bearer)
                .json(&tx)
                .send()
                .await
                .map_err(|e| {
                    IntegrationError::new(format!("downlink to {} failed: {e}", self.downlink_url))
                })?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(IntegrationError::new(format!(
                    "downlink to {} answered HTTP {status} {}",
                    self.downlink_url,
                    excerpt(ctx, &text)
                )));
            }
            Ok(json!({ "sent": tx, "status": status.as_u16() }))
        })
    }

    fn reconnects(&self) -> bool {
        self.credentials.is_some()
    }

    fn probe<'a>(&'a self, ctx: &'a IntegrationCtx<'a>, name: &'a str) -> BoxFuture<'a, Probe> {
        Box::pin(async move {
            let found = match &self.credentials {
                Some(Credentials::Basic { username, password })
                    if self.login_secrets.iter().any(|n| n == name) =>
                {
                    self.login(ctx, username, password).await.map(|_| format!("logged in at {}", self.base))
                }
                Some(Credentials::Token { token }) if token.secret_names().any(|n| n == name) => {
                    let Some(app_id) = &self.app_id else {
                        return Probe::not_probed("an API token is tested through an application: set appId");
                    };
                    let app_url = format!("{}/1/nwk/app/{app_id}", self.base);
                    self.call(ctx, Method::GET, &app_url, None)
                        .await
                        .map(|_| format!("read application {app_id} at {}", self.base))
                }
                _ => {
                    return Probe::not_probed("only the account credentials (login or API token) are tested");
                }
            };
            match found {
                Ok(detail) => Probe::Ok(detail),
                Err(e) => Probe::Failed(e.to_string()),
            }
        })
    }

    fn secret_changed(&self, name: &str) {
        // A new password or username: the next call logs in with the value of that moment.
        if self.login_secrets.iter().any(|n| n == name) {
            self.credentials_generation.fetch_add(1, Ordering::SeqCst);
        }
    }
}
