//! The audit log: who did what to which secret (or account), when, and how it ended — never a
//! value. Uses of secrets by running configurations are counted in memory and written once per
//! secret, owner and minute.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use uuid::Uuid;

use crate::model::{SecretId, TenantId, now_ms};
use crate::references::OwnerType;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditAction {
    /// A secret was created.
    Create,
    /// A secret's value changed (new version).
    ValueChange,
    /// A secret's description (or file name) changed.
    DescriptionChange,
    /// A secret was deleted.
    Delete,
    /// Deleting a secret was refused because configurations use it.
    DeleteRefused,
    /// A secret was shared with a customer.
    Share,
    /// A share was removed.
    Unshare,
    /// Removing a share was refused because the customer's configurations use the secret.
    UnshareRefused,
    /// A running configuration used a secret (counted per minute).
    Use,
    /// A user logged in.
    Login,
    /// A login failed.
    LoginFailed,
    /// A secret's allowed destinations changed.
    DestinationsChange,
    /// A send was refused: a secret it carried may not go to that destination.
    BlockedDestination,
    /// A secret was rolled back: a new version with an earlier version's value.
    Rollback,
    /// A candidate value was compared with a secret's versions (the answer is in the details).
    Verify,
    /// The number of versions a secret keeps changed.
    MaxVersionsChange,
    /// A secret's expiry (`expiresAt`) was set or cleared.
    ExpiryChange,
    /// A pending value was staged for a rotation (its probes start).
    PendingValue,
    /// A pending value was promoted: the new current version.
    Promote,
    /// A pending value was dropped.
    PendingDropped,
    /// A data key rotation began (a new key seals new values).
    KeyRotationStart,
    /// A data key rotation ended: every value sealed with the new key, the older keys retired.
    KeyRotationDone,
    /// A linked secret was pointed at another source (provider and key).
    SourceChange,
}

impl AuditAction {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::ValueChange => "VALUE_CHANGE",
            Self::DescriptionChange => "DESCRIPTION_CHANGE",
            Self::Delete => "DELETE",
            Self::DeleteRefused => "DELETE_REFUSED",
            Self::Share => "SHARE",
            Self::Unshare => "UNSHARE",
            Self::UnshareRefused => "UNSHARE_REFUSED",
            Self::Use => "USE",
            Self::Login => "LOGIN",
            Self::LoginFailed => "LOGIN_FAILED",
            Self::DestinationsChange => "DESTINATIONS_CHANGE",
            Self::BlockedDestination => "BLOCKED_DESTINATION",
            Self::Rollback => "ROLLBACK",
            Self::Verify => "VERIFY",
            Self::MaxVersionsChange => "MAX_VERSIONS_CHANGE",
            Self::ExpiryChange => "EXPIRY_CHANGE",
            Self::PendingValue => "PENDING_VALUE",
            Self::Promote => "PROMOTE",
            Self::PendingDropped => "PENDING_DROPPED",
            Self::KeyRotationStart => "KEY_ROTATION_START",
            Self::KeyRotationDone => "KEY_ROTATION_DONE",
            Self::SourceChange => "SOURCE_CHANGE",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [
            Self::Create,
            Self::ValueChange,
            Self::DescriptionChange,
            Self::Delete,
            Self::DeleteRefused,
            Self::Share,
            Self::Unshare,
            Self::UnshareRefused,
            Self::Use,
            Self::Login,
            Self::LoginFailed,
            Self::DestinationsChange,
            Self::BlockedDestination,
            Self::Rollback,
            Self::Verify,
            Self::MaxVersionsChange,
            Self::ExpiryChange,
            Self::PendingValue,
            Self::Promote,
            Self::PendingDropped,
            Self::KeyRotationStart,
            Self::KeyRotationDone,
            Self::SourceChange,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Increasing id.
    pub id: i64,
    /// The tenant; absent for failed logins of unknown users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<TenantId>,
    /// Milliseconds since the epoch (for uses: the start of the minute).
    pub time: i64,
    /// Who acted: a user id, or for uses the configuration's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// The user's name, or for uses `RULE_CHAIN 'name'` / `INTEGRATION 'name'`.
    pub actor_name: String,
    /// What was done.
    pub action: AuditAction,
    /// `SECRET` or `USER`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    /// The target's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// The target's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
    /// `SUCCESS` or `FAILURE`.
    pub outcome: String,
    /// More: a version, a customer id, a use count, a reason, an address. Never a value.
    pub details: serde_json::Value,
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Entries about this secret.
    pub secret_id: Option<SecretId>,
    /// Entries by this actor (user name, or id).
    pub actor: Option<String>,
    /// From this time on (ms, inclusive).
    pub from: Option<i64>,
    /// Before this time (ms, exclusive).
    pub to: Option<i64>,
    /// Zero-based page.
    pub page: usize,
    /// Entries per page, 1..=1000.
    pub page_size: usize,
}

/// An entry before it is stored.
#[derive(Debug, Clone)]
pub(crate) struct NewAuditEntry {
    pub(crate) tenant_id: Option<TenantId>,
    pub(crate) time: i64,
    pub(crate) actor_id: Option<String>,
    pub(crate) actor_name: String,
    pub(crate) action: AuditAction,
    pub(crate) target_type: Option<&'static str>,
    pub(crate) target_id: Option<String>,
    pub(crate) target_name: Option<String>,
    pub(crate) success: bool,
    pub(crate) details: serde_json::Value,
}

/// The configuration on whose behalf secrets are resolved: a node's or integration's
/// `Secrets` handle carries it, and every resolve through the handle is counted as its use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UseContext {
    /// Rule chain or integration.
    pub kind: OwnerType,
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
}

