//! Who a verified token's user is, kept in memory so authenticating a request reads no database.
//! Every directory write (users, roles, customers, tenants) clears it, after it committed; an
//! entry also expires after [`SESSION_TTL`], which bounds how long a write that was cancelled
//! between its commit and the clearing could leave a stale entry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::access::Actor;
use crate::model::UserId;

/// How long an entry is trusted without a directory write clearing it.
pub const SESSION_TTL: Duration = Duration::from_secs(30);
/// Most users kept; the cache starts again empty beyond it.
const MAX_SESSIONS: usize = 10_000;

/// What authenticating a token of a user needs: when its sessions were revoked, and its actor.
#[derive(Debug, Clone)]
pub struct Session {
    /// Tokens issued at or before this time (ms) are refused.
    pub tokens_valid_after: i64,
    /// Sessions ended one at a time (logout): tokens carrying one of these ids are refused.
    pub revoked: std::sync::Arc<[String]>,
    /// The user as an actor: tenant, customer, permissions of its roles.
    pub actor: Actor,
}

#[derive(Debug, Default)]
pub(crate) struct SessionCache {
    entries: Mutex<HashMap<UserId, (Instant, Session)>>,
    /// Bumped by every directory write: a look-up that started before one does not keep its answer.
    generation: AtomicU64,
}

impl SessionCache {
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn get(&self, id: UserId) -> Option<Session> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(&id).filter(|(at, _)| at.elapsed() < SESSION_TTL).map(|(_, s)| s.clone())
    }

    /// Keeps `session`, unless the directory changed since `generation` was read.
    pub(crate) fn put(&self, id: UserId, session: &Session, generation: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation() != generation {
            return;
        }
        if entries.len() >= MAX_SESSIONS {
            entries.clear();
        }
        entries.insert(id, (Instant::now(), session.clone()));
    }

    /// A directory write committed: nothing kept may be trusted.
    pub(crate) fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }
}
