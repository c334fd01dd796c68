//! What a tenant's chains share: messages in flight and debug events (what they record, and their bytes). One [`TenantBudgets`]
//! per process (the registry carries it into every deployment), one entry per tenant.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use veil_store::TenantId;

use crate::limits::Limits;

/// An output recorded in a debug event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DebugOutput {
    /// The relation.
    pub relation: String,
    /// The message sent (redacted).
    pub msg: Value,
}

/// A node execution recorded because the node is in debug mode. Everything in it is redacted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DebugEvent {
    /// Its number: later events have larger ones (page with `?before=`).
    pub seq: u64,
    /// When it started (ms since the epoch).
    pub ts: i64,
    /// The node's id.
    pub node_id: String,
    /// The node's name.
    pub node_name: String,
    /// The message it got.
    pub input: Value,
    /// What it sent on.
    pub outputs: Vec<DebugOutput>,
    /// Lines the node wrote (a script's `print`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The error, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in microseconds.
    pub duration_micros: u64,
}

/// The budgets of every tenant, under one set of [`Limits`].
#[derive(Debug, Default)]
pub struct TenantBudgets {
    limits: Limits,
    tenants: Mutex<HashMap<TenantId, Arc<TenantBudget>>>,
}

/// One tenant's share.
#[derive(Debug)]
pub(crate) struct TenantBudget {
    pub(crate) in_flight: Arc<Semaphore>,
    /// Places to wait for `in_flight` (as many as it holds).
    pub(crate) waiting: Semaphore,
    /// Places for reading debug-event pages.
    readers: Arc<Semaphore>,
    event_bytes: AtomicUsize,
    /// Events kept now, over all the tenant's chains.
    live: AtomicUsize,
    /// Every kept event (its chain's log and sequence number), oldest first: the tenant's budget
    /// drops the oldest event whichever chain holds it.
    order: Mutex<VecDeque<(Weak<Mutex<EventLog>>, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Orders debug events across chains.
static EVENT_SEQ: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Default)]
pub(crate) struct EventLog {
    /// (sequence number, size in bytes, the event as JSON), in sequence order. Kept serialized
    /// and shared: a reader takes references to a page of them, never a copy of the log.
    events: VecDeque<(u64, usize, Arc<str>)>,
    bytes: usize,
}

/// Most debug events one `GET …/events` page holds.
pub const MAX_EVENT_PAGE: usize = 1000;
/// Most bytes of events one page holds (at least one event).
pub const MAX_EVENT_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Event pages of one tenant being read at once.
pub const MAX_EVENT_READERS_PER_TENANT: usize = 8;

/// A page of a chain's debug events, oldest first, as JSON texts shared with the log. It holds
/// one of its tenant's reader places until dropped (when its answer has been sent).
#[derive(Debug)]
pub struct EventPage {
    /// The events, oldest first.
    pub events: Vec<Arc<str>>,
    _reader: OwnedSemaphorePermit,
}

/// A chain's debug events, counted against its tenant's budget.
#[derive(Debug)]
pub(crate) struct ChainEvents {
    log: Arc<Mutex<EventLog>>,
    tenant: Arc<TenantBudget>,
}

impl ChainEvents {
    pub(crate) fn new(tenant: Arc<TenantBudget>) -> Self {
        Self { log: Arc::default(), tenant }
    }

    /// The kept events, oldest first.
    pub(crate) fn list(&self) -> Vec<DebugEvent> {
        lock(&self.log).events.iter().filter_map(|(_, _, e)| serde_json::from_str(e).ok()).collect()
    }

    /// The newest `limit` events older than `before` (any, when `None`), within
    /// [`MAX_EVENT_PAGE_BYTES`], oldest first; `None` when the tenant's readers are all busy.
    pub(crate) fn page(&self, limit: usize, before: Option<u64>) -> Option<EventPage> {
        let reader = Arc::clone(&self.tenant.readers).try_acquire_owned().ok()?;
        let log = lock(&self.log);
        let mut bytes = 0;
        let mut events: Vec<Arc<str>> = log
            .events
            .iter()
            .rev()
            .filter(|(seq, ..)| before.is_none_or(|b| *seq < b))
            .take(limit.clamp(1, MAX_EVENT_PAGE))
            .take_while(|(_, size, _)| {
                bytes += size;
                bytes <= MAX_EVENT_PAGE_BYTES || bytes == *size
            })
            .map(|(_, _, e)| Arc::clone(e))
            .collect();
        drop(log);
        events.reverse();
        Some(EventPage { events, _reader: reader })
    }

