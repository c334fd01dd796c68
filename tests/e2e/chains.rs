use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::support::{Api, Receiver, Server, assert_no_leak};

/// A value that would break a configuration if it were substituted into JSON text.
const TOKEN_V1: &str = r#"tok-v1-"quoted"\back{brace}$<secret:other>"#;
const TOKEN_V2: &str = "tok-v2-rotated-7f3a9c";

fn rest_chain(url: &str) -> Value {
    json!({
        "name": "Uplink",
        "firstNodeIndex": 0,
        "nodes": [
            {
                "type": "rest_api_call",
                "name": "Notify",
                "debugMode": true,
                "configuration": {
                    "restEndpointUrlPattern": format!("{url}/ingest/${{deviceName}}"),
                    "requestMethod": "POST",
                    "headers": {"Content-Type": "application/json", "X-Device": "${deviceName}"},
                    "credentials": {"type": "bearer", "token": "$<secret:api-token>"},
                    "readTimeoutMs": 5000
                }
            },
            {"type": "log", "name": "Log", "debugMode": true, "configuration": {"prefix": "sent: "}}
        ],
        "connections": [{"fromIndex": 0, "toIndex": 1, "type": "Success"}]
    })
}

#[tokio::test]
async fn a_bearer_token_from_a_secret_reaches_the_service_and_a_rotation_applies_to_the_next_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    let (status, secret) =
        api.post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": TOKEN_V1})).await;
    assert_eq!(status, 201);
    let secret_id = secret["id"].as_str().unwrap().to_owned();

    let (status, chain) = api.post("/api/rule-chains", rest_chain(&receiver.url)).await;
    assert_eq!(status, 201, "{chain}");
    let chain_id = chain["id"].as_str().unwrap().to_owned();
    let node_id = chain["nodes"][0]["id"].as_str().unwrap().to_owned();
    // Stored and returned with the placeholder, never the value.
    let (_, stored) = api.get(&format!("/api/rule-chains/{chain_id}")).await;
    assert_eq!(stored["nodes"][0]["configuration"]["credentials"]["token"], "$<secret:api-token>");
    assert!(!stored.to_string().contains("tok-v1"));

    let message = json!({
        "type": "POST_TELEMETRY_REQUEST",
        "originator": "sensor-1",
        "metadata": {"deviceName": "sensor-1"},
        "data": {"temperature": 21.5, "note": "$<secret:api-token>"}
    });
    let (status, result) = api
        .post(&format!("/api/rule-chains/{chain_id}/messages?wait=true&messages=true"), message.clone())
        .await;
    assert_eq!(status, 200, "{result}");
    let steps: Vec<Value> = result["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!({"nodeId": s["nodeId"], "nodeName": s["nodeName"], "relation": s["relation"]}))
        .collect();
    assert_eq!(
        steps,
        [
            json!({"nodeId": node_id, "nodeName": "Notify", "relation": ["Success"]}),
            json!({"nodeId": chain["nodes"][1]["id"], "nodeName": "Log", "relation": ["Success"]})
        ]
    );
    // Each step's message in and out, as the chain author watches it: masked, the value never.
    assert_eq!(result["trace"][0]["input"]["data"]["temperature"], 21.5);
    assert_eq!(result["trace"][0]["outputs"][0]["relation"], "Success");
    assert_no_leak(&result.to_string(), &[TOKEN_V1]);
    let first = &receiver.requests()[0];
    assert_eq!((first.method.as_str(), first.uri.as_str()), ("POST", "/ingest/sensor-1"));
    assert_eq!(
        first.headers["authorization"],
        format!("Bearer {TOKEN_V1}"),
        "the value is inserted literally"
    );
    assert_eq!(first.headers["x-device"], "sensor-1");
    // Message content is data: the device's "$<secret:api-token>" is sent as that literal text.
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body, json!({"temperature": 21.5, "note": "$<secret:api-token>"}));

    // Rotate: the very next message uses the new value, without redeploying.
    let (status, _) = api.patch(&format!("/api/secrets/{secret_id}"), json!({"value": TOKEN_V2})).await;
    assert_eq!(status, 200);
    api.post(&format!("/api/rule-chains/{chain_id}/messages?wait=true"), message.clone()).await;
    assert_eq!(receiver.requests()[1].headers["authorization"], format!("Bearer {TOKEN_V2}"));

    // Debug events show what happened, with every value masked.
    let (status, events) = api.get(&format!("/api/rule-chains/{chain_id}/events")).await;
    assert_eq!(status, 200);
    assert_eq!(events.as_array().unwrap().len(), 4);
    assert_eq!(events[0]["nodeName"], "Notify");
    assert_eq!(events[0]["outputs"][0]["msg"]["metadata"]["statusCode"], "200");
    assert_no_leak(&events.to_string(), &[TOKEN_V1, TOKEN_V2]);
    // Without messages=true the trace is the path alone (what a program sending data needs).
    let (status, lean) =
        api.post(&format!("/api/rule-chains/{chain_id}/messages?wait=true"), message.clone()).await;
    assert_eq!(status, 200, "{lean}");
    assert_eq!(lean["trace"][0]["relation"], json!(["Success"]));
    assert!(lean["trace"][0].get("input").is_none() && lean["trace"][0].get("outputs").is_none(), "{lean}");
    let (status, refused) =
        api.post(&format!("/api/rule-chains/{chain_id}/messages?messages=true"), message.clone()).await;
    assert_eq!(
        (status, refused["message"].as_str()),
        (400, Some("messages: only with wait=true (the trace carries the messages)"))
    );

    // In use: deleting the secret is refused naming chain and node; deleting the chain frees it.
    let (status, refused) = api.delete(&format!("/api/secrets/{secret_id}")).await;
    assert_eq!(status, 409);
    assert_eq!(refused["error"], "secret_in_use");
    assert_eq!(refused["message"], "secret 'api-token' is in use by rule chain 'Uplink' (node 'Notify')");
    assert_eq!(
        refused["references"]["RULE_CHAIN"],
        json!([{"id": chain_id, "name": "Uplink", "nodes": [
            {"id": node_id, "name": "Notify", "path": "/nodes/0/configuration/credentials/token"}]}])
    );
    let (_, mut usages) = api.get(&format!("/api/secrets/{secret_id}/usages")).await;
    // The usages also say when the chain last used it (the refusal does not).
    let used = usages["RULE_CHAIN"][0].as_object_mut().unwrap().remove("lastUsedTime");
    assert!(used.is_some_and(|t| t.is_i64()), "{usages}");
    assert_eq!(usages, refused["references"]);
    assert_eq!(api.delete(&format!("/api/rule-chains/{chain_id}")).await.0, 204);
    assert_eq!(api.delete(&format!("/api/secrets/{secret_id}")).await.0, 204);
    assert_eq!(api.get(&format!("/api/rule-chains/{chain_id}")).await.0, 404);
    assert_no_leak(&server.logs(), &[TOKEN_V1, TOKEN_V2]);
}

