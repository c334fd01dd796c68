//! The network edge: accepting connections and serving HTTP/1.1 on them under bounds an
//! unauthenticated client cannot go around. Connections are capped in all and per client address
//! (past a cap a new connection is closed at once); a connection that does not send a request's
//! headers in time — a half-sent request line, or a kept-alive connection left idle — is closed;
//! a request not answered in time gets `408`. When told to stop, the open connections finish the
//! request in hand and close, and the server waits for them: with the listener closed first (no
//! new connection) at shutdown, or kept for what is served next after start-up.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;
use veil_core::limit_error;

use crate::error::ApiError;

/// What [`serve`] does with its listener when told to stop.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AtStop {
    /// Keep it (start-up is over: the full API is served on it next); connections get
    /// [`STARTING_DRAIN`] to finish.
    KeepListening,
    /// Close it at once (shutdown), then give the open connections up to `grace` to finish.
    Close {
        /// The longest wait.
        grace: Duration,
    },
}

/// Longest wait for the connections served while starting (probes) to finish.
const STARTING_DRAIN: Duration = Duration::from_secs(2);

/// When stopping, a connection with no request in hand for this long is closed. A busy one closes
/// after its next answer (sent with `Connection: close`): closing a connection the moment a
/// client sends on it would lose that request, so connections in use are left to end themselves.
const IDLE_BEFORE_CLOSE: Duration = Duration::from_millis(250);

/// One connection's requests in hand and when it last answered, for a stop that closes only idle
/// connections.
struct Activity {
    opened: std::time::Instant,
    busy: AtomicUsize,
    /// Milliseconds after `opened` of the last answer (or of the opening).
    last_answer_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: std::time::Instant::now(),
            busy: AtomicUsize::new(0),
            last_answer_ms: AtomicU64::new(0),
        }
    }

    fn begin(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
    }

    fn end(&self) {
        self.last_answer_ms.store(self.opened.elapsed().as_millis() as u64, Ordering::SeqCst);
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    /// No request in hand, and none answered for `quiet`.
    fn idle_for(&self, quiet: Duration) -> bool {
        let since = (self.opened.elapsed().as_millis() as u64)
            .saturating_sub(self.last_answer_ms.load(Ordering::SeqCst));
        self.busy.load(Ordering::SeqCst) == 0 && since >= quiet.as_millis() as u64
    }
}

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

/// What [`serve`] answers requests with: a router with its middleware around it.
pub(crate) trait App:
    tower::Service<Request<Body>, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> App for S where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Serves `router` on `listener` until `stop` completes, then drains the open connections; returns
/// the listener when it was kept ([`AtStop`]).
pub(crate) async fn serve(
    listener: TcpListener,
    router: impl App,
    edge: &EdgeArgs,
    stop: impl Future<Output = ()>,
    at_stop: AtStop,
) -> Option<TcpListener> {
    let connections = Arc::new(Semaphore::new(edge.max_connections as usize));
    let per_address: Arc<DashMap<IpAddr, u32>> = Arc::default();
    let (closing, closed) = watch::channel(false);
    // Read by every answer: while stopping, each says `Connection: close`.
    let stopping = Arc::new(AtomicBool::new(false));
    let header_timeout = Duration::from_secs(edge.header_timeout_secs);
    let request_timeout = Duration::from_secs(edge.request_timeout_secs);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut stop => break,
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
        let stopping = Arc::clone(&stopping);
        tokio::spawn(async move {
            let _held = (permit, slot);
            let activity = Arc::new(Activity::new());
            let seen = Arc::clone(&activity);
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (router, activity, stopping) = (router.clone(), Arc::clone(&seen), Arc::clone(&stopping));
                async move {
                    activity.begin();
                    let mut answered = answer(router, remote, request, request_timeout).await;
                    if stopping.load(Ordering::SeqCst)
                        && let Ok(response) = &mut answered
                    {
                        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                    activity.end();
                    answered
                }
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
                    // Busy: it ends after its next answer. Idle: closed once it stays so.
                    let mut check = tokio::time::interval(IDLE_BEFORE_CLOSE / 5);
                    loop {
                        tokio::select! {
                            _ = connection.as_mut() => break,
                            _ = check.tick() => if activity.idle_for(IDLE_BEFORE_CLOSE) {
                                connection.as_mut().graceful_shutdown();
                                let _ = connection.await;
                                break;
                            },
                        }
                    }
                }
            }
        });
    }
    let (kept, drain) = match at_stop {
        AtStop::KeepListening => (Some(listener), STARTING_DRAIN),
        AtStop::Close { grace } => {
            drop(listener);
            (None, grace)
        }
    };
    stopping.store(true, Ordering::SeqCst);
    let _ = closing.send(true);
    // Every connection holds a place: all places free means all connections done.
    let all = edge.max_connections;
    if tokio::time::timeout(drain, connections.acquire_many(all)).await.is_err() {
        tracing::warn!("connections still open after {} s; closing them", drain.as_secs());
    }
    kept
}

/// Answers one request through the router, with its client address, within `timeout`.
async fn answer(
    router: impl App,
    remote: SocketAddr,
    mut request: Request<Incoming>,
    timeout: Duration,
) -> Result<Response, Infallible> {
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
