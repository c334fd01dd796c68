//! At-least-once processing on NATS JetStream (`veil serve --queue nats://…`): uplinks and
//! messages sent through the API are stored in a JetStream stream before the sender hears `200` /
//! `202`, consumed by any instance's rule chains and acknowledged only once the chain finished
//! with them. An instance that dies mid-chain leaves its message unacknowledged; JetStream
//! hands it to another instance after the ack wait.
//!
//! **Order per originator.** A message goes to one of [`PARTITIONS`] subjects chosen by a hash
//! of its tenant, chain and originator (`<stream>.msg.<partition>.<tenant>.<chain>`). Each
//! partition has one durable consumer and is taken by one instance at a time (a lease:
//! [`lease`]); the owner takes many of its messages at once and runs each originator's one at a
//! time, in the order they were stored ([`consume`]).
//!
//! **Sealed values** (markers a converter put into a message) are encrypted under a key made per
//! process; before a message is stored they are sealed again under a key every instance of the
//! cluster shares (a system secret of the store) and bound to the message's id, and the consuming
//! instance opens them and seals them under its own key ([`veil_core::PortableKey`]).
//!
//! **Redeliveries and dead letters.** A message delivered more than `--queue-max-deliveries` times
//! without finishing (instances died on it, or its chain ran nowhere) goes to the dead-letter
//! stream `<stream>_DEAD`, listed and replayed per rule chain through the API ([`dead`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use axum::body::Bytes;
use dashmap::DashMap;
use futures_util::StreamExt as _;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;
use veil_core::{Msg, PortableKey};
use veil_store::{Store, TenantId};

mod consume;
pub(crate) mod dead;
mod lease;

/// How many partitions (subjects, consumers) the stream is split into: messages of one
/// originator go to one, so at most this many messages run at once across the cluster. The
/// same in every instance (a different number would break the order).
pub(crate) const PARTITIONS: usize = 32;

/// How often an instance reads the stream's size.
const SIZE_EVERY: Duration = Duration::from_millis(250);

/// Whether a NATS server of `version` refuses a message past a stream's byte limit (with the
/// discard policy "new"): before 2.10.5 it stored it and dropped the oldest instead
/// (nats-server#4771).
fn enforces_max_bytes(version: &str) -> bool {
    let mut parts = version.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor, patch) =
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor, patch) >= (2, 10, 5)
}

/// The name of the system secret queued sealed values are encrypted under.
const PORTABLE_KEY_NAME: &str = "queue-sealing-key";

/// Header: JetStream's de-duplication key (a dead letter's and a replay's only).
const MSG_ID: &str = "Nats-Msg-Id";
/// Header: where the instance that waits for the trace (`?wait=true`) listens.
const REPLY: &str = "Veil-Reply";
/// Header: the waiting sender wants each step's messages in the trace.
const WATCH: &str = "Veil-Watch";
/// Header of a reply: why there is no trace.
const REPLY_ERROR: &str = "Veil-Error";

/// Options of `veil serve` for the queue.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct QueueArgs {
    /// A NATS server with JetStream (`nats://host:port`): uplinks and messages are stored there
    /// before they are acknowledged, and processed by any instance (at least once). Without it,
    /// messages are processed in memory.
    #[arg(long, env = "VEIL_QUEUE", value_name = "URL", value_parser = parse_queue_url)]
    pub(crate) queue: Option<String>,
    /// The JetStream stream's name (its subjects start with it; dead letters go to `<NAME>_DEAD`)
    /// [default: VEIL].
    #[arg(long, env = "VEIL_QUEUE_STREAM", value_name = "NAME", default_value = "VEIL", value_parser = parse_stream_name)]
    pub(crate) queue_stream: String,
    /// Most bytes of messages waiting in the stream (and of dead letters): when full, an uplink
    /// answers 503 with Retry-After [default: 1073741824].
    #[arg(long, env = "VEIL_QUEUE_MAX_BYTES", value_name = "BYTES", default_value_t = 1 << 30, value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) queue_max_bytes: i64,
    /// Most messages waiting in the stream (and dead letters): when full, the same 503
    /// [default: 1000000].
    #[arg(long, env = "VEIL_QUEUE_MAX_MESSAGES", value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) queue_max_messages: i64,
    /// Longest a message (or a dead letter) is kept waiting, in seconds [default: 604800].
    #[arg(long, env = "VEIL_QUEUE_MAX_AGE", value_name = "SECS", default_value_t = 7 * 24 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) queue_max_age: u64,
    /// Seconds an instance has to finish a message before JetStream gives it to another (it is
    /// extended while the chain runs) [default: 30].
    #[arg(long, env = "VEIL_QUEUE_ACK_WAIT", value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) queue_ack_wait: u64,
    /// Deliveries of one message before it goes to the dead letters [default: 5].
    #[arg(long, env = "VEIL_QUEUE_MAX_DELIVERIES", value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) queue_max_deliveries: i64,
}

