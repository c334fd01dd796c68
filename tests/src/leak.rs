//! One definition of "a value leaked": a text shows a value when it holds any of the forms the
//! [`veil_core::Redactor`] masks for it ([`veil_core::masked_forms`]): the value itself; its base64
//! (standard and URL-safe, padded or not, and the runs of it inside a longer base64 text); its
//! percent-encodings with upper- and lowercase hex; JSON-escaped once or twice (also ASCII-only);
//! Rust/Rhai debug-escaped; and for values of 8 to 253 characters, lower- and uppercase. A test that
//! checks more than that (a fragment, a reversed form) says so next to this check.

use crate::contains;

/// Every form of every value in `values` that occurs in `haystack`, as `value ~ form` lines (empty
/// when nothing leaked): for a test that gathers mismatches before it asserts, or scans bytes.
pub fn leaks(haystack: &[u8], values: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for value in values {
        for form in veil_core::masked_forms(value.as_bytes()) {
            if contains(haystack, &form) {
                found.push(format!("{value:?} ~ {:?}", String::from_utf8_lossy(&form)));
            }
        }
    }
    found
}

/// Panics when `text` shows any of `values` in any form the redactor masks (see the module).
#[track_caller]
pub fn assert_no_leak(text: &str, values: &[&str]) {
    let found = leaks(text.as_bytes(), values);
    assert!(found.is_empty(), "a value leaked ({}) into:\n{text}", found.join("; "));
}
