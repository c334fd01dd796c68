//! `rest_api_call`'s `oauth2` credentials: an access token from an OAuth 2.0 token endpoint by the
//! client credentials grant (RFC 6749 §4.4), sent as `Authorization: Bearer <token>`.
//!
//! The token lives in memory only, one per node, while it is fresh (`expires_in` less a margin of
//! a tenth of it, at most 60 s), and only for the values it was issued for: the versions of the
//! secrets the client id and secret come from are its key (the token URL, scope and audience are
//! the node's configuration, whose change builds a new node). Messages that need a token while
//! one is being requested wait for that request and share its answer, a token or an error: one
//! request however many messages. The token is masked like a secret (the chain's redactor learns
//! it), and the token request carries the client secret, so its host must be allowed by the
//! secrets it carries, at save and at send.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use veil_core::{BuildCtx, CompiledConfig, NodeCtx, NodeError, Problem, Secrets, Template};

use crate::common;
use crate::credentials::{self, ClientAuthentication, OAuth2};
use crate::transport::{self, SendError, Transport};

/// The largest token endpoint answer read (or `maxResponseBytes` when that is lower).
pub(crate) const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// A token's lifetime when the answer has no `expires_in`.
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest a token is kept, whatever `expires_in` says.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Most characters of a token endpoint's error answer shown in an error.
const MAX_EXCERPT_CHARS: usize = 256;

/// Turns a send's error into words (the node's own: timeouts name `readTimeoutMs`).
pub(crate) type Describe<'a> = &'a (dyn Fn(&SendError) -> String + Sync);

/// The token endpoint of one node, and the token it holds.
pub(crate) struct TokenSource {
    token_url: http::Uri,
    host: String,
    port: u16,
    client_id: Template,
    client_secret: Template,
    scope: Option<String>,
    audience: Option<String>,
    authentication: ClientAuthentication,
    /// The secrets the token request carries (the client id's and the client secret's), sorted.
    carried: Vec<String>,
    max_response_bytes: usize,
    state: tokio::sync::Mutex<State>,
    /// Token requests finished so far: a message that reads it before waiting for `state` knows
    /// whether a request ended while it waited.
    finished: AtomicU64,
    /// A secret it uses changed (a change event): the token is dropped at the next use.
    stale: AtomicBool,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    /// Why the last token request failed, when it did: the answer of the messages that waited
    /// for it.
    failed: Option<String>,
    issued: u64,
}

struct Cached {
    id: u64,
    token: SecretString,
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    /// The versions of the carried secrets it was issued for.
    key: Vec<Option<i64>>,
    fresh_until: Instant,
}

/// A token for one request: its `Authorization` header, and which token it is (a 401 drops
/// exactly that one).
pub(crate) struct Token {
    pub(crate) header: HeaderValue,
    id: u64,
}

/// What a token endpoint issued.
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) token: SecretString,
    pub(crate) lifetime: Duration,
}

impl TokenSource {
    /// The credentials' settings checked at save: the token URL (http or https, its host allowed
    /// by every secret the request carries), the client id and secret filled, scope and audience
    /// not blank. `None` when one is wrong; the problems say which.
    pub(crate) fn bind(
        settings: &OAuth2,
        ctx: &BuildCtx<'_>,
        config: &CompiledConfig,
        problems: &mut Vec<Problem>,
    ) -> Option<Self> {
        let kind = "oauth2";
        let client_id =
            credentials::filled(ctx, config, kind, ("clientId", settings.client_id.as_ref()), problems);
        let client_secret = credentials::filled(
            ctx,
            config,
            kind,
            ("clientSecret", settings.client_secret.as_ref()),
            problems,
        );
        let mut optional = |field: &str, value: &Option<String>| match value {
            Some(text) if text.trim().is_empty() => {
                problems.push(ctx.problem(
                    &format!("/credentials/{field}"),
                    format!("is empty: leave the field out to send no {field}"),
                ));
                Err(())
            }
            other => Ok(other.clone()),
        };
        let (scope, audience) =
            (optional("scope", &settings.scope), optional("audience", &settings.audience));
        let authentication =
            match settings.client_authentication.as_deref() {
                None => Some(ClientAuthentication::Basic),
                Some(name) => ClientAuthentication::named(name).or_else(|| {
                    let names = ClientAuthentication::NAMES.join(", ");
                    problems.push(ctx.problem(
                        "/credentials/clientAuthentication",
                        format!("'{name}' is not one of {names}"),
                    ));
                    None
                }),
            };
        let mut carried: Vec<String> = [&client_id, &client_secret]
            .into_iter()
            .flatten()
            .flat_map(|t| t.secret_names().map(str::to_owned))
            .collect();
        carried.sort();
        carried.dedup();
        let token_url = token_url(settings.token_url.as_deref()).map_err(|message| {
            problems.push(ctx.problem("/credentials/tokenUrl", message));
        });
        let (token_url, host, port) = token_url.ok()?;
        // Known at save: the client secret goes there.
        let refused =
            ctx.check_destination("/credentials/tokenUrl", carried.iter().map(String::as_str), &host, port);
        if let Some(problem) = refused {
            problems.push(problem);
            return None;
        }
        Some(Self {
            token_url,
            host,
            port,
            client_id: client_id?,
            client_secret: client_secret?,
            scope: scope.ok()?,
            audience: audience.ok()?,
            authentication: authentication?,
            carried,
            max_response_bytes: ctx.limits().max_response_bytes.min(MAX_TOKEN_RESPONSE_BYTES),
            state: tokio::sync::Mutex::new(State::default()),
            finished: AtomicU64::new(0),
            stale: AtomicBool::new(false),
        })
    }

