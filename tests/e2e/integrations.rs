use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;
use veil_examples::loriot::{Emulator, EmulatorConfig};

use crate::support::{Api, Receiver, Server, assert_no_leak, eventually};

const PASSWORD: &str = r#"lo"riot\pass-1"#;
const PASSWORD_2: &str = "loriot-pass-2-ü";
const APP_TOKEN: &str = "app-token-7c1e";
const PUSH_AUTH: &str = "Basic bG9yaW90OnB1c2g=";
const DASHBOARD_TOKEN: &str = "dash-token-\"q\"-9";
const EUI: &str = "0004A30B001C0530";

fn plaintexts() -> [&'static str; 5] {
    [PASSWORD, PASSWORD_2, APP_TOKEN, PUSH_AUTH, DASHBOARD_TOKEN]
}

fn uplink(data: &str) -> Value {
    json!({"cmd": "rx", "EUI": EUI, "ts": 1_764_000_000_000u64, "ack": false, "bat": 255, "fcnt": 3,
           "port": 2, "data": data, "freq": 868_100_000, "dr": "SF7 BW125 4/5", "rssi": -81, "snr": 7.5})
}

/// The LORIOT walk-through of integrations/README.md against the emulator, the receiver and this server.
struct Setup {
    emulator: Emulator,
    receiver: Receiver,
    chain_id: String,
    integration: Value,
    endpoint: String,
}

