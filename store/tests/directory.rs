use uuid::Uuid;
use veil_store::{
    Actor, AuditQuery, Database, Grant, NewUser, Operation, Owner, OwnerType, Resource, Role, SecretRef,
    SecretUpdate, SecretValue, Store, StoreError, UseContext, UserRecord,
};
use veil_tests::{TempStore, assert_no_leak, text_secret};

/// `t` with a real tenant row (customers and users need one) and its administrator.
async fn tenant_store(t: TempStore) -> (TempStore, Actor) {
    let tenant = t.bootstrap.create_tenant("Acme Corp").await.unwrap();
    let admin = Actor::tenant_admin(tenant.id, veil_store::UserId::new_random(), "admin");
    (t, admin)
}

fn customer_actor(admin: &Actor, customer: veil_store::CustomerId) -> Actor {
    Actor {
        user_id: veil_store::UserId::new_random(),
        username: "customer-user".into(),
        tenant_id: admin.tenant_id,
        customer_id: Some(customer),
        permissions: Role::CustomerUser.permissions(),
    }
}

fn reference(name: &str) -> SecretRef {
    SecretRef {
        secret_name: name.into(),
        node_id: Some("n1".into()),
        node_name: Some("Call".into()),
        pointer: "/nodes/0/configuration/credentials/token".into(),
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_customer_sees_and_uses_only_shared_secrets_and_unsharing_in_use_is_refused(t: TempStore) {
        let (t, admin) = tenant_store(t).await;
        let shared = t.store.create(&admin, text_secret("shared", "v1")).await.unwrap();
        t.store.create(&admin, text_secret("private", "v2")).await.unwrap();
        let acme = t.store.create_customer(&admin, "Acme").await.unwrap();
        let customer = customer_actor(&admin, acme.id);

        assert!(matches!(t.store.get(&customer, shared.id), Err(StoreError::NotFound { .. })));
        let info = t.store.share(&admin, shared.id, acme.id).await.unwrap();
        assert_eq!(info.shared_with, vec![acme.id]);
        assert_eq!(t.store.get(&customer, shared.id).unwrap().name, "shared");
        assert!(t.store.find(&customer, "private").is_none());
        let listed = t.store.list(&customer, &Default::default()).unwrap();
        assert_eq!(listed.data.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["shared"]);
        // Customers never manage secrets, whatever they are given.
        let e = t
            .store
            .update(
                &customer,
                shared.id,
                veil_store::SecretUpdate { value: Some("x".into()), ..Default::default() },
            )
            .await;
        assert!(matches!(e, Err(StoreError::Forbidden(m)) if m == "missing permission SECRET:WRITE"));
        assert!(matches!(t.store.share(&customer, shared.id, acme.id).await, Err(StoreError::Forbidden(_))));

        // The customer's chain uses it: unsharing is refused with that chain listed.
        let chain = Owner {
            kind: OwnerType::RuleChain,
            id: Uuid::new_v4(),
            name: "Acme chain".into(),
            customer_id: Some(acme.id),
        };
        t.store.save_owner(&customer, &chain, &serde_json::json!({}), &[reference("shared")]).await.unwrap();
        match t.store.unshare(&admin, shared.id, acme.id).await {
            Err(StoreError::InUse { usages, .. }) => assert_eq!(usages.rule_chains[0].name, "Acme chain"),
            other => panic!("expected InUse, got {other:?}"),
        }
        // A customer cannot reference an unshared secret.
        let e = t.store.save_owner(&customer, &chain, &serde_json::json!({}), &[reference("private")]).await;
        assert!(matches!(e, Err(StoreError::UnknownSecrets(names)) if names == ["private"]));
        t.store.delete_owner(&customer, OwnerType::RuleChain, chain.id).await.unwrap();
        assert!(t.store.unshare(&admin, shared.id, acme.id).await.unwrap().shared_with.is_empty());
        assert!(t.store.find(&customer, "shared").is_none());
    }
}

backend_tests! {
    #[tokio::test]
    async fn roles_cannot_grant_more_than_their_creator_has_and_custom_roles_apply(t: TempStore) {
        let (t, admin) = tenant_store(t).await;
        let manager = Actor {
            permissions: Role::SecretManager
                .permissions()
                .with(Resource::Role, &[Operation::Create])
                .with(Resource::User, &[Operation::Create]),
            ..admin.clone()
        };
        let e = t
            .store
            .create_role(
                &manager,
                "rule-writer",
                vec![Grant { resource: Resource::RuleChain, operations: vec![Operation::Write] }],
            )
            .await;
        assert!(matches!(e, Err(StoreError::Forbidden(m)) if m.contains("cannot grant more")));
        let reader = t
            .store
            .create_role(
                &admin,
                "secret-reader",
                vec![Grant { resource: Resource::Secret, operations: vec![Operation::Read] }],
            )
            .await
            .unwrap();
        assert!(matches!(
            t.store.create_role(&admin, "TENANT_ADMIN", reader.permissions.clone()).await,
            Err(StoreError::InvalidInput(_))
        ));
        let e = t
            .store
            .create_user_as(
                &manager,
                NewUser {
                    username: "boss".into(),
                    password_hash: "h".into(),
                    customer_id: None,
                    roles: vec!["TENANT_ADMIN".into()],
                },
            )
            .await;
        assert!(matches!(e, Err(StoreError::Forbidden(_))), "{e:?}");
        let user = t
            .store
            .create_user_as(
                &admin,
                NewUser {
                    username: "reader".into(),
                    password_hash: "h".into(),
                    customer_id: None,
                    roles: vec!["secret-reader".into()],
                },
            )
            .await
            .unwrap();
        let record: UserRecord = t.store.user_by_id(user.id).await.unwrap().unwrap();
        let actor = t.store.actor_for(&record).await.unwrap();
        assert!(actor.may(Resource::Secret, Operation::Read));
        assert!(!actor.may(Resource::Secret, Operation::Use));
        let e = t.store.delete_role(&admin, reader.id).await;
        assert!(matches!(e, Err(StoreError::Needed { kind: veil_store::NeededKind::Role, .. })), "{e:?}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn uses_are_counted_per_secret_owner_and_minute_and_the_audit_log_holds_no_value(t: TempStore) {
        let (t, admin) = tenant_store(t).await;
        let secret = t.store.create(&admin, text_secret("api-token", "sup3r-s3cret-value")).await.unwrap();
        let chain = Uuid::new_v4();
        let context = UseContext { kind: OwnerType::RuleChain, id: chain, name: "Telemetry".into() };
        for _ in 0..3 {
            t.store.resolve_used_by(admin.tenant_id, "api-token", Some(&context)).unwrap();
        }
        // Resolving outside a configuration (the redactor learning values) is not a use.
        t.store.resolve(admin.tenant_id, "api-token").unwrap();
        t.store.delete(&admin, secret.id).await.unwrap();
        let page = t
            .store
            .audit_logs(
                &admin,
                &AuditQuery { secret_id: Some(secret.id), page_size: 50, ..Default::default() },
            )
            .await
            .unwrap();
        let actions: Vec<&str> = page.data.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions.iter().filter(|a| **a == "USE").count(), 1, "{actions:?}");
        for wanted in ["CREATE", "DELETE"] {
            assert!(actions.contains(&wanted), "{actions:?}");
        }
        let use_entry = page.data.iter().find(|e| e.action.as_str() == "USE").unwrap();
        assert_eq!(use_entry.actor_name, "RULE_CHAIN 'Telemetry'");
        assert_eq!(use_entry.details["count"], 3);
        assert_eq!(use_entry.actor_id.as_deref(), Some(chain.to_string().as_str()));
        let everything = serde_json::to_string(&page.data).unwrap();
        assert_no_leak(&everything, &["sup3r-s3cret-value"]);
        // Filtering by actor.
        let by_admin = t
            .store
            .audit_logs(
                &admin,
                &AuditQuery { actor: Some("admin".into()), page_size: 50, ..Default::default() },
            )
            .await
            .unwrap();
        assert!(by_admin.data.iter().all(|e| e.actor_name == "admin") && by_admin.total_elements == 2);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_page_of_secrets_learns_the_last_use_of_each_of_its_secrets_and_of_no_other(t: TempStore) {
        let (t, admin) = tenant_store(t).await;
        let (other, other_admin) = {
            let tenant = t.bootstrap.create_tenant("Other Corp").await.unwrap();
            (tenant.id, Actor::tenant_admin(tenant.id, veil_store::UserId::new_random(), "other"))
        };
        let mut ids = Vec::new();
        for name in ["a", "b", "c", "d"] {
            ids.push(t.store.create(&admin, text_secret(name, "v")).await.unwrap().id);
        }
        let theirs = t.store.create(&other_admin, text_secret("a", "v")).await.unwrap().id;
        let use_by = |tenant, name: &str| {
            let context = UseContext { kind: OwnerType::RuleChain, id: Uuid::new_v4(), name: "Chain".into() };
            t.store.resolve_used_by(tenant, name, Some(&context)).unwrap();
        };
        let before = veil_store::now_ms() / 60_000 * 60_000;
        // Two chains use "a", one uses "c", one "d" (not on the page), nothing uses "b"; the other
        // tenant uses its "a".
        use_by(admin.tenant_id, "a");
        use_by(admin.tenant_id, "a");
        use_by(admin.tenant_id, "c");
        use_by(admin.tenant_id, "d");
        use_by(other, "a");
        let used = t.store.last_used_among(&admin, &[ids[0], ids[1], ids[2], theirs]).await.unwrap();
        let mut keys: Vec<_> = used.keys().copied().collect();
        keys.sort_by_key(|id| ids.iter().position(|i| i == id));
        assert_eq!(keys, [ids[0], ids[2]], "the used ones of the page, not the other tenant's: {used:?}");
        assert!(used.values().all(|at| *at >= before && *at <= veil_store::now_ms()), "{used:?}");
        assert!(t.store.last_used_among(&admin, &[]).await.unwrap().is_empty());
        let all = t.store.last_used(&admin).await.unwrap();
        let mut everywhere: Vec<_> = all.keys().copied().collect();
        everywhere.sort_by_key(|id| ids.iter().position(|i| i == id));
        assert_eq!(everywhere, [ids[0], ids[2], ids[3]], "the whole tenant: {all:?}");
        assert_eq!(t.store.last_used_of(&admin, ids[1]).await.unwrap(), None);
        assert_eq!(t.store.last_used_of(&admin, ids[2]).await.unwrap(), used.get(&ids[2]).copied());
    }
}

backend_tests! {
    #[tokio::test]
    async fn deleting_a_tenant_removes_its_secrets_and_only_a_system_administrator_may(t: TempStore) {
        let (t, admin) = tenant_store(t).await;
        t.store.create(&admin, text_secret("api-token", "v")).await.unwrap();
        assert!(matches!(
            t.store.delete_tenant(&admin, admin.tenant_id).await,
            Err(StoreError::Forbidden(_))
        ));
        t.store.ensure_system_tenant().await.unwrap();
        let sys = Actor {
            tenant_id: veil_store::SYSTEM_TENANT,
            permissions: Role::SysAdmin.permissions(),
            ..admin.clone()
        };
        assert_eq!(
            t.store.tenants(&sys).await.unwrap().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["Acme Corp"]
        );
        assert!(matches!(t.store.list(&sys, &Default::default()), Err(StoreError::Forbidden(_))));
        t.store.delete_tenant(&sys, admin.tenant_id).await.unwrap();
        assert!(t.store.resolve(admin.tenant_id, "api-token").is_err());
        assert!(t.store.tenants(&sys).await.unwrap().is_empty());
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_user_manager_cannot_take_over_an_account_with_more_permissions(t: TempStore) {
        let (t, admin) = tenant_store(t).await;
        let helpdesk_role = vec![Grant {
            resource: Resource::User,
            operations: vec![Operation::Read, Operation::Write, Operation::Delete],
        }];
        t.store.create_role(&admin, "helpdesk", helpdesk_role).await.unwrap();
        let new_user = |name: &str, role: &str| NewUser {
            username: name.into(),
            password_hash: "h".into(),
            customer_id: None,
            roles: vec![role.into()],
        };
        let hd = t.store.create_user_as(&admin, new_user("hd", "helpdesk")).await.unwrap();
        let boss = t.store.create_user_as(&admin, new_user("boss", "TENANT_ADMIN")).await.unwrap();
        let peer = t.store.create_user_as(&admin, new_user("peer", "helpdesk")).await.unwrap();
        let hd_actor = t.store.actor_for(&t.store.user_by_id(hd.id).await.unwrap().unwrap()).await.unwrap();
        let new_password =
            veil_store::UserUpdate { password_hash: Some("taken-over".into()), ..Default::default() };
        let e = t.store.update_user(&hd_actor, boss.id, new_password.clone()).await;
        assert!(
            matches!(&e, Err(StoreError::Forbidden(m)) if m.contains("permissions you do not have")),
            "{e:?}"
        );
        assert!(matches!(t.store.delete_user(&hd_actor, boss.id).await, Err(StoreError::Forbidden(_))));
        // An equal is fine.
        t.store.update_user(&hd_actor, peer.id, new_password).await.unwrap();
        assert_eq!(t.store.user_by_id(boss.id).await.unwrap().unwrap().password_hash, "h");
    }
}

backend_tests! {
    #[tokio::test]
    async fn writes_in_flight_for_a_deleted_tenant_are_refused(t: TempStore) {
        let (t, admin) = tenant_store(t).await;
        t.store.ensure_system_tenant().await.unwrap();
        let sys = Actor {
            tenant_id: veil_store::SYSTEM_TENANT,
            permissions: Role::SysAdmin.permissions(),
            ..admin.clone()
        };
        t.store.delete_tenant(&sys, admin.tenant_id).await.unwrap();
        // The admin's request was authenticated before the delete and arrives after it.
        let e = t.store.create(&admin, text_secret("late", "v")).await;
        assert!(matches!(e, Err(StoreError::NotFound { kind: "tenant", .. })), "{e:?}");
        let chain =
            Owner { kind: OwnerType::RuleChain, id: Uuid::new_v4(), name: "late".into(), customer_id: None };
        let e = t.store.save_owner(&admin, &chain, &serde_json::json!({}), &[]).await;
        assert!(matches!(e, Err(StoreError::NotFound { kind: "tenant", .. })), "{e:?}");
    }
}

/// Makes the database refuse every new audit row (a trigger), as a crash or a full disk would
/// between a write and its record.
async fn refuse_audit_rows(database: &Database) {
    use sqlx::Connection as _;
    match database {
        Database::Sqlite(path) => {
            let url = format!("sqlite://{}", path.display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
                 BEGIN SELECT RAISE(ABORT, 'audit refused'); END",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            conn.close().await.unwrap();
        }
        Database::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(
                "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
                 FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            conn.close().await.unwrap();
        }
    }
}

backend_tests! {
    /// A secret write and its audit row commit together: when the row cannot be written, nothing
    /// is (before, the write committed and the missing record was only logged).
    #[tokio::test]
    async fn a_secret_write_and_its_audit_row_commit_together(t: TempStore) {
        let kept = t.store.create(&t.admin, text_secret("kept", "value-1")).await.unwrap();
        refuse_audit_rows(&t.database).await;
        assert!(t.store.create(&t.admin, text_secret("unrecorded", "value-2")).await.is_err());
        let update = SecretUpdate { value: Some(SecretValue::from("value-3")), ..Default::default() };
        assert!(t.store.update(&t.admin, kept.id, update).await.is_err());
        assert!(t.store.delete(&t.admin, kept.id).await.is_err());
        // As this instance and a fresh one (from the database) see it: nothing of the three.
        let check = |store: &Store| {
            assert!(store.find(&t.admin, "unrecorded").is_none(), "a create without its record");
            let now = store.find(&t.admin, "kept").expect("a delete without its record");
            assert_eq!(now.version, 1, "an update without its record");
        };
        check(&t.store);
        check(&t.open_instance().await);
    }
}
