//! Staged rotation against the real binary: a pending value is tested on every consumer — an
//! MQTT node (a mosquitto with a password file), a LORIOT integration (the emulator) and a
//! rest_api_call with mutual TLS — reported per consumer, refused for promotion while one fails,
//! and once promoted used by every one of them.

use base64::Engine as _;
use serde_json::{Value, json};
use uuid::Uuid;
use veil_examples::loriot::{Emulator, EmulatorConfig};

use crate::cli::{ok, spawn_run};
use crate::cluster::{bearer_chain, instance};
use crate::support::mqtt::Broker;
use crate::support::tls::{MutualTls, Pki, der};
use crate::support::{ADMIN_PASSWORD, Api, PostgresDatabase, Receiver, Server, assert_no_leak, eventually};

const OLD: &str = "shared-pass-0ld-111";
const WRONG: &str = "shared-pass-wr0ng-222";
const NEW: &str = "shared-pass-n3w-333";

fn file(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

/// Polls the rotation of `secret` until no probe runs; the answer.
async fn probed(api: &Api<'_>, secret: &str) -> Value {
    let path = format!("/api/secrets/{secret}/rotation");
    eventually("every probe to answer", async || {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, 200, "{body}");
        (body["summary"]["probing"] == 0).then_some(body)
    })
    .await
}

/// The rows of a rotation as (type, name, node, result, reason).
fn rows(rotation: &Value) -> Vec<(String, String, String, String, String)> {
    rotation["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (text("type"), text("name"), text("node"), text("result"), text("reason"))
        })
        .collect()
}

async fn send(api: &Api<'_>, chain: &str, data: Value) {
    let (status, body) =
        api.post(&format!("/api/rule-chains/{chain}/messages?wait=true"), json!({"data": data})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["trace"].as_array().unwrap().iter().all(|s| s["relation"] != json!(["Failure"])), "{body}");
}

