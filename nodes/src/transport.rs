//! The HTTP client `rest_api_call` (and its `oauth2` token requests) send with: hyper-util's
//! pooled HTTP/1.1 client over rustls. Never a proxy from the environment (HTTP_PROXY …: every
//! send goes straight to the host its destination check allowed), no redirects (hyper follows
//! none: secret headers never reach a host a redirect names, and a 3xx is an answer like any
//! other), no retries, the system resolver failing with [`DnsFailed`], one deadline per request
//! covering its answer's body. reqwest, which the nodes used before, did the same with more work
//! per request (a `Url` formatted into a `Uri` and parsed back by its redirect layer, the client
//! and its default headers copied): about a tenth of a forwarded message's CPU.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::common::DnsFailed;

/// A request's body: the whole of it, in memory (what a node sends is rendered before it goes).
pub(crate) type Body = Full<Bytes>;

/// A pooled client; clones share the pool.
#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<HttpsConnector<HttpConnector<SystemResolver>>, Body>,
    timeout: Duration,
}

/// Why a request got no (whole) answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No answer within the deadline.
    #[error("operation timed out")]
    TimedOut,
    /// Connecting or sending failed (DNS, TCP, TLS, a closed connection).
    #[error(transparent)]
    Request(#[from] hyper_util::client::legacy::Error),
    /// The answer's body broke off.
    #[error(transparent)]
    Body(#[from] hyper::Error),
}

impl SendError {
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, SendError::TimedOut)
    }

    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, SendError::Request(e) if e.is_connect())
    }
}

/// An answer whose body is read within the request's deadline.
pub(crate) struct Answer {
    pub(crate) status: http::StatusCode,
    body: Incoming,
    deadline: tokio::time::Instant,
}

impl Answer {
    /// The length the answer announces, if it does.
    pub(crate) fn content_length(&self) -> Option<u64> {
        hyper::body::Body::size_hint(&self.body).exact()
    }

    /// The next piece of the body; `None` at its end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, SendError> {
        loop {
            let frame = tokio::time::timeout_at(self.deadline, self.body.frame())
                .await
                .map_err(|_| SendError::TimedOut)?;
            match frame {
                None => return Ok(None),
                Some(frame) => {
                    // Trailers carry nothing a node uses.
                    if let Ok(data) = frame?.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

impl Transport {
    /// Trusts the public CAs (webpki's roots), no client certificate.
    pub(crate) fn new(timeout: Duration) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = config().with_root_certificates(roots).with_no_client_auth();
        Self::with_tls(timeout, tls)
    }

    /// Trusts only `roots` and presents `chain` with `key` (mutual TLS); the error is rustls's
    /// refusal of the certificate or the key.
    pub(crate) fn with_client_cert(
        timeout: Duration,
        roots: rustls::RootCertStore,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, rustls::Error> {
        let tls = config().with_root_certificates(roots).with_client_auth_cert(chain, key)?;
        Ok(Self::with_tls(timeout, tls))
    }

    /// HTTP/1.1 only (ALPN says so: hyper-rustls sets it for the versions enabled).
    fn with_tls(timeout: Duration, tls: rustls::ClientConfig) -> Self {
        let mut http = HttpConnector::new_with_resolver(SystemResolver);
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Self { client, timeout }
    }

    /// Sends `request` and waits for its answer's head; the body is read from the answer within
    /// the same deadline.
    pub(crate) async fn send(&self, request: http::Request<Body>) -> Result<Answer, SendError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let response = tokio::time::timeout_at(deadline, self.client.request(request))
            .await
            .map_err(|_| SendError::TimedOut)??;
        let status = response.status();
        Ok(Answer { status, body: response.into_body(), deadline })
    }
}

/// The clients [`shared`] hands out, by tenant (its id) and timeout, while a node holds them.
type SharedClients = std::collections::HashMap<(u128, Duration), std::sync::Weak<Transport>>;
static SHARED_CLIENTS: std::sync::LazyLock<std::sync::Mutex<SharedClients>> =
    std::sync::LazyLock::new(Default::default);

/// A [`Transport`] shared by the nodes of one tenant with the same timeout: a client (its TLS
/// configuration and connection pool) costs some kilobytes, several times a whole chain
/// otherwise, and connections to a destination are reused across the tenant's chains. Tenants
/// never share one: a tenant's requests never travel on another tenant's connections. Freed when
/// the last node holding it goes.
pub(crate) fn shared(tenant: u128, timeout: Duration) -> Arc<Transport> {
    let mut clients = SHARED_CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(client) = clients.get(&(tenant, timeout)).and_then(std::sync::Weak::upgrade) {
        return client;
    }
    // Forget clients no node holds any more, now and then (not on every new one: starting
    // many chains would be quadratic).
    if clients.len() % 64 == 63 {
        clients.retain(|_, weak| weak.strong_count() > 0);
    }
    let client = Arc::new(Transport::new(timeout));
    clients.insert((tenant, timeout), Arc::downgrade(&client));
    client
}

/// A copy of `request` to send again (its body is shared, not copied).
pub(crate) fn copy(request: &http::Request<Body>) -> http::Request<Body> {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// TLS 1.2 and 1.3 with ring's primitives.
fn config() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
}

/// Resolves with the system's resolver, failing with [`DnsFailed`].
#[derive(Clone)]
pub(crate) struct SystemResolver;

impl tower::Service<Name> for SystemResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = DnsFailed;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DnsFailed>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), DnsFailed>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        Box::pin(async move { crate::common::lookup(name.as_str()).await })
    }
}
