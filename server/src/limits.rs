//! `veil serve` settings for [`veil_core::Limits`]: one flag and one environment variable per
//! limit; an absent one keeps the default (server/README.md, "Limits").

use std::time::Duration;

use veil_core::Limits;

/// Limits on what users can make the server spend.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct LimitArgs {
    /// Deepest nesting of arrays and objects in message data, script output and configurations [default: 64].
    #[arg(long, env = "VEIL_MAX_DATA_DEPTH", value_name = "N", value_parser = positive)]
    max_data_depth: Option<usize>,
    /// Most nodes in one rule chain [default: 1000].
    #[arg(long, env = "VEIL_MAX_NODES_PER_CHAIN", value_name = "N", value_parser = positive)]
    max_nodes_per_chain: Option<usize>,
    /// Most connections in one rule chain [default: 5000].
    #[arg(long, env = "VEIL_MAX_CONNECTIONS_PER_CHAIN", value_name = "N", value_parser = positive)]
    max_connections_per_chain: Option<usize>,
    /// Most rule chains per tenant [default: 100].
    #[arg(long, env = "VEIL_MAX_CHAINS_PER_TENANT", value_name = "N", value_parser = positive)]
    max_chains_per_tenant: Option<usize>,
    /// Most integrations per tenant [default: 100].
    #[arg(long, env = "VEIL_MAX_INTEGRATIONS_PER_TENANT", value_name = "N", value_parser = positive)]
    max_integrations_per_tenant: Option<usize>,
    /// Most secrets per tenant [default: 10000].
    #[arg(long, env = "VEIL_MAX_SECRETS_PER_TENANT", value_name = "N", value_parser = positive)]
    max_secrets_per_tenant: Option<usize>,
    /// Most bytes of secret values (current values, encrypted) per tenant [default: 268435456].
    #[arg(long, env = "VEIL_MAX_SECRET_BYTES_PER_TENANT", value_name = "BYTES", value_parser = positive)]
    max_secret_bytes_per_tenant: Option<usize>,
    /// Most users per tenant, customer users included [default: 1000].
    #[arg(long, env = "VEIL_MAX_USERS_PER_TENANT", value_name = "N", value_parser = positive)]
    max_users_per_tenant: Option<usize>,
    /// Most custom roles per tenant [default: 100].
    #[arg(long, env = "VEIL_MAX_ROLES_PER_TENANT", value_name = "N", value_parser = positive)]
    max_roles_per_tenant: Option<usize>,
    /// Most customers per tenant [default: 1000].
    #[arg(long, env = "VEIL_MAX_CUSTOMERS_PER_TENANT", value_name = "N", value_parser = positive)]
    max_customers_per_tenant: Option<usize>,
    /// Days audit entries are kept; older ones are deleted once an hour [default: 365].
    #[arg(long, env = "VEIL_AUDIT_RETENTION_DAYS", value_name = "DAYS", value_parser = positive)]
    audit_retention_days: Option<usize>,
    /// Most messages of one incoming message waiting at once (fan-out) [default: 1000].
    #[arg(long, env = "VEIL_MAX_QUEUED_MESSAGES", value_name = "N", value_parser = positive)]
    max_queued_messages: Option<usize>,
    /// Most bytes of message copies one incoming message may cause by fan-out [default: 67108864].
    #[arg(long, env = "VEIL_MAX_FANOUT_BYTES", value_name = "BYTES", value_parser = positive)]
    max_fanout_bytes: Option<usize>,
    /// Longest run of one script or converter, in milliseconds [default: 500].
    #[arg(long, env = "VEIL_SCRIPT_TIMEOUT_MS", value_name = "MS", value_parser = positive)]
    script_timeout_ms: Option<usize>,
    /// Most script and converter time one incoming message may take on the script threads, over all its steps, in milliseconds [default: 2000].
    #[arg(long, env = "VEIL_MAX_SCRIPT_TIME_PER_MESSAGE_MS", value_name = "MS", value_parser = positive)]
    max_script_time_per_message_ms: Option<usize>,
    /// Threads that run scripts and converters [default: the number of CPUs, at least 2].
    #[arg(long, env = "VEIL_SCRIPT_THREADS", value_name = "N", value_parser = positive)]
    script_threads: Option<usize>,
    /// Largest response body rest_api_call reads [default: 10485760].
    #[arg(long, env = "VEIL_MAX_RESPONSE_BYTES", value_name = "BYTES", value_parser = positive)]
    max_response_bytes: Option<usize>,
    /// Largest message kept in a debug event; larger ones are cut and marked truncated [default: 16384].
    #[arg(long, env = "VEIL_MAX_EVENT_MESSAGE_BYTES", value_name = "BYTES", value_parser = positive)]
    max_event_message_bytes: Option<usize>,
    /// Bytes of debug events kept per tenant [default: 67108864].
    #[arg(long, env = "VEIL_MAX_EVENT_BYTES_PER_TENANT", value_name = "BYTES", value_parser = positive)]
    max_event_bytes_per_tenant: Option<usize>,
    /// Messages processed at once per rule chain [default: 64].
    #[arg(long, env = "VEIL_MAX_IN_FLIGHT_PER_CHAIN", value_name = "N", value_parser = positive)]
    max_in_flight_per_chain: Option<usize>,
    /// Messages processed at once per tenant, uplinks included [default: 256].
    #[arg(long, env = "VEIL_MAX_IN_FLIGHT_PER_TENANT", value_name = "N", value_parser = positive)]
    max_in_flight_per_tenant: Option<usize>,
}

