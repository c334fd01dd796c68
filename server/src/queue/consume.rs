//! Taking messages from the stream. Each partition has one durable consumer; the instance that
//! holds the partition's lease ([`super::lease`]) takes its messages, many at once, and runs each
//! originator's messages one at a time, in the order they were stored (originators in parallel).
//! An instance that takes a partition over first waits until what the previous owner held was
//! put back or acknowledged (a clean hand-over), or given back to the stream by the ack wait (the
//! owner died), then takes all of it before it runs any, by stream sequence: what is put back
//! comes first, but not always in its order. So the order holds across owners.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{AckKind, Message};
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use veil_core::{ChainRuntime, Msg};
use veil_store::{OwnerType, TenantId};

use super::lease::{LEASE, Leases, RENEW, Renewal, share};
use super::{PARTITIONS, Queue, REPLY, WATCH};
use crate::host::Host;

/// Metadata a consumed message carries: its id (stable over redeliveries) and how many times it
/// was delivered (1 the first time): a chain can drop repeats, a REST call can send the id as an
/// idempotency key.
pub(crate) const MSG_ID_KEY: &str = "msgId";
/// See [`MSG_ID_KEY`].
pub(crate) const DELIVERY_COUNT_KEY: &str = "deliveryCount";

/// How long a loop waits before it tries again after the server failed it, or a message's chain
/// was not running.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Most messages of one partition an instance holds at once (taken, not yet acknowledged).
const IN_FLIGHT: usize = 64;

/// Most bytes of them, besides one message of the largest size the server takes.
const IN_FLIGHT_BYTES: usize = 4 << 20;

/// How long a request for messages waits on the server when there are none.
const PULL_WAIT: Duration = Duration::from_secs(1);

/// How long after its expiry a request for messages is given up when the server did not say.
const PULL_SLACK: Duration = Duration::from_millis(250);

/// Most deleted chains whose dropped messages an instance remembers having logged.
const MAX_DROPPED_CHAINS: usize = 10_000;

/// What became of a message.
enum Outcome {
    Done,
    /// Its chain was deleted.
    Dropped,
    Dead(String),
}

/// A partition this instance holds.
struct Owned {
    revision: u64,
    /// When the lease was last written (the worker takes nothing once it is old).
    renewed: watch::Sender<Instant>,
    /// Set: take no more messages, finish the ones taken, then end (the lease is given back).
    drain: CancellationToken,
    abort: AbortHandle,
    generation: u64,
}

/// What a partition's worker knows of its lease.
struct Lease {
    /// The previous owner gave it back cleanly.
    clean: bool,
    renewed: watch::Receiver<Instant>,
    drain: CancellationToken,
}

/// Messages of one originator run one after the other: (chain, originator).
type Originator = (Uuid, String);

/// A message taken from the stream, waiting for its turn.
struct Taken {
    delivered: Message,
    msg: Option<Msg>,
}

impl Queue {
    /// Starts this instance's share of the consumers over `host`'s chains.
    pub(crate) fn start(self: &Arc<Self>, host: &Arc<Host>) {
        let (queue, host) = (Arc::clone(self), Arc::downgrade(host));
        self.consumers.spawn(async move { queue.own(host).await });
    }

