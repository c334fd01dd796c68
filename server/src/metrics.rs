//! `GET /metrics`: Prometheus' text format, every name prefixed `veil_`. The engine's families
//! (`veil_core::metrics`), the store's (`veil_store::metrics`) and the server's own: uplinks by
//! integration and the status they were answered with, and each integration's state. Gauges
//! that describe a moment (messages in flight, integration states, the database pool) are set
//! when scraped. Served on the main listener to a bearer of `--metrics-token`, or on a separate
//! `--metrics-listen` address without one; neither set, `/metrics` answers 404.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::host::Host;

/// `veil serve` settings of the metrics.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct MetricsArgs {
    /// Serve `GET /metrics` on the main listener to requests with `Authorization: Bearer TOKEN`.
    #[arg(long, env = "VEIL_METRICS_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub(crate) metrics_token: Option<SecretString>,
    /// Serve `GET /metrics` without a token on this separate address (e.g. 127.0.0.1:9464).
    #[arg(long, env = "VEIL_METRICS_LISTEN", value_name = "ADDR")]
    pub(crate) metrics_listen: Option<SocketAddr>,
}

/// An uplink's integration (`unknown` when no integration has the routing key) and the status
/// it was answered with.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UplinkLabels {
    integration: String,
    status: String,
}

/// An integration and one of its states (value 1 for the current one).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    integration: String,
    state: String,
}

/// What became of a message taken from the queue.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

struct ServerMetrics {
    uplinks: Family<UplinkLabels, Counter>,
    integration_state: Family<StateLabels, Gauge>,
    queue_messages: Family<OutcomeLabels, Counter>,
    queue_redeliveries: Counter,
    queue_partitions: Gauge,
}

static SERVER: LazyLock<ServerMetrics> = LazyLock::new(|| ServerMetrics {
    uplinks: Family::default(),
    integration_state: Family::default(),
    queue_messages: Family::default(),
    queue_redeliveries: Counter::default(),
    queue_partitions: Gauge::default(),
});

/// Every family, registered once.
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("veil");
    veil_core::metrics::register(&mut registry);
    veil_store::metrics::register(&mut registry);
    registry.register("uplinks", "Uplinks by integration and the status they got", SERVER.uplinks.clone());
    registry.register(
        "integration_state",
        "An integration's state: 1 for the current one (disabled, starting, active, error)",
        SERVER.integration_state.clone(),
    );
    registry.register(
        "queue_messages",
        "Messages taken from the queue, by what became of them (done, dead_letter, dropped, put_back)",
        SERVER.queue_messages.clone(),
    );
    registry.register(
        "queue_redeliveries",
        "Messages taken from the queue that had been delivered before",
        SERVER.queue_redeliveries.clone(),
    );
    registry.register(
        "queue_partitions_held",
        "Queue partitions this instance holds the lease of",
        SERVER.queue_partitions.clone(),
    );
    registry
});

/// Counts a message taken from the queue: `done` (its chain ran), `dead_letter`, `dropped` (its
/// chain was deleted), `put_back` (handed over to the partition's next owner).
pub(crate) fn count_queued(outcome: &'static str) {
    SERVER.queue_messages.get_or_create(&OutcomeLabels { outcome }).inc();
}

/// Counts a message taken from the queue that had been delivered before.
pub(crate) fn count_redelivery() {
    SERVER.queue_redeliveries.inc();
}

/// How many queue partitions this instance holds.
pub(crate) fn set_partitions_held(n: usize) {
    SERVER.queue_partitions.set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// Counts an uplink answered with `status` (`integration`: its id, if the routing key named one).
pub(crate) fn count_uplink(integration: Option<uuid::Uuid>, status: StatusCode) {
    let labels = UplinkLabels {
        integration: integration.map_or_else(|| "unknown".to_owned(), |id| id.to_string()),
        status: status.as_u16().to_string(),
    };
    SERVER.uplinks.get_or_create(&labels).inc();
}

/// The text of a scrape: the gauges of this moment set, then every family.
fn scrape(host: &Host) -> String {
    host.publish_in_flight();
    host.store().publish_metrics();
    SERVER.integration_state.clear();
    for integration in host.integration_runtimes() {
        let state = match integration.status() {
            veil_integrations::Status::Disabled => "disabled",
            veil_integrations::Status::Starting => "starting",
            veil_integrations::Status::Active => "active",
            veil_integrations::Status::Error(_) => "error",
        };
        let labels = StateLabels { integration: integration.id().to_string(), state: state.to_owned() };
        SERVER.integration_state.get_or_create(&labels).set(1);
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &REGISTRY).is_err() {
        tracing::error!("the metrics could not be encoded");
    }
    text
}

fn exposition(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}

/// The token's digest (compared instead of the token: equal digests, equal tokens, and the
/// comparison's time says nothing about the token).
fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `GET /metrics` on the main listener: for a bearer of `--metrics-token` only.
pub(crate) async fn on_main_listener(
    State(host): State<Arc<Host>>,
    State(settings): State<MetricsAccess>,
    headers: HeaderMap,
) -> Response {
    let Some(expected) = settings.token else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "metrics are served with --metrics-token (here, to its bearer) or --metrics-listen (a separate address)",
        )
        .into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(digest);
    if given != Some(*expected) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "metrics need Authorization: Bearer <metrics token>",
        )
        .into_response();
    }
    exposition(scrape(&host))
}

/// Who may read `/metrics` on the main listener.
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricsAccess {
    /// The digest of `--metrics-token`.
    token: Option<Arc<[u8; 32]>>,
}

impl MetricsAccess {
    pub(crate) fn new(args: &MetricsArgs) -> Self {
        Self { token: args.metrics_token.as_ref().map(|t| Arc::new(digest(t.expose_secret()))) }
    }
}

/// The router of `--metrics-listen`: `/metrics` without a token.
pub(crate) fn separate_router(host: Arc<Host>) -> Router {
    Router::new()
        .route("/metrics", get(|State(host): State<Arc<Host>>| async move { exposition(scrape(&host)) }))
        .with_state(host)
}
