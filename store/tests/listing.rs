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
