//! `rest_api_call`: sends the message to a REST endpoint (ThingsBoard's configuration names).
//! URL, headers and credentials may hold secrets, rendered for each message; the response body
//! becomes the outgoing message's data, with `status`, `statusCode` and `statusReason` in metadata.
//! The body is read in chunks up to the `maxResponseBytes` limit; a larger one (by its
//! `Content-Length` or as it streams) routes the message to `Failure` with an error naming the
//! limit. Errors say what happened (connection refused, timeout, TLS, DNS) with their cause chain.
//! With `oauth2` credentials the request carries a token from the token endpoint
//! ([`crate::oauth2`]); a 401 answer drops it and the request is sent once more with a new one.

use std::borrow::Cow;
use std::time::Duration;

use crate::common::{self, Reconnect};
use crate::credentials::{self, ClientCert, RestCredentials, UserPassword};
use crate::oauth2::TokenSource;
use crate::transport::{self, Answer, SendError, Transport};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use veil_core::{
    Accepts, BoxFuture, BuildCtx, CompiledConfig, Failed, FieldSpec, Msg, Node, NodeCtx, NodeDescriptor,
    NodeError, NodeResult, Probe, Problem, Rendered, Secrets, Template, TemplateText, limit_error, relation,
};

pub(crate) static DESCRIPTOR: NodeDescriptor = NodeDescriptor {
    type_name: "rest_api_call",
    description: "Calls a REST endpoint with the message as body; credentials and headers may come from secrets",
    default_config: || {
        json!({
            "restEndpointUrlPattern": "http://localhost/api",
            "requestMethod": "POST",
            "headers": { "Content-Type": "application/json" },
            "readTimeoutMs": 0,
            "credentials": { "type": "anonymous" },
        })
    },
    schema: || schemars::schema_for!(RestConfig).to_value(),
    fields: &[
        FieldSpec::secret_template("/restEndpointUrlPattern"),
        FieldSpec::secret_template("/headers/*"),
        FieldSpec::secret("/credentials/username", Accepts::Text),
        FieldSpec::secret("/credentials/password", Accepts::Text),
        FieldSpec::secret("/credentials/token", Accepts::Text),
        FieldSpec::secret("/credentials/value", Accepts::Text),
        FieldSpec::secret("/credentials/caCert", Accepts::Certificate),
        FieldSpec::secret("/credentials/cert", Accepts::Certificate),
        FieldSpec::secret("/credentials/privateKey", Accepts::PrivateKey),
        FieldSpec::secret("/credentials/clientId", Accepts::Text),
        FieldSpec::secret("/credentials/clientSecret", Accepts::Text),
        FieldSpec::secret_template("/bodyTemplate").json_escaped(),
        FieldSpec::secret_template("/probe/url"),
    ],
    relations: &["Success", "Failure"],
    named_relations: false,
    build,
};

/// Used when `readTimeoutMs` is 0 (ThingsBoard's "no timeout").
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

enum Credentials {
    Anonymous,
    Basic(UserPassword),
    Bearer {
        token: Template,
    },
    ApiKey {
        header: HeaderName,
        value: Template,
    },
    /// Mutual TLS: the CA, client certificate and key (FILE secrets).
    CertPem(ClientCert),
    /// A token from an OAuth 2.0 token endpoint, held while it is fresh.
    OAuth2(Box<TokenSource>),
}

struct RestApiCall {
    /// The client without a client certificate (every credential type but `cert.PEM`), shared
    /// by the tenant's nodes with the same timeout.
    client: std::sync::Arc<Transport>,
    timeout: Duration,
    /// `cert.PEM`: a client built with the certificates of the moment; dropped when one changes.
    tls_client: Reconnect<Transport>,
    method: http::Method,
    url: Template,
    /// The URL parsed once, when it has no placeholder and no message template (most nodes):
    /// parsing it for every message was 3% of a forwarded message's CPU.
    fixed_url: Option<Target>,
    /// Each header's template, with its value made once when it has no placeholder and no message
    /// template (`Content-Type: application/json`).
    headers: Vec<(HeaderName, Template, Option<HeaderValue>)>,
    credentials: Credentials,
    /// Absent: the message data is the body.
    body: Option<Template>,
    /// The node's name, for the audit log of a blocked send.
    node_name: String,
    /// The `maxResponseBytes` limit of the deployment.
    max_response_bytes: usize,
    /// The request a staged rotation tests the credentials with.
    probe: Option<(http::Method, Template)>,
}

