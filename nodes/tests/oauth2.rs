//! rest_api_call with `oauth2` credentials against a real token endpoint on loopback: the
//! settings checked at save (each at its pointer, the token URL against the client secret's
//! allowed destinations), every way a token request fails (to `Failure`, naming the endpoint,
//! masked), concurrent messages sharing one token request (issued or failed), and a pending
//! client secret probed with a token request of its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use veil_core::{ChainRuntime, Probe, TraceStep};
use veil_store::SecretValue;
use veil_tests::{OAuthServer, TempStore, assert_no_leak, text_secret};

use crate::support::run;

/// A client secret whose Basic form needs form-urlencoding (RFC 6749 §2.3.1).
const SECRET: &str = "cs-N0de+/:&-7f3a";

fn chain(url: &str, credentials: Value) -> Value {
    json!({"name": "OAuth", "nodes": [{"id": "call-1", "type": "rest_api_call", "name": "Call", "debugMode": true,
        "configuration": {"restEndpointUrlPattern": format!("{url}/data"), "requestMethod": "POST",
                          "readTimeoutMs": 5000, "credentials": credentials}}]})
}

fn oauth(token_url: &str) -> Value {
    json!({"type": "oauth2", "tokenUrl": token_url, "clientId": "node-client",
           "clientSecret": "$<secret:client-secret>"})
}

fn error(trace: &[TraceStep]) -> String {
    assert_eq!(trace[0].relation, ["Failure"], "{trace:?}");
    trace[0].error.clone().unwrap()
}

/// Runs `n` messages at once.
async fn concurrently(runtime: &Arc<ChainRuntime>, n: usize) -> Vec<Vec<TraceStep>> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let runtime = Arc::clone(runtime);
            tokio::spawn(async move { run(&runtime, json!({"i": i})).await })
        })
        .collect();
    let mut traces = Vec::new();
    for task in tasks {
        traces.push(task.await.unwrap());
    }
    traces
}

#[tokio::test]
async fn oauth2_settings_are_checked_at_save_each_at_its_pointer() {
    let env = TempStore::new().await;
    let limited = veil_store::NewSecret {
        allowed_destinations: vec!["api.example.com".into()],
        ..text_secret("client-secret", SECRET)
    };
    env.store.create(&env.admin, limited).await.unwrap();
    env.text("open-secret", "anywhere").await;
    let problems = async |credentials: Value| -> BTreeMap<String, String> {
        let problems = env.deploy_chain(&chain("https://api.example.com", credentials)).await.unwrap_err();
        problems
            .into_iter()
            .map(|p| (p.path.replace("/nodes/0/configuration/credentials/", ""), p.message))
            .collect()
    };
    let at = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };

    assert_eq!(
        problems(json!({"type": "oauth2"})).await,
        at(&[
            ("clientId", "is required for 'oauth2' credentials"),
            ("clientSecret", "is required for 'oauth2' credentials"),
            ("tokenUrl", "is required for 'oauth2' credentials (the token endpoint's URL)"),
        ])
    );
    assert_eq!(
        problems(json!({"type": "oauth2", "tokenUrl": "ftp://auth.example.com/token", "clientId": " ",
            "clientSecret": "$<secret:open-secret>", "scope": "", "clientAuthentication": "post"}))
        .await,
        at(&[
            ("clientId", "is required for 'oauth2' credentials: it is empty"),
            ("scope", "is empty: leave the field out to send no scope"),
            ("clientAuthentication", "'post' is not one of basic, body"),
            ("tokenUrl", "must be an http or https URL, not ftp:"),
        ])
    );
    // The client secret goes to the token endpoint: its host must be on the secret's list.
    assert_eq!(
        problems(oauth("https://auth.example.com/oauth/token")).await,
        at(&[(
            "tokenUrl",
            "secret 'client-secret' may not be sent to auth.example.com:443 (its allowedDestinations: api.example.com)"
        )])
    );
    // So must a client id's secret.
    let id_limited = json!({"type": "oauth2", "tokenUrl": "https://auth.example.com/token",
        "clientId": "$<secret:client-secret>", "clientSecret": "$<secret:open-secret>"});
    let found = problems(id_limited).await;
    assert!(
        found["tokenUrl"].starts_with("secret 'client-secret' may not be sent to auth.example.com:443"),
        "{found:?}"
    );
    // The token URL is not secret-capable: a placeholder there is refused, not sent.
    let found = problems(json!({"type": "oauth2", "tokenUrl": "https://$<secret:open-secret>/token",
        "clientId": "c", "clientSecret": "$<secret:open-secret>"}))
    .await;
    assert!(found.contains_key("tokenUrl"), "{found:?}");
    // Allowed there: saved.
    let allowed = json!({"type": "oauth2", "tokenUrl": "https://api.example.com/oauth/token",
        "clientId": "node-client", "clientSecret": "$<secret:client-secret>", "scope": "read write",
        "audience": "https://api.example.com/", "clientAuthentication": "body"});
    env.deploy_chain(&chain("https://api.example.com", allowed)).await.unwrap();
}

