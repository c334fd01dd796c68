//! What masks one secret's values, shared by every redactor that knows the secret. A
//! [`SecretMask`] is built once per secret version per process (the current value and the earlier
//! ones the store keeps) and held by the redactors of every chain and integration that use it; the
//! last holder's drop frees it. Its memory is bounded by the secret's size, not by how many use it:
//!
//! - values up to [`LARGE_VALUE_BYTES`]: an Aho-Corasick automaton over every form of every value
//!   (see [`crate::redact`]'s forms: base64, percent, JSON, HTML, debug and case forms);
//! - larger values (certificates, key files, CA bundles): a set of 64-bit hashes of the aligned
//!   [`WINDOW`]-byte windows of a few forms (the bytes, JSON-escaped, base64 standard and URL-safe,
//!   and for PEM the base64 of the DER on one line), matched with a rolling hash. Any run of the
//!   value of at least `2 × WINDOW − 1` bytes contains a whole window and is masked window by
//!   window; a whole value is masked from its first byte to its last. Memory: about half a byte
//!   per byte of each form, some 3 bytes per byte of value for all forms.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, Weak};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use veil_store::{SecretId, Store, TenantId};
use zeroize::Zeroizing;

use crate::forms::{Pattern, variants};

/// Values longer than this are masked by window hashes rather than by an automaton.
pub const LARGE_VALUE_BYTES: usize = 8 * 1024;
/// Bytes per hashed window of a large value.
pub const WINDOW: usize = 32;
/// Total bytes of patterns up to which an automaton may be a DFA (faster, larger).
const MAX_DFA_PATTERN_BYTES: usize = 64 * 1024;
/// The rolling hash's base (odd, so multiplication is invertible modulo 2^64).
const BASE: u64 = 0x100_0000_01b3;

/// Masks the values of one secret version (current and kept earlier values).
pub(crate) struct SecretMask {
    automaton: Option<AhoCorasick>,
    windows: foldhash::HashSet<u64>,
}

impl std::fmt::Debug for SecretMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretMask").field("windows", &self.windows.len()).finish_non_exhaustive()
    }
}

/// `BASE^(WINDOW-1)`, to take the oldest byte out of a rolling hash.
fn top() -> u64 {
    (1..WINDOW).fold(1u64, |acc, _| acc.wrapping_mul(BASE))
}

fn window_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |h, &b| h.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1))
}

/// The forms of a large value that are hashed: its bytes, JSON-escaped, base64 (standard and
/// URL-safe), and for a PEM file its base64 body on one line.
pub(crate) fn large_forms(value: &[u8]) -> Vec<Pattern> {
    let mut forms: Vec<Pattern> = vec![Zeroizing::new(value.to_vec())];
    forms.push(Zeroizing::new(STANDARD.encode(value).into_bytes()));
    forms.push(Zeroizing::new(URL_SAFE.encode(value).into_bytes()));
    if let Ok(text) = std::str::from_utf8(value) {
        let mut json = Zeroizing::new(String::with_capacity(text.len() + text.len() / 16));
        crate::forms::json_escape_into(&mut json, text);
        forms.push(Zeroizing::new(std::mem::take(&mut *json).into_bytes()));
        if text.contains("-----BEGIN ") {
            let mut body: Zeroizing<String> = Zeroizing::new(
                text.lines()
                    .filter(|line| !line.starts_with("-----") && !line.contains(':'))
                    .flat_map(|line| line.trim().chars())
                    .collect(),
            );
            forms.push(Zeroizing::new(std::mem::take(&mut *body).into_bytes()));
        }
    }
    forms
}

impl SecretMask {
    /// Builds the mask of `values` (the current value and the earlier ones kept).
    pub(crate) fn build<'v>(values: impl IntoIterator<Item = &'v [u8]>) -> Self {
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut windows = foldhash::HashSet::default();
        for value in values {
            if value.len() <= LARGE_VALUE_BYTES {
                patterns.extend(variants(value));
                continue;
            }
            for form in large_forms(value) {
                let mut at = 0;
                while at + WINDOW <= form.len() {
                    windows.insert(window_hash(&form[at..at + WINDOW]));
                    at += WINDOW;
                }
                // The last bytes, so a whole value is masked to its end.
                if form.len() >= WINDOW {
                    windows.insert(window_hash(&form[form.len() - WINDOW..]));
                }
            }
        }
        Self { automaton: automaton(&mut patterns), windows }
    }

    /// Adds the byte ranges of `text` that hold one of the values, in any form, to `found`.
    pub(crate) fn find(&self, text: &[u8], found: &mut Vec<Range<usize>>) {
        if let Some(ac) = &self.automaton {
            found.extend(ac.find_iter(text).map(|m| m.range()));
        }
        if self.windows.is_empty() || text.len() < WINDOW {
            return;
        }
        let top = top();
        let mut h = window_hash(&text[..WINDOW]);
        for end in WINDOW..=text.len() {
            if end > WINDOW {
                let out = u64::from(text[end - WINDOW - 1]) + 1;
                h = h
                    .wrapping_sub(out.wrapping_mul(top))
                    .wrapping_mul(BASE)
                    .wrapping_add(u64::from(text[end - 1]) + 1);
            }
            if self.windows.contains(&h) {
                found.push(end - WINDOW..end);
            }
        }
    }
}