/// Where a request goes, from a URL: what hyper sends to, the host and port the destination
/// check judges, and the URL's user info (sent as basic credentials, as browsers do).
#[derive(Clone)]
struct Target {
    uri: http::Uri,
    host: String,
    port: u16,
    /// `user[:password]` of the URL, percent-decoded.
    userinfo: Option<(SecretString, Option<SecretString>)>,
}

impl Target {
    /// An http or https URL; the error says what is wrong with it (the text is not quoted).
    fn parse(text: &str) -> Result<Self, String> {
        let mut url = url::Url::parse(text).map_err(|e| e.to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("the scheme must be http or https, not {}", url.scheme()));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(0);
        let decode = |part: &str| {
            SecretString::from(percent_encoding::percent_decode_str(part).decode_utf8_lossy().into_owned())
        };
        let userinfo = (!url.username().is_empty() || url.password().is_some())
            .then(|| (decode(url.username()), url.password().map(decode)));
        // Neither is sent in the request line; a fragment never leaves the client.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_fragment(None);
        let uri = http::Uri::try_from(url.as_str()).map_err(|e| e.to_string())?;
        Ok(Self { uri, host, port, userinfo })
    }
}

/// `rest_api_call` configuration (ThingsBoard's names). Fields that may hold secrets or message
/// templates are [`TemplateText`]; the compiled configuration keeps their templates.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RestConfig {
    /// The URL; a template, secrets allowed (an API key in the query).
    #[schemars(required)]
    rest_endpoint_url_pattern: Option<TemplateText>,
    /// The HTTP method (default POST).
    #[schemars(with = "Option<Method>", extend("default" = "POST"))]
    request_method: Option<String>,
    /// Header name to value; every value a template, secrets allowed.
    headers: Option<BTreeMap<String, TemplateText>>,
    /// Whole request timeout in milliseconds; 0 or absent: 60 s.
    #[schemars(extend("default" = 0))]
    read_timeout_ms: Option<u64>,
    /// How the request authenticates.
    pub(crate) credentials: Option<RestCredentials>,
    /// The body as a handlebars template (JSON-escaped); absent: the message data.
    #[schemars(extend("format" = "handlebars"))]
    body_template: Option<TemplateText>,
    /// A request that tests the credentials without a message (a staged rotation sends it with
    /// the pending value; its answer must be 2xx). Without it, only mutual TLS is tested.
    probe: Option<RestProbe>,
}

/// The request a staged rotation tests a `rest_api_call`'s credentials with: the node's headers
/// and credentials, no body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RestProbe {
    /// GET or HEAD.
    method: ProbeMethod,
    /// The URL; secrets allowed, message data not (there is no message).
    #[schemars(required)]
    url: Option<TemplateText>,
}

/// The methods a probe may use: ones that change nothing.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[allow(clippy::upper_case_acronyms, reason = "the methods as HTTP spells them")]
enum ProbeMethod {
    GET,
    HEAD,
}

/// The HTTP methods a `rest_api_call` sends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[allow(clippy::upper_case_acronyms, reason = "the methods as HTTP spells them")]
enum Method {
    GET,
    POST,
    PUT,
    PATCH,
    DELETE,
    HEAD,
    OPTIONS,
}

