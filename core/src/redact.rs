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

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use aho_corasick::AhoCorasick;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, percent_encode};
use serde_json::Value;
use veil_store::{SecretId, Store, TenantId};
use zeroize::Zeroizing;

use crate::mask::MaskCell;
use crate::template::json_escape_into;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Most values a redactor keeps from [`Redactor::also_mask`]; the oldest is forgotten first. Bounds
/// the memory of a node that builds a different composite for every message.
const MAX_ALSO_MASKED: usize = 64;

/// Most secrets a redactor learns after construction (sealed values opened by its nodes, from
/// secrets its configuration does not reference); a node that would open one more refuses.
pub const MAX_LATER_SECRETS: usize = 256;

/// Values of this many characters (a DNS name is at most 253) also get their lowercase and
/// uppercase forms: URL parsers lowercase a host, so a value used in one is sent (`Host` header)
/// and logged lowercased. Shorter values would mask too many ordinary words.
const CASE_FOLDED_CHARS: std::ops::RangeInclusive<usize> = 8..=253;

/// Values up to this size also get their percent-encoded forms. Longer ones do not fit in a URL
/// (servers refuse request lines over about 8 KiB), and each form of a large FILE value would cost
/// its size again in every redactor that knows it.
const MAX_URL_FORM_BYTES: usize = 8 * 1024;

pub(crate) type Pattern = Zeroizing<Vec<u8>>;

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

    /// `text` with every range where a known value shows (in any form) replaced by `***`.
    fn values(&self, text: &str) -> String {
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
            return text.to_owned();
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
        out
    }

    /// Masks the known values; sealed-value markers show as `***` too, or, with `keep_sealed`,
    /// stay as they are (for messages that travel on).
    fn mask(&self, text: &str, keep_sealed: bool) -> String {
        let values = |text: &str| self.values(text);
        if keep_sealed {
            crate::sealed::outside_markers(text, values)
        } else {
            // Markers first: masking a short value inside one would leave its remains unmatched.
            values(&crate::sealed::mask_sealed(text))
        }
    }

    fn mask_json(&self, value: &mut Value, keep_sealed: bool) {
        match value {
            Value::String(s) => {
                let masked = self.mask(s, keep_sealed);
                if masked != *s {
                    *s = masked;
                }
            }
            Value::Number(n) => {
                let text = n.to_string();
                let masked = self.mask(&text, keep_sealed);
                if masked != text {
                    *value = Value::String(masked);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask_json(v, keep_sealed)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.mask_json(&mut v, keep_sealed);
                    let masked = self.mask(&key, keep_sealed);
                    // Two keys may mask to the same text (`x-a` and `x-b` with values `a`, `b`):
                    // keep both entries, numbering the later one.
                    let key = if map.contains_key(&masked) {
                        (2..)
                            .map(|n| format!("{masked} ({n})"))
                            .find(|k| !map.contains_key(k))
                            .unwrap_or(masked)
                    } else {
                        masked
                    };
                    map.insert(key, v);
                }
            }
            Value::Bool(_) | Value::Null => {}
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

/// The percent-encodings a value may be sent or echoed in: each set lists the bytes it encodes.
/// The `url` crate's WHATWG sets (what reqwest sends for a value in a URL), RFC 3986's unreserved
/// set (most client libraries), JavaScript's `encodeURIComponent` and the strictest form.
const URL_FRAGMENT: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');
const URL_PATH: &AsciiSet = &URL_FRAGMENT.add(b'#').add(b'?').add(b'{').add(b'}');
const URL_USERINFO: &AsciiSet = &URL_PATH
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'=')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'|');
const URL_PATH_SEGMENT: &AsciiSet = &URL_PATH.add(b'/').add(b'%');
const URL_SPECIAL_PATH_SEGMENT: &AsciiSet = &URL_PATH_SEGMENT.add(b'\\');
const URL_QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>');
const URL_SPECIAL_QUERY: &AsciiSet = &URL_QUERY.add(b'\'');
const URL_COMPONENT: &AsciiSet = &URL_USERINFO.add(b'$').add(b'%').add(b'&').add(b'+').add(b',');
const RFC3986_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');
/// `application/x-www-form-urlencoded` as the `url` crate (reqwest's `.query()`, `.form()`) writes
/// it, with spaces as `+`.
const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'*').remove(b'-').remove(b'.').remove(b'_');

