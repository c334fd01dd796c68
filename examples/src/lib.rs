//! veil-examples: the example chain documents the README walks through (`examples/chains/*.json`)
//! and small programs to try them with (`cargo run -p veil-examples --bin echo-server`).

/// `examples/chains/rest-bearer.json`: a chain that calls a REST endpoint with a bearer token
/// taken from the secret `api-token`, then logs the response.
pub const REST_BEARER_CHAIN: &str = include_str!("../chains/rest-bearer.json");

/// `examples/loriot/chain.json`: thermometer readings from LORIOT, filtered, sent to a dashboard
/// with the bearer token from the secret `dashboard-token`.
pub const LORIOT_CHAIN: &str = include_str!("../loriot/chain.json");

/// `examples/loriot/integration.json`: a LORIOT integration whose account password, downlink token
/// and push authorization are secrets; converters are added from the `.rhai` files.
pub const LORIOT_INTEGRATION: &str = include_str!("../loriot/integration.json");

/// `examples/loriot/uplink.rhai`: decodes a 4-byte hex payload into temperature and humidity.
pub const LORIOT_UPLINK_CONVERTER: &str = include_str!("../loriot/uplink.rhai");

/// `examples/loriot/downlink.rhai`: `{"fan": true}` becomes LORIOT's `{EUI, port, data}`.
pub const LORIOT_DOWNLINK_CONVERTER: &str = include_str!("../loriot/downlink.rhai");

/// The example integration for a chain, with its converters, as the README's `jq` command builds it.
pub fn loriot_integration(rule_chain_id: &str) -> serde_json::Value {
    let mut doc: serde_json::Value =
        serde_json::from_str(LORIOT_INTEGRATION).expect("examples/loriot/integration.json is JSON");
    doc["ruleChainId"] = rule_chain_id.into();
    doc["uplinkConverter"] = LORIOT_UPLINK_CONVERTER.into();
    doc["downlinkConverter"] = LORIOT_DOWNLINK_CONVERTER.into();
    doc
}

pub mod loriot;
