use veil_store::{
    Actor, NewSecret, Operation, Permissions, SecretType, SecretUpdate, SecretValue, StoreError, UserId,
};
use veil_tests::{TempStore, file_secret, text_secret};

fn problems(e: StoreError) -> Vec<(String, String)> {
    match e {
        StoreError::Invalid(p) => p.into_iter().map(|p| (p.field, p.message)).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

backend_tests! {
    #[tokio::test]
    async fn every_name_rule_is_enforced_with_a_message_naming_the_field(t: TempStore) {
        for (name, needle) in [
            ("", "must not be empty"),
            ("  \t ", "must not be empty"),
            ("bad\u{0}name", "control characters"),
            ("line\nbreak", "control characters"),
            ("a<b", "'<'"),
            ("a>b", "'>'"),
            ("a{b", "'{'"),
            ("a}b", "'}'"),
            ("a;b", "';'"),
            ("$<secret:x>", "'"),
        ] {
            let e = t.store.create(&t.admin, text_secret(name, "v")).await.unwrap_err();
            let p = problems(e);
            assert_eq!(p[0].0, "name", "{name:?}");
            assert!(p[0].1.contains(needle), "{name:?}: {}", p[0].1);
        }
        let long = "n".repeat(256);
        let p = problems(t.store.create(&t.admin, text_secret(&long, "v")).await.unwrap_err());
        assert!(p[0].1.contains("is 256 characters long, the limit is 255"), "{}", p[0].1);
        // The limit counts characters, not bytes: 255 three-byte characters are fine.
        let info = t.store.create(&t.admin, text_secret(&"ж".repeat(255), "v")).await.unwrap();
        assert_eq!(info.name.chars().count(), 255);
    }
}

backend_tests! {
    #[tokio::test]
    async fn names_are_trimmed_unicode_and_spaces_allowed(t: TempStore) {
        let info = t.text("  LORIOT пароль 🔑 ", "v").await;
        assert_eq!(info.name, "LORIOT пароль 🔑");
        assert_eq!(t.store.resolve(t.admin.tenant_id, "LORIOT пароль 🔑").unwrap().expose_text(), Some("v"));
        let e = t.store.create(&t.admin, text_secret("LORIOT пароль 🔑", "w")).await.unwrap_err();
        assert!(matches!(&e, StoreError::NameTaken(n) if n == "LORIOT пароль 🔑"), "{e:?}");
        assert_eq!(e.to_string(), "a secret named 'LORIOT пароль 🔑' already exists");
    }
}

backend_tests! {
    #[tokio::test]
    async fn value_rules_and_limits(t: TempStore) {
        let p = problems(t.store.create(&t.admin, text_secret("empty", "")).await.unwrap_err());
        assert_eq!(p, vec![("value".to_string(), "must not be empty".to_string())]);

        let not_utf8 = NewSecret { value: SecretValue::new(vec![0xff, 0xfe]), ..text_secret("bin", "") };
        let p = problems(t.store.create(&t.admin, not_utf8).await.unwrap_err());
        assert_eq!(p[0].0, "value");
        assert!(p[0].1.contains("UTF-8"));

        let max_text = "x".repeat(64 * 1024);
        t.text("text-at-limit", &max_text).await;
        let e =
            t.store.create(&t.admin, text_secret("text-over", &format!("{max_text}y"))).await.unwrap_err();
        assert_eq!(e.to_string(), "value: is 65537 bytes, the limit for TEXT secrets is 65536 bytes");

        let info = t.store.create(&t.admin, file_secret("file-at-limit", vec![0u8; 1 << 20])).await.unwrap();
        assert_eq!(info.kind, SecretType::File);
        assert_eq!(t.store.resolve(t.admin.tenant_id, "file-at-limit").unwrap().len(), 1 << 20);
        let e =
            t.store.create(&t.admin, file_secret("file-over", vec![0u8; (1 << 20) + 1])).await.unwrap_err();
        assert!(matches!(e, StoreError::TooLarge { size: 1_048_577, limit: 1_048_576, .. }), "{e:?}");
        let listed = t.store.list(&t.admin, &Default::default()).unwrap();
        assert!(listed.data.iter().all(|s| !s.name.ends_with("-over")), "nothing refused was stored");
    }
}

backend_tests! {
    #[tokio::test]
    async fn file_name_rules_and_all_problems_at_once(t: TempStore) {
        let no_file_name = NewSecret { file_name: None, ..file_secret("cert", vec![1]) };
        let p = problems(t.store.create(&t.admin, no_file_name).await.unwrap_err());
        assert_eq!(p[0], ("fileName".into(), "is required for a FILE secret".into()));

        let text_with_file = NewSecret { file_name: Some("x.pem".into()), ..text_secret("t", "v") };
        let p = problems(t.store.create(&t.admin, text_with_file).await.unwrap_err());
        assert_eq!(p[0].1, "only FILE secrets have a file name");

        let bad_path = NewSecret { file_name: Some("../etc/passwd".into()), ..file_secret("cert", vec![1]) };
        assert_eq!(problems(t.store.create(&t.admin, bad_path).await.unwrap_err())[0].0, "fileName");

        // Several problems come back together.
        let many = NewSecret {
            name: "a;b".into(),
            kind: SecretType::File,
            description: Some("d".repeat(5000)),
            value: SecretValue::new(Vec::new()),
            file_name: None,
            allowed_destinations: Vec::new(),
            max_versions: None,
            expires_at: None,
        };
        let fields: Vec<String> =
            problems(t.store.create(&t.admin, many).await.unwrap_err()).into_iter().map(|p| p.0).collect();
        assert_eq!(fields, ["name", "description", "fileName", "value"]);
    }
}

backend_tests! {
    #[tokio::test]
    async fn name_and_type_are_immutable_and_versions_count_value_changes(t: TempStore) {
        let info = t.text("api-token", "one").await;
        assert_eq!(info.version, 1);

        let e = t
            .store
            .update(
                &t.admin,
                info.id,
                SecretUpdate { name: Some("other".into()), value: Some("x".into()), ..Default::default() },
            )
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "name: cannot be changed after creation (it is 'api-token')");
        let e = t
            .store
            .update(&t.admin, info.id, SecretUpdate { kind: Some("FILE".into()), ..Default::default() })
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Immutable { field: "type", .. }), "{e:?}");
        assert_eq!(t.store.resolve(t.admin.tenant_id, "api-token").unwrap().expose_text(), Some("one"));

        // The same name and type are accepted (clients often send the whole object back).
        let same = SecretUpdate {
            name: Some("api-token".into()),
            kind: Some("TEXT".into()),
            value: Some("two".into()),
            ..Default::default()
        };
        let updated = t.store.update(&t.admin, info.id, same).await.unwrap();
        assert_eq!(updated.version, 2);
        assert!(updated.updated_time >= info.updated_time);
        let described = t
            .store
            .update(
                &t.admin,
                info.id,
                SecretUpdate { description: Some("rotated".into()), ..Default::default() },
            )
            .await
            .unwrap();
        assert_eq!((described.version, described.description.as_str()), (2, "rotated"));
        assert_eq!(t.store.resolve(t.admin.tenant_id, "api-token").unwrap().expose_text(), Some("two"));

        let e = t.store.update(&t.admin, info.id, SecretUpdate::default()).await.unwrap_err();
        assert!(e.to_string().contains("nothing to change"), "{e}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn permissions_are_checked_at_the_store(t: TempStore) {
        let info = t.text("api-token", "v").await;
        let reader = Actor {
            user_id: UserId::new_random(),
            username: "reader".into(),
            tenant_id: t.admin.tenant_id,
            customer_id: None,
            permissions: Permissions::of(&[Operation::Read]),
        };
        assert_eq!(t.store.get(&reader, info.id).unwrap().name, "api-token");
        let e = t.store.create(&reader, text_secret("x", "v")).await.unwrap_err();
        assert_eq!(e.to_string(), "permission denied: missing permission SECRET:CREATE");
        let e = t
            .store
            .update(&reader, info.id, SecretUpdate { value: Some("x".into()), ..Default::default() })
            .await;
        assert!(matches!(e, Err(StoreError::Forbidden(m)) if m.contains("WRITE")));
        let e = t.store.delete(&reader, info.id).await;
        assert!(matches!(e, Err(StoreError::Forbidden(m)) if m.contains("DELETE")));
        assert_eq!(t.store.resolve(t.admin.tenant_id, "api-token").unwrap().expose_text(), Some("v"));
    }
}
