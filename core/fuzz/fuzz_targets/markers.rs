//! Fuzzes sealed-value markers in message text: scanning finds only well-formed ranges, text that
//! merely looks like a marker never opens (a marker is authenticated under this process's key),
//! a real marker placed in any text opens to its value there, and masking never lets the value
//! through.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veil_core::fuzzing::{marker_ranges, unseal};
use veil_core::{MARKER_START, Sealed, mask_sealed};
use veil_store::TenantId;

const CANARY: &str = "q7-sealed-canary-Z";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tenant = TenantId(uuid::Uuid::from_u128(7));
    let found = marker_ranges(text);
    for range in &found {
        assert!(text.is_char_boundary(range.start) && text.is_char_boundary(range.end), "{text:?}");
        assert!(text[range.clone()].starts_with(MARKER_START), "{text:?}: {range:?}");
    }
    // Nothing the input holds opens: it was not sealed here.
    match unseal(text, tenant) {
        Ok(out) => {
            assert!(found.is_empty(), "{text:?}: a forged marker opened");
            assert_eq!(out, text);
        }
        Err(_) => assert!(!found.is_empty(), "{text:?}: no marker, yet opening failed"),
    }
    // A real marker inside that text opens to its value, exactly where it was put.
    let marker = Sealed::new(tenant, None, "k", CANARY.as_bytes(), 64).marker();
    let mixed = format!("{text}{marker}{text}");
    match unseal(&mixed, tenant) {
        Ok(out) => assert_eq!(out, format!("{text}{CANARY}{text}")),
        Err(_) => assert!(!found.is_empty(), "{text:?}: a real marker did not open"),
    }
    assert!(unseal(&mixed, TenantId(uuid::Uuid::from_u128(8))).is_err(), "opened for another tenant");
    let masked = mask_sealed(&mixed);
    assert_eq!(masked.contains(CANARY), text.contains(CANARY), "{text:?}: masking let the value through");
});
