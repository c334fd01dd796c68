//! A secret's versions: what the listing shows, how many keep their value, keyed fingerprints,
//! verify, rollback and check-and-set, on both backends and after a restart.

use veil_store::{
    AuditQuery, NewSecret, Operation, Permissions, SecretUpdate, SecretValue, StoreError, Verification,
    VersionState,
};
use veil_tests::{TempStore, assert_no_leak, text_secret};

fn value(v: &str) -> SecretUpdate {
    SecretUpdate { value: Some(v.into()), ..Default::default() }
}

/// (version, state, fingerprint) of every version, newest first.
async fn listed(t: &TempStore, id: veil_store::SecretId) -> Vec<(i64, VersionState, Option<String>)> {
    let page = t.store.versions(&t.admin, id, 0, 100).await.unwrap();
    page.data.into_iter().map(|v| (v.version, v.state, v.fingerprint)).collect()
}

fn masked(t: &TempStore, name: &str) -> Vec<String> {
    let values = t.store.values_for_masking(t.admin.tenant_id, name).unwrap();
    values.iter().map(|v| v.expose_text().unwrap().to_owned()).collect()
}

backend_tests! {
    #[tokio::test]
    async fn versions_keep_the_last_max_versions_values_and_fingerprint_equal_values_alike(t: TempStore) {
        let new = NewSecret { max_versions: Some(3), ..text_secret("api-token", "alpha") };
        let info = t.store.create(&t.admin, new).await.unwrap();
        assert_eq!(info.max_versions, 3);
        for v in ["bravo", "charlie", "alpha", "delta"] {
            t.store.update(&t.admin, info.id, value(v)).await.unwrap();
        }
        let versions = listed(&t, info.id).await;
        let states: Vec<(i64, VersionState)> = versions.iter().map(|(v, s, _)| (*v, *s)).collect();
        assert_eq!(
            states,
            [
                (5, VersionState::Current),
                (4, VersionState::Previous),
                (3, VersionState::Previous),
                (2, VersionState::Destroyed),
                (1, VersionState::Destroyed),
            ]
        );
        let fingerprint = |v: i64| versions.iter().find(|(n, ..)| *n == v).unwrap().2.clone().unwrap();
        assert_eq!(fingerprint(4), fingerprint(1), "'alpha' twice: one fingerprint");
        assert_ne!(fingerprint(5), fingerprint(4));
        assert!(fingerprint(5).len() == 12 && fingerprint(5).chars().all(|c| c.is_ascii_hexdigit()));
        let page = t.store.versions(&t.admin, info.id, 0, 2).await.unwrap();
        assert_eq!((page.data.len(), page.total_elements, page.has_next), (2, 5, true));
        assert_eq!(page.data[0].created_by.as_deref(), Some("admin"));
        // The kept values stay masked; a destroyed one no longer is.
        assert_eq!(masked(&t, "api-token"), ["delta", "alpha", "charlie"]);

        // Fewer versions: the older kept values are destroyed at once.
        let fewer = SecretUpdate { max_versions: Some(2), ..Default::default() };
        assert_eq!(t.store.update(&t.admin, info.id, fewer).await.unwrap().version, 5);
        assert_eq!(listed(&t, info.id).await[2].1, VersionState::Destroyed);
        let e = t.store.update(&t.admin, info.id, SecretUpdate { max_versions: Some(0), ..Default::default() });
        assert_eq!(e.await.unwrap_err().to_string(), "maxVersions: must be 1..100, got 0");

        // After a restart: the same listing, the same masking.
        let before = listed(&t, info.id).await;
        let t = t.reopen().await;
        assert_eq!(listed(&t, info.id).await, before);
        assert_eq!(masked(&t, "api-token"), ["delta", "alpha"]);
        assert_eq!(t.store.get(&t.admin, info.id).unwrap().max_versions, 2);
    }

    #[tokio::test]
    async fn verify_confirms_a_value_without_revealing_one_and_needs_write(t: TempStore) {
        let info = t.text("api-token", "first-value").await;
        t.store.update(&t.admin, info.id, value("second-value")).await.unwrap();
        let check = |v: &str| t.store.verify(&t.admin, info.id, SecretValue::from(v));
        assert_eq!(check("second-value").await.unwrap(), Verification { matches: true, version: Some(2) });
        assert_eq!(check("first-value").await.unwrap(), Verification { matches: true, version: Some(1) });
        assert_eq!(check("guess").await.unwrap(), Verification { matches: false, version: None });
        let reader = veil_store::Actor { permissions: Permissions::of(&[Operation::Read]), ..t.admin.clone() };
        let e = t.store.verify(&reader, info.id, SecretValue::from("guess")).await.unwrap_err();
        assert_eq!(e.to_string(), "permission denied: missing permission SECRET:WRITE");
        let audit = t
            .store
            .audit_logs(&t.admin, &AuditQuery { secret_id: Some(info.id), page_size: 50, ..Default::default() })
            .await
            .unwrap();
        let verifies: Vec<&serde_json::Value> =
            audit.data.iter().filter(|e| e.action.as_str() == "VERIFY").map(|e| &e.details).collect();
        assert_eq!(verifies.len(), 3, "{verifies:?}");
        assert_eq!(verifies[0], &serde_json::json!({"matches": false, "version": null}));
        assert_no_leak(&serde_json::to_string(&audit.data).unwrap(), &["first-value", "second-value", "guess"]);
    }

    #[tokio::test]
    async fn rollback_makes_a_new_version_with_an_earlier_value(t: TempStore) {
        let new = NewSecret { max_versions: Some(2), ..text_secret("api-token", "one") };
        let info = t.store.create(&t.admin, new).await.unwrap();
        t.store.update(&t.admin, info.id, value("two")).await.unwrap();
        t.store.update(&t.admin, info.id, value("three")).await.unwrap();
        let rolled = t.store.rollback(&t.admin, info.id, 2, Some(3)).await.unwrap();
        assert_eq!(rolled.version, 4);
        assert_eq!(t.store.resolve(t.admin.tenant_id, "api-token").unwrap().expose_text(), Some("two"));
        let versions = listed(&t, info.id).await;
        assert_eq!(versions[0].2, versions.iter().find(|v| v.0 == 2).unwrap().2, "the value of version 2");
        // Version 1 is destroyed (two versions kept): it cannot come back.
        let e = t.store.rollback(&t.admin, info.id, 1, None).await.unwrap_err();
        assert!(matches!(e, StoreError::VersionDestroyed { version: 1, .. }), "{e:?}");
        assert_eq!(e.to_string(), "secret 'api-token': version 1 is destroyed (its value is no longer kept)");
        let e = t.store.rollback(&t.admin, info.id, 9, None).await.unwrap_err();
        assert!(matches!(e, StoreError::NotFound { kind: "version", .. }), "{e:?}");
        // A rollback based on a version that is no longer current changes nothing.
        let e = t.store.rollback(&t.admin, info.id, 3, Some(3)).await.unwrap_err();
        assert!(matches!(e, StoreError::VersionMismatch { expected: 3, current: 4, .. }), "{e:?}");
        assert_eq!(t.store.get(&t.admin, info.id).unwrap().version, 4);
        let audit = t
            .store
            .audit_logs(&t.admin, &AuditQuery { secret_id: Some(info.id), page_size: 50, ..Default::default() })
            .await
            .unwrap();
        let rollback = audit.data.iter().find(|e| e.action.as_str() == "ROLLBACK").unwrap();
        assert_eq!(rollback.details, serde_json::json!({"fromVersion": 2, "version": 4}));
    }

    #[tokio::test]
    async fn versions_written_before_fingerprints_get_them_at_the_next_start(t: TempStore) {
        let info = t.text("api-token", "one").await;
        t.store.update(&t.admin, info.id, value("two")).await.unwrap();
        let before = listed(&t, info.id).await;
        t.store.close().await;
        let forget = "UPDATE secret_versions SET fingerprint = NULL, created_by = NULL";
        crate::crypto::tamper(&t, forget, forget).await;
        let t = t.reopen().await;
        assert_eq!(listed(&t, info.id).await, before, "filled in again, the same");
        let page = t.store.versions(&t.admin, info.id, 0, 10).await.unwrap();
        assert_eq!(page.data[0].created_by, None, "who wrote it is not known");
    }

    #[tokio::test]
    async fn a_change_based_on_another_version_changes_nothing(t: TempStore) {
        let info = t.text("api-token", "one").await;
        let based_on = |version: i64, v: &str| SecretUpdate {
            value: Some(v.into()),
            expected_version: Some(version),
            ..Default::default()
        };
        assert_eq!(t.store.update(&t.admin, info.id, based_on(1, "two")).await.unwrap().version, 2);
        let e = t.store.update(&t.admin, info.id, based_on(1, "stale")).await.unwrap_err();
        assert!(matches!(e, StoreError::VersionMismatch { expected: 1, current: 2, .. }), "{e:?}");
        assert_eq!(e.to_string(), "secret 'api-token' is at version 2, not 1: read it again and retry");
        assert_eq!(t.store.resolve(t.admin.tenant_id, "api-token").unwrap().expose_text(), Some("two"));
        assert_eq!(listed(&t, info.id).await.len(), 2);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_rekey_moves_the_keyring_to_a_new_master_key_and_the_old_one_is_refused(t: TempStore) {
        let info = t.text("api-token", "one").await;
        t.store.update(&t.admin, info.id, value("two")).await.unwrap();
        t.store.close().await;
        let (old, new) = (t.dir.path().join("master.key"), t.dir.path().join("new.key"));
        veil_store::generate_master_key(&new).unwrap();
        let e = veil_store::generate_master_key(&new).unwrap_err();
        assert!(e.to_string().contains("cannot write master key file"), "never overwritten: {e}");
        let file = veil_store::MasterKeySource::File;
        // The wrong current key, or the same key twice: refused, nothing changed.
        let e = veil_store::rekey(&t.database, &file(new.clone()), &file(old.clone())).await.unwrap_err();
        assert!(matches!(e, StoreError::WrongMasterKey), "{e:?}");
        let e = veil_store::rekey(&t.database, &file(old.clone()), &file(old.clone())).await.unwrap_err();
        assert_eq!(e.to_string(), "master key: the new master key is the current one; nothing to do");

        let report = veil_store::rekey(&t.database, &file(old.clone()), &file(new.clone())).await.unwrap();
        assert_eq!(report.data_keys, 1);
        let e = veil_tests::open_with(t.database.clone(), file(old)).await.unwrap_err();
        assert!(matches!(e, StoreError::WrongMasterKey), "the old key is refused: {e:?}");
        let store = veil_tests::open_with(t.database.clone(), file(new)).await.unwrap();
        assert_eq!(store.resolve(t.admin.tenant_id, "api-token").unwrap().expose_text(), Some("two"));
        let masked = store.values_for_masking(t.admin.tenant_id, "api-token").unwrap();
        let masked: Vec<&str> = masked.iter().map(|v| v.expose_text().unwrap()).collect();
        assert_eq!(masked, ["two", "one"], "earlier versions decrypt too");
        store.close().await;
    }
}
