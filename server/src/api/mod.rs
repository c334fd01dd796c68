//! The REST API: the routing table (the public routes, then those that need a token), request
//! logging and the body limits. Handlers parse, call the host or the store, and shape answers.

mod audit;
mod doc;
mod keys;

pub(crate) use self::doc::ErrorBody;
pub(crate) use self::keys::run_rotation as run_key_rotation;
mod chains;
mod dead_letters;
mod directory;
mod integrations;
mod providers;
mod request;
mod secrets;
mod session;
mod types;

use std::sync::LazyLock;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use std::sync::Arc;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::host::Host;

use self::request::{MAX_DRAINED_BYTES, content_length};
use crate::error::ApiError;
use crate::state::AppState;

/// The whole API: the documented routes ([`documented`]), the web UI's pages, `/metrics`, with
/// the middleware (security headers, request log, body limits) around the router, not around
/// each route: a route's layers are boxed services cloned on every request, these run once.
pub(crate) fn router(state: AppState) -> impl crate::edge::App {
    let limits = state.host.store().limits();
    // A FILE value arrives base64-encoded (4/3 larger) inside JSON, or raw in a multipart form.
    let body_limit = limits.max_file_bytes.max(limits.max_text_bytes) / 3 * 4 + 64 * 1024;
    let (api, _) = documented().split_for_parts();
    let routes: Router = api
        .route("/", get(crate::ui::index))
        .route("/ui/{file}", get(crate::ui::asset))
        .route("/api-docs", get(crate::ui::api_docs))
        .route("/metrics", get(crate::metrics::on_main_listener))
        .fallback(not_found)
        .with_state(state);
    tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(crate::ui::security_headers))
        .layer(axum::middleware::from_fn(log_request))
        .layer(axum::middleware::from_fn_with_state(body_limit, refuse_oversized))
        .layer(DefaultBodyLimit::max(body_limit))
        .service(routes)
}

/// Every route of the REST API with its description: a route is registered here, with the
/// `#[utoipa::path]` of its handler, or not at all (`.ci/run` refuses a plain `.route("/api…`).
/// Anyone may call health, readiness, the document, logging in and uplinks (the routing key and
/// the integration's header security identify the sender); every other handler takes an
/// [`AuthActor`](crate::auth::AuthActor), and the store checks what that actor may do.
pub(crate) fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(crate::lifecycle::ready))
        .routes(routes!(openapi_json))
        .routes(routes!(session::login))
        .routes(routes!(session::open_session, session::session))
        .routes(routes!(session::logout))
        .routes(routes!(integrations::uplink))
        .routes(routes!(secrets::list, secrets::create))
        .routes(routes!(secrets::get, secrets::update, secrets::delete))
        .routes(routes!(secrets::usages))
        .routes(routes!(secrets::versions))
        .routes(routes!(secrets::impact))
        .routes(routes!(secrets::verify))
        .routes(routes!(secrets::rollback))
        .routes(routes!(secrets::rotation, secrets::drop_rotation))
        .routes(routes!(secrets::promote))
        .routes(routes!(secrets::probe_again))
        .routes(routes!(providers::list, providers::create))
        .routes(routes!(providers::get, providers::update, providers::delete))
        .routes(routes!(providers::test))
        .routes(routes!(providers::keys))
        .routes(routes!(secrets::share))
        .routes(routes!(secrets::unshare))
        .routes(routes!(directory::tenants, directory::create_tenant))
        .routes(routes!(directory::tenant, directory::delete_tenant))
        .routes(routes!(keys::status))
        .routes(routes!(keys::rotate))
        .routes(routes!(directory::customers, directory::create_customer))
        .routes(routes!(directory::customer, directory::delete_customer))
        .routes(routes!(directory::users, directory::create_user))
        .routes(routes!(directory::user, directory::update_user, directory::delete_user))
        .routes(routes!(directory::roles, directory::create_role))
        .routes(routes!(directory::delete_role))
        .routes(routes!(audit::list))
        .routes(routes!(directory::tenant_settings, directory::update_tenant_settings))
        .routes(routes!(types::node_types))
        .routes(routes!(types::integration_types))
        .routes(routes!(chains::list, chains::create))
        .routes(routes!(chains::import))
        .routes(routes!(chains::export))
        .routes(routes!(chains::get, chains::update, chains::delete))
        .routes(routes!(chains::send_message))
        .routes(routes!(chains::events))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::replay))
        .routes(routes!(integrations::list, integrations::create))
        .routes(routes!(integrations::get, integrations::update, integrations::delete))
        .routes(routes!(integrations::downlink))
}

/// The OpenAPI document, as `GET /api/openapi.json` serves it and `veil openapi` prints it.
pub(crate) fn openapi_document() -> &'static str {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        documented().into_openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    });
    &DOCUMENT
}

/// `GET /api/openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "system",
    operation_id = "openapi_json",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = serde_json::Value)),
    security(())
)]
async fn openapi_json() -> Response {
    use axum::response::IntoResponse as _;
    ([(axum::http::header::CONTENT_TYPE, "application/json")], openapi_document()).into_response()
}

/// `GET /api/health`: liveness, the backend, and how often this process used the database.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "system",
    operation_id = "health",
    responses((status = 200, description = "`{status: \"ok\", backend, databaseQueries}`", body = serde_json::Value)),
    security(())
)]
async fn health(State(host): State<Arc<Host>>) -> axum::Json<serde_json::Value> {
    let store = host.store();
    let queue = match host.queue() {
        Some(queue) => queue.health(),
        None => serde_json::json!({ "kind": "memory" }),
    };
    axum::Json(serde_json::json!({
        "status": "ok",
        "backend": store.backend_kind(),
        "databaseQueries": store.database_queries(),
        "queue": queue,
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
