//! Property tests of the redactor: whatever the value, and whatever text stands before and after
//! it, every form it takes on its way out is masked — base64 (standard and URL-safe, padded or
//! not), the percent-encodings of URL components, forms and client libraries (upper- and lowercase
//! hex), JSON escaped once or twice (also ASCII-only), Rust/Rhai debug escaping, lower- and
//! uppercase — and so is the part of a longer base64 text that encodes the value alone, at each of
//! the three alignments. Masking a JSON object keeps every entry.
//!
//! The encodings are written here from their specifications, not taken from the redactor's tables.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use serde_json::{Value, json};
use veil_core::Redactor;
use veil_store::TenantId;
use veil_tests::TempStore;

/// The `url` crate's sets (url 2.5, `parser.rs`): what reqwest sends for a value in a URL.
const FRAGMENT: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');
const PATH: &AsciiSet = &FRAGMENT.add(b'#').add(b'?').add(b'{').add(b'}');
const PATH_SEGMENT: &AsciiSet = &PATH.add(b'/').add(b'%');
const USERINFO: &AsciiSet = &PATH
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
const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>');
const SPECIAL_QUERY: &AsciiSet = &QUERY.add(b'\'');
/// RFC 3986: everything but the unreserved characters.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// JavaScript's `encodeURIComponent`.
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
/// WHATWG `application/x-www-form-urlencoded` (spaces become `+`).
const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'*').remove(b'-').remove(b'.').remove(b'_');

/// A store to hang redactors on (they learn no secret here: values come from `also_mask`).
fn with_redactor(test: impl Fn(&dyn Fn() -> Redactor)) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let temp = runtime.block_on(TempStore::new());
    let _guard = runtime.enter();
    test(&|| Redactor::new(temp.store.clone(), TenantId::new_random(), Vec::<String>::new()));
}

/// Values with the characters that get escaped somewhere: quotes, backslashes, controls, NUL,
/// zero-width and other non-ASCII characters, URL delimiters. No `*`, which is the mask itself.
fn value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[a-zA-Z0-9]{1,4}",
        1 => proptest::sample::select(vec![
            "\"", "\\", "\t", "\n", "\0", "\u{7f}", "\u{200b}", "\u{301}", "é", "🔑", " ", "%", "+", "&",
            "=", "?", "#", "/", ":", "@", "<", ">", "'", "`", "{", "}", "~", "-", ".", "_", "$", "!",
            "(", ")", ";", "[", "]", "^", "|", ",",
        ])
        .prop_map(str::to_owned),
        1 => any::<char>().prop_filter("not the mask", |c| *c != '*').prop_map(String::from),
    ];
    proptest::collection::vec(piece, 1..8).prop_map(|parts| parts.concat())
}

/// Text around a value: anything but the mask.
fn surrounding() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>().prop_filter("not the mask", |c| *c != '*'), 0..6)
        .prop_map(|chars| chars.into_iter().collect())
}

fn unquoted(quoted: &str) -> &str {
    &quoted[1..quoted.len() - 1]
}

/// `text` percent-encoded with `set`.
fn percent(text: &str, set: &'static AsciiSet) -> String {
    utf8_percent_encode(text, set).to_string()
}

/// `text` percent-encoded with `set`, the escapes' hex digits in lowercase.
fn percent_lower(text: &str, set: &'static AsciiSet) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for c in text.chars() {
        let mut buf = [0u8; 4];
        let c = &*c.encode_utf8(&mut buf);
        let encoded = percent(c, set);
        // A character is either kept or made entirely of escapes.
        out.push_str(&if encoded == c { encoded } else { encoded.to_ascii_lowercase() });
    }
    out
}

