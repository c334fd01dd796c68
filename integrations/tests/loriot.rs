use serde_json::{Value, json};
use uuid::Uuid;
use veil_core::Msg;
use veil_examples::loriot::{Emulator, EmulatorConfig};
use veil_integrations::{Status, UplinkErrorKind};
use veil_tests::{TempStore, assert_no_leak, eventually};

use crate::support::{headers, paths, settled};

/// Quotes, a backslash and non-ASCII: the login body must carry it exactly.
const PASSWORD: &str = r#"pa"ss\wörd-1"#;
const APP_TOKEN: &str = "app-token-\"one\"";
const PUSH_AUTH: &str = "Basic cHVzaDpzZWNyZXQ=";

fn emulator_config() -> EmulatorConfig {
    EmulatorConfig { password: PASSWORD.into(), app_token: APP_TOKEN.into(), ..EmulatorConfig::default() }
}

async fn env_with_secrets(password: &str) -> TempStore {
    let env = TempStore::new().await;
    env.text("loriot-password", password).await;
    env.text("loriot-app-token", APP_TOKEN).await;
    env.text("loriot-push-auth", PUSH_AUTH).await;
    env
}

/// The example integration pointed at the emulator, feeding a chain of `env`.
async fn integration(env: &TempStore, emulator: &Emulator) -> Value {
    let mut doc = veil_examples::loriot_integration(&env.chain_to_feed().await.to_string());
    let key = format!("loriot-{}", Uuid::new_v4().simple());
    doc["routingKey"] = json!(key);
    let config = &mut doc["configuration"];
    config["apiBaseUrl"] = json!(emulator.url());
    config["loriotDownlinkUrl"] = json!(format!("{}/1/rest", emulator.url()));
    config["httpEndpoint"] = json!(format!("http://127.0.0.1:8080/api/v1/integrations/loriot/{key}"));
    doc
}

fn uplink(data: &str) -> Value {
    json!({
        "cmd": "rx", "EUI": "0004A30B001C0530", "ts": 1_764_000_000_000u64, "ack": false, "bat": 255,
        "fcnt": 7, "port": 2, "data": data, "freq": 868_100_000, "dr": "SF7 BW125 4/5", "rssi": -80, "snr": 9.5
    })
}

