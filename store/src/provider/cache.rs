//! Linked secrets' values in memory: the one place a fetched value lives. Each value is used for
//! its provider's `cacheSeconds` after it was fetched, then fetched again before the next use; a
//! fetch that fails leaves no value to use (the message fails, naming the secret and provider).
//! A fetched value unlike the one before is a new *generation* — what the redactor's masks and
//! connection-oriented nodes watch, as they watch a stored secret's version — and the earlier
//! values stay (as many as the secret's `maxVersions`) only to be masked. Values are zeroized
//! when they are replaced, swept ([`LinkedValues::sweep`]) or their secret is deleted.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde::Serialize;

use crate::model::{SecretId, SecretValue, now_ms};

/// What the API shows of a linked secret's value on this instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkedStatus {
    /// When a fetch last succeeded (milliseconds since the epoch); absent: not yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_fetched_time: Option<i64>,
    /// How many different values this instance has fetched (0: none yet).
    pub fetched_values: i64,
    /// Why the last fetch failed (masked), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct State {
    /// The value in use and until when.
    current: Option<(SecretValue, Instant)>,
    /// +1 for every fetched value unlike the one before; 0 before the first.
    generation: i64,
    /// Earlier values, newest first, for masking only.
    earlier: VecDeque<SecretValue>,
    last_fetched: Option<i64>,
    error: Option<String>,
}

/// One linked secret's cache entry.
pub(crate) struct Entry {
    state: RwLock<State>,
    /// Held while fetching, so that the messages that find the value stale at once wait for one
    /// fetch instead of each making their own.
    pub(crate) fetching: tokio::sync::Mutex<()>,
    /// Fetches finished (either way): a caller that waited on [`Entry::fetching`] while one
    /// finished takes its outcome instead of fetching again (with a cache period of 0 too).
    finished: std::sync::atomic::AtomicU64,
}