    fn forget(&self, log: &mut EventLog) {
        if let Some((_, size, _)) = log.events.pop_front() {
            log.bytes -= size;
            self.tenant.event_bytes.fetch_sub(size, Ordering::Relaxed);
            self.tenant.live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Keeps `event` (numbered and serialized here); then drops this chain's oldest beyond
    /// `per_chain` events and the tenant's oldest while the tenant holds more than `budget` bytes.
    pub(crate) fn push(&self, mut event: DebugEvent, per_chain: usize, budget: usize) {
        let seq = {
            let mut log = lock(&self.log);
            let seq = EVENT_SEQ.fetch_add(1, Ordering::Relaxed);
            event.seq = seq;
            let json: Arc<str> = serde_json::to_string(&event).unwrap_or_default().into();
            let size = json.len();
            log.events.push_back((seq, size, json));
            log.bytes += size;
            self.tenant.event_bytes.fetch_add(size, Ordering::Relaxed);
            self.tenant.live.fetch_add(1, Ordering::Relaxed);
            while log.events.len() > per_chain {
                self.forget(&mut log);
            }
            seq
        };
        {
            let mut order = lock(&self.tenant.order);
            order.push_back((Arc::downgrade(&self.log), seq));
            // Entries of events a chain dropped itself (or of removed chains) are cleared now and then.
            if order.len() > 2 * self.tenant.live.load(Ordering::Relaxed) + 1024 {
                order.retain(|(log, seq)| {
                    log.upgrade().is_some_and(|l| lock(&l).events.binary_search_by_key(seq, |e| e.0).is_ok())
                });
            }
        }
        while self.tenant.event_bytes.load(Ordering::Relaxed) > budget {
            let Some((log, seq)) = lock(&self.tenant.order).pop_front() else { break };
            let Some(log) = log.upgrade() else { continue };
            let mut log = lock(&log);
            if log.events.front().is_some_and(|e| e.0 <= seq) {
                let (_, size, _) = log.events.pop_front().expect("checked above");
                log.bytes -= size;
                self.tenant.event_bytes.fetch_sub(size, Ordering::Relaxed);
                self.tenant.live.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for ChainEvents {
    fn drop(&mut self) {
        let log = lock(&self.log);
        self.tenant.event_bytes.fetch_sub(log.bytes, Ordering::Relaxed);
        self.tenant.live.fetch_sub(log.events.len(), Ordering::Relaxed);
    }
}

impl TenantBudgets {
    /// Budgets sized by `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { limits, tenants: Mutex::default() }
    }

    /// The limits they were sized by.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) fn tenant(&self, tenant: TenantId) -> Arc<TenantBudget> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(tenants.entry(tenant).or_insert_with(|| {
            Arc::new(TenantBudget {
                in_flight: Arc::new(Semaphore::new(self.limits.max_in_flight_per_tenant)),
                waiting: Semaphore::new(self.limits.max_in_flight_per_tenant),
                readers: Arc::new(Semaphore::new(MAX_EVENT_READERS_PER_TENANT)),
                event_bytes: AtomicUsize::new(0),
                live: AtomicUsize::new(0),
                order: Mutex::default(),
            })
        }))
    }

    /// Bytes of debug events a tenant's chains hold now.
    pub fn event_bytes(&self, tenant: TenantId) -> usize {
        self.tenant(tenant).event_bytes.load(Ordering::Relaxed)
    }
}

/// A message admitted for processing: it holds its place in the chain's and the tenant's
/// in-flight budget until dropped.
#[derive(Debug)]
pub struct Admission {
    _chain: OwnedSemaphorePermit,
    _tenant: OwnedSemaphorePermit,
}

impl Admission {
    pub(crate) fn new(chain: OwnedSemaphorePermit, tenant: OwnedSemaphorePermit) -> Self {
        Self { _chain: chain, _tenant: tenant }
    }
}

/// An estimate of the memory a JSON value takes (strings and keys by length, everything else by
/// a fixed size), walked without recursion.
pub(crate) fn approx_bytes(value: &Value) -> usize {
    let mut total = 0;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total += 16;
        match v {
            Value::String(s) => total += s.len(),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                for (k, v) in map {
                    total += k.len();
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    total
}

/// An estimate of the memory a message takes: its data, metadata and names.
pub(crate) fn approx_msg_bytes(msg: &crate::message::Msg) -> usize {
    let metadata: usize = msg.metadata.iter().map(|(k, v)| k.len() + v.len() + 32).sum();
    approx_bytes(&msg.data) + metadata + msg.msg_type.len() + msg.originator.len() + 64
}

/// Whether a JSON value nests arrays and objects more than `depth` deep (bounded walk).
pub fn deeper_than(value: &Value, depth: usize) -> bool {
    match value {
        Value::Array(items) => depth == 0 || items.iter().any(|v| deeper_than(v, depth - 1)),
        Value::Object(map) => depth == 0 || map.values().any(|v| deeper_than(v, depth - 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn depth_counts_nested_containers() {
        assert!(!deeper_than(&json!(1), 0));
        assert!(!deeper_than(&json!({"a": [1]}), 2));
        assert!(deeper_than(&json!({"a": [1]}), 1));
        assert!(deeper_than(&json!([[[]]]), 2));
    }

    #[test]
    fn approx_bytes_grows_with_content() {
        let small = approx_bytes(&json!({"k": "v"}));
        let big = approx_bytes(&json!({"k": "v".repeat(1000)}));
        assert!(big >= small + 999, "{small} {big}");
    }
}
