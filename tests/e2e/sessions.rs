//! Authentication reads the user from memory after its first request; every cause of revocation
//! still takes effect on the very next request.

use serde_json::json;

use crate::support::{Api, Server};

const PASSWORD: &str = "a session password";

async fn user(admin: &Api<'_>, name: &str, role: &str) -> String {
    let (status, body) =
        admin.post("/api/users", json!({"username": name, "password": PASSWORD, "roles": [role]})).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_revocation_applies_to_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let admin = Api::new(&server).await;

    // A password change ends the sessions opened before it.
    user(&admin, "pat", "SECRET_MANAGER").await;
    let pat = Api::as_user(&server, "pat", PASSWORD).await;
    assert_eq!(pat.get("/api/secrets").await.0, 200, "first request: the session is now in memory");
    let (_, me) = admin.get("/api/users").await;
    let pat_id =
        me["data"].as_array().unwrap().iter().find(|u| u["username"] == "pat").unwrap()["id"].clone();
    let change = json!({"password": "a new session password", "currentPassword": PASSWORD});
    assert_eq!(pat.patch(&format!("/api/users/{}", pat_id.as_str().unwrap()), change).await.0, 200);
    assert_eq!(pat.get("/api/secrets").await.0, 401, "password change");

    // Logout.
    user(&admin, "lou", "SECRET_MANAGER").await;
    let lou = Api::as_user(&server, "lou", PASSWORD).await;
    assert_eq!(lou.get("/api/secrets").await.0, 200);
    assert_eq!(lou.post("/api/auth/logout", json!({})).await.0, 204);
    assert_eq!(lou.get("/api/secrets").await.0, 401, "logout");

    // A role change: the next request has the new permissions.
    let rob = user(&admin, "rob", "SECRET_MANAGER").await;
    let rob_api = Api::as_user(&server, "rob", PASSWORD).await;
    assert_eq!(rob_api.get("/api/secrets").await.0, 200);
    let role =
        json!({"name": "chains-only", "permissions": [{"resource": "RULE_CHAIN", "operations": ["READ"]}]});
    assert_eq!(admin.post("/api/roles", role).await.0, 201);
    let (status, body) = admin.patch(&format!("/api/users/{rob}"), json!({"roles": ["chains-only"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rob_api.get("/api/secrets").await.0, 403, "role change");
    assert_eq!(rob_api.get("/api/rule-chains").await.0, 200, "the new role's permissions hold at once");

    // Deleting the user.
    let del = user(&admin, "del", "SECRET_MANAGER").await;
    let del_api = Api::as_user(&server, "del", PASSWORD).await;
    assert_eq!(del_api.get("/api/secrets").await.0, 200);
    assert_eq!(admin.delete(&format!("/api/users/{del}")).await.0, 204);
    assert_eq!(del_api.get("/api/secrets").await.0, 401, "user deletion");
}

async fn database_queries(api: &Api<'_>) -> u64 {
    api.get("/api/health").await.1["databaseQueries"].as_u64().unwrap()
}

#[tokio::test]
async fn messages_and_uplinks_use_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let admin = Api::new(&server).await;
    let chain = json!({"name": "hot path", "nodes": [
        {"type": "script", "name": "Filter", "configuration": {"mode": "filter", "script": "msg.temperature > 20"}},
        {"type": "log", "name": "Log", "configuration": {}}],
        "connections": [{"fromIndex": 0, "toIndex": 1, "type": "True"}]});
    let (status, chain) = admin.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{chain}");
    let id = chain["id"].as_str().unwrap();
    let (status, integration) = admin
        .post(
            "/api/integrations",
            json!({"name": "hook", "type": "HTTP", "ruleChainId": id, "configuration": {"enableSecurity": false},
                   "uplinkConverter": "#{deviceName: \"d\", telemetry: payload}"}),
        )
        .await;
    assert_eq!(status, 201, "{integration}");
    let uplink = server.url(integration["uplinkPath"].as_str().unwrap());
    // The integration starts in the background (under the cluster lease, which reads and writes
    // the database): wait until it has, so only the messages below are counted.
    let integration_path = format!("/api/integrations/{}", integration["id"].as_str().unwrap());
    crate::support::eventually("the integration to start", async || {
        let (_, view) = admin.get(&integration_path).await;
        (view["status"] == "active").then_some(())
    })
    .await;
    // The first request of a session reads the user once.
    let path = format!("/api/rule-chains/{id}/messages");
    assert_eq!(admin.post(&format!("{path}?wait=true"), json!({"data": {"temperature": 1}})).await.0, 200);

    let before = database_queries(&admin).await;
    for i in 0..100 {
        let (status, body) =
            admin.post(&format!("{path}?wait=true"), json!({"data": {"temperature": i}})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(admin.post(&path, json!({"data": {"temperature": i}})).await.0, 202);
        let resp = server.client.post(&uplink).json(&json!({"temperature": i})).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(database_queries(&admin).await, before, "300 messages and uplinks used the database");
}
