//! Taking messages from the stream: one loop per partition in every instance, each on the
//! partition's durable consumer (one message unacknowledged at a time across the cluster).

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{AckKind, Message};
use futures_util::StreamExt as _;
use uuid::Uuid;
use veil_core::{ChainRuntime, Msg};
use veil_store::{OwnerType, TenantId};

use super::{PARTITIONS, Queue, REPLY, WATCH};
use crate::host::Host;

/// Metadata a consumed message carries: its id (stable over redeliveries) and how many times it
/// was delivered (1 the first time): a chain can drop repeats, a REST call can send the id as an
/// idempotency key.
pub(crate) const MSG_ID_KEY: &str = "msgId";
/// See [`MSG_ID_KEY`].
pub(crate) const DELIVERY_COUNT_KEY: &str = "deliveryCount";

/// How long a loop waits before it tries again after the server failed it.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a message is not run: it goes to the dead letters, or back to the stream for later.
enum Outcome {
    Done,
    Later,
    Dead(String),
}

impl Queue {
    /// Starts this instance's consumer loops over `host`'s chains.
    pub(crate) fn start(self: &Arc<Self>, host: &Arc<Host>) {
        for partition in 0..PARTITIONS {
            let (queue, host) = (Arc::clone(self), Arc::downgrade(host));
            self.consumers.spawn(async move { queue.consume(partition, host).await });
        }
    }

    fn consumer_config(&self, partition: usize) -> pull::Config {
        pull::Config {
            durable_name: Some(format!("{}-p{partition}", self.name)),
            filter_subject: format!("{}.msg.{partition}.>", self.name),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: Duration::from_secs(self.args.queue_ack_wait),
            max_ack_pending: 1,
            max_deliver: -1,
            ..Default::default()
        }
    }

    /// Takes the partition's messages until the queue stops; reconnects after a failure.
    async fn consume(self: Arc<Self>, partition: usize, host: Weak<Host>) {
        while !self.stop.is_cancelled() {
            let messages = async {
                let stream = self.js.get_stream_no_info(&self.name).await.map_err(|e| e.to_string())?;
                let config = self.consumer_config(partition);
                let name = config.durable_name.clone().unwrap_or_default();
                let consumer = match stream.create_consumer(config.clone()).await {
                    Ok(c) => c,
                    // Made by another instance with other settings (an older ack wait): use it.
                    Err(_) => stream.get_consumer::<pull::Config>(&name).await.map_err(|e| e.to_string())?,
                };
                consumer.messages().await.map_err(|e| e.to_string())
            };
            let mut messages = match messages.await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(partition, error = %e, "queue consumer not available; retrying");
                    tokio::select! {
                        () = self.stop.cancelled() => break,
                        () = tokio::time::sleep(RETRY_AFTER) => continue,
                    }
                }
            };
            loop {
                let next = tokio::select! {
                    () = self.stop.cancelled() => return,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(msg)) => {
                        let Some(host) = host.upgrade() else { return };
                        self.handle(&host, msg).await;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(partition, error = %e, "queue consumer interrupted");
                        if e.kind() != pull::MessagesErrorKind::MissingHeartbeat {
                            break;
                        }
                    }
                    None => break,
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = tokio::time::sleep(RETRY_AFTER) => {}
            }
        }
    }

    /// Runs one delivered message and acknowledges it; or sends it to the dead letters, or back
    /// for later.
    async fn handle(&self, host: &Host, delivered: Message) {
        let (deliveries, seq) = match delivered.info() {
            Ok(info) => (info.delivered, info.stream_sequence),
            Err(_) => (1, 0),
        };
        let outcome = if deliveries > self.args.queue_max_deliveries {
            Outcome::Dead(format!(
                "delivered {deliveries} times without finishing (--queue-max-deliveries {})",
                self.args.queue_max_deliveries
            ))
        } else {
            self.run(host, &delivered, deliveries).await
        };
        let acked = match outcome {
            Outcome::Done => delivered.ack().await,
            Outcome::Later => delivered.ack_with(AckKind::Nak(Some(RETRY_AFTER))).await,
            Outcome::Dead(reason) => match self.to_dead_letters(&delivered, &reason, deliveries).await {
                Ok(()) => {
                    tracing::warn!(seq, subject = %delivered.subject, %reason, "message moved to the dead letters");
                    if let Some(to) = header(&delivered, REPLY) {
                        self.reply(&to, Err(format!("the message went to the dead letters: {reason}"))).await;
                    }
                    delivered.ack().await
                }
                Err(e) => {
                    tracing::warn!(seq, error = %e, "a message could not be moved to the dead letters");
                    delivered.ack_with(AckKind::Nak(Some(RETRY_AFTER))).await
                }
            },
        };
        if let Err(e) = acked {
            tracing::warn!(seq, error = %e, "a message could not be acknowledged (it will come again)");
        }
    }

    /// Runs a message through its chain, telling JetStream it is in progress while it runs.
    async fn run(&self, host: &Host, delivered: &Message, deliveries: i64) -> Outcome {
        let Some((tenant, chain_id)) = target(&delivered.subject) else {
            return Outcome::Dead("not a message subject of this stream".into());
        };
        let Some(chain) = host.chain(chain_id).filter(|c| c.tenant() == tenant) else {
            // Deleted: its messages go with it (nothing could list them), without holding up
            // the partition's next messages.
            if let Ok(None) = host.store().owner_record(tenant, OwnerType::RuleChain, chain_id).await {
                // Said once per chain: a backlog of a million would flood the log.
                if self.dropped_chains.insert(chain_id) {
                    tracing::warn!(chain = %chain_id, "queued messages of a deleted rule chain are dropped");
                }
                return Outcome::Done;
            }
            // Not (yet) running here: another instance may run it, or this one soon.
            return if deliveries >= self.args.queue_max_deliveries {
                Outcome::Dead(format!("rule chain '{chain_id}' was not running where it was delivered"))
            } else {
                Outcome::Later
            };
        };
        let Some(mut msg) = self.message(delivered) else {
            return Outcome::Dead("the stored message is not a message".into());
        };
        msg.metadata.insert(MSG_ID_KEY.into(), msg.id.to_string());
        msg.metadata.insert(DELIVERY_COUNT_KEY.into(), deliveries.to_string());
        let watch = header(delivered, WATCH).is_some();
        let reply = header(delivered, REPLY);
        let work = async {
            let admission = loop {
                // A full chain slows this partition down; nothing is refused.
                if let Ok(admission) = chain.admit().await {
                    break admission;
                }
            };
            let trace = run_chain(&chain, msg, watch).await;
            drop(admission);
            trace
        };
        let trace = self.in_progress(delivered, work).await;
        if chain.is_stopped() {
            // Replaced or deleted while the message ran: it stopped at a step; the chain that
            // runs now takes it again.
            return Outcome::Later;
        }
        if let Some(to) = reply {
            self.reply(&to, Ok(trace)).await;
        }
        Outcome::Done
    }

    /// Awaits `work`, telling JetStream every third of the ack wait that the message is still
    /// being processed.
    async fn in_progress<T>(&self, delivered: &Message, work: impl Future<Output = T>) -> T {
        let every = Duration::from_secs(self.args.queue_ack_wait).div_f32(3.0);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = tick.tick() => {
                    let _ = delivered.ack_with(AckKind::Progress).await;
                }
            }
        }
    }

    /// The message a stored payload holds, its sealed values sealed again for this process.
    pub(super) fn message(&self, delivered: &Message) -> Option<Msg> {
        open_message(&self.key, &delivered.payload)
    }
}