impl Method {
    const ALL: [Method; 7] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ];

    /// The method named `name` (any case).
    fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str().eq_ignore_ascii_case(name))
    }

    fn as_str(self) -> &'static str {
        match self {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
        }
    }

    fn to_http(self) -> http::Method {
        match self {
            Method::GET => http::Method::GET,
            Method::POST => http::Method::POST,
            Method::PUT => http::Method::PUT,
            Method::PATCH => http::Method::PATCH,
            Method::DELETE => http::Method::DELETE,
            Method::HEAD => http::Method::HEAD,
            Method::OPTIONS => http::Method::OPTIONS,
        }
    }
}

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn Node>, Vec<Problem>> {
    static KEYS: std::sync::OnceLock<Vec<(String, Vec<String>)>> = std::sync::OnceLock::new();
    let settings: RestConfig =
        ctx.parse_with(&config, |doc| credentials::settle::<RestConfig>(doc, &KEYS))?;
    let mut problems = Vec::new();
    let url = match &settings.rest_endpoint_url_pattern {
        None => {
            problems.push(ctx.problem("/restEndpointUrlPattern", "is required (a URL)"));
            None
        }
        Some(text) => ctx.bound(&config, text, &mut problems),
    };
    let fixed_url = match url.as_ref().and_then(|t| t.literal()).map(Target::parse) {
        Some(Err(e)) => {
            problems.push(ctx.problem("/restEndpointUrlPattern", format!("is not a valid URL: {e}")));
            None
        }
        // Known at save: every secret the node sends must be allowed there.
        Some(Ok(target)) => {
            problems.extend(ctx.check_destination(
                "/restEndpointUrlPattern",
                config.secret_uses().iter().map(|u| u.name.as_str()),
                &target.host,
                target.port,
            ));
            Some(target)
        }
        None => None,
    };
    let method_name = settings.request_method.as_deref().unwrap_or("POST");
    let method = Method::named(method_name).map(Method::to_http);
    if method.is_none() {
        let names: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
        problems.push(
            ctx.problem("/requestMethod", format!("'{method_name}' is not one of {}", names.join(", "))),
        );
    }
    let timeout = match settings.read_timeout_ms {
        None | Some(0) => DEFAULT_TIMEOUT,
        Some(ms) => Duration::from_millis(ms),
    };
    let mut headers = Vec::new();
    for (name, value) in settings.headers.iter().flatten() {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(header) => headers.extend(ctx.bound(&config, value, &mut problems).map(|t| {
                // Marked sensitive like every rendered header: a value typed in may still be a
                // credential, and HTTP libraries then never print it.
                let fixed = t.literal().and_then(|text| HeaderValue::from_str(text).ok()).map(|mut v| {
                    v.set_sensitive(true);
                    v
                });
                (header, t, fixed)
            })),
            Err(_) => {
                let pointer = format!("/headers/{}", name.replace('~', "~0").replace('/', "~1"));
                problems.push(ctx.problem(&pointer, format!("'{name}' is not a valid header name")))
            }
        }
    }
    let credentials = credentials(ctx, &config, settings.credentials.as_ref(), &mut problems);
    let body = settings.body_template.as_ref().and_then(|text| ctx.bound(&config, text, &mut problems));
    let probe = settings.probe.as_ref().and_then(|probe| {
        let Some(text) = &probe.url else {
            problems.push(ctx.problem("/probe/url", "is required (the URL the probe requests)"));
            return None;
        };
        let url = ctx.bound(&config, text, &mut problems)?;
        if url.uses_message() {
            problems.push(ctx.problem("/probe/url", "may not use message data (a probe has no message)"));
            return None;
        }
        if let Some(literal) = url.literal() {
            match Target::parse(literal) {
                Err(e) => problems.push(ctx.problem("/probe/url", format!("is not a valid URL: {e}"))),
                Ok(parsed) => problems.extend(ctx.check_destination(
                    "/probe/url",
                    config.secret_uses().iter().map(|u| u.name.as_str()),
                    &parsed.host,
                    parsed.port,
                )),
            }
        }
        let method = match probe.method {
            ProbeMethod::GET => http::Method::GET,
            ProbeMethod::HEAD => http::Method::HEAD,
        };
        Some((method, url))
    });
    let client = transport::shared(ctx.tenant.0.as_u128(), timeout);
    match (method, url, credentials, problems.is_empty()) {
        (Some(method), Some(url), Some(credentials), true) => Ok(Box::new(RestApiCall {
            client,
            timeout,
            tls_client: Reconnect::new(),
            method,
            fixed_url,
            url,
            headers,
            credentials,
            body,
            node_name: ctx.node_name.to_owned(),
            max_response_bytes: ctx.limits().max_response_bytes,
            probe,
        })),
        _ => Err(problems),
    }
}