#[tokio::test]
#[ignore = "needs mosquitto (VEIL_TEST_MOSQUITTO)"]
async fn a_pending_value_is_tested_on_mqtt_loriot_and_mutual_tls_before_it_is_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let broker = Broker::with_passwords();
    broker.set_password("veil", OLD);
    let mut published = broker.watch("rotation/#").await;
    let emulator =
        Emulator::start(EmulatorConfig { password: OLD.into(), ..EmulatorConfig::default() }).await.unwrap();
    // The HTTPS service trusts two CAs: the client's current one, and the one its renewal comes from.
    let (pki, renewal_ca) = (Pki::new(), Pki::new());
    let tls = MutualTls::bind(&pki, &[&pki.ca, &renewal_ca.ca]).await;
    let (tls_port, handshakes) = (tls.port(), tls.seen());
    let app = axum::Router::new().fallback(|| async { axum::Json(json!({"ok": true})) });
    tokio::spawn(async move { axum::serve(tls, app).await });

    let mut ids = std::collections::HashMap::new();
    for (name, kind, value) in [
        ("shared-password", "TEXT", OLD.to_owned()),
        ("ca", "FILE", file(&pki.ca)),
        ("client-cert", "FILE", file(&pki.client_cert)),
        ("client-key", "FILE", file(&pki.client_key)),
    ] {
        let mut secret = json!({"name": name, "type": kind, "value": value});
        if kind == "FILE" {
            secret["fileName"] = json!(format!("{name}.pem"));
        }
        let (status, body) = api.post("/api/secrets", secret).await;
        assert_eq!(status, 201, "{body}");
        ids.insert(name, body["id"].as_str().unwrap().to_owned());
    }
    let chain = json!({"name": "Rotation", "firstNodeIndex": 0, "nodes": [
        {"type": "mqtt", "name": "Publish", "configuration": {
            "topicPattern": "rotation/${deviceName}", "host": "127.0.0.1", "port": broker.port, "connectTimeoutSec": 5,
            "credentials": {"type": "basic", "username": "veil", "password": "$<secret:shared-password>"}}},
        {"type": "rest_api_call", "name": "Archive", "configuration": {
            "restEndpointUrlPattern": format!("https://localhost:{tls_port}/archive"), "readTimeoutMs": 5000,
            "credentials": {"type": "cert.PEM", "caCert": "$<secret:ca>", "cert": "$<secret:client-cert>",
                            "privateKey": "$<secret:client-key>"}}}
    ], "connections": [{"fromIndex": 0, "toIndex": 1, "type": "Success"}]});
    let (status, chain) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{chain}");
    let chain_id = chain["id"].as_str().unwrap().to_owned();
    let integration = json!({"name": "Thermometers", "type": "LORIOT", "ruleChainId": chain_id,
        "routingKey": format!("rotation-{}", Uuid::new_v4().simple()),
        "uplinkConverter": veil_examples::LORIOT_UPLINK_CONVERTER,
        "configuration": {"apiBaseUrl": emulator.url(), "appId": "BE7A0000",
            "credentials": {"type": "basic", "username": "veil-user", "password": "$<secret:shared-password>"}}});
    let (status, integration) = api.post("/api/integrations", integration).await;
    assert_eq!(status, 201, "{integration}");
    let integration_id = integration["id"].as_str().unwrap().to_owned();
    eventually("the LORIOT integration to log in", async || {
        let (_, body) = api.get(&format!("/api/integrations/{integration_id}")).await;
        (body["status"] == "active").then_some(())
    })
    .await;
    send(&api, &chain_id, json!({"deviceName": "t1", "n": 1})).await;
    assert_eq!(published.recv().await.unwrap().1["n"], 1);
    assert_eq!(handshakes.lock().unwrap().clients.last(), Some(&der(&pki.client_cert)));

    // A wrong password: both of its consumers report FAILED, each named, the value nowhere.
    let password = format!("/api/secrets/{}", ids["shared-password"]);
    let (status, staged) = api.patch(&password, json!({"pendingValue": WRONG})).await;
    assert_eq!(status, 202, "{staged}");
    assert_eq!(staged["pending"]["version"], 2);
    let rotation = probed(&api, &ids["shared-password"]).await;
    let found = rows(&rotation);
    assert_eq!(found.len(), 2, "{rotation}");
    let (mqtt, loriot) = (&found[0], &found[1]);
    assert_eq!(
        (mqtt.0.as_str(), mqtt.1.as_str(), mqtt.2.as_str(), mqtt.3.as_str()),
        ("RULE_CHAIN", "Rotation", "Publish", "FAILED")
    );
    assert!(mqtt.4.contains("refused the connection"), "{rotation}");
    assert_eq!(
        (loriot.0.as_str(), loriot.1.as_str(), loriot.3.as_str()),
        ("INTEGRATION", "Thermometers", "FAILED")
    );
    assert!(loriot.4.contains("LORIOT login") && loriot.4.contains("401"), "{rotation}");
    assert_no_leak(&rotation.to_string(), &[WRONG, OLD]);
    assert_eq!(rotation["summary"], json!({"ok": 0, "failed": 2, "notProbed": 0, "probing": 0}));
    // Promotion is refused while a probe failed, naming each consumer; nothing changed.
    let promote = format!("{password}/rotation/promote");
    let (status, refused) = api.post(&promote, json!({})).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"], "probes_failed");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("rule chain 'Rotation' node 'Publish': FAILED"), "{message}");
    assert!(message.contains("integration 'Thermometers': FAILED"), "{message}");
    // Another value change waits for the pending one; then it is dropped.
    let (status, body) = api.patch(&password, json!({"value": NEW})).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("rotation_pending")), "{body}");
    assert_eq!(api.delete(&format!("{password}/rotation")).await.0, 204);
    assert_eq!(api.get(&format!("{password}/rotation")).await.0, 404);
    send(&api, &chain_id, json!({"deviceName": "t1", "n": 2})).await;
    assert_eq!(published.recv().await.unwrap().1["n"], 2);

    // The services learn the new password; staged again (check-and-set on version 1), every
    // consumer says OK, the versions list shows it PENDING, and the running ones still use OLD.
    broker.set_password("veil", NEW);
    emulator.set_password(NEW);
    let stage = api
        .req(reqwest::Method::PATCH, &password)
        .header("If-Match", "\"1\"")
        .json(&json!({"pendingValue": NEW}));
    let (status, staged) = api.send(stage).await;
    assert_eq!(status, 202, "{staged}");
    let rotation = probed(&api, &ids["shared-password"]).await;
    let found = rows(&rotation);
    assert!(found.iter().all(|r| r.3 == "OK"), "{rotation}");
    assert!(
        found[0].4.starts_with("connected to 127.0.0.1:") && found[0].4.ends_with("and authenticated"),
        "{rotation}"
    );
    assert!(found[1].4.starts_with("logged in at http://127.0.0.1:"), "{rotation}");
    assert!(emulator.logins().iter().any(|l| l.password == NEW && l.ok));
    let (_, versions) = api.get(&format!("{password}/versions")).await;
    assert_eq!(versions["data"][0]["state"], "PENDING");
    assert_eq!(versions["data"][0]["fingerprint"], staged["pending"]["fingerprint"]);
    assert_eq!(versions["data"][1]["state"], "CURRENT");
    let (_, info) = api.get(&password).await;
    assert_eq!(info["version"], 1);

    // Promoted: version 2 everywhere; the node reconnects and the integration logs in with NEW.
    let logins_before = emulator.logins().len();
    let (status, promoted) = api.post(&promote, json!({})).await;
    assert_eq!(status, 200, "{promoted}");
    assert_eq!(promoted["version"], 2);
    send(&api, &chain_id, json!({"deviceName": "t1", "n": 3})).await;
    assert_eq!(published.recv().await.unwrap().1["n"], 3);
    eventually("the integration to log in with the promoted value", async || {
        let logins = emulator.logins();
        logins[logins_before..].iter().any(|l| l.password == NEW && l.ok).then_some(())
    })
    .await;
    let (_, versions) = api.get(&format!("{password}/versions")).await;
    let states: Vec<_> = versions["data"].as_array().unwrap().iter().map(|v| v["state"].clone()).collect();
    assert_eq!(states, [json!("CURRENT"), json!("PREVIOUS")]);

    // The client certificate: one from a CA the service does not trust fails the handshake; a
    // renewal from the other CA passes, and after promotion the calls present it.
    let cert = format!("/api/secrets/{}", ids["client-cert"]);
    let intruder = Pki::new().certify(&pki.client_key, "intruder");
    assert_eq!(api.patch(&cert, json!({"pendingValue": file(&intruder)})).await.0, 202);
    let rotation = probed(&api, &ids["client-cert"]).await;
    let found = rows(&rotation);
    assert_eq!(found.len(), 1, "{rotation}");
    assert_eq!((found[0].2.as_str(), found[0].3.as_str()), ("Archive", "FAILED"));
    assert!(found[0].4.contains("TLS handshake failed"), "{rotation}");
    assert_eq!(api.delete(&format!("{cert}/rotation")).await.0, 204);
    let renewed = renewal_ca.certify(&pki.client_key, "veil-client-renewed");
    assert_eq!(api.patch(&cert, json!({"pendingValue": file(&renewed)})).await.0, 202);
    let rotation = probed(&api, &ids["client-cert"]).await;
    assert_eq!(rows(&rotation)[0].3, "OK", "{rotation}");
    let presented =
        |cert: &str| handshakes.lock().unwrap().clients.iter().filter(|c| **c == der(cert)).count();
    assert_eq!(presented(&renewed), 1, "the probe's handshake");
    send(&api, &chain_id, json!({"deviceName": "t1", "n": 4})).await;
    assert_eq!(presented(&renewed), 1, "the node still presents the current certificate");
    let (status, promoted) = api.post(&format!("{cert}/rotation/promote"), json!({})).await;
    assert_eq!(status, 200, "{promoted}");
    send(&api, &chain_id, json!({"deviceName": "t1", "n": 5})).await;
    assert_eq!(presented(&renewed), 2, "a new connection with the promoted certificate");
    assert_eq!(handshakes.lock().unwrap().clients.last(), Some(&der(&renewed)));

    // Audited: staged, dropped, promoted; never a value.
    let (_, audit) =
        api.get(&format!("/api/audit-logs?secretId={}&pageSize=50", ids["shared-password"])).await;
    let actions: Vec<&str> =
        audit["data"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["PENDING_VALUE", "PENDING_DROPPED", "PROMOTE"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert_no_leak(&audit.to_string(), &[OLD, WRONG, NEW]);
    assert_no_leak(&server.logs(), &[OLD, WRONG, NEW]);
}

#[tokio::test]
async fn the_cli_stages_shows_promotes_and_drops_a_pending_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let config = dir.path().join("config");
    let receiver = Receiver::start().await;
    let run = async |args: &[&str], stdin: &str| spawn_run(&config, &server, args, stdin).await;
    ok(&run(&["login", "-u", "admin", "--password-stdin"], &format!("{ADMIN_PASSWORD}\n")).await);
    ok(&run(&["secret", "create", "api-token"], "token-cli-current-1\n").await);
    // A rest_api_call whose bearer token is tested with a GET of /whoami.
    let api = Api::new(&server).await;
    let mut chain = bearer_chain(&receiver.url);
    chain["nodes"][0]["configuration"]["probe"] =
        json!({"method": "GET", "url": format!("{}/whoami", receiver.url)});
    let (status, body) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{body}");

    // Staged and waited for: the table names the chain and node, OK; exit 0.
    let staged = run(&["secret", "stage", "api-token", "--stdin", "--wait"], "token-cli-pending-2\n").await;
    let table = ok(&staged).to_owned();
    let row = table.lines().find(|l| l.contains("Forward")).unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("RULE_CHAIN") && row.contains("Call") && row.contains("OK") && row.contains("HTTP 200"),
        "{table}"
    );
    assert!(table.contains("pending version 2 (fingerprint "), "{table}");
    let probe = receiver.requests().into_iter().find(|r| r.uri == "/whoami").unwrap();
    assert_eq!(probe.headers["authorization"], "Bearer token-cli-pending-2");

    // The service now refuses it: tested again, FAILED, exit 1; promote refused (conflict, 4).
    receiver.answer_with(401);
    let again = run(&["secret", "rotation", "api-token", "--again"], "").await;
    assert_eq!(again.code, 1, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("FAILED") && again.stdout.contains("HTTP 401"), "{}", again.stdout);
    let refused = run(&["secret", "promote", "api-token"], "").await;
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(refused.stderr.contains("rule chain 'Forward' node 'Call': FAILED"), "{}", refused.stderr);
    // Forced: version 2 is current, and the chain sends it.
    receiver.answer_with(200);
    let promoted = run(&["secret", "promote", "api-token", "--force", "--expect-version", "1"], "").await;
    assert!(
        ok(&promoted).lines().any(|l| l.trim_start().starts_with("version") && l.trim_end().ends_with('2'))
    );
    let chain_id = body["id"].as_str().unwrap();
    let (status, sent) =
        api.post(&format!("/api/rule-chains/{chain_id}/messages?wait=true"), json!({"data": {}})).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(receiver.requests().last().unwrap().headers["authorization"], "Bearer token-cli-pending-2");

    // Staged and dropped; dropping again: not found (3).
    ok(&run(&["secret", "stage", "api-token", "--stdin"], "token-cli-pending-3\n").await);
    let dropped = run(&["secret", "drop-pending", "api-token"], "").await;
    assert_eq!(ok(&dropped).trim(), "Dropped the pending value of 'api-token'");
    assert_eq!(run(&["secret", "drop-pending", "api-token"], "").await.code, 3);
    let versions = ok(&run(&["secret", "versions", "api-token"], "").await).to_owned();
    assert!(!versions.contains("PENDING"), "{versions}");
    let all = format!("{table}{}{}{versions}", again.stdout, refused.stderr);
    assert_no_leak(&all, &["token-cli-current-1", "token-cli-pending-2", "token-cli-pending-3"]);
}

