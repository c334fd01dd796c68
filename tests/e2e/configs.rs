//! Node and integration configurations are typed: a misspelt or unknown key is refused at save
//! with its JSON pointer, every one at once, instead of being ignored.

use serde_json::json;

use crate::support::{Api, Server};

#[tokio::test]
async fn a_misspelt_key_is_refused_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let chain = json!({"name": "typo", "nodes": [
        {"type": "rest_api_call", "name": "Call", "configuration": {
            "restEndpointUrlPattern": "http://127.0.0.1:9/x", "readTimeoutMS": 500,
            "credentials": {"type": "bearer", "tokn": "x"}}},
        {"type": "log", "name": "Log", "configuration": {"prefx": ">"}}
    ]});
    let (status, body) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_config");
    let paths: Vec<&str> =
        body["problems"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"/nodes/0/configuration/readTimeoutMS"), "{body}");
    assert!(paths.contains(&"/nodes/0/configuration/credentials/tokn"), "{body}");
    assert!(paths.contains(&"/nodes/1/configuration/prefx"), "{body}");
    let message = body["problems"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("unknown field (expected"), "{message}");

    // The same for an integration's configuration.
    let (_, target) =
        api.post("/api/rule-chains", json!({"name": "t", "nodes": [{"type": "log", "name": "L"}]})).await;
    let integration = json!({"name": "typo", "type": "LORIOT", "ruleChainId": target["id"],
        "configuration": {"server": "eu1", "sendDownlnk": true}, "uplinkConverter": "#{deviceName: \"d\"}"});
    let (status, body) = api.post("/api/integrations", integration).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["problems"][0]["path"], "/configuration/sendDownlnk", "{body}");
}

/// Directory bodies name an unknown or missing field once, at its place, and a form's leftover
/// credentials of another type still save.
#[tokio::test]
async fn directory_bodies_name_the_field_and_leftover_credentials_save() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let (status, body) = api.post("/api/customers", json!({"nmae": "Acme"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "nmae: unknown field (expected name)");
    let (status, body) = api.post("/api/customers", json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "name: is required");
    // A form that switched from basic to bearer leaves the user name behind; no type is anonymous.
    let chain = json!({"name": "leftovers", "nodes": [
        {"type": "rest_api_call", "name": "Bearer", "configuration": {
            "restEndpointUrlPattern": "http://127.0.0.1:9/x",
            "credentials": {"type": "bearer", "token": "t", "username": "alice"}}},
        {"type": "rest_api_call", "name": "Untyped", "configuration": {
            "restEndpointUrlPattern": "http://127.0.0.1:9/x", "credentials": {}}}
    ]});
    let (status, body) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{body}");
}
