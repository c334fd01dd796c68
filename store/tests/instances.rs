//! Two stores on one database, as two `veil` instances would open it. Whatever one has not heard of
//! yet (on SQLite never, on PostgreSQL until the change feed brings it) the database itself must
//! refuse: a stale version, a taken name, a deleted secret, a deleted tenant, a withdrawn share.
//! The racing tests and the change feed are PostgreSQL's: SQLite serves one instance.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;
use veil_store::{Actor, Owner, OwnerType, Role, SYSTEM_TENANT, SecretRef, SecretUpdate, StoreError, UserId};
use veil_tests::{TempStore, text_secret};

fn chain(name: &str) -> Owner {
    Owner { kind: OwnerType::RuleChain, id: Uuid::new_v4(), name: name.into(), customer_id: None }
}

fn reference(secret: &str) -> SecretRef {
    SecretRef {
        secret_name: secret.into(),
        node_id: Some("n1".into()),
        node_name: Some("Call".into()),
        pointer: "/nodes/0/configuration/credentials/token".into(),
    }
}

/// Whether a write was refused because its tenant is gone.
fn gone<T>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::NotFound { kind: "tenant", .. }))
}

/// A store with a real tenant row and its administrator, and a system administrator.
async fn tenant_store(t: &TempStore) -> (Actor, Actor) {
    let tenant = t.bootstrap.create_tenant("Acme Corp").await.unwrap();
    let admin = Actor::tenant_admin(tenant.id, UserId::new_random(), "admin");
    t.store.ensure_system_tenant().await.unwrap();
    let sys = Actor { tenant_id: SYSTEM_TENANT, permissions: Role::SysAdmin.permissions(), ..admin.clone() };
    (admin, sys)
}

/// The second instance still holds version 1: its change is refused, never applied over the
/// first one's. (SQLite: a second store on the file hears nothing of the first one's writes. On
/// PostgreSQL the change feed tells it within milliseconds — see the last test — and the same
/// check in the `UPDATE`'s `WHERE` refuses whatever still arrives stale.)
#[tokio::test]
async fn a_change_based_on_a_stale_version_is_refused() {
    let t = TempStore::sqlite().await;
    let info = t.text("api-token", "one").await;
    let other = t.open_instance().await;
    let value = |v: &str| SecretUpdate { value: Some(v.into()), ..Default::default() };
    t.store.update(&t.admin, info.id, value("two")).await.unwrap();
    let e = other.update(&t.admin, info.id, value("three")).await.unwrap_err();
    assert!(matches!(&e, StoreError::Conflict(n) if n == "api-token"), "{e:?}");
    assert_eq!(e.to_string(), "secret 'api-token' was changed concurrently, try again");
    let described = SecretUpdate { description: Some("d".into()), ..Default::default() };
    let e = other.update(&t.admin, info.id, described).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    other.close().await;
    let t = t.reopen().await;
    assert_eq!(t.store.resolve(t.admin.tenant_id, "api-token").unwrap().expose_text(), Some("two"));
    let info = t.store.get(&t.admin, info.id).unwrap();
    assert_eq!((info.version, info.description.as_str()), (2, ""));
}

/// A list change keeps the version: another instance's write based on the row before it (a
/// new description, here) is refused, so it cannot put the old allowed destinations back.
#[tokio::test]
async fn a_stale_write_cannot_undo_a_narrowed_destination_list() {
    let t = TempStore::sqlite().await;
    let info = t.text("api-token", "one").await;
    let other = t.open_instance().await;
    let narrowed =
        SecretUpdate { allowed_destinations: Some(vec!["api.example.com".into()]), ..Default::default() };
    assert_eq!(t.store.update(&t.admin, info.id, narrowed).await.unwrap().version, 1);
    let described = SecretUpdate { description: Some("stale".into()), ..Default::default() };
    let e = other.update(&t.admin, info.id, described).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    other.close().await;
    let t = t.reopen().await;
    let info = t.store.get(&t.admin, info.id).unwrap();
    assert_eq!(
        (info.allowed_destinations, info.description.as_str()),
        (vec!["api.example.com".to_owned()], "")
    );
}