async fn setup(server: &Server, api: &Api<'_>) -> Setup {
    let emulator = Emulator::start(EmulatorConfig {
        password: PASSWORD.into(),
        app_token: APP_TOKEN.into(),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let receiver = Receiver::start().await;
    for (name, value) in [
        ("loriot-password", PASSWORD),
        ("loriot-app-token", APP_TOKEN),
        ("loriot-push-auth", PUSH_AUTH),
        ("dashboard-token", DASHBOARD_TOKEN),
    ] {
        let (status, body) =
            api.post("/api/secrets", json!({"name": name, "type": "TEXT", "value": value})).await;
        assert_eq!(status, 201, "{body}");
    }
    let chain: Value =
        serde_json::from_str(&veil_examples::LORIOT_CHAIN.replace("http://127.0.0.1:9000", &receiver.url))
            .unwrap();
    let (status, chain) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{chain}");
    let chain_id = chain["id"].as_str().unwrap().to_owned();
    let key = format!("loriot-{}", Uuid::new_v4().simple());
    let endpoint = server.url(&format!("/api/v1/integrations/loriot/{key}"));
    let mut integration = veil_examples::loriot_integration(&chain_id);
    integration["routingKey"] = json!(key);
    integration["configuration"]["apiBaseUrl"] = json!(emulator.url());
    integration["configuration"]["loriotDownlinkUrl"] = json!(format!("{}/1/rest", emulator.url()));
    integration["configuration"]["httpEndpoint"] = json!(endpoint);
    Setup { emulator, receiver, chain_id, integration, endpoint }
}

/// Polls the integration until its status is not `starting`.
async fn status(api: &Api<'_>, id: &str) -> String {
    let path = format!("/api/integrations/{id}");
    eventually(&format!("integration {id} to leave starting"), async || {
        let (code, body) = api.get(&path).await;
        assert_eq!(code, 200, "{body}");
        let status = body["status"].as_str().unwrap().to_owned();
        (status != "starting").then_some(status)
    })
    .await
}

#[tokio::test]
async fn the_loriot_example_logs_in_with_the_secret_feeds_the_chain_and_sends_downlinks() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let s = setup(&server, &api).await;

    let (code, created) = api.post("/api/integrations", s.integration.clone()).await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["configuration"]["credentials"]["password"], "$<secret:loriot-password>");
    assert_eq!(created["configuration"]["token"], "$<secret:loriot-app-token>");
    assert_eq!(created["uplinkPath"], s.endpoint.trim_start_matches(&server.base));
    assert_eq!(status(&api, &id).await, "active");
    let login = s.emulator.logins()[0].clone();
    assert_eq!((login.user.as_str(), login.password.as_str(), login.ok), ("veil-user", PASSWORD, true));
    assert_eq!(
        s.emulator.outputs(),
        [json!({"output": "httppush", "osetup": {"url": s.endpoint, "auth": PUSH_AUTH}})]
    );

    // LORIOT pushes an uplink; the converter decodes it and the chain sends it to the dashboard.
    assert_eq!(s.emulator.push_uplink(uplink("00E7028F")).await, [(s.endpoint.clone(), 200)]);
    eventually("the dashboard call", async || (!s.receiver.requests().is_empty()).then_some(())).await;
    let call = &s.receiver.requests()[0];
    assert_eq!(call.uri, format!("/telemetry/thermometer-{EUI}"));
    assert_eq!(call.headers["authorization"], format!("Bearer {DASHBOARD_TOKEN}"));
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!((body["temperature"].clone(), body["humidity"].clone()), (json!(23.1), json!(65.5)));

    // A downlink through the API, and one through an `integration_downlink` node.
    let (code, sent) = api
        .post(
            &format!("/api/integrations/{id}/downlink"),
            json!({"data": {"fan": true}, "metadata": {"EUI": EUI}}),
        )
        .await;
    assert_eq!(code, 200, "{sent}");
    let node_chain = json!({"name": "Fan control", "nodes": [{"type": "integration_downlink", "name": "To LORIOT",
        "debugMode": true, "configuration": {"integrationId": id}}]});
    let (code, chain) = api.post("/api/rule-chains", node_chain).await;
    assert_eq!(code, 201, "{chain}");
    let (code, trace) = api
        .post(
            &format!("/api/rule-chains/{}/messages?wait=true", chain["id"].as_str().unwrap()),
            json!({"data": {"fan": false}, "metadata": {"EUI": EUI}}),
        )
        .await;
    assert_eq!((code, trace["trace"][0]["relation"].clone()), (200, json!(["Success"])), "{trace}");
    let downlinks = s.emulator.downlinks();
    assert_eq!(downlinks.len(), 2);
    assert!(downlinks.iter().all(|d| d.authorization == format!("Bearer {APP_TOKEN}")));
    assert_eq!(
        (downlinks[0].body["data"].clone(), downlinks[1].body["data"].clone()),
        (json!("01"), json!("00"))
    );
    assert_eq!(downlinks[0].body["cmd"], "tx");

    // The secret is in use by the integration: usages list it and deleting it is refused.
    let (_, secrets) = api.get("/api/secrets?textSearch=loriot-password").await;
    let secret_id = secrets["data"][0]["id"].as_str().unwrap().to_owned();
    let (code, refused) = api.delete(&format!("/api/secrets/{secret_id}")).await;
    assert_eq!(code, 409);
    assert_eq!(refused["references"]["INTEGRATION"], json!([{"id": id, "name": "LORIOT thermometers"}]));

    // The password is rotated at LORIOT and in Veil: the next login uses it, no redeploy.
    s.emulator.set_password(PASSWORD_2);
    let (code, _) = api.patch(&format!("/api/secrets/{secret_id}"), json!({"value": PASSWORD_2})).await;
    assert_eq!(code, 200);
    eventually("a login with the rotated password", async || {
        s.emulator.logins().last().is_some_and(|l| l.password == PASSWORD_2 && l.ok).then_some(())
    })
    .await;
    assert_eq!(status(&api, &id).await, "active");

    // A restart finds the output and creates no second one.
    server.terminate();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    assert_eq!(status(&api, &id).await, "active");
    assert_eq!(s.emulator.outputs().len(), 1);
    assert_eq!(
        s.emulator.logins().last().map(|l| (l.password.clone(), l.ok)),
        Some((PASSWORD_2.into(), true))
    );

    let (_, events) = api.get(&format!("/api/rule-chains/{}/events", s.chain_id)).await;
    let (_, listed) = api.get("/api/integrations").await;
    assert_eq!(listed["data"][0]["status"], "active");
    let shown = format!("{created}{sent}{trace}{events}{listed}{}{}", server.logs(), server.stdout());
    assert_no_leak(&shown, &plaintexts());

    // In use by the "Fan control" chain: it cannot be deleted under it.
    let (code, refused) = api.delete(&format!("/api/integrations/{id}")).await;
    assert_eq!((code, refused["error"].as_str()), (409, Some("integration_in_use")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("rule chain 'Fan control' (node 'To LORIOT')"));
    assert_eq!(api.delete(&format!("/api/rule-chains/{}", chain["id"].as_str().unwrap())).await.0, 204);
    // Deleted: it stops, and its uplink URL is gone.
    assert_eq!(api.delete(&format!("/api/integrations/{id}")).await.0, 204);
    assert_eq!(api.get(&format!("/api/integrations/{id}")).await.0, 404);
    let path = s.endpoint.trim_start_matches(|c| c != '/').trim_start_matches("//");
    let path = &path[path.find('/').unwrap()..];
    let resp = server.client.post(server.url(path)).json(&uplink("00E7028F")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn bad_uplinks_answer_4xx_forward_nothing_and_crash_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let s = setup(&server, &api).await;
    let (code, created) = api.post("/api/integrations", s.integration.clone()).await;
    assert_eq!(code, 201, "{created}");
    let client = reqwest::Client::new();
    let post = |url: String, body: Vec<u8>, auth: Option<&'static str>| {
        let mut rb = client.post(url).header("content-type", "application/json").body(body);
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        async move {
            let resp = rb.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let mut missing = uplink("00E7028F");
    missing.as_object_mut().unwrap().remove("EUI");
    let huge = format!("{{\"cmd\":\"rx\",\"EUI\":\"{EUI}\",\"data\":\"{}\"}}", "00".repeat(5 * 1024 * 1024));
    // (url, body, Authorization, expected status, expected error code)
    type Case = (String, Vec<u8>, Option<&'static str>, u16, &'static str);
    let cases: Vec<Case> = vec![
        (s.endpoint.clone(), b"{\"cmd\":\"rx\",".to_vec(), Some(PUSH_AUTH), 400, "invalid_uplink"),
        (s.endpoint.clone(), huge.into_bytes(), Some(PUSH_AUTH), 413, "payload_too_large"),
        (
            s.endpoint.clone(),
            uplink("00E7028Z").to_string().into_bytes(),
            Some(PUSH_AUTH),
            400,
            "invalid_uplink",
        ),
        (s.endpoint.clone(), missing.to_string().into_bytes(), Some(PUSH_AUTH), 400, "invalid_uplink"),
        (s.endpoint.clone(), uplink("00E7028F").to_string().into_bytes(), None, 401, "unauthorized"),
        (
            s.endpoint.clone(),
            uplink("00E7028F").to_string().into_bytes(),
            Some("Basic x"),
            401,
            "unauthorized",
        ),
        (
            s.endpoint.clone(),
            uplink("00E7").to_string().into_bytes(),
            Some(PUSH_AUTH),
            422,
            "converter_failed",
        ),
        (
            server.url("/api/v1/integrations/loriot/no-such-key"),
            uplink("00E7028F").to_string().into_bytes(),
            Some(PUSH_AUTH),
            404,
            "not_found",
        ),
        (
            s.endpoint.replace("/loriot/", "/http/"),
            uplink("00E7028F").to_string().into_bytes(),
            Some(PUSH_AUTH),
            404,
            "not_found",
        ),
    ];
    for (url, body, auth, status, code) in cases {
        let (got, answer) = post(url.clone(), body, auth).await;
        assert_eq!((got, answer["error"].as_str().unwrap_or_default()), (status, code), "{url}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(s.receiver.requests().is_empty(), "{:?}", s.receiver.requests());
    assert_eq!(api.get("/api/health").await.0, 200);
    let (code, _) =
        post(s.endpoint.clone(), uplink("00E7028F").to_string().into_bytes(), Some(PUSH_AUTH)).await;
    assert_eq!(code, 200);
    eventually("the one good uplink", async || (s.receiver.requests().len() == 1).then_some(())).await;
    // The routing key lets anyone post uplinks: the request log masks it.
    let key = s.endpoint.rsplit('/').next().unwrap();
    assert_no_leak(&server.logs(), &[key]);
    assert_no_leak(&server.logs(), &plaintexts());
}

#[tokio::test]
async fn integrations_are_validated_like_rule_chains() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let s = setup(&server, &api).await;

    let mut doc = s.integration.clone();
    doc["ruleChainId"] = json!(Uuid::new_v4());
    doc["configuration"]["appId"] = json!("$<secret:loriot-password>");
    let (code, refused) = api.post("/api/integrations", doc).await;
    assert_eq!((code, refused["error"].as_str().unwrap()), (400, "invalid_config"), "{refused}");
    let paths: Vec<&str> =
        refused["problems"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/configuration/appId", "/ruleChainId"], "{refused}");

    let (code, first) = api.post("/api/integrations", s.integration.clone()).await;
    assert_eq!(code, 201, "{first}");
    let mut twin = s.integration.clone();
    twin["name"] = json!("Twin");
    let (code, taken) = api.post("/api/integrations", twin).await;
    assert_eq!((code, taken["error"].as_str().unwrap()), (409, "routing_key_taken"), "{taken}");

    // A document read with GET goes back with PUT; without a routing key the old one stays.
    let id = first["id"].as_str().unwrap();
    let (_, mut read) = api.get(&format!("/api/integrations/{id}")).await;
    read["name"] = json!("Renamed");
    read.as_object_mut().unwrap().remove("routingKey");
    let (code, updated) =
        api.send(api.req(reqwest::Method::PUT, &format!("/api/integrations/{id}")).json(&read)).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(
        (updated["name"].clone(), updated["routingKey"].clone()),
        (json!("Renamed"), first["routingKey"].clone())
    );
    assert_eq!(status(&api, id).await, "active");
    assert_eq!(s.emulator.outputs().len(), 1);
}

/// A trap a new user fell into: LORIOT already had an HTTP push output to this URL with another
/// authorization, kept as it was, so every push was refused with 401 while the status said
/// `active`. Now the output gets this integration's authorization, refused uplinks show beside the
/// status, and deleting the integration removes the output.
#[tokio::test]
async fn a_stale_loriot_output_is_brought_in_line_and_goes_with_the_integration() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let s = setup(&server, &api).await;
    let defaults = EmulatorConfig::default();
    let stale =
        json!({"output": "httppush", "osetup": {"url": s.endpoint, "auth": "Basic c3RhbGU6c3RhbGU="}});
    let made = reqwest::Client::new()
        .post(format!("{}/1/nwk/app/{}/outputs/httppush", s.emulator.url(), defaults.app_id))
        .header("authorization", format!("Bearer {}", defaults.api_token))
        .json(&stale)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);

    let (code, created) = api.post("/api/integrations", s.integration.clone()).await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(status(&api, &id).await, "active");
    let outputs = s.emulator.outputs();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(outputs[0]["osetup"]["auth"], PUSH_AUTH);
    assert_eq!(s.emulator.push_uplink(uplink("00E7028F")).await, [(s.endpoint.clone(), 200)]);

    // A sender with another authorization is refused, and the integration says so.
    let refused = server
        .client
        .post(&s.endpoint)
        .header("authorization", "Basic c3RhbGU6c3RhbGU=")
        .json(&uplink("00E7028F"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let (_, view) = api.get(&format!("/api/integrations/{id}")).await;
    assert_eq!(view["refusedUplinks"]["count"], 1, "{view}");
    assert!(
        view["refusedUplinks"]["lastReason"].as_str().unwrap().to_lowercase().contains("authorization"),
        "{view}"
    );
    assert_no_leak(&view.to_string(), &[PUSH_AUTH, "c3RhbGU6c3RhbGU="]);

    // Deleted: LORIOT no longer pushes to it.
    let (code, body) = api.delete(&format!("/api/integrations/{id}")).await;
    assert_eq!(code, 204, "{body}");
    eventually("the output removed from LORIOT", async || s.emulator.outputs().is_empty().then_some(()))
        .await;
}
