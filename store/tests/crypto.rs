use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sqlx::Connection as _;
use veil_store::{Database, SecretUpdate, SecretValue, StoreError};
use veil_tests::{TempStore, explicit_key, file_secret, generated_key, leaks, open_at, open_with, snapshot};

const TRICKY: &[&str] = &[
    r#"quote " and backslash \ and \" and \\"#,
    "new\nline\r\nand\ttab",
    "ünïcödé — 日本語 — 🔐",
    r#"{"json": "looking", "$<secret:x>": [1,2]}"#,
    "' OR 1=1; --",
];

backend_tests! {
    #[tokio::test]
    async fn tricky_values_round_trip_exactly_through_a_restart(t: TempStore) {
        for (i, v) in TRICKY.iter().enumerate() {
            t.text(&format!("tricky-{i}"), v).await;
        }
        let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        t.store.create(&t.admin, file_secret("binary", binary.clone())).await.unwrap();
        let t = t.reopen().await;
        for (i, v) in TRICKY.iter().enumerate() {
            let got = t.store.resolve(t.admin.tenant_id, &format!("tricky-{i}")).unwrap();
            assert_eq!(got.expose_text(), Some(*v));
        }
        assert_eq!(t.store.resolve(t.admin.tenant_id, "binary").unwrap().expose_bytes(), binary.as_slice());
    }
}

#[tokio::test]
async fn no_value_in_any_form_the_redactor_masks_anywhere_in_the_data_directory() {
    let t = TempStore::new().await;
    let values = [
        "PLAINTEXT-CANARY-0123456789-abcdefghij",
        "second canary value with spaces and \"quotes\" 4711",
        "rotated-canary-value-9876543210-zyxwvu",
    ];
    let a = t.text("a", values[0]).await;
    t.store.create(&t.admin, file_secret("f", values[1].as_bytes().to_vec())).await.unwrap();
    t.store
        .update(&t.admin, a.id, SecretUpdate { value: Some(values[2].into()), ..Default::default() })
        .await
        .unwrap();
    t.store.system_secret("token-signing-key", 32).await.unwrap();
    // Scan while open (WAL present) and after a clean close (checkpointed into the main file).
    for pass in 0..2 {
        let files = snapshot(t.dir.path());
        assert!(files.keys().any(|p| p.ends_with("veil.db")));
        for (path, content) in &files {
            let found = leaks(content, &values);
            assert!(found.is_empty(), "pass {pass}: {} shows {found:?}", path.display());
        }
        t.store.close().await;
    }
}

/// Rewrites rows of the closed store's database with the test's own SQL, in the dialect of its
/// backend.
pub(crate) async fn tamper(t: &TempStore, sqlite: &str, postgres: &str) {
    match &t.database {
        Database::Sqlite(path) => {
            let mut conn =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            sqlx::query(sqlite).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
        Database::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(postgres).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_moved_or_altered_ciphertext_fails_its_integrity_check(t: TempStore) {
        t.text("a", "value-of-a").await;
        t.text("b", "value-of-b").await;
        t.text("c", "value-of-c").await;
        t.store.close().await;
        // Move a's ciphertext into b's row.
        let moved = "UPDATE secrets SET (key_id, nonce, ciphertext) = \
             (SELECT key_id, nonce, ciphertext FROM secrets WHERE name = 'a') WHERE name = 'b'";
        tamper(&t, moved, moved).await;
        // Flip a byte of c's ciphertext.
        tamper(
            &t,
            "UPDATE secrets SET ciphertext = \
             substr(ciphertext, 1, 2) || CAST(X'00' AS BLOB) || substr(ciphertext, 4) WHERE name = 'c'",
            "UPDATE secrets SET ciphertext = set_byte(ciphertext, 2, get_byte(ciphertext, 2) # 255) \
             WHERE name = 'c'",
        )
        .await;
        let store = open_with(t.database.clone(), generated_key(t.dir.path())).await.unwrap();
        let tenant = t.admin.tenant_id;
        assert_eq!(store.resolve(tenant, "a").unwrap().expose_text(), Some("value-of-a"));
        for name in ["b", "c"] {
            let e = store.resolve(tenant, name).unwrap_err();
            assert!(matches!(&e, StoreError::Integrity(n) if n == name), "{e:?}");
            assert_eq!(
                e.to_string(),
                format!(
                    "secret '{name}' failed its integrity check (ciphertext altered or moved); no value returned"
                )
            );
        }
        store.close().await;
    }
}

#[tokio::test]
async fn a_wrong_master_key_refuses_to_open_and_changes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(dir.path(), explicit_key(1)).await.unwrap();
    let admin = veil_tests::admin_of(veil_store::TenantId::new_random());
    store.create(&admin, veil_tests::text_secret("s", "v")).await.unwrap();
    store.close().await;
    let before = snapshot(dir.path());

    let e = open_at(dir.path(), explicit_key(2)).await.unwrap_err();
    assert!(matches!(e, StoreError::WrongMasterKey), "{e:?}");
    assert!(e.to_string().contains("does not match this database"), "{e}");
    assert_eq!(snapshot(dir.path()), before, "a refused start must not change any file");

    // No key given and no master.key: refuse rather than generate a key that opens nothing.
    let e = open_at(dir.path(), generated_key(dir.path())).await.unwrap_err();
    assert!(e.to_string().contains("master.key is missing but the database holds a keyring"), "{e}");
    assert_eq!(snapshot(dir.path()), before);

    let store = open_at(dir.path(), explicit_key(1)).await.unwrap();
    assert_eq!(store.resolve(admin.tenant_id, "s").unwrap().expose_text(), Some("v"));
}

backend_tests! {
    #[tokio::test]
    async fn the_generated_master_key_is_private_and_reused(t: TempStore) {
        t.text("s", "v").await;
        let key_path = t.dir.path().join("master.key");
        let key = std::fs::read_to_string(&key_path).unwrap();
        assert_eq!(STANDARD.decode(key.trim()).unwrap().len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let t = t.reopen().await;
        assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key);
        assert_eq!(t.store.resolve(t.admin.tenant_id, "s").unwrap().expose_text(), Some("v"));
    }
}

#[test]
fn debug_of_every_secret_holding_type_is_redacted() {
    let value = SecretValue::from("hunter2-canary");
    assert_eq!(format!("{value:?}"), "SecretValue([REDACTED])");
    let req = veil_tests::text_secret("n", "hunter2-canary");
    assert!(!format!("{req:?}").contains("hunter2"), "{req:?}");
    let upd = SecretUpdate { value: Some("hunter2-canary".into()), ..Default::default() };
    assert!(!format!("{upd:?}").contains("hunter2"));
    let key = explicit_key(9);
    assert_eq!(format!("{key:?}"), "MasterKeySource::Base64([REDACTED])");
    let user = veil_store::UserRecord {
        id: veil_store::UserId::new_random(),
        tenant_id: veil_store::TenantId::new_random(),
        customer_id: None,
        username: "u".into(),
        password_hash: "$argon2id$hash-canary".into(),
        roles: vec![],
        created_time: 0,
        tokens_valid_after: 0,
    };
    assert!(!format!("{user:?}").contains("hash-canary"));
}

backend_tests! {
    #[tokio::test]
    async fn store_debug_shows_no_values(t: TempStore) {
        t.text("s", "hunter2-canary").await;
        let dbg = format!("{:?}", t.store);
        assert!(dbg.contains(t.store.backend_kind()) && !dbg.contains("hunter2"), "{dbg}");
    }
}