backend_tests! {
    /// A routing key is the database's to give: another instance saving a second integration
    /// with the same key is refused (409 `routing_key_taken` through the API); re-saving the
    /// integration that holds it, or a third one with another key, is fine.
    #[tokio::test]
    async fn a_routing_key_is_unique_across_instances(t: TempStore) {
        let other = t.open_instance().await;
        let integration = |name: &str| Owner { kind: OwnerType::Integration, ..chain(name) };
        let body = |key: &str| json!({"name": "x", "type": "HTTP", "routingKey": key});
        let first = integration("first");
        t.store.save_owner(&t.admin, &first, &body("k-1"), &[]).await.unwrap();
        let e = other.save_owner(&t.admin, &integration("second"), &body("k-1"), &[]).await.unwrap_err();
        assert!(matches!(&e, StoreError::RoutingKeyTaken(k) if k == "k-1"), "{e:?}");
        assert_eq!(e.to_string(), "routingKey: 'k-1' is used by another integration");
        other.save_owner(&t.admin, &first, &body("k-1"), &[]).await.unwrap();
        other.save_owner(&t.admin, &integration("third"), &body("k-2"), &[]).await.unwrap();
        // A chain's body may say anything: only integrations hold routing keys.
        other.save_owner(&t.admin, &chain("chain"), &body("k-1"), &[]).await.unwrap();
        other.close().await;
    }


    /// Names are unique per tenant in the database, not only in each instance's memory.
    #[tokio::test]
    async fn a_name_taken_on_another_instance_is_refused(t: TempStore) {
        let other = t.open_instance().await;
        t.text("api-token", "one").await;
        let e = other.create(&t.admin, text_secret("api-token", "two")).await.unwrap_err();
        assert!(matches!(&e, StoreError::NameTaken(n) if n == "api-token"), "{e:?}");
        other.close().await;
        let t = t.reopen().await;
        assert_eq!(t.store.resolve(t.admin.tenant_id, "api-token").unwrap().expose_text(), Some("one"));
        assert_eq!(t.store.list(&t.admin, &Default::default()).unwrap().total_elements, 1);
    }

    /// A secret deleted on one instance cannot be referenced from the other, which still lists it.
    #[tokio::test]
    async fn a_save_referencing_a_secret_deleted_on_another_instance_is_refused(t: TempStore) {
        let info = t.text("api-token", "v").await;
        let other = t.open_instance().await;
        t.store.delete(&t.admin, info.id).await.unwrap();
        let owner = chain("late");
        let e = other.save_owner(&t.admin, &owner, &json!({}), &[reference("api-token")]).await.unwrap_err();
        assert!(matches!(&e, StoreError::UnknownSecrets(n) if n == &["api-token"]), "{e:?}");
        assert!(matches!(
            other.owner(&t.admin, OwnerType::RuleChain, owner.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(other.dangling_references().await.unwrap(), 0);
    }
}

/// Takers of one lease doing its work if nobody did it moments ago: concurrent takers on the
/// given stores do it exactly once and the others take its outcome; a new fingerprint or an old
/// record means doing it again. Returns how often the work ran.
async fn lease_takers(
    stores: &[veil_store::Store],
    owner: Uuid,
    fingerprint: &str,
    fresh: std::time::Duration,
) -> usize {
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, ran, fingerprint) =
            (stores[i % stores.len()].clone(), Arc::clone(&ran), fingerprint.to_owned());
        tasks.push(tokio::spawn(async move {
            let lease = store.lease(owner, "start").await.unwrap();
            match lease.outcome(&fingerprint, fresh) {
                Some(outcome) => outcome,
                None => {
                    ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    lease.record(&fingerprint, Some("401 from LORIOT")).await.unwrap();
                    Err("401 from LORIOT".to_owned())
                }
            }
        }));
    }
    for task in tasks {
        assert_eq!(
            task.await.unwrap(),
            Err("401 from LORIOT".to_owned()),
            "every taker sees the one outcome"
        );
    }
    ran.load(std::sync::atomic::Ordering::SeqCst)
}

backend_tests! {
    /// Work leased for a configuration runs once among concurrent takers, who share its outcome;
    /// it runs again for another fingerprint or once the record is older than asked; the record
    /// goes with its configuration.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leased_work_runs_once_and_its_outcome_is_shared(t: TempStore) {
        use std::time::Duration;
        let owner = chain("LORIOT");
        t.store.save_owner(&t.admin, &owner, &json!({}), &[]).await.unwrap();
        let stores = [t.store.clone()];
        assert_eq!(lease_takers(&stores, owner.id, "v1", Duration::from_secs(10)).await, 1);
        assert_eq!(lease_takers(&stores, owner.id, "v1", Duration::from_secs(10)).await, 0);
        assert_eq!(lease_takers(&stores, owner.id, "v2", Duration::from_secs(10)).await, 1);
        assert_eq!(lease_takers(&stores, owner.id, "v2", Duration::ZERO).await, 8, "a stale record is not taken");
        let lease = t.store.lease(owner.id, "start").await.unwrap();
        lease.record("v3", None).await.unwrap();
        let lease = t.store.lease(owner.id, "start").await.unwrap();
        assert_eq!(lease.outcome("v3", Duration::from_secs(10)), Some(Ok(())));
        drop(lease);
        t.store.delete_owner(&t.admin, OwnerType::RuleChain, owner.id).await.unwrap();
        let lease = t.store.lease(owner.id, "start").await.unwrap();
        assert_eq!(lease.outcome("v3", Duration::from_secs(10)), None, "the record went with its configuration");
        assert!(lease.record("v3", None).await.is_err(), "nothing is recorded for a deleted configuration");
    }
}