/// Accepts a `nats://` URL; the error never repeats it (it may hold a password).
fn parse_queue_url(url: &str) -> Result<String, String> {
    if url.starts_with("nats://") || url.starts_with("tls://") {
        Ok(url.to_owned())
    } else {
        Err("expected a nats:// URL of a NATS server with JetStream".into())
    }
}

fn parse_stream_name(name: &str) -> Result<String, String> {
    let ok = (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(name.to_owned()) } else { Err("1 to 32 letters, digits, '-' or '_'".into()) }
}

/// The URL without its user and password, to show.
pub(crate) fn shown_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://[REDACTED]@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Why a message could not be queued, or its trace not heard.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The stream is full (its bytes limit): the sender should try again later.
    #[error("the message queue is full ({0}); try again later")]
    Full(String),
    /// The NATS server did not answer or refused.
    #[error("the message queue is not available ({0}); try again later")]
    Unavailable(String),
    /// The message is larger than the NATS server takes.
    #[error("the message is {0} bytes as queued: the queue takes at most {1}")]
    TooLarge(usize, usize),
    /// This server runs without `--queue`.
    #[error("this server runs without a message queue (veil serve --queue): there are no dead letters")]
    NoQueue,
    /// The message was queued but its trace did not come back in time.
    #[error("the message was queued (id {0}) but its trace did not come back within {1} s")]
    NoTrace(Uuid, u64),
    /// The consuming instance could not give the trace.
    #[error("the message ran, but its trace could not be sent back: {0}")]
    TraceLost(String),
}

/// What a sender waiting for a trace gets.
enum Reply {
    /// The message ran here.
    Steps(Vec<veil_core::TraceStep>),
    /// The message ran on another instance: its trace as JSON.
    Json(Bytes),
    /// No trace: why.
    Failed(String),
}

/// The connection to NATS JetStream and this instance's consumers.
pub(crate) struct Queue {
    shown: String,
    client: async_nats::Client,
    js: jetstream::Context,
    name: String,
    args: QueueArgs,
    key: PortableKey,
    /// The largest message the server takes.
    max_payload: usize,
    /// Senders waiting for a trace (`?wait=true`), by reply number.
    waiting: DashMap<u64, oneshot::Sender<Reply>>,
    next_reply: AtomicU64,
    /// This instance's name in the partition leases.
    instance: String,
    /// This instance's reply subjects start with it.
    reply_prefix: String,
    /// The stream's bytes as last read, and what this instance stored since (see [`Queue::room`]).
    stored_bytes: AtomicU64,
    /// The stream's messages as last read (`u64::MAX`: not read yet), for `/api/health`.
    stored_messages: AtomicU64,
    published_bytes: AtomicU64,
    /// Deleted chains whose queued messages this instance dropped (said once each in the log).
    dropped_chains: dashmap::DashSet<Uuid>,
    stop: CancellationToken,
    consumers: TaskTracker,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("url", &self.shown).field("stream", &self.name).finish_non_exhaustive()
    }
}

/// A JetStream publish error as a [`QueueError`].
fn publish_error(e: &jetstream::context::PublishError) -> QueueError {
    use jetstream::context::PublishErrorKind as Kind;
    let text = e.to_string();
    match e.kind() {
        Kind::Other if text.contains("maximum") || text.contains("resources") => QueueError::Full(text),
        _ => QueueError::Unavailable(text),
    }
}

