//! The placeholder grammar: `$<secret:NAME>` is a placeholder, `$$<secret:` renders as the literal
//! text `$<secret:`, and anything else starting with `$<secret:` is an error, never literal text.

use std::borrow::Cow;

use veil_store::validate_name;

use crate::error::PlaceholderError;

const OPEN: &str = "$<secret:";
const ESCAPED_OPEN: &str = "$$<secret:";

/// A piece of a string value: literal text or a placeholder's secret name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Literal text, with escapes already turned into `$<secret:`.
    Literal(Cow<'a, str>),
    /// `$<secret:NAME>`: the name.
    Secret(&'a str),
}

/// Splits a string into literal text and placeholders. Adjacent literal text is merged.
pub fn parse(s: &str) -> Result<Vec<Piece<'_>>, PlaceholderError> {
    let mut pieces: Vec<Piece<'_>> = Vec::new();
    let mut literal_start = 0;
    let mut pending: Option<String> = None; // literal text that needed unescaping
    let mut i = 0;
    while let Some(offset) = s[i..].find('$') {
        let at = i + offset;
        let rest = &s[at..];
        if rest.starts_with(ESCAPED_OPEN) {
            let owned = pending.get_or_insert_with(String::new);
            owned.push_str(&s[literal_start..at]);
            owned.push_str(OPEN);
            i = at + ESCAPED_OPEN.len();
            literal_start = i;
        } else if let Some(body) = rest.strip_prefix(OPEN) {
            let position = s[..at].chars().count();
            let Some(end) = body.find('>') else {
                return Err(PlaceholderError {
                    position,
                    problem: "unterminated placeholder (missing '>')".into(),
                });
            };
            let name = &body[..end];
            let valid = validate_name(name)
                .map_err(|p| PlaceholderError { position, problem: format!("secret {p}") })?;
            if valid != name {
                return Err(PlaceholderError {
                    position,
                    problem: "secret name must not start or end with spaces".into(),
                });
            }
            flush(&mut pieces, &mut pending, &s[literal_start..at]);
            pieces.push(Piece::Secret(name));
            i = at + OPEN.len() + end + 1;
            literal_start = i;
        } else {
            i = at + 1;
        }
    }
    flush(&mut pieces, &mut pending, &s[literal_start..]);
    Ok(pieces)
}

/// Ends a run of literal text; it borrows from the input unless an escape had to be rewritten.
fn flush<'a>(pieces: &mut Vec<Piece<'a>>, pending: &mut Option<String>, text: &'a str) {
    match pending.take() {
        Some(mut owned) => {
            owned.push_str(text);
            pieces.push(Piece::Literal(Cow::Owned(owned)));
        }
        None if !text.is_empty() => pieces.push(Piece::Literal(Cow::Borrowed(text))),
        None => {}
    }
}

/// Whether a string contains a placeholder (well-formed or not); escapes don't count.
pub fn mentions_placeholder(s: &str) -> bool {
    let mut i = 0;
    while let Some(offset) = s[i..].find('$') {
        let rest = &s[i + offset..];
        if rest.starts_with(ESCAPED_OPEN) {
            i += offset + ESCAPED_OPEN.len();
        } else if rest.starts_with(OPEN) {
            return true;
        } else {
            i += offset + 1;
        }
    }
    false
}

/// Escapes literal text so that [`parse`] gives it back unchanged: every `$<secret:` becomes
/// `$$<secret:`.
pub fn escape(text: &str) -> String {
    text.replace(OPEN, ESCAPED_OPEN)
}

/// The text a placeholder for `name` is written as.
pub fn placeholder(name: &str) -> String {
    format!("{OPEN}{name}>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Piece<'_> {
        Piece::Literal(Cow::Borrowed(s))
    }

    #[test]
    fn grammar() {
        assert_eq!(parse("plain").unwrap(), vec![lit("plain")]);
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("$<secret:api-token>").unwrap(), vec![Piece::Secret("api-token")]);
        assert_eq!(
            parse("Bearer $<secret:api token>!").unwrap(),
            vec![lit("Bearer "), Piece::Secret("api token"), lit("!")]
        );
        assert_eq!(parse("$<secret:a>$<secret:b>").unwrap(), vec![Piece::Secret("a"), Piece::Secret("b")]);
        assert_eq!(parse("cost: $5 <secret:x>").unwrap(), vec![lit("cost: $5 <secret:x>")]);
        assert_eq!(parse("$$<secret:x>").unwrap(), vec![lit("$<secret:x>")]);
        assert_eq!(
            parse("a $$<secret:x> $<secret:y>").unwrap(),
            vec![lit("a $<secret:x> "), Piece::Secret("y")]
        );
        assert_eq!(parse("$$$<secret:x>").unwrap(), vec![lit("$$<secret:x>")]);
        assert_eq!(parse("ключ $<secret:пароль>").unwrap(), vec![lit("ключ "), Piece::Secret("пароль")]);
    }

    #[test]
    fn malformed_placeholders_are_errors() {
        for (input, problem) in [
            ("$<secret:>", "secret name: must not be empty"),
            ("x $<secret:abc", "unterminated placeholder (missing '>')"),
            ("$<secret:a;b>", "secret name: must not contain ';'"),
            ("$<secret: a>", "must not start or end with spaces"),
            ("$<secret:a\nb>", "control characters"),
            ("$<secret:a<b>", "must not contain '<'"),
        ] {
            let e = parse(input).unwrap_err();
            assert!(e.problem.contains(problem), "{input:?}: {e}");
        }
        assert_eq!(parse("ab $<secret:").unwrap_err().position, 3);
    }
}
