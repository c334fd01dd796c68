//! The audit log records every action, and never a value.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{DEAD_URL, USER_PASSWORD, chain, entries, id_of, login};
use crate::support::{ADMIN_PASSWORD, Api, Receiver, Server, assert_no_leak};

#[tokio::test]
async fn the_audit_log_records_every_action_and_never_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let admin = Api::new(&server).await;
    let receiver = Receiver::start().await;
    let (first, second) = ("audit-value-1-\"q\"-aa01", "audit-value-2-bb02");
    let wrong_password = "wrong password 0000";
    let (_, customer) = admin.post("/api/customers", json!({"name": "Customer A"})).await;
    let customer_id = id_of(&customer);
    let mut users = BTreeMap::new();
    for (username, role, customer) in
        [("manager", "SECRET_MANAGER", None), ("cust-a", "CUSTOMER_USER", Some(&customer_id))]
    {
        let mut body = json!({"username": username, "password": USER_PASSWORD, "roles": [role]});
        if let Some(c) = customer {
            body["customerId"] = json!(c);
        }
        let (status, user) = admin.post("/api/users", body).await;
        assert_eq!(status, 201, "{user}");
        users.insert(username, id_of(&user));
    }
    let manager = Api::as_user(&server, "manager", USER_PASSWORD).await;
    assert_eq!(login(&server, "manager", wrong_password).await.status(), 401);
    assert_eq!(login(&server, "typed-password-as-name", wrong_password).await.status(), 401);

    // The secret's life: created, rotated by the manager, described, used, shared, deleted.
    let (status, secret) =
        admin.post("/api/secrets", json!({"name": "audited", "type": "TEXT", "value": first})).await;
    assert_eq!(status, 201);
    let id = id_of(&secret);
    let secret_path = format!("/api/secrets/{id}");
    assert_eq!(manager.patch(&secret_path, json!({"value": second})).await.0, 200);
    assert_eq!(admin.patch(&secret_path, json!({"description": "rotated by the manager"})).await.0, 200);
    let (status, created) =
        admin.post("/api/rule-chains", chain("Audited chain", Some("audited"), &receiver.url)).await;
    assert_eq!(status, 201, "{created}");
    let chain_id = id_of(&created);
    let messages = 3;
    for i in 0..messages {
        let path = format!("/api/rule-chains/{chain_id}/messages?wait=true");
        let (status, result) = admin.post(&path, json!({"data": {"i": i}})).await;
        assert_eq!(status, 200, "{result}");
    }
    assert_eq!(receiver.requests().len(), messages);
    assert_eq!(admin.delete(&secret_path).await.0, 409);
    let share = format!("{secret_path}/shares");
    let unshare = format!("{secret_path}/shares/{customer_id}");
    assert_eq!(admin.post(&share, json!({"customerId": customer_id})).await.0, 200);
    assert_eq!(admin.delete(&unshare).await.0, 200);
    assert_eq!(admin.post(&share, json!({"customerId": customer_id})).await.0, 200);
    let cust_a = Api::as_user(&server, "cust-a", USER_PASSWORD).await;
    let (status, customer_chain) =
        cust_a.post("/api/rule-chains", chain("Customer chain", Some("audited"), DEAD_URL)).await;
    assert_eq!(status, 201, "{customer_chain}");
    assert_eq!(admin.delete(&unshare).await.0, 409);
    assert_eq!(cust_a.delete(&format!("/api/rule-chains/{}", id_of(&customer_chain))).await.0, 204);
    assert_eq!(admin.delete(&format!("/api/rule-chains/{chain_id}")).await.0, 204);
    assert_eq!(admin.delete(&unshare).await.0, 200);
    assert_eq!(admin.delete(&secret_path).await.0, 204);

    let (status, log) = admin.get("/api/audit-logs?pageSize=1000").await;
    assert_eq!(status, 200, "{log}");
    let all = log["data"].as_array().unwrap();
    let times: Vec<i64> = all.iter().map(|e| e["time"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    // One entry per action, with actor, target and outcome.
    let on_secret = |action: &str, actor: &str, outcome: &str, n: usize| {
        let found = entries(&log, action);
        assert_eq!(found.len(), n, "{action} entries: {found:#?}");
        for e in found {
            assert_eq!(
                (&e["actorName"], &e["targetType"], &e["targetId"], &e["targetName"], &e["outcome"]),
                (&json!(actor), &json!("SECRET"), &json!(id), &json!("audited"), &json!(outcome)),
                "{e}"
            );
        }
    };
    on_secret("CREATE", "admin", "SUCCESS", 1);
    on_secret("VALUE_CHANGE", "manager", "SUCCESS", 1);
    on_secret("DESCRIPTION_CHANGE", "admin", "SUCCESS", 1);
    on_secret("DELETE_REFUSED", "admin", "FAILURE", 1);
    on_secret("SHARE", "admin", "SUCCESS", 2);
    on_secret("UNSHARE", "admin", "SUCCESS", 2);
    on_secret("UNSHARE_REFUSED", "admin", "FAILURE", 1);
    on_secret("DELETE", "admin", "SUCCESS", 1);
    let change = entries(&log, "VALUE_CHANGE")[0];
    assert_eq!((&change["actorId"], &change["details"]["version"]), (&json!(users["manager"]), &json!(2)));
    assert_eq!(entries(&log, "SHARE")[0]["details"]["customerId"], json!(customer_id));
    assert_eq!(entries(&log, "UNSHARE_REFUSED")[0]["details"]["customerId"], json!(customer_id));

    // Uses: counted per chain and minute; together as many as messages were sent.
    let uses: Vec<&Value> =
        entries(&log, "USE").into_iter().filter(|e| e["actorId"] == json!(chain_id)).collect();
    assert!(!uses.is_empty(), "no USE entry for the chain: {log}");
    for e in &uses {
        assert_eq!(
            (&e["actorName"], &e["targetId"], &e["targetName"], &e["outcome"]),
            (&json!("RULE_CHAIN 'Audited chain'"), &json!(id), &json!("audited"), &json!("SUCCESS")),
            "{e}"
        );
    }
    let count: u64 = uses.iter().map(|e| e["details"]["count"].as_u64().unwrap()).sum();
    assert_eq!(count, messages as u64, "{uses:#?}");

    // Logins, successful and failed, of users of this tenant.
    let logins = entries(&log, "LOGIN");
    let manager_login = logins.iter().find(|e| e["actorName"] == "manager").expect("manager's LOGIN");
    assert_eq!(
        (&manager_login["targetType"], &manager_login["targetId"], &manager_login["outcome"]),
        (&json!("USER"), &json!(users["manager"]), &json!("SUCCESS"))
    );
    assert!(logins.iter().any(|e| e["actorName"] == "admin"));
    let failed = entries(&log, "LOGIN_FAILED");
    assert_eq!(failed.len(), 1, "unknown names are not in the tenant's log: {failed:#?}");
    assert_eq!(
        (&failed[0]["actorName"], &failed[0]["targetName"], &failed[0]["outcome"]),
        (&json!("manager"), &json!("manager"), &json!("FAILURE"))
    );

    // Filters.
    let (_, by_secret) = admin.get(&format!("/api/audit-logs?pageSize=1000&secretId={id}")).await;
    let about: Vec<&Value> = all.iter().filter(|e| e["targetId"] == json!(id)).collect();
    assert_eq!(by_secret["data"].as_array().unwrap().iter().collect::<Vec<_>>(), about);
    let actions: BTreeSet<&str> = about.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        BTreeSet::from([
            "CREATE",
            "VALUE_CHANGE",
            "DESCRIPTION_CHANGE",
            "DELETE_REFUSED",
            "SHARE",
            "UNSHARE",
            "UNSHARE_REFUSED",
            "USE",
            "DELETE"
        ])
    );
    let (_, by_actor) = admin.get("/api/audit-logs?pageSize=1000&actor=manager").await;
    let by_actor = by_actor["data"].as_array().unwrap();
    assert!(by_actor.iter().all(|e| e["actorName"] == "manager"), "{by_actor:#?}");
    let actions: BTreeSet<&str> = by_actor.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, BTreeSet::from(["LOGIN", "LOGIN_FAILED", "VALUE_CHANGE"]));
    let deleted_at = entries(&log, "DELETE")[0]["time"].as_i64().unwrap();
    let (_, since) = admin.get(&format!("/api/audit-logs?pageSize=1000&from={deleted_at}")).await;
    let (_, before) = admin.get(&format!("/api/audit-logs?pageSize=1000&to={deleted_at}")).await;
    let (since, before) = (since["data"].as_array().unwrap(), before["data"].as_array().unwrap());
    assert!(since.iter().all(|e| e["time"].as_i64().unwrap() >= deleted_at));
    assert!(since.iter().any(|e| e["action"] == "DELETE"));
    assert!(before.iter().all(|e| e["time"].as_i64().unwrap() < deleted_at));
    assert_eq!(since.len() + before.len(), all.len(), "from is inclusive, to exclusive");
    let (_, window) =
        admin.get(&format!("/api/audit-logs?pageSize=1000&from={deleted_at}&to={}", deleted_at + 1)).await;
    assert!(window["data"].as_array().unwrap().iter().all(|e| e["time"] == json!(deleted_at)), "{window}");
    let (_, first_page) = admin.get("/api/audit-logs?page=0&pageSize=2").await;
    assert_eq!(first_page["data"].as_array().unwrap()[..], all[..2]);
    assert_eq!(
        (first_page["totalElements"].as_u64(), first_page["hasNext"].as_bool()),
        (Some(all.len() as u64), Some(true))
    );

    // Never a value, a password, or a name typed at the login prompt.
    let text = format!("{log}{by_secret}{first_page}");
    assert_no_leak(
        &text,
        &[first, second, wrong_password, USER_PASSWORD, ADMIN_PASSWORD, "typed-password-as-name"],
    );
}
