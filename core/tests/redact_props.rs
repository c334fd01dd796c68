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
use proptest::prelude::*;
use serde_json::{Value, json};
use veil_core::Redactor;
use veil_store::TenantId;
use veil_tests::TempStore;

/// Which bytes a percent-encoding writes as `%XX`.
#[derive(Clone, Copy)]
enum Encodes {
    /// Controls, non-ASCII bytes and these (the WHATWG URL standard's sets, which the `url` crate
    /// and so reqwest use).
    ControlsAnd(&'static str),
    /// Everything but ASCII letters, digits and these.
    AllBut(&'static str),
}

const FRAGMENT: &str = " \"<>`";
const PATH: &str = " \"<>`#?{}";
const PATH_SEGMENT: &str = " \"<>`#?{}/%";
const USERINFO: &str = " \"<>`#?{}/:;=@[\\]^|";
const QUERY: &str = " \"#<>";
const SPECIAL_QUERY: &str = " \"#<>'";
/// RFC 3986's unreserved characters.
const UNRESERVED: &str = "-._~";
/// What JavaScript's `encodeURIComponent` keeps.
const URI_COMPONENT: &str = "-_.!~*'()";
/// What `application/x-www-form-urlencoded` keeps (WHATWG; spaces become `+`).
const FORM: &str = "*-._";

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

/// `text` percent-encoded, the hex digits in upper- or lowercase.
fn percent(text: &str, encodes: Encodes, lower: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for &b in text.as_bytes() {
        let escaped = match encodes {
            Encodes::ControlsAnd(extra) => !(0x20..0x7f).contains(&b) || extra.as_bytes().contains(&b),
            Encodes::AllBut(kept) => !b.is_ascii_alphanumeric() && !kept.as_bytes().contains(&b),
        };
        match (escaped, lower) {
            (false, _) => out.push(char::from(b)),
            (true, false) => out.push_str(&format!("%{b:02X}")),
            (true, true) => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

/// Python's `json.dumps` (`ensure_ascii`): JSON as serde_json writes it (short escapes, other
/// controls as `\u00xx`), then DEL and every non-ASCII character as `\uXXXX` (lowercase hex,
/// UTF-16 units).
fn json_ascii(text: &str) -> String {
    json(text)
        .chars()
        .map(|c| match c {
            ' '..='~' | '\t' | '\n' | '\r' => c.to_string(),
            _ => c.encode_utf16(&mut [0u16; 2]).iter().map(|unit| format!("\\u{unit:04x}")).collect(),
        })
        .collect()
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
    for (encodes, name) in [
        (Encodes::ControlsAnd(FRAGMENT), "url fragment"),
        (Encodes::ControlsAnd(PATH), "url path"),
        (Encodes::ControlsAnd(PATH_SEGMENT), "url path segment"),
        (Encodes::ControlsAnd(USERINFO), "url userinfo"),
        (Encodes::ControlsAnd(QUERY), "url query"),
        (Encodes::ControlsAnd(SPECIAL_QUERY), "url special query"),
        (Encodes::AllBut(UNRESERVED), "RFC 3986"),
        (Encodes::AllBut(URI_COMPONENT), "encodeURIComponent"),
        (Encodes::AllBut(""), "all but alphanumerics"),
    ] {
        forms.push((percent(v, encodes, false), name));
        forms.push((percent(v, encodes, true), name));
    }
    for lower in [false, true] {
        forms.push((percent(v, Encodes::AllBut(FORM), lower).replace("%20", "+"), "form"));
        forms.push((
            percent(v, Encodes::AllBut(UNRESERVED), lower).replace("%20", "+"),
            "RFC 3986, spaces as +",
        ));
    }
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
