//! A customer uses a secret shared with it, and never reads it.

use std::collections::BTreeMap;

use serde_json::json;

use super::{DEAD_URL, TENANT_VALUE, USER_PASSWORD, chain, does_not_exist, id_of};
use crate::support::{Api, Receiver, SECRET_INFO_KEYS, Server, assert_no_leak, sorted_keys};

#[tokio::test]
async fn a_customer_uses_a_shared_secret_without_ever_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let admin = Api::new(&server).await;
    let receiver = Receiver::start().await;
    let value = r#"cust-token-"q"\x-51e0"#;
    let mut bodies = Vec::new();
    let mut customers = BTreeMap::new();
    for name in ["A", "B"] {
        let (status, c) = admin.post("/api/customers", json!({"name": format!("Customer {name}")})).await;
        assert_eq!(status, 201, "{c}");
        customers.insert(name, id_of(&c));
    }
    for (username, customer) in [("cust-a", "A"), ("cust-b", "B")] {
        let body = json!({"username": username, "password": USER_PASSWORD, "customerId": customers[customer],
                          "roles": ["CUSTOMER_USER"]});
        let (status, user) = admin.post("/api/users", body).await;
        assert_eq!(status, 201, "{user}");
    }
    let (status, secret) =
        admin.post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": value})).await;
    assert_eq!(status, 201, "{secret}");
    let secret_id = id_of(&secret);
    let (status, tenant_only) = admin
        .post("/api/secrets", json!({"name": "tenant-only", "type": "TEXT", "value": TENANT_VALUE}))
        .await;
    assert_eq!(status, 201);
    let tenant_only_id = id_of(&tenant_only);
    let (status, shared) =
        admin.post(&format!("/api/secrets/{secret_id}/shares"), json!({"customerId": customers["A"]})).await;
    assert_eq!((status, &shared["sharedWith"]), (200, &json!([customers["A"]])), "{shared}");

    // cust-a deploys a chain that sends the token to a real service, and it works.
    let cust_a = Api::as_user(&server, "cust-a", USER_PASSWORD).await;
    let mut doc = chain("Customer uplink", Some("api-token"), &format!("{}/ingest", receiver.url));
    doc["nodes"][0]["debugMode"] = json!(true);
    let (status, created) = cust_a.post("/api/rule-chains", doc).await;
    assert_eq!(status, 201, "{created}");
    let chain_id = id_of(&created);
    let node_id = created["nodes"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["nodes"][0]["configuration"]["credentials"]["token"], "$<secret:api-token>");
    let path = format!("/api/rule-chains/{chain_id}/messages?wait=true");
    let (status, result) = cust_a.post(&path, json!({"data": {"temperature": 21}})).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["trace"][0]["relation"], json!(["Success"]), "{result}");
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {value}"));
    bodies.extend([created.clone(), result]);

    // A customer's script cannot hold the value (it could print or encode it).
    let script = json!({"name": "Peek", "nodes": [{"type": "script", "name": "Peek", "configuration":
        {"mode": "transform", "script": "#{msg: #{t: secret(\"api-token\")}}"}}]});
    let (status, refused) = cust_a.post("/api/rule-chains", script).await;
    assert_eq!(
        (status, refused["problems"][0]["path"].clone()),
        (400, json!("/nodes/0/configuration/script"))
    );
    // Nor does it learn which other customers a secret is shared with.
    let (_, also_b) =
        admin.post(&format!("/api/secrets/{secret_id}/shares"), json!({"customerId": customers["B"]})).await;
    assert_eq!(also_b["sharedWith"].as_array().unwrap().len(), 2);
    let (_, seen_by_a) = cust_a.get(&format!("/api/secrets/{secret_id}")).await;
    assert_eq!(seen_by_a["sharedWith"], json!([customers["A"]]));
    let (status, _) = admin.delete(&format!("/api/secrets/{secret_id}/shares/{}", customers["B"])).await;
    assert_eq!(status, 200);

    // The chain stays the customer's: the tenant admin cannot slip an unshared secret into it.
    let mut edited = chain("Customer uplink", Some("tenant-only"), &format!("{}/ingest", receiver.url));
    edited["nodes"][0]["id"] = json!(node_id);
    let (status, refused) = admin.put(&format!("/api/rule-chains/{chain_id}"), edited).await;
    assert_eq!((status, refused["problems"].clone()), (400, does_not_exist("tenant-only")), "{refused}");

    // No route gives cust-a the value: metadata, listing, usages, the chain, its debug events.
    let (status, got) = cust_a.get(&format!("/api/secrets/{secret_id}")).await;
    assert_eq!(status, 200, "{got}");
    let mut keys = SECRET_INFO_KEYS.to_vec();
    keys.insert(4, "lastUsedTime");
    assert_eq!(sorted_keys(&got), keys, "metadata only (and when it was last used: never, for a customer)");
    assert!(got["lastUsedTime"].is_null());
    let (status, page) = cust_a.get("/api/secrets").await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        page["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["api-token"], "only the shared secret is listed");
    let (status, mut usages) = cust_a.get(&format!("/api/secrets/{secret_id}/usages")).await;
    assert_eq!(status, 200, "{usages}");
    // Its own chain used it: when is shown to its customer.
    let used = usages["RULE_CHAIN"][0].as_object_mut().unwrap().remove("lastUsedTime");
    assert!(used.is_some_and(|t| t.is_i64()), "{usages}");
    let references = json!([{"id": chain_id, "name": "Customer uplink", "nodes": [
        {"id": node_id, "name": "Call", "path": "/nodes/0/configuration/credentials/token"}]}]);
    assert_eq!(usages["RULE_CHAIN"], references);
    let (status, stored) = cust_a.get(&format!("/api/rule-chains/{chain_id}")).await;
    assert_eq!(status, 200);
    let (status, events) = cust_a.get(&format!("/api/rule-chains/{chain_id}/events")).await;
    assert_eq!(status, 200, "{events}");
    assert!(!events.as_array().unwrap().is_empty(), "the node is in debug mode");
    // cust-a may change its own chain (it stays A's and keeps its reference).
    let (status, updated) = cust_a.put(&format!("/api/rule-chains/{chain_id}"), stored.clone()).await;
    assert_eq!((status, &updated["nodes"][0]["configuration"]), (200, &stored["nodes"][0]["configuration"]));
    let patch =
        cust_a.patch(&format!("/api/secrets/{secret_id}"), json!({"value": "cust-a-overwrite"})).await;
    assert_eq!((patch.0, patch.1["error"].as_str()), (403, Some("forbidden")), "{}", patch.1);
    bodies.extend([got, page, usages, stored, updated, events, patch.1]);

    // tenant-only does not exist for cust-a: not readable, not listed, not referable.
    let (status, missing) = cust_a.get(&format!("/api/secrets/{tenant_only_id}")).await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("not_found")), "{missing}");
    let (_, usages) = cust_a.get(&format!("/api/secrets/{tenant_only_id}/usages")).await;
    assert_eq!(usages["error"], "not_found");
    let (status, refused) =
        cust_a.post("/api/rule-chains", chain("Sneaky", Some("tenant-only"), DEAD_URL)).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_config")), "{refused}");
    assert_eq!(refused["problems"], does_not_exist("tenant-only"));
    bodies.extend([missing, usages, refused]);

    // cust-b: the secret is not shared with B, so it does not exist; A's chain neither.
    let cust_b = Api::as_user(&server, "cust-b", USER_PASSWORD).await;
    let (status, refused) =
        cust_b.post("/api/rule-chains", chain("B uplink", Some("api-token"), DEAD_URL)).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_config")), "{refused}");
    assert_eq!(refused["problems"], does_not_exist("api-token"));
    let (status, hidden) = cust_b.get(&format!("/api/secrets/{secret_id}")).await;
    assert_eq!((status, hidden["error"].as_str()), (404, Some("not_found")));
    let (status, other_chain) = cust_b.get(&format!("/api/rule-chains/{chain_id}")).await;
    assert_eq!((status, other_chain["error"].as_str()), (404, Some("not_found")));
    let (_, page) = cust_b.get("/api/secrets").await;
    assert_eq!(page["totalElements"], 0, "{page}");
    bodies.extend([refused, hidden, other_chain, page]);

    // Unsharing is refused while A's chain uses the secret; once the chain is gone it is allowed.
    let unshare = format!("/api/secrets/{secret_id}/shares/{}", customers["A"]);
    let (status, in_use) = admin.delete(&unshare).await;
    assert_eq!((status, in_use["error"].as_str()), (409, Some("secret_in_use")), "{in_use}");
    assert_eq!(in_use["references"]["RULE_CHAIN"], references);
    assert_eq!(
        admin.get(&format!("/api/secrets/{secret_id}")).await.1["sharedWith"],
        json!([customers["A"]])
    );
    assert_eq!(cust_a.delete(&format!("/api/rule-chains/{chain_id}")).await.0, 204);
    let (status, unshared) = admin.delete(&unshare).await;
    assert_eq!((status, &unshared["sharedWith"]), (200, &json!([])), "{unshared}");
    let (status, gone) = cust_a.get(&format!("/api/secrets/{secret_id}")).await;
    assert_eq!((status, gone["error"].as_str()), (404, Some("not_found")), "no longer shared");
    bodies.extend([in_use, unshared, gone]);

    let values = [value, TENANT_VALUE];
    for body in &bodies {
        assert_no_leak(&body.to_string(), &values);
    }
    assert_no_leak(&server.logs(), &values);
}