#[tokio::test]
async fn a_failed_token_request_goes_to_failure_naming_the_endpoint_masked() {
    let env = TempStore::new().await;
    env.text("client-secret", SECRET).await;
    let server = OAuthServer::start("node-client", SECRET).await;
    let at = server.host();
    let runtime = env.deploy_chain(&chain(&server.url, oauth(&server.token_url()))).await.unwrap();

    // The endpoint refuses the client and quotes what it got: the secret is masked.
    server.set_client_secret("another-secret");
    let e = error(&run(&runtime, json!({})).await);
    assert!(
        e.starts_with(&format!(
            "oauth2: the token endpoint {at} answered HTTP 401 Unauthorized: {{\"error\":\"invalid_client\""
        )),
        "{e}"
    );
    assert!(e.contains("basic: id 'node-client', secret '***'"), "{e}");
    assert_no_leak(&e, &[SECRET]);
    server.set_client_secret(SECRET);

    let long = "e".repeat(1000);
    let huge = "x".repeat(70_000);
    for (status, body, says) in [
        (
            200,
            "<html>not json</html>",
            "answered with a body that is not a JSON object (21 bytes)".to_owned(),
        ),
        (200, r#"{"token_type":"Bearer"}"#, "answered without access_token".to_owned()),
        (
            200,
            r#"{"access_token":"mac-t0ken","token_type":"mac"}"#,
            "answered with token_type 'mac' (only Bearer tokens are supported)".to_owned(),
        ),
        (
            200,
            r#"{"access_token":"bad\nheader"}"#,
            "oauth2: the access token from {at}: the rendered value is not a valid HTTP header value"
                .to_owned(),
        ),
        (500, "", "answered HTTP 500 Internal Server Error".to_owned()),
        (502, long.as_str(), format!("answered HTTP 502 Bad Gateway: {}…", "e".repeat(256))),
        (
            200,
            huge.as_str(),
            "answered with more than 65536 bytes (the most a token response may have)".to_owned(),
        ),
    ] {
        server.answer_token_with(Some((status, body)));
        let before = server.token_requests().len();
        let e = error(&run(&runtime, json!({})).await);
        let expected = if says.starts_with("oauth2:") {
            says.replace("{at}", &at)
        } else {
            format!("oauth2: the token endpoint {at} {says}")
        };
        assert_eq!(e, expected, "{status} {body:.40}");
        assert_eq!(server.token_requests().len(), before + 1, "a failure is not kept for the next message");
    }
    assert!(server.api_requests().is_empty(), "nothing reached the API without a token");
    let events = serde_json::to_string(&runtime.debug_events()).unwrap();
    assert_no_leak(&events, &[SECRET]);

    // The endpoint is down.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = env
        .deploy_chain(&chain(&server.url, oauth(&format!("http://127.0.0.1:{port}/token"))))
        .await
        .unwrap();
    let e = error(&run(&down, json!({})).await);
    assert!(
        e.starts_with(&format!("oauth2: the token request to 127.0.0.1:{port} failed: connection refused (")),
        "{e}"
    );
}

#[tokio::test]
async fn concurrent_messages_share_one_token_request_issued_or_failed() {
    let env = TempStore::new().await;
    env.text("client-secret", SECRET).await;
    let server = OAuthServer::start("node-client", SECRET).await;
    let mut credentials = oauth(&server.token_url());
    credentials["clientAuthentication"] = json!("body");
    credentials["scope"] = json!("read write");
    credentials["audience"] = json!("https://api.example.com/");
    let runtime = env.deploy_chain(&chain(&server.url, credentials)).await.unwrap();
    server.token_delay(Duration::from_millis(300));

    // A slow endpoint failing: the messages waiting for its answer share it.
    server.answer_token_with(Some((503, "busy")));
    let traces = concurrently(&runtime, 20).await;
    let at = server.host();
    for trace in &traces {
        assert_eq!(
            error(trace),
            format!("oauth2: the token endpoint {at} answered HTTP 503 Service Unavailable: busy")
        );
    }
    assert_eq!(server.token_requests().len(), 1);

    // Then a token: one request for all of them, and each sends it.
    server.answer_token_with(None);
    let traces = concurrently(&runtime, 20).await;
    assert!(traces.iter().all(|t| t[0].relation == ["Success"]), "{traces:?}");
    let requests = server.token_requests();
    assert_eq!(requests.len(), 2);
    let request = &requests[1];
    assert_eq!((request.auth, request.accepted), ("body", true));
    assert_eq!(request.headers["content-type"], "application/x-www-form-urlencoded");
    let form: BTreeMap<&str, &str> = request.form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        form,
        BTreeMap::from([
            ("grant_type", "client_credentials"),
            ("scope", "read write"),
            ("audience", "https://api.example.com/"),
            ("client_id", "node-client"),
            ("client_secret", SECRET),
        ])
    );
    let issued = server.issued();
    assert_eq!(issued.len(), 1);
    let api = server.api_requests();
    assert_eq!(api.len(), 20);
    assert!(api.iter().all(|r| r.status == 200 && r.token.as_deref() == Some(issued[0].as_str())), "{api:?}");
    // The API echoes the token: the next node gets it masked.
    let events = serde_json::to_string(&runtime.debug_events()).unwrap();
    assert_no_leak(&events, &[SECRET, &issued[0]]);
}

