//! Masking plaintexts in text that leaves the engine: debug events, node errors, log lines, API
//! error bodies. A [`Redactor`] belongs to one configuration and knows the secrets it references;
//! before masking it checks their versions (metadata only) and learns new values when one changed,
//! keeping earlier values masked too. It is never on the per-message render path.

use std::collections::HashMap;
use std::sync::Mutex;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use veil_store::{SecretValue, Store, TenantId};
use zeroize::Zeroizing;

use crate::template::json_escape_into;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

#[derive(Default)]
struct Learned {
    versions: HashMap<String, i64>,
    patterns: Vec<Zeroizing<Vec<u8>>>,
    automaton: Option<AhoCorasick>,
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

/// The forms a value may take in text: itself, base64 (standard and URL-safe, padded or not),
/// URL-encoded and JSON-escaped.
fn variants(value: &SecretValue) -> Vec<Zeroizing<Vec<u8>>> {
    let bytes = value.expose_bytes();
    let mut out: Vec<Zeroizing<Vec<u8>>> = vec![Zeroizing::new(bytes.to_vec())];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(Zeroizing::new(engine.encode(bytes).into_bytes()));
    }
    if let Some(text) = value.expose_text() {
        out.push(Zeroizing::new(utf8_percent_encode(text, NON_ALPHANUMERIC).to_string().into_bytes()));
        // Form encoding writes spaces as '+'.
        out.push(Zeroizing::new(
            utf8_percent_encode(text, NON_ALPHANUMERIC).to_string().replace("%20", "+").into_bytes(),
        ));
        let mut escaped = String::with_capacity(text.len() + 8);
        json_escape_into(&mut escaped, text);
        out.push(Zeroizing::new(escaped.into_bytes()));
    }
    out.extend(embedded_base64(bytes));
    out.retain(|p| !p.is_empty());
    out
}

/// The part of the base64 text of `…prefix + value + suffix…` that depends on the value alone, for
/// each of the three alignments a value can have inside a longer base64 string (the password in
/// `Basic base64(user:password)`). Only runs of at least 8 characters are used.
fn embedded_base64(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out = Vec::new();
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for offset in 0..3usize {
            let mut shifted = Zeroizing::new(vec![0u8; offset]);
            shifted.extend_from_slice(value);
            let encoded = Zeroizing::new(engine.encode(shifted.as_slice()).into_bytes());
            // Character i covers bits [6i, 6i + 6); keep those inside the value's bits.
            let start = (8 * offset).div_ceil(6);
            let end = (8 * (offset + value.len())) / 6;
            if end >= start + 8 {
                out.push(Zeroizing::new(encoded[start..end].to_vec()));
            }
        }
    }
    out
}

impl Redactor {
    /// A redactor for the secrets `names` of `tenant`.
    pub fn new(store: Store, tenant: TenantId, names: impl IntoIterator<Item = String>) -> Self {
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        names.dedup();
        Self { store, tenant, names, learned: Mutex::new(Learned::default()) }
    }

    /// Learns values that changed since the last call.
    fn refresh(&self, learned: &mut Learned) {
        let mut changed = false;
        for name in &self.names {
            let Some(version) = self.store.version(self.tenant, name) else {
                continue;
            };
            if learned.versions.get(name) == Some(&version) {
                continue;
            }
            if let Ok(value) = self.store.resolve_for_masking(self.tenant, name) {
                learned.patterns.extend(variants(&value));
                changed = true;
            }
            learned.versions.insert(name.clone(), version);
        }
        if changed {
            learned.patterns.sort_by(|a, b| a.as_slice().cmp(b.as_slice()));
            learned.patterns.dedup_by(|a, b| a.as_slice() == b.as_slice());
            learned.automaton = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(learned.patterns.iter().map(|p| p.as_slice()))
                .ok();
        }
    }

    /// Learns the current values of the secrets (call when one may have changed).
    pub fn learn(&self) {
        let mut learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut learned);
    }

    /// `text` with every known value (in any known form) replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut learned);
        match &learned.automaton {
            Some(ac) => ac.replace_all(text, &vec![MASK; learned.patterns.len()]),
            None => text.to_owned(),
        }
    }

    /// Masks every string (keys too) in a JSON tree, in place.
    pub fn mask_json(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                let masked = self.mask(s);
                if masked != *s {
                    *s = masked;
                }
            }
            Value::Number(n) => {
                let text = n.to_string();
                if self.mask(&text) != text {
                    *value = Value::String(self.mask(&text));
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask_json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    self.mask_json(&mut v);
                    map.insert(self.mask(&k), v);
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }
}