fn credentials(
    ctx: &BuildCtx<'_>,
    config: &CompiledConfig,
    creds: Option<&RestCredentials>,
    problems: &mut Vec<Problem>,
) -> Option<Credentials> {
    match creds {
        None | Some(RestCredentials::Anonymous(_)) => Some(Credentials::Anonymous),
        Some(RestCredentials::Basic(basic)) => basic.bind(ctx, config, problems).map(Credentials::Basic),
        Some(RestCredentials::Bearer(bearer)) => {
            credentials::filled(ctx, config, "bearer", ("token", bearer.token.as_ref()), problems)
                .map(|token| Credentials::Bearer { token })
        }
        Some(RestCredentials::CertPem(cert)) => cert.bind(ctx, config, problems).map(Credentials::CertPem),
        Some(RestCredentials::OAuth2(oauth)) => TokenSource::bind(oauth, ctx, config, problems)
            .map(|source| Credentials::OAuth2(Box::new(source))),
        Some(RestCredentials::ApiKey(key)) => {
            let value = credentials::filled(ctx, config, "apiKey", ("value", key.value.as_ref()), problems);
            let header = key.header.as_deref().unwrap_or("X-API-Key");
            match HeaderName::from_bytes(header.as_bytes()) {
                Ok(header) => value.map(|value| Credentials::ApiKey { header, value }),
                Err(_) => {
                    problems.push(
                        ctx.problem("/credentials/header", format!("'{header}' is not a valid header name")),
                    );
                    None
                }
            }
        }
    }
}

/// A header value from a rendered secret: marked sensitive so HTTP libraries never print it.
fn sensitive_header(value: &impl ExposeSecret<str>, what: &str) -> Result<HeaderValue, NodeError> {
    veil_core::sensitive_header(value, what).map_err(|e| NodeError::new(e.to_string()))
}

impl RestApiCall {
    /// The mutual-TLS client, built from the certificates of the moment on first use and after a
    /// change (connections are pooled per client, so a new certificate means a new client).
    async fn tls_client(&self, secrets: &Secrets, cert: &ClientCert) -> Result<Transport, NodeError> {
        let mut cached = self.tls_client.lock(secrets, |_| true).await;
        let client = cached.get_or_connect(secrets, async { self.build_tls_client(secrets, cert) }).await?;
        Ok(client.clone())
    }

    fn build_tls_client(&self, secrets: &Secrets, tls: &ClientCert) -> Result<Transport, NodeError> {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject as _;
        let pem = |template: &Template| common::pem(secrets, template);
        let mut roots = rustls::RootCertStore::empty();
        for ca in common::pem_certificates(&pem(&tls.ca)?, "credentials/caCert")? {
            roots.add(ca).map_err(|_| NodeError::new("credentials/caCert: not a valid certificate"))?;
        }
        let chain = common::pem_certificates(&pem(&tls.cert)?, "credentials/cert")?;
        let client_v1 = chain.first().is_some_and(|der| common::is_x509_v1(der.as_ref()));
        let key = common::private_key_pem(secrets, tls.password.as_ref(), pem(&tls.key)?)?;
        let key = PrivateKeyDer::from_pem_slice(&key).map_err(|_| {
            NodeError::new("credentials/cert, privateKey: not a PEM certificate and private key")
        })?;
        Transport::with_client_cert(self.timeout, roots, chain, key).map_err(|e| match e {
            rustls::Error::InvalidCertificate(_) if client_v1 => NodeError::new(format!(
                "credentials/cert: the client certificate is X.509 v1, which TLS (rustls) refuses; \
                 issue a v3 certificate (openssl x509 -req with -extfile or -copy_extensions) ({e})"
            )),
            _ => NodeError::new(format!("cannot create the TLS client: {e}")),
        })
    }

