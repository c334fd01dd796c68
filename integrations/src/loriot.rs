//! `LORIOT`: uplinks pushed by a LORIOT network server's HTTP push output, downlinks sent back to
//! its REST endpoint, the output created on the LORIOT application when asked. Configuration names
//! are ThingsBoard's. The account password (or API token) and the downlink token come from secrets,
//! rendered at the moment of each login or call.

use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use veil_core::{Accepts, BoxFuture, BuildCtx, CompiledConfig, FieldSpec, Problem, Template};

use crate::error::{IntegrationError, UplinkError};
use crate::integration::{Integration, IntegrationCtx, IntegrationDescriptor};
use crate::security::{HeaderSecurity, flag, json_body, text, url};

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
            "credentials": { "type": "basic", "username": "", "password": "$<secret:loriot-password>" },
            "httpEndpoint": "",
            "enableSecurity": false,
            "headersFilter": {}
        })
    },
    fields: &[
        FieldSpec::secret("/credentials/username", Accepts::Text),
        FieldSpec::secret("/credentials/password", Accepts::Text),
        FieldSpec::secret("/credentials/token", Accepts::Text),
        FieldSpec::secret("/token", Accepts::Text),
        FieldSpec::secret("/headersFilter/*", Accepts::Text),
    ],
    build,
};

/// LORIOT's public servers.
const SERVERS: &[&str] = &["eu1", "us1", "as1", "eu2", "ap1"];

/// Downlink ports LoRaWAN allows for application data.
const PORTS: std::ops::RangeInclusive<i64> = 1..=223;

