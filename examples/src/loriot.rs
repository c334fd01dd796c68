//! A LORIOT network-server emulator: a real HTTP server on loopback that implements the slice of
//! LORIOT's API an integration needs — session login, the application's HTTP-push outputs, the
//! downlink REST endpoint — plus a few `/emulator/*` controls for trying it by hand.
//!
//! Account API (`/1/nwk/...`) requests authenticate with `Authorization: Session <session>` (from
//! `POST /1/pub/login`) or `Authorization: Bearer <api_token>`; an unknown or expired session gets
//! 403, as LORIOT answers. Downlinks (`POST /1/rest`) need `Authorization: Bearer <app_token>`.
//! Errors are always `{"error": "<text>"}`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The account and application the emulator serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorConfig {
    /// Account user name accepted by `POST /1/pub/login`.
    pub username: String,
    /// Account password accepted by `POST /1/pub/login`.
    pub password: String,
    /// Token accepted as `Authorization: Bearer <api_token>` on the account API.
    pub api_token: String,
    /// The one application's id (hex, e.g. `BE7A0000`).
    pub app_id: String,
    /// The application's access token, required as `Authorization: Bearer <app_token>` by `/1/rest`.
    pub app_token: String,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            username: "veil-user".into(),
            password: "loriot-pass-1".into(),
            api_token: "loriot-api-token".into(),
            app_id: "BE7A0000".into(),
            app_token: "app-token-1".into(),
        }
    }
}

/// One login attempt as the emulator saw it.
#[derive(Debug, Clone)]
pub struct Login {
    /// The `user` field sent.
    pub user: String,
    /// The `pwd` field sent.
    pub password: String,
    /// Whether the credentials matched (a session was issued).
    pub ok: bool,
}

/// One accepted downlink (`POST /1/rest`).
#[derive(Debug, Clone)]
pub struct Downlink {
    /// The full `Authorization` header value the request carried.
    pub authorization: String,
    /// The request body as received.
    pub body: Value,
}

#[derive(Debug)]
struct Inner {
    config: EmulatorConfig,
    sessions: HashSet<String>,
    logins: Vec<Login>,
    outputs: Vec<Value>,
    downlinks: Vec<Downlink>,
    requests: Vec<String>,
    fcnt: u64,
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    client: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Emulator {
    /// Starts the emulator on `127.0.0.1` with an OS-chosen port.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts the emulator on `addr`.
    pub async fn start_on(addr: SocketAddr, config: EmulatorConfig) -> std::io::Result<Emulator> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                config,
                sessions: HashSet::new(),
                logins: Vec::new(),
                outputs: Vec::new(),
                downlinks: Vec::new(),
                requests: Vec::new(),
                fcnt: 0,
            }),
            client,
        });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("loriot emulator: server error: {e}");
            }
        });
        Ok(Emulator { addr, shared, task })
    }

    /// The base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the account password; sessions already issued stay valid.
    pub fn set_password(&self, password: &str) {
        self.shared.lock().config.password = password.to_owned();
    }

    /// Changes the application token `/1/rest` requires.
    pub fn set_app_token(&self, token: &str) {
        self.shared.lock().config.app_token = token.to_owned();
    }

    /// Invalidates every session issued so far: their next use gets 403.
    pub fn expire_sessions(&self) {
        self.shared.lock().sessions.clear();
    }

    /// Every well-formed login attempt, in order (failed ones included).
    pub fn logins(&self) -> Vec<Login> {
        self.shared.lock().logins.clone()
    }

    /// The application's outputs as stored (the bodies that were posted).
    pub fn outputs(&self) -> Vec<Value> {
        self.shared.lock().outputs.clone()
    }

    /// Accepted downlinks, in order.
    pub fn downlinks(&self) -> Vec<Downlink> {
        self.shared.lock().downlinks.clone()
    }

    /// Every request received, as `METHOD /path`, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// POSTs `uplink` to every HTTP-push output's `osetup.url`, with `Authorization: <osetup.auth>`
    /// (no header when `auth` is empty). Returns `(url, status)` per output, in output order; status
    /// 0 means the request failed (connection error, timeout).
    pub async fn push_uplink(&self, uplink: Value) -> Vec<(String, u16)> {
        push(&self.shared, &uplink).await
    }
}

async fn push(shared: &Shared, uplink: &Value) -> Vec<(String, u16)> {
    let targets: Vec<(String, String)> = shared
        .lock()
        .outputs
        .iter()
        .filter(|o| o["output"] == "httppush")
        .filter_map(|o| {
            let url = o["osetup"]["url"].as_str()?.to_owned();
            let auth = o["osetup"]["auth"].as_str().unwrap_or_default().to_owned();
            Some((url, auth))
        })
        .collect();
    let mut results = Vec::with_capacity(targets.len());
    for (url, auth) in targets {
        let mut request = shared.client.post(&url).json(uplink);
        if !auth.is_empty() {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let status = match request.send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        results.push((url, status));
    }
    results
}

fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/1/pub/login", post(login))
        .route("/1/nwk/app/{app_id}", get(get_app))
        .route("/1/nwk/app/{app_id}/outputs/httppush", post(add_output))
        .route("/1/nwk/app/{app_id}/outputs", axum::routing::put(replace_outputs))
        .route("/1/rest", post(downlink))
        .route("/emulator/expire-sessions", post(expire_sessions))
        .route("/emulator/uplink", post(emulator_uplink))
        .route("/emulator/downlinks", get(list_downlinks))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async { error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
        .layer(middleware::from_fn_with_state(shared.clone(), record_request))
        .with_state(shared)
}

async fn record_request(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let line = format!("{} {}", request.method(), request.uri().path());
    shared.lock().requests.push(line);
    next.run(request).await
}

fn error(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "error": text }))).into_response()
}