    /// `host:port` of the token endpoint, as errors name it.
    pub(crate) fn endpoint(&self) -> String {
        veil_core::destination(&self.host, self.port)
    }

    /// A secret it uses changed: the token is dropped at the next use.
    pub(crate) fn invalidate(&self) {
        self.stale.store(true, Ordering::SeqCst);
    }

    /// The versions of the carried secrets now.
    fn key(&self, secrets: &Secrets) -> Vec<Option<i64>> {
        secrets
            .names()
            .iter()
            .zip(secrets.versions())
            .filter(|(name, _)| self.carried.binary_search(name).is_ok())
            .map(|(_, version)| version)
            .collect()
    }

    /// The token to send now: the held one while it is fresh and was issued for the secrets'
    /// current versions, else a new one (one request for every message waiting for it).
    pub(crate) async fn token(
        &self,
        ctx: &NodeCtx<'_>,
        client: &Transport,
        node: &str,
        describe: Describe<'_>,
    ) -> Result<Token, NodeError> {
        let finished = self.finished.load(Ordering::SeqCst);
        let mut state = self.state.lock().await;
        if self.stale.swap(false, Ordering::SeqCst) {
            state.cached = None;
        }
        // The versions before requesting: a change during the request shows at the next use.
        let key = self.key(ctx.secrets());
        if let Some(cached) = &state.cached
            && cached.key == key
            && Instant::now() < cached.fresh_until
        {
            // Kept among the redactor's most recent values while it is in use.
            ctx.also_mask(cached.token.expose_secret().as_bytes());
            return Ok(Token { header: cached.header.clone(), id: cached.id });
        }
        if self.finished.load(Ordering::SeqCst) != finished
            && let Some(error) = &state.failed
        {
            // The request this message waited for failed: that is its answer too.
            return Err(NodeError::new(error.clone()));
        }
        state.cached = None;
        let requested = Instant::now();
        let result = self.request(ctx, client, node, describe).await;
        self.finished.fetch_add(1, Ordering::SeqCst);
        let (issued, header) = match result {
            Ok(issued) => issued,
            Err(e) => {
                state.failed = Some(e.to_string());
                return Err(e);
            }
        };
        state.failed = None;
        state.issued += 1;
        let id = state.issued;
        state.cached = Some(Cached {
            id,
            header: header.clone(),
            token: issued.token,
            key,
            fresh_until: requested + fresh_for(issued.lifetime),
        });
        Ok(Token { header, id })
    }

    /// Drops `token` (the endpoint answered 401 to it) unless another replaced it already.
    pub(crate) async fn forget(&self, token: &Token) {
        let mut state = self.state.lock().await;
        if state.cached.as_ref().is_some_and(|c| c.id == token.id) {
            state.cached = None;
        }
    }

