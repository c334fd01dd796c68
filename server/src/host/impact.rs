//! What a change of a secret's value (or its delete) would touch: every configuration and field
//! that uses it, which of them hold a connection the change makes them open again, how often each
//! used it in the last hour, and the customers it is shared with.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use veil_store::{Actor, CustomerId, OwnerType, OwnerUsage, SecretId, TenantId};

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

/// One field of one configuration that uses a secret.
pub(super) struct Place {
    pub(super) kind: OwnerType,
    pub(super) owner: OwnerUsage,
    /// The node's id and name (rule chains).
    pub(super) node_id: Option<String>,
    pub(super) node: Option<String>,
    /// The field's JSON pointer.
    pub(super) field: String,
}

impl Host {
    /// What changing or deleting the secret `id` would touch (SECRET:WRITE).
    pub(crate) async fn impact(&self, actor: &Actor, id: SecretId) -> HostResult<Impact> {
        let info = self.store.get(actor, id)?;
        let uses = self.store.uses_since(actor, id, veil_store::now_ms() - HOUR_MS).await?;
        let consumers = self
            .places(actor, id, &info.name)
            .await?
            .into_iter()
            .map(|place| {
                let used = uses.get(&place.owner.id).copied().unwrap_or(0);
                Consumer {
                    kind: place.kind,
                    id: place.owner.id,
                    reconnects: self.reconnects(actor.tenant_id, &place),
                    name: place.owner.name,
                    node: place.node,
                    field: place.field,
                    last_used_time: place.owner.last_used_time,
                    messages_per_minute: used as f64 / 60.0,
                }
            })
            .collect::<Vec<_>>();
        let mut customers = Vec::new();
        for customer in &info.shared_with {
            if let Ok(c) = self.store.customer(actor, *customer).await {
                customers.push(SharedWith { id: c.id, name: c.name });
            }
        }
        let reconnecting = consumers.iter().filter(|c| c.reconnects).count();
        Ok(Impact { consumers, reconnecting, customers })
    }

    /// Every field of every configuration that uses the secret `name` (`id`): a rule chain's
    /// node fields, an integration's fields (where its document names the secret).
    pub(super) async fn places(&self, actor: &Actor, id: SecretId, name: &str) -> HostResult<Vec<Place>> {
        let usages = self.store.usages(actor, id).await?;
        let mut places = Vec::new();
        for owner in usages.rule_chains {
            for node in &owner.nodes {
                places.push(Place {
                    kind: OwnerType::RuleChain,
                    owner: owner.clone(),
                    node_id: node.id.clone(),
                    node: node.name.clone(),
                    field: node.path.clone(),
                });
            }
        }
        let system = system_actor(actor.tenant_id);
        for owner in usages.integrations {
            let body = self
                .store
                .owner(&system, OwnerType::Integration, owner.id)
                .await
                .map(|r| r.body)
                .unwrap_or_default();
            let mut fields = Vec::new();
            pointers_naming(&body, &format!("$<secret:{name}>"), String::new(), &mut fields);
            if fields.is_empty() {
                // A converter's secret("...") call.
                fields.push(String::new());
            }
            for field in fields {
                places.push(Place {
                    kind: OwnerType::Integration,
                    owner: owner.clone(),
                    node_id: None,
                    node: None,
                    field,
                });
            }
        }
        Ok(places)
    }

    /// Whether the running node or integration of `place` holds a connection its secrets open
    /// (each type says so itself).
    pub(super) fn reconnects(&self, tenant: TenantId, place: &Place) -> bool {
        match place.kind {
            OwnerType::RuleChain => self
                .chains
                .get(place.owner.id)
                .zip(place.node_id.as_deref())
                .is_some_and(|(chain, node)| chain.node_reconnects(node)),
            OwnerType::Integration => self
                .integrations
                .get(tenant, place.owner.id)
                .is_some_and(|integration| integration.reconnects()),
            OwnerType::SecretProvider => false,
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