fn positive(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{raw}' is not a whole number")),
    }
}

impl LimitArgs {
    /// The limits: what was set, defaults for the rest.
    pub(crate) fn limits(&self) -> Limits {
        let d = Limits::default();
        Limits {
            max_data_depth: self.max_data_depth.unwrap_or(d.max_data_depth),
            max_nodes_per_chain: self.max_nodes_per_chain.unwrap_or(d.max_nodes_per_chain),
            max_connections_per_chain: self.max_connections_per_chain.unwrap_or(d.max_connections_per_chain),
            max_chains_per_tenant: self.max_chains_per_tenant.unwrap_or(d.max_chains_per_tenant),
            max_integrations_per_tenant: self
                .max_integrations_per_tenant
                .unwrap_or(d.max_integrations_per_tenant),
            max_queued_messages: self.max_queued_messages.unwrap_or(d.max_queued_messages),
            max_fanout_bytes: self.max_fanout_bytes.unwrap_or(d.max_fanout_bytes),
            script_timeout: self
                .script_timeout_ms
                .map_or(d.script_timeout, |ms| Duration::from_millis(ms as u64)),
            max_script_time_per_message: self
                .max_script_time_per_message_ms
                .map_or(d.max_script_time_per_message, |ms| Duration::from_millis(ms as u64)),
            script_threads: self.script_threads.unwrap_or(d.script_threads),
            max_response_bytes: self.max_response_bytes.unwrap_or(d.max_response_bytes),
            max_event_message_bytes: self.max_event_message_bytes.unwrap_or(d.max_event_message_bytes),
            max_event_bytes_per_tenant: self
                .max_event_bytes_per_tenant
                .unwrap_or(d.max_event_bytes_per_tenant),
            max_in_flight_per_chain: self.max_in_flight_per_chain.unwrap_or(d.max_in_flight_per_chain),
            max_in_flight_per_tenant: self.max_in_flight_per_tenant.unwrap_or(d.max_in_flight_per_tenant),
        }
    }
}

impl LimitArgs {
    /// The store's quotas: what was set, defaults for the rest (rule chains and integrations are
    /// counted by the store, in the transaction that inserts).
    pub(crate) fn store_limits(&self) -> veil_store::Limits {
        let d = veil_store::Limits::default();
        let core = self.limits();
        veil_store::Limits {
            max_chains_per_tenant: core.max_chains_per_tenant,
            max_integrations_per_tenant: core.max_integrations_per_tenant,
            max_secrets_per_tenant: self.max_secrets_per_tenant.unwrap_or(d.max_secrets_per_tenant),
            max_secret_bytes_per_tenant: self
                .max_secret_bytes_per_tenant
                .unwrap_or(d.max_secret_bytes_per_tenant),
            max_users_per_tenant: self.max_users_per_tenant.unwrap_or(d.max_users_per_tenant),
            max_roles_per_tenant: self.max_roles_per_tenant.unwrap_or(d.max_roles_per_tenant),
            max_customers_per_tenant: self.max_customers_per_tenant.unwrap_or(d.max_customers_per_tenant),
            audit_retention_days: self
                .audit_retention_days
                .map_or(d.audit_retention_days, |days| days as u64),
            ..d
        }
    }
}
