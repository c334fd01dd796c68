//! `rest_api_call` with `oauth2` credentials (client credentials grant) against the real binary,
//! logging at trace level, with a token endpoint and an API of the test's own on loopback: a token
//! is requested once for 1,000 concurrent messages, again when it expired, after a 401 (the
//! message is sent once more, and only once) and after the client secret's rotation; Basic and
//! body client authentication; the token and the client secret never show in a log, a debug event,
//! a trace, an error or the audit log; a token URL the client secret may not go to is refused at
//! save, and so is narrowing the secret's list under it.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::support::{Api, OAuthServer, Receiver, Server, assert_no_leak, leaks, problem_at, serve_command};

const CLIENT_ID: &str = "e2e-client";
/// Needs form-urlencoding in the Basic header (RFC 6749 §2.3.1).
const CLIENT_SECRET: &str = "e2e-Cl1ent+S3cret/:&-4d2";
const ROTATED: &str = "e2e-R0tated-S3cret-9b1c";

fn chain(name: &str, oauth: &OAuthServer, authentication: &str) -> Value {
    json!({"name": name, "nodes": [
        {"type": "rest_api_call", "name": "Call", "debugMode": true, "configuration": {
            "restEndpointUrlPattern": format!("{}/ingest/${{deviceName}}", oauth.url),
            "requestMethod": "POST", "readTimeoutMs": 10000,
            "credentials": {"type": "oauth2", "tokenUrl": oauth.token_url(), "clientId": CLIENT_ID,
                            "clientSecret": "$<secret:oauth-client>", "scope": "telemetry:write",
                            "clientAuthentication": authentication}}},
        {"type": "log", "name": "Log", "debugMode": true, "configuration": {"prefix": "sent: "}}
    ], "connections": [{"fromIndex": 0, "toIndex": 1, "type": "Success"}]})
}