/// (set, spaces as `+`)
const PERCENT_FORMS: &[(&AsciiSet, bool)] = &[
    (URL_FRAGMENT, false),
    (URL_PATH, false),
    (URL_USERINFO, false),
    (URL_PATH_SEGMENT, false),
    (URL_SPECIAL_PATH_SEGMENT, false),
    (URL_QUERY, false),
    (URL_SPECIAL_QUERY, false),
    (URL_COMPONENT, false),
    (RFC3986_UNRESERVED, false),
    (RFC3986_UNRESERVED, true),
    (URI_COMPONENT, false),
    (FORM, true),
    (NON_ALPHANUMERIC, false),
    (NON_ALPHANUMERIC, true),
];

fn encodes(set: &'static AsciiSet, byte: u8) -> bool {
    byte >= 0x80 || percent_encode(&[byte], set).next().is_some_and(|chunk| chunk.len() == 3)
}

/// `text` percent-encoded with `set`, hex digits in upper or lower case.
fn percent(text: &str, set: &'static AsciiSet, plus_for_space: bool, lower: bool) -> Pattern {
    let mut out = Zeroizing::new(String::with_capacity(text.len() * 3));
    for &b in text.as_bytes() {
        if plus_for_space && b == b' ' {
            out.push('+');
        } else if encodes(set, b) {
            let _ = if lower { write!(out, "%{b:02x}") } else { write!(out, "%{b:02X}") };
        } else {
            out.push(char::from(b));
        }
    }
    into_pattern(out)
}

fn into_pattern(mut text: Zeroizing<String>) -> Pattern {
    Zeroizing::new(std::mem::take(&mut *text).into_bytes())
}

fn json_escaped(text: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(text.len() * 2 + 8));
    json_escape_into(&mut out, text);
    out
}

/// JSON escaping with every non-ASCII character as `\uXXXX` (Python's `json.dumps` default).
fn json_escaped_ascii(text: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(text.len() * 6 + 8));
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out
}

/// HTML/XML escaping (`&amp; &lt; &gt;`, and the quotes as given): what a page echoing a value
/// shows.
fn html_escaped(text: &str, quot: &str, apos: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(text.len() * 2));
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str(quot),
            '\'' => out.push_str(apos),
            _ => out.push(c),
        }
    }
    out
}

/// Rust's `{:?}` escaping without the quotes: what Rhai's `debug()`, `to_json()` and `throw [v]`
/// print (`\u{200b}`, `\0`, `\"`, `\\`, `\t`).
fn debug_escaped(text: &str) -> Zeroizing<String> {
    let quoted = Zeroizing::new(format!("{text:?}"));
    Zeroizing::new(quoted[1..quoted.len() - 1].to_owned())
}

/// The forms a value may take in text: itself; base64 (standard and URL-safe, padded or not, and
/// inside a longer base64 text); up to 8 KiB, the percent-encodings of URL components, forms and
/// common client libraries, with upper- and lowercase hex; JSON-escaped (also with `\uXXXX` for non-ASCII, and
/// escaped twice, as an upstream echoing a request inside a JSON string shows it); Rust/Rhai debug
/// escaping; and for values of 8 to 253 characters, lower- and uppercase.
pub(crate) fn variants(bytes: &[u8]) -> Vec<Pattern> {
    let mut out: Vec<Pattern> = vec![Zeroizing::new(bytes.to_vec())];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(Zeroizing::new(engine.encode(bytes).into_bytes()));
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        if text.len() <= MAX_URL_FORM_BYTES {
            for &(set, plus) in PERCENT_FORMS {
                out.push(percent(text, set, plus, false));
                out.push(percent(text, set, plus, true));
            }
        }
        let json = json_escaped(text);
        out.push(into_pattern(json_escaped(&json)));
        out.push(into_pattern(json));
        let ascii = json_escaped_ascii(text);
        out.push(into_pattern(json_escaped(&ascii)));
        out.push(into_pattern(ascii));
        let debug = debug_escaped(text);
        out.push(into_pattern(json_escaped(&debug)));
        out.push(into_pattern(debug));
        if text.contains(['&', '<', '>', '"', '\'']) {
            for (quot, apos) in [("&quot;", "&#39;"), ("&quot;", "&#x27;"), ("&#34;", "&#39;")] {
                out.push(into_pattern(html_escaped(text, quot, apos)));
            }
        }
        if CASE_FOLDED_CHARS.contains(&text.chars().count()) {
            out.push(into_pattern(Zeroizing::new(text.to_lowercase())));
            out.push(into_pattern(Zeroizing::new(text.to_uppercase())));
        }
    }
    out.extend(embedded_base64(bytes));
    out.retain(|p| !p.is_empty());
    out.sort_by(|a, b| a.as_slice().cmp(b.as_slice()));
    out.dedup_by(|a, b| a.as_slice() == b.as_slice());
    out
}

