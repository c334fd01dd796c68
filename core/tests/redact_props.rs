//! Property tests of the redactor: whatever the value, the forms it takes on its way out (URL
//! components as the `url` crate writes them, JSON escaped once or twice, Rust/Rhai debug
//! escaping, base64 inside `Basic` credentials) are masked, and masking a JSON object keeps
//! every entry.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use proptest::prelude::*;
use serde_json::{Value, json};
use veil_core::Redactor;
use veil_store::{Database, Limits, MasterKeySource, Store, StoreConfig, TenantId};

/// The `url` crate's query and path sets (url 2.5, `parser.rs`), restated here so the test does not
/// share the redactor's own tables.
const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>').add(b'\'');
const PATH: &AsciiSet =
    &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`').add(b'#').add(b'?').add(b'{').add(b'}');

/// A store to hang redactors on (they learn no secret here: values come from `also_mask`).
fn with_redactor(test: impl Fn(&dyn Fn() -> Redactor)) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = runtime.block_on(async {
        Store::open(StoreConfig {
            database: Database::Sqlite(dir.path().join("veil.db")),
            master_key: MasterKeySource::Generated(dir.path().join("master.key")),
            limits: Limits::default(),
        })
        .await
        .unwrap()
    });
    let _guard = runtime.enter();
    test(&|| Redactor::new(store.clone(), TenantId::new_random(), Vec::<String>::new()));
}

/// Values with the characters that get escaped somewhere: quotes, backslashes, controls, NUL,
/// zero-width and other non-ASCII characters, URL delimiters. No `*`, which is the mask itself.
fn value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[a-zA-Z0-9]{1,4}",
        1 => proptest::sample::select(vec![
            "\"", "\\", "\t", "\n", "\0", "\u{7f}", "\u{200b}", "\u{301}", "é", "🔑", " ", "%", "+", "&",
            "=", "?", "#", "/", ":", "@", "<", ">", "'", "`", "{", "}", "~", "-", ".", "_", "$",
        ])
        .prop_map(str::to_owned),
        1 => any::<char>().prop_filter("not the mask", |c| *c != '*').prop_map(String::from),
    ];
    proptest::collection::vec(piece, 1..6).prop_map(|parts| parts.concat())
}

fn unquoted(quoted: &str) -> &str {
    &quoted[1..quoted.len() - 1]
}

fn assert_masked(redactor: &Redactor, form: &str, what: &str) -> Result<(), TestCaseError> {
    let text = format!("<<{form}>>");
    let masked = redactor.mask(&text);
    prop_assert!(!masked.contains(form), "{what}: {form:?} survives in {masked:?}");
    prop_assert!(masked.contains("***"), "{what}: {masked:?}");
    Ok(())
}

#[test]
fn every_form_of_a_value_is_masked() {
    with_redactor(|redactor| {
        proptest!(ProptestConfig::with_cases(200), |(v in value())| {
            let redactor = redactor();
            redactor.also_mask(v.as_bytes());
            let json = serde_json::to_string(&v).unwrap();
            let forms = [
                (v.clone(), "raw"),
                (utf8_percent_encode(&v, QUERY).to_string(), "url query"),
                (utf8_percent_encode(&v, PATH).to_string(), "url path"),
                (utf8_percent_encode(&v, QUERY).to_string().to_lowercase(), "lowercase"),
                (unquoted(&json).to_owned(), "JSON"),
                (unquoted(&serde_json::to_string(unquoted(&json)).unwrap()).to_owned(), "JSON twice"),
                (unquoted(&format!("{v:?}")).to_owned(), "Rust debug"),
                (STANDARD.encode(&v), "base64"),
            ];
            for (form, what) in &forms {
                // Lowercasing the whole query form is only a form for values without letters of
                // their own to change (the redactor lowercases hex digits, not the value).
                if *what == "lowercase" && v.chars().any(char::is_alphabetic) {
                    continue;
                }
                assert_masked(&redactor, form, what)?;
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
