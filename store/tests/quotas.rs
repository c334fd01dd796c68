//! Per-tenant quotas counted in the transaction that inserts: a burst of concurrent creates,
//! spread over two store instances on one database, ends exactly at the quota, and every refusal
//! names the limit.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;
use veil_store::{
    Actor, Grant, Limits, ListQuery, NewUser, Operation, Owner, OwnerType, Resource, SecretUpdate,
    SecretValue, Store, StoreError, UserId,
};
use veil_tests::{TempStore, file_secret, text_secret};

/// Runs `n` creates at once, alternating between `a` and `b`; returns how many succeeded and the
/// refusals' messages.
async fn burst<F, Fut>(a: &Store, b: &Store, n: usize, create: F) -> (usize, Vec<String>)
where
    F: Fn(Store, usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let barrier = Arc::clone(&barrier);
        let work = create(store, i);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            work.await
        }));
    }
    let mut made = 0;
    let mut refused = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => made += 1,
            Err(StoreError::LimitReached(message)) => refused.push(message),
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    (made, refused)
}

fn limits() -> Limits {
    Limits {
        max_chains_per_tenant: 5,
        max_integrations_per_tenant: 3,
        max_secrets_per_tenant: 4,
        max_users_per_tenant: 3,
        max_roles_per_tenant: 2,
        max_customers_per_tenant: 2,
        ..Limits::default()
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_creates_stop_exactly_at_each_quota(t: TempStore) {
        let (a, b) = (t.open_instance_with(limits()).await, t.open_instance_with(limits()).await);
        // A tenant with its row (customers, users and roles belong to one).
        let tenant = t.bootstrap.create_tenant("Quota Corp").await.unwrap();
        let admin = Actor::tenant_admin(tenant.id, UserId::new_random(), "admin");

        let actor = admin.clone();
        let (made, refused) = burst(&a, &b, 24, move |store, i| {
            let actor = actor.clone();
            async move {
                let owner = Owner { kind: OwnerType::RuleChain, id: Uuid::new_v4(), name: format!("c{i}"), customer_id: None };
                store.save_owner(&actor, &owner, &json!({"name": format!("c{i}")}), &[]).await
            }
        })
        .await;
        assert_eq!(made, 5, "{refused:?}");
        assert!(refused[0].starts_with("limit maxChainsPerTenant (5) exceeded"), "{}", refused[0]);
        // Saving an existing chain again is not a new one.
        let chains = a.owners(&admin, OwnerType::RuleChain).await.unwrap();
        assert_eq!(chains.len(), 5);
        let first = &chains[0].owner;
        a.save_owner(&admin, first, &json!({"name": "again"}), &[]).await.unwrap();

        let actor = admin.clone();
        let (made, refused) = burst(&a, &b, 12, move |store, i| {
            let actor = actor.clone();
            async move {
                let owner = Owner { kind: OwnerType::Integration, id: Uuid::new_v4(), name: format!("i{i}"), customer_id: None };
                store.save_owner(&actor, &owner, &json!({"name": format!("i{i}")}), &[]).await
            }
        })
        .await;
        assert_eq!(made, 3, "{refused:?}");
        assert!(refused[0].contains("maxIntegrationsPerTenant (3)"), "{}", refused[0]);

        let actor = admin.clone();
        let (made, refused) = burst(&a, &b, 16, move |store, i| {
            let actor = actor.clone();
            async move { store.create(&actor, text_secret(&format!("s{i}"), "value")).await.map(|_| ()) }
        })
        .await;
        assert_eq!(made, 4, "{refused:?}");
        assert!(refused[0].contains("maxSecretsPerTenant (4)"), "{}", refused[0]);

        let actor = admin.clone();
        let (made, refused) = burst(&a, &b, 8, move |store, i| {
            let actor = actor.clone();
            async move { store.create_customer(&actor, &format!("customer {i}")).await.map(|_| ()) }
        })
        .await;
        assert_eq!(made, 2, "{refused:?}");
        assert!(refused[0].contains("maxCustomersPerTenant (2)"), "{}", refused[0]);

        let actor = admin.clone();
        let (made, refused) = burst(&a, &b, 8, move |store, i| {
            let actor = actor.clone();
            async move {
                let grants = vec![Grant { resource: Resource::Secret, operations: vec![Operation::Read] }];
                store.create_role(&actor, &format!("role {i}"), grants).await.map(|_| ())
            }
        })
        .await;
        assert_eq!(made, 2, "{refused:?}");
        assert!(refused[0].contains("maxRolesPerTenant (2)"), "{}", refused[0]);

        let actor = admin.clone();
        let (made, refused) = burst(&a, &b, 10, move |store, i| {
            let actor = actor.clone();
            async move {
                let user = NewUser {
                    username: format!("user-{i}-{}", Uuid::new_v4().simple()),
                    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
                    customer_id: None,
                    roles: vec!["TENANT_ADMIN".into()],
                };
                store.create_user_as(&actor, user).await.map(|_| ())
            }
        })
        .await;
        assert_eq!(made, 3, "{refused:?}");
        assert!(refused[0].contains("maxUsersPerTenant (3)"), "{}", refused[0]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn secret_bytes_are_counted_on_create_and_on_a_new_value(t: TempStore) {
        let limits = Limits { max_secret_bytes_per_tenant: 300_000, ..Limits::default() };
        let (a, b) = (t.open_instance_with(limits).await, t.open_instance_with(limits).await);
        let admin = t.admin.clone();
        let actor = admin.clone();
        let (made, refused) = burst(&a, &b, 6, move |store, i| {
            let actor = actor.clone();
            async move { store.create(&actor, file_secret(&format!("f{i}"), vec![b'x'; 100_000])).await.map(|_| ()) }
        })
        .await;
        assert_eq!(made, 2, "{refused:?}");
        assert!(refused[0].starts_with("limit maxSecretBytesPerTenant (300000) exceeded"), "{}", refused[0]);
        // A larger value for one of them goes past the bytes too: refused, the old value kept.
        // (On SQLite an instance knows only the secrets it made: take one from the one that made it.)
        let (a, mut listed) = [&a, &b]
            .into_iter()
            .map(|store| (store, store.list(&admin, &ListQuery::default()).unwrap().data))
            .find(|(_, listed)| !listed.is_empty())
            .unwrap();
        let info = listed.remove(0);
        let bigger = SecretUpdate { value: Some(SecretValue::new(vec![b'y'; 250_000])), ..Default::default() };
        let err = a.update(&admin, info.id, bigger).await.unwrap_err();
        assert!(matches!(err, StoreError::LimitReached(_)), "{err}");
        assert_eq!(a.resolve(admin.tenant_id, &info.name).unwrap().expose_bytes(), vec![b'x'; 100_000].as_slice());
        // A value of the same size keeps the old one as an earlier version, which counts too.
        let same = || SecretValue::new(vec![b'z'; 100_000]);
        let err = a.update(&admin, info.id, SecretUpdate { value: Some(same()), ..Default::default() }).await;
        assert!(matches!(err, Err(StoreError::LimitReached(_))), "{err:?}");
        // Keeping only the current version makes room.
        let one = SecretUpdate { value: Some(same()), max_versions: Some(1), ..Default::default() };
        assert_eq!(a.update(&admin, info.id, one).await.unwrap().version, 2);
    }
}

backend_tests! {
    #[tokio::test]
    async fn ended_sessions_kept_per_account_are_bounded(t: TempStore) {
        let tenant = t.bootstrap.create_tenant("Sessions Corp").await.unwrap();
        let admin = Actor::tenant_admin(tenant.id, UserId::new_random(), "admin");
        let user = NewUser {
            username: format!("lou-{}", Uuid::new_v4().simple()),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
            customer_id: None,
            roles: vec!["SECRET_MANAGER".into()],
        };
        let info = t.store.create_user_as(&admin, user).await.unwrap();
        let lou = Actor { user_id: info.id, ..admin.clone() };
        let expires = veil_store::now_ms() + 3_600_000;
        for i in 0..1000 {
            t.store.revoke_session(&lou, &format!("sid-{i}"), expires).await.unwrap();
        }
        let session = t.store.session(info.id).await.unwrap().unwrap();
        assert_eq!(session.revoked.len(), 1000);
        assert_eq!(session.tokens_valid_after, 0);
        // One more: every session of the account ends, and the list starts again empty.
        t.store.revoke_session(&lou, "sid-1000", expires).await.unwrap();
        let session = t.store.session(info.id).await.unwrap().unwrap();
        assert!(session.revoked.is_empty());
        assert!(session.tokens_valid_after > 0);
    }

    #[tokio::test]
    async fn a_deleted_secret_gives_back_exactly_its_bytes_and_its_place(t: TempStore) {
        let limits = Limits { max_secret_bytes_per_tenant: 300_000, max_secrets_per_tenant: 4, ..Limits::default() };
        let store = t.open_instance_with(limits).await;
        let admin = t.admin.clone();
        // Each value is kept encrypted: its bytes and a 16-byte tag (99,016 bytes here).
        let file = |name: &str, len: usize| file_secret(name, vec![b'v'; len]);
        let f0 = store.create(&admin, file("f0", 99_000)).await.unwrap();
        // A second value keeps the first as an earlier version: two values kept.
        let second = SecretUpdate { value: Some(SecretValue::new(vec![b'w'; 99_000])), ..Default::default() };
        store.update(&admin, f0.id, second).await.unwrap();
        store.create(&admin, file("f1", 99_000)).await.unwrap();
        let err = store.create(&admin, file("f2", 99_000)).await.unwrap_err();
        assert!(err.to_string().contains("maxSecretBytesPerTenant (300000)"), "{err}");
        // f0 goes with its earlier value: exactly its two values are free again.
        store.delete(&admin, f0.id).await.unwrap();
        store.create(&admin, file("f2", 99_000)).await.unwrap();
        store.create(&admin, file("f3", 99_000)).await.unwrap();
        // 297,048 bytes kept: exactly 2,952 more fit (a 2,936-byte value and its tag), not one more.
        let err = store.create(&admin, file("f4", 2_937)).await.unwrap_err();
        assert!(err.to_string().contains("would have 300001 bytes"), "{err}");
        store.create(&admin, file("f4", 2_936)).await.unwrap();
        let err = store.create(&admin, text_secret("f5", "x")).await.unwrap_err();
        assert!(err.to_string().contains("maxSecretsPerTenant (4)"), "{err}");
        // Another tenant counts from zero.
        let other = veil_tests::admin_of(veil_store::TenantId::new_random());
        store.create(&other, file_secret("g0", vec![b'g'; 250_000])).await.unwrap();
    }
}