/// A call to LORIOT that gets no answer within this is an error.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

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

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `LORIOT` integration configuration (ThingsBoard's names, plus `apiBaseUrl`): the keys it has.
/// Unknown keys are refused here; `build` checks each value's type and meaning, so that every
/// problem is reported at once.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code, reason = "the shape of the configuration: build reads the values with their own checks")]
struct LoriotConfig {
    /// `eu1` (default), `us1`, `as1`, `eu2` or `ap1`.
    server: Option<Value>,
    /// Default `loriot.io`; the API is `https://{server}.{domain}`.
    domain: Option<Value>,
    /// Replaces `https://{server}.{domain}` (private installations, the emulator).
    api_base_url: Option<Value>,
    /// The LORIOT application id (hex).
    app_id: Option<Value>,
    /// Account API access.
    credentials: Option<LoriotCredentials>,
    /// On start, make sure the application has an HTTP push output to `httpEndpoint`.
    create_loriot_output: Option<Value>,
    /// The URL LORIOT pushes uplinks to.
    http_endpoint: Option<Value>,
    /// Send downlinks, with `token`.
    send_downlink: Option<Value>,
    /// The application access token (TEXT secret).
    token: Option<Value>,
    /// Default `{base}/1/rest`.
    loriot_downlink_url: Option<Value>,
    /// Check `headersFilter` on every uplink.
    enable_security: Option<Value>,
    /// Header name to the value every uplink must carry (TEXT secrets allowed).
    headers_filter: Option<Value>,
}

/// `credentials` of `LORIOT`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code, reason = "the shape of the configuration: build reads the values with their own checks")]
struct LoriotCredentials {
    /// `basic` (log in) or `token`.
    #[serde(rename = "type")]
    kind: Option<Value>,
    /// `basic`: the account's user name (TEXT secret allowed).
    username: Option<Value>,
    /// `basic`: the account's password (TEXT secret).
    password: Option<Value>,
    /// `token`: an API token (TEXT secret).
    token: Option<Value>,
}

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn crate::Integration>, Vec<Problem>> {
    let _: LoriotConfig = ctx.parse(&config)?;
    let mut problems = Vec::new();
    let plain = config.plain();
    let server = text(ctx, plain, "server", &mut problems).unwrap_or("eu1");
    if !SERVERS.contains(&server) {
        problems.push(ctx.problem("/server", format!("'{server}' is not one of {}", SERVERS.join(", "))));
    }
    let domain = text(ctx, plain, "domain", &mut problems).unwrap_or("loriot.io");
    let base = match text(ctx, plain, "apiBaseUrl", &mut problems) {
        Some(raw) => url(ctx, "/apiBaseUrl", raw, &mut problems),
        None => url(ctx, "/domain", &format!("https://{server}.{domain}"), &mut problems),
    };
    let downlink_url = match text(ctx, plain, "loriotDownlinkUrl", &mut problems) {
        Some(raw) => url(ctx, "/loriotDownlinkUrl", raw, &mut problems),
        None => format!("{base}/1/rest"),
    };
    // Where the secrets go: the account credentials (and the push auth an output is created
    // with) to the API, the application token to the downlink URL.
    let base_pointer = if plain.get("apiBaseUrl").is_some() { "/apiBaseUrl" } else { "/server" };
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
    let create_output = flag(ctx, plain, "createLoriotOutput", false, &mut problems);
    let send_downlink = flag(ctx, plain, "sendDownlink", false, &mut problems);
    let app_id = text(ctx, plain, "appId", &mut problems).map(str::to_owned);
    if let Some(id) = &app_id {
        if (!is_hex(id) || id.len() > 16) && !veil_core::mentions_placeholder(id) {
            problems.push(
                ctx.problem("/appId", format!("'{id}' is not a LORIOT application id (hex, e.g. BE7A0000)")),
            );
        }
    } else if create_output || send_downlink {
        problems.push(ctx.problem("/appId", "is required with createLoriotOutput or sendDownlink"));
    }
    let http_endpoint = match text(ctx, plain, "httpEndpoint", &mut problems) {
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
    // LORIOT is logged in to (with these) only to create its output: then none may be empty.
    let required = |pointer: &str, problems: &mut Vec<Problem>| match config.template(pointer) {
        Some(_) if create_output && config.filled(pointer).is_none() => {
            problems.push(ctx.problem(pointer, "is required with createLoriotOutput: it is empty"));
            None
        }
        Some(t) => Some(t.clone()),
        None => {
            problems.push(ctx.problem(pointer, "is required"));
            None
        }
    };
    let credentials = match plain.get("credentials") {
        None | Some(Value::Null) => {
            if create_output {
                problems.push(ctx.problem("/credentials", "is required with createLoriotOutput"));
            }
            None
        }
        Some(Value::Object(c)) => match c.get("type").and_then(Value::as_str) {
            Some("basic") => {
                let username = required("/credentials/username", &mut problems);
                let password = required("/credentials/password", &mut problems);
                username.zip(password).map(|(username, password)| Credentials::Basic { username, password })
            }
            Some("token") => {
                required("/credentials/token", &mut problems).map(|token| Credentials::Token { token })
            }
            other => {
                problems.push(ctx.problem(
                    "/credentials/type",
                    format!(
                        "{} is not one of basic, token",
                        other.map_or("nothing".to_owned(), |t| format!("'{t}'"))
                    ),
                ));
                None
            }
        },
        Some(_) => {
            problems.push(ctx.problem("/credentials", "must be an object {type, ...}"));
            None
        }
    };
    let token = match config.template("/token") {
        Some(t) => Some(t.clone()),
        None if send_downlink => {
            problems
                .push(ctx.problem("/token", "is required with sendDownlink (the application access token)"));
            None
        }
        None => None,
    };
    let security = HeaderSecurity::from_config(ctx, &config, &mut problems);
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

/// At most this much of an answer body goes into an error message.
const EXCERPT: usize = 200;

/// The start of an answer body for an error message, masked before it is cut (a cut through a
/// secret would leave a prefix the redactor no longer recognises).
fn excerpt(ctx: &IntegrationCtx<'_>, text: &str) -> String {
    let masked = ctx.redactor.mask(text);
    let mut end = masked.len().min(EXCERPT);
    while !masked.is_char_boundary(end) {
        end -= 1;
    }
    masked[..end].trim().to_owned()
}

/// An `Authorization` value from a secret: marked sensitive, and refused naming `what` when it is
/// not a valid header value.
fn header(value: &SecretString, what: &str) -> Result<reqwest::header::HeaderValue, IntegrationError> {
    veil_core::sensitive_header(value, what).map_err(|e| IntegrationError::new(e.to_string()))
}

impl Loriot {
    async fn login(
        &self,
        ctx: &IntegrationCtx<'_>,
        username: &Template,
        password: &Template,
    ) -> Result<SecretString, IntegrationError> {
        let user = ctx.render(username)?;
        let pwd = ctx.render(password)?;
        let body = json!({ "user": user.expose_secret(), "pwd": pwd.expose_secret() });
        let url = format!("{}/1/pub/login", self.base);
        let response = self
            .client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| IntegrationError::transient(format!("LORIOT login at {url} failed: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let error =
                if status.is_server_error() { IntegrationError::transient } else { IntegrationError::new };
            // The field, not the user name: it may come from a secret.
            return Err(error(format!(
                "LORIOT login with credentials/username and credentials/password refused: HTTP {status} {}",
                excerpt(ctx, &text)
            )));
        }
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("session").and_then(Value::as_str).map(|s| SecretString::from(s.to_owned())))
            .ok_or_else(|| IntegrationError::new("LORIOT login answered without a session"))
    }

    /// The `Authorization` value for the account API; `fresh` logs in again.
    async fn authorization(
        &self,
        ctx: &IntegrationCtx<'_>,
        fresh: bool,
    ) -> Result<SecretString, IntegrationError> {
        match &self.credentials {
            None => Err(IntegrationError::new("credentials are not configured")),
            Some(Credentials::Token { token }) => {
                Ok(format!("Bearer {}", ctx.render(token)?.expose_secret()).into())
            }
            Some(Credentials::Basic { username, password }) => {
                let mut session = self.session.lock().await;
                let generation = self.credentials_generation.load(Ordering::SeqCst);
                let stale = session.as_ref().is_none_or(|(_, g)| *g != generation);
                if fresh || stale {
                    *session = Some((self.login(ctx, username, password).await?, generation));
                }
                let current = session.as_ref().map(|(s, _)| s.expose_secret()).unwrap_or_default();
                Ok(format!("Session {current}").into())
            }
        }
    }

    /// One account API call; with basic credentials a 403 (session expired) logs in again and
    /// retries once.
    async fn call(
        &self,
        ctx: &IntegrationCtx<'_>,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, IntegrationError> {
        let mut fresh = false;
        loop {
            let auth = self.authorization(ctx, fresh).await?;
            let mut request =
                self.client.request(method.clone(), url).header(AUTHORIZATION, header(&auth, "credentials")?);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| IntegrationError::transient(format!("{method} {url} failed: {e}")))?;
            let status = response.status();
            if status == reqwest::StatusCode::FORBIDDEN
                && !fresh
                && matches!(self.credentials, Some(Credentials::Basic { .. }))
            {
                tracing::info!(integration = %ctx.name, "LORIOT session refused; logging in again");
                fresh = true;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                let error = if status.is_server_error() {
                    IntegrationError::transient
                } else {
                    IntegrationError::new
                };
                return Err(error(format!("{method} {url} answered HTTP {status} {}", excerpt(ctx, &text))));
            }
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text)
                .map_err(|e| IntegrationError::new(format!("{method} {url} answered invalid JSON ({e})")));
        }
    }

    /// Makes sure the application has an HTTP push output to `httpEndpoint` carrying the push
    /// authorization of this moment: created when there is none, updated when one has another
    /// authorization (LORIOT would push with it and every uplink would be refused).
    async fn ensure_output(&self, ctx: &IntegrationCtx<'_>) -> Result<(), IntegrationError> {
        let (Some(app_id), Some(endpoint)) = (&self.app_id, &self.http_endpoint) else {
            return Ok(());
        };
        let _one_at_a_time = self.output_lock.lock().await;
        let (app_url, mut outputs) = self.outputs(ctx, app_id).await?;
        let auth = match self.security.expected("authorization") {
            Some(t) => ctx.render(t)?.expose_secret().to_owned(),
            None => String::new(),
        };
        let ours = |o: &Value| pushes_to(o, endpoint);
        if !outputs.iter().any(ours) {
            let body = json!({ "output": "httppush", "osetup": { "url": endpoint, "auth": auth } });
            self.call(ctx, Method::POST, &format!("{app_url}/outputs/httppush"), Some(&body)).await?;
            tracing::info!(integration = %ctx.name, "LORIOT application output created");
            return Ok(());
        }
        let stale = outputs
            .iter()
            .filter(|o| ours(o))
            .any(|o| o.pointer("/osetup/auth").and_then(Value::as_str).unwrap_or_default() != auth.as_str());
        if !stale {
            tracing::info!(integration = %ctx.name, "LORIOT application output exists");
            return Ok(());
        }
        for output in outputs.iter_mut().filter(|o| ours(o)) {
            output["osetup"]["auth"] = json!(auth);
        }
        self.call(ctx, Method::PUT, &format!("{app_url}/outputs"), Some(&json!({ "outputs": outputs })))
            .await?;
        tracing::info!(integration = %ctx.name, "LORIOT application output updated (its authorization was another)");
        Ok(())
    }

    /// The application's URL and its outputs as LORIOT lists them.
    async fn outputs(
        &self,
        ctx: &IntegrationCtx<'_>,
        app_id: &str,
    ) -> Result<(String, Vec<Value>), IntegrationError> {
        let app_url = format!("{}/1/nwk/app/{app_id}", self.base);
        let app = self.call(ctx, Method::GET, &app_url, None).await?;
        let outputs = app.get("outputs").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok((app_url, outputs))
    }

    /// Removes the HTTP push output to `httpEndpoint` from the application.
    async fn remove_output(&self, ctx: &IntegrationCtx<'_>) -> Result<(), IntegrationError> {
        let (Some(app_id), Some(endpoint)) = (&self.app_id, &self.http_endpoint) else {
            return Ok(());
        };
        let _one_at_a_time = self.output_lock.lock().await;
        let (app_url, outputs) = self.outputs(ctx, app_id).await?;
        let kept: Vec<Value> = outputs.iter().filter(|o| !pushes_to(o, endpoint)).cloned().collect();
        if kept.len() == outputs.len() {
            return Ok(());
        }
        self.call(ctx, Method::PUT, &format!("{app_url}/outputs"), Some(&json!({ "outputs": kept }))).await?;
        tracing::info!(integration = %ctx.name, "LORIOT application output removed");
        Ok(())
    }
}

/// Whether a LORIOT application output is an HTTP push to `endpoint`.
fn pushes_to(output: &Value, endpoint: &str) -> bool {
    output.get("output").and_then(Value::as_str) == Some("httppush")
        && output.pointer("/osetup/url").and_then(Value::as_str) == Some(endpoint)
}

/// Checks the fields of a LORIOT uplink that the converter relies on.
fn check_uplink(payload: &Value) -> Result<(), UplinkError> {
    let Value::Object(fields) = payload else {
        return Err(UplinkError::invalid("body: expected a JSON object {cmd, EUI, ...}"));
    };
    match fields.get("cmd") {
        Some(Value::String(_)) => {}
        None => return Err(UplinkError::invalid("cmd: is required")),
        Some(_) => return Err(UplinkError::invalid("cmd: must be a string")),
    }
    match fields.get("EUI") {
        Some(Value::String(eui)) if eui.len() == 16 && is_hex(eui) => {}
        Some(Value::String(_)) => return Err(UplinkError::invalid("EUI: must be 16 hex characters")),
        None => return Err(UplinkError::invalid("EUI: is required")),
        Some(_) => return Err(UplinkError::invalid("EUI: must be a string of 16 hex characters")),
    }
    match fields.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::String(d)) if d.is_empty() || (d.len() % 2 == 0 && is_hex(d)) => {}
        Some(_) => return Err(UplinkError::invalid("data: must be a hex string (two characters per byte)")),
    }
    for key in ["port", "fcnt", "ts"] {
        match fields.get(key) {
            None | Some(Value::Null) => {}
            Some(v) if v.as_u64().is_some() => {}
            Some(_) => return Err(UplinkError::invalid(format!("{key}: must be a non-negative integer"))),
        }
    }
    if let Some(port) = fields.get("port").and_then(Value::as_u64)
        && port > 255
    {
        return Err(UplinkError::invalid("port: must be 0..255"));
    }
    Ok(())
}

