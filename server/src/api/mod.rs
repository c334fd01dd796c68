//! The REST API: router, shared state, request logging.

mod audit;
mod chains;
mod directory;
mod integrations;
mod secrets;

pub(crate) use self::chains::forward_secret_changes;

/// Starts the stored rule chains, then the integrations that feed them.
pub(crate) async fn start_all(state: &AppState) -> veil_store::Result<()> {
    chains::start_all(state).await?;
    integrations::start_all(state).await
}

/// Largest uplink body accepted (LORIOT's are a few hundred bytes).
pub(crate) const MAX_UPLINK_BYTES: usize = 1024 * 1024;
/// A larger uplink is still read up to this size so its sender gets the 413 answer.
pub(crate) const MAX_DRAINED_BYTES: usize = 32 * 1024 * 1024;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post};
use veil_store::Store;

use crate::auth::{self, TokenKeys};
use crate::error::{ApiError, ApiResult};

/// An id from the path; a malformed one is a 400 naming it.
fn parse_id<T: std::str::FromStr>(raw: &str) -> ApiResult<T> {
    raw.parse().map_err(|_| ApiError::bad_request(format!("id: '{raw}' is not a UUID")))
}

/// A body that could not be read: too large (413) or broken (400).
fn body_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large("request body is larger than the server accepts")
    } else {
        ApiError::bad_request(e.body_text())
    }
}

/// What every handler can reach.
pub(crate) struct AppState {
    pub(crate) store: Store,
    /// The node types chains may use.
    pub(crate) registry: veil_core::Registry,
    /// Running rule chains by id.
    pub(crate) chains: dashmap::DashMap<uuid::Uuid, std::sync::Arc<veil_core::ChainRuntime>>,
    /// The integration types integrations may use.
    pub(crate) integration_types: veil_integrations::IntegrationRegistry,
    /// Running integrations (shared with the `integration_downlink` node through the registry).
    pub(crate) integrations: Arc<veil_integrations::Integrations>,
    /// Serializes saves and deletes of integrations.
    pub(crate) integration_writes: tokio::sync::Mutex<()>,
    pub(crate) tokens: TokenKeys,
    /// Failed logins per user name and address.
    pub(crate) login_limiter: auth::LoginLimiter,
    /// Verified against on unknown usernames so a login takes as long either way.
    pub(crate) dummy_hash: String,
}

/// The whole API.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limits = state.store.limits();
    // A FILE value arrives base64-encoded (4/3 larger) inside JSON, or raw in a multipart form.
    let body_limit = limits.max_file_bytes.max(limits.max_text_bytes) / 3 * 4 + 64 * 1024;
    Router::new()
        .route("/api/health", get(health))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/secrets", get(secrets::list).post(secrets::create))
        .route("/api/secrets/{id}", get(secrets::get).patch(secrets::update).delete(secrets::delete))
        .route("/api/secrets/{id}/usages", get(secrets::usages))
        .route("/api/secrets/{id}/shares", post(secrets::share))
        .route("/api/secrets/{id}/shares/{customer_id}", delete(secrets::unshare))
        .route("/api/tenants", get(directory::tenants).post(directory::create_tenant))
        .route("/api/tenants/{id}", get(directory::tenant).delete(directory::delete_tenant))
        .route("/api/customers", get(directory::customers).post(directory::create_customer))
        .route("/api/customers/{id}", get(directory::customer).delete(directory::delete_customer))
        .route("/api/users", get(directory::users).post(directory::create_user))
        .route(
            "/api/users/{id}",
            get(directory::user).patch(directory::update_user).delete(directory::delete_user),
        )
        .route("/api/roles", get(directory::roles).post(directory::create_role))
        .route("/api/roles/{id}", delete(directory::delete_role))
        .route("/api/audit-logs", get(audit::list))
        .route("/api/rule-chains", get(chains::list).post(chains::create))
        .route("/api/rule-chains/{id}", get(chains::get).put(chains::update).delete(chains::delete))
        .route("/api/rule-chains/{id}/messages", post(chains::send_message))
        .route("/api/rule-chains/{id}/events", get(chains::events))
        .route("/api/integrations", get(integrations::list).post(integrations::create))
        .route(
            "/api/integrations/{id}",
            get(integrations::get).put(integrations::update).delete(integrations::delete),
        )
        .route("/api/integrations/{id}/downlink", post(integrations::downlink))
        .route("/api/v1/integrations/{kind}/{routing_key}", post(integrations::uplink))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(body_limit, refuse_oversized))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

async fn health(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok", "backend": state.store.backend_kind() }))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

/// The declared length of a request body.
fn content_length(headers: &axum::http::HeaderMap) -> Option<usize> {
    headers.get(axum::http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads and discards a body, up to [`MAX_DRAINED_BYTES`].
async fn drain(mut body: axum::body::Body) {
    use http_body_util::BodyExt as _;
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, |d| d.len());
        if seen > MAX_DRAINED_BYTES {
            break;
        }
    }
}

/// A body declared larger than the server accepts gets 413 after it was read (up to
/// [`MAX_DRAINED_BYTES`]), so a client still writing sees the answer, not a broken connection.
async fn refuse_oversized(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    match content_length(req.headers()) {
        Some(n) if n > limit => {
            if n <= MAX_DRAINED_BYTES {
                drain(req.into_body()).await;
            }
            axum::response::IntoResponse::into_response(ApiError::too_large(
                "request body is larger than the server accepts",
            ))
        }
        _ => next.run(req).await,
    }
}

/// The path as logged: an uplink's routing key (it lets anyone post uplinks) is masked.
fn logged_path(path: &str) -> String {
    match path.strip_prefix("/api/v1/integrations/").and_then(|rest| rest.split_once('/')) {
        Some((kind, _)) => format!("/api/v1/integrations/{kind}/{}", veil_core::MASK),
        None => path.to_owned(),
    }
}

/// One line per request: method, path (never the query or body), status, duration.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = logged_path(req.uri().path());
    let started = Instant::now();
    let response = next.run(req).await;
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}
