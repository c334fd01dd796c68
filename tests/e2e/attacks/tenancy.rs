//! Attacks on what a tenant owns: audit aggregation, look-alike role names, quotas under a
//! burst, required credentials.

use serde_json::{Value, json};

use super::{TOKEN, created};
use crate::limits::start;
use crate::support::{Api, Receiver};

/// G11: refused sends are counted per chain, node, destination and minute like uses: a flood of
/// them is one audit entry with a count, not one row each.
#[tokio::test]
async fn g11_refused_sends_are_aggregated_in_the_audit_log() {
    let (_dir, server) = start(&[]).await;
    let admin = Api::new(&server).await;
    let allowed = Receiver::start().await;
    let port = allowed.url.rsplit(':').next().unwrap().to_owned();
    created(
        &admin,
        "/api/secrets",
        json!({"name": "s-tok", "type": "TEXT", "value": TOKEN,
        "allowedDestinations": [format!("127.0.0.1:{port}")]}),
    )
    .await;
    let doc = json!({"name": "host-from-msg", "nodes": [{"type": "rest_api_call", "name": "Out", "configuration": {
        "restEndpointUrlPattern": "http://{{msg.host}}/x", "requestMethod": "POST",
        "headers": {"Authorization": "Bearer $<secret:s-tok>"}}}]});
    let chain = created(&admin, "/api/rule-chains", doc).await;
    let id = chain["id"].as_str().unwrap();
    for _ in 0..200 {
        let (status, _) = admin
            .post(&format!("/api/rule-chains/{id}/messages"), json!({"data": {"host": "127.0.0.1:9"}}))
            .await;
        assert_eq!(status, 202);
    }
    let entries = crate::support::eventually("the refused sends counted", async || {
        let (_, log) = admin.get("/api/audit-logs?pageSize=1000").await;
        let blocked: Vec<Value> = log["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "BLOCKED_DESTINATION")
            .cloned()
            .collect();
        let total: u64 = blocked.iter().map(|e| e["details"]["count"].as_u64().unwrap_or(0)).sum();
        (total == 200).then_some(blocked)
    })
    .await;
    // One entry per minute (two when the flood crossed a minute), each naming chain, node and destination.
    assert!(entries.len() <= 2, "{entries:?}");
    assert_eq!(entries[0]["details"]["destination"], "127.0.0.1:9");
    assert_eq!(entries[0]["details"]["node"], "Out");
    assert_eq!(entries[0]["details"]["ownerName"], "host-from-msg");
    assert!(server.logs().matches("send blocked").count() <= 2, "one log line per minute, not per message");
}

/// G15: custom roles that read like built-in ones (other hyphens, spaces, case) are refused.
#[tokio::test]
async fn g15_role_names_that_read_like_built_in_ones_are_refused() {
    let (_dir, server) = start(&[]).await;
    let admin = Api::new(&server).await;
    let grants = json!([{"resource": "SECRET", "operations": ["READ"]}]);
    for name in [
        "TENANT\u{2011}ADMIN",
        "TENANT ADMIN",
        "tenant-admin",
        "Tenant\u{2010}Admin",
        "CUSTOMER  USER",
        "TENANT_ADMIN\u{3000}",
    ] {
        let (status, body) = admin.post("/api/roles", json!({"name": name, "permissions": grants})).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body["message"].as_str().unwrap().contains("built-in role"), "{name}: {body}");
    }
    let (status, body) =
        admin.post("/api/roles", json!({"name": "tenant auditor", "permissions": grants})).await;
    assert_eq!(status, 201, "{body}");
}