    fn render<'s>(
        &'s self,
        ctx: &NodeCtx<'_>,
        template: &'s Template,
        msg: &Msg,
    ) -> Result<Rendered<'s>, NodeError> {
        Ok(ctx.render(template, msg)?)
    }

    /// Where this message goes; the secrets of sealed values opened into the URL are added to
    /// `sealed`.
    fn target(
        &self,
        ctx: &NodeCtx<'_>,
        msg: &Msg,
        sealed: &mut Vec<String>,
    ) -> Result<Cow<'_, Target>, NodeError> {
        if let Some(target) = &self.fixed_url {
            return Ok(Cow::Borrowed(target));
        }
        let url = self.render(ctx, &self.url, msg)?;
        sealed.extend_from_slice(url.sealed_secrets());
        Target::parse(url.expose_secret()).map(Cow::Owned).map_err(|e| {
            if url.sealed_secrets().is_empty() {
                NodeError::new(format!("restEndpointUrlPattern: the rendered URL is not valid: {e}"))
            } else {
                // Why a URL made from a sealed value does not parse tells something of the value.
                NodeError::new(
                    "restEndpointUrlPattern: the rendered URL, which holds a sealed value, is not valid",
                )
            }
        })
    }

    /// Builds the request to `target`; every secret is rendered now, for this message, and the
    /// secrets of sealed values opened into a header or the body are added to `sealed`.
    fn request(
        &self,
        ctx: &NodeCtx<'_>,
        target: &Target,
        msg: &Msg,
        sealed: &mut Vec<String>,
    ) -> Result<http::Request<transport::Body>, NodeError> {
        let mut headers = HeaderMap::with_capacity(self.headers.len() + 2);
        for (name, template, fixed) in &self.headers {
            if let Some(value) = fixed {
                headers.append(name, value.clone());
                continue;
            }
            let value = self.render(ctx, template, msg)?;
            sealed.extend_from_slice(value.sealed_secrets());
            headers.append(name, sensitive_header(&value, &format!("header '{name}'"))?);
        }
        // Any media type is taken (the body becomes the message's data) unless the node says.
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        if let Some((user, pass)) = &target.userinfo {
            let pass = pass.as_ref().map(ExposeSecret::expose_secret);
            headers.append(header::AUTHORIZATION, basic(ctx, user.expose_secret(), pass)?);
        }
        match &self.credentials {
            Credentials::Anonymous => {}
            Credentials::Basic(UserPassword { username, password }) => {
                let (user, pass) = (self.render(ctx, username, msg)?, self.render(ctx, password, msg)?);
                headers.append(
                    header::AUTHORIZATION,
                    basic(ctx, user.expose_secret(), Some(pass.expose_secret()))?,
                );
            }
            Credentials::Bearer { token } => {
                let token = self.render(ctx, token, msg)?;
                let value = SecretString::from(format!("Bearer {}", token.expose_secret()));
                headers.append(header::AUTHORIZATION, sensitive_header(&value, "bearer token")?);
            }
            Credentials::ApiKey { header, value } => {
                let value = self.render(ctx, value, msg)?;
                headers.append(header, sensitive_header(&value, "API key")?);
            }
            // The token is added when the request is sent (a 401 sends it again with another).
            Credentials::CertPem(_) | Credentials::OAuth2(_) => {}
        }
        let body = if matches!(self.method, http::Method::GET | http::Method::HEAD) {
            transport::Body::default()
        } else if let Some(template) = &self.body {
            let body = self.render(ctx, template, msg)?;
            sealed.extend_from_slice(body.sealed_secrets());
            transport::Body::from(body.expose_secret().to_owned())
        } else {
            transport::Body::from(common::payload(msg))
        };
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = target.uri.clone();
        *request.headers_mut() = headers;
        Ok(request)
    }

    async fn call(&self, ctx: &NodeCtx<'_>, msg: Msg) -> NodeResult {
        let client = match &self.credentials {
            Credentials::CertPem(cert) => match self.tls_client(ctx.secrets(), cert).await {
                Ok(client) => Cow::Owned(client),
                Err(e) => return Err(Failed::new(msg, e)),
            },
            // Borrowed: a clone per message would copy the pool's and the connector's handles.
            _ => Cow::Borrowed(&*self.client),
        };
        let mut sealed = Vec::new();
        let target = match self.target(ctx, &msg, &mut sealed) {
            Ok(target) => target,
            Err(e) => return Err(Failed::new(msg, e)),
        };
        let (host, port) = (target.host.as_str(), target.port);
        // A host made from a sealed value is not shown (it may be the value in another form).
        let url_sealed = !sealed.is_empty();
        let request = match self.request(ctx, &target, &msg, &mut sealed) {
            Ok(r) => r,
            Err(e) => return Err(Failed::new(msg, e)),
        };
        // Where this message's request would go, after templating: nothing is sent to a
        // destination one of the node's secrets, or of the sealed values opened into the
        // request, may not reach.
        sealed.sort();
        sealed.dedup();
        // What the request opened is masked from now on (an upstream may echo it back).
        if let Some(name) = sealed.iter().find(|name| !ctx.mask_secret(name)) {
            let error = veil_core::limit_error(
                "maxMaskedSecretsPerChain",
                veil_core::MAX_LATER_SECRETS,
                format!(
                    "the chain's redactor cannot learn secret '{name}' too, so its sealed value is not sent"
                ),
            );
            return Err(Failed::new(msg, NodeError::new(error)));
        }
        let shown = |destination: &str| {
            if url_sealed {
                "the URL's host (made from a sealed value)".to_owned()
            } else {
                ctx.redact(destination)
            }
        };
        if let Err(refused) =
            ctx.secrets().check_destination(host, port, Some(&self.node_name), &sealed, &shown).await
        {
            return Err(Failed::new(msg, NodeError::new(refused.to_string())));
        }
        let sent = match &self.credentials {
            Credentials::OAuth2(source) => self.send_with_token(ctx, &client, source, request).await,
            _ => client.send(request).await.map_err(|e| self.request_failed(e)),
        };
        let mut answer = match sent {
            Ok(r) => r,
            Err(e) => return Err(Failed::new(msg, e)),
        };
        let status = answer.status;
        let reason = status.canonical_reason().unwrap_or("");
        let mut out = msg;
        out.metadata.insert("status".into(), reason.to_owned());
        out.metadata.insert("statusCode".into(), status.as_u16().to_string());
        out.metadata.insert("statusReason".into(), reason.to_owned());
        let limit = self.max_response_bytes;
        let too_large = || limit_error("maxResponseBytes", limit, "the response body is larger");
        if answer.content_length().is_some_and(|n| n > limit as u64) {
            return Err(Failed::new(out, too_large()));
        }
        let mut body = Vec::new();
        loop {
            match answer.chunk().await {
                Ok(Some(chunk)) => {
                    if chunk.len() > limit - body.len() {
                        // Dropping the answer closes the connection; the rest is never read.
                        return Err(Failed::new(out, too_large()));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let error = format!("reading the response failed: {}", self.describe(&e));
                    return Err(Failed::new(out, error));
                }
            }
        }
        out.data = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        // An upstream that echoes the request must not hand a secret's value to the next nodes
        // (a script could transform it): what the chain's secrets are is masked in the data.
        ctx.redact_json(&mut out.data);
        if status.is_success() {
            Ok(vec![(relation::SUCCESS.into(), out)])
        } else {
            Err(Failed::new(out, format!("HTTP {} {reason}", status.as_u16())))
        }
    }

    /// Sends `request` with the `oauth2` token. When the endpoint answers 401 the token is
    /// dropped, a new one requested and the request sent once more; a second 401 is the answer.
    async fn send_with_token(
        &self,
        ctx: &NodeCtx<'_>,
        client: &Transport,
        source: &TokenSource,
        request: http::Request<transport::Body>,
    ) -> Result<Answer, NodeError> {
        let describe = |e: &SendError| self.describe(e);
        let mut retried = false;
        loop {
            let token = source.token(ctx, client, &self.node_name, &describe).await?;
            let mut attempt = transport::copy(&request);
            attempt.headers_mut().insert(header::AUTHORIZATION, token.header.clone());
            let answer = client.send(attempt).await.map_err(|e| self.request_failed(e))?;
            if answer.status != http::StatusCode::UNAUTHORIZED || retried {
                return Ok(answer);
            }
            retried = true;
            source.forget(&token).await;
        }
    }

    fn request_failed(&self, error: SendError) -> NodeError {
        NodeError::new(format!("request failed: {}", self.describe(&error)))
    }

    /// What went wrong, then the error's cause chain (hyper's errors never hold the URL).
    fn describe(&self, error: &SendError) -> String {
        let chain = common::error_chain(error);
        match self.what_happened(error) {
            Some(what) => format!("{what} ({chain})"),
            None => chain,
        }
    }

    fn what_happened(&self, error: &SendError) -> Option<String> {
        let timeout = || format!("no response within readTimeoutMs ({} ms)", self.timeout.as_millis());
        if error.is_timeout() {
            return Some(timeout());
        }
        for cause in common::causes(error) {
            if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
                return Some(match tls {
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                        "TLS handshake failed: the server's certificate is not signed by a trusted CA".into()
                    }
                    rustls::Error::InvalidCertificate(_) => {
                        "TLS handshake failed: the server's certificate was refused".into()
                    }
                    rustls::Error::InvalidMessage(_) => {
                        "TLS handshake failed: the server does not speak TLS on that port".into()
                    }
                    rustls::Error::AlertReceived(_) => "TLS handshake failed: the server refused it".into(),
                    _ => "TLS handshake failed".into(),
                });
            }
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind;
                match io.kind() {
                    ErrorKind::ConnectionRefused => return Some("connection refused".into()),
                    ErrorKind::TimedOut => return Some(timeout()),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::UnexpectedEof => {
                        return Some("the server closed the connection".into());
                    }
                    _ => {}
                }
            }
            if cause.downcast_ref::<common::DnsFailed>().is_some() {
                return Some("cannot resolve the host name".into());
            }
        }
        if error.is_connect() { Some("cannot connect".into()) } else { None }
    }
}

