//! Masking plaintexts in text that leaves the engine: debug events, node errors, log lines, API
//! error bodies. A [`Redactor`] belongs to one configuration and knows the secrets it references;
//! before masking it checks their versions (metadata only) and takes the new mask when one
//! changed. A secret's mask ([`crate::mask`]) covers every value the store still keeps for it (the
//! current one and the last earlier ones, which the store keeps encrypted for this purpose), so a
//! rotated-out value stays masked after a restart and in configurations created after the
//! rotation; it is built once per secret version per process and shared by every redactor that
//! knows the secret. Nodes may add values they built from secrets ([`Redactor::also_mask`], e.g.
//! `user:password` for Basic authentication), kept by the redactor itself.
//! It is never on the per-message render path; it masks a REST response before the next node
//! gets it (an upstream may echo a value back), and text on its way out.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use aho_corasick::AhoCorasick;
use serde_json::Value;
use veil_store::{SecretId, Store, TenantId};
use zeroize::Zeroizing;

use crate::forms::{MASK, Pattern, variants};
use crate::mask::MaskCell;

/// Most values a redactor keeps from [`Redactor::also_mask`]; the oldest is forgotten first. Bounds
/// the memory of a node that builds a different composite for every message.
const MAX_ALSO_MASKED: usize = 64;

/// Most secrets a redactor learns after construction (sealed values opened by its nodes, from
/// secrets its configuration does not reference); a node that would open one more refuses.
pub const MAX_LATER_SECRETS: usize = 256;

/// A secret's shared mask as a redactor holds it: the values it masks (the secret's id and
/// version: a secret made again under the same name is another), and the mask.
struct Held {
    key: (SecretId, i64),
    mask: Arc<MaskCell>,
}

#[derive(Default)]
struct Learned {
    /// The masks of the secrets, in the order of the redactor's names then `later` (`None`: a
    /// secret that does not exist now).
    held: Vec<Option<Held>>,
    /// Secrets learned after construction ([`Redactor::mask_secret`]: sealed values a node
    /// opened), at most [`MAX_LATER_SECRETS`].
    later: Vec<String>,
    /// Values from `also_mask` with their forms, oldest first.
    also: VecDeque<(Pattern, Vec<Pattern>)>,
    /// The automaton over `also`'s forms.
    also_automaton: Option<AhoCorasick>,
}

impl Learned {
    fn rebuild_also(&mut self) {
        let mut all: Vec<Pattern> = self.also.iter().flat_map(|(_, forms)| forms.iter().cloned()).collect();
        self.also_automaton = crate::mask::automaton(&mut all);
    }

    /// `text` with every range where a known value shows (in any form) replaced by `***`
    /// (borrowed when there is none: the common case, once per string of every message).
    fn values<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut found = Vec::new();
        for held in self.held.iter().flatten() {
            if let Some(mask) = held.mask.get() {
                mask.find(text.as_bytes(), &mut found);
            }
        }
        if let Some(ac) = &self.also_automaton {
            found.extend(ac.find_iter(text).map(|m| m.range()));
        }
        if found.is_empty() {
            return Cow::Borrowed(text);
        }
        // The union of every match, each run replaced once (overlapping forms of different
        // secrets are masked whole).
        found.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut run: Option<std::ops::Range<usize>> = None;
        for r in found {
            match &mut run {
                Some(current) if r.start <= current.end => current.end = current.end.max(r.end),
                _ => {
                    if let Some(done) = run.take() {
                        push_masked(&mut out, text, &mut last, done);
                    }
                    run = Some(r);
                }
            }
        }
        if let Some(done) = run {
            push_masked(&mut out, text, &mut last, done);
        }
        out.push_str(&text[last..]);
        Cow::Owned(out)
    }

    /// Masks the known values; sealed-value markers show as `***` too, or, with `keep_sealed`,
    /// stay as they are (for messages that travel on).
    fn mask<'t>(&self, text: &'t str, keep_sealed: bool) -> Cow<'t, str> {
        if !crate::sealed::may_hold_markers(text) {
            return self.values(text);
        }
        if keep_sealed {
            Cow::Owned(crate::sealed::outside_markers(text, |t| self.values(t).into_owned()))
        } else {
            // Markers first: masking a short value inside one would leave its remains unmatched.
            Cow::Owned(self.values(&crate::sealed::mask_sealed(text)).into_owned())
        }
    }

    fn mask_json(&self, value: &mut Value, keep_sealed: bool) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(masked) = self.mask(s, keep_sealed) {
                    *s = masked;
                }
            }
            Value::Number(n) => {
                let text = n.to_string();
                if let Cow::Owned(masked) = self.mask(&text, keep_sealed) {
                    *value = Value::String(masked);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask_json(v, keep_sealed)),
            Value::Object(map) => {
                map.values_mut().for_each(|v| self.mask_json(v, keep_sealed));
                // The keys: the map is rebuilt only when one of them masks to another text.
                let masked: Vec<Option<String>> =
                    map.keys().map(|key| self.mask(key, keep_sealed).into_owned_if_changed()).collect();
                if masked.iter().all(Option::is_none) {
                    return;
                }
                let entries = std::mem::take(map);
                for ((key, v), masked) in entries.into_iter().zip(masked) {
                    let key = masked.unwrap_or(key);
                    // Two keys may mask to the same text (`x-a` and `x-b` with values `a`, `b`,
                    // or a key that already reads `x-***`): keep both entries, numbering the later.
                    let key = if map.contains_key(&key) {
                        (2..).map(|n| format!("{key} ({n})")).find(|k| !map.contains_key(k)).unwrap_or(key)
                    } else {
                        key
                    };
                    map.insert(key, v);
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }
}

/// A masked text as a new string when masking changed it.
trait IfChanged {
    fn into_owned_if_changed(self) -> Option<String>;
}

impl IfChanged for Cow<'_, str> {
    fn into_owned_if_changed(self) -> Option<String> {
        match self {
            Cow::Borrowed(_) => None,
            Cow::Owned(text) => Some(text),
        }
    }
}

