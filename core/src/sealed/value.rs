//! A sealed value and its marker: the value (or a value combined from secrets) with the names
//! it comes from, and its encryption into a `{veil-sealed:…}` marker under this process's key.

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use super::markers::{ANY_SEALED, MARKER_END, MARKER_START};
use super::rhai::ScriptResult;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use veil_store::TenantId;
use zeroize::Zeroizing;

const AAD: &[u8] = b"veil sealed value v1";

/// A marker's plaintext is padded to a multiple of this many bytes.
const PADDING: usize = 64;

/// The longest a Secret built in a script may be (by its bound).
pub const MAX_SEALED_VALUE: usize = 4 * 1024 * 1024;

/// The key markers are encrypted with: random, made once per process, never written anywhere.
static KEY: LazyLock<Aes256Gcm> = LazyLock::new(|| Aes256Gcm::new(&Aes256Gcm::generate_key(&mut OsRng)));

/// A secret's value, or a value combined from secrets, sealed: scripts see `***`.
#[derive(Clone)]
pub struct Sealed(pub(super) Arc<Inner>);

pub(super) struct Inner {
    pub(super) tenant: TenantId,
    /// The rule chain the value was sealed for (see [`crate::Secrets::set_scope`]).
    pub(super) scope: Option<uuid::Uuid>,
    /// An upper bound of the value's length computed from what the script knows (the lengths of
    /// the plain text in it, and per secret the largest value of its kind): size checks use it,
    /// so they never tell a script anything about a secret's length.
    pub(super) bound: usize,
    /// The secrets the value comes from, sorted.
    pub(super) names: Vec<String>,
    pub(super) value: Zeroizing<Vec<u8>>,
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
    pub(super) fn derive(
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
        crate::run::charge_sealed(bound)?;
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
        let plain = self.plaintext();
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed =
            KEY.encrypt(&nonce, Payload { msg: &plain, aad: AAD }).expect("AES-GCM seals any length");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        ANY_SEALED.store(true, Ordering::Relaxed);
        format!("{MARKER_START}{}{MARKER_END}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// What a marker encrypts: tenant, scope, names, bound and value, padded so that its length
    /// tells the value's only to within [`PADDING`] bytes.
    pub(super) fn plaintext(&self) -> Zeroizing<Vec<u8>> {
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
        let padded = plain.len().next_multiple_of(PADDING);
        plain.resize(padded, 0);
        plain
    }

    /// The value a marker's payload stands for, if this process made it.
    pub(super) fn open(payload: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain =
            Zeroizing::new(KEY.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: AAD }).ok()?);
        Self::from_plaintext(&plain)
    }

    /// The value [`Sealed::plaintext`] made `plain` of.
    pub(super) fn from_plaintext(plain: &[u8]) -> Option<Self> {
        let mut rest: &[u8] = plain;
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
    pub(super) fn open_for(payload: &str, tenant: TenantId, scope: Option<uuid::Uuid>) -> Option<Self> {
        Self::open(payload).filter(|s| s.0.tenant == tenant && s.0.scope == scope)
    }
}