    /// Holds this instance's share of the partitions: takes free ones, writes their leases every
    /// [`RENEW`], gives extra ones back when more instances come; when the queue stops, finishes
    /// what it took and gives every lease back.
    async fn own(self: Arc<Self>, host: Weak<Host>) {
        let leases = loop {
            match Leases::open(&self.js, &self.name, &self.instance).await {
                Ok(leases) => break leases,
                Err(e) => {
                    tracing::warn!(error = %e, "queue partition leases not available; retrying");
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = tokio::time::sleep(RETRY_AFTER) => {}
                    }
                }
            }
        };
        // Instances start looking at different partitions.
        let first = self.instance.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        let mut owned: BTreeMap<usize, Owned> = BTreeMap::new();
        let mut workers: JoinSet<(usize, u64, bool)> = JoinSet::new();
        let mut generation = 0u64;
        let mut members = 1;
        let mut stopping = false;
        let mut tick = tokio::time::interval(RENEW);
        loop {
            tokio::select! {
                () = self.stop.cancelled(), if !stopping => {
                    stopping = true;
                    owned.values().for_each(|o| o.drain.cancel());
                }
                Some(done) = workers.join_next() => {
                    if let Ok((partition, ended, clean)) = done
                        && owned.get(&partition).is_some_and(|o| o.generation == ended)
                        && let Some(o) = owned.remove(&partition)
                    {
                        leases.give_back(partition, o.revision, clean).await;
                        tracing::debug!(partition, clean, "queue partition given back");
                    }
                }
                _ = tick.tick() => {
                    let mut lost = Vec::new();
                    for (partition, o) in &mut owned {
                        match leases.renew(*partition, o.revision).await {
                            Ok(revision) => {
                                o.revision = revision;
                                o.renewed.send_replace(Instant::now());
                            }
                            Err(Renewal::Unknown) if o.renewed.borrow().elapsed() + RENEW < LEASE => {}
                            Err(_) => lost.push(*partition),
                        }
                    }
                    for partition in lost {
                        if let Some(o) = owned.remove(&partition) {
                            tracing::warn!(partition, "queue partition lease lost: what this instance took of it runs elsewhere");
                            o.abort.abort();
                        }
                    }
                    if !stopping {
                        members = leases.members().await.unwrap_or(members);
                        let share = share(PARTITIONS, members);
                        let mut active: Vec<usize> =
                            owned.iter().filter(|(_, o)| !o.drain.is_cancelled()).map(|(p, _)| *p).collect();
                        while active.len() > share {
                            let partition = active.pop().expect("more than the share");
                            owned[&partition].drain.cancel();
                        }
                        for n in 0..PARTITIONS {
                            if active.len() >= share {
                                break;
                            }
                            let partition = (first + n) % PARTITIONS;
                            if owned.contains_key(&partition) {
                                continue;
                            }
                            if let Some((revision, clean)) = leases.take(partition).await {
                                generation += 1;
                                let drain = CancellationToken::new();
                                let (renewed, lease) = watch::channel(Instant::now());
                                let worker = Arc::clone(&self).partition(
                                    partition,
                                    host.clone(),
                                    Lease { clean, renewed: lease, drain: drain.clone() },
                                );
                                let ended = generation;
                                let abort = workers.spawn(async move {
                                    let clean = worker.await;
                                    (partition, ended, clean)
                                });
                                owned.insert(partition, Owned { revision, renewed, drain, abort, generation });
                                active.push(partition);
                            }
                        }
                    }
                }
            }
            crate::metrics::set_partitions_held(owned.len());
            if stopping && owned.is_empty() {
                break;
            }
        }
        leases.leave().await;
    }

    fn consumer_config(&self, partition: usize) -> pull::Config {
        pull::Config {
            durable_name: Some(format!("{}-p{partition}", self.name)),
            filter_subject: format!("{}.msg.{partition}.>", self.name),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: Duration::from_secs(self.args.queue_ack_wait),
            max_ack_pending: IN_FLIGHT as i64,
            max_deliver: -1,
            ..Default::default()
        }
    }

    /// The partition's consumer, made or brought to this version's settings (the caller holds the
    /// partition's lease: nobody else takes its messages).
    async fn consumer(&self, partition: usize) -> Result<PullConsumer, String> {
        let stream = self.js.get_stream_no_info(&self.name).await.map_err(|e| e.to_string())?;
        let config = self.consumer_config(partition);
        let name = config.durable_name.clone().unwrap_or_default();
        let made = match stream.create_consumer(config.clone()).await {
            Ok(consumer) => return Ok(consumer),
            Err(e) => e.to_string(),
        };
        // Refused: made with other settings (an older version, another ack wait)? Then it is
        // made again (what it held is redelivered by the new one); any other failure is retried
        // as it is, never by deleting the consumer (its delivery counts go with it).
        let existing =
            stream.get_consumer::<pull::Config>(&name).await.map_err(|e| format!("{made}; {e}"))?;
        let settings = &existing.cached_info().config;
        if settings.max_ack_pending == config.max_ack_pending && settings.ack_wait == config.ack_wait {
            return Err(made);
        }
        stream.delete_consumer(&name).await.map_err(|e| e.to_string())?;
        stream.create_consumer(config).await.map_err(|e| e.to_string())
    }

    /// Waits until the messages a previous owner took were acknowledged, or (it died) until the
    /// ack wait gave them back to the stream, where they come first.
    async fn wait_for_previous_owner(&self, consumer: &PullConsumer, drain: &CancellationToken) {
        let until = Instant::now() + Duration::from_secs(self.args.queue_ack_wait) + RETRY_AFTER;
        loop {
            if let Ok(info) = consumer.get_info().await
                && info.num_ack_pending == 0
            {
                return;
            }
            if Instant::now() >= until {
                return;
            }
            tokio::select! {
                () = drain.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    /// Takes partition `partition`'s messages until `drain` is set; then puts the ones waiting
    /// for their turn back in the stream (in order: they come first to the next owner) and
    /// finishes the running ones. Whether it ended cleanly (nothing it took left unacknowledged
    /// but what it put back). `clean`: the previous owner ended so.
    async fn partition(self: Arc<Self>, partition: usize, host: Weak<Host>, lease: Lease) -> bool {
        let Lease { clean, renewed, drain } = lease;
        let consumer = loop {
            match self.consumer(partition).await {
                Ok(consumer) => break consumer,
                Err(e) => {
                    tracing::warn!(partition, error = %e, "queue consumer not available; retrying");
                    tokio::select! {
                        () = drain.cancelled() => return clean,
                        () = tokio::time::sleep(RETRY_AFTER) => {}
                    }
                }
            }
        };
        let waited = Instant::now();
        if !clean {
            self.wait_for_previous_owner(&consumer, &drain).await;
        }
        // What the previous owner left (put back, or given back by the ack wait) comes first,
        // though not always in order: it is all taken before any of it runs.
        let left = consumer.get_info().await.map_or(0, |info| info.num_ack_pending).min(IN_FLIGHT);
        tracing::debug!(partition, clean, left, waited = ?waited.elapsed(), "queue partition taken");
        let mut clean = true;
        let mut work = Work::new(Arc::clone(&self), host, left);
        let hold_until = Instant::now() + PULL_WAIT * 2;
        let mut batch = None;
        let mut opened = Instant::now();
        let every = Duration::from_secs(self.args.queue_ack_wait).div_f32(3.0);
        let mut progress = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            let room = IN_FLIGHT.saturating_sub(work.taken);
            // A lease not written for a while may be another instance's by now: take nothing.
            let held = renewed.borrow().elapsed() + RENEW < LEASE;
            if batch.is_none() && !drain.is_cancelled() && room > 0 && work.bytes < IN_FLIGHT_BYTES && held {
                let bytes = (IN_FLIGHT_BYTES - work.bytes).max(self.max_payload + (64 << 10));
                match consumer.batch().max_messages(room).max_bytes(bytes).expires(PULL_WAIT).messages().await
                {
                    Ok(messages) => {
                        batch = Some(messages);
                        opened = Instant::now();
                    }
                    Err(e) => {
                        tracing::debug!(partition, error = %e, "queue pull failed");
                        tokio::select! {
                            () = drain.cancelled() => {}
                            () = tokio::time::sleep(RETRY_AFTER) => {}
                        }
                        continue;
                    }
                }
            }
            if drain.is_cancelled() && batch.is_none() {
                clean &= work.put_back().await;
                if work.taken == 0 {
                    return clean;
                }
            }
            tokio::select! {
                // NATS 2.9 does not always say that a request expired (async-nats then waits 5 s
                // more): past its expiry the server delivers nothing more to it.
                next = tokio::time::timeout_at(opened + PULL_WAIT + PULL_SLACK, async {
                    batch.as_mut().expect("checked").next().await
                }), if batch.is_some() => match next {
                    Ok(Some(Ok(delivered))) => work.take(delivered),
                    Ok(Some(Err(e))) => {
                        tracing::debug!(partition, error = %e, "queue pull ended");
                        batch = None;
                    }
                    Ok(None) | Err(_) => batch = None,
                },
                Some(done) = work.running.join_next() => work.finished(done),
                _ = progress.tick() => work.in_progress().await,
                () = tokio::time::sleep_until(hold_until), if work.hold_for.is_some() => work.release(),
                () = tokio::time::sleep(RETRY_AFTER), if !held => {}
                () = drain.cancelled(), if batch.is_none() && !drain.is_cancelled() => {}
            }
        }
    }

    /// Runs one taken message and acknowledges it, or moves it to the dead letters.
    async fn handle(&self, host: &Host, delivered: &Message, msg: Option<Msg>) {
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
            self.in_progress(delivered, self.run(host, delivered, msg, deliveries)).await
        };
        crate::metrics::count_queued(match &outcome {
            Outcome::Done => "done",
            Outcome::Dropped => "dropped",
            Outcome::Dead(_) => "dead_letter",
        });
        if let Outcome::Dead(reason) = outcome {
            while let Err(e) = self.to_dead_letters(delivered, &reason, deliveries).await {
                tracing::warn!(seq, error = %e, "a message could not be moved to the dead letters; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
            }
            tracing::warn!(seq, subject = %delivered.subject, %reason, "message moved to the dead letters");
            if let Some(to) = header(delivered, REPLY) {
                self.reply(&to, Err(format!("the message went to the dead letters: {reason}"))).await;
            }
        }
        if let Err(e) = delivered.ack().await {
            tracing::warn!(seq, error = %e, "a message could not be acknowledged (it will come again)");
        }
    }

    /// Runs a message through its chain. A chain not running here yet is waited for (a second
    /// at a time, `--queue-max-deliveries` times); a chain replaced while the message ran runs it
    /// again (the message stopped at a step).
    async fn run(&self, host: &Host, delivered: &Message, msg: Option<Msg>, deliveries: i64) -> Outcome {
        let Some((tenant, chain_id)) = target(&delivered.subject) else {
            return Outcome::Dead("not a message subject of this stream".into());
        };
        let Some(mut msg) = msg else {
            return Outcome::Dead("the stored message is not a message".into());
        };
        let watch = header(delivered, WATCH).is_some();
        let reply = header(delivered, REPLY);
        let mut waited = 0;
        loop {
            let Some(chain) = host.chain(chain_id).filter(|c| c.tenant() == tenant) else {
                // Deleted: its messages go with it (nothing could list them).
                if let Ok(None) = host.store().owner_record(tenant, OwnerType::RuleChain, chain_id).await {
                    // Said once per chain: a backlog of a million would flood the log. (The
                    // set forgets past MAX_DROPPED_CHAINS: a chain is said again, nothing grows.)
                    if self.dropped_chains.len() >= MAX_DROPPED_CHAINS {
                        self.dropped_chains.clear();
                    }
                    if self.dropped_chains.insert(chain_id) {
                        tracing::warn!(chain = %chain_id, "queued messages of a deleted rule chain are dropped");
                    }
                    return Outcome::Dropped;
                }
                waited += 1;
                if waited > self.args.queue_max_deliveries {
                    return Outcome::Dead(format!(
                        "rule chain '{chain_id}' was not running where it was delivered"
                    ));
                }
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            };
            msg.metadata.insert(MSG_ID_KEY.into(), msg.id.to_string());
            msg.metadata.insert(DELIVERY_COUNT_KEY.into(), deliveries.to_string());
            let admission = loop {
                // A full chain slows this originator down; nothing is refused.
                if let Ok(admission) = chain.admit().await {
                    break admission;
                }
            };
            let trace = run_chain(&chain, msg, watch).await;
            drop(admission);
            if chain.is_stopped() {
                match self.message(delivered) {
                    Some(again) => {
                        msg = again;
                        continue;
                    }
                    None => return Outcome::Dead("the stored message is not a message".into()),
                }
            }
            if let Some(to) = reply {
                self.reply(&to, Ok(trace)).await;
            }
            return Outcome::Done;
        }
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

/// The messages of a partition this instance took: one running per originator, the others
/// waiting for their turn, in the order they were stored (stream sequence: what a previous owner
/// put back may come again in another order).
struct Work {
    queue: Arc<Queue>,
    host: Weak<Host>,
    /// Per originator with a message running or held: its next ones, by stream sequence.
    waiting: HashMap<Originator, BTreeMap<u64, Taken>>,
    /// Originators with a message running.
    busy: HashSet<Originator>,
    running: JoinSet<(Originator, usize)>,
    /// Messages taken and not yet acknowledged, and their bytes.
    taken: usize,
    bytes: usize,
    /// Nothing starts before this many messages were taken (what the previous owner left comes
    /// first, in any order), or [`Work::release`].
    hold_for: Option<usize>,
}

impl Work {
    fn new(queue: Arc<Queue>, host: Weak<Host>, hold_for: usize) -> Self {
        Self {
            queue,
            host,
            waiting: HashMap::new(),
            busy: HashSet::new(),
            running: JoinSet::new(),
            taken: 0,
            bytes: 0,
            hold_for: (hold_for > 0).then_some(hold_for),
        }
    }

    /// Runs `delivered` now, or after the messages of its originator stored before it.
    fn take(&mut self, delivered: Message) {
        let msg = self.queue.message(&delivered);
        let (seq, deliveries) = delivered.info().map_or((0, 1), |i| (i.stream_sequence, i.delivered));
        if deliveries > 1 {
            crate::metrics::count_redelivery();
        }
        let key = match (&msg, target(&delivered.subject)) {
            (Some(msg), Some((_, chain))) => (chain, msg.originator.clone()),
            // Goes to the dead letters, on its own.
            _ => (Uuid::nil(), format!("#{seq}")),
        };
        self.taken += 1;
        self.bytes += delivered.payload.len();
        self.waiting.entry(key.clone()).or_default().insert(seq, Taken { delivered, msg });
        match self.hold_for {
            Some(n) if self.taken >= n => self.release(),
            Some(_) => {}
            None if !self.busy.contains(&key) => self.start(&key),
            None => {}
        }
    }

    /// Starts every originator's first message.
    fn release(&mut self) {
        self.hold_for = None;
        let idle: Vec<Originator> =
            self.waiting.keys().filter(|k| !self.busy.contains(*k)).cloned().collect();
        for key in idle {
            self.start(&key);
        }
    }

    /// Runs `key`'s first waiting message.
    fn start(&mut self, key: &Originator) {
        let Some(taken) = self.waiting.get_mut(key).and_then(BTreeMap::pop_first).map(|(_, t)| t) else {
            self.waiting.remove(key);
            return;
        };
        self.busy.insert(key.clone());
        let (queue, host, key) = (Arc::clone(&self.queue), self.host.clone(), key.clone());
        self.running.spawn(async move {
            let Taken { delivered, msg } = taken;
            if let Some(host) = host.upgrade() {
                let handled = AssertUnwindSafe(queue.handle(&host, &delivered, msg)).catch_unwind().await;
                if handled.is_err() {
                    tracing::error!(subject = %delivered.subject, "a queued message's run failed; it will come again");
                }
            }
            (key, delivered.payload.len())
        });
    }

    /// One message is done: its originator's next one runs.
    fn finished(&mut self, done: Result<(Originator, usize), tokio::task::JoinError>) {
        // Runs are never aborted one by one, and their panics are caught.
        let Ok((key, size)) = done else { return };
        self.taken -= 1;
        self.bytes -= size;
        self.busy.remove(&key);
        self.start(&key);
    }

    /// Puts the messages waiting for their turn back in the stream, in the order they were
    /// stored, so that they come first to whoever takes the partition next. Whether the server
    /// confirmed each (it takes acknowledgements apart from requests for messages: a new owner's
    /// request could otherwise be served before the messages are back).
    async fn put_back(&mut self) -> bool {
        let mut waiting: Vec<(u64, Taken)> = self.waiting.values_mut().flat_map(std::mem::take).collect();
        self.waiting.retain(|key, _| self.busy.contains(key));
        waiting.sort_by_key(|(seq, _)| *seq);
        let mut confirmed = true;
        for (_, taken) in waiting {
            self.taken -= 1;
            self.bytes -= taken.delivered.payload.len();
            confirmed &= taken.delivered.double_ack_with(AckKind::Nak(None)).await.is_ok();
            crate::metrics::count_queued("put_back");
        }
        confirmed
    }

    /// Tells JetStream the waiting messages are taken (the running ones say so themselves).
    async fn in_progress(&self) {
        for taken in self.waiting.values().flat_map(BTreeMap::values) {
            let _ = taken.delivered.ack_with(AckKind::Progress).await;
        }
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