#[tokio::test]
async fn a_pending_client_secret_is_probed_with_a_token_request_of_its_own() {
    let env = TempStore::new().await;
    env.text("client-secret", SECRET).await;
    let server = OAuthServer::start("node-client", SECRET).await;
    let at = server.host();
    let only = |found: Vec<(String, String, Probe)>| {
        assert_eq!(found.len(), 1, "{found:?}");
        found.into_iter().next().unwrap().2
    };
    let runtime = env.deploy_chain(&chain(&server.url, oauth(&server.token_url()))).await.unwrap();
    assert!(runtime.node_reconnects("call-1"), "a value change drops the token");

    // The endpoint does not know the pending value yet.
    match only(runtime.probe("client-secret", &SecretValue::from("pending-2")).await) {
        Probe::Failed(reason) => {
            assert!(
                reason.starts_with(&format!("oauth2: the token endpoint {at} answered HTTP 401")),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    server.set_client_secret("pending-2");
    assert_eq!(
        only(runtime.probe("client-secret", &SecretValue::from("pending-2")).await),
        Probe::Ok(format!("the token endpoint {at} issued an access token"))
    );

    // With a probe request, it is sent with the token the pending value got.
    let mut doc = chain(&server.url, oauth(&server.token_url()));
    doc["nodes"][0]["configuration"]["probe"] =
        json!({"method": "GET", "url": format!("{}/health", server.url)});
    let probed = env.deploy_chain(&doc).await.unwrap();
    assert_eq!(
        only(probed.probe("client-secret", &SecretValue::from("pending-2")).await),
        Probe::Ok(format!("GET {at} answered HTTP 200"))
    );
    let last = server.api_requests().pop().unwrap();
    assert_eq!(last.token, server.issued().pop());
}
