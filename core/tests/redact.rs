//! The redactor over a real store: what a viewer of events, errors and logs sees.

use serde_json::json;
use veil_core::Redactor;
use veil_store::{SecretId, SecretUpdate, SecretValue};
use veil_tests::TempStore;

/// The kit's store, with what these tests add: set a value by id, a redactor for some names.
struct Env(TempStore);

impl std::ops::Deref for Env {
    type Target = TempStore;

    fn deref(&self) -> &TempStore {
        &self.0
    }
}

impl Env {
    async fn new() -> Self {
        Self(TempStore::new().await)
    }

    /// A new `Store` on the same files, as after a restart.
    async fn restart(self) -> Self {
        Self(self.0.reopen().await)
    }

    async fn secret(&self, name: &str, value: &str) -> SecretId {
        self.text(name, value).await.id
    }

    async fn set(&self, id: SecretId, value: &str) {
        let req = SecretUpdate { value: Some(SecretValue::from(value)), ..SecretUpdate::default() };
        self.store.update(&self.admin, id, req).await.unwrap();
    }

    fn redactor(&self, names: &[&str]) -> Redactor {
        Redactor::new(self.store.clone(), self.admin.tenant_id, names.iter().map(|n| n.to_string()))
    }
}

#[tokio::test]
async fn a_rotated_out_value_stays_masked_after_a_restart_and_for_later_configurations() {
    use base64::Engine as _;
    let env = Env::new().await;
    let id = env.secret("mq", "MqPass-GOLF-42").await;
    env.set(id, "MqPass-GOLF-43-rot").await;
    let text = r#"{"old":"MqPass-GOLF-42","new":"MqPass-GOLF-43-rot"}"#;
    // A configuration created after the rotation.
    assert_eq!(env.redactor(&["mq"]).mask(text), r#"{"old":"***","new":"***"}"#);

    let env = env.restart().await;
    let redactor = env.redactor(&["mq"]);
    assert_eq!(redactor.mask(text), r#"{"old":"***","new":"***"}"#);
    // The old value in its encodings too.
    let b64 = base64::engine::general_purpose::STANDARD.encode("MqPass-GOLF-42");
    assert_eq!(redactor.mask(&format!("key=MqPass-GOLF-42&b64={b64}")), "key=***&b64=***");
}

#[tokio::test]
async fn the_values_of_the_kept_versions_are_masked_and_deleting_the_secret_forgets_them() {
    let env = Env::new().await;
    let value = |v: u32| format!("rotating-value-{v:02}-xyz");
    let id = env.secret("r", &value(1)).await;
    for v in 2..=12 {
        env.set(id, &value(v)).await;
    }
    let env = env.restart().await;
    let redactor = env.redactor(&["r"]);
    // The default keeps the values of the last 10 versions (3..=12); 1 and 2 are destroyed.
    for v in 1..=12 {
        let expected = if v >= 3 { "***".to_owned() } else { value(v) };
        assert_eq!(redactor.mask(&value(v)), expected, "value {v}");
    }

    env.store.delete(&env.admin, id).await.unwrap();
    env.secret("r", "a-new-secret-same-name").await;
    let env = env.restart().await;
    let redactor = env.redactor(&["r"]);
    assert_eq!(redactor.mask("a-new-secret-same-name"), "***");
    assert_eq!(redactor.mask(&value(12)), value(12), "the deleted secret's values are gone");
}

#[tokio::test]
async fn a_running_redactor_learns_a_new_value_and_keeps_the_old_one() {
    let env = Env::new().await;
    let id = env.secret("k", "first-value-AAAA").await;
    let redactor = env.redactor(&["k"]);
    assert_eq!(redactor.mask("first-value-AAAA"), "***");
    env.set(id, "second-value-BBBB").await;
    assert_eq!(redactor.mask("first-value-AAAA second-value-BBBB"), "*** ***");
}

#[tokio::test]
async fn keys_that_mask_alike_keep_both_entries() {
    let env = Env::new().await;
    env.secret("a", "a1").await;
    env.secret("b", "b2").await;
    let redactor = env.redactor(&["a", "b"]);
    let mut value =
        json!({"x-a1": "one", "x-b2": "two", "x-***": "literal", "plain": {"x-a1": 1, "x-b2": 2}});
    redactor.mask_json(&mut value);
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "{value}");
    let mut values: Vec<&str> = value.as_object().unwrap().values().filter_map(|v| v.as_str()).collect();
    values.sort();
    assert_eq!(values, ["literal", "one", "two"]);
    assert!(value.get("x-*** (2)").is_some() && value.get("x-*** (3)").is_some(), "{value}");
    assert_eq!(value["plain"].as_object().unwrap().len(), 2, "{value}");
}

#[tokio::test]
async fn basic_credentials_a_node_registers_are_masked_whatever_the_password_length() {
    use base64::Engine as _;
    let env = Env::new().await;
    env.secret("short", "Zq4").await;
    let redactor = env.redactor(&["short"]);
    let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("user:Zq4"));
    assert_eq!(header, "Basic dXNlcjpacTQ=");
    assert_eq!(redactor.mask(&header), header, "nothing in the value's own forms matches");
    redactor.also_mask(b"user:Zq4");
    assert_eq!(
        redactor.mask(&format!(r#"{{"authorization":"{header}"}}"#)),
        r#"{"authorization":"Basic ***"}"#
    );
    // Registering it again changes nothing; many different values are bounded, newest kept.
    redactor.also_mask(b"user:Zq4");
    for i in 0..100 {
        redactor.also_mask(format!("user-{i}:Zq4").as_bytes());
    }
    assert_eq!(redactor.mask("user-99:Zq4"), "***");
}

#[tokio::test]
async fn forms_that_escaped_before() {
    let env = Env::new().await;
    env.secret("urlish", "my-pass word.JULIET~9").await;
    env.secret("special", "Sp\"ec\\ial\tTAB\u{200b}ZW-ECHO9").await;
    env.secret("nul", "abc\0def-ghi").await;
    env.secret("host", "k3y-CHARLIE-55aa").await;
    let redactor = env.redactor(&["urlish", "special", "nul", "host"]);
    let cases = [
        // F11: what reqwest sends in a query or path, and lowercase-hex percent forms.
        "/status/404?key=my-pass%20word.JULIET~9",
        "/my-pass%20word.JULIET~9/x",
        "my%2dpass%20word%2eJULIET%7e9",
        // F12: Rhai debug() / to_json() (Rust `{:?}` escaping).
        r#"{"k":"Sp\"ec\\ial\tTAB\u{200b}ZW-ECHO9"}"#,
        r#"["abc\0def-ghi"]"#,
        // F17: Python's ASCII-only JSON (JSON escaped twice is below).
        r#"{"pwd": "Sp\"ec\\ial\tTAB\u200bZW-ECHO9"}"#,
        // F16: a host is lowercased by URL parsers.
        "host: k3y-charlie-55aa.invalid",
    ];
    let twice = serde_json::to_string(
        &json!({"body": json!({"pwd": "Sp\"ec\\ial\tTAB\u{200b}ZW-ECHO9"}).to_string()}),
    )
    .unwrap();
    assert!(twice.contains(r#"Sp\\\"ec"#), "{twice}");
    for text in cases.iter().copied().chain([twice.as_str()]) {
        let masked = redactor.mask(text);
        assert!(masked.contains("***"), "{text} -> {masked}");
        for needle in ["JULIET", "juliet", "ECHO9", "def-ghi", "charlie"] {
            assert!(!masked.contains(needle), "{text} -> {masked}");
        }
    }
}