/// One secret used by one configuration in one minute (all `Copy`: counting allocates nothing
/// after the first use of the minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct UseKey {
    tenant: TenantId,
    secret: SecretId,
    owner_kind: OwnerType,
    owner: Uuid,
    minute: i64,
}

#[derive(Debug)]
struct UseCount {
    count: u64,
    secret_name: String,
    owner_name: String,
    /// `veil_secret_resolves_total` of the secret (looked up once a minute per key).
    resolves: prometheus_client::metrics::counter::Counter,
}

/// Uses counted since the last flush.
#[derive(Debug, Default)]
pub(crate) struct UseCounter {
    counts: Mutex<HashMap<UseKey, UseCount>>,
}

const MINUTE_MS: i64 = 60_000;

impl UseCounter {
    /// Counts one use of `secret` by the configuration `owner`.
    pub(crate) fn count(&self, tenant: TenantId, secret: SecretId, secret_name: &str, owner: &UseContext) {
        {
            let key = UseKey {
                tenant,
                secret,
                owner_kind: owner.kind,
                owner: owner.id,
                minute: now_ms() / MINUTE_MS * MINUTE_MS,
            };
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            let entry = counts.entry(key).or_insert_with(|| UseCount {
                count: 0,
                secret_name: secret_name.to_owned(),
                owner_name: owner.name.clone(),
                resolves: crate::metrics::STORE.secret_resolves.get_or_create_owned(
                    &crate::metrics::SecretLabels {
                        tenant: tenant.0.to_string(),
                        secret: secret_name.to_owned(),
                    },
                ),
            });
            entry.count += 1;
            entry.resolves.inc();
        }
    }

    /// Takes the counts of finished minutes (or all, at shutdown) as audit entries.
    pub(crate) fn drain(&self, all: bool) -> Vec<NewAuditEntry> {
        let current = now_ms() / MINUTE_MS * MINUTE_MS;
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let done: Vec<UseKey> = counts.keys().filter(|k| all || k.minute < current).copied().collect();
        done.into_iter()
            .filter_map(|k| counts.remove(&k).map(|n| (k, n)))
            .map(|(k, n)| NewAuditEntry {
                tenant_id: Some(k.tenant),
                time: k.minute,
                actor_id: Some(k.owner.to_string()),
                actor_name: format!("{} '{}'", k.owner_kind.as_str(), n.owner_name),
                action: AuditAction::Use,
                target_type: Some("SECRET"),
                target_id: Some(k.secret.to_string()),
                target_name: Some(n.secret_name),
                success: true,
                details: serde_json::json!({ "count": n.count, "ownerType": k.owner_kind.as_str(), "ownerId": k.owner }),
            })
            .collect()
    }
}