impl Queue {
    /// Connects to `args.queue` (within 10 s), makes or updates the streams, and listens for
    /// the traces this instance waits for. Consumers start with [`Queue::start`].
    pub(crate) async fn connect(args: &QueueArgs, store: &Store) -> Result<Arc<Self>, String> {
        let url = args.queue.clone().ok_or("no queue")?;
        let shown = shown_url(&url);
        let client = tokio::time::timeout(
            Duration::from_secs(10),
            async_nats::ConnectOptions::new().name("veil").connect(url.as_str()),
        )
        .await
        .map_err(|_| format!("{shown}: no answer within 10 s"))?
        .map_err(|e| format!("{shown}: {e}"))?;
        let js = jetstream::new(client.clone());
        let name = args.queue_stream.clone();
        let max_age = Duration::from_secs(args.queue_max_age);
        let max_payload = client.server_info().max_payload;
        let enforces_bytes = enforces_max_bytes(&client.server_info().version);
        if !enforces_bytes {
            tracing::warn!(
                version = %client.server_info().version,
                "this NATS server drops old messages at a stream's byte limit instead of refusing new ones \
                 (nats-server#4771, fixed in 2.10.5): Veil enforces --queue-max-bytes itself; upgrade NATS"
            );
        }
        js.create_or_update_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{name}.msg.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::New,
            max_bytes: if enforces_bytes { args.queue_max_bytes } else { -1 },
            max_messages: args.queue_max_messages,
            max_age,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("{shown}: the stream {name}: {e}"))?;
        js.create_or_update_stream(stream::Config {
            name: dead::stream_name(&name),
            subjects: vec![format!("{name}.dead.>")],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::Old,
            max_bytes: args.queue_max_bytes,
            max_messages: args.queue_max_messages,
            max_age,
            allow_direct: true,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("{shown}: the stream {}: {e}", dead::stream_name(&name)))?;
        let secret = store.system_secret(PORTABLE_KEY_NAME, 32).await.map_err(|e| e.to_string())?;
        let key = PortableKey::new(secret.expose_bytes()).ok_or("the queue's sealing key is not 32 bytes")?;
        let instance = Uuid::new_v4().simple().to_string();
        let reply_prefix = format!("{name}.reply.{instance}");
        let replies =
            client.subscribe(format!("{reply_prefix}.*")).await.map_err(|e| format!("{shown}: {e}"))?;
        let queue = Arc::new(Self {
            shown,
            client,
            js,
            name,
            args: args.clone(),
            key,
            max_payload,
            waiting: DashMap::new(),
            next_reply: AtomicU64::new(0),
            instance,
            reply_prefix,
            stored_bytes: AtomicU64::new(0),
            stored_messages: AtomicU64::new(u64::MAX),
            published_bytes: AtomicU64::new(0),
            dropped_chains: dashmap::DashSet::new(),
            stop: CancellationToken::new(),
            consumers: TaskTracker::new(),
        });
        queue.listen_for_replies(replies);
        queue.watch_size();
        tracing::info!(queue = %queue.shown, stream = %queue.name, partitions = PARTITIONS, "message queue connected");
        Ok(queue)
    }

