//! Bounds on what one user can make the server spend. Every limit has a default here, a setting
//! in `veil serve` (flag and environment variable, see server/README.md, "Limits") and an error
//! that names it (`limit maxDataDepth (64) exceeded: ...`), never a value.

use std::time::Duration;

/// The limits a deployment runs under. `Default` gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of arrays and objects in message data, script output and configurations.
    pub max_data_depth: usize,
    /// Most nodes in one rule chain.
    pub max_nodes_per_chain: usize,
    /// Most connections in one rule chain.
    pub max_connections_per_chain: usize,
    /// Most rule chains per tenant.
    pub max_chains_per_tenant: usize,
    /// Most integrations per tenant.
    pub max_integrations_per_tenant: usize,
    /// Most messages of one incoming message waiting at once in the chain's queue (fan-out).
    pub max_queued_messages: usize,
    /// Most bytes of message copies one incoming message may cause by fan-out.
    pub max_fanout_bytes: usize,
    /// Longest wall-clock time of one script or converter run.
    pub script_timeout: Duration,
    /// Most script and converter time one incoming message may take on the script threads, over
    /// all its steps (never less than `script_timeout`).
    pub max_script_time_per_message: Duration,
    /// Threads that run scripts and converters (off the async workers).
    pub script_threads: usize,
    /// Largest response body `rest_api_call` reads.
    pub max_response_bytes: usize,
    /// Largest message kept in a debug event (larger data is truncated and marked so).
    pub max_event_message_bytes: usize,
    /// Bytes of debug events kept per tenant, over all its chains.
    pub max_event_bytes_per_tenant: usize,
    /// Messages being processed at once per rule chain.
    pub max_in_flight_per_chain: usize,
    /// Messages being processed at once per tenant (uplinks included).
    pub max_in_flight_per_tenant: usize,
}

/// The CPUs this process may use (at least 2): the default of `script_threads`. Asked once: each
/// answer reads the cgroup files under /proc, and every node built starts from the defaults.
static CPUS: std::sync::LazyLock<usize> =
    std::sync::LazyLock::new(|| std::thread::available_parallelism().map_or(2, |n| n.get()).max(2));

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_data_depth: 64,
            max_nodes_per_chain: 1000,
            max_connections_per_chain: 5000,
            max_chains_per_tenant: 100,
            max_integrations_per_tenant: 100,
            max_queued_messages: 1000,
            max_fanout_bytes: 64 * 1024 * 1024,
            script_timeout: Duration::from_millis(500),
            max_script_time_per_message: Duration::from_millis(2000),
            script_threads: *CPUS,
            max_response_bytes: 10 * 1024 * 1024,
            max_event_message_bytes: 16 * 1024,
            max_event_bytes_per_tenant: 64 * 1024 * 1024,
            max_in_flight_per_chain: 64,
            max_in_flight_per_tenant: 256,
        }
    }
}

/// The text of an error for a limit that was reached: its setting's name and value first. Counts
/// one refusal by the limit (`veil_limit_refusals_total`): call it once per refusal.
pub fn limit_error(name: &str, value: impl std::fmt::Display, what: impl std::fmt::Display) -> String {
    crate::metrics::count_refusal(name);
    limit_message(name, value, what)
}

/// [`limit_error`]'s text, counting nothing (an error shown again).
pub(crate) fn limit_message(
    name: &str,
    value: impl std::fmt::Display,
    what: impl std::fmt::Display,
) -> String {
    format!("limit {name} ({value}) exceeded: {what}")
}