#[tokio::test]
async fn logs_in_with_the_password_from_the_secret_and_creates_the_output_once() {
    let emulator = Emulator::start(emulator_config()).await.unwrap();
    let env = env_with_secrets(PASSWORD).await;
    let doc = integration(&env, &emulator).await;
    let id = Uuid::new_v4();
    let runtime = env.deploy_integration_as(id, &doc).await.unwrap();
    assert_eq!(settled(&runtime).await, Status::Active);

    let logins = emulator.logins();
    assert_eq!(logins.len(), 1);
    assert_eq!(
        (logins[0].user.as_str(), logins[0].password.as_str(), logins[0].ok),
        ("veil-user", PASSWORD, true)
    );
    let endpoint = doc["configuration"]["httpEndpoint"].clone();
    assert_eq!(
        emulator.outputs(),
        vec![json!({"output": "httppush", "osetup": {"url": endpoint, "auth": PUSH_AUTH}})]
    );

    // A restart (a new runtime for the same integration, as at boot) finds the output and adds none.
    runtime.stop();
    let again = env.deploy_integration_as(id, &doc).await.unwrap();
    assert_eq!(settled(&again).await, Status::Active);
    assert_eq!(emulator.outputs().len(), 1);
    let posts = emulator
        .requests()
        .iter()
        .filter(|r| r.as_str() == "POST /1/nwk/app/BE7A0000/outputs/httppush")
        .count();
    assert_eq!(posts, 1, "{:?}", emulator.requests());
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_status_and_a_fixed_secret_clears_it() {
    let emulator = Emulator::start(emulator_config()).await.unwrap();
    let wrong = r#"wrong"pass\word"#;
    let env = env_with_secrets(wrong).await;
    let runtime = env.deploy_integration(&integration(&env, &emulator).await).await.unwrap();
    let Status::Error(reason) = settled(&runtime).await else { panic!("expected an error status") };
    assert!(
        reason
            .starts_with("LORIOT login with credentials/username and credentials/password refused: HTTP 401"),
        "{reason}"
    );
    assert_no_leak(&reason, &[wrong, PASSWORD]);
    assert!(!reason.contains("wrong"), "not even a part of it: {reason}");
    assert!(emulator.outputs().is_empty());

    // The secret is corrected: the integration starts again with the new value, no redeploy.
    env.rotate("loriot-password", PASSWORD).await;
    runtime.secret_changed("loriot-password");
    assert_eq!(settled(&runtime).await, Status::Active);
    assert_eq!(
        emulator.logins().last().map(|l| (l.password.clone(), l.ok)),
        Some((PASSWORD.to_owned(), true))
    );
    assert_eq!(emulator.outputs().len(), 1);
}

#[tokio::test]
async fn an_expired_session_is_refused_with_403_and_the_integration_logs_in_again() {
    let emulator = Emulator::start(emulator_config()).await.unwrap();
    let env = env_with_secrets(PASSWORD).await;
    let runtime = env.deploy_integration(&integration(&env, &emulator).await).await.unwrap();
    assert_eq!(settled(&runtime).await, Status::Active);
    assert_eq!(emulator.logins().len(), 1);

    emulator.expire_sessions();
    // A secret the login does not use changes: the integration checks its output again with the
    // session it has, is refused, logs in again and carries on.
    env.rotate("loriot-push-auth", PUSH_AUTH).await;
    runtime.secret_changed("loriot-push-auth");
    assert_eq!(settled(&runtime).await, Status::Active);
    assert_eq!(emulator.logins().len(), 2);
    let requests = emulator.requests();
    let tail: Vec<&str> = requests.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(tail, ["GET /1/nwk/app/BE7A0000", "POST /1/pub/login", "GET /1/nwk/app/BE7A0000"]);
}

#[tokio::test]
async fn a_rotated_password_is_used_from_the_next_login_without_redeploy() {
    let emulator = Emulator::start(emulator_config()).await.unwrap();
    let env = env_with_secrets(PASSWORD).await;
    let runtime = env.deploy_integration(&integration(&env, &emulator).await).await.unwrap();
    assert_eq!(settled(&runtime).await, Status::Active);

    let rotated = "rotated-Pässword-2";
    emulator.set_password(rotated);
    env.rotate("loriot-password", rotated).await;
    runtime.secret_changed("loriot-password");
    assert_eq!(settled(&runtime).await, Status::Active);
    let last = emulator.logins().last().cloned().unwrap();
    assert_eq!((last.password.as_str(), last.ok), (rotated, true));
    assert_eq!(emulator.outputs().len(), 1);
}

#[tokio::test]
async fn a_downlink_reaches_loriot_with_the_token_from_the_secret_and_follows_its_rotation() {
    let emulator = Emulator::start(emulator_config()).await.unwrap();
    let env = env_with_secrets(PASSWORD).await;
    let runtime = env.deploy_integration(&integration(&env, &emulator).await).await.unwrap();
    assert_eq!(settled(&runtime).await, Status::Active);

    let msg =
        Msg::new("DOWNLINK", "thermometer-1", json!({"fan": true})).with_metadata("EUI", "0004A30B001C0530");
    let sent = runtime.downlink(&runtime.budget(), &msg).await.unwrap();
    assert_eq!(sent["status"], 200);
    let downlinks = emulator.downlinks();
    assert_eq!(downlinks.len(), 1);
    assert_eq!(downlinks[0].authorization, format!("Bearer {APP_TOKEN}"));
    assert_eq!(
        downlinks[0].body,
        json!({"cmd": "tx", "EUI": "0004A30B001C0530", "port": 10, "data": "01", "appid": "BE7A0000", "confirmed": false})
    );
    // What the caller is shown does not hold the token.
    assert_no_leak(&sent.to_string(), &[APP_TOKEN]);
    assert!(!sent.to_string().contains("app-token"), "not even a part of it: {sent}");

    emulator.set_app_token("app-token-2");
    env.rotate("loriot-app-token", "app-token-2").await;
    runtime.downlink(&runtime.budget(), &msg).await.unwrap();
    assert_eq!(emulator.downlinks()[1].authorization, "Bearer app-token-2");
}

#[tokio::test]
async fn invalid_downlinks_fail_with_the_field_named_and_send_nothing() {
    let emulator = Emulator::start(emulator_config()).await.unwrap();
    let env = env_with_secrets(PASSWORD).await;
    let mut doc = integration(&env, &emulator).await;
    doc["downlinkConverter"] = json!("msg");
    let runtime = env.deploy_integration(&doc).await.unwrap();
    assert_eq!(settled(&runtime).await, Status::Active);
    let cases = [
        (
            json!({"EUI": "0004A30B001C05", "port": 10, "data": "01"}),
            "downlink EUI: must be 16 hex characters",
        ),
        (
            json!({"EUI": "0004A30B001C053Z", "port": 10, "data": "01"}),
            "downlink EUI: must be 16 hex characters",
        ),
        (json!({"EUI": "0004A30B001C0530", "port": 0, "data": "01"}), "downlink port: 0 is not in 1..223"),
        (
            json!({"EUI": "0004A30B001C0530", "port": 224, "data": "01"}),
            "downlink port: 224 is not in 1..223",
        ),
        (json!({"EUI": "0004A30B001C0530", "port": 10, "data": "0g"}), "downlink data: must be a hex string"),
        (json!({"EUI": "0004A30B001C0530", "data": "01"}), "downlink port: is required (1..223)"),
        (json!("01"), "downlink: expected an object {EUI, port, data, confirmed?}"),
    ];
    for (data, expected) in cases {
        let err =
            runtime.downlink(&runtime.budget(), &Msg::new("DOWNLINK", "d", data.clone())).await.unwrap_err();
        assert_eq!(err.to_string(), expected, "{data}");
    }
    assert!(emulator.downlinks().is_empty());
}

#[tokio::test]
async fn an_uplink_becomes_telemetry_and_attribute_messages_with_decoded_values() {
    let emulator = Emulator::start(emulator_config()).await.unwrap();
    let env = env_with_secrets(PASSWORD).await;
    let runtime = env.deploy_integration(&integration(&env, &emulator).await).await.unwrap();
    let body = uplink("FF9C028F").to_string();
    let msgs = runtime.uplink(&headers(&[("authorization", PUSH_AUTH)]), body.as_bytes()).await.unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].msg_type, "POST_TELEMETRY_REQUEST");
    assert_eq!(msgs[0].originator, "thermometer-0004A30B001C0530");
    assert_eq!(
        msgs[0].data,
        json!({"temperature": -10.0, "humidity": 65.5, "rssi": -80, "snr": 9.5, "fcnt": 7})
    );
    assert_eq!(msgs[0].metadata["integrationName"], "LORIOT thermometers");
    assert_eq!(msgs[0].metadata["deviceType"], "thermometer");
    assert_eq!(msgs[0].metadata["EUI"], "0004A30B001C0530");
    assert_eq!(msgs[1].msg_type, "POST_ATTRIBUTES_REQUEST");
    assert_eq!(msgs[1].data, json!({"eui": "0004A30B001C0530", "port": 2}));
}

