//! Sealed values: what `secret("name")` gives a script. A [`Sealed`] holds a secret's value (or a
//! value combined from secrets and text) and the names of the secrets in it, and shows as `***`
//! wherever a script could turn it into text. Scripts can combine sealed values (`+`,
//! `basic_auth`, `base64_encode`) and derive one-way public values from them (HMAC, SHA-256,
//! AES-GCM decryption of a payload), nothing else: no length, index, comparison, iteration, case
//! change or parsing.
//!
//! A sealed value a script puts into a message travels as a marker, `{veil-sealed:…}`: the
//! tenant, the names and the value encrypted (AES-256-GCM) with a key made at process start and
//! never stored, so nothing outside this process can read or forge one. Wherever text leaves the
//! engine a marker shows as `***` ([`mask_sealed`], and every [`crate::Redactor`]); a secret-capable
//! field that takes it through a message template opens it for the send
//! ([`crate::RenderCtx::render`]), which then checks the destination against the lists of the
//! secrets the marker names.

use std::any::TypeId;
use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, ImmutableString, Map};
use sha2::{Digest, Sha256};
use veil_store::TenantId;
use zeroize::Zeroizing;

use crate::redact::MASK;

/// How a marker starts; the payload (base64url) runs to [`MARKER_END`].
pub const MARKER_START: &str = "{veil-sealed:";
const MARKER_END: char = '}';
const AAD: &[u8] = b"veil sealed value v1";
/// A marker's plaintext is padded to a multiple of this many bytes.
const PADDING: usize = 64;
/// The longest a Secret built in a script may be (by its bound).
pub const MAX_SEALED_VALUE: usize = 4 * 1024 * 1024;
/// The most bytes (by their bounds) of Secrets one script run may build.
pub const MAX_SEALED_BYTES: usize = 16 * 1024 * 1024;

/// Whether this process ever made a marker: until then no text can hold a valid one, and the
/// message path skips looking for them.
static ANY_SEALED: AtomicBool = AtomicBool::new(false);

/// The key markers are encrypted with: random, made once per process, never written anywhere.
static KEY: LazyLock<Aes256Gcm> = LazyLock::new(|| Aes256Gcm::new(&Aes256Gcm::generate_key(&mut OsRng)));

type ScriptResult<T> = Result<T, Box<EvalAltResult>>;

/// A secret's value, or a value combined from secrets, sealed: scripts see `***`.
#[derive(Clone)]
pub struct Sealed(Arc<Inner>);

struct Inner {
    tenant: TenantId,
    /// The rule chain the value was sealed for (see [`crate::Secrets::set_scope`]).
    scope: Option<uuid::Uuid>,
    /// An upper bound of the value's length computed from what the script knows (the lengths of
    /// the plain text in it, and per secret the largest value of its kind): size checks use it,
    /// so they never tell a script anything about a secret's length.
    bound: usize,
    /// The secrets the value comes from, sorted.
    names: Vec<String>,
    value: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.0.names.join(", "))
    }
}

impl Sealed {
    /// The value of the secret `name` of `tenant`, sealed; `max_len` is the longest value the
    /// secret could hold (its type's limit in the store), what a script may assume of its length.
    /// `scope` is the rule chain it is for: it opens only there.
    pub fn new(
        tenant: TenantId,
        scope: Option<uuid::Uuid>,
        name: &str,
        value: &[u8],
        max_len: usize,
    ) -> Self {
        let bound = max_len.max(value.len());
        let names = vec![name.to_owned()];
        let inner = Inner { tenant, scope, names, bound, value: Zeroizing::new(value.to_vec()) };
        Self(Arc::new(inner))
    }

    /// The names of the secrets this value is made of, sorted.
    pub fn names(&self) -> &[String] {
        &self.0.names
    }

