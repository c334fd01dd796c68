use serde_json::{Value, json};
use veil_core::MASK;
use veil_tests::sealed::{ATTEMPTS, Outcome, derived_forms, script_for};
use veil_tests::{Receiver, TempStore, assert_no_leak};

use crate::support::run;

const VALUE: &str = "Kq7-Zx4Wv-9Tn2Rb";

fn chain(script: &str, then: Value) -> Value {
    json!({
        "name": "Sealed",
        "nodes": [
            {"type": "script", "name": "Script", "debugMode": true, "configuration": {"mode": "transform", "script": script}},
            then
        ],
        "connections": [{"fromIndex": 0, "toIndex": 1, "type": "Success"}]
    })
}

/// Every attempt of the table either fails naming the operation or shows `***`; no trace or debug
/// event holds the value or any form derived from it.
#[tokio::test]
async fn no_attempt_turns_a_sealed_secret_into_data() {
    let env = TempStore::new().await;
    env.text("canary", VALUE).await;
    assert!(ATTEMPTS.len() >= 30);
    let forms = derived_forms(VALUE);
    let forms: Vec<&str> = forms.iter().map(String::as_str).collect();
    let mut failures = Vec::new();
    for attempt in ATTEMPTS {
        let log = json!({"type": "log", "name": "Log", "debugMode": true, "configuration": {}});
        let runtime = env.deploy_chain(&chain(&script_for(attempt, "canary"), log)).await.unwrap();
        let trace = run(&runtime, json!({"t": 1})).await;
        let events = runtime.debug_events();
        let everything = format!(
            "{}\n{}",
            serde_json::to_string(&trace).unwrap(),
            serde_json::to_string(&events).unwrap()
        );
        assert_no_leak(&everything, &forms);
        match attempt.outcome {
            Outcome::Error => {
                let error = trace[0].error.clone().unwrap_or_default();
                if trace[0].relation != ["Failure"] || !error.contains(attempt.error_says) {
                    failures.push(format!(
                        "{}: expected an error naming '{}', got {:?} {error}",
                        attempt.what, attempt.error_says, trace[0].relation
                    ));
                }
            }
            Outcome::Masked => {
                if trace[0].relation != ["Success"] {
                    failures.push(format!("{}: expected Success, got {trace:?}", attempt.what));
                    continue;
                }
                let out = &events[0].outputs[0].msg;
                let shown = format!("{}{}{:?}", out["data"], out["metadata"], events[0].notes);
                if attempt.what != "switch on it" && attempt.what != "type_of" && !shown.contains(MASK) {
                    failures.push(format!("{}: expected *** in {shown}", attempt.what));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A sealed value put into metadata by a script is opened by a following `rest_api_call` header
/// template (and only there): the receiver gets the header; traces and events show `***`.
#[tokio::test]
async fn a_header_built_in_a_script_reaches_the_next_rest_api_call() {
    let env = TempStore::new().await;
    env.text("api-token", VALUE).await;
    let receiver = Receiver::start().await;
    let call = json!({"type": "rest_api_call", "name": "Call", "debugMode": true, "configuration": {
        "restEndpointUrlPattern": format!("{}/x/${{deviceName}}", receiver.url), "requestMethod": "POST",
        "headers": {"Authorization": "${auth}", "X-Plain": "${plain}"}, "credentials": {"type": "anonymous"}}});
    let script = r#"metadata.auth = "Bearer " + secret("api-token"); metadata.plain = "p"; #{msg: #{tag: secret("api-token")}, metadata: metadata}"#;
    let runtime = env.deploy_chain(&chain(script, call)).await.unwrap();
    let trace = run(&runtime, json!({})).await;
    assert_eq!(trace[1].relation, ["Success"], "{trace:?}");
    let request = &receiver.requests()[0];
    assert_eq!(request.headers["authorization"], format!("Bearer {VALUE}"));
    assert_eq!(request.headers["x-plain"], "p");
    // The body is the message data: not a secret-capable field, so the sealed value is `***`.
    assert_eq!(request.body, format!("{{\"tag\":\"{MASK}\"}}"));
    let events = serde_json::to_string(&runtime.debug_events()).unwrap();
    assert_no_leak(&events, &[VALUE]);
    assert!(events.contains(&format!("\"auth\":\"{MASK}\"")), "{events}");
    assert!(!events.contains(veil_core::MARKER_START), "{events}");
}

/// In a customer's rule chain nothing opens a sealed value: a script sees `***` (a plain string)
/// and a header that would open one fails, sending nothing. Customers use secrets, they never
/// read them, and a sealed value may come from secrets not shared with them.
#[tokio::test]
async fn a_customers_chain_opens_no_sealed_value() {
    let env = TempStore::new().await;
    env.text("api-token", VALUE).await;
    let receiver = Receiver::start().await;
    let customer = veil_store::Actor {
        customer_id: Some(veil_store::CustomerId(uuid::Uuid::new_v4())),
        ..env.admin.clone()
    };
    let call = json!({"type": "rest_api_call", "name": "Call", "configuration": {
        "restEndpointUrlPattern": format!("{}/x", receiver.url), "requestMethod": "POST",
        "headers": {"Authorization": "${auth}"}, "credentials": {"type": "anonymous"}}});
    // The script leaves the metadata as it is (the marker goes on to the call).
    let script = r#"#{msg: #{seen: type_of(metadata.auth) + ":" + metadata.auth}}"#;
    let doc = chain(script, call);
    let deployment = veil_core::deploy(&env.registry(), &env.store, &customer, &doc).unwrap();
    let runtime =
        veil_core::ChainRuntime::new(uuid::Uuid::new_v4(), customer.tenant_id, env.store.clone(), deployment);
    // A message carrying a sealed value of the tenant (as a tenant integration's converter makes).
    let marker =
        veil_core::Sealed::new(env.admin.tenant_id, None, "api-token", VALUE.as_bytes(), 64 * 1024).marker();
    let msg =
        veil_core::Msg::new("POST_TELEMETRY_REQUEST", "device-1", json!({})).with_metadata("auth", marker);
    let trace = runtime.process(msg).await;
    assert_eq!(trace[0].relation, ["Success"], "{trace:?}");
    assert_eq!(trace[1].relation, ["Failure"], "{trace:?}");
    assert_eq!(
        trace[1].error.as_deref(),
        Some("message template: a sealed value in the message cannot be opened in a customer's rule chain")
    );
    assert!(receiver.requests().is_empty());
    let events = serde_json::to_string(&runtime.debug_events()).unwrap();
    assert!(events.contains(&format!("\"seen\":\"string:{MASK}\"")), "{events}");
    assert_no_leak(&events, &[VALUE]);
}

fn call_with(receiver: &Receiver, extra: Value) -> Value {
    let mut config = json!({"restEndpointUrlPattern": format!("{}/x", receiver.url), "requestMethod": "POST",
                            "credentials": {"type": "anonymous"}});
    config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!({"type": "rest_api_call", "name": "Call", "debugMode": true, "configuration": config})
}

/// Handlebars sees a handle of fixed length for each sealed value (`len` tells nothing), and has
/// no `log` helper to write one to the server log.
#[tokio::test]
async fn handlebars_learns_nothing_of_a_sealed_value() {
    let env = TempStore::new().await;
    env.text("short", "ab").await;
    env.text("long", &"z".repeat(300)).await;
    let receiver = Receiver::start().await;
    let script =
        r#"metadata.a = secret("short"); metadata.b = secret("long"); #{msg: msg, metadata: metadata}"#;
    let body = json!({"bodyTemplate": "{\"a\": {{len metadata.a}}, \"b\": {{len metadata.b}}}"});
    let runtime = env.deploy_chain(&chain(script, call_with(&receiver, body))).await.unwrap();
    assert_eq!(run(&runtime, json!({})).await[1].relation, ["Success"]);
    let sent: Value = serde_json::from_str(&receiver.requests()[0].body).unwrap();
    assert_eq!(sent["a"], sent["b"], "{sent}");

    let logged = json!({"bodyTemplate": "{{log metadata.a}}"});
    let runtime = env.deploy_chain(&chain(script, call_with(&receiver, logged))).await.unwrap();
    let trace = run(&runtime, json!({})).await;
    assert_eq!(trace[1].relation, ["Failure"], "{trace:?}");
    assert!(trace[1].error.as_deref().unwrap().contains("log"), "{trace:?}");
}

/// A sealed value made from a secret deleted since is not sent.
#[tokio::test]
async fn a_sealed_value_of_a_deleted_secret_is_not_sent() {
    let env = TempStore::new().await;
    let receiver = Receiver::start().await;
    let doc = json!({"name": "Forward", "nodes": [call_with(&receiver, json!({"headers": {"Authorization": "${k}"}}))]});
    let runtime = env.deploy_chain(&doc).await.unwrap();
    let marker =
        veil_core::Sealed::new(env.admin.tenant_id, Some(runtime.id()), "gone", b"old-value", 64).marker();
    let msg = veil_core::Msg::new("T", "d", json!({})).with_metadata("k", marker);
    let trace = runtime.process(msg).await;
    assert_eq!(trace[0].relation, ["Failure"]);
    assert_eq!(
        trace[0].error.as_deref(),
        Some(
            "message template: a sealed value in the message was made from secret 'gone', which no longer exists"
        )
    );
    assert!(receiver.requests().is_empty());
}

/// A refused host made from a sealed value is not shown (it could be the value in another form).
#[tokio::test]
async fn a_refused_host_made_from_a_sealed_value_is_not_shown() {
    let env = TempStore::new().await;
    let secret = veil_tests::text_secret("pin", "12345678");
    let limited = veil_store::NewSecret { allowed_destinations: vec!["api.example.com".into()], ..secret };
    env.store.create(&env.admin, limited).await.unwrap();
    let receiver = Receiver::start().await;
    let script = r#"metadata.u = "http://" + secret("pin") + "/x"; #{msg: msg, metadata: metadata}"#;
    let call = call_with(&receiver, json!({"restEndpointUrlPattern": "${u}"}));
    let runtime = env.deploy_chain(&chain(script, call)).await.unwrap();
    let trace = run(&runtime, json!({})).await;
    let error = trace[1].error.clone().unwrap();
    assert_eq!(
        error,
        "secret 'pin' may not be sent to the URL's host (made from a sealed value) (its allowedDestinations: \
         api.example.com); nothing was sent"
    );
    let events = serde_json::to_string(&runtime.debug_events()).unwrap();
    assert!(!events.contains("0.188.97.78"), "the value read as an IPv4 address: {events}");
}

/// What an upstream echoes of the request reaches the next node masked: a script cannot read it.
#[tokio::test]
async fn an_upstreams_echo_reaches_the_next_script_masked() {
    let env = TempStore::new().await;
    env.text("api-token", VALUE).await;
    let receiver = Receiver::start().await;
    receiver.reflect();
    let doc = json!({"name": "Echo", "nodes": [
        {"type": "script", "name": "Seal", "configuration": {"mode": "transform",
            "script": r#"metadata.auth = "Bearer " + secret("api-token"); #{msg: msg, metadata: metadata}"#}},
        call_with(&receiver, json!({"headers": {"Authorization": "${auth}"}})),
        {"type": "script", "name": "Read", "debugMode": true, "configuration": {"mode": "transform",
            "script": "#{msg: #{h: msg.headers.authorization, n: msg.headers.authorization.len()}}"}}],
        "connections": [{"fromIndex": 0, "toIndex": 1, "type": "Success"}, {"fromIndex": 1, "toIndex": 2, "type": "Success"}]});
    let runtime = env.deploy_chain(&doc).await.unwrap();
    let trace = run(&runtime, json!({})).await;
    assert_eq!(trace[2].relation, ["Success"], "{trace:?}");
    assert_eq!(receiver.requests()[0].headers["authorization"], format!("Bearer {VALUE}"));
    let events = runtime.debug_events();
    let read = events.iter().find(|e| e.node_name == "Read").unwrap();
    assert_eq!(read.outputs[0].msg["data"], json!({"h": "Bearer ***", "n": 10}));
}

/// A sealed value opens only in the rule chain it was sealed for: a marker copied into another
/// chain's message (even of the same tenant) sends nothing.
#[tokio::test]
async fn a_marker_opens_only_in_its_chain() {
    let env = TempStore::new().await;
    env.text("api-token", VALUE).await;
    let receiver = Receiver::start().await;
    let doc = json!({"name": "Forward", "nodes": [call_with(&receiver, json!({"headers": {"Authorization": "${k}"}}))]});
    let runtime = env.deploy_chain(&doc).await.unwrap();
    let send = |scope| {
        let marker =
            veil_core::Sealed::new(env.admin.tenant_id, scope, "api-token", VALUE.as_bytes(), 64).marker();
        runtime.process(veil_core::Msg::new("T", "d", json!({})).with_metadata("k", marker))
    };
    let trace = send(Some(uuid::Uuid::new_v4())).await;
    assert_eq!(trace[0].relation, ["Failure"]);
    assert!(
        trace[0].error.as_deref().unwrap().contains("it was not sealed for this rule chain"),
        "{trace:?}"
    );
    assert!(receiver.requests().is_empty());
    assert_eq!(send(Some(runtime.id())).await[0].relation, ["Success"]);
    assert_eq!(receiver.requests()[0].headers["authorization"], VALUE);
}