impl Entry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// How many fetches finished so far.
    pub(crate) fn finished(&self) -> u64 {
        self.finished.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The last fetch's outcome: a value to use, or why there is none.
    pub(crate) fn outcome(&self) -> Result<(), Option<String>> {
        let state = self.read();
        if state.current.is_some() { Ok(()) } else { Err(state.error.clone()) }
    }

    fn finish(&self) {
        self.finished.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Whether a value is there to use now.
    pub(crate) fn fresh(&self) -> bool {
        self.read().current.as_ref().is_some_and(|(_, until)| Instant::now() < *until)
    }
}

/// Every linked secret's entry, by secret id.
#[derive(Default)]
pub(crate) struct LinkedValues {
    entries: DashMap<SecretId, Arc<Entry>, foldhash::fast::RandomState>,
}

impl LinkedValues {
    /// The entry of a secret, made empty when there is none.
    pub(crate) fn entry(&self, id: SecretId) -> Arc<Entry> {
        if let Some(entry) = self.entries.get(&id) {
            return Arc::clone(entry.value());
        }
        Arc::clone(
            self.entries
                .entry(id)
                .or_insert_with(|| {
                    Arc::new(Entry {
                        state: RwLock::new(State {
                            current: None,
                            generation: 0,
                            earlier: VecDeque::new(),
                            last_fetched: None,
                            error: None,
                        }),
                        fetching: tokio::sync::Mutex::new(()),
                        finished: std::sync::atomic::AtomicU64::new(0),
                    })
                })
                .value(),
        )
    }

    /// Whether the secret's value can be used now without a fetch (the message path's check).
    pub(crate) fn fresh(&self, id: SecretId) -> bool {
        self.entries.get(&id).is_some_and(|e| e.fresh())
    }

    /// A copy of the value in use (fresh or not: a fetch made just before checks freshness), or
    /// why there is none.
    pub(crate) fn value(&self, id: SecretId) -> Result<SecretValue, Option<String>> {
        let entry = self.entries.get(&id).ok_or(None)?;
        let state = entry.read();
        match &state.current {
            Some((value, _)) => Ok(SecretValue::new(value.expose_bytes().to_vec())),
            None => Err(state.error.clone()),
        }
    }

    /// The secret's generation (0 before its first value).
    pub(crate) fn generation(&self, id: SecretId) -> i64 {
        self.entries.get(&id).map_or(0, |e| e.read().generation)
    }

    /// Every value to mask: the current one first, then earlier ones.
    pub(crate) fn values_for_masking(&self, id: SecretId) -> Vec<SecretValue> {
        let Some(entry) = self.entries.get(&id) else { return Vec::new() };
        let state = entry.read();
        state
            .current
            .iter()
            .map(|(v, _)| v)
            .chain(state.earlier.iter())
            .map(|v| SecretValue::new(v.expose_bytes().to_vec()))
            .collect()
    }

    /// Keeps a fetched value for `ttl`; returns the new generation when it differs from the
    /// value before (the first value included). `keep` is how many values to keep in all.
    pub(crate) fn fetched(
        &self,
        id: SecretId,
        value: SecretValue,
        ttl: Duration,
        keep: usize,
    ) -> Option<i64> {
        let entry = self.entry(id);
        // Waiters are held on `fetching` until the fetch returns: they see this state.
        entry.finish();
        let mut state = entry.write();
        state.last_fetched = Some(now_ms());
        state.error = None;
        let until = Instant::now() + ttl;
        let same = match (&state.current, state.earlier.front()) {
            (Some((current, _)), _) => current.expose_bytes() == value.expose_bytes(),
            // After a failed fetch the value before is the newest earlier one.
            (None, Some(last)) => state.generation > 0 && last.expose_bytes() == value.expose_bytes(),
            (None, None) => false,
        };
        if same {
            if state.current.is_none() {
                state.earlier.pop_front();
            }
            state.current = Some((value, until));
            return None;
        }
        if let Some((old, _)) = state.current.take() {
            state.earlier.push_front(old);
        }
        state.earlier.truncate(keep.saturating_sub(1));
        state.current = Some((value, until));
        state.generation += 1;
        Some(state.generation)
    }

    /// Records a failed fetch: the value in use is dropped (kept only to be masked).
    pub(crate) fn failed(&self, id: SecretId, error: String, keep: usize) {
        let entry = self.entry(id);
        entry.finish();
        let mut state = entry.write();
        if let Some((old, _)) = state.current.take() {
            state.earlier.push_front(old);
            state.earlier.truncate(keep.max(1));
        }
        state.error = Some(error);
    }

    /// Makes the next use fetch again (the secret's source changed).
    pub(crate) fn expire(&self, id: SecretId) {
        if let Some(entry) = self.entries.get(&id) {
            let mut state = entry.write();
            if let Some((old, _)) = state.current.take() {
                state.earlier.push_front(old);
            }
        }
    }

    /// Forgets a deleted secret (its values are zeroized).
    pub(crate) fn remove(&self, id: SecretId) {
        self.entries.remove(&id);
    }

    /// Drops values nobody used for `idle` past their cache period (zeroized); their masks stay.
    pub(crate) fn sweep(&self, idle: Duration) {
        let now = Instant::now();
        for entry in self.entries.iter() {
            let stale = entry.read().current.as_ref().is_some_and(|(_, until)| now > *until + idle);
            if stale {
                let mut state = entry.write();
                if let Some((old, _)) = state.current.take() {
                    state.earlier.push_front(old);
                    state.earlier.truncate(crate::model::MAX_MAX_VERSIONS as usize);
                }
            }
        }
    }

    /// What the API shows.
    pub(crate) fn status(&self, id: SecretId) -> LinkedStatus {
        let Some(entry) = self.entries.get(&id) else { return LinkedStatus::default() };
        let state = entry.read();
        LinkedStatus {
            last_fetched_time: state.last_fetched,
            fetched_values: state.generation,
            error: state.error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> SecretValue {
        SecretValue::from(s)
    }

    #[test]
    fn a_changed_value_is_a_new_generation_and_the_old_one_stays_masked() {
        let cache = LinkedValues::default();
        let id = SecretId::new_random();
        let ttl = Duration::from_secs(60);
        assert_eq!(cache.generation(id), 0);
        assert_eq!(cache.fetched(id, value("one"), ttl, 10), Some(1));
        assert_eq!(cache.fetched(id, value("one"), ttl, 10), None);
        assert_eq!(cache.fetched(id, value("two"), ttl, 10), Some(2));
        let masked: Vec<String> =
            cache.values_for_masking(id).iter().map(|v| v.expose_text().unwrap().to_owned()).collect();
        assert_eq!(masked, ["two", "one"]);
        assert_eq!(cache.value(id).unwrap().expose_text(), Some("two"));
    }

    #[test]
    fn a_failed_fetch_leaves_no_value_to_use_but_keeps_it_masked() {
        let cache = LinkedValues::default();
        let id = SecretId::new_random();
        cache.fetched(id, value("one"), Duration::from_secs(60), 10);
        cache.failed(id, "provider 'p': no answer".into(), 10);
        assert_eq!(cache.value(id).unwrap_err().as_deref(), Some("provider 'p': no answer"));
        assert_eq!(cache.values_for_masking(id).len(), 1);
        // The same value again is no new generation.
        assert_eq!(cache.fetched(id, value("one"), Duration::from_secs(60), 10), None);
        assert_eq!(cache.generation(id), 1);
        assert_eq!(cache.status(id).error, None);
    }

    #[test]
    fn a_value_past_its_period_is_not_fresh_and_a_sweep_drops_it() {
        let cache = LinkedValues::default();
        let id = SecretId::new_random();
        cache.fetched(id, value("one"), Duration::ZERO, 10);
        assert!(!cache.fresh(id));
        cache.sweep(Duration::ZERO);
        assert!(cache.value(id).is_err());
        assert_eq!(cache.values_for_masking(id).len(), 1);
    }
}
