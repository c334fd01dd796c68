//! Listings read summaries: a list of configurations carries names, times, `type` and `enabled`,
//! never the configurations themselves (a listing never loads every configuration whole).

use serde_json::json;
use uuid::Uuid;
use veil_store::{Owner, OwnerType};
use veil_tests::TempStore;

backend_tests! {
    #[tokio::test]
    async fn a_listing_holds_names_type_and_enabled_only(t: TempStore) {
        let big = "x".repeat(200_000);
        for (name, kind) in [("b-hook", OwnerType::Integration), ("a-hook", OwnerType::Integration), ("chain", OwnerType::RuleChain)] {
            let owner = Owner { kind, id: Uuid::new_v4(), name: name.into(), customer_id: None };
            let body = json!({"name": name, "type": "HTTP", "enabled": name == "a-hook", "configuration": {"pad": big}});
            t.store.save_owner(&t.admin, &owner, &body, &[]).await.unwrap();
        }
        let listed = t.store.owner_summaries(&t.admin, OwnerType::Integration).await.unwrap();
        let shown: Vec<(String, serde_json::Value)> = listed.iter().map(|r| (r.owner.name.clone(), r.body.clone())).collect();
        assert_eq!(
            shown,
            [
                ("a-hook".to_owned(), json!({"type": "HTTP", "enabled": true})),
                ("b-hook".to_owned(), json!({"type": "HTTP", "enabled": false})),
            ]
        );
        assert_eq!(t.store.owner_summaries(&t.admin, OwnerType::RuleChain).await.unwrap().len(), 1);
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_secrets_list_stays_in_name_order_through_writes_deletes_and_pages(t: TempStore) {
        // Written out of order; one deleted, one given a new value, one added later.
        let mut names: Vec<String> = (0..45).map(|i| format!("s-{:02}", (i * 17) % 45)).collect();
        for name in &names {
            t.text(name, "v").await;
        }
        let gone = t.store.find(&t.admin, "s-07").unwrap();
        t.store.delete(&t.admin, gone.id).await.unwrap();
        t.rotate("s-08", "v2").await;
        t.text("Ärger-Token", "v").await;
        names.retain(|n| n != "s-07");
        names.push("Ärger-Token".into());
        names.sort();
        let q = |page, page_size, search: Option<&str>| veil_store::ListQuery {
            page,
            page_size,
            text_search: search.map(str::to_owned),
        };
        let mut seen = Vec::new();
        for page in 0.. {
            let p = t.store.list(&t.admin, &q(page, 10, None)).unwrap();
            assert_eq!((p.total_elements, p.total_pages), (names.len(), 5));
            seen.extend(p.data.into_iter().map(|s| s.name));
            if !p.has_next {
                assert_eq!(page, 4);
                break;
            }
        }
        assert_eq!(seen, names);
        // Past the last page: nothing, with the same totals.
        let past = t.store.list(&t.admin, &q(9, 10, None)).unwrap();
        assert!(past.data.is_empty() && !past.has_next);
        assert_eq!(past.total_elements, names.len());
        // A listed secret shows its current version.
        let s08 = t.store.list(&t.admin, &q(0, 20, Some("S-08"))).unwrap();
        assert_eq!(s08.data.iter().map(|s| (s.name.as_str(), s.version)).collect::<Vec<_>>(), [("s-08", 2)]);
        // A search ignores case (beyond ASCII too) and pages its own matches.
        for search in ["ärger", "ÄRGER", "token"] {
            let found = t.store.list(&t.admin, &q(0, 20, Some(search))).unwrap();
            assert_eq!(found.data.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["Ärger-Token"], "{search}");
        }
        let ones: Vec<String> = names.iter().filter(|n| n.starts_with("s-1")).cloned().collect();
        let second = t.store.list(&t.admin, &q(1, 4, Some("S-1"))).unwrap();
        assert_eq!((second.total_elements, second.total_pages, second.has_next), (ones.len(), 3, true));
        assert_eq!(second.data.iter().map(|s| s.name.clone()).collect::<Vec<_>>(), ones[4..8]);
        // Another tenant lists none of them.
        let other = veil_tests::admin_of(veil_store::TenantId::new_random());
        assert_eq!(t.store.list(&other, &q(0, 20, None)).unwrap().total_elements, 0);
    }
}