#[tokio::test]
async fn bad_uplinks_are_refused_with_a_status_and_the_problem_named() {
    let emulator = Emulator::start(emulator_config()).await.unwrap();
    let env = env_with_secrets(PASSWORD).await;
    let runtime = env.deploy_integration(&integration(&env, &emulator).await).await.unwrap();
    let good = headers(&[("authorization", PUSH_AUTH)]);
    let mut missing_eui = uplink("00E7028F");
    missing_eui.as_object_mut().unwrap().remove("EUI");
    let cases: Vec<(reqwest::header::HeaderMap, Vec<u8>, UplinkErrorKind, &str)> = vec![
        (
            headers(&[]),
            uplink("00E7028F").to_string().into_bytes(),
            UplinkErrorKind::Unauthorized,
            "header 'authorization' is missing",
        ),
        (
            headers(&[("authorization", "Basic wrong")]),
            uplink("00E7028F").to_string().into_bytes(),
            UplinkErrorKind::Unauthorized,
            "header 'authorization' does not match",
        ),
        (
            good.clone(),
            b"{\"cmd\": \"rx\", ".to_vec(),
            UplinkErrorKind::Invalid,
            "body: invalid JSON (EOF while parsing a value at line 1 column 14)",
        ),
        (
            good.clone(),
            uplink("00E7028G").to_string().into_bytes(),
            UplinkErrorKind::Invalid,
            "data: must be a hex string (two characters per byte)",
        ),
        (good.clone(), missing_eui.to_string().into_bytes(), UplinkErrorKind::Invalid, "EUI: is required"),
        (
            good.clone(),
            b"[1, 2]".to_vec(),
            UplinkErrorKind::Invalid,
            "body: expected a JSON object {cmd, EUI, ...}",
        ),
    ];
    for (h, body, status, message) in cases {
        let err = runtime.uplink(&h, &body).await.unwrap_err();
        assert_eq!((err.kind, err.message.as_str()), (status, message));
    }
    // Valid for LORIOT, but the converter refuses it: 422 with the converter's reason.
    let err = runtime.uplink(&good, uplink("00E7").to_string().as_bytes()).await.unwrap_err();
    assert_eq!(err.kind, UplinkErrorKind::ConverterFailed);
    assert!(err.message.contains("payload.data: expected 4 bytes of hex"), "{}", err.message);
}

