//! The forms a value takes in text, and so the forms a redactor masks: the value itself, its
//! base64, percent-encodings, JSON, HTML and debug escapes, case forms, and the runs of its base64
//! inside a longer base64 text. A leaf: masking ([`crate::mask`], [`crate::redact`]) and sealed
//! values build on it.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, percent_encode};
use zeroize::Zeroizing;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Values of this many characters (a DNS name is at most 253) also get their lowercase and
/// uppercase forms: URL parsers lowercase a host, so a value used in one is sent (`Host` header)
/// and logged lowercased. Shorter values would mask too many ordinary words.
const CASE_FOLDED_CHARS: std::ops::RangeInclusive<usize> = 8..=253;

/// Values up to this size also get their percent-encoded forms. Longer ones do not fit in a URL
/// (servers refuse request lines over about 8 KiB), and each form of a large FILE value would cost
/// its size again in every redactor that knows it.
const MAX_URL_FORM_BYTES: usize = 8 * 1024;

pub(crate) type Pattern = Zeroizing<Vec<u8>>;

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

fn json_escape_char(c: char) -> Option<&'static str> {
    Some(match c {
        '"' => "\\\"",
        '\\' => "\\\\",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\u{8}' => "\\b",
        '\u{c}' => "\\f",
        _ => return None,
    })
}

pub(crate) fn json_escaped_len(s: &str) -> usize {
    s.chars()
        .map(|c| match json_escape_char(c) {
            Some(e) => e.len(),
            None if (c as u32) < 0x20 => 6,
            None => c.len_utf8(),
        })
        .sum()
}

/// Appends `s` escaped for the inside of a JSON string literal. Written here rather than taken
/// from serde_json so a secret is escaped straight into its zeroizing buffer, with no copy.
pub(crate) fn json_escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match json_escape_char(c) {
            Some(e) => out.push_str(e),
            None if (c as u32) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            None => out.push(c),
        }
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

    #[test]
    fn json_escaping_matches_serde_json() {
        for s in ["plain", "q\"b\\s", "ctl\u{1}\u{1f}\n\r\t\u{8}\u{c}", "ünï 🔑", "</script>"] {
            let mut out = String::new();
            json_escape_into(&mut out, s);
            let expected = serde_json::to_string(s).unwrap();
            assert_eq!(format!("\"{out}\""), expected);
            assert_eq!(json_escaped_len(s), out.len());
        }
    }
}
