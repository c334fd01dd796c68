//! The network edge: accepting connections and serving HTTP/1.1 on them under bounds an
//! unauthenticated client cannot go around. Connections are capped in all and per client address
//! (past a cap a new connection is closed at once); a connection that does not send a request's
//! headers in time — a half-sent request line, or a kept-alive connection left idle — is closed;
//! a request not answered in time gets `408`. On shutdown no new connection is accepted, the open
//! ones finish the request in hand, and the server waits for them (up to [`DRAIN`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use dashmap::DashMap;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;
use veil_core::limit_error;

use crate::error::ApiError;

/// Longest wait at shutdown for open connections to finish.
const DRAIN: Duration = Duration::from_secs(30);

/// `veil serve` settings of the network edge.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EdgeArgs {
    /// Connections served at once; past it a new connection is closed at once [default: 10000].
    #[arg(long, env = "VEIL_MAX_CONNECTIONS", value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_connections: u32,
    /// Connections served at once from one client address [default: 256].
    #[arg(long, env = "VEIL_MAX_CONNECTIONS_PER_ADDRESS", value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_connections_per_address: u32,
    /// Seconds a client has to send a request's headers; also the longest a kept-alive connection
    /// stays idle [default: 15].
    #[arg(long, env = "VEIL_HEADER_TIMEOUT_SECS", value_name = "SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) header_timeout_secs: u64,
    /// Seconds from a request's headers to its answer (a slow body included): then `408`
    /// [default: 120].
    #[arg(long, env = "VEIL_REQUEST_TIMEOUT_SECS", value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) request_timeout_secs: u64,
}

/// One client address's count of open connections; the entry goes when the last closes.
struct AddressSlot {
    address: IpAddr,
    open: Arc<DashMap<IpAddr, u32>>,
}

impl AddressSlot {
    /// A place for one more connection from `address`, if it has fewer than `max` open.
    fn take(open: &Arc<DashMap<IpAddr, u32>>, address: IpAddr, max: u32) -> Option<Self> {
        let mut count = open.entry(address).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Self { address, open: Arc::clone(open) })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        self.open.remove_if_mut(&self.address, |_, count| {
            *count -= 1;
            *count == 0
        });
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains the open connections.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    edge: &EdgeArgs,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(edge.max_connections as usize));
    let per_address: Arc<DashMap<IpAddr, u32>> = Arc::default();
    let (closing, closed) = watch::channel(false);
    let header_timeout = Duration::from_secs(edge.header_timeout_secs);
    let request_timeout = Duration::from_secs(edge.request_timeout_secs);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: the open connections go on; try again soon.
                    tracing::warn!("accept error: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::debug!(%remote, "connection refused: maxConnections reached");
            continue;
        };
        let Some(slot) = AddressSlot::take(&per_address, remote.ip(), edge.max_connections_per_address)
        else {
            tracing::debug!(%remote, "connection refused: maxConnectionsPerAddress reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        tracing::trace!(%remote, "connection accepted");
        let router = router.clone();
        let mut closed = closed.clone();
        tokio::spawn(async move {
            let _held = (permit, slot);
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                answer(router.clone(), remote, request, request_timeout)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::trace!(%remote, "connection ended: {e}");
                    }
                }
                _ = async { closed.wait_for(|closing| *closing).await.is_ok() } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Every connection holds a place: all places free means all connections done.
    let all = edge.max_connections;
    if tokio::time::timeout(DRAIN, connections.acquire_many(all)).await.is_err() {
        tracing::warn!("connections still open after {} s; stopping anyway", DRAIN.as_secs());
    }
    Ok(())
}

/// Answers one request through the router, with its client address, within `timeout`.
async fn answer(
    router: Router,
    remote: SocketAddr,
    mut request: Request<Incoming>,
    timeout: Duration,
) -> Result<axum::response::Response, Infallible> {
    request.extensions_mut().insert(ConnectInfo(remote));
    let request = request.map(Body::new);
    match tokio::time::timeout(timeout, router.oneshot(request)).await {
        Ok(answered) => answered,
        Err(_) => {
            let message = limit_error(
                "requestTimeoutSecs",
                timeout.as_secs(),
                "the request was not received and answered in time",
            );
            Ok(ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message).into_response())
        }
    }
}