    /// Requests a token with the secrets of `ctx` now (nothing is kept: a probe's pending value
    /// gets a token of its own), and its `Authorization` header. The redactor learns it.
    pub(crate) async fn request(
        &self,
        ctx: &NodeCtx<'_>,
        client: &Transport,
        node: &str,
        describe: Describe<'_>,
    ) -> Result<(Issued, HeaderValue), NodeError> {
        let at = self.endpoint();
        let secrets = ctx.secrets();
        let shown = |destination: &str| destination.to_owned();
        if let Err(refused) =
            secrets.check_destination_of(&self.carried, &self.host, self.port, Some(node), &shown).await
        {
            return Err(NodeError::new(format!("oauth2: no token requested: {refused}")));
        }
        let id = common::setting(secrets, &self.client_id)?;
        let secret = common::setting(secrets, &self.client_secret)?;
        // The form is made apart: its serializer may not be held across an await.
        let (body, authorization) = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if let Some(scope) = &self.scope {
                form.append_pair("scope", scope);
            }
            if let Some(audience) = &self.audience {
                form.append_pair("audience", audience);
            }
            let authorization = match self.authentication {
                ClientAuthentication::Basic => {
                    let pair = basic_pair(id.expose_secret(), secret.expose_secret());
                    // Its base64 does not contain a short secret's own base64.
                    ctx.also_mask(pair.expose_secret().as_bytes());
                    let value =
                        SecretString::from(format!("Basic {}", STANDARD.encode(pair.expose_secret())));
                    Some(sensitive(&value, "oauth2 client credentials")?)
                }
                ClientAuthentication::Body => {
                    form.append_pair("client_id", id.expose_secret());
                    form.append_pair("client_secret", secret.expose_secret());
                    None
                }
            };
            (form.finish(), authorization)
        };
        let mut request = http::Request::new(transport::Body::from(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.token_url.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(authorization) = authorization {
            headers.insert(AUTHORIZATION, authorization);
        }
        let mut response = client.send(request).await.map_err(|e| {
            NodeError::new(format!("oauth2: the token request to {at} failed: {}", describe(&e)))
        })?;
        let status = response.status;
        let limit = self.max_response_bytes;
        let too_large = || {
            NodeError::new(format!(
                "oauth2: the token endpoint {at} answered with more than {limit} bytes \
                 (the most a token response may have)"
            ))
        };
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if chunk.len() > limit - body.len() => return Err(too_large()),
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    return Err(NodeError::new(format!(
                        "oauth2: reading the token endpoint {at}'s answer failed: {}",
                        describe(&e)
                    )));
                }
            }
        }
        if !status.is_success() {
            let reason = status.canonical_reason().map(|r| format!(" {r}")).unwrap_or_default();
            return Err(NodeError::new(format!(
                "oauth2: the token endpoint {at} answered HTTP {}{reason}{}",
                status.as_u16(),
                excerpt(ctx, &body)
            )));
        }
        let issued = parse_token_response(&body).map_err(|problem| {
            NodeError::new(format!("oauth2: the token endpoint {at} answered {problem}"))
        })?;
        ctx.also_mask(issued.token.expose_secret().as_bytes());
        let bearer = SecretString::from(format!("Bearer {}", issued.token.expose_secret()));
        let header = sensitive(&bearer, &format!("oauth2: the access token from {at}"))?;
        Ok((issued, header))
    }
}

fn sensitive(value: &SecretString, what: &str) -> Result<HeaderValue, NodeError> {
    veil_core::sensitive_header(value, what).map_err(|e| NodeError::new(e.to_string()))
}

/// The token URL, its host and port: http or https, with a host, without user info.
fn token_url(text: Option<&str>) -> Result<(http::Uri, String, u16), String> {
    let text = match text.map(str::trim) {
        None => return Err("is required for 'oauth2' credentials (the token endpoint's URL)".into()),
        Some("") => return Err("is required for 'oauth2' credentials: it is empty".into()),
        Some(text) => text,
    };
    let mut url = url::Url::parse(text).map_err(|e| format!("is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must be an http or https URL, not {}:", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("may not hold user info (the client authenticates with clientId and clientSecret)".into());
    }
    // As the node's own URL is checked: the host as the URL writes it.
    let host = match url.host_str() {
        Some(host) if !host.is_empty() => host.to_owned(),
        _ => return Err("has no host".into()),
    };
    let port = url.port_or_known_default().unwrap_or(0);
    // A fragment never leaves the client.
    url.set_fragment(None);
    let uri = http::Uri::try_from(url.as_str()).map_err(|e| format!("is not a valid URL: {e}"))?;
    Ok((uri, host, port))
}

/// `client_id:client_secret`, each form-urlencoded first (RFC 6749 §2.3.1), for HTTP Basic.
fn basic_pair(id: &str, secret: &str) -> SecretString {
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    SecretString::from(format!("{}:{}", encode(id), encode(secret)))
}

/// How long a token of `lifetime` is used: until a tenth of its life, at most 60 s, is left.
pub(crate) fn fresh_for(lifetime: Duration) -> Duration {
    lifetime - (lifetime / 10).min(Duration::from_secs(60))
}

/// `: <the answer>` for an error answer, masked with the chain's secrets (the client secret and
/// every token) before it is cut to [`MAX_EXCERPT_CHARS`] on one line; empty for an empty one.
fn excerpt(ctx: &NodeCtx<'_>, body: &[u8]) -> String {
    let masked = ctx.redact(&String::from_utf8_lossy(body));
    let words: Vec<&str> =
        masked.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()).collect();
    let line = words.join(" ");
    if line.is_empty() {
        return String::new();
    }
    let mut cut: String = line.chars().take(MAX_EXCERPT_CHARS).collect();
    if cut.len() < line.len() {
        cut.push('…');
    }
    format!(": {cut}")
}

