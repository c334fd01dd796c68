//! The web UI: static files embedded in the binary (`server/ui/`, plain ES modules and CSS, no
//! build step), served at `/` and `/ui/…`. Every response of the server carries the security
//! headers below; the pages talk to the same REST API as every other client, authenticated by the
//! `HttpOnly` session cookie and the CSRF token (`crate::auth`).

use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The files under `/ui/`, with their media types.
const FILES: &[(&str, &str, &[u8])] = &[
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../ui/app.js")),
    ("app.css", "text/css; charset=utf-8", include_bytes!("../ui/app.css")),
    ("secrets.js", "text/javascript; charset=utf-8", include_bytes!("../ui/secrets.js")),
    ("rotation.js", "text/javascript; charset=utf-8", include_bytes!("../ui/rotation.js")),
    ("config-form.js", "text/javascript; charset=utf-8", include_bytes!("../ui/config-form.js")),
    ("chains.js", "text/javascript; charset=utf-8", include_bytes!("../ui/chains.js")),
    ("canvas.js", "text/javascript; charset=utf-8", include_bytes!("../ui/canvas.js")),
    ("integrations.js", "text/javascript; charset=utf-8", include_bytes!("../ui/integrations.js")),
    ("providers.js", "text/javascript; charset=utf-8", include_bytes!("../ui/providers.js")),
    ("directory.js", "text/javascript; charset=utf-8", include_bytes!("../ui/directory.js")),
    ("audit.js", "text/javascript; charset=utf-8", include_bytes!("../ui/audit.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_bytes!("../ui/dom.js")),
    ("api-docs.js", "text/javascript; charset=utf-8", include_bytes!("../ui/api-docs.js")),
    ("api-docs.css", "text/css; charset=utf-8", include_bytes!("../ui/api-docs.css")),
    // Swagger UI 5.36.0 (npm swagger-ui-dist, Apache-2.0: vendor/swagger-ui.LICENSE), for /api-docs.
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/vendor/swagger-ui-bundle.js"),
    ),
    ("swagger-ui.css", "text/css; charset=utf-8", include_bytes!("../ui/vendor/swagger-ui.css")),
];

const INDEX: &[u8] = include_bytes!("../ui/index.html");

const API_DOCS: &[u8] = include_bytes!("../ui/api-docs.html");

/// Scripts, styles and requests only from this server; no inline script or style, no frames, no
/// plugins, forms post nowhere (the pages send requests from script).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// `GET /`: the single page.
pub(crate) async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], INDEX)
        .into_response()
}

/// `GET /api-docs`: the REST API's OpenAPI document, rendered (read-only).
pub(crate) async fn api_docs() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], API_DOCS)
        .into_response()
}

/// `GET /ui/{file}`.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, media_type, bytes)) => {
            ([(header::CONTENT_TYPE, *media_type), (header::CACHE_CONTROL, "no-cache")], *bytes)
                .into_response()
        }
        None => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no file /ui/{file}")).into_response()
        }
    }
}

/// Adds the security headers to every response: the content security policy, no framing, no
/// sniffing, no referrer, and no caching of API answers.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if is_api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