#[tokio::test]
async fn configuration_problems_are_reported_together_with_their_paths() {
    let env = TempStore::new().await;
    let chain = env.chain_to_feed().await;
    let doc = json!({
        "name": "",
        "type": "LORIOT",
        "ruleChainId": chain,
        "routingKey": "has space",
        "configuration": {
            "server": "xx1",
            "appId": "$<secret:loriot-password>",
            "createLoriotOutput": true,
            "sendDownlink": "yes",
            "credentials": {"type": "basic", "username": "u", "password": "$<secret:missing>"},
            "enableSecurity": true,
            "headersFilter": {}
        },
        "uplinkConverter": "let x = ;"
    });
    let problems = env.deploy_integration(&doc).await.unwrap_err();
    assert_eq!(
        paths(&problems),
        [
            "/name",
            "/routingKey",
            "/configuration/appId",
            "/configuration/server",
            "/configuration/sendDownlink",
            "/configuration/httpEndpoint",
            "/configuration/headersFilter",
            "/configuration/credentials/password",
            "/uplinkConverter",
        ],
        "{problems:#?}"
    );
    assert!(problems[7].message.contains("secret 'missing' does not exist"), "{problems:#?}");

    let unknown = json!({"name": "x", "type": "KAFKA", "ruleChainId": chain, "uplinkConverter": "1"});
    let problems = env.deploy_integration(&unknown).await.unwrap_err();
    assert_eq!(problems[0].message, "unknown integration type 'KAFKA' (known: LORIOT, HTTP)");
    let typo = json!({"name": "x", "type": "HTTP", "ruleChainId": chain, "uplinkConvertor": "1"});
    let problems = env.deploy_integration(&typo).await.unwrap_err();
    assert_eq!(paths(&problems), ["/uplinkConvertor"], "{problems:#?}");
}

