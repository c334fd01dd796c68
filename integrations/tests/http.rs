use serde_json::json;
use uuid::Uuid;
use veil_integrations::{Status, UplinkErrorKind};
use veil_tests::TempStore;

use crate::support::{headers, settled};

const TOKEN: &str = "Bearer uplink-\"token\"-1";

fn integration(chain: Uuid, security: bool) -> serde_json::Value {
    json!({
        "name": "Webhook",
        "type": "HTTP",
        "ruleChainId": chain,
        "configuration": {"enableSecurity": security, "headersFilter": {"Authorization": "$<secret:http-token>"}},
        "uplinkConverter": r#"
            if type_of(payload) == "string" {
                #{ deviceName: "text-device", telemetry: #{ line: payload } }
            } else {
                payload.readings.map(|r| #{ deviceName: r.id, telemetry: #{ value: r.v } })
            }
        "#
    })
}

#[tokio::test]
async fn a_routing_key_is_generated_and_uplinks_need_the_header_from_the_secret() {
    let env = TempStore::new().await;
    env.text("http-token", TOKEN).await;
    let runtime = env.deploy_integration(&integration(env.chain_to_feed().await, true)).await.unwrap();
    assert_eq!(settled(&runtime).await, Status::Active);
    assert_eq!(runtime.routing_key().len(), 32, "{}", runtime.routing_key());
    assert!(runtime.def().routing_key.is_some());

    let body = json!({"readings": [{"id": "a", "v": 1}, {"id": "b", "v": 2}]}).to_string();
    let err = runtime
        .uplink(&headers(&[("authorization", "Bearer uplink-token-1")]), body.as_bytes())
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (UplinkErrorKind::Unauthorized, "header 'authorization' does not match")
    );
    let msgs = runtime.uplink(&headers(&[("authorization", TOKEN)]), body.as_bytes()).await.unwrap();
    let got: Vec<_> = msgs.iter().map(|m| (m.originator.as_str(), m.data.clone())).collect();
    assert_eq!(got, [("a", json!({"value": 1})), ("b", json!({"value": 2}))]);

    // A rotated token is expected from the next request on.
    env.rotate("http-token", "Bearer two").await;
    runtime.secret_changed("http-token");
    assert!(runtime.uplink(&headers(&[("authorization", TOKEN)]), body.as_bytes()).await.is_err());
    assert_eq!(
        runtime.uplink(&headers(&[("authorization", "Bearer two")]), body.as_bytes()).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn text_bodies_reach_the_converter_as_strings_and_binary_is_refused() {
    let env = TempStore::new().await;
    env.text("http-token", TOKEN).await;
    let runtime = env.deploy_integration(&integration(env.chain_to_feed().await, false)).await.unwrap();
    let msgs = runtime
        .uplink(&headers(&[("content-type", "text/plain")]), "t=21.5 \"quoted\" \\".as_bytes())
        .await
        .unwrap();
    assert_eq!(msgs[0].data, json!({"line": "t=21.5 \"quoted\" \\"}));
    let err = runtime.uplink(&headers(&[]), &[0xff, 0xfe, 0x00]).await.unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (UplinkErrorKind::Invalid, "body: neither JSON nor UTF-8 text")
    );
    let err = runtime.uplink(&headers(&[("content-type", "application/json")]), b"{oops").await.unwrap_err();
    assert_eq!(err.kind, UplinkErrorKind::Invalid);
    assert!(err.message.starts_with("body: invalid JSON"), "{}", err.message);
}

#[tokio::test]
async fn a_disabled_integration_accepts_nothing_and_shows_disabled() {
    let env = TempStore::new().await;
    env.text("http-token", TOKEN).await;
    let mut doc = integration(env.chain_to_feed().await, false);
    doc["enabled"] = json!(false);
    let runtime = env.deploy_integration(&doc).await.unwrap();
    assert_eq!(runtime.status(), Status::Disabled);
    let err = runtime.uplink(&headers(&[]), b"{}").await.unwrap_err();
    assert_eq!(err.kind, UplinkErrorKind::Disabled);
}
