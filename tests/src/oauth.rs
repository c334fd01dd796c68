//! [`OAuthServer`]: an OAuth 2.0 authorization server (client credentials grant) and an API that
//! takes only its current token, on loopback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

/// A token request as the token endpoint saw it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// How the client authenticated: `basic`, `body`, `both` or `none`.
    pub auth: &'static str,
    /// The form fields of the body (decoded).
    pub form: HashMap<String, String>,
    /// The headers (names lowercased).
    pub headers: HashMap<String, String>,
    /// Whether the client id and secret were the expected ones (by exactly one method).
    pub accepted: bool,
}

/// A request to the API as it saw it.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// The bearer token it carried, if any.
    pub token: Option<String>,
    /// What the API answered.
    pub status: u16,
}

#[derive(Debug)]
struct State {
    client_id: String,
    client_secret: String,
    /// `expires_in` of the next tokens (`None`: left out of the answer).
    expires_in: Option<u64>,
    delay: Duration,
    /// A fixed answer of the token endpoint instead of a token (status, body).
    fixed: Option<(u16, String)>,
    tokens: Vec<TokenRequest>,
    /// Every token issued, with when it expires on the server's clock.
    issued: Vec<(String, Instant)>,
    reject: usize,
    api: Vec<ApiRequest>,
}

/// A token endpoint (`POST /token`) that checks client credentials sent by HTTP Basic (form-
/// urlencoded id and secret, RFC 6749 §2.3.1) or in the body, never both, and issues a fresh
/// random token each time; and an API (every other path) that answers `200 {"ok": true, "token":
/// <the token it got>}` only to the latest token while it has not expired, else `401`. A wrong
/// client gets `401 {"error": "invalid_client", "error_description": …}` quoting what it sent.
pub struct OAuthServer {
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    state: Arc<Mutex<State>>,
}

fn form(text: &str) -> HashMap<String, String> {
    // The URL parser decodes `application/x-www-form-urlencoded` query strings.
    reqwest::Url::parse(&format!("http://form/?{text}"))
        .map(|url| url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

fn headers_of(headers: &HeaderMap) -> HashMap<String, String> {
    headers.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

impl OAuthServer {
    /// Starts it on a free port for the client `client_id` / `client_secret`; tokens expire in
    /// an hour until told otherwise.
    pub async fn start(client_id: &str, client_secret: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            expires_in: Some(3600),
            delay: Duration::ZERO,
            fixed: None,
            tokens: Vec::new(),
            issued: Vec::new(),
            reject: 0,
            api: Vec::new(),
        }));
        let (token_state, api_state) = (Arc::clone(&state), Arc::clone(&state));
        let app = axum::Router::new()
            .route(
                "/token",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    let state = Arc::clone(&token_state);
                    async move { token(&state, &headers, &body).await }
                }),
            )
            .fallback(move |headers: HeaderMap| {
                let state = Arc::clone(&api_state);
                async move { api(&state, &headers) }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url)
    }

    /// `host:port` of the server, as `allowedDestinations` writes it.
    pub fn host(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    /// The client secret it expects from now on.
    pub fn set_client_secret(&self, secret: &str) {
        self.state.lock().unwrap().client_secret = secret.to_owned();
    }

    /// `expires_in` of the tokens it issues from now on (`None`: the answer has none).
    pub fn expires_in(&self, seconds: Option<u64>) {
        self.state.lock().unwrap().expires_in = seconds;
    }

    /// Answers each token request after `delay` (a slow authorization server).
    pub fn token_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Answers every token request with `status` and `body` instead of a token (`None`: issues
    /// tokens again).
    pub fn answer_token_with(&self, answer: Option<(u16, &str)>) {
        self.state.lock().unwrap().fixed = answer.map(|(status, body)| (status, body.to_owned()));
    }

    /// The API answers its next `n` requests with 401, whatever token they carry.
    pub fn reject_next(&self, n: usize) {
        self.state.lock().unwrap().reject = n;
    }

    /// Every token request so far, in order.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.state.lock().unwrap().tokens.clone()
    }

    /// Every token issued so far, in order.
    pub fn issued(&self) -> Vec<String> {
        self.state.lock().unwrap().issued.iter().map(|(t, _)| t.clone()).collect()
    }

    /// Every API request so far, in order.
    pub fn api_requests(&self) -> Vec<ApiRequest> {
        self.state.lock().unwrap().api.clone()
    }
}

async fn token(state: &Mutex<State>, headers: &HeaderMap, body: &str) -> Response {
    let delay = state.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let fields = form(body);
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decoded = form(&format!("id={id}&secret={secret}"));
            Some((decoded.get("id")?.clone(), decoded.get("secret")?.clone()))
        });
    let in_body = fields.get("client_id").cloned().zip(fields.get("client_secret").cloned());
    let (auth, sent) = match (&basic, &in_body) {
        (Some(pair), None) => ("basic", Some(pair.clone())),
        (None, Some(pair)) => ("body", Some(pair.clone())),
        (Some(_), Some(_)) => ("both", None),
        (None, None) => ("none", None),
    };
    let mut s = state.lock().unwrap();
    let accepted = sent.as_ref().is_some_and(|(id, secret)| *id == s.client_id && *secret == s.client_secret)
        && fields.get("grant_type").map(String::as_str) == Some("client_credentials");
    s.tokens.push(TokenRequest { auth, form: fields, headers: headers_of(headers), accepted });
    if let Some((status, body)) = &s.fixed {
        return (StatusCode::from_u16(*status).unwrap(), body.clone()).into_response();
    }
    if !accepted {
        let (id, secret) = sent.unwrap_or_default();
        let description = format!("client authentication failed ({auth}: id '{id}', secret '{secret}')");
        let body = json!({"error": "invalid_client", "error_description": description});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let token = format!("at-{}-{}", s.issued.len() + 1, uuid::Uuid::new_v4().simple());
    let lifetime = Duration::from_secs(s.expires_in.unwrap_or(3600));
    s.issued.push((token.clone(), Instant::now() + lifetime));
    let mut answer = json!({"access_token": token, "token_type": "Bearer"});
    if let Some(seconds) = s.expires_in {
        answer["expires_in"] = json!(seconds);
    }
    axum::Json(answer).into_response()
}

fn api(state: &Mutex<State>, headers: &HeaderMap) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let mut s = state.lock().unwrap();
    let current = s.issued.last().filter(|(_, expires)| Instant::now() < *expires).map(|(t, _)| t.clone());
    let status = if s.reject > 0 {
        s.reject -= 1;
        401
    } else if token.is_some() && token == current {
        200
    } else {
        401
    };
    s.api.push(ApiRequest { token: token.clone(), status });
    match status {
        200 => axum::Json(json!({"ok": true, "token": token})).into_response(),
        _ => (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_token"}))).into_response(),
    }
}
