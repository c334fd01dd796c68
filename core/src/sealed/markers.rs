//! Markers in text: finding them, masking them, standing in for them with per-render handles
//! while a template renders, and opening them for a send.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use veil_store::TenantId;
use zeroize::Zeroizing;

use super::value::Sealed;
use crate::forms::MASK;

/// How a marker starts; the payload (base64url) runs to `MARKER_END`.
pub const MARKER_START: &str = "{veil-sealed:";

pub(super) const MARKER_END: char = '}';

/// Whether this process ever made a marker: until then no text can hold a valid one, and the
/// message path skips looking for them.
pub(super) static ANY_SEALED: AtomicBool = AtomicBool::new(false);

/// The markers in `text`: (byte range, payload).
pub(super) fn markers(text: &str) -> impl Iterator<Item = (std::ops::Range<usize>, &str)> {
    markers_starting(text, MARKER_START)
}

/// The markers in `text` that begin with `begin` (a marker or a queued marker): (byte range,
/// payload).
pub(super) fn markers_starting<'t>(
    text: &'t str,
    begin: &'static str,
) -> impl Iterator<Item = (std::ops::Range<usize>, &'t str)> {
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(offset) = text[from..].find(begin) {
            let start = from + offset;
            let body = start + begin.len();
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

/// The byte ranges of the markers of `text` (for the fuzz targets).
#[cfg(fuzzing)]
pub(crate) fn marker_ranges(text: &str) -> Vec<std::ops::Range<usize>> {
    markers(text).map(|(range, _)| range).collect()
}

/// Writes `text` into `out` with each marker replaced by what `each` writes for it (given the
/// marker and its payload); stops at `each`'s first error.
pub(super) fn each_marker<E>(
    text: &str,
    out: &mut String,
    each: impl FnMut(&mut String, &str, &str) -> Result<(), E>,
) -> Result<(), E> {
    each_marker_starting(text, MARKER_START, out, each)
}

/// [`each_marker`] for the markers that begin with `begin`.
pub(super) fn each_marker_starting<E>(
    text: &str,
    begin: &'static str,
    out: &mut String,
    mut each: impl FnMut(&mut String, &str, &str) -> Result<(), E>,
) -> Result<(), E> {
    let mut last = 0;
    for (range, payload) in markers_starting(text, begin) {
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
pub(super) const HANDLE_START: &str = "{veil-sealed:#";

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
            .ok_or(crate::error::RenderError::ForeignMarker(crate::error::ForeignMarker))?;
        let value = std::str::from_utf8(sealed.expose())
            .map_err(|_| crate::error::RenderError::NotText(sealed.names().join(", ")))?;
        match escape {
            crate::template::Escape::None => out.push_str(value),
            crate::template::Escape::JsonString => crate::forms::json_escape_into(out, value),
        }
        names.extend(sealed.names().iter().cloned());
        Ok(())
    })
}
