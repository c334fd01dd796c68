//! Sealed values on their way between processes: a marker is encrypted under a key made at
//! process start, so no other process can open it. Before a message leaves the process (for a
//! queue that another instance may consume), each of its markers is sealed again under a
//! [`PortableKey`] that every instance of a cluster shares (a system secret of the store),
//! bound to the message; the consuming process opens those and seals them again under its own
//! key. Nothing without the cluster's key (the queue's server, a reader of its files) can read or
//! forge one, and one cannot be moved into another message.

use std::borrow::Cow;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use super::markers::{MARKER_END, MARKER_START, any_sealed, each_marker_starting};
use super::value::Sealed;

/// How a queued marker starts; the payload (base64url) runs to `}`.
pub const QUEUED_START: &str = "{veil-queued:";

const AAD: &[u8] = b"veil queued value v1";

/// The key queued markers are sealed under: the same in every instance of a cluster.
pub struct PortableKey(Aes256Gcm);

impl std::fmt::Debug for PortableKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortableKey(..)")
    }
}

impl PortableKey {
    /// The key made of 32 bytes; `None` for any other length.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        Aes256Gcm::new_from_slice(bytes).ok().map(Self)
    }

    fn aad(context: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut aad = Zeroizing::new(Vec::with_capacity(AAD.len() + context.len()));
        aad.extend_from_slice(AAD);
        aad.extend_from_slice(context);
        aad
    }

    /// `text` (a message as JSON) with each marker this process made sealed again under this
    /// key, bound to `context` (the message's id); markers this process cannot open stay as
    /// they are (text shaped like a marker opens nowhere).
    pub fn export<'t>(&self, text: &'t str, context: &[u8]) -> Cow<'t, str> {
        if !any_sealed() || !text.contains(MARKER_START) {
            return Cow::Borrowed(text);
        }
        let aad = Self::aad(context);
        let mut out = String::with_capacity(text.len());
        let _ = each_marker_starting(text, MARKER_START, &mut out, |out, marker, payload| {
            match Sealed::open(payload) {
                Some(sealed) => {
                    let plain = sealed.plaintext();
                    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
                    let ciphertext = self
                        .0
                        .encrypt(&nonce, Payload { msg: &plain, aad: &aad })
                        .expect("AES-GCM seals any length");
                    let mut bytes = nonce.to_vec();
                    bytes.extend_from_slice(&ciphertext);
                    out.push_str(QUEUED_START);
                    out.push_str(&URL_SAFE_NO_PAD.encode(bytes));
                    out.push(MARKER_END);
                }
                None => out.push_str(marker),
            }
            Ok::<(), std::convert::Infallible>(())
        });
        Cow::Owned(out)
    }

    /// `text` with each queued marker made under this key for `context` sealed again as a
    /// marker of this process; one that does not open (another key, another message, altered)
    /// stays as it is: text.
    pub fn import<'t>(&self, text: &'t str, context: &[u8]) -> Cow<'t, str> {
        if !text.contains(QUEUED_START) {
            return Cow::Borrowed(text);
        }
        let aad = Self::aad(context);
        let mut out = String::with_capacity(text.len());
        let _ = each_marker_starting(text, QUEUED_START, &mut out, |out, marker, payload| {
            match self.open(payload, &aad) {
                Some(sealed) => out.push_str(&sealed.marker()),
                None => out.push_str(marker),
            }
            Ok::<(), std::convert::Infallible>(())
        });
        Cow::Owned(out)
    }

    fn open(&self, payload: &str, aad: &[u8]) -> Option<Sealed> {
        let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let (nonce, sealed) = bytes.split_at_checked(12)?;
        let plain =
            Zeroizing::new(self.0.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad }).ok()?);
        Sealed::from_plaintext(&plain)
    }
}

#[cfg(test)]
mod tests {
    use veil_store::TenantId;

    use super::*;
    use crate::sealed::mask_sealed;

    fn key(byte: u8) -> PortableKey {
        PortableKey::new(&[byte; 32]).unwrap()
    }

    #[test]
    fn a_marker_crosses_as_a_queued_marker_and_opens_only_with_the_key_and_message() {
        let tenant = TenantId(uuid::Uuid::new_v4());
        let chain = Some(uuid::Uuid::new_v4());
        let marker = Sealed::new(tenant, chain, "token", b"s3cret-value", 64).marker();
        let text = format!(r#"{{"data":{{"auth":"Bearer {marker}","plain":"{{veil-sealed:nope}}"}}}}"#);
        let exported = key(1).export(&text, b"msg-1");
        assert!(!exported.contains(&marker));
        assert!(exported.contains(QUEUED_START));
        assert!(exported.contains("{veil-sealed:nope}"), "text shaped like a marker stays text: {exported}");
        assert!(!exported.contains("s3cret-value"));

        // Another key, or the same queued marker in another message, opens nothing.
        assert_eq!(key(2).import(&exported, b"msg-1"), exported);
        assert_eq!(key(1).import(&exported, b"msg-2"), exported);

        let imported = key(1).import(&exported, b"msg-1");
        assert!(!imported.contains(QUEUED_START));
        assert!(imported.contains("{veil-sealed:nope}"));
        assert_eq!(mask_sealed(&imported), r#"{"data":{"auth":"Bearer ***","plain":"***"}}"#);
        let (_, payload) = super::super::markers::markers(&imported).next().unwrap();
        let opened = Sealed::open_for(payload, tenant, chain).expect("a marker of this process again");
        assert_eq!((opened.expose(), opened.names()), (&b"s3cret-value"[..], &["token".to_owned()][..]));
    }

    #[test]
    fn text_without_markers_is_not_copied() {
        assert!(matches!(key(1).export("{\"a\":1}", b"m"), Cow::Borrowed(_)));
        assert!(matches!(key(1).import("{\"a\":1}", b"m"), Cow::Borrowed(_)));
    }
}