/// A token endpoint's successful answer read (RFC 6749 §5.1): `access_token` (a string),
/// `token_type` Bearer (any case) or absent, `expires_in` seconds (a number, or digits in a
/// string as some providers send it; absent: [`DEFAULT_LIFETIME`]; at most [`MAX_LIFETIME`]). The
/// error says what is wrong without quoting the answer.
pub(crate) fn parse_token_response(body: &[u8]) -> Result<Issued, String> {
    let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(body) else {
        return Err(format!("with a body that is not a JSON object ({} bytes)", body.len()));
    };
    let token = match answer.remove("access_token") {
        None | Some(Value::Null) => return Err("without access_token".into()),
        Some(Value::String(token)) if token.trim().is_empty() => {
            return Err("with an empty access_token".into());
        }
        Some(Value::String(token)) => SecretString::from(token),
        Some(_) => return Err("with an access_token that is not a string".into()),
    };
    match answer.get("token_type") {
        None | Some(Value::Null) => {}
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(kind)) => {
            let shown: String = kind.chars().filter(|c| !c.is_control()).take(32).collect();
            return Err(format!("with token_type '{shown}' (only Bearer tokens are supported)"));
        }
        Some(_) => return Err("with a token_type that is not a string".into()),
    }
    let seconds = match answer.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => return Err("with an expires_in that is not a number of seconds".into()),
    };
    let lifetime = match (answer.get("expires_in"), seconds) {
        (None | Some(Value::Null), _) => DEFAULT_LIFETIME,
        (_, Some(seconds)) => Duration::from_secs(seconds).min(MAX_LIFETIME),
        (_, None) => return Err("with an expires_in that is not a number of seconds".into()),
    };
    Ok(Issued { token, lifetime })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issued(answer: Value) -> Result<Issued, String> {
        parse_token_response(answer.to_string().as_bytes())
    }

    #[test]
    fn a_token_answer_is_read_with_its_lifetime() {
        let token =
            issued(json!({"access_token": "t0k", "token_type": "Bearer", "expires_in": 120})).unwrap();
        assert_eq!((token.token.expose_secret(), token.lifetime), ("t0k", Duration::from_secs(120)));
        // Any case of Bearer, or none; seconds as digits in a string; a fraction rounded down.
        for answer in [
            json!({"access_token": "t", "token_type": "bearer", "expires_in": "300"}),
            json!({"access_token": "t", "token_type": "BEARER", "expires_in": 300.9}),
            json!({"access_token": "t", "expires_in": 300, "scope": "read", "refresh_token": "r"}),
        ] {
            assert_eq!(issued(answer.clone()).unwrap().lifetime, Duration::from_secs(300), "{answer}");
        }
        // Without expires_in: an hour; never more than a day.
        assert_eq!(issued(json!({"access_token": "t"})).unwrap().lifetime, DEFAULT_LIFETIME);
        assert_eq!(
            issued(json!({"access_token": "t", "expires_in": null})).unwrap().lifetime,
            DEFAULT_LIFETIME
        );
        assert_eq!(
            issued(json!({"access_token": "t", "expires_in": u64::MAX})).unwrap().lifetime,
            MAX_LIFETIME
        );
        assert_eq!(issued(json!({"access_token": "t", "expires_in": 0})).unwrap().lifetime, Duration::ZERO);
    }

    #[test]
    fn a_wrong_token_answer_says_what_is_wrong_without_quoting_it() {
        let cases = [
            (json!({"token_type": "Bearer"}), "without access_token"),
            (json!({"access_token": null}), "without access_token"),
            (json!({"access_token": "  "}), "with an empty access_token"),
            (json!({"access_token": 42}), "with an access_token that is not a string"),
            (
                json!({"access_token": "t", "token_type": "mac"}),
                "with token_type 'mac' (only Bearer tokens are supported)",
            ),
            (json!({"access_token": "t", "token_type": 1}), "with a token_type that is not a string"),
            (
                json!({"access_token": "t", "expires_in": -5}),
                "with an expires_in that is not a number of seconds",
            ),
            (
                json!({"access_token": "t", "expires_in": "soon"}),
                "with an expires_in that is not a number of seconds",
            ),
            (
                json!({"access_token": "t", "expires_in": [1]}),
                "with an expires_in that is not a number of seconds",
            ),
            (json!(["access_token"]), "with a body that is not a JSON object (16 bytes)"),
        ];
        for (answer, says) in cases {
            assert_eq!(issued(answer.clone()).unwrap_err(), says, "{answer}");
        }
        let not_json = parse_token_response(b"access_token=secret-t0ken&token_type=bearer").unwrap_err();
        assert_eq!(not_json, "with a body that is not a JSON object (43 bytes)");
        // A long token_type is cut, control characters dropped.
        let long = issued(json!({"access_token": "t", "token_type": format!("x\n{}", "y".repeat(100))}))
            .unwrap_err();
        assert_eq!(long, format!("with token_type 'x{}' (only Bearer tokens are supported)", "y".repeat(31)));
    }

    #[test]
    fn a_token_is_used_until_a_tenth_of_its_life_at_most_a_minute_is_left() {
        let secs = Duration::from_secs;
        assert_eq!(fresh_for(secs(3600)), secs(3540));
        assert_eq!(fresh_for(secs(600)), secs(540));
        assert_eq!(fresh_for(secs(2)), Duration::from_millis(1800));
        assert_eq!(fresh_for(Duration::ZERO), Duration::ZERO);
        assert_eq!(fresh_for(MAX_LIFETIME), MAX_LIFETIME - secs(60));
    }

    #[test]
    fn basic_client_credentials_are_form_urlencoded_first() {
        // RFC 6749 §2.3.1: the id and secret are form-urlencoded, then joined by a colon.
        assert_eq!(
            basic_pair("my client", "s3:cr/t+&é").expose_secret(),
            "my+client:s3%3Acr%2Ft%2B%26%C3%A9"
        );
        assert_eq!(basic_pair("id", "plain").expose_secret(), "id:plain");
    }

    #[test]
    fn the_token_url_is_http_or_https_with_a_host() {
        let (url, host, port) = token_url(Some("https://auth.example.com/oauth/token?x=1")).unwrap();
        assert_eq!((url.path(), host.as_str(), port), ("/oauth/token", "auth.example.com", 443));
        let (_, host, port) = token_url(Some("http://[::1]:8080/token")).unwrap();
        assert_eq!((host.as_str(), port), ("[::1]", 8080));
        for (text, says) in [
            (None, "is required for 'oauth2' credentials (the token endpoint's URL)"),
            (Some(" "), "is required for 'oauth2' credentials: it is empty"),
            (Some("auth.example.com/token"), "is not a valid URL: relative URL without a base"),
            (Some("ftp://auth.example.com/token"), "must be an http or https URL, not ftp:"),
            (
                Some("https://user:pw@auth.example.com/token"),
                "may not hold user info (the client authenticates with clientId and clientSecret)",
            ),
        ] {
            assert_eq!(token_url(text).unwrap_err(), says, "{text:?}");
        }
    }

    #[test]
    fn oauth2_credentials_parse_with_their_pointers() {
        use crate::rest_api_call::RestConfig;
        let parse = |credentials: Value| {
            veil_core::parse_config::<RestConfig>(
                &json!({ "credentials": credentials }),
                "/nodes/0/configuration",
            )
        };
        let config = parse(json!({"type": "oauth2", "tokenUrl": "https://a/t", "clientId": "c",
            "clientSecret": "$<secret:s>", "scope": "read write", "audience": "api", "clientAuthentication": "body"}))
        .unwrap();
        let Some(credentials::RestCredentials::OAuth2(oauth)) = &config.credentials else {
            panic!("{config:?}")
        };
        assert_eq!(oauth.client_authentication.as_deref(), Some("body"));
        assert_eq!((oauth.scope.as_deref(), oauth.audience.as_deref()), (Some("read write"), Some("api")));
        let problems =
            parse(json!({"type": "oauth2", "tokenUrl": "https://a/t", "client_secret": "x"})).unwrap_err();
        assert_eq!(problems[0].path, "/nodes/0/configuration/credentials/client_secret", "{problems:?}");
        assert!(
            problems[0]
                .message
                .starts_with("unknown field (expected one of tokenUrl, clientId, clientSecret"),
            "{problems:?}"
        );
        // A value of the wrong kind is named at the credentials (serde reads a tagged enum's
        // variant from a buffer, without the path inside it), as for every credentials type.
        let problems = parse(json!({"type": "oauth2", "tokenUrl": 443})).unwrap_err();
        assert_eq!(problems[0].message, "invalid type: an integer, expected a string", "{problems:?}");
    }
}
