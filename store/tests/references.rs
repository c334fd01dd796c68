use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;
use veil_store::{Owner, OwnerType, SecretRef, StoreError};
use veil_tests::TempStore;

fn chain(name: &str) -> Owner {
    Owner { kind: OwnerType::RuleChain, id: Uuid::new_v4(), name: name.into(), customer_id: None }
}

fn node_ref(secret: &str, node: &str, pointer: &str) -> SecretRef {
    SecretRef {
        secret_name: secret.into(),
        node_id: Some(format!("{node}-id")),
        node_name: Some(node.into()),
        pointer: pointer.into(),
    }
}

backend_tests! {
    #[tokio::test]
    async fn usages_are_grouped_and_a_referenced_secret_cannot_be_deleted(t: TempStore) {
        let secret = t.text("loriot-password", "pw").await;
        let uplink = chain("Uplink");
        let body = json!({"nodes": [{"configuration": {"password": "$<secret:loriot-password>"}}]});
        t.store
            .save_owner(
                &t.admin,
                &uplink,
                &body,
                &[node_ref("loriot-password", "Notify", "/nodes/0/configuration/password")],
            )
            .await
            .unwrap();
        let integration = Owner {
            kind: OwnerType::Integration,
            id: Uuid::new_v4(),
            name: "LORIOT".into(),
            customer_id: None,
        };
        t.store
            .save_owner(
                &t.admin,
                &integration,
                &json!({}),
                &[SecretRef {
                    secret_name: "loriot-password".into(),
                    node_id: None,
                    node_name: None,
                    pointer: "/configuration/credentials/password".into(),
                }],
            )
            .await
            .unwrap();

        let usages = t.store.usages(&t.admin, secret.id).await.unwrap();
        assert_eq!(
            serde_json::to_value(&usages).unwrap(),
            json!({
                "RULE_CHAIN": [{"id": uplink.id, "name": "Uplink", "nodes": [
                    {"id": "Notify-id", "name": "Notify", "path": "/nodes/0/configuration/password"}]}],
                "INTEGRATION": [{"id": integration.id, "name": "LORIOT"}],
            })
        );

        let e = t.store.delete(&t.admin, secret.id).await.unwrap_err();
        assert!(matches!(&e, StoreError::InUse { name, .. } if name == "loriot-password"));
        assert_eq!(
            e.to_string(),
            "secret 'loriot-password' is in use by rule chain 'Uplink' (node 'Notify'), integration 'LORIOT'"
        );
        assert!(t.store.resolve(t.admin.tenant_id, "loriot-password").is_ok(), "still there");

        // The owner's stored document comes back as saved.
        assert_eq!(t.store.owner(&t.admin, OwnerType::RuleChain, uplink.id).await.unwrap().body, body);

        // Saving an owner again replaces its references; deleting it removes them.
        t.store.save_owner(&t.admin, &uplink, &json!({}), &[]).await.unwrap();
        t.store.delete_owner(&t.admin, OwnerType::Integration, integration.id).await.unwrap();
        assert!(t.store.usages(&t.admin, secret.id).await.unwrap().is_empty());
        t.store.delete(&t.admin, secret.id).await.unwrap();
        assert!(t.store.resolve(t.admin.tenant_id, "loriot-password").is_err());
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_save_that_references_missing_secrets_is_refused_listing_all_of_them(t: TempStore) {
        t.text("exists", "v").await;
        let owner = chain("C");
        let e = t
            .store
            .save_owner(
                &t.admin,
                &owner,
                &json!({}),
                &[
                    node_ref("nope-2", "A", "/a"),
                    node_ref("exists", "B", "/b"),
                    node_ref("nope-1", "C", "/c"),
                ],
            )
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "unknown secrets referenced: nope-1, nope-2");
        let e = t.store.owner(&t.admin, OwnerType::RuleChain, owner.id).await.unwrap_err();
        assert!(matches!(e, StoreError::NotFound { .. }), "nothing was saved");
    }
}

backend_tests! {
    /// Saves referencing a secret and deletes of it race; whatever the interleaving, exactly one of
    /// them wins and no reference to a deleted secret remains.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn saves_and_deletes_race_without_leaving_dangling_references(t: TempStore) {
        let t = Arc::new(t);
        let (mut saves_won, mut deletes_won) = (0, 0);
        for round in 0..150 {
            let name = format!("raced-{round}");
            let secret = t.text(&name, "v").await;
            let owner = chain(&format!("chain-{round}"));
            let saver = {
                let t = Arc::clone(&t);
                let name = name.clone();
                tokio::spawn(async move {
                    t.store.save_owner(&t.admin, &owner, &json!({}), &[node_ref(&name, "N", "/x")]).await
                })
            };
            let deleter = {
                let t = Arc::clone(&t);
                tokio::spawn(async move { t.store.delete(&t.admin, secret.id).await })
            };
            let (saved, deleted) = (saver.await.unwrap(), deleter.await.unwrap());
            match (&saved, &deleted) {
                (Ok(()), Err(StoreError::InUse { .. })) => saves_won += 1,
                (Err(StoreError::UnknownSecrets(n)), Ok(())) if n == &vec![name.clone()] => deletes_won += 1,
                other => panic!("round {round}: exactly one must win, got {other:?}"),
            }
            assert_eq!(t.store.resolve(t.admin.tenant_id, &name).is_ok(), saved.is_ok());
        }
        assert_eq!(t.store.dangling_references().await.unwrap(), 0);
        assert_eq!(saves_won + deletes_won, 150);
        eprintln!("saves won {saves_won}, deletes won {deletes_won}");
    }
}
