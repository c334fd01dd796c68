//! A staged rotation's records: the pending value's metadata (never the value) and what each
//! consumer said when it was probed with it.

use serde::Serialize;
use uuid::Uuid;

use crate::crypto::Sealed;
use crate::references::OwnerType;

/// A secret's pending value, staged and waiting to be promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingVersion {
    /// The version it becomes when promoted (the current one + 1).
    pub version: i64,
    /// When it was staged (milliseconds since the epoch).
    pub created_time: i64,
    /// Who staged it.
    pub created_by: Option<String>,
    /// The keyed fingerprint of the value (as for every version).
    pub fingerprint: String,
    /// FILE secrets: the file name it comes with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

/// What one consumer of a secret (a rule chain's node field, an integration's field) said when
/// probed with the pending value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRecord {
    /// `RULE_CHAIN` or `INTEGRATION`.
    #[serde(rename = "type")]
    pub owner_type: OwnerType,
    /// The configuration's id.
    pub id: Uuid,
    /// The configuration's name.
    pub name: String,
    /// The node's id in the chain (empty for integrations).
    #[serde(skip)]
    pub node_id: String,
    /// The node's name (rule chains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The field's JSON pointer.
    pub field: String,
    /// `OK`, `FAILED`, `NOT_PROBED` or `PROBING`.
    pub result: String,
    /// What was tried, or why it failed (masked).
    pub reason: String,
    /// When the result was recorded.
    pub time: i64,
}

/// A pending value as stored: its metadata and its ciphertext (sealed for its version).
pub(crate) struct PendingRow {
    pub(crate) info: PendingVersion,
    pub(crate) sealed: Sealed,
}