/// Most distinct (secret, configuration, node, destination) keys a minute keeps apart; past it,
/// further destinations of that minute count under `(other destinations)`.
const MAX_BLOCKED_KEYS: usize = 10_000;

/// One kind of refused send in one minute: which secret, from which configuration and node, to
/// where.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BlockedKey {
    pub(crate) tenant: TenantId,
    pub(crate) secret: String,
    pub(crate) owner: Option<(OwnerType, Uuid)>,
    pub(crate) node: Option<String>,
    pub(crate) destination: String,
    minute: i64,
}

impl BlockedKey {
    /// A refused send now.
    pub(crate) fn now(
        tenant: TenantId,
        secret: &str,
        owner: Option<(OwnerType, Uuid)>,
        node: Option<&str>,
        destination: &str,
    ) -> Self {
        Self {
            tenant,
            secret: secret.to_owned(),
            owner,
            node: node.map(str::to_owned),
            destination: destination.to_owned(),
            minute: now_ms() / MINUTE_MS * MINUTE_MS,
        }
    }
}

#[derive(Debug)]
struct BlockedCount {
    count: u64,
    secret_id: Option<String>,
    owner_name: Option<String>,
}

/// Refused sends (BLOCKED_DESTINATION) counted like uses: one audit entry per secret,
/// configuration, node, destination and minute, with a count.
#[derive(Debug, Default)]
pub(crate) struct BlockedCounter {
    counts: Mutex<HashMap<BlockedKey, BlockedCount>>,
}

impl BlockedCounter {
    /// Counts one refused send; true when it is the first of its key this minute (worth a log
    /// line).
    pub(crate) fn count(
        &self,
        mut key: BlockedKey,
        secret_id: Option<String>,
        owner_name: Option<String>,
    ) -> bool {
        crate::metrics::STORE
            .destinations_blocked
            .get_or_create(&crate::metrics::SecretLabels {
                tenant: key.tenant.0.to_string(),
                secret: key.secret.clone(),
            })
            .inc();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= MAX_BLOCKED_KEYS && !counts.contains_key(&key) {
            key.destination = "(other destinations)".to_owned();
        }
        let entry = counts.entry(key).or_insert(BlockedCount { count: 0, secret_id, owner_name });
        entry.count += 1;
        entry.count == 1
    }

    /// Takes the counts of finished minutes (or all) as audit entries.
    pub(crate) fn drain(&self, all: bool) -> Vec<NewAuditEntry> {
        let current = now_ms() / MINUTE_MS * MINUTE_MS;
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let done: Vec<BlockedKey> = counts.keys().filter(|k| all || k.minute < current).cloned().collect();
        done.into_iter()
            .filter_map(|k| counts.remove(&k).map(|n| (k, n)))
            .map(|(k, n)| {
                let mut details = serde_json::json!({ "count": n.count, "destination": k.destination });
                if let Some((kind, id)) = k.owner {
                    details["ownerType"] = serde_json::json!(kind.as_str());
                    details["ownerId"] = serde_json::json!(id);
                    details["ownerName"] = serde_json::json!(n.owner_name);
                }
                if let Some(node) = &k.node {
                    details["node"] = serde_json::json!(node);
                }
                NewAuditEntry {
                    tenant_id: Some(k.tenant),
                    time: k.minute,
                    actor_id: k.owner.map(|(_, id)| id.to_string()),
                    actor_name: match (k.owner, &n.owner_name) {
                        (Some((kind, _)), Some(name)) => format!("{} '{name}'", kind.as_str()),
                        _ => "veil".to_owned(),
                    },
                    action: AuditAction::BlockedDestination,
                    target_type: Some("SECRET"),
                    target_id: n.secret_id,
                    target_name: Some(k.secret),
                    success: false,
                    details,
                }
            })
            .collect()
    }
}
