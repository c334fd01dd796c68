//! Printing answers: human-readable tables by default, the API's JSON with `--output json`.

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, Table};
use serde_json::Value;

/// Prints a line on stdout; a closed pipe (`veil ... | head`) is not an error.
fn say(line: &str) {
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
                t.add_row(columns.iter().map(|c| Cell::new((c.read)(item))));
            }
            say(t.to_string().trim_end());
            if let Some(total) = answer["totalElements"].as_u64() {
                if answer["hasNext"].as_bool() == Some(true) {
                    say(&format!("({} of {total}; use --page to see more)", items.len()));
                }
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
                t.add_row([Cell::new(*name), Cell::new(read(answer))]);
            }
            say(t.to_string().trim_end());
        }
    }
}

/// Pretty JSON.
pub(crate) fn json(answer: &Value) {
    say(&serde_json::to_string_pretty(answer).unwrap_or_default());
}

/// A one-line confirmation, or the answer as JSON.
pub(crate) fn done(format: Format, answer: &Value, line: &str) {
    match format {
        Format::Json if answer.is_null() => json(&Value::Object(Default::default())),
        Format::Json => json(answer),
        Format::Table => say(line),
    }
}
