//! The REST API: the routing table (the public routes, then those that need a token), request
//! logging and the body limits. Handlers parse, call the host or the store, and shape answers.

mod audit;
mod keys;

pub(crate) use self::keys::run_rotation as run_key_rotation;
mod chains;
mod directory;
mod integrations;
mod request;
mod secrets;
mod session;
mod types;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post};
use veil_store::Store;

use self::request::{MAX_DRAINED_BYTES, content_length};
use crate::error::ApiError;
use crate::state::AppState;

/// The whole API.
pub(crate) fn router(state: AppState, stopping: crate::lifecycle::Stopping) -> Router {
    let limits = state.host.store().limits();
    // A FILE value arrives base64-encoded (4/3 larger) inside JSON, or raw in a multipart form.
    let body_limit = limits.max_file_bytes.max(limits.max_text_bytes) / 3 * 4 + 64 * 1024;
    Router::new()
        .merge(public(stopping))
        .merge(authenticated())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(body_limit, refuse_oversized))
        .layer(axum::middleware::from_fn(log_request))
        .layer(axum::middleware::from_fn(crate::ui::security_headers))
        .with_state(state)
}

/// Routes anyone can call: health, logging in, and uplinks (the routing key and the
/// integration's header security identify the sender).
fn public(stopping: crate::lifecycle::Stopping) -> Router<AppState> {
    let ready = move |store: State<Store>| crate::lifecycle::ready(store, State(stopping.clone()));
    Router::new()
        .route("/api/ready", get(ready))
        .route("/", get(crate::ui::index))
        .route("/ui/{file}", get(crate::ui::asset))
        .route("/api/health", get(health))
        .route("/metrics", get(crate::metrics::on_main_listener))
        .route("/api/auth/login", post(session::login))
        .route("/api/auth/session", post(session::open_session))
        .route("/api/v1/integrations/{kind}/{routing_key}", post(integrations::uplink))
}

/// Routes that need `Authorization: Bearer <token>`: every handler takes an `AuthActor`, and the
/// store checks what that actor may do.
fn authenticated() -> Router<AppState> {
    Router::new()
        .route("/api/auth/logout", post(session::logout))
        .route("/api/auth/session", get(session::session))
        .route("/api/secrets", get(secrets::list).post(secrets::create))
        .route("/api/secrets/{id}", get(secrets::get).patch(secrets::update).delete(secrets::delete))
        .route("/api/secrets/{id}/usages", get(secrets::usages))
        .route("/api/secrets/{id}/versions", get(secrets::versions))
        .route("/api/secrets/{id}/impact", get(secrets::impact))
        .route("/api/secrets/{id}/verify", post(secrets::verify))
        .route("/api/secrets/{id}/rollback", post(secrets::rollback))
        .route("/api/secrets/{id}/rotation", get(secrets::rotation).delete(secrets::drop_rotation))
        .route("/api/secrets/{id}/rotation/promote", post(secrets::promote))
        .route("/api/secrets/{id}/rotation/probe", post(secrets::probe_again))
        .route("/api/secrets/{id}/shares", post(secrets::share))
        .route("/api/secrets/{id}/shares/{customer_id}", delete(secrets::unshare))
        .route("/api/tenants", get(directory::tenants).post(directory::create_tenant))
        .route("/api/system/keys", get(keys::status))
        .route("/api/system/keys/rotate", post(keys::rotate))
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
        .route("/api/tenant-settings", get(directory::tenant_settings).put(directory::update_tenant_settings))
        .route("/api/node-types", get(types::node_types))
        .route("/api/integration-types", get(types::integration_types))
        .route("/api/rule-chains", get(chains::list).post(chains::create))
        .route("/api/rule-chains/import", post(chains::import))
        .route("/api/rule-chains/{id}/export", get(chains::export))
        .route("/api/rule-chains/{id}", get(chains::get).put(chains::update).delete(chains::delete))
        .route("/api/rule-chains/{id}/messages", post(chains::send_message))
        .route("/api/rule-chains/{id}/events", get(chains::events))
        .route("/api/integrations", get(integrations::list).post(integrations::create))
        .route(
            "/api/integrations/{id}",
            get(integrations::get).put(integrations::update).delete(integrations::delete),
        )
        .route("/api/integrations/{id}/downlink", post(integrations::downlink))
}

async fn health(State(store): State<Store>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "status": "ok",
        "backend": store.backend_kind(),
        "databaseQueries": store.database_queries(),
    }))
}

/// No route: a page for a browser (it asks for HTML, outside `/api/`), JSON for API clients.
async fn not_found(req: Request) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let wants_html = req
        .headers()
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html && !req.uri().path().starts_with("/api/") {
        let page = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found — Veil</title>\
                    <link rel=\"stylesheet\" href=\"/ui/app.css\"></head><body><main class=\"not-found\">\
                    <h1>Not found</h1><p>There is no page at this address.</p><p><a href=\"/\">Go to Veil</a></p>\
                    </main></body></html>";
        return (StatusCode::NOT_FOUND, axum::response::Html(page)).into_response();
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
    .into_response()
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
async fn refuse_oversized(State(limit): State<usize>, req: Request, next: Next) -> Response {
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