/// A trap a new user fell into: a bearer or basic credential whose secret field is empty was saved
/// and sent `Authorization: Bearer ` with nothing after it. Required fields of the chosen type are
/// required, and not empty, at save.
#[tokio::test]
async fn trap_empty_required_credential_fields_are_refused_at_save() {
    let (_dir, server) = start(&[]).await;
    let admin = Api::new(&server).await;
    for (credentials, pointer, says) in [
        (
            json!({"type": "bearer", "token": ""}),
            "/nodes/0/configuration/credentials/token",
            "is required for 'bearer' credentials: it is empty",
        ),
        (
            json!({"type": "basic", "username": "u", "password": "  "}),
            "/nodes/0/configuration/credentials/password",
            "is required for 'basic' credentials: it is empty",
        ),
        (
            json!({"type": "apiKey", "value": ""}),
            "/nodes/0/configuration/credentials/value",
            "is required for 'apiKey' credentials: it is empty",
        ),
    ] {
        let doc = json!({"name": "empty", "nodes": [{"type": "rest_api_call", "name": "R", "configuration": {
            "restEndpointUrlPattern": "http://127.0.0.1:9/x", "requestMethod": "POST", "credentials": credentials}}]});
        let (status, body) = admin.post("/api/rule-chains", doc).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["problems"][0]["path"], pointer, "{body}");
        assert_eq!(body["problems"][0]["message"], says, "{body}");
    }
    let mqtt = json!({"name": "empty mqtt", "nodes": [{"type": "mqtt", "name": "M", "configuration": {
        "topicPattern": "t", "host": "127.0.0.1", "port": 1883, "clientId": "c",
        "credentials": {"type": "basic", "username": "u", "password": ""}}}]});
    let (status, body) = admin.post("/api/rule-chains", mqtt).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["problems"][0]["message"].as_str().unwrap().contains("it is empty"), "{body}");
}

/// G12: per-tenant limits hold under a concurrent burst: counted in the transaction that inserts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g12_a_burst_of_creates_stops_exactly_at_the_limit() {
    let (_dir, server) = start(&["--max-chains-per-tenant", "5", "--max-integrations-per-tenant", "3"]).await;
    let admin = Api::new(&server).await;
    let sink = created(
        &admin,
        "/api/rule-chains",
        json!({"name": "sink", "nodes": [{"type": "log", "name": "L", "configuration": {}}]}),
    )
    .await;
    let burst = |path: &'static str, doc: fn(usize, &Value) -> Value| {
        let (url, token, client, sink) =
            (server.url(path), admin.token.clone(), server.client.clone(), sink.clone());
        async move {
            let tasks: Vec<_> = (0..40)
                .map(|i| {
                    let (url, token, client, body) =
                        (url.clone(), token.clone(), client.clone(), doc(i, &sink));
                    tokio::spawn(async move {
                        let resp = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
                        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.unwrap());
            }
            answers
        }
    };
    let chains = burst(
        "/api/rule-chains",
        |i, _| json!({"name": format!("c{i}"), "nodes": [{"type": "log", "name": "L", "configuration": {}}]}),
    )
    .await;
    assert_eq!(chains.iter().filter(|(s, _)| *s == 201).count(), 4, "the sink is the fifth");
    for (status, body) in chains.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 409, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("limit maxChainsPerTenant (5) exceeded"),
            "{body}"
        );
    }
    let integrations = burst("/api/integrations", |i, sink| {
        json!({"name": format!("i{i}"), "type": "HTTP", "ruleChainId": sink["id"],
               "configuration": {"enableSecurity": false}, "uplinkConverter": "#{deviceName: \"d\", telemetry: payload}"})
    })
    .await;
    assert_eq!(integrations.iter().filter(|(s, _)| *s == 201).count(), 3);
    let (_, listed) = admin.get("/api/rule-chains?pageSize=100").await;
    assert_eq!(listed["totalElements"], 5, "{listed}");
}

/// G10: secrets per tenant and their bytes are bounded, in the transaction that inserts.
#[tokio::test]
async fn g10_secrets_and_their_bytes_per_tenant_are_bounded() {
    use base64::Engine as _;
    let (_dir, server) =
        start(&["--max-secrets-per-tenant", "4", "--max-secret-bytes-per-tenant", "2000000"]).await;
    let admin = Api::new(&server).await;
    let file = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 1_000_000]);
    let (status, body) = admin
        .post("/api/secrets", json!({"name": "f1", "type": "FILE", "fileName": "f1.bin", "value": file}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin
        .post("/api/secrets", json!({"name": "f2", "type": "FILE", "fileName": "f2.bin", "value": file}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("limit maxSecretBytesPerTenant (2000000) exceeded"),
        "{body}"
    );
    for i in 0..3 {
        created(&admin, "/api/secrets", json!({"name": format!("t{i}"), "type": "TEXT", "value": "v"})).await;
    }
    let (status, body) =
        admin.post("/api/secrets", json!({"name": "t3", "type": "TEXT", "value": "v"})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("limit maxSecretsPerTenant (4) exceeded"), "{body}");
    let (_, listed) = admin.get("/api/secrets?pageSize=100").await;
    assert_eq!(listed["totalElements"], 4);
}
