//! A server's life as a load balancer sees it: starting (listening, but every request but
//! liveness answers `503`), ready (`GET /api/ready` answers `200`), stopping after the first
//! SIGTERM or Ctrl-C (`503` again, the listener closed, the work in hand finished), and the
//! second signal, which ends the process at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::watch;
use veil_store::Store;

use crate::error::{ApiError, ServerError};

/// Whether the server is stopping: set by the first signal, read by `/api/ready`.
#[derive(Debug, Clone)]
pub(crate) struct Stopping {
    flag: Arc<AtomicBool>,
    changed: watch::Receiver<bool>,
    /// When the first signal came.
    since: Arc<std::sync::OnceLock<std::time::Instant>>,
}

impl Stopping {
    /// Whether a signal asked the server to stop.
    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// How long ago the first signal came (zero before it).
    pub(crate) fn elapsed(&self) -> std::time::Duration {
        self.since.get().map_or(std::time::Duration::ZERO, std::time::Instant::elapsed)
    }

    /// Resolves once a signal asked the server to stop.
    pub(crate) async fn wait(&self) {
        let mut changed = self.changed.clone();
        let _ = changed.wait_for(|stopping| *stopping).await;
    }
}

/// Installs the SIGTERM and Ctrl-C handlers now (a signal right after "listening" is not lost):
/// the first signal sets [`Stopping`]; the second exits the process at once, with status 1.
pub(crate) fn on_signals() -> Result<Stopping, ServerError> {
    let flag = Arc::new(AtomicBool::new(false));
    let (tx, changed) = watch::channel(false);
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind| {
            signal(kind)
                .map_err(|source| ServerError::Io { context: "installing signal handlers".into(), source })
        };
        (install(SignalKind::terminate())?, install(SignalKind::interrupt())?)
    };
    let set = Arc::clone(&flag);
    let since: Arc<std::sync::OnceLock<std::time::Instant>> = Arc::default();
    let at = Arc::clone(&since);
    tokio::spawn(async move {
        for nth in 0..2 {
            #[cfg(unix)]
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
            if nth == 0 {
                tracing::info!("shutting down (a second SIGTERM or Ctrl-C stops at once)");
                let _ = at.set(std::time::Instant::now());
                set.store(true, Ordering::SeqCst);
                let _ = tx.send(true);
            }
        }
        eprintln!("second signal: stopping now, without waiting for the work in hand");
        std::process::exit(1);
    });
    Ok(Stopping { flag, changed, since })
}

/// `GET /api/ready`: `200` when this instance serves (store open, keyring unwrapped, chains and
/// integrations started — the full API is served only then — and, on PostgreSQL, the change feed
/// listening); `503` naming what is missing otherwise.
#[utoipa::path(
    get,
    path = "/api/ready",
    tag = "system",
    operation_id = "ready",
    responses(
        (status = 200, description = "`{status: \"ready\"}`", body = serde_json::Value),
        (status = 503, description = "Not ready (starting, the change feed reconnecting, stopping); `Retry-After: 1`", body = crate::api::ErrorBody),
    ),
    security(())
)]
pub(crate) async fn ready(State(store): State<Store>, State(stopping): State<Stopping>) -> Response {
    if stopping.is_set() {
        return not_ready("the server is shutting down");
    }
    if !store.feed_listening() {
        return not_ready("the change feed's database connection is being made again");
    }
    axum::Json(json!({"status": "ready"})).into_response()
}

/// `503 not_ready` with `Retry-After: 1`.
fn not_ready(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message).into_response();
    response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    response
}

/// What the server answers while it starts: liveness (`/api/health`: `200`, status
/// `starting`), and `503` with `Retry-After` for everything else.
pub(crate) fn starting_router() -> impl crate::edge::App {
    let routes: Router = Router::new()
        .route("/api/health", get(|| async { axum::Json(json!({"status": "starting"})) }))
        .fallback(|| async { not_ready("the server is starting") });
    tower::ServiceBuilder::new().layer(axum::middleware::from_fn(crate::ui::security_headers)).service(routes)
}