/// Writes `text[last..run.start]` and `***` for the run, widened to character boundaries (a
/// window of a large value may start inside a character of the text).
fn push_masked(out: &mut String, text: &str, last: &mut usize, run: std::ops::Range<usize>) {
    let mut start = run.start.max(*last);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = run.end.max(start);
    while !text.is_char_boundary(end) {
        end += 1;
    }
    out.push_str(&text[*last..start.max(*last)]);
    out.push_str(MASK);
    *last = end.max(*last);
}

/// Masks the values of a known set of secrets, and their common encodings, as `***`.
pub struct Redactor {
    store: Store,
    tenant: TenantId,
    names: Vec<String>,
    learned: Mutex<Learned>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("secrets", &self.names).finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor for the secrets `names` of `tenant`.
    pub fn new(store: Store, tenant: TenantId, names: impl IntoIterator<Item = String>) -> Self {
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        names.dedup();
        Self { store, tenant, names, learned: Mutex::new(Learned::default()) }
    }

    /// Takes the shared mask of every secret whose version moved since the last call (the
    /// current value and the retained earlier ones).
    fn refresh(&self, learned: &mut Learned) {
        let later = std::mem::take(&mut learned.later);
        learned.held.resize_with(self.names.len() + later.len(), || None);
        for (name, held) in self.names.iter().chain(&later).zip(learned.held.iter_mut()) {
            let Some(key) = self.store.value_key(self.tenant, name) else {
                continue;
            };
            if held.as_ref().is_some_and(|h| h.key == key) {
                continue;
            }
            // The old mask stays until the new one is held: a rotated-out value is among the new
            // one's earlier values.
            if let Some((key, mask)) = crate::mask::shared(&self.store, self.tenant, name) {
                *held = Some(Held { key, mask });
            }
        }
        learned.later = later;
    }

    fn learned(&self) -> std::sync::MutexGuard<'_, Learned> {
        let mut learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut learned);
        learned
    }

    /// Masks the secret `name` (every value the store keeps for it) from now on, like the ones
    /// the redactor was made for: a sealed value a node opened may come from a secret the
    /// configuration does not reference (a converter's), and an upstream may echo it back. False
    /// when the redactor already learned [`MAX_LATER_SECRETS`] such secrets: the caller must not
    /// send the value.
    pub fn mask_secret(&self, name: &str) -> bool {
        let mut learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        if self.names.binary_search_by(|n| n.as_str().cmp(name)).is_ok()
            || learned.later.iter().any(|n| n == name)
        {
            return true;
        }
        if learned.later.len() >= MAX_LATER_SECRETS {
            return false;
        }
        learned.later.push(name.to_owned());
        self.refresh(&mut learned);
        true
    }

    /// Learns the current values of the secrets (call when one may have changed).
    pub fn learn(&self) {
        drop(self.learned());
    }

    /// Masks `value` and its forms from now on, like a secret's value: for a value a node built
    /// from secrets, such as `user:password` inside `Basic base64(user:password)`, whose base64
    /// does not contain the password's own base64 when the password is short. Keeps the last
    /// 64 such values.
    pub fn also_mask(&self, value: &[u8]) {
        if value.is_empty() {
            return;
        }
        let mut learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = learned.also.iter().position(|(v, _)| v.as_slice() == value) {
            // Known: keep it the most recent, no rebuild.
            if let Some(entry) = learned.also.remove(i) {
                learned.also.push_back(entry);
            }
            return;
        }
        if learned.also.len() >= MAX_ALSO_MASKED {
            learned.also.pop_front();
        }
        learned.also.push_back((Zeroizing::new(value.to_vec()), variants(value)));
        learned.rebuild_also();
    }

    /// `text` with every known value (in any known form), and every sealed value, replaced by
    /// `***`.
    pub fn mask(&self, text: &str) -> String {
        self.learned().mask(text, false).into_owned()
    }

    /// Masks every string (keys too) in a JSON tree, in place. Keys that mask to the same text
    /// are kept apart as `key`, `key (2)`, ….
    pub fn mask_json(&self, value: &mut Value) {
        self.learned().mask_json(value, false);
    }

    /// [`Redactor::mask`] for text that travels on in a message: sealed values stay sealed.
    pub fn mask_keep_sealed(&self, text: &str) -> String {
        self.learned().mask(text, true).into_owned()
    }

    /// [`Redactor::mask_json`] for a message that travels on: sealed values stay sealed.
    pub fn mask_json_keep_sealed(&self, value: &mut Value) {
        self.learned().mask_json(value, true);
    }
}
