//! Fuzzes rule chain documents: arbitrary bytes that are JSON go through `parse_chain`, and each
//! node's configuration of a chain that parses goes through `compile`, both with no declared
//! fields (every placeholder is a problem) and with every field declared secret-capable and a
//! message template (placeholders and handlebars are compiled). Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use veil_core::{FieldSpec, compile, mentions_placeholder, parse_chain};

/// Declares every field up to three levels deep; the deepest JSON-escaped.
const EVERY_FIELD: &[FieldSpec] = &[
    FieldSpec::secret_template("/*"),
    FieldSpec::secret_template("/*/*"),
    FieldSpec::secret_template("/*/*/*").json_escaped(),
];

fn any_string_mentions_placeholder(value: &Value) -> bool {
    match value {
        Value::String(s) => mentions_placeholder(s),
        Value::Array(items) => items.iter().any(any_string_mentions_placeholder),
        Value::Object(map) => map.values().any(any_string_mentions_placeholder),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(chain) = parse_chain(&doc) else {
        return;
    };
    for (i, node) in chain.nodes.iter().enumerate() {
        let base = format!("/nodes/{i}/configuration");

        let mut problems = Vec::new();
        let compiled = compile(&node.configuration, &[], &base, &mut problems);
        assert!(compiled.secret_uses().is_empty(), "no field is secret-capable");
        assert_eq!(
            problems.is_empty(),
            !any_string_mentions_placeholder(&node.configuration),
            "a placeholder outside a declared field must be a problem: {problems:?}"
        );
        assert!(problems.iter().all(|p| p.path.starts_with(&base)), "{problems:?}");

        let mut problems = Vec::new();
        let compiled = compile(&node.configuration, EVERY_FIELD, &base, &mut problems);
        assert!(problems.iter().all(|p| p.path.starts_with(&base)), "{problems:?}");
        for u in compiled.secret_uses() {
            assert!(compiled.template(&u.pointer).is_some(), "use at {} has no template", u.pointer);
        }
    }
});
