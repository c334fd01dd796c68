//! Property tests of the placeholder grammar: `parse`, `escape`, `placeholder` and
//! `mentions_placeholder` agree with each other on arbitrary text, including text built from the
//! grammar's own tokens, where the edge cases are.

use std::borrow::Cow;

use proptest::prelude::*;
use veil_core::{Piece, escape, mentions_placeholder, parse, placeholder};

/// The grammar's tokens and their near misses, plus some ordinary and multi-byte text.
const FRAGMENTS: &[&str] = &[
    "$",
    "$$",
    "$$$",
    "<secret:",
    "<secret",
    "secret:",
    ">",
    "<",
    "$<secret:",
    "$$<secret:",
    "$<secret:a>",
    "$<secret:>",
    "a",
    "token",
    " ",
    ";",
    "{",
    "ü",
    "🔑",
    "\n",
    "\u{0}",
];

/// Text made of grammar fragments, so that placeholders, escapes and malformed placeholders are
/// frequent rather than astronomically rare.
fn fragment_text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        4 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(fragment, 0..24).prop_map(|parts| parts.concat())
}

/// Fully arbitrary strings and fragment-built strings.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), fragment_text()]
}

/// A character a secret name may contain (anywhere): not a control character, none of `< > { } ; $`.
fn name_char() -> impl Strategy<Value = char> {
    let allowed = |c: &char| !c.is_control() && !"<>{};$".contains(*c);
    prop_oneof![
        3 => proptest::char::range(' ', '~'),
        1 => any::<char>(),
    ]
    .prop_filter("not allowed in a secret name", allowed)
}

/// A valid secret name: 1..40 allowed characters, no whitespace at either end, and whatever else
/// the store's name rules ask (NFC, no invisible formatting characters).
fn secret_name() -> impl Strategy<Value = String> {
    proptest::collection::vec(name_char(), 1..40)
        .prop_map(|chars| chars.into_iter().collect::<String>())
        .prop_filter("names are trimmed", |name| name.trim() == name && !name.is_empty())
        .prop_filter("a name the store accepts", |name| {
            veil_store::validate_name(name).as_deref() == Ok(name.as_str())
        })
}

/// Writes pieces back as source text: literals escaped, secrets as placeholders.
fn unparse(pieces: &[Piece<'_>]) -> String {
    pieces
        .iter()
        .map(|piece| match piece {
            Piece::Literal(text) => escape(text),
            Piece::Secret(name) => placeholder(name),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Escaped text parses back to exactly itself, as one literal.
    #[test]
    fn escaped_text_round_trips(s in text()) {
        let escaped = escape(&s);
        let pieces = parse(&escaped).map_err(|e| TestCaseError::fail(format!("{escaped:?}: {e}")))?;
        if s.is_empty() {
            prop_assert!(pieces.is_empty(), "{:?} gave {:?}", s, pieces);
        } else {
            prop_assert_eq!(pieces, vec![Piece::Literal(Cow::Borrowed(s.as_str()))]);
        }
    }

    /// `parse` never panics; what it accepts it accepts losslessly (literals merged and non-empty,
    /// the source text recoverable), and what it refuses it refuses at a `$<secret:`.
    #[test]
    fn parse_is_total_and_lossless(s in text()) {
        match parse(&s) {
            Ok(pieces) => {
                for pair in pieces.windows(2) {
                    let both_literal = matches!(pair, [Piece::Literal(_), Piece::Literal(_)]);
                    prop_assert!(!both_literal, "{:?}: adjacent literals in {:?}", s, pieces);
                }
                for piece in &pieces {
                    if let Piece::Literal(text) = piece {
                        prop_assert!(!text.is_empty(), "{:?}: empty literal in {:?}", s, pieces);
                    }
                }
                prop_assert_eq!(unparse(&pieces), s.as_str());
            }
            Err(e) => {
                let at: String = s.chars().skip(e.position).collect();
                prop_assert!(
                    at.starts_with("$<secret:"),
                    "{:?}: error at character {} does not point at a placeholder: {}", s, e.position, e
                );
            }
        }
    }

    /// A valid name in a placeholder between literal text parses to exactly that name.
    #[test]
    fn valid_names_parse_as_secrets(name in secret_name()) {
        let source = format!("x{}y", placeholder(&name));
        let pieces = parse(&source).map_err(|e| TestCaseError::fail(format!("{source:?}: {e}")))?;
        prop_assert_eq!(
            pieces,
            vec![
                Piece::Literal(Cow::Borrowed("x")),
                Piece::Secret(name.as_str()),
                Piece::Literal(Cow::Borrowed("y")),
            ]
        );
    }

    /// `mentions_placeholder` is the cheap pre-check of `parse`: true exactly when parsing finds a
    /// placeholder, well-formed or not.
    #[test]
    fn mentions_placeholder_agrees_with_parse(s in text()) {
        let parsed = parse(&s);
        let expected = match &parsed {
            Ok(pieces) => pieces.iter().any(|p| matches!(p, Piece::Secret(_))),
            Err(_) => true,
        };
        prop_assert_eq!(mentions_placeholder(&s), expected, "{:?} parses to {:?}", s, parsed);
    }
}