/// The same across instances: eight takers spread over two instances do the work once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn postgres_leased_work_runs_once_across_instances() {
    use std::time::Duration;
    let t = TempStore::postgres().await;
    let owner = chain("LORIOT");
    t.store.save_owner(&t.admin, &owner, &json!({}), &[]).await.unwrap();
    let stores = [t.store.clone(), t.open_instance().await];
    assert_eq!(lease_takers(&stores, owner.id, "v1", Duration::from_secs(10)).await, 1);
    assert_eq!(lease_takers(&stores, owner.id, "v2", Duration::from_secs(10)).await, 1);
    assert_eq!(lease_takers(&stores, owner.id, "v2", Duration::ZERO).await, 8);
}

/// Saves on one instance and deletes of the same secret on another race. Each pair has exactly
/// one winner, no reference to a deleted secret remains, and a third instance loads exactly the
/// secrets whose save won.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn postgres_saves_and_deletes_on_two_instances_race_without_dangling_references() {
    const ROUNDS: usize = 100;
    let t = TempStore::postgres().await;
    let mut secrets = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let name = format!("raced-{round}");
        secrets.push((t.text(&name, "v").await.id, name));
    }
    let (one, two) = (t.store.clone(), Arc::new(t.open_instance().await));
    let mut saves_won = Vec::new();
    for (round, (id, name)) in secrets.iter().enumerate() {
        let saver = {
            let (store, admin, name) = (one.clone(), t.admin.clone(), name.clone());
            let owner = chain(&format!("chain-{round}"));
            tokio::spawn(
                async move { store.save_owner(&admin, &owner, &json!({}), &[reference(&name)]).await },
            )
        };
        let deleter = {
            let (store, admin, id) = (Arc::clone(&two), t.admin.clone(), *id);
            // The save reads twice before it writes: a delete that starts 0-3 ms later meets it
            // at every stage.
            let late = std::time::Duration::from_micros(750 * (round as u64 % 5));
            tokio::spawn(async move {
                tokio::time::sleep(late).await;
                store.delete(&admin, id).await
            })
        };
        match (saver.await.unwrap(), deleter.await.unwrap()) {
            (Ok(()), Err(StoreError::InUse { .. })) => saves_won.push(name.clone()),
            (Err(StoreError::UnknownSecrets(n)), Ok(())) if n == [name.clone()] => {}
            other => panic!("round {round}: exactly one must win, got {other:?}"),
        }
    }
    assert_eq!(one.dangling_references().await.unwrap(), 0);
    let third = t.open_instance().await;
    let query = veil_store::ListQuery { page_size: 1000, ..Default::default() };
    let mut left: Vec<String> =
        third.list(&t.admin, &query).unwrap().data.into_iter().map(|s| s.name).collect();
    left.sort();
    saves_won.sort();
    assert_eq!(left, saves_won);
    eprintln!("saves won {}, deletes won {}", saves_won.len(), ROUNDS - saves_won.len());
}

