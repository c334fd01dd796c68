//! The engine's metrics (Prometheus): messages into and out of every node by relation, each
//! node's time, failures by node type, messages refused by each limit, and what runs per chain.
//! Labels are ids, node types, relation and limit names: never message data. A chain's series go
//! when the chain is deleted (`ChainMetrics::remove`); names are joined from the `*_info`
//! series.
//!
//! The families are process-wide ([`ENGINE`]); the server registers them ([`register`]) and
//! serves them at `/metrics`. On the message path a node's counters are resolved once, when the
//! chain is deployed: a step costs a few atomic additions and two clock reads.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A chain.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChainLabels {
    /// The chain's id.
    pub chain: String,
}

/// A chain's name and tenant (value 1), to join names to ids.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChainInfoLabels {
    /// The chain's id.
    pub chain: String,
    /// Its tenant's id.
    pub tenant: String,
    /// Its name.
    pub name: String,
}

/// A node of a chain.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    /// The chain's id.
    pub chain: String,
    /// The node's id (its index in the chain when it has none).
    pub node: String,
}

/// A node's name and type (value 1).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeInfoLabels {
    /// The chain's id.
    pub chain: String,
    /// The node's id.
    pub node: String,
    /// Its name.
    pub name: String,
    /// Its type.
    pub node_type: String,
}

/// What a node sent on one relation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelationLabels {
    /// The chain's id.
    pub chain: String,
    /// The node's id.
    pub node: String,
    /// The relation (`Success`, `Failure`, `True`…).
    pub relation: String,
}

/// A node type.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    /// The node type.
    pub node_type: String,
}

/// A limit, by the name its errors give (`maxInFlightPerChain`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// The limit.
    pub limit: String,
}

fn node_seconds() -> Histogram {
    // 50 µs … ~26 s.
    Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
}

/// The engine's metric families.
pub struct EngineMetrics {
    /// Messages each node got.
    pub node_messages_in: Family<NodeLabels, Counter>,
    /// Messages each node sent, by relation.
    pub node_messages_out: Family<RelationLabels, Counter>,
    /// How long each node took per message.
    pub node_seconds: Family<NodeLabels, Histogram, fn() -> Histogram>,
    /// Node failures (the Failure relation of an error, or a stop), by node type.
    pub node_failures: Family<TypeLabels, Counter>,
    /// Messages (or requests) refused by each limit.
    pub limit_refusals: Family<LimitLabels, Counter>,
    /// Incoming messages each chain took in.
    pub chain_messages: Family<ChainLabels, Counter>,
    /// Messages each chain runs now (set when scraped).
    pub chain_in_flight: Family<ChainLabels, Gauge>,
    /// Chain names.
    pub chain_info: Family<ChainInfoLabels, Gauge>,
    /// Node names and types.
    pub node_info: Family<NodeInfoLabels, Gauge>,
}

/// The process's engine metrics.
pub static ENGINE: LazyLock<EngineMetrics> = LazyLock::new(|| EngineMetrics {
    node_messages_in: Family::default(),
    node_messages_out: Family::default(),
    node_seconds: Family::new_with_constructor(node_seconds),
    node_failures: Family::default(),
    limit_refusals: Family::default(),
    chain_messages: Family::default(),
    chain_in_flight: Family::default(),
    chain_info: Family::default(),
    node_info: Family::default(),
});

/// Registers the engine's families (names without the registry's `veil_` prefix).
pub fn register(registry: &mut Registry) {
    let m = &*ENGINE;
    registry.register("node_messages_in", "Messages a node got", m.node_messages_in.clone());
    registry.register("node_messages_out", "Messages a node sent, by relation", m.node_messages_out.clone());
    registry.register("node_duration_seconds", "Time a node took per message", m.node_seconds.clone());
    registry.register("node_failures", "Node failures, by node type", m.node_failures.clone());
    registry.register("limit_refusals", "Messages or requests refused by a limit", m.limit_refusals.clone());
    registry.register(
        "chain_messages_in",
        "Incoming messages a rule chain took in",
        m.chain_messages.clone(),
    );
    registry.register("chain_in_flight", "Messages a rule chain runs now", m.chain_in_flight.clone());
    registry.register("chain_info", "A rule chain's name and tenant (value 1)", m.chain_info.clone());
    registry.register("node_info", "A node's name and type (value 1)", m.node_info.clone());
}

/// Counts one refusal by the limit `name`.
pub fn count_refusal(name: &str) {
    ENGINE.limit_refusals.get_or_create(&LimitLabels { limit: name.to_owned() }).inc();
}

/// The relation label of messages sent on a relation the chain does not connect.
const OTHER: &str = "other";

/// One node's counters, resolved at deploy time.
pub(crate) struct NodeMetrics {
    labels: NodeLabels,
    info: NodeInfoLabels,
    pub(crate) messages_in: Counter,
    pub(crate) seconds: Histogram,
    pub(crate) failures: Counter,
    /// The relations the node is known to send on (its connections, Success, Failure).
    outputs: Vec<(String, Counter)>,
}