    fn listen_for_replies(self: &Arc<Self>, mut replies: async_nats::Subscriber) {
        let queue = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(reply) = replies.next().await {
                let Some(queue) = queue.upgrade() else { break };
                let Some(n) = reply.subject.rsplit('.').next().and_then(|n| n.parse::<u64>().ok()) else {
                    continue;
                };
                if let Some((_, waiting)) = queue.waiting.remove(&n) {
                    let error =
                        reply.headers.as_ref().and_then(|h| h.get(REPLY_ERROR)).map(|e| e.to_string());
                    let _ = waiting.send(match error {
                        Some(error) => Reply::Failed(error),
                        None => Reply::Json(reply.payload),
                    });
                }
            }
        });
    }

    /// Reads the stream's size every [`SIZE_EVERY`] (for [`Queue::room`] and `/api/health`,
    /// which is public: a request to it costs NATS nothing).
    fn watch_size(self: &Arc<Self>) {
        let queue = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SIZE_EVERY);
            loop {
                tick.tick().await;
                let Some(queue) = queue.upgrade() else { break };
                let info = async {
                    let stream = queue.js.get_stream_no_info(&queue.name).await.ok()?;
                    Some(stream.get_info().await.ok()?.state)
                };
                if let Ok(Some(state)) = tokio::time::timeout(SIZE_EVERY, info).await {
                    queue.stored_messages.store(state.messages, Ordering::Relaxed);
                    queue.stored_bytes.store(state.bytes, Ordering::Relaxed);
                    queue.published_bytes.store(0, Ordering::Relaxed);
                }
            }
        });
    }

    /// Whether `bytes` more fit under `--queue-max-bytes`, by the stream's size as last read
    /// plus what this instance stored since (instances storing at once may pass the limit by
    /// what they store within [`SIZE_EVERY`]); counts them when they do.
    fn room(&self, bytes: usize) -> Result<(), QueueError> {
        let limit = u64::try_from(self.args.queue_max_bytes).unwrap_or(u64::MAX);
        let stored = self.stored_bytes.load(Ordering::Relaxed);
        let published = self.published_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if stored + published + bytes as u64 > limit {
            self.published_bytes.fetch_sub(bytes as u64, Ordering::Relaxed);
            return Err(QueueError::Full(format!(
                "the stream holds about {} of its {limit} bytes, --queue-max-bytes",
                stored + published
            )));
        }
        Ok(())
    }

    /// The subject of a message of `tenant`'s chain `chain` from `originator`.
    fn subject(&self, tenant: TenantId, chain: Uuid, originator: &str) -> String {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        hash.update(tenant.0.as_bytes());
        hash.update(chain.as_bytes());
        hash.update(originator.as_bytes());
        let digest = hash.finalize();
        let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % PARTITIONS as u64;
        format!("{}.msg.{n}.{}.{chain}", self.name, tenant.0)
    }

    /// A message as stored: its JSON with sealed values sealed for the cluster.
    fn payload(&self, msg: &Msg) -> Result<Bytes, QueueError> {
        let text = serde_json::to_string(msg).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let text = self.key.export(&text, msg.id.as_bytes()).into_owned();
        // Headers take a few hundred bytes of the server's limit.
        if text.len() + 512 > self.max_payload {
            return Err(QueueError::TooLarge(text.len(), self.max_payload.saturating_sub(512)));
        }
        // What the stream stores per message besides the payload: subject, headers, sequence…
        self.room(text.len() + 256)?;
        Ok(Bytes::from(text))
    }

    /// Publishes `msg` of `tenant`'s chain `chain` with `headers` (the message's id is in its
    /// JSON: JetStream's de-duplication by header is not used): the stream's acknowledgement to
    /// wait for.
    async fn send(
        &self,
        tenant: TenantId,
        chain: Uuid,
        msg: &Msg,
        headers: HeaderMap,
    ) -> Result<jetstream::context::PublishAckFuture, QueueError> {
        let subject = self.subject(tenant, chain, &msg.originator);
        let payload = self.payload(msg)?;
        let ack = if headers.is_empty() {
            self.js.publish(subject, payload).await
        } else {
            self.js.publish_with_headers(subject, headers, payload).await
        };
        ack.map_err(|e| publish_error(&e))
    }

    /// Stores `messages` for `tenant`'s chain `chain`, in order; returns once the stream holds
    /// every one.
    pub(crate) async fn publish(
        &self,
        tenant: TenantId,
        chain: Uuid,
        messages: &[Msg],
    ) -> Result<(), QueueError> {
        let mut acks = Vec::with_capacity(messages.len());
        for msg in messages {
            acks.push(self.send(tenant, chain, msg, HeaderMap::new()).await?);
        }
        for ack in acks {
            ack.await.map_err(|e| publish_error(&e))?;
        }
        Ok(())
    }

    /// Stores `msg` and waits (up to `within`) for the instance that runs it to send its trace
    /// (each step's messages too when `watch`): the JSON array of steps.
    pub(crate) async fn publish_and_wait(
        &self,
        tenant: TenantId,
        chain: Uuid,
        msg: &Msg,
        watch: bool,
        within: Duration,
    ) -> Result<crate::host::Trace, QueueError> {
        let n = self.next_reply.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(n, tx);
        let forget = scopeguard(|| {
            self.waiting.remove(&n);
        });
        let mut headers = HeaderMap::new();
        headers.insert(REPLY, format!("{}.{n}", self.reply_prefix).as_str());
        if watch {
            headers.insert(WATCH, "1");
        }
        self.send(tenant, chain, msg, headers).await?.await.map_err(|e| publish_error(&e))?;
        let reply = tokio::time::timeout(within, rx).await;
        drop(forget);
        match reply {
            Ok(Ok(Reply::Steps(steps))) => Ok(crate::host::Trace::Steps(steps)),
            Ok(Ok(Reply::Json(trace))) => serde_json::from_slice(&trace)
                .map(crate::host::Trace::Json)
                .map_err(|e| QueueError::TraceLost(e.to_string())),
            Ok(Ok(Reply::Failed(why))) => Err(QueueError::TraceLost(why)),
            Ok(Err(_)) | Err(_) => Err(QueueError::NoTrace(msg.id, within.as_secs())),
        }
    }

    /// Sends a trace (or why there is none) to the instance waiting at `to`: in memory when it
    /// waits here, else over NATS.
    async fn reply(&self, to: &str, trace: Result<Vec<veil_core::TraceStep>, String>) {
        let here = to
            .strip_prefix(self.reply_prefix.as_str())
            .and_then(|n| n.strip_prefix('.')?.parse::<u64>().ok());
        if let Some(n) = here {
            if let Some((_, waiting)) = self.waiting.remove(&n) {
                let _ = waiting.send(match trace {
                    Ok(steps) => Reply::Steps(steps),
                    Err(why) => Reply::Failed(why),
                });
            }
            return;
        }
        let trace = trace.and_then(|steps| serde_json::to_vec(&steps).map_err(|e| e.to_string()));
        let trace = match trace {
            Ok(bytes) if bytes.len() + 512 > self.max_payload => Err(format!(
                "the trace is {} bytes, more than the queue carries ({}): send without messages=true",
                bytes.len(),
                self.max_payload
            )),
            other => other,
        };
        let sent = match trace {
            Ok(bytes) => self.client.publish(to.to_owned(), Bytes::from(bytes)).await,
            Err(why) => {
                let mut headers = HeaderMap::new();
                headers.insert(REPLY_ERROR, why.as_str());
                self.client.publish_with_headers(to.to_owned(), headers, Bytes::new()).await
            }
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "a trace could not be sent back to the waiting instance");
        }
    }

    /// What `/api/health` shows: the server, its state, the stream and how many messages wait.
    pub(crate) fn health(&self) -> serde_json::Value {
        let state = match self.client.connection_state() {
            async_nats::connection::State::Connected => "connected",
            async_nats::connection::State::Pending => "connecting",
            async_nats::connection::State::Disconnected => "disconnected",
        };
        let pending = Some(self.stored_messages.load(Ordering::Relaxed)).filter(|n| *n != u64::MAX);
        serde_json::json!({
            "kind": "nats-jetstream",
            "url": self.shown,
            "state": state,
            "stream": self.name,
            "partitions": PARTITIONS,
            "pending": pending,
        })
    }

    /// Stops taking messages; waits up to `grace` for the ones being processed here (what is
    /// not finished then is redelivered elsewhere after the ack wait).
    pub(crate) async fn stop(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.consumers.close();
        let finished = tokio::time::timeout(grace, self.consumers.wait()).await.is_ok();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.client.flush()).await;
        finished
    }
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_credentials() {
        assert_eq!(shown_url("nats://user:pa55@127.0.0.1:4222"), "nats://[REDACTED]@127.0.0.1:4222");
        assert_eq!(shown_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert!(parse_queue_url("http://x").unwrap_err().contains("nats://"));
    }

    #[test]
    fn servers_before_2_10_5_do_not_enforce_a_byte_limit() {
        assert!(!enforces_max_bytes("2.9.10"));
        assert!(!enforces_max_bytes("2.10.4"));
        assert!(enforces_max_bytes("2.10.5"));
        assert!(enforces_max_bytes("2.11.0-beta.1"));
        assert!(enforces_max_bytes("3.0.0"));
    }

    #[test]
    fn stream_names_are_checked() {
        assert!(parse_stream_name("VEIL_test-1").is_ok());
        assert!(parse_stream_name("a.b").is_err());
        assert!(parse_stream_name("").is_err());
    }
}
