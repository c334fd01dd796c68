//! Every registered node type (the built-in nodes and `integration_downlink`, as the server
//! registers them) and every integration type deploys with its default configuration: what a
//! client offers a user as the starting point is valid as it is. The test creates what a default
//! refers to (its secrets, a rule chain to feed, an integration to send through).

use serde_json::{Value, json};
use veil_core::{Accepts, FieldSpec};
use veil_tests::TempStore;

/// An integration object needs an uplink converter besides its configuration.
const UPLINK_CONVERTER: &str = "#{ deviceName: \"device\", telemetry: payload }";

/// Creates every secret `config` names in its secret-capable `fields`, of a type the field takes.
async fn create_secrets(temp: &TempStore, config: &Value, fields: &[FieldSpec]) {
    let mut problems = Vec::new();
    let compiled = veil_core::compile(config, fields, "", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    for used in compiled.secret_uses() {
        if temp.store.find(&temp.admin, &used.name).is_some() {
            continue;
        }
        match used.accepts {
            Accepts::File | Accepts::Certificate | Accepts::PrivateKey => {
                temp.file(&used.name, "-----BEGIN CERTIFICATE-----\n").await
            }
            Accepts::Text | Accepts::Any => temp.text(&used.name, "default-config-value").await,
        };
    }
}

#[tokio::test]
async fn every_node_type_deploys_with_its_default_configuration() {
    let temp = TempStore::new().await;
    // `integration_downlink` sends through an integration of the tenant.
    let chain = temp.chain_to_feed().await;
    let target = json!({
        "name": "Target", "type": "HTTP", "ruleChainId": chain, "uplinkConverter": UPLINK_CONVERTER
    });
    let integration_id = temp.deploy_integration(&target).await.unwrap().id();

    let registry = temp.registry();
    let types: Vec<&str> = registry.types().map(|d| d.type_name).collect();
    for expected in ["log", "script", "rest_api_call", "mqtt", "rabbitmq", "integration_downlink"] {
        assert!(types.contains(&expected), "{expected} is not registered: {types:?}");
    }
    for descriptor in registry.types() {
        let mut config = (descriptor.default_config)();
        if config.get("integrationId") == Some(&json!("")) {
            config["integrationId"] = json!(integration_id);
        }
        create_secrets(&temp, &config, descriptor.fields).await;
        let chain = json!({
            "name": format!("Default {}", descriptor.type_name),
            "nodes": [{"type": descriptor.type_name, "name": "Default", "configuration": config}]
        });
        if let Err(problems) = temp.deploy_chain(&chain).await {
            panic!(
                "{}: the default configuration {config} does not deploy: {problems:#?}",
                descriptor.type_name
            );
        }
    }
}

#[tokio::test]
async fn every_integration_type_deploys_with_its_default_configuration() {
    let temp = TempStore::new().await;
    // The rule chain an integration feeds.
    let chain = json!({"name": "Uplinks", "nodes": [{"type": "log", "name": "Log", "configuration": {}}]});
    let chain_id = temp.deploy_chain(&chain).await.unwrap().id();

    let registry = veil_integrations::registry();
    let types: Vec<&str> = registry.types().map(|d| d.type_name).collect();
    assert_eq!(types, ["LORIOT", "HTTP"]);
    for descriptor in registry.types() {
        let config = (descriptor.default_config)();
        create_secrets(&temp, &config, descriptor.fields).await;
        let doc = json!({
            "name": format!("Default {}", descriptor.type_name),
            "type": descriptor.type_name,
            "ruleChainId": chain_id,
            "configuration": config,
            "uplinkConverter": UPLINK_CONVERTER,
        });
        // Deployed (validated, secret uses checked, built) but not started: a default points at
        // the public service, which a test does not call.
        let deployed = veil_integrations::deploy_integration(&registry, &temp.store, &temp.admin, &doc);
        if let Err(problems) = deployed {
            panic!(
                "{}: the default configuration {config} does not deploy: {problems:#?}",
                descriptor.type_name
            );
        }
    }
}