/// `Authorization: Basic base64(user:password)`. The base64 of a short password inside it is not
/// a form of the password alone, so the redactor learns the whole composite.
fn basic(ctx: &NodeCtx<'_>, user: &str, password: Option<&str>) -> Result<HeaderValue, NodeError> {
    use base64::Engine as _;
    let composite = SecretString::from(format!("{user}:{}", password.unwrap_or_default()));
    ctx.also_mask(composite.expose_secret().as_bytes());
    let mut value = String::from("Basic ");
    base64::engine::general_purpose::STANDARD.encode_string(composite.expose_secret(), &mut value);
    sensitive_header(&SecretString::from(value), "basic credentials")
}

impl Node for RestApiCall {
    fn process<'a>(&'a self, ctx: &'a NodeCtx<'a>, msg: Msg) -> BoxFuture<'a, NodeResult> {
        Box::pin(self.call(ctx, msg))
    }

    fn secret_changed(&self, _name: &str) {
        self.tls_client.invalidate();
        if let Credentials::OAuth2(source) = &self.credentials {
            source.invalidate();
        }
    }

    fn reconnects(&self) -> bool {
        matches!(self.credentials, Credentials::CertPem(_) | Credentials::OAuth2(_))
    }

    fn probe<'a>(&'a self, secrets: &'a Secrets, _name: &'a str) -> BoxFuture<'a, Probe> {
        Box::pin(self.probe_with(secrets))
    }
}