    /// The value. Only for a send that took it through a secret-capable field.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0.value
    }

    /// A value derived from this one (and `other`'s names) whose length is at most `bound`,
    /// sealed the same way. The bound counts against the run's [`MAX_SEALED_BYTES`] and may be
    /// at most [`MAX_SEALED_VALUE`].
    fn derive(
        &self,
        other: Option<&Self>,
        bound: usize,
        value: impl FnOnce() -> Zeroizing<Vec<u8>>,
    ) -> ScriptResult<Self> {
        if bound > MAX_SEALED_VALUE {
            return Err(format!(
                "a Secret built so could be longer than {MAX_SEALED_VALUE} bytes (its parts may be up to {bound}: \
                 the text, and per secret the largest value of its type)"
            )
            .into());
        }
        crate::script::charge_sealed(bound)?;
        let mut names = self.0.names.clone();
        if let Some(other) = other {
            names.extend(other.0.names.iter().cloned());
            names.sort();
            names.dedup();
        }
        Ok(Self(Arc::new(Inner { tenant: self.0.tenant, scope: self.0.scope, names, bound, value: value() })))
    }

    pub(crate) fn bound(&self) -> usize {
        self.0.bound
    }

    /// The marker that stands for this value in a message.
    pub fn marker(&self) -> String {
        let inner = &self.0;
        let names: usize = inner.names.iter().map(|n| 2 + n.len()).sum();
        let len = 16 + 16 + 2 + names + 4 + 4 + inner.value.len();
        let mut plain = Zeroizing::new(Vec::with_capacity(len.next_multiple_of(PADDING)));
        plain.extend_from_slice(inner.tenant.0.as_bytes());
        plain.extend_from_slice(inner.scope.unwrap_or_default().as_bytes());
        plain.extend_from_slice(&(inner.names.len() as u16).to_be_bytes());
        for name in &inner.names {
            plain.extend_from_slice(&(name.len() as u16).to_be_bytes());
            plain.extend_from_slice(name.as_bytes());
        }
        plain.extend_from_slice(&(inner.bound as u32).to_be_bytes());
        plain.extend_from_slice(&(inner.value.len() as u32).to_be_bytes());
        plain.extend_from_slice(&inner.value);
        // Padded, so that a marker's length tells the value's only to within PADDING bytes.
        let padded = plain.len().next_multiple_of(PADDING);
        plain.resize(padded, 0);
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed =
            KEY.encrypt(&nonce, Payload { msg: &plain, aad: AAD }).expect("AES-GCM seals any length");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        ANY_SEALED.store(true, Ordering::Relaxed);
        format!("{MARKER_START}{}{MARKER_END}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The value a marker's payload stands for, if this process made it.
    fn open(payload: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain =
            Zeroizing::new(KEY.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: AAD }).ok()?);
        let mut rest: &[u8] = &plain;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            rest = tail;
            Some(head)
        };
        let tenant = TenantId(uuid::Uuid::from_slice(take(16)?).ok()?);
        let scope = Some(uuid::Uuid::from_slice(take(16)?).ok()?).filter(|s| !s.is_nil());
        let count = u16::from_be_bytes(take(2)?.try_into().ok()?);
        let mut names = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = u16::from_be_bytes(take(2)?.try_into().ok()?);
            names.push(String::from_utf8(take(usize::from(len))?.to_vec()).ok()?);
        }
        let bound = usize::try_from(u32::from_be_bytes(take(4)?.try_into().ok()?)).ok()?;
        let len = usize::try_from(u32::from_be_bytes(take(4)?.try_into().ok()?)).ok()?;
        let value = Zeroizing::new(take(len)?.to_vec());
        Some(Self(Arc::new(Inner { tenant, scope, names, bound, value })))
    }

    /// The value a marker's payload stands for when it was sealed for `tenant` and the rule
    /// chain `scope`.
    fn open_for(payload: &str, tenant: TenantId, scope: Option<uuid::Uuid>) -> Option<Self> {
        Self::open(payload).filter(|s| s.0.tenant == tenant && s.0.scope == scope)
    }
}

/// The markers in `text`: (byte range, payload).
fn markers(text: &str) -> impl Iterator<Item = (std::ops::Range<usize>, &str)> {
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(offset) = text[from..].find(MARKER_START) {
            let start = from + offset;
            let body = start + MARKER_START.len();
            let len = text[body..]
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                .count();
            from = body + len;
            if text[from..].starts_with(MARKER_END) {
                from += 1;
                return Some((start..from, &text[body..body + len]));
            }
        }
        None
    })
}

