//! Partition leases: which instance takes a partition's messages. Each partition is owned by one
//! instance at a time (a key in the key-value bucket `<stream>_LEASES`, written by the owner every
//! [`RENEW`] and gone [`LEASE`] after its last write), so the owner can take many of the
//! partition's messages at once and still run each originator's messages one at a time, in order.
//! Instances also write a member key, so each can take its share: `⌈partitions / instances⌉`.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use axum::body::Bytes;
use futures_util::StreamExt as _;

/// How long a lease lasts after its owner last wrote it: an instance that dies holds its
/// partitions this long (then the ack wait: see [`super::consume`]).
pub(super) const LEASE: Duration = Duration::from_secs(10);

/// How often an owner writes its leases, and instances look for partitions to take or give.
pub(super) const RENEW: Duration = Duration::from_secs(3);

/// The value of a lease its owner gave back cleanly.
const FREE: &[u8] = b"free";

/// Why a lease could not be written.
pub(super) enum Renewal {
    /// Another instance holds it now (or it expired and was taken).
    Lost,
    /// The server did not answer: the lease may still hold until [`LEASE`] after the last write.
    Unknown,
}

/// This instance's view of the lease bucket.
pub(super) struct Leases {
    kv: kv::Store,
    instance: String,
}

impl Leases {
    /// Makes (or opens) the bucket of the stream `stream`.
    pub(super) async fn open(js: &jetstream::Context, stream: &str, instance: &str) -> Result<Self, String> {
        let bucket = format!("{stream}_LEASES");
        // The bucket's stream as a key-value bucket is made (async-nats' own call first asks for
        // the account's information, which it cannot read from NATS 2.9).
        js.create_or_update_stream(jetstream::stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("which Veil instance takes which partition's messages".into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: LEASE,
            storage: jetstream::stream::StorageType::Memory,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("the bucket {bucket}: {e}"))?;
        let kv = js.get_key_value(&bucket).await.map_err(|e| format!("the bucket {bucket}: {e}"))?;
        Ok(Self { kv, instance: instance.to_owned() })
    }

    fn member_key(&self) -> String {
        format!("member.{}", self.instance)
    }

    /// Says this instance is alive; how many instances are (this one included).
    pub(super) async fn members(&self) -> Result<usize, String> {
        self.kv.put(self.member_key(), Bytes::new()).await.map_err(|e| e.to_string())?;
        let mut keys = self.kv.keys().await.map_err(|e| e.to_string())?;
        let mut members = 0;
        while let Some(key) = keys.next().await {
            if key.map_err(|e| e.to_string())?.starts_with("member.") {
                members += 1;
            }
        }
        Ok(members.max(1))
    }

    /// Takes partition `partition` if nobody holds it: the lease's revision, and whether its last
    /// owner gave it back cleanly (what it held was acknowledged or put back in the stream).
    pub(super) async fn take(&self, partition: usize) -> Option<(u64, bool)> {
        let key = format!("p{partition}");
        let mine = Bytes::from(self.instance.clone());
        match self.kv.entry(key.clone()).await.ok()? {
            Some(entry) if entry.operation == kv::Operation::Put && entry.value.as_ref() == FREE => {
                self.kv.update(key, mine, entry.revision).await.ok().map(|revision| (revision, true))
            }
            Some(entry) if entry.operation == kv::Operation::Put => None,
            _ => self.kv.create(key, mine).await.ok().map(|revision| (revision, false)),
        }
    }

    /// Writes the lease of `partition` again (it was at `revision`): its new revision.
    pub(super) async fn renew(&self, partition: usize, revision: u64) -> Result<u64, Renewal> {
        let written =
            self.kv.update(format!("p{partition}"), Bytes::from(self.instance.clone()), revision).await;
        match written {
            Ok(revision) => Ok(revision),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Err(Renewal::Lost),
            Err(_) => Err(Renewal::Unknown),
        }
    }

    /// Gives partition `partition` up (when this instance still holds it at `revision`); `clean`
    /// when nothing it took is left unacknowledged but what it put back in the stream.
    pub(super) async fn give_back(&self, partition: usize, revision: u64, clean: bool) {
        let key = format!("p{partition}");
        if clean {
            let _ = self.kv.update(key, Bytes::from_static(FREE), revision).await;
        } else {
            let _ = self.kv.delete_expect_revision(key, Some(revision)).await;
        }
    }

    /// Says this instance is leaving.
    pub(super) async fn leave(&self) {
        let _ = self.kv.delete(self.member_key()).await;
    }
}

/// How many partitions an instance takes when `members` instances share `partitions`.
pub(super) fn share(partitions: usize, members: usize) -> usize {
    partitions.div_ceil(members.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_share_the_partitions() {
        assert_eq!(share(32, 1), 32);
        assert_eq!(share(32, 2), 16);
        assert_eq!(share(32, 3), 11);
        assert_eq!(share(32, 0), 32);
        assert_eq!(share(32, 40), 1);
    }
}