/// One instance deletes a tenant while another, which has not heard of it, keeps writing for the
/// tenant: each write lands before the delete (and goes with the tenant) or is refused after it;
/// nothing of the tenant remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn postgres_writes_racing_a_tenant_delete_on_another_instance_leave_nothing_behind() {
    let t = TempStore::postgres().await;
    let (admin, sys) = tenant_store(&t).await;
    let other = t.open_instance().await;
    let writer = {
        let (other, admin) = (other.clone(), admin.clone());
        tokio::spawn(async move {
            let mut refused = 0;
            for i in 0..60 {
                let created = other.create(&admin, text_secret(&format!("s{i}"), "v")).await;
                let saved = other.save_owner(&admin, &chain(&format!("c{i}")), &json!({}), &[]).await;
                match (&created, &saved) {
                    (Ok(_), Ok(())) => {}
                    (Ok(_), Err(_)) if gone(&saved) => refused += 1,
                    (Err(_), Err(_)) if gone(&created) && gone(&saved) => refused += 1,
                    other => panic!("write {i}: {other:?}"),
                }
            }
            refused
        })
    };
    veil_tests::eventually("the other instance to write", async || (other.secret_count() >= 5).then_some(()))
        .await;
    t.store.delete_tenant(&sys, admin.tenant_id).await.unwrap();
    let refused = writer.await.unwrap();
    assert!(refused > 0, "the writes after the delete are refused");
    let fresh = t.open_instance().await;
    assert_eq!(fresh.secret_count(), 0, "no secret of the deleted tenant remains");
    assert!(fresh.owners(&admin, OwnerType::RuleChain).await.unwrap().is_empty());
    assert!(fresh.tenants(&sys).await.unwrap().is_empty());
}

/// A share withdrawn on one instance: the other instance's customer user cannot reference the
/// secret any more, whether or not its change feed has delivered the unshare yet (the reference
/// write checks the share in the database, not in the index).
#[tokio::test]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn postgres_a_customer_cannot_reference_a_secret_unshared_on_another_instance() {
    let t = TempStore::postgres().await;
    let (admin, _) = tenant_store(&t).await;
    let secret = t.store.create(&admin, text_secret("shared", "v")).await.unwrap();
    let acme = t.store.create_customer(&admin, "Acme").await.unwrap();
    t.store.share(&admin, secret.id, acme.id).await.unwrap();
    let other = t.open_instance().await;
    t.store.unshare(&admin, secret.id, acme.id).await.unwrap();
    let customer = Actor {
        user_id: UserId::new_random(),
        username: "customer-user".into(),
        tenant_id: admin.tenant_id,
        customer_id: Some(acme.id),
        permissions: Role::CustomerUser.permissions(),
    };
    let owner = Owner { customer_id: Some(acme.id), ..chain("Acme chain") };
    let e = other.save_owner(&customer, &owner, &json!({}), &[reference("shared")]).await.unwrap_err();
    assert!(matches!(&e, StoreError::UnknownSecrets(n) if n == &["shared"]), "{e:?}");
    assert!(t.store.usages(&admin, secret.id).await.unwrap().is_empty());
}

/// The change feed: what one instance commits, the other applies without a restart — a new
/// secret, each rotation (the next resolve on the other instance returns the new value; the
/// delay over 200 rotations is printed), a deleted secret — and a lost listening connection is
/// followed by a full reload.
#[tokio::test]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn changes_through_one_instance_reach_the_other() {
    use std::time::{Duration, Instant};
    let t = TempStore::postgres().await;
    let b = t.open_instance().await;
    let mut events = b.subscribe();
    let tenant = t.admin.tenant_id;
    let info = t.text("api-token", "v1").await;
    let wait_for = |want: &'static str| {
        let b = b.clone();
        async move {
            let start = Instant::now();
            loop {
                if b.resolve(tenant, "api-token")
                    .ok()
                    .and_then(|v| v.expose_text().map(str::to_owned))
                    .as_deref()
                    == Some(want)
                {
                    return start.elapsed();
                }
                assert!(start.elapsed() < Duration::from_secs(10), "instance B never saw {want}");
                tokio::task::yield_now().await;
            }
        }
    };
    wait_for("v1").await;
    let created = events.recv().await.unwrap();
    assert_eq!((created.name.as_str(), created.kind), ("api-token", veil_store::ChangeKind::Created));

    let values: Vec<&'static str> = (0..200).map(|i| &*format!("rotated-{i}").leak()).collect();
    let mut delays = Vec::new();
    for value in &values {
        let update = SecretUpdate { value: Some((*value).into()), ..Default::default() };
        t.store.update(&t.admin, info.id, update).await.unwrap();
        delays.push(wait_for(value).await);
    }
    delays.sort();
    let (p50, p99) = (delays[delays.len() / 2], delays[delays.len() * 99 / 100]);
    println!(
        "propagation over {} rotations: p50 {p50:?}, p99 {p99:?}, max {:?}",
        delays.len(),
        delays.last().unwrap()
    );
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    assert_eq!(b.get(&t.admin, info.id).unwrap().version, 201);

    t.store.delete(&t.admin, info.id).await.unwrap();
    let start = Instant::now();
    while b.resolve(tenant, "api-token").is_ok() {
        assert!(start.elapsed() < Duration::from_secs(10), "instance B still resolves a deleted secret");
        tokio::task::yield_now().await;
    }
    assert!(matches!(b.get(&t.admin, info.id), Err(StoreError::NotFound { .. })));
    b.close().await;
}

