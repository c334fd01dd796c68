//! Fuzzes the placeholder parser on arbitrary UTF-8. What it accepts must survive a round trip
//! (literals re-escaped, placeholders re-inserted), what it refuses must be refused at a
//! `$<secret:`, and `mentions_placeholder` must agree with it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veil_core::{Piece, escape, mentions_placeholder, parse, placeholder};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let mentions = mentions_placeholder(s);
    match parse(s) {
        Ok(pieces) => {
            let rebuilt: String = pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Literal(text) => escape(text),
                    Piece::Secret(name) => placeholder(name),
                })
                .collect();
            let reparsed = parse(&rebuilt)
                .unwrap_or_else(|e| panic!("{s:?} rebuilt as {rebuilt:?} no longer parses: {e}"));
            assert_eq!(reparsed, pieces, "{s:?} rebuilt as {rebuilt:?}");
            assert_eq!(rebuilt, s, "parsing lost information");
            assert_eq!(mentions, pieces.iter().any(|p| matches!(p, Piece::Secret(_))), "{s:?}");
        }
        Err(e) => {
            assert!(mentions, "{s:?} fails to parse ({e}) but mentions no placeholder");
            let at: String = s.chars().skip(e.position).take(9).collect();
            assert_eq!(at, "$<secret:", "{s:?}: error position {} is not at a placeholder", e.position);
        }
    }
});