/// One message through the chain, waiting for its trace (with the messages).
async fn send(api: &Api<'_>, chain: &str) -> Value {
    let path = format!("/api/rule-chains/{chain}/messages?wait=true&messages=true");
    let (status, answer) =
        api.post(&path, json!({"metadata": {"deviceName": "thermo-7"}, "data": {"temperature": 21}})).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

fn relation(answer: &Value) -> &Value {
    &answer["trace"][0]["relation"]
}

#[tokio::test]
async fn a_token_is_requested_once_refreshed_when_due_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(dir.path());
    cmd.env("VEIL_LOG", "trace");
    let server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    let oauth = OAuthServer::start(CLIENT_ID, CLIENT_SECRET).await;
    let (status, secret) = api
        .post(
            "/api/secrets",
            json!({"name": "oauth-client", "type": "TEXT", "value": CLIENT_SECRET,
                   "allowedDestinations": [oauth.host()]}),
        )
        .await;
    assert_eq!(status, 201, "{secret}");
    let (status, basic) = api.post("/api/rule-chains", chain("OAuth basic", &oauth, "basic")).await;
    assert_eq!(status, 201, "{basic}");
    let basic = basic["id"].as_str().unwrap().to_owned();
    // Everything a user or an operator sees, gathered for the leak check at the end.
    let mut seen = String::new();

    // Short-lived tokens: used while fresh, requested again when due (2 s: fresh for 1.8 s).
    oauth.expires_in(Some(2));
    for _ in 0..2 {
        let answer = send(&api, &basic).await;
        assert_eq!(relation(&answer), &json!(["Success"]), "{answer}");
        seen.push_str(&answer.to_string());
    }
    assert_eq!(oauth.token_requests().len(), 1, "the second message used the first token");
    let first = &oauth.token_requests()[0];
    assert_eq!((first.auth, first.accepted), ("basic", true), "{first:?}");
    assert_eq!(first.form.get("scope").map(String::as_str), Some("telemetry:write"));
    assert!(!first.form.contains_key("client_secret"), "Basic: the secret is not in the body");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answer = send(&api, &basic).await;
    assert_eq!(relation(&answer), &json!(["Success"]), "{answer}");
    assert_eq!(oauth.token_requests().len(), 2, "the expired token was replaced");
    assert_eq!(oauth.api_requests().last().unwrap().token, oauth.issued().pop());

    // 1,000 messages, 48 at a time, while a slow endpoint issues the next (long-lived) token: one
    // token request.
    oauth.expires_in(Some(3600));
    oauth.token_delay(Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let path = format!("/api/rule-chains/{basic}/messages?wait=true");
    let api_before = oauth.api_requests().len();
    let relations: Vec<Value> = futures_util::stream::iter(0..1000)
        .map(|n| {
            let (api, path) = (&api, &path);
            async move {
                let (status, answer) = api
                    .post(path, json!({"metadata": {"deviceName": format!("d-{n}")}, "data": {"n": n}}))
                    .await;
                assert_eq!(status, 200, "{answer}");
                relation(&answer).clone()
            }
        })
        .buffer_unordered(48)
        .collect()
        .await;
    assert!(
        relations.iter().all(|r| *r == json!(["Success"])),
        "{:?}",
        relations.iter().find(|r| **r != json!(["Success"]))
    );
    assert_eq!(oauth.token_requests().len(), 3, "one token request for 1,000 concurrent messages");
    let third = oauth.issued()[2].clone();
    let calls = oauth.api_requests();
    assert_eq!(calls.len() - api_before, 1000);
    assert!(calls[api_before..].iter().all(|c| c.status == 200 && c.token.as_ref() == Some(&third)));
    oauth.token_delay(Duration::ZERO);

    // A 401: the token is dropped, a new one requested, the request sent once more.
    oauth.reject_next(1);
    let answer = send(&api, &basic).await;
    assert_eq!(relation(&answer), &json!(["Success"]), "{answer}");
    seen.push_str(&answer.to_string());
    assert_eq!(oauth.token_requests().len(), 4);
    let calls = oauth.api_requests();
    let last_two: Vec<(u16, Option<String>)> =
        calls[calls.len() - 2..].iter().map(|c| (c.status, c.token.clone())).collect();
    assert_eq!(last_two, [(401, Some(third.clone())), (200, oauth.issued().pop())]);

    // Two 401s: one new token, one more try, then Failure with the API's answer.
    oauth.reject_next(2);
    let answer = send(&api, &basic).await;
    assert_eq!(relation(&answer), &json!(["Failure"]), "{answer}");
    assert_eq!(answer["trace"][0]["error"], "HTTP 401 Unauthorized", "{answer}");
    seen.push_str(&answer.to_string());
    assert_eq!(oauth.token_requests().len(), 5, "only one new token for one retry");
    let calls = oauth.api_requests();
    assert_eq!(calls[calls.len() - 2..].iter().map(|c| c.status).collect::<Vec<_>>(), [401, 401]);
    // That token is good: the next message uses it.
    assert_eq!(relation(&send(&api, &basic).await), &json!(["Success"]));
    assert_eq!(oauth.token_requests().len(), 5);

    // Rotating the client secret drops the token: the next message gets one with the new secret.
    let secret_path = format!("/api/secrets/{}", secret["id"].as_str().unwrap());
    oauth.set_client_secret(ROTATED);
    let (status, rotated) = api.patch(&secret_path, json!({"value": ROTATED})).await;
    assert_eq!(status, 200, "{rotated}");
    let answer = send(&api, &basic).await;
    assert_eq!(relation(&answer), &json!(["Success"]), "{answer}");
    seen.push_str(&answer.to_string());
    let requests = oauth.token_requests();
    assert_eq!(requests.len(), 6);
    assert!(requests[5].accepted, "{:?}", requests[5]);

    // Client authentication in the body.
    let (status, body_chain) = api.post("/api/rule-chains", chain("OAuth body", &oauth, "body")).await;
    assert_eq!(status, 201, "{body_chain}");
    let body_chain = body_chain["id"].as_str().unwrap().to_owned();
    let answer = send(&api, &body_chain).await;
    assert_eq!(relation(&answer), &json!(["Success"]), "{answer}");
    seen.push_str(&answer.to_string());
    let request = oauth.token_requests().pop().unwrap();
    assert_eq!((request.auth, request.accepted), ("body", true), "{request:?}");
    assert_eq!(request.form["client_id"], CLIENT_ID);
    assert!(!request.headers.contains_key("authorization"), "body: no Basic header");

    // A token endpoint that refuses the client and echoes the secret: Failure, masked, naming it.
    oauth.answer_token_with(Some((401, &format!(r#"{{"error":"invalid_client","echo":"{ROTATED}"}}"#))));
    oauth.reject_next(1);
    let answer = send(&api, &body_chain).await;
    assert_eq!(relation(&answer), &json!(["Failure"]), "{answer}");
    assert_eq!(
        answer["trace"][0]["error"],
        format!(
            r#"oauth2: the token endpoint {} answered HTTP 401 Unauthorized: {{"error":"invalid_client","echo":"***"}}"#,
            oauth.host()
        ),
        "{answer}"
    );
    seen.push_str(&answer.to_string());

    // The API echoes the token it got: the next node, debug events and the log see it masked.
    for id in [&basic, &body_chain] {
        let (status, events) = api.get(&format!("/api/rule-chains/{id}/events")).await;
        assert_eq!(status, 200);
        seen.push_str(&events.to_string());
    }
    assert!(seen.contains(r#""token":"***""#), "the echoed token is masked");
    let (_, audit) = api.get("/api/audit-logs?pageSize=1000").await;
    assert!(audit["data"].as_array().is_some_and(|d| !d.is_empty()), "{audit}");
    seen.push_str(&audit.to_string());
    let mut values = vec![CLIENT_SECRET.to_owned(), ROTATED.to_owned()];
    values.extend(oauth.issued());
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    assert_no_leak(&seen, &values);
    let logs = server.logs();
    assert!(logs.contains("TRACE"), "the server logged at trace level");
    let found = leaks(logs.as_bytes(), &values);
    assert!(found.is_empty(), "leaked into the log: {found:?}");
}

#[tokio::test]
async fn a_token_url_the_client_secret_may_not_go_to_is_refused_at_save() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let oauth = OAuthServer::start(CLIENT_ID, CLIENT_SECRET).await;
    // The API the token is for, elsewhere than the token endpoint.
    let service = Receiver::start().await;
    let service_host = service.url.trim_start_matches("http://").to_owned();
    let (status, secret) = api
        .post(
            "/api/secrets",
            json!({"name": "oauth-client", "type": "TEXT", "value": CLIENT_SECRET,
                   "allowedDestinations": [service_host]}),
        )
        .await;
    assert_eq!(status, 201, "{secret}");
    let secret_path = format!("/api/secrets/{}", secret["id"].as_str().unwrap());
    let pointer = "/nodes/0/configuration/credentials/tokenUrl";
    let doc = |name: &str| {
        let mut doc = chain(name, &oauth, "basic");
        doc["nodes"][0]["configuration"]["restEndpointUrlPattern"] = json!(format!("{}/ingest", service.url));
        doc
    };
    let (status, body) = api.post("/api/rule-chains", doc("Refused")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_config")), "{body}");
    assert_eq!(body["problems"].as_array().map(Vec::len), Some(1), "only the token URL: {body}");
    assert_eq!(
        problem_at(&body, pointer),
        format!(
            "secret 'oauth-client' may not be sent to {} (its allowedDestinations: {service_host})",
            oauth.host()
        )
    );

    // Allowed there too: saved. Then the list cannot be narrowed under the token URL.
    let (status, widened) =
        api.patch(&secret_path, json!({"allowedDestinations": [service_host, oauth.host()]})).await;
    assert_eq!(status, 200, "{widened}");
    let (status, saved) = api.post("/api/rule-chains", doc("Allowed")).await;
    assert_eq!(status, 201, "{saved}");
    let (status, refused) = api.patch(&secret_path, json!({"allowedDestinations": [service_host]})).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("destinations_in_use")), "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains(&format!("rule chain 'Allowed' ({pointer})")), "{message}");
    assert!(oauth.token_requests().is_empty() && service.requests().is_empty(), "nothing was sent");
}
