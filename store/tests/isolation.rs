use serde_json::json;
use uuid::Uuid;
use veil_store::{ChangeKind, Owner, OwnerType, SecretRef, SecretUpdate, StoreError, TenantId};
use veil_tests::{TempStore, admin_of, text_secret};

backend_tests! {
    #[tokio::test]
    async fn a_second_tenant_sees_nothing_of_the_first(t: TempStore) {
        let secret = t.text("shared-name", "tenant-a-value").await;
        let other = admin_of(TenantId::new_random());

        assert_eq!(t.store.list(&other, &Default::default()).unwrap().total_elements, 0);
        assert!(matches!(t.store.get(&other, secret.id), Err(StoreError::NotFound { .. })));
        assert!(t.store.find(&other, "shared-name").is_none());
        let upd = SecretUpdate { value: Some("stolen".into()), ..Default::default() };
        assert!(matches!(t.store.update(&other, secret.id, upd).await, Err(StoreError::NotFound { .. })));
        assert!(matches!(t.store.delete(&other, secret.id).await, Err(StoreError::NotFound { .. })));
        assert!(matches!(t.store.usages(&other, secret.id).await, Err(StoreError::NotFound { .. })));
        let owner =
            Owner { kind: OwnerType::RuleChain, id: Uuid::new_v4(), name: "x".into(), customer_id: None };
        let r = SecretRef {
            secret_name: "shared-name".into(),
            node_id: None,
            node_name: None,
            pointer: "/p".into(),
        };
        let e = t.store.save_owner(&other, &owner, &json!({}), &[r]).await.unwrap_err();
        assert!(matches!(e, StoreError::UnknownSecrets(_)), "{e:?}");

        // The other tenant can use the same name for its own secret.
        t.store.create(&other, text_secret("shared-name", "tenant-b-value")).await.unwrap();
        assert_eq!(
            t.store.resolve(t.admin.tenant_id, "shared-name").unwrap().expose_text(),
            Some("tenant-a-value")
        );
        assert_eq!(
            t.store.resolve(other.tenant_id, "shared-name").unwrap().expose_text(),
            Some("tenant-b-value")
        );
        assert_eq!(t.store.list(&t.admin, &Default::default()).unwrap().total_elements, 1);
    }
}

backend_tests! {
    #[tokio::test]
    async fn list_sorts_by_name_pages_and_searches(t: TempStore) {
        for name in ["delta", "Alpha", "charlie", "bravo", "echo-token"] {
            t.text(name, "v").await;
        }
        let q = |page, page_size, search: Option<&str>| veil_store::ListQuery {
            page,
            page_size,
            text_search: search.map(str::to_owned),
        };
        let first = t.store.list(&t.admin, &q(0, 2, None)).unwrap();
        let names: Vec<_> = first.data.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Alpha", "bravo"]);
        assert_eq!((first.total_elements, first.total_pages, first.has_next), (5, 3, true));
        let last = t.store.list(&t.admin, &q(2, 2, None)).unwrap();
        assert_eq!((last.data.len(), last.has_next), (1, false));
        let found = t.store.list(&t.admin, &q(0, 20, Some("TOKEN"))).unwrap();
        assert_eq!(found.data.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["echo-token"]);
        let e = t.store.list(&t.admin, &q(0, 0, None)).unwrap_err();
        assert_eq!(e.to_string(), "pageSize: must be between 1 and 1000");
    }
}

backend_tests! {
    #[tokio::test]
    async fn committed_changes_are_published(t: TempStore) {
        let mut events = t.store.subscribe();
        let info = t.text("api-token", "one").await;
        let value = SecretUpdate { value: Some("two".into()), ..Default::default() };
        t.store.update(&t.admin, info.id, value).await.unwrap();
        let description = SecretUpdate { description: Some("d".into()), ..Default::default() };
        t.store.update(&t.admin, info.id, description).await.unwrap();
        // A refused change publishes nothing.
        let _ = t.store.create(&t.admin, text_secret("api-token", "dup")).await.unwrap_err();
        t.store.delete(&t.admin, info.id).await.unwrap();
        let mut kinds = Vec::new();
        while let Ok(e) = events.try_recv() {
            assert_eq!(
                (e.secret_id, e.name.as_str(), e.tenant_id),
                (info.id, "api-token", t.admin.tenant_id)
            );
            kinds.push(e.kind);
        }
        assert_eq!(
            kinds,
            [
                ChangeKind::Created,
                ChangeKind::ValueUpdated(2),
                ChangeKind::DescriptionUpdated,
                ChangeKind::Deleted
            ]
        );
    }
}

backend_tests! {
    /// A caller that stops waiting (a client disconnecting) must not leave the database and the index
    /// out of step: what a restart finds is what was listed before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_abandoned_by_their_caller_still_complete(t: TempStore) {
        for i in 0..60 {
            let create = t.store.create(&t.admin, text_secret(&format!("s{i}"), "v"));
            let _ = tokio::time::timeout(std::time::Duration::from_micros(50 * (i % 5)), create).await;
        }
        // The detached creates finish (all of them), so that there are 20 secrets to delete below
        // however slowly the database commits.
        let query = veil_store::ListQuery { page_size: 1000, ..Default::default() };
        veil_tests::eventually("every detached create to finish", async || {
            (t.store.list(&t.admin, &query).unwrap().total_elements == 60).then_some(())
        })
        .await;
        let ids: Vec<_> = t.store.list(&t.admin, &query).unwrap().data.into_iter().map(|s| s.id).collect();
        for id in ids.iter().take(20) {
            let _ = tokio::time::timeout(std::time::Duration::from_micros(30), t.store.delete(&t.admin, *id))
                .await;
        }
        // Let the detached deletes finish, then compare with what the database holds after a
        // restart.
        veil_tests::eventually("every detached write to finish", async || {
            (t.store.list(&t.admin, &query).unwrap().total_elements == 40).then_some(())
        })
        .await;
        let before: Vec<String> = t
            .store
            .list(&t.admin, &veil_store::ListQuery { page_size: 1000, ..Default::default() })
            .unwrap()
            .data
            .into_iter()
            .map(|s| s.name)
            .collect();
        let admin = t.admin.clone();
        let t = t.reopen().await;
        let after: Vec<String> = t
            .store
            .list(&admin, &veil_store::ListQuery { page_size: 1000, ..Default::default() })
            .unwrap()
            .data
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(before, after);
        assert_eq!(after.len(), 40, "every create completed and the first 20 deletes too");
    }
}
