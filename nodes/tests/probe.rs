//! Probes: what each node type does with a pending value (a staged rotation) — a TLS handshake
//! with a pending client certificate, a named request with pending credentials, nothing for a
//! script — without sending a message and without touching the running node's own connection.

use serde_json::json;
use veil_core::Probe;
use veil_store::SecretValue;
use veil_tests::tls::{MutualTls, der};
use veil_tests::{Receiver, TempStore};

use crate::support::{new_pki, run};

fn only(found: Vec<(String, String, Probe)>) -> Probe {
    assert_eq!(found.len(), 1, "{found:?}");
    found.into_iter().next().unwrap().2
}

#[tokio::test]
async fn a_pending_client_certificate_is_tried_in_a_handshake_of_its_own() {
    let pki = new_pki();
    let listener = MutualTls::bind(&pki, &[&pki.ca]).await;
    let (port, seen) = (listener.port(), listener.seen());
    let app = axum::Router::new().fallback(|| async { axum::Json(json!({"mutual": "tls"})) });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let env = TempStore::new().await;
    env.file("ca", &pki.ca).await;
    env.file("client-cert", &pki.client_cert).await;
    env.file("client-key", &pki.client_key).await;
    let chain = json!({"name": "mTLS", "nodes": [{"id": "call-1", "type": "rest_api_call", "name": "Call", "configuration": {
        "restEndpointUrlPattern": format!("https://localhost:{port}/api"),
        "credentials": {"type": "cert.PEM", "caCert": "$<secret:ca>", "cert": "$<secret:client-cert>",
                        "privateKey": "$<secret:client-key>"}}}]});
    let runtime = env.deploy_chain(&chain).await.unwrap();
    assert!(runtime.node_reconnects("call-1"));

    // A renewed certificate for the same key, from the trusted CA: the server accepts it.
    let renewed = pki.certify(&pki.client_key, "veil-client-renewed");
    let found = only(runtime.probe("client-cert", &SecretValue::from(renewed.as_str())).await);
    assert_eq!(
        found,
        Probe::Ok(format!(
            "TLS handshake with the client certificate accepted by localhost:{port} (HTTP 200)"
        ))
    );
    assert_eq!(seen.lock().unwrap().clients.last(), Some(&der(&renewed)));

    // One from another CA: refused, and the reason says the TLS handshake failed.
    let foreign = new_pki().certify(&pki.client_key, "intruder");
    match only(runtime.probe("client-cert", &SecretValue::from(foreign.as_str())).await) {
        Probe::Failed(reason) => assert!(reason.contains("TLS handshake failed"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(seen.lock().unwrap().refused >= 1);

    // The node itself still presents the current certificate.
    let trace = run(&runtime, json!({"x": 1})).await;
    assert_eq!(trace[0].relation, ["Success"], "{trace:?}");
    assert_eq!(seen.lock().unwrap().clients.last(), Some(&der(&pki.client_cert)));
}

#[tokio::test]
async fn bearer_credentials_are_probed_only_through_a_named_request() {
    let receiver = Receiver::start().await;
    let env = TempStore::new().await;
    env.text("api-token", "token-current-1").await;
    let node = |probe: Option<serde_json::Value>| {
        let mut configuration = json!({
            "restEndpointUrlPattern": format!("{}/data/${{deviceName}}", receiver.url),
            "requestMethod": "POST",
            "credentials": {"type": "bearer", "token": "$<secret:api-token>"}
        });
        if let Some(probe) = probe {
            configuration["probe"] = probe;
        }
        json!({"name": "Bearer", "nodes": [{"type": "rest_api_call", "name": "Call", "configuration": configuration}]})
    };
    let pending = SecretValue::from("token-pending-2");

    // Without a probe: nothing is sent, and the row says how to get one.
    let plain = env.deploy_chain(&node(None)).await.unwrap();
    assert!(
        matches!(only(plain.probe("api-token", &pending).await), Probe::NotProbed(r) if r.contains("/probe"))
    );
    assert!(receiver.requests().is_empty());

    // With one: a GET with the pending token and no body; 2xx is OK, anything else FAILED.
    let probed = node(Some(json!({"method": "GET", "url": format!("{}/whoami", receiver.url)})));
    let runtime = env.deploy_chain(&probed).await.unwrap();
    let port = receiver.url.rsplit(':').next().unwrap().to_owned();
    assert_eq!(
        only(runtime.probe("api-token", &pending).await),
        Probe::Ok(format!("GET 127.0.0.1:{port} answered HTTP 200"))
    );
    let sent = receiver.requests().pop().unwrap();
    assert_eq!((sent.method.as_str(), sent.uri.as_str(), sent.body.as_str()), ("GET", "/whoami", ""));
    assert_eq!(sent.headers["authorization"], "Bearer token-pending-2");
    receiver.answer_with(401);
    assert_eq!(
        only(runtime.probe("api-token", &pending).await),
        Probe::Failed(format!("GET 127.0.0.1:{port} answered HTTP 401"))
    );

    // A probe URL that uses message data, or a method that changes something, is refused at save.
    for (probe, pointer, says) in [
        (json!({"method": "GET", "url": "http://127.0.0.1/${deviceName}"}), "/probe/url", "message data"),
        (json!({"method": "POST", "url": "http://127.0.0.1/"}), "/probe/method", ""),
    ] {
        let problems = env.deploy_chain(&node(Some(probe))).await.unwrap_err();
        let problem =
            problems.iter().find(|p| p.path.ends_with(pointer)).unwrap_or_else(|| panic!("{problems:?}"));
        assert!(problem.message.contains(says), "{problem:?}");
    }
}

#[tokio::test]
async fn a_script_that_reads_a_secret_is_not_probed() {
    let env = TempStore::new().await;
    env.text("salt", "salt-value-123").await;
    let chain = json!({"name": "Script", "nodes": [{"type": "script", "name": "Sign", "configuration": {
        "mode": "transform",
        "script": "let m = msg; m.signed = hmac_sha256_hex(secret(\"salt\"), \"x\"); #{msg: m}"}}]});
    let runtime = env.deploy_chain(&chain).await.unwrap();
    match only(runtime.probe("salt", &SecretValue::from("salt-value-456")).await) {
        Probe::NotProbed(reason) => assert!(reason.contains("script"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