#[tokio::test]
async fn validation_reports_every_problem_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    api.post(
        "/api/secrets",
        json!({"name": "cert", "type": "FILE", "fileName": "c.pem", "value": STANDARD.encode("PEM")}),
    )
    .await;
    let chain = json!({
        "name": "Broken",
        "firstNodeIndex": 0,
        "nodes": [
            {"type": "rest_api_call", "name": "Call", "configuration": {
                "restEndpointUrlPattern": "http://x/$<secret:missing>",
                "requestMethod": "$<secret:cert>",
                "headers": {"A": "$<secret:>", "B": "$<secret:cert>"},
                "credentials": {"type": "bearer"}
            }},
            {"type": "no_such_node", "name": "Ghost", "configuration": {}}
        ],
        "connections": [{"fromIndex": 0, "toIndex": 7, "type": "Success"}]
    });
    let (status, resp) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"], "invalid_config");
    let mut problems: Vec<(String, String)> = resp["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].as_str().unwrap().to_owned(), p["message"].as_str().unwrap().to_owned()))
        .collect();
    problems.sort();
    let expected = [
        ("/connections/0/toIndex", "is 7, but the chain has 2 nodes"),
        ("/nodes/0/configuration/credentials/token", "is required for 'bearer' credentials"),
        (
            "/nodes/0/configuration/headers/A",
            "malformed placeholder at character 0: secret name: must not be empty",
        ),
        ("/nodes/0/configuration/headers/B", "secret 'cert' is a FILE secret; this field accepts TEXT"),
        (
            "/nodes/0/configuration/requestMethod",
            "secret placeholders are not allowed in this field (it is not secret-capable)",
        ),
        ("/nodes/0/configuration/restEndpointUrlPattern", "secret 'missing' does not exist"),
        (
            "/nodes/1/type",
            "unknown node type 'no_such_node' (known: rest_api_call, script, mqtt, rabbitmq, log, placeholder, integration_downlink)",
        ),
    ];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    // requestMethod also fails its own check; every listed problem must be there.
    for e in &expected {
        assert!(problems.contains(e), "missing {e:?} in {problems:#?}");
    }
    let (_, listed) = api.get("/api/rule-chains").await;
    assert_eq!(listed["totalElements"], 0, "nothing was saved");
}

