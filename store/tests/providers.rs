//! Secret providers and linked secrets in the store, on both backends: a `files` provider, a
//! linked secret's value fetched and cached (a changed value is a new generation, earlier ones
//! stay masked), its guards, and a second instance that learns of both through the database.

use std::path::Path;

use serde_json::json;
use veil_store::{NewProvider, ProviderPolicy, SecretValue, StoreError};
use veil_tests::TempStore;

fn files_provider(directory: &Path, cache_seconds: u64) -> NewProvider {
    NewProvider {
        name: "mounted".into(),
        kind: "files".into(),
        configuration: json!({ "directory": directory }),
        cache_seconds: Some(cache_seconds),
    }
}

/// The secret `name` linked to `key` of the provider `mounted`.
fn linked(name: &str, key: &str) -> (veil_store::NewSecret, veil_store::Source) {
    veil_tests::linked_secret(name, "mounted", key)
}

fn texts(values: Vec<SecretValue>) -> Vec<String> {
    values.iter().map(|v| v.expose_text().unwrap().to_owned()).collect()
}

backend_tests! {
    #[tokio::test]
    async fn a_linked_value_is_fetched_cached_and_versioned_in_memory_only(t: TempStore) {
        let mounts = t.dir.path().join("mounts");
        std::fs::create_dir(&mounts).unwrap();
        std::fs::write(mounts.join("token"), "first-Lk4").unwrap();
        let tenant = t.admin.tenant_id;
        // Without the operator's directory, a files provider is refused, naming the field.
        let e = t.store.create_provider(&t.admin, files_provider(&mounts, 0)).await.unwrap_err();
        assert!(matches!(&e, StoreError::Invalid(p) if p[0].field == "configuration.directory"), "{e:?}");
        t.store.set_provider_policy(ProviderPolicy { file_roots: vec![mounts.clone()], commands: vec![] });
        t.store.create_provider(&t.admin, files_provider(&mounts, 0)).await.unwrap();
        let (secret, source) = linked("token", "token");
        let info = t.store.create_linked(&t.admin, secret, source.clone()).await.unwrap();
        assert_eq!(info.source, Some(source));

        // Nothing fetched yet: no value to use, version 0, nothing to mask.
        assert!(t.store.resolve(tenant, "token").is_err());
        assert_eq!(t.store.version(tenant, "token"), Some(0));
        t.store.refresh_linked(tenant, &["token".into()]).await.unwrap();
        assert_eq!(t.store.resolve(tenant, "token").unwrap().expose_text(), Some("first-Lk4"));
        assert_eq!(t.store.version(tenant, "token"), Some(1));

        // A cache period of 0: every refresh fetches; a changed value is generation 2, and the
        // earlier one stays masked.
        std::fs::write(mounts.join("token"), "second-Mq8").unwrap();
        t.store.refresh_linked(tenant, &["token".into()]).await.unwrap();
        assert_eq!(t.store.version(tenant, "token"), Some(2));
        assert_eq!(texts(t.store.values_for_masking(tenant, "token").unwrap()), ["second-Mq8", "first-Lk4"]);

        // A failed fetch leaves no value to use and says why, naming secret and provider.
        std::fs::remove_file(mounts.join("token")).unwrap();
        let e = t.store.refresh_linked(tenant, &["token".into()]).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret 'token' could not be fetched from provider 'mounted': no file 'token' in the provider's directory"
        );
        assert!(t.store.resolve(tenant, "token").is_err());
        let shown = t.store.get(&t.admin, info.id).unwrap();
        assert!(shown.status.unwrap().error.unwrap().contains("no file 'token'"));

        // Its value is not Veil's to change; its provider cannot go while it is linked.
        let update = veil_store::SecretUpdate { value: Some("x".into()), ..Default::default() };
        let e = t.store.update(&t.admin, info.id, update).await.unwrap_err();
        assert!(e.to_string().contains("linked to provider 'mounted'"), "{e}");
        let e = t.store.versions(&t.admin, info.id, 0, 20).await.unwrap_err();
        assert!(e.to_string().contains("Veil keeps no versions of its value"), "{e}");
        let e = t.store.verify(&t.admin, info.id, "first-Lk4".into()).await.unwrap_err();
        assert!(e.to_string().contains("linked to provider 'mounted'"), "{e}");
        let provider = t.store.providers(&t.admin).unwrap().remove(0);
        let e = t.store.delete_provider(&t.admin, provider.id).await.unwrap_err();
        assert!(matches!(e, StoreError::Needed { .. }), "{e:?}");

        // Nothing of the value reached the database: reopened, the secret is there, no value.
        std::fs::write(mounts.join("token"), "third-Zr2").unwrap();
        let t = t.reopen().await;
        assert!(t.store.resolve(tenant, "token").is_err(), "values live in memory only");
        t.store.set_provider_policy(ProviderPolicy { file_roots: vec![mounts.clone()], commands: vec![] });
        t.store.refresh_linked(tenant, &["token".into()]).await.unwrap();
        assert_eq!(t.store.resolve(tenant, "token").unwrap().expose_text(), Some("third-Zr2"));
    }
}

