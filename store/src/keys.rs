//! Data keys as an operator sees them: which one seals new values, how many stored values each
//! one holds, and the progress of a rotation to a new one.

use serde::Serialize;

/// `GET /api/system/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    /// The data key new values are sealed with.
    pub active_key: i64,
    /// Every data key in the database, oldest first.
    pub keys: Vec<DataKeyInfo>,
    /// The latest rotation (running or finished), if any.
    pub rotation: Option<KeyRotation>,
}

/// One data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataKeyInfo {
    /// Its id (1 for the first; each rotation adds the next).
    pub id: i64,
    /// When it was made (milliseconds since the epoch).
    pub created: i64,
    /// How many stored values (secret versions, pending values, system values) it seals.
    pub values: i64,
}

/// A rotation to the data key `keyId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRotation {
    /// The new data key.
    pub key_id: i64,
    /// Values sealed again so far.
    pub done: i64,
    /// Values sealed with other keys when it began.
    pub total: i64,
    /// When it began.
    pub started_time: i64,
    /// Who began it.
    pub started_by: String,
    /// When every value was sealed with the new key, checked, and the older keys retired.
    pub finished_time: Option<i64>,
}

/// Which table a stored value is in (each binds its ciphertext to different associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueTable {
    Secrets,
    History,
    Pending,
    System,
}

impl ValueTable {
    pub(crate) const ALL: [ValueTable; 4] = [Self::Secrets, Self::History, Self::Pending, Self::System];
}

/// A stored value: where it is, what its ciphertext is bound to, the ciphertext.
pub(crate) struct StoredValue {
    pub(crate) table: ValueTable,
    /// The secret's id, or the system value's name.
    pub(crate) key: String,
    /// The secret's tenant (none for system values).
    pub(crate) tenant: Option<uuid::Uuid>,
    /// The version (0 for system values).
    pub(crate) version: i64,
    pub(crate) sealed: crate::crypto::Sealed,
}

impl StoredValue {
    /// What the ciphertext is bound to; `None` for a row that does not read as one.
    pub(crate) fn aad(&self) -> Option<crate::crypto::ValueAad> {
        use crate::crypto::ValueAad;
        use crate::model::{SecretId, TenantId};
        match self.table {
            ValueTable::System => Some(ValueAad::System(self.key.clone())),
            _ => Some(ValueAad::Secret {
                tenant: TenantId(self.tenant?),
                id: SecretId(self.key.parse().ok()?),
                version: self.version,
            }),
        }
    }
}

/// How many values of every table are sealed with a key other than `$1`.
pub(crate) const OTHER_KEY_COUNT_SQL: &str = "SELECT \
     (SELECT COUNT(*) FROM secrets WHERE key_id <> $1) + \
     (SELECT COUNT(*) FROM secret_history WHERE key_id <> $1) + \
     (SELECT COUNT(*) FROM secret_pending WHERE key_id <> $1) + \
     (SELECT COUNT(*) FROM system_secrets WHERE key_id <> $1)";

/// Every data key with its creation time and how many stored values it seals.
pub(crate) const KEYS_SQL: &str = "SELECT d.id, d.created_time, \
     (SELECT COUNT(*) FROM secrets WHERE key_id = d.id) + \
     (SELECT COUNT(*) FROM secret_history WHERE key_id = d.id) + \
     (SELECT COUNT(*) FROM secret_pending WHERE key_id = d.id) + \
     (SELECT COUNT(*) FROM system_secrets WHERE key_id = d.id) AS used \
     FROM data_keys d ORDER BY d.id";

/// The latest rotation.
pub(crate) const ROTATION_SQL: &str = "SELECT key_id, done, total, started_time, started_by, finished_time \
     FROM key_rotations ORDER BY key_id DESC LIMIT 1";

/// Deletes the data keys other than `$1` that no value uses.
pub(crate) const RETIRE_SQL: &str = "DELETE FROM data_keys WHERE id <> $1 \
     AND id NOT IN (SELECT key_id FROM secrets) AND id NOT IN (SELECT key_id FROM secret_history) \
     AND id NOT IN (SELECT key_id FROM secret_pending) AND id NOT IN (SELECT key_id FROM system_secrets)";

pub(crate) fn rotation_from(row: &impl crate::backend::rows::Columns) -> crate::error::Result<KeyRotation> {
    Ok(KeyRotation {
        key_id: row.int("key_id")?,
        done: row.int("done")?,
        total: row.int("total")?,
        started_time: row.int("started_time")?,
        started_by: row.text("started_by")?,
        finished_time: row.opt_int("finished_time")?,
    })
}
