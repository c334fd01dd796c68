//! The change feed: what instances sharing one database tell each other. Every committed change to
//! something an instance keeps in memory (the secret index, running chains and integrations, the
//! session cache) reaches every other instance, which reloads it from the database. On PostgreSQL
//! it is LISTEN/NOTIFY fed by triggers (migrations/postgres/0002_change_feed.sql); SQLite serves one
//! process, which applies its own writes as it makes them.

use uuid::Uuid;

use crate::model::{SecretId, TenantId};
use crate::references::OwnerType;

/// The notification channel.
pub(crate) const CHANNEL: &str = "veil_changes";

/// One committed change, by key: the receiver reads the current state from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A secret (or its shares) was created, changed or deleted.
    Secret(SecretId),
    /// A rule chain or an integration was saved or deleted.
    Owner { kind: OwnerType, id: Uuid, tenant: TenantId },
    /// A tenant was created, renamed or deleted.
    Tenant(TenantId),
    /// Users, roles or customers changed: sessions must be verified again.
    Directory,
    /// A data key was added (a key rotation began) or retired.
    DataKeys,
}

/// What the feed delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FeedItem {
    Change(Change),
    /// Notifications may have been lost (the listening connection dropped and is back): reload
    /// everything.
    Resync,
}

/// A rule chain or integration that changed on another instance, for the host to start, restart
/// or stop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerChange {
    /// Saved or deleted: read it again (`Store::owner_record`); gone means deleted.
    Changed {
        /// Rule chain or integration.
        kind: OwnerType,
        /// Its id.
        id: Uuid,
        /// Its tenant.
        tenant: TenantId,
    },
    /// Changes may have been missed: compare everything that runs with the database.
    Resync,
}

#[derive(serde::Deserialize)]
struct Payload<'a> {
    table: &'a str,
    key: Option<String>,
    tenant: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    origin: Option<String>,
    /// When the change was made (ms since the epoch, the database's clock).
    at: Option<i64>,
}

/// Reads a notification's payload; `None` for this instance's own changes and for anything it
/// cannot read (logged: a newer schema, say).
pub(crate) fn parse(payload: &str, own_instance: &str) -> Option<Change> {
    let p: Payload<'_> = match serde_json::from_str(payload) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "change feed: unreadable notification ignored");
            return None;
        }
    };
    if p.origin.as_deref() == Some(own_instance) {
        return None;
    }
    if let Some(at) = p.at {
        let lag_ms = crate::now_ms().saturating_sub(at).max(0);
        crate::metrics::STORE.feed_lag.observe(lag_ms as f64 / 1000.0);
    }
    let uuid = |text: Option<&String>| text.and_then(|t| t.parse::<Uuid>().ok());
    let change = match p.table {
        "secrets" | "secret_shares" => Change::Secret(SecretId(uuid(p.key.as_ref())?)),
        "owners" => Change::Owner {
            kind: OwnerType::parse(p.kind.as_deref()?)?,
            id: uuid(p.key.as_ref())?,
            tenant: TenantId(uuid(p.tenant.as_ref())?),
        },
        "tenants" => Change::Tenant(TenantId(uuid(p.key.as_ref())?)),
        "users" | "roles" | "customers" | "revoked_sessions" => Change::Directory,
        "data_keys" => Change::DataKeys,
        other => {
            tracing::warn!(table = other, "change feed: notification for an unknown table ignored");
            return None;
        }
    };
    Some(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_become_changes_and_own_ones_are_skipped() {
        let id = Uuid::new_v4();
        let tenant = Uuid::new_v4();
        let secret =
            format!(r#"{{"table":"secrets","key":"{id}","tenant":"{tenant}","type":"TEXT","origin":"b"}}"#);
        assert_eq!(parse(&secret, "a"), Some(Change::Secret(SecretId(id))));
        assert_eq!(parse(&secret, "b"), None, "own change");
        let owner = format!(
            r#"{{"table":"owners","key":"{id}","tenant":"{tenant}","type":"RULE_CHAIN","origin":null}}"#
        );
        assert_eq!(
            parse(&owner, "a"),
            Some(Change::Owner { kind: OwnerType::RuleChain, id, tenant: TenantId(tenant) })
        );
        let user =
            format!(r#"{{"table":"users","key":"{id}","tenant":"{tenant}","type":null,"origin":"b"}}"#);
        assert_eq!(parse(&user, "a"), Some(Change::Directory));
        assert_eq!(parse("not json", "a"), None);
        assert_eq!(
            parse(r#"{"table":"elsewhere","key":null,"tenant":null,"type":null,"origin":null}"#, "a"),
            None
        );
    }
}
