//! Dead letters: messages delivered `--queue-max-deliveries` times without finishing, kept in the
//! stream `<stream>_DEAD` under `<stream>.dead.<tenant>.<chain>`, listed per rule chain (masked as
//! debug events are) and replayed into the queue.

use async_nats::HeaderMap;
use async_nats::jetstream::Message;
use async_nats::jetstream::stream::DirectGetErrorKind;
use axum::body::Bytes;
use serde_json::{Value, json};
use uuid::Uuid;
use veil_core::{ChainRuntime, Msg};
use veil_store::TenantId;

use super::consume::{open_message, target};
use super::{MSG_ID, Queue, QueueError, publish_error};

/// Header of a dead letter: why it is one.
const REASON: &str = "Veil-Reason";
/// Header of a dead letter: how many times it was delivered.
const DELIVERIES: &str = "Veil-Deliveries";

/// Most dead letters one page lists, and one replay moves.
pub(crate) const MAX_PAGE: usize = 1000;

/// The dead-letter stream of the stream `name`.
pub(super) fn stream_name(name: &str) -> String {
    format!("{name}_DEAD")
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

impl Queue {
    fn dead_subject(&self, tenant: TenantId, chain: Uuid) -> String {
        format!("{}.dead.{}.{chain}", self.name, tenant.0)
    }

    /// Stores a delivered message as a dead letter (as it was stored: sealed values stay sealed
    /// for the cluster).
    pub(super) async fn to_dead_letters(
        &self,
        delivered: &Message,
        reason: &str,
        deliveries: i64,
    ) -> Result<(), QueueError> {
        let subject = match target(&delivered.subject) {
            Some((tenant, chain)) => self.dead_subject(tenant, chain),
            None => format!("{}.dead.unknown", self.name),
        };
        let mut headers = HeaderMap::new();
        headers.insert(REASON, reason);
        headers.insert(DELIVERIES, deliveries.to_string().as_str());
        if let Some(id) = delivered.headers.as_ref().and_then(|h| h.get(MSG_ID)) {
            headers.insert(MSG_ID, format!("{id}-dead").as_str());
        }
        let ack = self
            .js
            .publish_with_headers(subject, headers, delivered.payload.clone())
            .await
            .map_err(|e| publish_error(&e))?;
        ack.await.map_err(|e| publish_error(&e))?;
        Ok(())
    }

    /// Up to `limit` dead letters of `chain` after the sequence number `after`, each with its
    /// message shown as the chain's debug events show messages; and the sequence to ask after
    /// for the next page (none when this is the last).
    pub(crate) async fn dead_letters(
        &self,
        chain: &ChainRuntime,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Value>, Option<u64>), QueueError> {
        let stream = self.js.get_stream_no_info(stream_name(&self.name)).await.map_err(unavailable)?;
        let subject = self.dead_subject(chain.tenant(), chain.id());
        let mut page = Vec::new();
        let mut next = after.saturating_add(1);
        while page.len() < limit.min(MAX_PAGE) {
            let stored = match stream.direct_get_next_for_subject(subject.as_str(), Some(next)).await {
                Ok(m) => m,
                Err(e) if matches!(e.kind(), DirectGetErrorKind::NotFound) => return Ok((page, None)),
                Err(e) => return Err(unavailable(e)),
            };
            next = stored.sequence + 1;
            let header = |name: &str| stored.headers.get(name).map(|v| v.to_string());
            let shown = match open_message(&self.key, &stored.payload) {
                Some(msg) => chain.shown_message(&msg),
                None => json!({ "unreadable": true, "bytes": stored.payload.len() }),
            };
            page.push(json!({
                "seq": stored.sequence,
                "reason": header(REASON),
                "deliveries": header(DELIVERIES).and_then(|d| d.parse::<i64>().ok()),
                "deadTime": stored.time.unix_timestamp_nanos() / 1_000_000,
                "message": shown,
            }));
        }
        Ok((page, Some(next - 1)))
    }

    /// Puts `chain`'s dead letters `seqs` (or, without, the first [`MAX_PAGE`]) back into the
    /// queue, each removed from the dead letters once it is stored again; returns how many.
    pub(crate) async fn replay(
        &self,
        chain: &ChainRuntime,
        seqs: Option<&[u64]>,
    ) -> Result<usize, QueueError> {
        let stream = self.js.get_stream_no_info(stream_name(&self.name)).await.map_err(unavailable)?;
        let subject = self.dead_subject(chain.tenant(), chain.id());
        let mut replayed = 0;
        let mut next = 1;
        for i in 0..MAX_PAGE {
            let stored = match seqs {
                Some(seqs) => match seqs.get(i) {
                    Some(seq) => stream.direct_get(*seq).await,
                    None => break,
                },
                None => stream.direct_get_next_for_subject(subject.as_str(), Some(next)).await,
            };
            let stored = match stored {
                Ok(m) => m,
                Err(e) if matches!(e.kind(), DirectGetErrorKind::NotFound) && seqs.is_none() => break,
                Err(e) if matches!(e.kind(), DirectGetErrorKind::NotFound) => continue,
                Err(e) => return Err(unavailable(e)),
            };
            next = stored.sequence + 1;
            // Only this chain's: a sequence number of another chain's dead letter is not one.
            if stored.subject.as_str() != subject {
                continue;
            }
            let Ok(msg) = serde_json::from_slice::<Msg>(&stored.payload) else {
                continue;
            };
            let mut headers = HeaderMap::new();
            // A new id for JetStream's de-duplication: the original one may still be in its window.
            headers.insert(MSG_ID, format!("{}-replay-{}", msg.id, stored.sequence).as_str());
            let to = self.subject(chain.tenant(), chain.id(), &msg.originator);
            let ack = self
                .js
                .publish_with_headers(to, headers, Bytes::from(stored.payload.to_vec()))
                .await
                .map_err(|e| publish_error(&e))?;
            ack.await.map_err(|e| publish_error(&e))?;
            stream.delete_message(stored.sequence).await.map_err(unavailable)?;
            replayed += 1;
        }
        Ok(replayed)
    }
}
