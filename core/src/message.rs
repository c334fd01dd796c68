//! The message that flows through rule chains (ThingsBoard's `TbMsg`, simplified).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One message: telemetry, an attribute update, a response from a REST call...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Msg {
    /// Unique id.
    pub id: Uuid,
    /// Message type, e.g. `POST_TELEMETRY_REQUEST`.
    #[serde(rename = "type")]
    pub msg_type: String,
    /// Who it is about (a device name).
    pub originator: String,
    /// String key/values travelling with the message.
    pub metadata: BTreeMap<String, String>,
    /// The payload.
    pub data: Value,
    /// Milliseconds since the epoch.
    pub ts: i64,
}

impl Msg {
    /// A new message with a fresh id and the current time.
    pub fn new(msg_type: impl Into<String>, originator: impl Into<String>, data: Value) -> Self {
        Self {
            id: Uuid::new_v4(),
            msg_type: msg_type.into(),
            originator: originator.into(),
            metadata: BTreeMap::new(),
            data,
            ts: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default(),
        }
    }

    /// The same message with one more metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}