/// Python's `json.dumps` (`ensure_ascii`): the short escapes, printable ASCII as is, every other
/// character as `\uXXXX` (lowercase hex, UTF-16 units).
fn json_ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 6);
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
                for unit in c.encode_utf16(&mut [0u16; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

fn json(text: &str) -> String {
    unquoted(&serde_json::to_string(text).unwrap()).to_owned()
}

/// Every form of `v` the redactor promises to mask, with its name.
fn forms(v: &str) -> Vec<(String, &'static str)> {
    let mut forms = vec![
        (v.to_owned(), "raw"),
        (STANDARD.encode(v), "base64"),
        (STANDARD_NO_PAD.encode(v), "base64 unpadded"),
        (URL_SAFE.encode(v), "URL-safe base64"),
        (URL_SAFE_NO_PAD.encode(v), "URL-safe base64 unpadded"),
        (json(v), "JSON"),
        (json(&json(v)), "JSON twice"),
        (json_ascii(v), "JSON, ASCII only"),
        (json(&json_ascii(v)), "JSON, ASCII only, twice"),
        (unquoted(&format!("{v:?}")).to_owned(), "Rust debug"),
        (json(unquoted(&format!("{v:?}"))), "Rust debug in JSON"),
    ];
    for (set, name) in [
        (FRAGMENT, "url fragment"),
        (PATH, "url path"),
        (PATH_SEGMENT, "url path segment"),
        (USERINFO, "url userinfo"),
        (QUERY, "url query"),
        (SPECIAL_QUERY, "url special query"),
        (RFC3986, "RFC 3986"),
        (URI_COMPONENT, "encodeURIComponent"),
        (NON_ALPHANUMERIC, "all but alphanumerics"),
    ] {
        forms.push((percent(v, set), name));
        forms.push((percent_lower(v, set), name));
    }
    forms.push((percent(v, FORM).replace("%20", "+"), "form"));
    forms.push((percent_lower(v, FORM).replace("%20", "+"), "form"));
    forms.push((percent(v, RFC3986).replace("%20", "+"), "RFC 3986, spaces as +"));
    // A URL parser lowercases a host; long values are also masked in either case.
    if (8..=253).contains(&v.chars().count()) {
        forms.push((v.to_lowercase(), "lowercase"));
        forms.push((v.to_uppercase(), "uppercase"));
    }
    forms
}

#[test]
fn every_form_of_a_value_is_masked_whatever_surrounds_it() {
    with_redactor(|redactor| {
        proptest!(ProptestConfig::with_cases(200), |(
            v in value(),
            before in surrounding(),
            after in surrounding(),
        )| {
            let redactor = redactor();
            redactor.also_mask(v.as_bytes());
            for (form, what) in forms(&v) {
                let text = format!("{before}{form}{after}");
                let masked = redactor.mask(&text);
                prop_assert!(!masked.contains(&form), "{}: {:?} survives in {:?}", what, form, masked);
                prop_assert!(masked.contains("***"), "{}: {:?}", what, masked);
            }
        });
    });
}

/// The characters of `encoded` (the base64 of `prefix + value + suffix`) whose six bits all come
/// from the value: character i stands for bits [6i, 6i + 6) of the input.
fn value_only(encoded: &str, prefix: usize, value: usize) -> &str {
    let (first_bit, end_bit) = (8 * prefix, 8 * (prefix + value));
    let start = (0..encoded.len()).find(|i| 6 * i >= first_bit).unwrap_or(encoded.len());
    let end = (start..encoded.len()).take_while(|i| 6 * i + 6 <= end_bit).last().map_or(start, |i| i + 1);
    &encoded[start..end]
}

#[test]
fn a_value_inside_a_longer_base64_text_is_masked_at_every_alignment() {
    with_redactor(|redactor| {
        proptest!(ProptestConfig::with_cases(200), |(
            v in value().prop_filter("7 bytes or more: 8 characters of its own", |v| v.len() >= 7),
            prefix in proptest::collection::vec(any::<u8>(), 0..10),
            suffix in proptest::collection::vec(any::<u8>(), 0..10),
        )| {
            let redactor = redactor();
            redactor.also_mask(v.as_bytes());
            let composite = [prefix.as_slice(), v.as_bytes(), suffix.as_slice()].concat();
            for (engine, what) in [
                (&STANDARD, "base64"),
                (&STANDARD_NO_PAD, "base64 unpadded"),
                (&URL_SAFE, "URL-safe base64"),
                (&URL_SAFE_NO_PAD, "URL-safe base64 unpadded"),
            ] {
                let encoded = engine.encode(&composite);
                let own = value_only(&encoded, prefix.len(), v.len());
                prop_assert!(own.len() >= 8, "{}", own);
                let text = format!("Basic {encoded}");
                let masked = redactor.mask(&text);
                prop_assert!(
                    !masked.contains(own),
                    "{} at alignment {}: {:?} survives in {:?}", what, prefix.len() % 3, own, masked
                );
            }
        });
    });
}

#[test]
fn basic_credentials_are_masked_whatever_the_lengths() {
    with_redactor(|redactor| {
        proptest!(ProptestConfig::with_cases(100), |(user in "[a-z]{0,6}", pass in value())| {
            let redactor = redactor();
            let composite = format!("{user}:{pass}");
            redactor.also_mask(composite.as_bytes());
            let header = format!("Basic {}", STANDARD.encode(&composite));
            let masked = redactor.mask(&header);
            prop_assert_eq!(masked, "Basic ***");
        });
    });
}

#[test]
fn masking_an_object_keeps_every_entry() {
    with_redactor(|redactor| {
        proptest!(ProptestConfig::with_cases(100), |(
            secret in "[a-z]{1,3}",
            keys in proptest::collection::btree_set("[a-z*]{0,5}", 0..12),
        )| {
            let redactor = redactor();
            redactor.also_mask(secret.as_bytes());
            let mut object: serde_json::Map<String, Value> = keys.iter().map(|k| (k.clone(), json!(k))).collect();
            let before = object.len();
            let mut value = Value::Object(std::mem::take(&mut object));
            redactor.mask_json(&mut value);
            prop_assert_eq!(value.as_object().unwrap().len(), before, "{}", value);
        });
    });
}