#[tokio::test]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn a_value_staged_on_one_instance_is_seen_and_promoted_on_the_other() {
    let (_db, database) = PostgresDatabase::create();
    let veil_store::Database::Postgres(database) = database else { unreachable!("a PostgreSQL database") };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = instance(&database, dir_a.path()).await;
    let b = instance(&database, dir_b.path()).await;
    let (api_a, api_b) = (Api::new(&a).await, Api::new(&b).await);
    let receiver = Receiver::start().await;
    let (status, secret) = api_a
        .post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": "cluster-token-1"}))
        .await;
    assert_eq!(status, 201, "{secret}");
    let secret = format!("/api/secrets/{}", secret["id"].as_str().unwrap());
    let mut chain = bearer_chain(&receiver.url);
    chain["nodes"][0]["configuration"]["probe"] =
        json!({"method": "HEAD", "url": format!("{}/whoami", receiver.url)});
    let (status, chain) = api_a.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{chain}");
    let messages = format!("/api/rule-chains/{}/messages?wait=true", chain["id"].as_str().unwrap());
    let sent_by = async |api: &Api<'_>| {
        eventually("the chain to run", async || {
            (api.post(&messages, json!({"data": {}})).await.0 == 200).then_some(())
        })
        .await;
        receiver.requests().last().unwrap().headers["authorization"].clone()
    };
    assert_eq!(sent_by(&api_b).await, "Bearer cluster-token-1");

    // Staged through A: B shows the same pending version and probe rows; a value change through
    // B waits for it.
    let (status, staged) = api_a.patch(&secret, json!({"pendingValue": "cluster-token-2"})).await;
    assert_eq!(status, 202, "{staged}");
    let on_a = probed(&api_a, &secret["/api/secrets/".len()..]).await;
    let (status, on_b) = api_b.get(&format!("{secret}/rotation")).await;
    assert_eq!(status, 200, "{on_b}");
    assert_eq!(on_a, on_b);
    assert_eq!(rows(&on_b)[0].3, "OK", "{on_b}");
    let (status, body) = api_b.patch(&secret, json!({"value": "cluster-token-x"})).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("rotation_pending")), "{body}");
    assert_eq!(sent_by(&api_a).await, "Bearer cluster-token-1", "pending is never sent");

    // Promoted through B: the next message on A sends it.
    let (status, promoted) = api_b.post(&format!("{secret}/rotation/promote"), json!({})).await;
    assert_eq!(status, 200, "{promoted}");
    eventually("A to send the promoted value", async || {
        (sent_by(&api_a).await == "Bearer cluster-token-2").then_some(())
    })
    .await;
    assert_eq!(api_a.get(&format!("{secret}/rotation")).await.0, 404);
    let (_, versions) = api_a.get(&format!("{secret}/versions")).await;
    assert_eq!(versions["data"][0]["state"], "CURRENT");
    assert_eq!(versions["data"][0]["fingerprint"], staged["pending"]["fingerprint"]);
}