/// A provider and a linked secret made on one instance reach the other through the change feed.
#[tokio::test]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn a_provider_made_on_one_instance_serves_the_other() {
    let t = TempStore::postgres().await;
    let mounts = t.dir.path().join("mounts");
    std::fs::create_dir(&mounts).unwrap();
    std::fs::write(mounts.join("token"), "shared-Vn6").unwrap();
    let policy = ProviderPolicy { file_roots: vec![mounts.clone()], commands: vec![] };
    let other = t.open_instance().await;
    other.set_provider_policy(policy.clone());
    t.store.set_provider_policy(policy);
    t.store.create_provider(&t.admin, files_provider(&mounts, 60)).await.unwrap();
    let (secret, source) = linked("token", "token");
    t.store.create_linked(&t.admin, secret, source).await.unwrap();
    let tenant = t.admin.tenant_id;
    veil_tests::eventually("the other instance to fetch the linked secret", async || {
        other.refresh_linked(tenant, &["token".into()]).await.ok()?;
        other.resolve(tenant, "token").ok().map(|v| v.expose_text().map(str::to_owned))
    })
    .await;
    assert_eq!(other.resolve(tenant, "token").unwrap().expose_text(), Some("shared-Vn6"));
    // A provider deleted there is gone here too once its secret is.
    let id = t.store.find(&t.admin, "token").unwrap().id;
    t.store.delete(&t.admin, id).await.unwrap();
    let provider = t.store.providers(&t.admin).unwrap().remove(0);
    t.store.delete_provider(&t.admin, provider.id).await.unwrap();
    veil_tests::eventually("the provider to leave the other instance", async || {
        other.providers(&t.admin).ok().filter(|p| p.is_empty()).map(|_| ())
    })
    .await;
    other.close().await;
}

/// Messages that find a value stale together wait for one fetch and share its outcome, even with
/// a cache period of 0 (an unauthenticated uplink flood must not run the provider once per
/// message): 20 at once run an `exec` provider's program once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_waiting_together_share_one_fetch() {
    use std::os::unix::fs::PermissionsExt as _;
    let t = TempStore::sqlite().await;
    let tools = t.dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    let runs = tools.join("runs");
    let program = tools.join("slow-secret");
    std::fs::write(
        &program,
        format!("#!/bin/sh\necho run >> {}\nsleep 0.3\necho \"value-of-$1\"\n", runs.display()),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    t.store.set_provider_policy(ProviderPolicy { file_roots: vec![], commands: vec![program.clone()] });
    let provider = NewProvider {
        name: "mounted".into(),
        kind: "exec".into(),
        configuration: json!({ "command": [program], "protocol": "argument" }),
        cache_seconds: Some(0),
    };
    t.store.create_provider(&t.admin, provider).await.unwrap();
    let (secret, source) = linked("token", "k");
    t.store.create_linked(&t.admin, secret, source).await.unwrap();
    let tenant = t.admin.tenant_id;
    let waiting: Vec<_> = (0..20)
        .map(|_| {
            let store = t.store.clone();
            tokio::spawn(async move { store.refresh_linked(tenant, &["token".into()]).await })
        })
        .collect();
    for w in waiting {
        w.await.unwrap().unwrap();
    }
    let ran = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert!(ran <= 2, "the program ran {ran} times for 20 callers");
    assert_eq!(t.store.resolve(tenant, "token").unwrap().expose_text(), Some("value-of-k"));
}