impl RestApiCall {
    /// Sends the configured probe (or, for mutual TLS without one, a HEAD to the node's URL) with
    /// `secrets`' credentials: a fresh client, the node's headers, no body. With `oauth2`, a token
    /// requested with `secrets` is the test, and the probe is sent with it.
    async fn probe_with(&self, secrets: &Secrets) -> Probe {
        let tls = match &self.credentials {
            Credentials::CertPem(cert) => Some(cert),
            _ => None,
        };
        let ctx = NodeCtx::new(secrets);
        let oauth = match &self.credentials {
            Credentials::OAuth2(source) => Some(source),
            _ => None,
        };
        let token = match oauth {
            Some(source) => {
                let describe = |e: &SendError| self.describe(e);
                match source.request(&ctx, &self.client, &self.node_name, &describe).await {
                    Ok((_, header)) => Some(header),
                    Err(e) => return Probe::Failed(e.to_string()),
                }
            }
            None => None,
        };
        let (method, url_template) = match (&self.probe, tls) {
            (Some((method, url)), _) => (method.clone(), url),
            (None, Some(_)) if !self.url.uses_message() => (http::Method::HEAD, &self.url),
            (None, Some(_)) => {
                return Probe::not_probed(
                    "restEndpointUrlPattern uses message data: name a URL in /probe to test the certificate",
                );
            }
            (None, None) => {
                return match oauth {
                    Some(source) => {
                        Probe::Ok(format!("the token endpoint {} issued an access token", source.endpoint()))
                    }
                    None => Probe::not_probed(
                        "no probe is configured: name a request in /probe to test credentials",
                    ),
                };
            }
        };
        let client = match tls {
            Some(cert) => match self.build_tls_client(secrets, cert) {
                Ok(client) => client,
                Err(e) => return Probe::Failed(e.to_string()),
            },
            None => Transport::clone(&self.client),
        };
        let msg = Msg::new("PROBE", "veil", Value::Object(Default::default()));
        let mut sealed = Vec::new();
        let target = match ctx.render(url_template, &msg).map(|url| Target::parse(url.expose_secret())) {
            Ok(Ok(target)) => target,
            Ok(Err(e)) => return Probe::Failed(format!("the probe URL is not valid: {e}")),
            Err(e) => return Probe::Failed(e.to_string()),
        };
        let (host, port) = (target.host.clone(), target.port);
        let shown = |destination: &str| destination.to_owned();
        if let Err(refused) = secrets.check_destination(&host, port, Some(&self.node_name), &[], &shown).await
        {
            return Probe::Failed(refused.to_string());
        }
        // The node's headers and credentials; the probe's method and no body.
        let mut request = match self.request(&ctx, &target, &msg, &mut sealed) {
            Ok(request) => request,
            Err(e) => return Probe::Failed(e.to_string()),
        };
        *request.method_mut() = method.clone();
        *request.body_mut() = transport::Body::default();
        if let Some(header) = token {
            request.headers_mut().insert(header::AUTHORIZATION, header);
        }
        let status = match client.send(request).await {
            Ok(answer) => answer.status,
            Err(e) => return Probe::Failed(format!("request failed: {}", self.describe(&e))),
        };
        let to = format!("{method} {host}:{port}");
        match (&self.probe, status.is_success()) {
            (Some(_), true) => Probe::Ok(format!("{to} answered HTTP {}", status.as_u16())),
            (Some(_), false) => Probe::Failed(format!("{to} answered HTTP {}", status.as_u16())),
            // Mutual TLS without a probe: any answer means the handshake was accepted.
            (None, _) => Probe::Ok(format!(
                "TLS handshake with the client certificate accepted by {host}:{port} (HTTP {})",
                status.as_u16()
            )),
        }
    }
}