/// Every form [`Redactor`] masks for `value`, exactly as it masks them (the value itself, its base64,
/// percent, JSON, HTML, debug and case forms, and the runs of its base64 inside a longer base64
/// text; for a value over [`crate::LARGE_VALUE_BYTES`], the forms [`crate::mask`] hashes): for
/// tests that check a text shows no value, so "a value leaked" means what the redactor masks.
/// Each form is a copy of the value's bytes; do not call it on secrets outside tests.
pub fn masked_forms(value: &[u8]) -> Vec<Vec<u8>> {
    if value.len() > crate::LARGE_VALUE_BYTES {
        return crate::mask::large_forms(value).into_iter().map(|form| form.to_vec()).collect();
    }
    variants(value).into_iter().map(|form| form.to_vec()).collect()
}

/// The part of the base64 text of `…prefix + value + suffix…` that depends on the value alone, for
/// each of the three alignments a value can have inside a longer base64 string (the password in
/// `Basic base64(user:password)`). Only runs of at least 8 characters are used; a node that builds
/// such a composite registers it with [`Redactor::also_mask`] so shorter values are masked too.
fn embedded_base64(value: &[u8]) -> Vec<Pattern> {
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
        self.learned().mask(text, false)
    }

    /// Masks every string (keys too) in a JSON tree, in place. Keys that mask to the same text
    /// are kept apart as `key`, `key (2)`, ….
    pub fn mask_json(&self, value: &mut Value) {
        self.learned().mask_json(value, false);
    }

    /// [`Redactor::mask`] for text that travels on in a message: sealed values stay sealed.
    pub fn mask_keep_sealed(&self, text: &str) -> String {
        self.learned().mask(text, true)
    }

    /// [`Redactor::mask_json`] for a message that travels on: sealed values stay sealed.
    pub fn mask_json_keep_sealed(&self, value: &mut Value) {
        self.learned().mask_json(value, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(forms: &[Pattern], text: &str) -> bool {
        forms.iter().any(|p| p.as_slice() == text.as_bytes())
    }

    #[test]
    fn percent_forms_match_what_the_url_crate_sends() {
        let forms = variants(b"my-pass word.JULIET~9");
        assert!(has(&forms, "my-pass%20word.JULIET~9"));
        assert!(has(&forms, "my-pass+word.JULIET%7E9"), "form encoding");
        let forms = variants("$<secret:s-bearer>é".as_bytes());
        assert!(has(&forms, "$%3Csecret:s-bearer%3E%C3%A9"), "query");
        assert!(has(&forms, "$%3csecret:s-bearer%3e%c3%a9"), "lowercase hex");
        assert!(has(&forms, "%24%3Csecret%3As-bearer%3E%C3%A9"), "userinfo/component");
    }

    #[test]
    fn escapes_and_case() {
        let forms = variants("Sp\"ec\\ial\tTAB\u{200b}ZW\0".as_bytes());
        assert!(has(&forms, "Sp\\\"ec\\\\ial\\tTAB\\u{200b}ZW\\0"), "Rust debug");
        assert!(has(&forms, "Sp\\\\\\\"ec\\\\\\\\ial\\\\tTAB\u{200b}ZW\\\\u0000"), "JSON twice");
        assert!(has(&forms, "Sp\\\"ec\\\\ial\\tTAB\\u200bZW\\u0000"), "JSON, ASCII only");
        let forms = variants(b"k3y-CHARLIE-55aa");
        assert!(has(&forms, "k3y-charlie-55aa") && has(&forms, "K3Y-CHARLIE-55AA"));
        assert!(!has(&variants(b"Short1"), "short1"), "under 8 characters: no case forms");
    }
}