/// Check-and-set across instances: in each round 20 writers, ten on each instance, change the
/// secret based on the version they read. Exactly one wins per round; every other one is told
/// the version moved on (never a generic conflict); no version number is used twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn postgres_check_and_set_lets_one_writer_win_per_version_across_instances() {
    const ROUNDS: i64 = 5;
    let t = TempStore::postgres().await;
    let info = t.text("api-token", "v1").await;
    let stores = [t.store.clone(), t.open_instance().await];
    for round in 1..=ROUNDS {
        // The writers read the version on the first instance; the second may not have heard of
        // it yet (it asks the database before refusing).
        let (store, admin) = (stores[0].clone(), t.admin.clone());
        veil_tests::eventually("the version to reach the first instance", async || {
            (store.get(&admin, info.id).unwrap().version == round).then_some(())
        })
        .await;
        let mut writers = Vec::new();
        for writer in 0..20 {
            let (store, admin) = (stores[writer % 2].clone(), t.admin.clone());
            writers.push(tokio::spawn(async move {
                let update = SecretUpdate {
                    value: Some(format!("round-{round}-writer-{writer}").as_str().into()),
                    expected_version: Some(round),
                    ..Default::default()
                };
                store.update(&admin, info.id, update).await
            }));
        }
        let mut won = 0;
        for writer in writers {
            match writer.await.unwrap() {
                Ok(info) => {
                    assert_eq!(info.version, round + 1);
                    won += 1;
                }
                Err(StoreError::VersionMismatch { expected, current, .. }) => {
                    assert_eq!((expected, current), (round, round + 1));
                }
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
    let versions = t.store.versions(&t.admin, info.id, 0, 100).await.unwrap();
    let numbers: Vec<i64> = versions.data.iter().map(|v| v.version).collect();
    assert_eq!(numbers, (1..=ROUNDS + 1).rev().collect::<Vec<_>>());
}

/// A rollback on one instance is what the other one resolves next (the change feed), and both
/// list the same versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn postgres_a_rollback_on_one_instance_reaches_the_other() {
    let t = TempStore::postgres().await;
    let info = t.text("api-token", "one").await;
    let other = t.open_instance().await;
    let value = |v: &str| SecretUpdate { value: Some(v.into()), ..Default::default() };
    t.store.update(&t.admin, info.id, value("two")).await.unwrap();
    let tenant = t.admin.tenant_id;
    veil_tests::eventually("version 2 on the other instance", async || {
        (other.resolve(tenant, "api-token").unwrap().expose_text() == Some("two")).then_some(())
    })
    .await;
    // Rolled back on the other instance, based on the version it has.
    let rolled = other.rollback(&t.admin, info.id, 1, Some(2)).await.unwrap();
    assert_eq!(rolled.version, 3);
    veil_tests::eventually("the rollback on the first instance", async || {
        (t.store.resolve(tenant, "api-token").unwrap().expose_text() == Some("one")).then_some(())
    })
    .await;
    let here = t.store.versions(&t.admin, info.id, 0, 10).await.unwrap();
    let there = other.versions(&t.admin, info.id, 0, 10).await.unwrap();
    assert_eq!(here.data, there.data);
    assert_eq!(here.data[0].fingerprint, here.data[2].fingerprint, "version 3 holds version 1's value");
    // Masking on the first instance covers every kept value, the rolled-back-from one too.
    let masked = t.store.values_for_masking(tenant, "api-token").unwrap();
    let masked: Vec<&str> = masked.iter().map(|v| v.expose_text().unwrap()).collect();
    assert_eq!(masked, ["one", "two", "one"]);
}
