//! The reference registry: which configuration (rule chain or integration, and which node and field
//! in it) uses which secret.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{CustomerId, SecretId};

/// The kinds of configuration that can reference secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OwnerType {
    /// A rule chain.
    RuleChain,
    /// An integration.
    Integration,
    /// A secret provider (its credentials are secrets).
    SecretProvider,
}

impl OwnerType {
    /// The stored and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RuleChain => "RULE_CHAIN",
            Self::Integration => "INTEGRATION",
            Self::SecretProvider => "SECRET_PROVIDER",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "RULE_CHAIN" => Some(Self::RuleChain),
            "INTEGRATION" => Some(Self::Integration),
            "SECRET_PROVIDER" => Some(Self::SecretProvider),
            _ => None,
        }
    }
}

/// A configuration that owns references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Rule chain or integration.
    pub kind: OwnerType,
    /// Its id.
    pub id: Uuid,
    /// Its display name.
    pub name: String,
    /// The customer it belongs to, if a customer user made it.
    pub customer_id: Option<CustomerId>,
}

/// One use of a secret inside an owner's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    /// The referenced secret's name.
    pub secret_name: String,
    /// The node's id, for rule chains.
    pub node_id: Option<String>,
    /// The node's name, for rule chains.
    pub node_name: Option<String>,
    /// The JSON pointer of the field (`/nodes/2/configuration/credentials/password`).
    pub pointer: String,
}

/// One use of another configuration inside an owner's configuration (a rule chain's
/// `integration_downlink` node and its integration): tracked like a secret reference, so the
/// target cannot be deleted while it is used.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerLink {
    /// The kind of the configuration used.
    pub kind: OwnerType,
    /// Its id.
    pub target: Uuid,
    /// The node's id.
    pub node_id: Option<String>,
    /// The node's name.
    pub node_name: Option<String>,
    /// The JSON pointer of the field naming it.
    pub pointer: String,
}

/// A node of a rule chain that uses a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeUsage {
    /// The node's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The node's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The field's JSON pointer.
    pub path: String,
}

/// An owner that uses a secret, with the places it does so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerUsage {
    /// The owner's id.
    pub id: Uuid,
    /// The owner's name.
    pub name: String,
    /// The nodes (rule chains only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeUsage>,
    /// When it last used the secret (the start of that minute; absent: not yet).
    #[serde(rename = "lastUsedTime", skip_serializing_if = "Option::is_none")]
    pub last_used_time: Option<i64>,
}

/// Every user of a secret, grouped by owner type: `{RULE_CHAIN: [...], INTEGRATION: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usages {
    /// Rule chains and their nodes.
    #[serde(rename = "RULE_CHAIN")]
    pub rule_chains: Vec<OwnerUsage>,
    /// Integrations.
    #[serde(rename = "INTEGRATION")]
    pub integrations: Vec<OwnerUsage>,
    /// Secret providers (whose credentials the secret is).
    #[serde(rename = "SECRET_PROVIDER", skip_serializing_if = "Vec::is_empty")]
    pub secret_providers: Vec<OwnerUsage>,
}

impl Usages {
    /// No users at all.
    pub fn is_empty(&self) -> bool {
        self.rule_chains.is_empty() && self.integrations.is_empty() && self.secret_providers.is_empty()
    }

    /// Groups `(owner type, owner id, owner name, ref)` rows, keeping their order.
    pub(crate) fn group(rows: Vec<(OwnerType, Uuid, String, SecretRef)>) -> Self {
        let mut usages = Usages::default();
        for (kind, id, name, r) in rows {
            let list = match kind {
                OwnerType::RuleChain => &mut usages.rule_chains,
                OwnerType::Integration => &mut usages.integrations,
                OwnerType::SecretProvider => &mut usages.secret_providers,
            };
            let entry = match list.iter_mut().position(|o| o.id == id) {
                Some(i) => &mut list[i],
                None => {
                    list.push(OwnerUsage { id, name, nodes: Vec::new(), last_used_time: None });
                    list.last_mut().expect("just pushed")
                }
            };
            if kind == OwnerType::RuleChain {
                entry.nodes.push(NodeUsage { id: r.node_id, name: r.node_name, path: r.pointer });
            }
        }
        usages
    }
}

impl std::fmt::Display for Usages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for chain in &self.rule_chains {
            let nodes: Vec<&str> = chain.nodes.iter().filter_map(|n| n.name.as_deref()).collect();
            if nodes.is_empty() {
                parts.push(format!("rule chain '{}'", chain.name));
            } else {
                parts.push(format!("rule chain '{}' (node '{}')", chain.name, nodes.join("', '")));
            }
        }
        for integration in &self.integrations {
            parts.push(format!("integration '{}'", integration.name));
        }
        for provider in &self.secret_providers {
            parts.push(format!("secret provider '{}'", provider.name));
        }
        f.write_str(&parts.join(", "))
    }
}

/// A reference with the secret resolved to its id, ready to persist.
pub(crate) struct ResolvedRef<'a> {
    pub(crate) secret_id: SecretId,
    pub(crate) reference: &'a SecretRef,
}