/// The message a stored payload holds, its sealed values sealed again for this process.
pub(super) fn open_message(key: &veil_core::PortableKey, payload: &[u8]) -> Option<Msg> {
    let text = std::str::from_utf8(payload).ok()?;
    if !text.contains(veil_core::QUEUED_START) {
        return serde_json::from_str(text).ok();
    }
    // Queued sealed values are bound to the message's id.
    let id = serde_json::from_str::<IdOnly>(text).ok()?.id;
    serde_json::from_str(&key.import(text, id.as_bytes())).ok()
}

#[derive(serde::Deserialize)]
struct IdOnly {
    id: Uuid,
}

async fn run_chain(chain: &ChainRuntime, msg: Msg, watch: bool) -> Vec<veil_core::TraceStep> {
    if watch { chain.process_watched(msg).await } else { chain.process(msg).await }
}

/// A header's value.
fn header(delivered: &Message, name: &str) -> Option<String> {
    delivered.headers.as_ref()?.get(name).map(|v| v.to_string())
}

/// The tenant and chain of a subject `<stream>.msg.<partition>.<tenant>.<chain>` (or
/// `<stream>.dead.<tenant>.<chain>`).
pub(super) fn target(subject: &str) -> Option<(TenantId, Uuid)> {
    let mut tokens = subject.rsplit('.');
    let chain = tokens.next()?.parse().ok()?;
    let tenant = tokens.next()?.parse().ok()?;
    Some((TenantId(tenant), chain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_names_its_tenant_and_chain() {
        let (tenant, chain) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert_eq!(target(&format!("VEIL.msg.7.{tenant}.{chain}")), Some((TenantId(tenant), chain)));
        assert_eq!(target(&format!("VEIL.dead.{tenant}.{chain}")), Some((TenantId(tenant), chain)));
        assert_eq!(target("VEIL.msg.7.x.y"), None);
        assert_eq!(target("VEIL"), None);
    }

    #[test]
    fn a_stored_message_without_sealed_values_is_read_as_it_is() {
        let key = veil_core::PortableKey::new(&[3; 32]).unwrap();
        let msg = Msg::new("T", "dev-1", serde_json::json!({"n": 1, "s": "{veil-queued:AAAA}"}));
        let stored = serde_json::to_vec(&msg).unwrap();
        assert_eq!(open_message(&key, &stored), Some(msg), "text shaped like a queued value stays text");
        assert_eq!(open_message(&key, b"not json"), None);
    }
}