/// Writes `text` into `out` with each marker replaced by what `each` writes for it (given the
/// marker and its payload); stops at `each`'s first error.
fn each_marker<E>(
    text: &str,
    out: &mut String,
    mut each: impl FnMut(&mut String, &str, &str) -> Result<(), E>,
) -> Result<(), E> {
    let mut last = 0;
    for (range, payload) in markers(text) {
        out.push_str(&text[last..range.start]);
        each(out, &text[range.clone()], payload)?;
        last = range.end;
    }
    out.push_str(&text[last..]);
    Ok(())
}

/// Whether this process ever sealed a value into a message.
pub(crate) fn any_sealed() -> bool {
    ANY_SEALED.load(Ordering::Relaxed)
}

/// Whether `text` may hold a marker (cheap: false until this process sealed something).
pub(crate) fn may_hold_markers(text: &str) -> bool {
    ANY_SEALED.load(Ordering::Relaxed) && text.contains(MARKER_START)
}

/// `text` with every sealed-value marker shown as `***`.
pub fn mask_sealed(text: &str) -> Cow<'_, str> {
    if !may_hold_markers(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let _ = each_marker(text, &mut out, |out, _, _| -> Result<(), Infallible> {
        out.push_str(MASK);
        Ok(())
    });
    Cow::Owned(out)
}

/// Every sealed-value marker in a JSON tree (strings and keys) shown as `***`, in place: for
/// message content sent somewhere no secret-capable field opens it.
pub fn mask_sealed_json(value: &mut serde_json::Value) {
    if !any_sealed() {
        return;
    }
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(masked) = mask_sealed(s) {
                *s = masked;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_sealed_json),
        serde_json::Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut v) in entries {
                mask_sealed_json(&mut v);
                map.insert(mask_sealed(&key).into_owned(), v);
            }
        }
        _ => {}
    }
}

/// How a handle starts: `{veil-sealed:#<nonce>N}` stands for the N-th marker of a message while
/// a handlebars template renders.
const HANDLE_START: &str = "{veil-sealed:#";

/// The markers of one message as one render sees them: each replaced by a handle of fixed length
/// (handlebars helpers such as `len` learn nothing of a value) carrying a nonce made for this
/// render, so text in the message shaped like a handle is data: it stands for nothing.
#[derive(Debug, Default)]
pub(crate) struct Handles {
    nonce: String,
    markers: Vec<String>,
}

impl Handles {
    /// Replaces every marker in the strings of `value` by a handle (without recursion: message
    /// data can be deep).
    pub(crate) fn take_from(value: &mut serde_json::Value) -> Self {
        let mut handles = Self::default();
        if !any_sealed() {
            return handles;
        }
        let mut stack = vec![value];
        while let Some(value) = stack.pop() {
            match value {
                serde_json::Value::String(s) if s.contains(MARKER_START) => {
                    if handles.nonce.is_empty() {
                        handles.nonce = uuid::Uuid::new_v4().simple().to_string();
                    }
                    let mut out = String::with_capacity(s.len());
                    let _ = each_marker(s, &mut out, |out, marker, _| -> Result<(), Infallible> {
                        let _ = write!(
                            out,
                            "{HANDLE_START}{}{:08}{MARKER_END}",
                            handles.nonce,
                            handles.markers.len()
                        );
                        handles.markers.push(marker.to_owned());
                        Ok(())
                    });
                    *s = out;
                }
                serde_json::Value::Array(items) => stack.extend(items.iter_mut()),
                serde_json::Value::Object(map) => stack.extend(map.values_mut()),
                _ => {}
            }
        }
        handles
    }

