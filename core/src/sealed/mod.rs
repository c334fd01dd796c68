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

mod markers;
mod portable;
mod rhai;
mod value;

#[cfg(fuzzing)]
pub(crate) use self::markers::marker_ranges;
pub(crate) use self::markers::{Handles, any_sealed, may_hold_markers, outside_markers, unseal_into};
pub use self::markers::{MARKER_START, mask_sealed, mask_sealed_json};
pub use self::portable::{PortableKey, QUEUED_START};
pub(crate) use self::rhai::{error_text, markers_for_output, register, reseal_input};
pub use self::value::{MAX_SEALED_VALUE, Sealed};
pub use crate::run::MAX_SEALED_BYTES;

#[cfg(test)]
mod tests {
    use veil_store::TenantId;

    use super::markers::markers;
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