impl NodeMetrics {
    pub(crate) fn new(chain: &str, node: String, name: &str, node_type: &str, relations: &[&str]) -> Self {
        let m = &*ENGINE;
        let labels = NodeLabels { chain: chain.to_owned(), node };
        let info = NodeInfoLabels {
            chain: chain.to_owned(),
            node: labels.node.clone(),
            name: name.to_owned(),
            node_type: node_type.to_owned(),
        };
        m.node_info.get_or_create(&info).set(1);
        let mut known: Vec<&str> = vec!["Success", "Failure", OTHER];
        known.extend(relations.iter().copied());
        known.sort_unstable();
        known.dedup();
        let outputs = known
            .into_iter()
            .map(|relation| {
                (
                    relation.to_owned(),
                    m.node_messages_out.get_or_create_owned(&Self::relation(&labels, relation)),
                )
            })
            .collect();
        Self {
            messages_in: m.node_messages_in.get_or_create_owned(&labels),
            seconds: m.node_seconds.get_or_create_owned(&labels),
            failures: m.node_failures.get_or_create_owned(&TypeLabels { node_type: node_type.to_owned() }),
            labels,
            info,
            outputs,
        }
    }

    fn relation(labels: &NodeLabels, relation: &str) -> RelationLabels {
        RelationLabels {
            chain: labels.chain.clone(),
            node: labels.node.clone(),
            relation: relation.to_owned(),
        }
    }

    /// Counts one message sent on `relation`. A relation the chain does not connect (a switch
    /// script's names come from its code, per message) counts as `other`: labels stay bounded by
    /// the chain's own size, whatever a script answers.
    pub(crate) fn sent(&self, relation: &str) {
        let counter = self
            .outputs
            .iter()
            .find(|(r, _)| r == relation)
            .or_else(|| self.outputs.iter().find(|(r, _)| r == OTHER));
        if let Some((_, counter)) = counter {
            counter.inc();
        }
    }

    /// Removes the node's series (its chain was deleted, or a redeploy dropped the node).
    fn remove(&self) {
        let m = &*ENGINE;
        m.node_messages_in.remove(&self.labels);
        m.node_seconds.remove(&self.labels);
        m.node_info.remove(&self.info);
        for (relation, _) in &self.outputs {
            m.node_messages_out.remove(&Self::relation(&self.labels, relation));
        }
    }
}

/// A chain's series: what [`ChainMetrics::remove`] takes away.
pub(crate) struct ChainMetrics {
    labels: ChainLabels,
    info: ChainInfoLabels,
    pub(crate) messages: Counter,
}

impl ChainMetrics {
    pub(crate) fn new(chain: &str, tenant: &str, name: &str) -> Self {
        let m = &*ENGINE;
        let labels = ChainLabels { chain: chain.to_owned() };
        let info =
            ChainInfoLabels { chain: chain.to_owned(), tenant: tenant.to_owned(), name: name.to_owned() };
        m.chain_info.get_or_create(&info).set(1);
        Self { messages: m.chain_messages.get_or_create_owned(&labels), labels, info }
    }

    /// Sets how many messages the chain runs now.
    pub(crate) fn set_in_flight(&self, running: i64) {
        ENGINE.chain_in_flight.get_or_create(&self.labels).set(running);
    }

    /// Removes the series of a chain and its nodes, but those `replacement` still has (a redeploy
    /// keeps the counters of the nodes it keeps); all of them when the chain was deleted.
    pub(crate) fn remove<'a>(
        &self,
        nodes: impl Iterator<Item = &'a NodeMetrics>,
        replacement: Option<(&ChainMetrics, &[&NodeMetrics])>,
    ) {
        let m = &*ENGINE;
        for node in nodes {
            let kept = replacement.is_some_and(|(_, new)| new.iter().any(|n| n.labels == node.labels));
            if !kept {
                node.remove();
            } else if let Some((_, new)) = replacement
                && !new.iter().any(|n| n.info == node.info)
            {
                m.node_info.remove(&node.info);
            }
        }
        match replacement {
            Some((new, _)) => {
                if new.info != self.info {
                    m.chain_info.remove(&self.info);
                }
            }
            None => {
                m.chain_messages.remove(&self.labels);
                m.chain_in_flight.remove(&self.labels);
                m.chain_info.remove(&self.info);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relations_a_chain_does_not_connect_count_as_other() {
        let node = NodeMetrics::new("metrics-test-chain", "n1".into(), "Switch", "script", &["True"]);
        for n in 0..100 {
            node.sent(&format!("made-up-{n}"));
        }
        node.sent("True");
        let value = |relation: &str| {
            let labels = NodeMetrics::relation(&node.labels, relation);
            ENGINE.node_messages_out.get(&labels).map(|c| c.get())
        };
        assert_eq!((value("other"), value("True"), value("made-up-7")), (Some(100), Some(1), None));
        node.remove();
        assert_eq!(value("other"), None, "removed with the node");
    }
}
