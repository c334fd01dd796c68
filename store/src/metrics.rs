//! The store's metrics (Prometheus): uses of each secret (by name, never value), sends refused by
//! `allowedDestinations`, the change feed (how far behind, how often reloaded) and the database
//! (operations and their time; the pool is read when scraped, by the server). Process-wide
//! families, registered by the server ([`register`]).

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A secret, by its tenant and name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecretLabels {
    /// The tenant's id.
    pub tenant: String,
    /// The secret's name.
    pub secret: String,
}

/// The database backend (`sqlite`, `postgres`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// `sqlite` or `postgres`.
    pub backend: String,
}

/// Where an authenticated request's session came from.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `memory` or `database`.
    pub source: String,
}

/// The store's metric families.
pub struct StoreMetrics {
    /// Sessions served to authenticate a request, from memory or read from the database.
    pub sessions: Family<SourceLabels, Counter>,
    /// `sessions{source="memory"}`.
    pub sessions_from_memory: Counter,
    /// `sessions{source="database"}`.
    pub sessions_from_database: Counter,
    /// Values of a secret resolved for a rule chain or an integration.
    pub secret_resolves: Family<SecretLabels, Counter>,
    /// Sends refused because the destination is not among a secret's allowedDestinations.
    pub destinations_blocked: Family<SecretLabels, Counter>,
    /// Times the change feed reloaded everything (its connection was lost, or a change could
    /// not be read).
    pub feed_resyncs: Counter,
    /// Changes of other instances applied here.
    pub feed_changes: Counter,
    /// From a change in the database to its notification here.
    pub feed_lag: Histogram,
    /// Whether the change feed listens (1) or its connection is being made again (0).
    pub feed_listening: Gauge,
    /// Database operations and their time.
    pub db_operations: Family<BackendLabels, Histogram, fn() -> Histogram>,
    /// Connections of the database pool: open, and idle among them (set when scraped).
    pub db_connections: Family<BackendLabels, Gauge>,
    /// Idle connections of the pool (set when scraped).
    pub db_idle_connections: Family<BackendLabels, Gauge>,
    /// Fetches of linked secrets' values from their providers, by outcome (`ok`, `failed`).
    pub linked_fetches: Family<OutcomeLabels, Counter>,
}

/// The outcome of a fetch.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

impl StoreMetrics {
    /// Counts a linked secret's fetch.
    pub(crate) fn linked_fetch(&self, ok: bool) {
        self.linked_fetches.get_or_create(&OutcomeLabels { outcome: if ok { "ok" } else { "failed" } }).inc();
    }
}

fn seconds() -> Histogram {
    // 100 µs … ~26 s.
    Histogram::new(exponential_buckets(0.000_1, 4.0, 10))
}

/// The process's store metrics.
pub static STORE: LazyLock<StoreMetrics> = LazyLock::new(|| {
    let sessions: Family<SourceLabels, Counter> = Family::default();
    let source = |s: &str| sessions.get_or_create_owned(&SourceLabels { source: s.to_owned() });
    StoreMetrics {
        sessions_from_memory: source("memory"),
        sessions_from_database: source("database"),
        sessions: sessions.clone(),
        secret_resolves: Family::default(),
        destinations_blocked: Family::default(),
        feed_resyncs: Counter::default(),
        feed_changes: Counter::default(),
        feed_lag: Histogram::new(exponential_buckets(0.001, 4.0, 9)),
        feed_listening: Gauge::default(),
        db_operations: Family::new_with_constructor(seconds),
        db_connections: Family::default(),
        db_idle_connections: Family::default(),
        linked_fetches: Family::default(),
    }
});

/// Registers the store's families (names without the registry's `veil_` prefix).
pub fn register(registry: &mut Registry) {
    let m = &*STORE;
    registry.register(
        "sessions_served",
        "Sessions that authenticated a request, by where they came from",
        m.sessions.clone(),
    );
    registry.register(
        "secret_resolves",
        "Values of a secret resolved for a configuration",
        m.secret_resolves.clone(),
    );
    registry.register(
        "destinations_blocked",
        "Sends refused by a secret's allowedDestinations",
        m.destinations_blocked.clone(),
    );
    registry.register("feed_resyncs", "Times the change feed reloaded everything", m.feed_resyncs.clone());
    registry.register("feed_changes", "Changes of other instances applied here", m.feed_changes.clone());
    registry.register(
        "feed_lag_seconds",
        "From a change in the database to its notification here",
        m.feed_lag.clone(),
    );
    registry.register(
        "feed_listening",
        "Whether the change feed listens (PostgreSQL)",
        m.feed_listening.clone(),
    );
    registry.register(
        "db_operation_duration_seconds",
        "Database operations and their time",
        m.db_operations.clone(),
    );
    registry.register("db_connections", "Open connections of the database pool", m.db_connections.clone());
    registry.register(
        "db_idle_connections",
        "Idle connections of the database pool",
        m.db_idle_connections.clone(),
    );
    registry.register(
        "linked_secret_fetches",
        "Fetches of linked secrets' values from their providers, by outcome",
        m.linked_fetches.clone(),
    );
}

/// A database operation being timed: observed when dropped.
pub(crate) struct Timed<T> {
    inner: T,
    started: std::time::Instant,
    backend: &'static str,
}

impl<T> Timed<T> {
    pub(crate) fn new(inner: T, backend: &'static str) -> Self {
        Self::since(inner, backend, std::time::Instant::now())
    }

    pub(crate) fn since(inner: T, backend: &'static str, started: std::time::Instant) -> Self {
        Self { inner, started, backend }
    }
}

impl<T: std::ops::Deref> std::ops::Deref for Timed<T> {
    type Target = T::Target;
    fn deref(&self) -> &T::Target {
        &self.inner
    }
}

impl<T: std::ops::DerefMut> std::ops::DerefMut for Timed<T> {
    fn deref_mut(&mut self) -> &mut T::Target {
        &mut self.inner
    }
}

impl<T> Drop for Timed<T> {
    fn drop(&mut self) {
        STORE
            .db_operations
            .get_or_create(&BackendLabels { backend: self.backend.to_owned() })
            .observe(self.started.elapsed().as_secs_f64());
    }
}