    /// `text` with this render's handles replaced by their markers again; anything else shaped
    /// like a handle stays as it is.
    pub(crate) fn restore(&self, text: String) -> String {
        if self.markers.is_empty() {
            return text;
        }
        let prefix = format!("{HANDLE_START}{}", self.nonce);
        if !text.contains(&prefix) {
            return text;
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find(&prefix) {
            out.push_str(&rest[..at]);
            let after = &rest[at + prefix.len()..];
            let digits = after.bytes().take(8).take_while(u8::is_ascii_digit).count();
            let marker = after[..digits].parse::<usize>().ok().and_then(|i| self.markers.get(i));
            match marker {
                Some(marker) if digits == 8 && after[digits..].starts_with(MARKER_END) => {
                    out.push_str(marker);
                    rest = &after[digits + 1..];
                }
                _ => {
                    out.push_str(&prefix);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Masks with `mask` the text between markers, leaving the markers as they are (a redactor's
/// masking must not break a marker that travels on).
pub(crate) fn outside_markers(text: &str, mask: impl Fn(&str) -> String) -> String {
    if !may_hold_markers(text) {
        return mask(text);
    }
    // The text between markers, masked; the markers as they are.
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (range, _) in markers(text) {
        out.push_str(&mask(&text[last..range.start]));
        out.push_str(&text[range.clone()]);
        last = range.end;
    }
    out.push_str(&mask(&text[last..]));
    out
}

/// Why a marker could not be opened for a send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a sealed value in the message cannot be opened here: it was not sealed for this rule chain (by its scripts, or the converters of an integration feeding it) in this process"
)]
pub struct ForeignMarker;

/// `text` with every marker replaced by its value (JSON-escaped when `escape` says so), into
/// `out` (zeroizing); the names of the secrets opened are added to `names`. A marker made for
/// another tenant, or not by this process, is an error.
pub(crate) fn unseal_into(
    text: &str,
    (tenant, scope): (TenantId, Option<uuid::Uuid>),
    escape: crate::template::Escape,
    out: &mut Zeroizing<String>,
    names: &mut Vec<String>,
) -> Result<(), crate::error::RenderError> {
    each_marker(text, out, |out, _, payload| {
        let sealed = Sealed::open_for(payload, tenant, scope)
            .ok_or_else(|| crate::error::RenderError::Template(ForeignMarker.to_string()))?;
        let value = std::str::from_utf8(sealed.expose())
            .map_err(|_| crate::error::RenderError::NotText(sealed.names().join(", ")))?;
        match escape {
            crate::template::Escape::None => out.push_str(value),
            crate::template::Escape::JsonString => crate::template::json_escape_into(out, value),
        }
        names.extend(sealed.names().iter().cloned());
        Ok(())
    })
}

/// A script's input with its markers made sealed values again: a string that is exactly a marker
/// of `to` (tenant and rule chain) becomes a `Secret`; any other marker (inside a longer text, or not this tenant's,
/// or any at all when `opens` is false: a customer's script) shows as `***`.
pub(crate) fn reseal_input(value: &mut Dynamic, to: (TenantId, Option<uuid::Uuid>), opens: bool) {
    if let Some(mut items) = value.write_lock::<Array>() {
        items.iter_mut().for_each(|v| reseal_input(v, to, opens));
        return;
    }
    if let Some(mut entries) = value.write_lock::<Map>() {
        entries.values_mut().for_each(|v| reseal_input(v, to, opens));
        return;
    }
    let replacement = match value.read_lock::<ImmutableString>() {
        Some(text) if may_hold_markers(&text) => {
            let whole = markers(&text).next().filter(|(range, _)| opens && *range == (0..text.len()));
            match whole.and_then(|(_, payload)| Sealed::open_for(payload, to.0, to.1)) {
                Some(sealed) => Dynamic::from(sealed),
                None => Dynamic::from(mask_sealed(&text).into_owned()),
            }
        }
        _ => return,
    };
    *value = replacement;
}

/// Replaces every sealed value in a script's result with its marker (copies of one value share
/// one marker).
pub(crate) fn markers_for_output(value: &mut Dynamic) {
    markers_into(value, &mut std::collections::HashMap::new());
}

fn markers_into(value: &mut Dynamic, made: &mut std::collections::HashMap<*const Inner, String>) {
    if let Some(mut items) = value.write_lock::<Array>() {
        items.iter_mut().for_each(|v| markers_into(v, made));
        return;
    }
    if let Some(mut entries) = value.write_lock::<Map>() {
        entries.values_mut().for_each(|v| markers_into(v, made));
        return;
    }
    let marker = value
        .read_lock::<Sealed>()
        .map(|s| made.entry(Arc::as_ptr(&s.0)).or_insert_with(|| s.marker()).clone());
    if let Some(marker) = marker {
        *value = Dynamic::from(marker);
    }
}

/// How a value shows in an error or a JSON text: sealed values as `***`.
fn shown(value: &Dynamic) -> serde_json::Value {
    if value.is::<Sealed>() {
        return serde_json::Value::String(MASK.to_owned());
    }
    if let Some(items) = value.read_lock::<Array>() {
        return serde_json::Value::Array(items.iter().map(shown).collect());
    }
    if let Some(entries) = value.read_lock::<Map>() {
        return serde_json::Value::Object(entries.iter().map(|(k, v)| (k.to_string(), shown(v))).collect());
    }
    rhai::serde::from_dynamic(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()))
}

/// A script error's text with every sealed value in it shown as `***` (Rhai prints a custom
/// type's Rust name where it has no text for it).
pub(crate) fn error_text(text: String) -> String {
    let rust_name = std::any::type_name::<Sealed>();
    if !text.contains(rust_name) {
        return text;
    }
    // Where Rhai names the type it found, say `Secret`; anywhere else it stands for the value.
    text.replace(&format!("Data type incorrect: {rust_name}"), "Data type incorrect: Secret")
        .replace(rust_name, MASK)
}

/// A one-way helper's output (a signature, a hash) computed from `inputs`. It is public data,
/// unless one of the secrets it comes from may be sent only to some destinations (or its tenant
/// requires destinations for every secret): then it is sealed under those secrets, so that a
/// signature made with a key limited to one API goes only to that API.
fn one_way(inputs: &[&Dynamic], output: Vec<u8>, text: bool) -> ScriptResult<Dynamic> {
    let sealed: Vec<Sealed> =
        inputs.iter().filter_map(|v| v.read_lock::<Sealed>().map(|s| s.clone())).collect();
    let mut names: Vec<String> = sealed.iter().flat_map(|s| s.names().iter().cloned()).collect();
    names.sort();
    names.dedup();
    match sealed.first() {
        Some(first) if crate::script::restricted(&names) => {
            crate::script::charge_sealed(output.len())?;
            let inner = Inner {
                tenant: first.0.tenant,
                scope: first.0.scope,
                names,
                bound: output.len(),
                value: Zeroizing::new(output),
            };
            Ok(Dynamic::from(Sealed(Arc::new(inner))))
        }
        _ if text => Ok(Dynamic::from(String::from_utf8(output).unwrap_or_default())),
        _ => Ok(Dynamic::from_blob(output)),
    }
}

fn refuse<T>(what: &str) -> ScriptResult<T> {
    Err(format!("{what}: a Secret is sealed; it can be combined (+, basic_auth, base64_encode) and used for signing, hashing and decryption, not read").into())
}

/// The bytes of a helper's argument: a string, a blob or (for key and data) a sealed value.
/// (A copy, zeroized when dropped: it may be a secret's value.)
fn bytes_of(value: &Dynamic, what: &str) -> ScriptResult<Zeroizing<Vec<u8>>> {
    if let Some(s) = value.read_lock::<Sealed>() {
        return Ok(Zeroizing::new(s.expose().to_vec()));
    }
    if let Some(s) = value.read_lock::<ImmutableString>() {
        return Ok(Zeroizing::new(s.as_bytes().to_vec()));
    }
    if let Some(b) = value.read_lock::<Blob>() {
        return Ok(Zeroizing::new(b.clone()));
    }
    Err(format!("{what} must be a string, a blob or a Secret, not {}", value.type_name()).into())
}

fn concat(parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(parts.iter().map(|p| p.len()).sum()));
    parts.iter().for_each(|p| out.extend_from_slice(p));
    out
}

/// The bound of base64 text of a value bounded by `bound`.
fn base64_bound(bound: usize) -> usize {
    bound.div_ceil(3) * 4
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Reads a key: 16 or 32 bytes as they are, or that many in hex or base64.
fn aes_key(bytes: &[u8]) -> ScriptResult<Zeroizing<Vec<u8>>> {
    let text = std::str::from_utf8(bytes).ok().map(str::trim);
    if let Some(text) = text
        && matches!(text.len(), 32 | 64)
        && text.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Ok(Zeroizing::new(hex::decode(text).expect("checked to be hex")));
    }
    if matches!(bytes.len(), 16 | 32) {
        return Ok(Zeroizing::new(bytes.to_vec()));
    }
    if let Some(decoded) = text.and_then(|t| STANDARD.decode(t).ok()).filter(|k| matches!(k.len(), 16 | 32)) {
        return Ok(Zeroizing::new(decoded));
    }
    Err("aes_gcm_decrypt: the key must be 16 or 32 bytes (AES-128 or AES-256), raw, in hex or in base64"
        .into())
}

/// A nonce, ciphertext or additional data: a blob, or a string in hex (when it is hex) or base64.
fn binary_arg(value: &Dynamic, what: &str) -> ScriptResult<Vec<u8>> {
    if value.is::<Sealed>() {
        return refuse(&format!("aes_gcm_decrypt: {what}"));
    }
    if let Some(b) = value.read_lock::<Blob>() {
        return Ok(b.clone());
    }
    if let Some(s) = value.read_lock::<ImmutableString>() {
        let s = s.trim();
        if s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(hex::decode(s).expect("checked to be hex"));
        }
        return STANDARD
            .decode(s)
            .map_err(|_| format!("aes_gcm_decrypt: {what} is neither hex nor base64").into());
    }
    Err(format!(
        "aes_gcm_decrypt: {what} must be a blob or a hex or base64 string, not {}",
        value.type_name()
    )
    .into())
}

/// Marks an error a script cannot catch (its text follows).
pub(crate) const UNCATCHABLE: &str = "veil:stop:";

/// What any failure of a decryption with a sealed key says: the same for a key of the wrong
/// size, a wrong key and a tag that does not match, since each depends on the key.
const SEALED_KEY_FAILED: &str = "aes_gcm_decrypt: the ciphertext does not decrypt with this key \
     (the key must be 16 or 32 bytes — raw, hex or base64 — and nonce, data and tag must match)";

/// Decrypts `ciphertext`. Errors about the nonce, ciphertext and aad (what the script passed)
/// are ordinary errors; when the key is a `Secret`, a failure fails the whole run — the script
/// cannot catch it, and a run whose error was swallowed (`dedup`, `sort`) fails all the same —
/// because whether it fails depends on the key.
fn aes_gcm_decrypt(key: &Dynamic, nonce: &Dynamic, ciphertext: &Dynamic, aad: &[u8]) -> ScriptResult<Blob> {
    let nonce = binary_arg(nonce, "the nonce")?;
    if nonce.len() != 12 {
        return Err(format!("aes_gcm_decrypt: the nonce must be 12 bytes, not {}", nonce.len()).into());
    }
    let ciphertext = binary_arg(ciphertext, "the ciphertext")?;
    let sealed_key = key.is::<Sealed>();
    let key = bytes_of(key, "aes_gcm_decrypt: the key")?;
    let plain = aes_key(&key).and_then(|key| {
        let payload = Payload { msg: &ciphertext, aad };
        let nonce = Nonce::from_slice(&nonce);
        let plain = match key.len() {
            16 => Aes128Gcm::new_from_slice(&key).ok().and_then(|c| c.decrypt(nonce, payload).ok()),
            _ => Aes256Gcm::new_from_slice(&key).ok().and_then(|c| c.decrypt(nonce, payload).ok()),
        };
        plain.ok_or_else(|| {
            "aes_gcm_decrypt: the ciphertext does not decrypt with this key and nonce (wrong key, nonce or data, or the tag does not match)".into()
        })
    });
    match plain {
        Err(_) if sealed_key => {
            crate::script::fail_run(SEALED_KEY_FAILED);
            Err(Box::new(EvalAltResult::ErrorTerminated(
                format!("{UNCATCHABLE}{SEALED_KEY_FAILED}").into(),
                rhai::Position::NONE,
            )))
        }
        other => other,
    }
}

/// Registers the `Secret` type and every function scripts have for sealed values.
pub(crate) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Sealed>("Secret");
    engine.register_fn("to_string", |_: &mut Sealed| MASK.to_owned());
    engine.register_fn("to_debug", |_: &mut Sealed| MASK.to_owned());
    engine.register_fn("print", |_: &mut Sealed| MASK.to_owned());
    engine.register_fn("debug", |_: &mut Sealed| MASK.to_owned());

    // Combining: the result stays sealed.
    engine.register_fn("+", |a: ImmutableString, b: Sealed| -> ScriptResult<Sealed> {
        b.derive(None, a.len() + b.bound(), || concat(&[a.as_bytes(), b.expose()]))
    });
    engine.register_fn("+", |a: Sealed, b: ImmutableString| -> ScriptResult<Sealed> {
        a.derive(None, a.bound() + b.len(), || concat(&[a.expose(), b.as_bytes()]))
    });
    engine.register_fn("+", |a: Sealed, b: Sealed| -> ScriptResult<Sealed> {
        a.derive(Some(&b), a.bound() + b.bound(), || concat(&[a.expose(), b.expose()]))
    });
    // `text += secret` makes `text` a Secret (Rhai's own `+=` would append `***`).
    engine.register_raw_fn(
        "+=",
        [TypeId::of::<ImmutableString>(), TypeId::of::<Sealed>()],
        |_, args| -> ScriptResult<()> {
            let b = args[1].read_lock::<Sealed>().map(|s| s.clone()).expect("typed argument");
            let a = args[0].read_lock::<ImmutableString>().map(|s| s.clone()).expect("typed argument");
            let combined = b.derive(None, a.len() + b.bound(), || concat(&[a.as_bytes(), b.expose()]))?;
            *args[0] = Dynamic::from(combined);
            Ok(())
        },
    );
    engine.register_fn("append", |_: &mut ImmutableString, _: Sealed| -> ScriptResult<()> {
        refuse("append() with a Secret (use + to combine)")
    });
    for op in ["==", "!=", "<", "<=", ">", ">="] {
        engine.register_fn(op, move |_: Sealed, _: Dynamic| -> ScriptResult<bool> {
            refuse(&format!("comparing with {op}"))
        });
        engine.register_fn(op, move |_: Dynamic, _: Sealed| -> ScriptResult<bool> {
            refuse(&format!("comparing with {op}"))
        });
        engine.register_fn(op, move |_: Sealed, _: Sealed| -> ScriptResult<bool> {
            refuse(&format!("comparing with {op}"))
        });
    }

    engine.register_fn("base64_encode", |s: Sealed| -> ScriptResult<Sealed> {
        s.derive(None, base64_bound(s.bound()), || Zeroizing::new(STANDARD.encode(s.expose()).into_bytes()))
    });
    engine.register_fn("basic_auth", |user: Dynamic, pass: Dynamic| -> ScriptResult<Dynamic> {
        let bound_of = |v: &Dynamic| v.read_lock::<Sealed>().map(|s| s.bound());
        let sealed: Vec<Sealed> =
            [&user, &pass].iter().filter_map(|v| v.read_lock::<Sealed>().map(|s| s.clone())).collect();
        let (user_bound, pass_bound) = (bound_of(&user), bound_of(&pass));
        let (user, pass) =
            (bytes_of(&user, "basic_auth: the user")?, bytes_of(&pass, "basic_auth: the password")?);
        let value = || {
            let pair = concat(&[&user, b":", &pass]);
            // Built in one buffer of its final size: no unzeroized copy of the encoded pair.
            let mut out = Zeroizing::new(String::with_capacity("Basic ".len() + base64_bound(pair.len())));
            out.push_str("Basic ");
            STANDARD.encode_string(&*pair, &mut out);
            Zeroizing::new(std::mem::take(&mut *out).into_bytes())
        };
        let bound = "Basic ".len()
            + base64_bound(user_bound.unwrap_or(user.len()) + 1 + pass_bound.unwrap_or(pass.len()));
        Ok(match sealed.as_slice() {
            [] => Dynamic::from(String::from_utf8(value().to_vec()).unwrap_or_default()),
            [one] => Dynamic::from(one.derive(None, bound, value)?),
            [a, b, ..] => Dynamic::from(a.derive(Some(b), bound, value)?),
        })
    });

    // One-way values: public, unless a secret they come from is limited to some destinations.
    engine.register_fn("hmac_sha256", |key: Dynamic, data: Dynamic| -> ScriptResult<Dynamic> {
        let mac = hmac(&bytes_of(&key, "hmac_sha256: the key")?, &bytes_of(&data, "hmac_sha256: the data")?);
        one_way(&[&key, &data], mac, false)
    });
    engine.register_fn("hmac_sha256_hex", |key: Dynamic, data: Dynamic| -> ScriptResult<Dynamic> {
        let mac = hmac(
            &bytes_of(&key, "hmac_sha256_hex: the key")?,
            &bytes_of(&data, "hmac_sha256_hex: the data")?,
        );
        one_way(&[&key, &data], hex::encode(mac).into_bytes(), true)
    });
    engine.register_fn("hmac_sha256_base64", |key: Dynamic, data: Dynamic| -> ScriptResult<Dynamic> {
        let mac = hmac(
            &bytes_of(&key, "hmac_sha256_base64: the key")?,
            &bytes_of(&data, "hmac_sha256_base64: the data")?,
        );
        one_way(&[&key, &data], STANDARD.encode(mac).into_bytes(), true)
    });
    engine.register_fn("sha256", |data: Dynamic| -> ScriptResult<Dynamic> {
        one_way(&[&data], Sha256::digest(bytes_of(&data, "sha256: the data")?).to_vec(), false)
    });
    engine.register_fn("sha256_hex", |data: Dynamic| -> ScriptResult<Dynamic> {
        let digest = Sha256::digest(bytes_of(&data, "sha256_hex: the data")?);
        one_way(&[&data], hex::encode(digest).into_bytes(), true)
    });
    engine.register_fn("sha256_base64", |data: Dynamic| -> ScriptResult<Dynamic> {
        let digest = Sha256::digest(bytes_of(&data, "sha256_base64: the data")?);
        one_way(&[&data], STANDARD.encode(digest).into_bytes(), true)
    });
    engine.register_fn("aes_gcm_decrypt", |key: Dynamic, nonce: Dynamic, ciphertext: Dynamic| {
        aes_gcm_decrypt(&key, &nonce, &ciphertext, &[])
    });
    engine.register_fn(
        "aes_gcm_decrypt",
        |key: Dynamic, nonce: Dynamic, ciphertext: Dynamic, aad: Dynamic| -> ScriptResult<Blob> {
            let aad = binary_arg(&aad, "the additional data")?;
            aes_gcm_decrypt(&key, &nonce, &ciphertext, &aad)
        },
    );

    // JSON text of a map with its sealed values as `***` (Rhai's own prints the Rust type).
    engine.register_fn("to_json", |map: &mut Map| shown(&Dynamic::from_map(map.clone())).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId(uuid::Uuid::new_v4())
    }

    #[test]
    fn a_marker_opens_for_its_tenant_only_and_not_when_changed() {
        let (a, b) = (tenant(), tenant());
        let chain = Some(uuid::Uuid::new_v4());
        let marker = Sealed::new(a, chain, "k", b"value-1", 64).marker();
        let (range, payload) = markers(&marker).next().unwrap();
        assert_eq!(range, 0..marker.len());
        let opened = Sealed::open_for(payload, a, chain).unwrap();
        assert_eq!((opened.expose(), opened.names()), (&b"value-1"[..], &["k".to_owned()][..]));
        assert!(Sealed::open_for(payload, b, chain).is_none(), "another tenant's");
        assert!(Sealed::open_for(payload, a, Some(uuid::Uuid::new_v4())).is_none(), "another chain's");
        assert!(Sealed::open_for(payload, a, None).is_none(), "not for a chain");
        let mut tampered = payload.to_owned().into_bytes();
        tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
        assert!(Sealed::open_for(std::str::from_utf8(&tampered).unwrap(), a, chain).is_none());
        assert!(!marker.contains("value-1"));
    }

    #[test]
    fn a_markers_length_tells_the_values_only_to_within_the_padding() {
        let t = tenant();
        let short = Sealed::new(t, None, "k", b"x", 64).marker();
        let longer = Sealed::new(t, None, "k", &[b'y'; 18], 64).marker();
        assert_eq!(short.len(), longer.len());
    }

    #[test]
    fn markers_show_as_masks_and_travel_through_value_masking() {
        let marker = Sealed::new(tenant(), None, "k", b"v", 64).marker();
        let text = format!("a {marker}b{marker}");
        assert_eq!(mask_sealed(&text), "a ***b***");
        // Masking values between markers leaves the markers whole.
        assert_eq!(outside_markers(&text, |t| t.replace('b', "*")), format!("a {marker}*{marker}"));
        assert_eq!(mask_sealed("{veil-sealed:abc"), "{veil-sealed:abc", "not a marker without its end");
    }
}