/// Turns the downlink converter's output into LORIOT's `tx` command.
fn tx_command(downlink: &Value, app_id: &str) -> Result<Value, IntegrationError> {
    let Value::Object(fields) = downlink else {
        return Err(IntegrationError::new("downlink: expected an object {EUI, port, data, confirmed?}"));
    };
    let eui = match fields.get("EUI") {
        Some(Value::String(eui)) if eui.len() == 16 && is_hex(eui) => eui,
        Some(_) => return Err(IntegrationError::new("downlink EUI: must be 16 hex characters")),
        None => return Err(IntegrationError::new("downlink EUI: is required")),
    };
    let port = match fields.get("port").map(|p| (p, p.as_i64())) {
        Some((_, Some(port))) if PORTS.contains(&port) => port,
        Some((p, _)) => return Err(IntegrationError::new(format!("downlink port: {p} is not in 1..223"))),
        None => return Err(IntegrationError::new("downlink port: is required (1..223)")),
    };
    let data = match fields.get("data") {
        Some(Value::String(d)) if d.len() % 2 == 0 && (d.is_empty() || is_hex(d)) => d,
        Some(_) => return Err(IntegrationError::new("downlink data: must be a hex string")),
        None => return Err(IntegrationError::new("downlink data: is required (hex)")),
    };
    let mut tx = json!({ "cmd": "tx", "EUI": eui, "port": port, "data": data, "appid": app_id });
    match fields.get("confirmed") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(c)) => tx["confirmed"] = json!(c),
        Some(_) => return Err(IntegrationError::new("downlink confirmed: must be true or false")),
    }
    Ok(tx)
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

    fn secret_changed(&self, name: &str) {
        // A new password or username: the next call logs in with the value of that moment.
        if self.login_secrets.iter().any(|n| n == name) {
            self.credentials_generation.fetch_add(1, Ordering::SeqCst);
        }
    }
}