/// An automaton over `patterns` (sorted and deduplicated here), or none when there are none.
pub(crate) fn automaton(patterns: &mut Vec<Pattern>) -> Option<AhoCorasick> {
    patterns.sort_by(|a, b| a.as_slice().cmp(b.as_slice()));
    patterns.dedup_by(|a, b| a.as_slice() == b.as_slice());
    if patterns.is_empty() {
        return None;
    }
    let bytes: usize = patterns.iter().map(|p| p.len()).sum();
    // Past a few KiB of patterns a DFA would cost much memory and time: a contiguous NFA.
    let kind = (bytes > MAX_DFA_PATTERN_BYTES).then_some(AhoCorasickKind::ContiguousNFA);
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .kind(kind)
        .build(patterns.iter().map(|p| p.as_slice()))
        .ok()
}

/// A secret's values: tenant, secret id (a secret made again under the same name is another)
/// and version.
type Key = (TenantId, SecretId, i64);

/// A mask being built or built: those who ask while it is built wait for it.
pub(crate) type MaskCell = OnceLock<Arc<SecretMask>>;

/// The masks this process holds, by the secret version they mask. Entries are built once (those
/// who ask at the same time wait for the first) and live as long as a redactor holds them.
static MASKS: LazyLock<Mutex<HashMap<Key, Weak<MaskCell>>>> = LazyLock::new(Mutex::default);

/// The shared mask of the current values of secret `name` of `tenant`, built if no redactor holds
/// it; `None` when the secret does not exist (or its values cannot be read).
pub(crate) fn shared(
    store: &Store,
    tenant: TenantId,
    name: &str,
) -> Option<((SecretId, i64), Arc<MaskCell>)> {
    let (id, version) = store.value_key(tenant, name)?;
    let key = (tenant, id, version);
    let cell = {
        let mut masks = MASKS.lock().unwrap_or_else(|e| e.into_inner());
        match masks.get(&key).and_then(Weak::upgrade) {
            Some(cell) => cell,
            None => {
                // Forget entries nobody holds any more (rotated or unused secrets), now and then:
                // a sweep per insertion would make starting many chains quadratic.
                if masks.len() % 256 == 255 {
                    masks.retain(|_, weak| weak.strong_count() > 0);
                }
                let cell = Arc::new(OnceLock::new());
                masks.insert(key, Arc::downgrade(&cell));
                cell
            }
        }
    };
    let values = match cell.get() {
        Some(_) => None,
        None => Some(store.values_for_masking(tenant, name).ok()?),
    };
    cell.get_or_init(|| {
        let values = values.unwrap_or_default();
        Arc::new(SecretMask::build(values.iter().map(|v| v.expose_bytes())))
    });
    Some(((id, version), cell))
}

/// How many secret versions this process holds masks for (for tests and health).
pub fn shared_masks() -> usize {
    MASKS.lock().unwrap_or_else(|e| e.into_inner()).values().filter(|w| w.strong_count() > 0).count()
}

/// Every form [`crate::Redactor`] masks for `value`, exactly as it masks them (the value itself, its base64,
/// percent, JSON, HTML, debug and case forms, and the runs of its base64 inside a longer base64
/// text; for a value over [`LARGE_VALUE_BYTES`], the forms this module hashes): for
/// tests that check a text shows no value, so "a value leaked" means what the redactor masks.
/// Each form is a copy of the value's bytes; do not call it on secrets outside tests.
pub fn masked_forms(value: &[u8]) -> Vec<Vec<u8>> {
    if value.len() > LARGE_VALUE_BYTES {
        return large_forms(value).into_iter().map(|form| form.to_vec()).collect();
    }
    variants(value).into_iter().map(|form| form.to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(mask: &SecretMask, text: &[u8]) -> Vec<Range<usize>> {
        let mut found = Vec::new();
        mask.find(text, &mut found);
        found
    }

    #[test]
    fn a_large_value_is_found_whole_in_its_forms_wherever_it_starts() {
        let value: Vec<u8> = (0..20_000u32)
            .map(|i| b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij0123456789+/\n"[(i * 7 % 49) as usize])
            .collect();
        let mask = SecretMask::build([value.as_slice()]);
        for prefix in ["", "x", "some text before: "] {
            let mut text = prefix.as_bytes().to_vec();
            text.extend_from_slice(&value);
            text.extend_from_slice(b" after");
            let found = masked(&mask, &text);
            let start = found.iter().map(|r| r.start).min().unwrap();
            let end = found.iter().map(|r| r.end).max().unwrap();
            assert_eq!((start, end), (prefix.len(), prefix.len() + value.len()));
            let mut covered = vec![false; text.len()];
            for r in found {
                covered[r].iter_mut().for_each(|c| *c = true);
            }
            assert!(covered[prefix.len()..prefix.len() + value.len()].iter().all(|c| *c));
        }
        let b64 = STANDARD.encode(&value);
        let found = masked(&mask, format!("k={b64}").as_bytes());
        assert_eq!(found.iter().map(|r| r.end).max(), Some(2 + b64.len()));
        assert!(masked(&mask, b"nothing of it here, not even close to 32 bytes of it").is_empty());
    }

    #[test]
    fn memory_of_a_large_value_is_a_fraction_of_its_size() {
        let value: Vec<u8> = (0..1_048_576u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let mask = SecretMask::build([value.as_slice()]);
        // Bytes, base64 twice (1.33 each): about 3.7 MiB of forms, one hash per 32 bytes.
        assert!(mask.windows.len() < 4 * 1_048_576 / WINDOW, "{}", mask.windows.len());
        assert!(mask.automaton.is_none());
    }
}
