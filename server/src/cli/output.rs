//! Printing answers: human-readable tables by default, the API's JSON with `--output json`.

use std::fmt::Write as _;

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, Table};
use serde_json::Value;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

/// Characters a terminal must never receive raw from stored text: control characters (escape
/// sequences, carriage returns, line breaks that would split a table row) and invisible format
/// characters (bidirectional overrides that reorder what is shown, zero-width characters).
fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c.general_category(),
            GeneralCategory::Format | GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
        )
}

/// Text as it may be shown in a terminal: every unprintable character escaped (`\n`, `\t`,
/// `\r`, else `\u{1b}`), everything else as it is.
pub(crate) fn escape(text: &str) -> String {
    if !text.chars().any(unprintable) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if unprintable(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// JSON text with every unprintable character outside ASCII's escapes written as `\uXXXX` (a
/// surrogate pair above the BMP): still the same JSON, but safe on a terminal. serde_json
/// escapes only U+0000..U+001F, not DEL, the C1 controls (U+009B starts an escape sequence on
/// some terminals) or bidirectional overrides.
fn escape_json(json: &str) -> String {
    if !json.chars().any(|c| unprintable(c) && !c.is_ascii_whitespace()) {
        return json.to_owned();
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        // Raw newlines and spaces in pretty JSON are layout, never inside a string.
        if unprintable(c) && !c.is_ascii_whitespace() {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Prints a line on stdout; a closed pipe (`veil ... | head`) is not an error.
pub(crate) fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns for people.
    Table,
    /// The API's JSON, for scripts.
    Json,
}

/// A column: its heading and how to read it from an item.
pub(crate) struct Column {
    pub(crate) heading: &'static str,
    pub(crate) read: fn(&Value) -> String,
}

/// Text of a JSON value for a table cell.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC).
pub(crate) fn time(v: &Value) -> String {
    let Some(ms) = v.as_i64() else { return String::new() };
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

fn table(headings: impl IntoIterator<Item = String>) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(headings.into_iter().map(Cell::new));
    t
}

/// A list: `items` as rows, or the whole answer as JSON.
pub(crate) fn list(format: Format, answer: &Value, items: &[Value], columns: &[Column]) {
    match format {
        Format::Json => json(answer),
        Format::Table => {
            let mut t = table(columns.iter().map(|c| c.heading.to_owned()));
            for item in items {
                t.add_row(columns.iter().map(|c| Cell::new(escape(&(c.read)(item)))));
            }
            say(t.to_string().trim_end());
            if let Some(total) = answer["totalElements"].as_u64()
                && answer["hasNext"].as_bool() == Some(true)
            {
                say(&format!("({} of {total}; use --page to see more)", items.len()));
            }
        }
    }
}

/// A field of an object view: its label and how to read it.
pub(crate) type Field = (&'static str, fn(&Value) -> String);

/// A page answer (`{data: [...], ...}`): its items as rows, or the whole answer as JSON.
pub(crate) fn page(format: Format, answer: &Value, columns: &[Column]) {
    let items = answer["data"].as_array().map(Vec::as_slice).unwrap_or_default();
    list(format, answer, items, columns);
}

/// One object as `field  value` lines, or JSON.
pub(crate) fn object(format: Format, answer: &Value, fields: &[Field]) {
    match format {
        Format::Json => json(answer),
        Format::Table => {
            let mut t = Table::new();
            t.load_preset(NOTHING);
            for (name, read) in fields {
                t.add_row([Cell::new(*name), Cell::new(escape(&read(answer)))]);
            }
            say(t.to_string().trim_end());
        }
    }
}

/// Pretty JSON.
pub(crate) fn json(answer: &Value) {
    say(&escape_json(&serde_json::to_string_pretty(answer).unwrap_or_default()));
}

/// A one-line confirmation, or the answer as JSON.
pub(crate) fn done(format: Format, answer: &Value, line: &str) {
    match format {
        Format::Json if answer.is_null() => json(&Value::Object(Default::default())),
        Format::Json => json(answer),
        Format::Table => say(&escape(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_cannot_reach_the_terminal_raw() {
        assert_eq!(escape("plain ünï 🔑 text"), "plain ünï 🔑 text");
        assert_eq!(escape("line1\nline2\u{1b}[31mRED\r\t"), "line1\\nline2\\u{1b}[31mRED\\r\\t");
        assert_eq!(escape("token\u{202e}gnp.exe \u{200b}\u{9b}"), "token\\u{202e}gnp.exe \\u{200b}\\u{9b}");
        let json =
            serde_json::to_string_pretty(&serde_json::json!({"d": "a\u{1b}[2J\u{9b}\u{202e}\u{e0001}"}))
                .unwrap();
        let safe = escape_json(&json);
        assert!(!safe.chars().any(|c| unprintable(c) && !c.is_ascii_whitespace()), "{safe}");
        let back: Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["d"], "a\u{1b}[2J\u{9b}\u{202e}\u{e0001}");
    }
}
