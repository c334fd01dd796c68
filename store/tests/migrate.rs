//! `veil migrate`'s copy: a SQLite store with every kind of row copied into a fresh PostgreSQL
//! database, checked there by what a user would see — values, usages, the delete guard, shares,
//! the audit log — and a non-empty target refused unless replaced.

use serde_json::json;
use uuid::Uuid;
use veil_store::{
    Actor, AuditQuery, Owner, OwnerLink, OwnerType, SecretRef, SecretUpdate, StoreError, UserId,
    migrate_to_postgres,
};
use veil_tests::{
    PostgresDatabase, TempStore, explicit_key, file_secret, generated_key, open_with, text_secret,
};

fn owner(kind: OwnerType, name: &str) -> Owner {
    Owner { kind, id: Uuid::new_v4(), name: name.into(), customer_id: None }
}

fn reference(secret: &str) -> SecretRef {
    SecretRef {
        secret_name: secret.into(),
        node_id: Some("n1".into()),
        node_name: Some("Call".into()),
        pointer: "/nodes/0/configuration/credentials/token".into(),
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn a_sqlite_store_copied_to_postgres_is_the_same_store() {
    let t = TempStore::sqlite().await;
    let tenant = t.bootstrap.create_tenant("Acme Corp").await.unwrap();
    let admin = Actor::tenant_admin(tenant.id, UserId::new_random(), "admin");
    let token = t.store.create(&admin, text_secret("api-token", "v1")).await.unwrap();
    for v in ["v2", "v3"] {
        let update = SecretUpdate { value: Some(v.into()), ..Default::default() };
        t.store.update(&admin, token.id, update).await.unwrap();
    }
    let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec();
    t.store.create(&admin, file_secret("ca-cert", pem.clone())).await.unwrap();
    // A staged rotation with a probe result, and a data key rotation, travel too.
    t.store.stage(&admin, token.id, "v4-pending".into(), None, None).await.unwrap();
    let probe = veil_store::ProbeRecord {
        owner_type: OwnerType::RuleChain,
        id: uuid::Uuid::new_v4(),
        name: "Forward".into(),
        node_id: "n1".into(),
        node: Some("Call".into()),
        field: "/nodes/0/configuration/credentials/token".into(),
        result: "OK".into(),
        reason: "GET 127.0.0.1:1 answered HTTP 200".into(),
        time: 1,
    };
    t.store.record_probes(token.id, 4, std::slice::from_ref(&probe)).await.unwrap();
    let sysadmin = Actor {
        user_id: UserId::new_random(),
        username: "sysadmin".into(),
        tenant_id: veil_store::SYSTEM_TENANT,
        customer_id: None,
        permissions: veil_store::Role::SysAdmin.permissions(),
    };
    t.store.start_key_rotation(&sysadmin).await.unwrap();
    t.store.continue_key_rotation().await.unwrap().unwrap();
    let acme = t.store.create_customer(&admin, "Customer A").await.unwrap();
    t.store.share(&admin, token.id, acme.id).await.unwrap();
    let integration = owner(OwnerType::Integration, "LORIOT");
    let body = json!({"name": "LORIOT", "type": "HTTP", "routingKey": "k-1"});
    t.store.save_owner(&admin, &integration, &body, &[]).await.unwrap();
    let chain = owner(OwnerType::RuleChain, "Forward");
    let link = OwnerLink {
        kind: OwnerType::Integration,
        target: integration.id,
        node_id: Some("n2".into()),
        node_name: Some("Downlink".into()),
        pointer: "/nodes/1/configuration/integrationId".into(),
    };
    t.store
        .save_owner_linked(&admin, &chain, &json!({"nodes": []}), &[reference("api-token")], &[link])
        .await
        .unwrap();
    let audit = |store: &veil_store::Store| {
        let store = store.clone();
        let admin = admin.clone();
        async move {
            let q = AuditQuery { page_size: 1000, ..Default::default() };
            let page = store.audit_logs(&admin, &q).await.unwrap();
            page.data.iter().map(|e| (e.id, e.action, e.target_name.clone())).collect::<Vec<_>>()
        }
    };
    let source_audit = audit(&t.store).await;
    assert!(source_audit.len() >= 5, "{source_audit:?}");

    let (_db, database) = PostgresDatabase::create();
    let veil_store::Database::Postgres(url) = database.clone() else { unreachable!() };
    let db_file = t.dir.path().join("veil.db");
    let mut steps = Vec::new();
    let report = migrate_to_postgres(&db_file, generated_key(t.dir.path()), &url, false, &mut |s| {
        steps.push(format!("{s:?}"))
    })
    .await
    .unwrap();
    assert_eq!(
        (
            report.rows("secrets"),
            report.rows("secret_history"),
            report.rows("secret_refs"),
            report.rows("owner_links"),
            report.rows("secret_pending"),
            report.rows("secret_probes"),
            report.rows("key_rotations"),
            report.rows("data_keys")
        ),
        (2, 2, 1, 1, 1, 1, 1, 1)
    );
    assert_eq!((report.secrets, report.values), (2, 4), "current and earlier values compared");
    assert!(steps.first().unwrap().starts_with("Counted"), "{steps:?}");
    assert!(steps.iter().any(|s| s.starts_with("Verifying")), "{steps:?}");

    // What a user of the copy sees.
    let copy = open_with(database.clone(), generated_key(t.dir.path())).await.unwrap();
    assert_eq!(audit(&copy).await, source_audit);
    assert_eq!(copy.resolve(tenant.id, "api-token").unwrap().expose_text(), Some("v3"));
    assert_eq!(copy.resolve(tenant.id, "ca-cert").unwrap().expose_bytes(), pem.as_slice());
    assert_eq!(copy.get(&admin, token.id).unwrap().version, 3);
    let (pending, value) = copy.open_pending(&admin, token.id).await.unwrap().unwrap();
    assert_eq!((pending.version, value.expose_text()), (4, Some("v4-pending")));
    assert_eq!(copy.probe_results(&admin, token.id, 4).await.unwrap(), [probe]);
    assert_eq!(copy.key_status(&sysadmin).await.unwrap().active_key, 2);
    assert_eq!(copy.usages(&admin, token.id).await.unwrap(), t.store.usages(&admin, token.id).await.unwrap());
    let e = copy.delete(&admin, token.id).await.unwrap_err();
    assert!(matches!(e, StoreError::InUse { .. }), "the delete guard holds in the copy: {e:?}");
    assert_eq!(copy.get(&admin, token.id).unwrap().shared_with, vec![acme.id]);
    let e = copy.delete_owner(&admin, OwnerType::Integration, integration.id).await.unwrap_err();
    assert!(matches!(e, StoreError::Needed { .. }), "links hold in the copy: {e:?}");
    // New entries continue after the copied ones.
    copy.create(&admin, text_secret("after-copy", "x")).await.unwrap();
    let newest = audit(&copy).await;
    assert!(newest[0].0 > source_audit.iter().map(|e| e.0).max().unwrap(), "{:?}", newest[0]);
    copy.close().await;

    // The target holds data now: refused, and left as it was; --replace copies over it.
    let e = migrate_to_postgres(&db_file, generated_key(t.dir.path()), &url, false, &mut |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already holds Veil data") && e.to_string().contains("--replace"), "{e}");
    t.store.create(&admin, text_secret("late", "l")).await.unwrap();
    let report =
        migrate_to_postgres(&db_file, generated_key(t.dir.path()), &url, true, &mut |_| {}).await.unwrap();
    assert_eq!(report.secrets, 3);
    let copy = open_with(database.clone(), generated_key(t.dir.path())).await.unwrap();
    assert_eq!(copy.secret_count(), 3, "the copy replaced what the target held (after-copy is gone)");
    assert!(copy.find(&admin, "after-copy").is_none());
    copy.close().await;

    // A wrong master key is refused before anything is copied.
    let e = migrate_to_postgres(&db_file, explicit_key(9), &url, true, &mut |_| {}).await.unwrap_err();
    assert!(matches!(e, StoreError::WrongMasterKey), "{e:?}");
    let e = migrate_to_postgres(&t.dir.path().join("nothing.db"), explicit_key(9), &url, true, &mut |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().ends_with("nothing.db: no Veil database there"), "{e}");
}