#[tokio::test]
#[ignore = "needs chromedriver (VEIL_TEST_CHROMEDRIVER)"]
async fn a_secret_page_tests_a_new_value_first_shows_each_consumer_and_promotes_it() {
    use crate::support::{Browser, RecordingProxy};
    use crate::ui::{log_in, screenshot, visit};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let proxy = RecordingProxy::start(&server.base).await;
    let browser = Browser::start().await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    let (_, secret) = api
        .post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": "tok-ui-current-1"}))
        .await;
    let id = secret["id"].as_str().unwrap().to_owned();
    let mut chain = bearer_chain(&receiver.url);
    chain["nodes"][0]["configuration"]["probe"] =
        json!({"method": "GET", "url": format!("{}/whoami", receiver.url)});
    assert_eq!(api.post("/api/rule-chains", chain).await.0, 201);
    log_in(&browser, &proxy.url, "admin", ADMIN_PASSWORD).await;

    // Change value → Test first: the secret page shows the pending version and each consumer.
    receiver.answer_with(401);
    visit(&browser, &proxy.url, &format!("#/secrets/{id}")).await;
    browser.click("button[title='Change value']").await;
    browser.type_into("#change-secret input[name=value]", "tok-ui-pending-2").await;
    browser.click("#change-secret button[data-action=test-first]").await;
    let failed = browser.text_of("#rotation-probes tr[data-result='FAILED']", "HTTP 401").await;
    assert!(failed.contains("Forward") && failed.contains("Call"), "{failed}");
    browser.text_of("#rotation-summary", "0 OK, 1 failed").await;
    browser.text_of("#secret-versions tr[data-version='2']", "Pending").await;
    // Promote while it failed: asked first; not promoted.
    browser.click("#rotation button[data-action=promote]").await;
    browser.text_of("#promote-anyway", "rule chain 'Forward' node 'Call': FAILED").await;
    browser.click("#promote-anyway button[data-action=cancel]").await;
    assert_eq!(api.get(&format!("/api/secrets/{id}")).await.1["version"], 1);

    // The service accepts it now: Test again turns the row OK; Promote makes it current.
    receiver.answer_with(200);
    browser.click("#rotation button[data-action=probe-again]").await;
    browser.text_of("#rotation-probes tr[data-result='OK']", "HTTP 200").await;
    browser.text_of("#rotation-summary", "1 OK, 0 failed").await;
    screenshot(&browser, "secret-staged-rotation").await;
    browser.click("#rotation button[data-action=promote]").await;
    browser.text_of("#secret-version", "2").await;
    browser.gone("#rotation").await;
    browser.text_of("#secret-versions tr[data-version='2']", "Current").await;
    let (_, sent) = api
        .post(
            &format!("/api/rule-chains/{}/messages?wait=true", first_chain(&api).await),
            json!({"data": {}}),
        )
        .await;
    assert_eq!(sent["trace"][0]["relation"], json!(["Success"]), "{sent}");
    assert_eq!(receiver.requests().last().unwrap().headers["authorization"], "Bearer tok-ui-pending-2");
    assert_no_leak(&browser.exposed().await, &["tok-ui-current-1", "tok-ui-pending-2"]);
}

async fn first_chain(api: &Api<'_>) -> String {
    let (_, chains) = api.get("/api/rule-chains").await;
    chains["data"][0]["id"].as_str().unwrap().to_owned()
}