#[tokio::test]
async fn starts_racing_each_other_create_one_output() {
    let emulator = Emulator::start(emulator_config()).await.unwrap();
    let env = env_with_secrets(PASSWORD).await;
    let runtime = env.deploy_integration(&integration(&env, &emulator).await).await.unwrap();
    runtime.secret_changed("loriot-app-token");
    runtime.secret_changed("loriot-push-auth");
    assert_eq!(settled(&runtime).await, Status::Active);
    // A replacement runtime for the same integration (a PUT) while the first may still run.
    let again = env.deploy_integration(&integration(&env, &emulator).await).await.unwrap();
    assert_eq!(settled(&again).await, Status::Active);
    let endpoints: Vec<Value> = emulator.outputs().iter().map(|o| o["osetup"]["url"].clone()).collect();
    let mut unique = endpoints.clone();
    unique.dedup();
    assert_eq!(endpoints.len(), unique.len(), "{endpoints:?}");
}

#[tokio::test]
async fn a_secret_read_by_the_uplink_converter_reaches_the_chain_sealed() {
    let emulator = Emulator::start(emulator_config()).await.unwrap();
    let env = env_with_secrets(PASSWORD).await;
    env.text("signing-key", "sk-\"live\"-42").await;
    let mut doc = integration(&env, &emulator).await;
    doc["uplinkConverter"] = json!(
        r#"#{ deviceName: "d-" + payload.EUI, telemetry: #{ key: secret("signing-key"), t: 1 }, metadata: #{ k: secret("signing-key") } }"#
    );
    let runtime = env.deploy_integration(&doc).await.unwrap();
    let msgs = runtime
        .uplink(&headers(&[("authorization", PUSH_AUTH)]), uplink("00E7028F").to_string().as_bytes())
        .await
        .unwrap();
    // Sealed values travel as markers (encrypted with this process's key), shown as `***`.
    let key = msgs[0].data["key"].as_str().unwrap();
    assert!(key.starts_with(veil_core::MARKER_START), "{key}");
    assert!(msgs[0].metadata["k"].starts_with(veil_core::MARKER_START));
    let everything = format!("{:?}", msgs);
    veil_tests::assert_no_leak(&everything, &["sk-\"live\"-42"]);
    let mut shown = msgs[0].data.clone();
    veil_core::mask_sealed_json(&mut shown);
    assert_eq!(shown, json!({"key": "***", "t": 1}));
    assert_eq!(veil_core::mask_sealed(&msgs[0].metadata["k"]), "***");
}

#[tokio::test]
async fn an_output_with_security_needs_the_authorization_header_loriot_sends() {
    let emulator = Emulator::start(emulator_config()).await.unwrap();
    let env = env_with_secrets(PASSWORD).await;
    let mut doc = integration(&env, &emulator).await;
    doc["configuration"]["headersFilter"] = json!({"X-Token": "$<secret:loriot-push-auth>"});
    let problems = env.deploy_integration(&doc).await.unwrap_err();
    assert_eq!(paths(&problems), ["/configuration/headersFilter"]);
    assert!(problems[0].message.contains("name the Authorization header"), "{problems:?}");
}

#[tokio::test]
async fn an_unreachable_loriot_is_retried_until_it_answers() {
    // A free port with nobody listening yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let env = env_with_secrets(PASSWORD).await;
    let mut doc = veil_examples::loriot_integration(&env.chain_to_feed().await.to_string());
    doc["routingKey"] = json!(format!("loriot-{}", Uuid::new_v4().simple()));
    doc["configuration"]["apiBaseUrl"] = json!(format!("http://{addr}"));
    doc["configuration"]["httpEndpoint"] = json!("http://127.0.0.1:8080/api/v1/integrations/loriot/x");
    let runtime = env.deploy_integration(&doc).await.unwrap();
    let Status::Error(reason) = settled(&runtime).await else { panic!("expected an error status") };
    assert!(reason.contains("LORIOT login at") && reason.contains("failed"), "{reason}");

    // LORIOT comes back: a retry logs in and creates the output without anyone saving anything.
    let emulator = Emulator::start_on(addr, emulator_config()).await.unwrap();
    eventually("a login once LORIOT answers", async || (runtime.status() == Status::Active).then_some(()))
        .await;
    assert_eq!(emulator.outputs().len(), 1);
}
