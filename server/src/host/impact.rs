//! What a change of a secret's value (or its delete) would touch: every configuration and field
//! that uses it, which of them hold a connection the change makes them open again, how often each
//! used it in the last hour, and the customers it is shared with.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use veil_store::{Actor, CustomerId, OwnerType, OwnerUsage, SecretId};

use super::{Host, HostResult, system_actor};

/// The answer of `GET /api/secrets/{id}/impact`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Impact {
    /// One row per configuration and field that uses the secret.
    pub(crate) consumers: Vec<Consumer>,
    /// How many of them hold a connection that a value change reconnects.
    pub(crate) reconnecting: usize,
    /// The customers the secret is shared with.
    pub(crate) customers: Vec<SharedWith>,
}

/// One place that uses the secret.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Consumer {
    #[serde(rename = "type")]
    pub(crate) kind: OwnerType,
    pub(crate) id: Uuid,
    pub(crate) name: String,
    /// The node (rule chains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) node: Option<String>,
    /// The field's JSON pointer.
    pub(crate) field: String,
    /// Whether it holds a connection (MQTT, AMQP, mutual TLS, a LORIOT session) that a value
    /// change closes and opens again with the new value.
    pub(crate) reconnects: bool,
    /// When the configuration last used the secret.
    pub(crate) last_used_time: Option<i64>,
    /// Its uses of the secret per minute over the last hour.
    pub(crate) messages_per_minute: f64,
}

/// A customer the secret is shared with.
#[derive(Debug, Serialize)]
pub(crate) struct SharedWith {
    pub(crate) id: CustomerId,
    pub(crate) name: String,
}

const HOUR_MS: i64 = 3_600_000;

impl Host {
    /// What changing or deleting the secret `id` would touch (SECRET:WRITE).
    pub(crate) async fn impact(&self, actor: &Actor, id: SecretId) -> HostResult<Impact> {
        let info = self.store.get(actor, id)?;
        let uses = self.store.uses_since(actor, id, veil_store::now_ms() - HOUR_MS).await?;
        let usages = self.store.usages(actor, id).await?;
        let system = system_actor(actor.tenant_id);
        let mut consumers = Vec::new();
        for (kind, owners) in
            [(OwnerType::RuleChain, &usages.rule_chains), (OwnerType::Integration, &usages.integrations)]
        {
            for owner in owners {
                let body =
                    self.store.owner(&system, kind, owner.id).await.map(|r| r.body).unwrap_or_default();
                let used = uses.get(&owner.id).copied().unwrap_or(0);
                consumers.extend(places(kind, owner, &body, &info.name, used));
            }
        }
        let mut customers = Vec::new();
        for customer in &info.shared_with {
            if let Ok(c) = self.store.customer(actor, *customer).await {
                customers.push(SharedWith { id: c.id, name: c.name });
            }
        }
        let reconnecting = consumers.iter().filter(|c| c.reconnects).count();
        Ok(Impact { consumers, reconnecting, customers })
    }
}

/// The rows of one configuration: a rule chain's nodes, or an integration's fields.
fn places(
    kind: OwnerType,
    owner: &OwnerUsage,
    body: &Value,
    secret: &str,
    uses_last_hour: u64,
) -> Vec<Consumer> {
    let row = |node: Option<String>, field: String, reconnects: bool| Consumer {
        kind,
        id: owner.id,
        name: owner.name.clone(),
        node,
        field,
        reconnects,
        last_used_time: owner.last_used_time,
        messages_per_minute: uses_last_hour as f64 / 60.0,
    };
    match kind {
        OwnerType::RuleChain => owner
            .nodes
            .iter()
            .map(|n| {
                let node = body["nodes"].as_array().and_then(|nodes| {
                    nodes.iter().find(|x| n.id.is_some() && x["id"].as_str() == n.id.as_deref())
                });
                let reconnects = node.is_some_and(|x| node_reconnects(&x["type"], &x["configuration"]));
                row(n.name.clone(), n.path.clone(), reconnects)
            })
            .collect(),
        OwnerType::Integration => {
            // Its fields: where its document names the secret.
            let reconnects = body["type"] == "LORIOT";
            let mut fields = Vec::new();
            pointers_naming(body, &format!("$<secret:{secret}>"), String::new(), &mut fields);
            fields.into_iter().map(|field| row(None, field, reconnects)).collect()
        }
    }
}

/// The JSON pointers of the strings of `value` that contain `placeholder`.
fn pointers_naming(value: &Value, placeholder: &str, at: String, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.contains(placeholder) => out.push(at),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers_naming(item, placeholder, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                pointers_naming(item, placeholder, format!("{at}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// Whether a node of this type and configuration holds a connection its secrets open: MQTT and
/// RabbitMQ keep one to their broker, a `rest_api_call` with client certificates keeps TLS
/// sessions made with them.
fn node_reconnects(node_type: &Value, configuration: &Value) -> bool {
    match node_type.as_str() {
        Some("mqtt" | "rabbitmq") => true,
        Some("rest_api_call") => configuration["credentials"]["type"] == "cert.PEM",
        _ => false,
    }
}
