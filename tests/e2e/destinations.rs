//! Where a secret may be sent (`allowedDestinations`), enforced against the real binary: a REST
//! URL templated from the message is checked per message (nothing sent, `Failure`, audit
//! `BLOCKED_DESTINATION`); destinations known at save (a literal URL, an MQTT or RabbitMQ broker,
//! LORIOT's API) are refused at save, naming the field, the secret and the host.

use serde_json::json;

use crate::support::{Api, Receiver, Server, assert_no_leak, problem_at};

const TOKEN: &str = "dest-token-PLAIN-5";

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_secret_goes_only_where_its_destinations_allow() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let (allowed, other) = (Receiver::start().await, Receiver::start().await);
    let allowed_host = format!("127.0.0.1:{}", port_of(&allowed.url));
    let other_host = format!("127.0.0.1:{}", port_of(&other.url));
    let (status, secret) = api
        .post(
            "/api/secrets",
            json!({"name": "api-token", "type": "TEXT", "value": TOKEN, "allowedDestinations": [allowed_host]}),
        )
        .await;
    assert_eq!(status, 201, "{secret}");

    // The URL comes from the message: checked per message.
    let chain = json!({"name": "Forward", "nodes": [{"type": "rest_api_call", "name": "Call", "configuration": {
        "restEndpointUrlPattern": "http://$[host]/ingest", "requestMethod": "POST",
        "credentials": {"type": "bearer", "token": "$<secret:api-token>"}}}]});
    let (status, chain) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{chain}");
    let messages = format!("/api/rule-chains/{}/messages?wait=true", chain["id"].as_str().unwrap());
    let (status, trace) = api.post(&messages, json!({"data": {"host": allowed_host}})).await;
    assert_eq!((status, trace["trace"][0]["relation"].clone()), (200, json!(["Success"])), "{trace}");
    assert_eq!(allowed.requests()[0].headers["authorization"], format!("Bearer {TOKEN}"));

    let (status, trace) = api.post(&messages, json!({"data": {"host": other_host}})).await;
    assert_eq!((status, trace["trace"][0]["relation"].clone()), (200, json!(["Failure"])), "{trace}");
    let error = trace["trace"][0]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("secret 'api-token' may not be sent to {other_host}"))
            && error.contains("nothing was sent"),
        "{error}"
    );
    assert!(other.requests().is_empty(), "nothing reached the other receiver");
    let (_, audit) = api.get(&format!("/api/audit-logs?secretId={}", secret["id"].as_str().unwrap())).await;
    let blocked = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "BLOCKED_DESTINATION")
        .unwrap_or_else(|| panic!("no BLOCKED_DESTINATION in {audit}"));
    assert_eq!(blocked["actorName"], "RULE_CHAIN 'Forward'");
    assert_eq!(blocked["targetName"], "api-token");
    assert_eq!(blocked["outcome"], "FAILURE");
    assert_eq!(
        (blocked["details"]["destination"].as_str(), blocked["details"]["node"].as_str()),
        (Some(other_host.as_str()), Some("Call"))
    );

    // A host that comes from a secret is masked wherever the refusal is written.
    let (status, _) = api
        .post("/api/secrets", json!({"name": "hidden-host", "type": "TEXT", "value": "10.255.255.1"}))
        .await;
    assert_eq!(status, 201);
    let hidden = json!({"name": "Hidden", "nodes": [{"type": "rest_api_call", "name": "Call", "configuration": {
        "restEndpointUrlPattern": "http://$<secret:hidden-host>:9/x?t=$[t]",
        "credentials": {"type": "bearer", "token": "$<secret:api-token>"}}}]});
    let (status, hidden) = api.post("/api/rule-chains", hidden).await;
    assert_eq!(status, 201, "{hidden}");
    let path = format!("/api/rule-chains/{}/messages?wait=true", hidden["id"].as_str().unwrap());
    let (_, trace) = api.post(&path, json!({"data": {"t": 1}})).await;
    assert_eq!(trace["trace"][0]["relation"], json!(["Failure"]), "{trace}");
    let (_, audit) = api.get("/api/audit-logs?pageSize=100").await;
    assert_no_leak(&format!("{trace}{audit}{}", server.logs()), &["10.255.255.1"]);
    assert!(audit.to_string().contains("***:9"), "the masked destination is in the audit log: {audit}");

    // Known at save: refused at save.
    let literal = json!({"name": "Static", "nodes": [{"type": "rest_api_call", "name": "Call", "configuration": {
        "restEndpointUrlPattern": format!("{}/x", other.url),
        "credentials": {"type": "bearer", "token": "$<secret:api-token>"}}}]});
    let (status, body) = api.post("/api/rule-chains", literal).await;
    assert_eq!(status, 400, "{body}");
    let message = problem_at(&body, "/nodes/0/configuration/restEndpointUrlPattern");
    assert!(message.starts_with(&format!("secret 'api-token' may not be sent to {other_host}")), "{message}");
    let mqtt = json!({"name": "MQTT", "nodes": [{"type": "mqtt", "name": "Publish", "configuration": {
        "topicPattern": "t", "host": "127.0.0.1", "port": 1883,
        "credentials": {"type": "basic", "username": "u", "password": "$<secret:api-token>"}}}]});
    let (status, body) = api.post("/api/rule-chains", mqtt).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        problem_at(&body, "/nodes/0/configuration/host").contains("may not be sent to 127.0.0.1:1883"),
        "{body}"
    );
    let rabbit = json!({"name": "AMQP", "nodes": [{"type": "rabbitmq", "name": "Publish", "configuration": {
        "exchangeNamePattern": "x", "host": "127.0.0.1", "port": 5672, "username": "guest",
        "password": "$<secret:api-token>"}}]});
    let (status, body) = api.post("/api/rule-chains", rabbit).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        problem_at(&body, "/nodes/0/configuration/host").contains("may not be sent to 127.0.0.1:5672"),
        "{body}"
    );
    let (status, log_chain) = api
        .post(
            "/api/rule-chains",
            json!({"name": "Sink", "nodes": [{"type": "log", "name": "Log", "configuration": {}}]}),
        )
        .await;
    assert_eq!(status, 201, "{log_chain}");
    let mut loriot = veil_examples::loriot_integration(log_chain["id"].as_str().unwrap());
    loriot["configuration"]["apiBaseUrl"] = json!(other.url);
    loriot["configuration"]["credentials"]["password"] = json!("$<secret:api-token>");
    loriot["routingKey"] = json!("dest-loriot");
    let (status, body) = api.post("/api/integrations", loriot).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        problem_at(&body, "/configuration/apiBaseUrl").contains(&format!("may not be sent to {other_host}")),
        "{body}"
    );

    // Narrowing the list so that a destination known at save breaks is refused, naming the users.
    let literal_ok = json!({"name": "Literal", "nodes": [{"type": "rest_api_call", "name": "Post", "configuration": {
        "restEndpointUrlPattern": format!("{}/x", allowed.url),
        "credentials": {"type": "bearer", "token": "$<secret:api-token>"}}}]});
    let (status, body) = api.post("/api/rule-chains", literal_ok).await;
    assert_eq!(status, 201, "{body}");
    let path = format!("/api/secrets/{}", secret["id"].as_str().unwrap());
    let (status, refused) = api.patch(&path, json!({"allowedDestinations": ["api.example.com"]})).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("destinations_in_use")), "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("rule chain 'Literal' (/nodes/0/configuration/restEndpointUrlPattern)")
            && !message.contains("Forward"),
        "only the chain whose destination is known at save: {message}"
    );
    assert_eq!(refused["references"][0]["name"], "Literal");
    let (_, unchanged) = api.get(&path).await;
    assert_eq!(unchanged["allowedDestinations"], json!([allowed_host]));
    let (status, widened) =
        api.patch(&path, json!({"allowedDestinations": [allowed_host, "api.example.com"]})).await;
    assert_eq!(status, 200, "{widened}");

    // A script may read a secret that has a list: what it builds stays sealed and is checked
    // where a secret-capable field opens it (tests/e2e/sealed.rs); its one-way outputs (a
    // signature) are public. So a list can be set on a secret a script reads.
    let script = |name: &str, secret: &str| {
        json!({"name": name, "nodes": [{"type": "script", "name": "Sign", "configuration": {"mode": "transform",
            "script": format!("msg.sig = hmac_sha256_hex(secret(\"{secret}\"), \"x\"); #{{msg: msg, metadata: metadata, msgType: msgType}}")}}]})
    };
    let (status, body) = api.post("/api/rule-chains", script("Reads limited", "api-token")).await;
    assert_eq!(status, 201, "{body}");
    let (status, free) =
        api.post("/api/secrets", json!({"name": "hmac-key", "type": "TEXT", "value": "k"})).await;
    assert_eq!(status, 201);
    let (status, reads_free) = api.post("/api/rule-chains", script("Reads free", "hmac-key")).await;
    assert_eq!(status, 201, "{reads_free}");
    let (status, limited) = api
        .patch(
            &format!("/api/secrets/{}", free["id"].as_str().unwrap()),
            json!({"allowedDestinations": [allowed_host]}),
        )
        .await;
    assert_eq!(status, 200, "{limited}");
    for chain in [&body, &reads_free] {
        assert_eq!(api.delete(&format!("/api/rule-chains/{}", chain["id"].as_str().unwrap())).await.0, 204);
    }

    // "Destinations required": a secret without a list goes nowhere.
    let (_, settings) = api.get("/api/tenant-settings").await;
    assert_eq!(
        settings,
        json!({"destinationsRequired": false, "casRequired": false, "strictValues": false, "expiryNotices": null})
    );
    let (status, _) =
        api.post("/api/secrets", json!({"name": "open-token", "type": "TEXT", "value": TOKEN})).await;
    assert_eq!(status, 201);
    let open_literal = json!({"name": "Open literal", "nodes": [{"type": "rest_api_call", "name": "Post", "configuration": {
        "restEndpointUrlPattern": format!("{}/x", allowed.url),
        "credentials": {"type": "bearer", "token": "$<secret:open-token>"}}}]});
    let (status, open_literal) = api.post("/api/rule-chains", open_literal).await;
    assert_eq!(status, 201, "{open_literal}");
    let (status, refused) = api.put("/api/tenant-settings", json!({"destinationsRequired": true})).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("destinations_in_use")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("rule chain 'Open literal'"), "{refused}");
    assert_eq!(
        api.delete(&format!("/api/rule-chains/{}", open_literal["id"].as_str().unwrap())).await.0,
        204
    );
    let (status, on) = api.put("/api/tenant-settings", json!({"destinationsRequired": true})).await;
    assert_eq!((status, on["destinationsRequired"].as_bool()), (200, Some(true)));
    let open_templated = json!({"name": "Open templated", "nodes": [{"type": "rest_api_call", "name": "Post", "configuration": {
        "restEndpointUrlPattern": "http://$[host]/x", "credentials": {"type": "bearer", "token": "$<secret:open-token>"}}}]});
    let (status, open_templated) = api.post("/api/rule-chains", open_templated).await;
    assert_eq!(status, 201, "{open_templated}");
    let open_messages =
        format!("/api/rule-chains/{}/messages?wait=true", open_templated["id"].as_str().unwrap());
    let before = allowed.requests().len();
    let (_, trace) = api.post(&open_messages, json!({"data": {"host": allowed_host}})).await;
    assert_eq!(trace["trace"][0]["relation"], json!(["Failure"]), "{trace}");
    assert!(
        trace["trace"][0]["error"]
            .as_str()
            .unwrap()
            .contains("has no allowedDestinations and the tenant requires them"),
        "{trace}"
    );
    assert_eq!(allowed.requests().len(), before, "nothing sent");
    let (status, _) = api.put("/api/tenant-settings", json!({"destinationsRequired": false})).await;
    assert_eq!(status, 200);
    let (_, trace) = api.post(&open_messages, json!({"data": {"host": allowed_host}})).await;
    assert_eq!(trace["trace"][0]["relation"], json!(["Success"]), "{trace}");

    // The server's log says what was blocked, never the value.
    assert!(server.logs().contains("send blocked"));
    assert_no_leak(&server.logs(), &[TOKEN]);
    assert!(other.requests().is_empty());
}