#[tokio::test]
async fn errors_and_logs_never_show_a_value_and_chains_restart_with_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let key = "key-canary-5551234-abcdef";
    api.post("/api/secrets", json!({"name": "k", "type": "TEXT", "value": key})).await;
    let receiver = Receiver::start().await;
    receiver.answer_with(503);
    // Port 9 on loopback is closed: the call fails to connect, with the key in the URL.
    let chain = json!({
        "name": "Failing",
        "nodes": [
            {"type": "rest_api_call", "name": "Unreachable", "debugMode": true, "configuration": {
                "restEndpointUrlPattern": "http://127.0.0.1:9/?apiKey=$<secret:k>", "requestMethod": "GET"}},
            {"type": "rest_api_call", "name": "Unavailable", "debugMode": true, "configuration": {
                "restEndpointUrlPattern": format!("{}/?apiKey=$<secret:k>", receiver.url), "requestMethod": "POST"}}
        ],
        "connections": [{"fromIndex": 0, "toIndex": 1, "type": "Failure"}]
    });
    let (status, created) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, result) =
        api.post(&format!("/api/rule-chains/{id}/messages?wait=true"), json!({"data": {"x": 1}})).await;
    let trace = result["trace"].as_array().unwrap();
    assert_eq!(trace.len(), 2, "{result}");
    assert_eq!(trace[0]["relation"], json!(["Failure"]));
    assert!(trace[0]["error"].as_str().unwrap().starts_with("request failed"), "{result}");
    assert_eq!(trace[1]["error"], "HTTP 503 Service Unavailable");
    assert_eq!(receiver.requests()[0].uri, format!("/?apiKey={key}"), "the service got the value");
    let (_, events) = api.get(&format!("/api/rule-chains/{id}/events")).await;
    assert_eq!(events[0]["outputs"][0]["msg"]["metadata"]["error"], trace[0]["error"]);
    assert_no_leak(&format!("{result}{events}"), &[key]);

    assert!(server.terminate().success());
    assert_no_leak(&format!("{}{}", server.logs(), server.stdout()), &[key]);
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let (status, result) =
        api.post(&format!("/api/rule-chains/{id}/messages?wait=true"), json!({"data": {"x": 2}})).await;
    assert_eq!((status, result["trace"].as_array().map(Vec::len)), (200, Some(2)), "{result}");
    assert_eq!(receiver.requests().len(), 2, "the restarted chain called the service again");
}

/// The chain the README walks through deploys and works as described.
#[tokio::test]
async fn the_readme_example_chain_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    api.post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": "s3cr3t-t0ken"})).await;
    let chain = veil_examples::REST_BEARER_CHAIN.replace("http://127.0.0.1:9000", &receiver.url);
    let (status, created) = api.post("/api/rule-chains", serde_json::from_str(&chain).unwrap()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let message = json!({"metadata": {"deviceName": "thermo-7"}, "data": {"temperature": 22}});
    let (_, result) = api.post(&format!("/api/rule-chains/{id}/messages?wait=true"), message).await;
    assert_eq!(result["trace"][1]["relation"], json!(["Success"]), "{result}");
    let seen = &receiver.requests()[0];
    assert_eq!(
        (seen.uri.as_str(), seen.headers["authorization"].as_str()),
        ("/telemetry/thermo-7", "Bearer s3cr3t-t0ken")
    );
}

#[tokio::test]
async fn updating_a_chain_replaces_its_references_and_a_loop_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    let (_, old) =
        api.post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": "old-value"})).await;
    api.post("/api/secrets", json!({"name": "new-token", "type": "TEXT", "value": "new-value"})).await;
    let (_, chain) = api.post("/api/rule-chains", rest_chain(&receiver.url)).await;
    let id = chain["id"].as_str().unwrap().to_owned();

    let mut changed = rest_chain(&receiver.url);
    changed["nodes"][0]["configuration"]["credentials"]["token"] = json!("$<secret:new-token>");
    let (status, updated) =
        api.send(api.req(reqwest::Method::PUT, &format!("/api/rule-chains/{id}")).json(&changed)).await;
    assert_eq!(status, 200, "{updated}");
    api.post(&format!("/api/rule-chains/{id}/messages?wait=true"), json!({"data": {}})).await;
    assert_eq!(receiver.requests()[0].headers["authorization"], "Bearer new-value");
    // The old secret is no longer referenced.
    assert_eq!(api.delete(&format!("/api/secrets/{}", old["id"].as_str().unwrap())).await.0, 204);

    // A node routed back to itself: the message is stopped, not processed forever.
    let looping = json!({
        "name": "Loop",
        "nodes": [{"type": "log", "name": "Again", "configuration": {}}],
        "connections": [{"fromIndex": 0, "toIndex": 0, "type": "Success"}]
    });
    let (_, created) = api.post("/api/rule-chains", looping).await;
    let loop_id = created["id"].as_str().unwrap();
    let (status, result) =
        api.post(&format!("/api/rule-chains/{loop_id}/messages?wait=true"), json!({"data": {}})).await;
    assert_eq!(status, 200);
    let trace = result["trace"].as_array().unwrap();
    assert_eq!(trace.len(), 1001);
    assert!(
        trace[1000]["error"].as_str().unwrap().contains("more than 1000 node executions"),
        "{}",
        trace[1000]
    );
    // Without ?wait the message is accepted and processed in the background.
    let (status, accepted) = api.post(&format!("/api/rule-chains/{id}/messages"), json!({"data": {}})).await;
    assert_eq!((status, accepted["msgId"].is_string()), (202, true));
}