/// Parses a JSON object body; the error text goes in a 400.
fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, &'static str> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("body must be a JSON object"),
        Err(_) => Err("body is not valid JSON"),
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()
}

/// Account API auth: a live session or the API token; anything else is 403.
fn account_ok(headers: &HeaderMap, inner: &Inner) -> bool {
    match authorization(headers) {
        Some(value) => {
            if let Some(session) = value.strip_prefix("Session ") {
                inner.sessions.contains(session.trim())
            } else if let Some(token) = value.strip_prefix("Bearer ") {
                token.trim() == inner.config.api_token
            } else {
                false
            }
        }
        None => false,
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn login(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let map = match parse_object(&body) {
        Ok(map) => map,
        Err(text) => return error(StatusCode::BAD_REQUEST, text),
    };
    let (Some(user), Some(pwd)) =
        (map.get("user").and_then(Value::as_str), map.get("pwd").and_then(Value::as_str))
    else {
        return error(StatusCode::BAD_REQUEST, "user and pwd are required strings");
    };
    let mut inner = shared.lock();
    let ok = user == inner.config.username && pwd == inner.config.password;
    inner.logins.push(Login { user: user.to_owned(), password: pwd.to_owned(), ok });
    if !ok {
        return error(StatusCode::UNAUTHORIZED, "invalid credentials");
    }
    let session = uuid::Uuid::new_v4().simple().to_string();
    inner.sessions.insert(session.clone());
    Json(json!({ "session": session })).into_response()
}

async fn get_app(
    State(shared): State<Arc<Shared>>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let inner = shared.lock();
    if !account_ok(&headers, &inner) {
        return error(StatusCode::FORBIDDEN, "invalid or expired session");
    }
    if !app_id.eq_ignore_ascii_case(&inner.config.app_id) {
        return error(StatusCode::NOT_FOUND, "application not found");
    }
    Json(json!({ "_id": inner.config.app_id, "name": "Veil test app", "outputs": inner.outputs }))
        .into_response()
}

async fn add_output(
    State(shared): State<Arc<Shared>>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = shared.lock();
    let map = match app_request(&inner, &app_id, &headers, &body) {
        Ok(map) => map,
        Err((status, text)) => return error(status, text),
    };
    if map.get("output").and_then(Value::as_str) != Some("httppush") {
        return error(StatusCode::BAD_REQUEST, "output must be \"httppush\"");
    }
    let url = map.get("osetup").and_then(|o| o.get("url")).and_then(Value::as_str);
    if !url.is_some_and(|u| u.starts_with("http://") || u.starts_with("https://")) {
        return error(StatusCode::BAD_REQUEST, "osetup.url must be an http:// or https:// URL");
    }
    inner.outputs.push(Value::Object(map));
    Json(json!({ "outputs": inner.outputs })).into_response()
}

/// An account API request on the application: the session or token, the app id and a JSON
/// object body checked, or the answer refusing it.
fn app_request(
    inner: &Inner,
    app_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Map<String, Value>, (StatusCode, &'static str)> {
    if !account_ok(headers, inner) {
        return Err((StatusCode::FORBIDDEN, "invalid or expired session"));
    }
    if !app_id.eq_ignore_ascii_case(&inner.config.app_id) {
        return Err((StatusCode::NOT_FOUND, "application not found"));
    }
    parse_object(body).map_err(|text| (StatusCode::BAD_REQUEST, text))
}

/// `PUT /1/nwk/app/{appid}/outputs {"outputs": [...]}`: replaces the application's outputs (how
/// LORIOT's API changes or removes one).
async fn replace_outputs(
    State(shared): State<Arc<Shared>>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = shared.lock();
    let map = match app_request(&inner, &app_id, &headers, &body) {
        Ok(map) => map,
        Err((status, text)) => return error(status, text),
    };
    let Some(Value::Array(outputs)) = map.get("outputs") else {
        return error(StatusCode::BAD_REQUEST, "outputs must be an array");
    };
    let valid = outputs.iter().all(|o| {
        o.get("output").and_then(Value::as_str).is_some()
            && o.pointer("/osetup/url").and_then(Value::as_str).is_some_and(|u| u.starts_with("http"))
    });
    if !valid {
        return error(StatusCode::BAD_REQUEST, "each output needs output and osetup.url");
    }
    inner.outputs = outputs.clone();
    Json(json!({ "outputs": inner.outputs })).into_response()
}

/// Checks a `/1/rest` downlink body; the error names the offending field.
fn validate_downlink(map: &serde_json::Map<String, Value>, app_id: &str) -> Result<(), &'static str> {
    if map.get("cmd").and_then(Value::as_str) != Some("tx") {
        return Err("cmd must be \"tx\"");
    }
    let eui = map.get("EUI").and_then(Value::as_str);
    if !eui.is_some_and(|e| e.len() == 16 && is_hex(e)) {
        return Err("EUI must be 16 hex characters");
    }
    let port = map.get("port").and_then(Value::as_u64);
    if !port.is_some_and(|p| (1..=223).contains(&p)) {
        return Err("port must be an integer in 1..=223");
    }
    let data = map.get("data").and_then(Value::as_str);
    if !data.is_some_and(|d| d.len() % 2 == 0 && is_hex(d)) {
        return Err("data must be a hex string of even length");
    }
    let appid = map.get("appid").and_then(Value::as_str);
    if !appid.is_some_and(|a| a.eq_ignore_ascii_case(app_id)) {
        return Err("appid must be the application id");
    }
    if map.get("confirmed").is_some_and(|c| !c.is_boolean()) {
        return Err("confirmed must be a boolean");
    }
    Ok(())
}

async fn downlink(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = shared.lock();
    let authorization = authorization(&headers).unwrap_or_default().to_owned();
    if authorization != format!("Bearer {}", inner.config.app_token) {
        return error(StatusCode::FORBIDDEN, "invalid application token");
    }
    let map = match parse_object(&body) {
        Ok(map) => map,
        Err(text) => return error(StatusCode::BAD_REQUEST, text),
    };
    if let Err(text) = validate_downlink(&map, &inner.config.app_id) {
        return error(StatusCode::BAD_REQUEST, text);
    }
    let eui = map["EUI"].clone();
    inner.downlinks.push(Downlink { authorization, body: Value::Object(map) });
    Json(json!({ "cmd": "tx", "EUI": eui, "status": "queued" })).into_response()
}

async fn expire_sessions(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.lock().sessions.clear();
    StatusCode::NO_CONTENT
}

async fn emulator_uplink(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let map = match parse_object(&body) {
        Ok(map) => map,
        Err(text) => return error(StatusCode::BAD_REQUEST, text),
    };
    let Some(eui) = map.get("EUI").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "EUI must be a string");
    };
    let Some(port) = map.get("port").and_then(Value::as_u64) else {
        return error(StatusCode::BAD_REQUEST, "port must be an integer");
    };
    let Some(data) = map.get("data").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "data must be a string");
    };
    let fcnt = {
        let mut inner = shared.lock();
        let fcnt = inner.fcnt;
        inner.fcnt += 1;
        fcnt
    };
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
    let uplink = json!({
        "cmd": "rx",
        "EUI": eui,
        "ts": ts,
        "ack": false,
        "bat": 255,
        "fcnt": fcnt,
        "port": port,
        "data": data,
        "freq": 868_100_000,
        "dr": "SF7 BW125 4/5",
        "rssi": -80,
        "snr": 9.5,
    });
    let pushed: Vec<Value> = push(&shared, &uplink)
        .await
        .into_iter()
        .map(|(url, status)| json!({ "url": url, "status": status }))
        .collect();
    Json(json!({ "pushed": pushed })).into_response()
}

