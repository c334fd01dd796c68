//! Names that look alike or hide characters, text that would inject terminal escapes, file
//! names, pagination at the integer limits, own-password changes, and the database files' modes.

use std::os::unix::fs::PermissionsExt as _;

use veil_store::{
    Actor, AuditQuery, Grant, NewSecret, NewUser, Operation, Resource, SecretUpdate, StoreError, TenantId,
    UserId, UserRecord, UserUpdate,
};
use veil_tests::{TempStore, admin_of, db_path, file_secret, generated_key, open_at, text_secret};

/// The one problem of an `Invalid` (secret) or `InvalidInput` (directory) error.
fn problem(e: StoreError) -> (String, String) {
    match e {
        StoreError::Invalid(p) | StoreError::InvalidInput(p) if p.len() == 1 => {
            (p[0].field.clone(), p[0].message.clone())
        }
        other => panic!("expected one problem, got {other:?}"),
    }
}

/// The message of a 409 `name_confusable`.
fn confusable(e: StoreError) -> String {
    match e {
        StoreError::NameUnavailable { conflict: veil_store::NameConflict::Lookalike, message } => message,
        other => panic!("expected name_confusable, got {other:?}"),
    }
}

backend_tests! {
    #[tokio::test]
    async fn names_with_invisible_characters_or_not_in_nfc_are_refused_and_cannot_be_referenced(
        t: TempStore,
    ) {
        for (name, found) in [
            ("api\u{200b}-token", "U+200B"),    // zero-width space
            ("token\u{202e}gnp.exe", "U+202E"), // right-to-left override
            ("a\u{2066}b\u{2069}", "U+2066"),   // left-to-right isolate
            ("\u{feff}bom-name", "U+FEFF"),     // byte order mark
            ("join\u{200d}ed", "U+200D"),       // zero-width joiner
            ("soft\u{ad}hyphen", "U+00AD"),
            ("line\u{2028}sep", "U+2028"),
        ] {
            let (field, message) =
                problem(t.store.create(&t.admin, text_secret(name, "v")).await.unwrap_err());
            assert_eq!(field, "name", "{name:?}");
            assert!(
                message.contains("invisible formatting characters") && message.contains(found),
                "{message}"
            );
            // The placeholder parser uses the same rule: such a name cannot be referenced either.
            assert!(veil_store::validate_name(name).is_err(), "{name:?}");
        }
        for (name, found) in [("esc\u{1b}[31m", "U+001B"), ("del\u{7f}", "U+007F"), ("c1\u{9b}", "U+009B")] {
            let (_, message) = problem(t.store.create(&t.admin, text_secret(name, "v")).await.unwrap_err());
            assert!(message.contains("control characters") && message.contains(found), "{message}");
        }

        // NFD "café" (e + combining acute) is refused with the NFC form to send instead.
        let nfd = "cafe\u{301}-key";
        let (field, message) = problem(t.store.create(&t.admin, text_secret(nfd, "v")).await.unwrap_err());
        assert_eq!(field, "name");
        assert!(
            message.contains("NFC") && message.contains("send the NFC form 'caf\u{e9}-key'"),
            "{message}"
        );
        let info = t.text("caf\u{e9}-key", "v").await;
        assert_eq!(info.name, "caf\u{e9}-key");
        assert!(veil_store::validate_name(nfd).unwrap_err().message.contains("NFC"));

        // Plain Unicode and emoji stay fine.
        t.text("пароль-ключ 🔑", "v").await;
        assert_eq!(t.store.list(&t.admin, &Default::default()).unwrap().total_elements, 2);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_secret_name_that_looks_like_an_existing_one_is_refused_within_the_tenant(t: TempStore) {
        t.text("s-basic", "v").await;
        // Cyrillic а (U+0430) instead of the Latin a.
        let message =
            confusable(t.store.create(&t.admin, text_secret("s-b\u{430}sic", "v")).await.unwrap_err());
        assert_eq!(
            message,
            "name: 's-b\u{430}sic' looks like the existing secret 's-basic'; choose a name that can be told apart"
        );
        // Digit one for the letter l, in ASCII too.
        t.text("paypal", "v").await;
        let message = confusable(t.store.create(&t.admin, text_secret("paypa1", "v")).await.unwrap_err());
        assert!(message.contains("'paypal'"), "{message}");
        // Clearly different names and other tenants' names are fine.
        t.text("s-basic-2", "v").await;
        let other = admin_of(TenantId::new_random());
        t.store.create(&other, text_secret("s-b\u{430}sic", "v")).await.unwrap();
        assert_eq!(t.store.list(&t.admin, &Default::default()).unwrap().total_elements, 3);
        // Still refused after a restart; free once the original is gone.
        let t = t.reopen().await;
        let e = t.store.create(&t.admin, text_secret("s-b\u{430}sic", "v")).await.unwrap_err();
        assert!(confusable(e).contains("'s-basic'"));
        let original = t.store.find(&t.admin, "s-basic").unwrap();
        t.store.delete(&t.admin, original.id).await.unwrap();
        t.store.create(&t.admin, text_secret("s-b\u{430}sic", "v")).await.unwrap();
    }
}

backend_tests! {
    #[tokio::test]
    async fn descriptions_refuse_control_and_bidi_characters_but_keep_newlines_tabs_and_joiners(
        t: TempStore,
    ) {
        let described = |d: &str| NewSecret { description: Some(d.into()), ..text_secret("d", "v") };
        for (description, needle) in [
            ("nul\u{0}", "control characters other than newline and tab (found U+0000)"),
            ("line2\u{1b}[31mRED", "(found U+001B)"),
            ("carriage\rreturn", "(found U+000D)"),
            ("c1\u{9b}31m", "(found U+009B)"),
            ("evil\u{202e}txt.exe", "invisible formatting characters"),
            ("iso\u{2067}late", "(found U+2067)"),
            ("zero\u{200b}width", "(found U+200B)"),
        ] {
            let (field, message) =
                problem(t.store.create(&t.admin, described(description)).await.unwrap_err());
            assert_eq!(field, "description");
            assert!(message.contains(needle), "{description:?}: {message}");
        }
        let ok = "line one\n\tindented; family 👨\u{200d}👩\u{200d}👧; می\u{200c}خواهم";
        let info = t.store.create(&t.admin, described(ok)).await.unwrap();
        assert_eq!(info.description, ok);
        // The same rules on a change.
        let change = SecretUpdate { description: Some("x\u{1b}]0;title\u{7}".into()), ..Default::default() };
        let (field, _) = problem(t.store.update(&t.admin, info.id, change).await.unwrap_err());
        assert_eq!(field, "description");
        assert_eq!(t.store.get(&t.admin, info.id).unwrap().description, ok);
    }
}

backend_tests! {
    #[tokio::test]
    async fn file_names_dot_and_dot_dot_and_invisible_characters_are_refused(t: TempStore) {
        for bad in [".", "..", " .. ", "cert\u{202e}mep.exe", "a\u{200b}.pem"] {
            let req = NewSecret { file_name: Some(bad.into()), ..file_secret("cert", vec![1]) };
            let (field, message) = problem(t.store.create(&t.admin, req).await.unwrap_err());
            assert_eq!(field, "fileName", "{bad:?}");
            assert!(message.contains("plain file name"), "{bad:?}: {message}");
        }
        let req = NewSecret { file_name: Some("..pem".into()), ..file_secret("cert", vec![1]) };
        assert_eq!(t.store.create(&t.admin, req).await.unwrap().file_name.as_deref(), Some("..pem"));
    }
}

fn new_user(name: &str, role: &str) -> NewUser {
    NewUser { username: name.into(), password_hash: "h".into(), customer_id: None, roles: vec![role.into()] }
}

backend_tests! {
    #[tokio::test]
    async fn user_role_and_customer_names_follow_the_same_rules_and_lookalikes_are_refused(t: TempStore) {
        let tenant = t.bootstrap.create_tenant("Acme Corp").await.unwrap();
        let admin = Actor::tenant_admin(tenant.id, UserId::new_random(), "admin");
        t.store.create_user_as(&admin, new_user("admin", "TENANT_ADMIN")).await.unwrap();

        // Users: Cyrillic а in "аdmin".
        let e = t.store.create_user_as(&admin, new_user("\u{430}dmin", "SECRET_MANAGER")).await.unwrap_err();
        assert_eq!(
            confusable(e),
            "username: '\u{430}dmin' looks like the existing user 'admin'; choose a name that can be told apart"
        );
        let (field, message) = problem(
            t.store.create_user_as(&admin, new_user("ad\u{200b}min", "SECRET_MANAGER")).await.unwrap_err(),
        );
        assert_eq!(field, "username");
        assert!(message.contains("U+200B"), "{message}");
        // User names are global, but another tenant's user is not named.
        let other_tenant = t.bootstrap.create_tenant("Globex").await.unwrap();
        let other = Actor::tenant_admin(other_tenant.id, UserId::new_random(), "other-admin");
        let e = t.store.create_user_as(&other, new_user("adm\u{456}n", "SECRET_MANAGER")).await.unwrap_err();
        let message = confusable(e);
        assert!(
            message.contains("looks like an existing user name") && !message.contains("'admin'"),
            "{message}"
        );
        // The same check where tenant administrators and the first users are made.
        let record = UserRecord {
            id: UserId::new_random(),
            tenant_id: other_tenant.id,
            customer_id: None,
            username: "\u{430}dmin".into(),
            password_hash: "h".into(),
            roles: vec!["TENANT_ADMIN".into()],
            created_time: 0,
            tokens_valid_after: 0,
        };
        assert!(matches!(
            t.bootstrap.create_user(&record).await,
            Err(StoreError::NameUnavailable { conflict: veil_store::NameConflict::Lookalike, .. })
        ));
        assert!(t.store.user_by_name("\u{430}dmin").await.unwrap().is_none());

        // Roles: never a built-in name, a lookalike or a case variant of one.
        let grants = vec![Grant { resource: Resource::Secret, operations: vec![Operation::Read] }];
        let (_, message) =
            problem(t.store.create_role(&admin, "TENANT_ADMIN\u{200b}", grants.clone()).await.unwrap_err());
        assert!(message.contains("U+200B"), "{message}");
        let (_, message) =
            problem(t.store.create_role(&admin, "TENANT_ADM\u{406}N", grants.clone()).await.unwrap_err());
        assert!(message.contains("looks like the built-in role 'TENANT_ADMIN'"), "{message}");
        let (_, message) =
            problem(t.store.create_role(&admin, "tenant_admin", grants.clone()).await.unwrap_err());
        assert!(message.contains("only in case"), "{message}");
        t.store.create_role(&admin, "readers", grants.clone()).await.unwrap();
        let message =
            confusable(t.store.create_role(&admin, "r\u{435}aders", grants.clone()).await.unwrap_err());
        assert!(message.contains("looks like the existing role 'readers'"), "{message}");

        // Customers, per tenant.
        t.store.create_customer(&admin, "Acme").await.unwrap();
        let message = confusable(t.store.create_customer(&admin, "\u{410}cme").await.unwrap_err());
        assert!(message.contains("looks like the existing customer 'Acme'"), "{message}");
        let (_, message) = problem(t.store.create_customer(&admin, "Ac\u{301}me").await.unwrap_err());
        assert!(message.contains("NFC"), "{message}");
        t.store.create_customer(&other, "\u{410}cme").await.unwrap();
        assert_eq!(t.store.customers(&admin).await.unwrap().len(), 1);
    }
}

backend_tests! {
    #[tokio::test]
    async fn changing_your_own_password_needs_the_current_one_resetting_someone_elses_does_not(t: TempStore) {
        let tenant = t.bootstrap.create_tenant("Acme Corp").await.unwrap();
        let admin = Actor::tenant_admin(tenant.id, UserId::new_random(), "admin");
        let dana = t.store.create_user_as(&admin, new_user("dana", "SECRET_MANAGER")).await.unwrap();
        let dana_actor =
            t.store.actor_for(&t.store.user_by_id(dana.id).await.unwrap().unwrap()).await.unwrap();
        let change = |verified| UserUpdate {
            password_hash: Some("new-hash".into()),
            roles: None,
            current_password_verified: verified,
        };
        let (field, message) =
            problem(t.store.update_user(&dana_actor, dana.id, change(false)).await.unwrap_err());
        assert_eq!(field, "currentPassword");
        assert!(message.contains("is required to change your own password"), "{message}");
        assert_eq!(t.store.user_by_id(dana.id).await.unwrap().unwrap().password_hash, "h");
        t.store.update_user(&dana_actor, dana.id, change(true)).await.unwrap();
        assert_eq!(t.store.user_by_id(dana.id).await.unwrap().unwrap().password_hash, "new-hash");
        // An administrator resets another user's password without knowing it.
        let admin_record = t.store.create_user_as(&admin, new_user("boss", "TENANT_ADMIN")).await.unwrap();
        let boss =
            t.store.actor_for(&t.store.user_by_id(admin_record.id).await.unwrap().unwrap()).await.unwrap();
        let reset = UserUpdate { password_hash: Some("reset".into()), ..Default::default() };
        t.store.update_user(&boss, dana.id, reset).await.unwrap();
        assert_eq!(t.store.user_by_id(dana.id).await.unwrap().unwrap().password_hash, "reset");
    }
}

backend_tests! {
    #[tokio::test]
    async fn an_audit_page_beyond_any_offset_is_empty_and_has_no_next_page(t: TempStore) {
        for i in 0..5 {
            t.text(&format!("audited-{i}"), "v").await;
        }
        let page = |page: usize| AuditQuery { page, page_size: 2, ..Default::default() };
        let first = t.store.audit_logs(&t.admin, &page(0)).await.unwrap();
        assert_eq!((first.data.len(), first.total_elements, first.has_next), (2, 5, true));
        let last = t.store.audit_logs(&t.admin, &page(2)).await.unwrap();
        assert_eq!((last.data.len(), last.has_next), (1, false));
        // usize::MAX * 2 used to wrap to a small offset (page 0 again, hasNext true); so did
        // page + 1. Offsets past i64::MAX (2^62 * 2) are past the end too.
        for huge in [usize::MAX, usize::MAX / 2, 1 << 62, (i64::MAX as usize) / 2 + 1] {
            let beyond = t.store.audit_logs(&t.admin, &page(huge)).await.unwrap();
            assert_eq!(
                (beyond.data.len(), beyond.total_elements, beyond.has_next),
                (0, 5, false),
                "page {huge}"
            );
        }
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn the_database_and_its_wal_and_shm_files_are_private_even_in_a_shared_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sides = |dir: &std::path::Path| {
        let db = db_path(dir);
        ["", "-wal", "-shm"].map(|suffix| std::path::PathBuf::from(format!("{}{suffix}", db.display())))
    };
    let store = open_at(dir.path(), generated_key(dir.path())).await.unwrap();
    store.create(&admin_of(TenantId::new_random()), text_secret("a", "v")).await.unwrap();
    for file in sides(dir.path()) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    store.close().await;

    // A database left world-readable by an older version is tightened on open.
    std::fs::set_permissions(db_path(dir.path()), std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = open_at(dir.path(), generated_key(dir.path())).await.unwrap();
    store.create(&admin_of(TenantId::new_random()), text_secret("b", "v")).await.unwrap();
    for file in sides(dir.path()) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    store.close().await;
}