async fn list_downlinks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let list: Vec<Value> = shared
        .lock()
        .downlinks
        .iter()
        .map(|d| json!({ "authorization": d.authorization, "body": d.body }))
        .collect();
    Json(Value::Array(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn login_session_expiry_and_downlink() {
        let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
        let client = reqwest::Client::new();
        let url = emu.url();

        let bad = client
            .post(format!("{url}/1/pub/login"))
            .json(&json!({ "user": "veil-user", "pwd": "nope" }))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 401);
        let ok: Value = client
            .post(format!("{url}/1/pub/login"))
            .json(&json!({ "user": "veil-user", "pwd": "loriot-pass-1" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = ok["session"].as_str().unwrap().to_owned();
        let app = client
            .get(format!("{url}/1/nwk/app/BE7A0000"))
            .header("Authorization", format!("Session {session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(app.status(), 200);
        emu.expire_sessions();
        let expired = client
            .get(format!("{url}/1/nwk/app/BE7A0000"))
            .header("Authorization", format!("Session {session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(expired.status(), 403);

        let tx =
            json!({ "cmd": "tx", "EUI": "0011223344556677", "port": 2, "data": "0a0b", "appid": "be7a0000" });
        let queued =
            client.post(format!("{url}/1/rest")).bearer_auth("app-token-1").json(&tx).send().await.unwrap();
        assert_eq!(queued.status(), 200);
        let logins: Vec<bool> = emu.logins().iter().map(|l| l.ok).collect();
        assert_eq!(logins, [false, true]);
        assert_eq!(emu.downlinks().len(), 1);
        assert_eq!(emu.requests()[0], "POST /1/pub/login");
    }
}
