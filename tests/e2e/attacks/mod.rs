//! The second attack pass (ATTACKS-2.md), one test per finding, against the real binary: each
//! reproduction and its variants end in a clear error naming the limit, or in a value treated as
//! data, while the server keeps answering.

mod edge;
mod engine;
mod tenancy;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Api, Server};

pub(super) const TOKEN: &str = "Tok-ALPHA-7781";

pub(super) async fn created(api: &Api<'_>, path: &str, doc: Value) -> Value {
    let (status, body) = api.post(path, doc).await;
    assert_eq!(status, 201, "{path}: {body}");
    body
}

/// A customer `Acme` and its user; the user's API.
pub(super) async fn customer_user<'a>(admin: &Api<'a>, server: &'a Server, username: &str) -> Api<'a> {
    let customer = created(admin, "/api/customers", json!({"name": format!("{username} customer")})).await;
    let user = json!({"username": username, "password": "Customer-pass-1", "customerId": customer["id"],
                      "roles": ["CUSTOMER_USER"]});
    created(admin, "/api/users", user).await;
    Api::as_user(server, username, "Customer-pass-1").await
}

/// An HTTP integration (no header security) feeding `chain` through `converter`: its uplink URL.
pub(super) async fn http_integration(api: &Api<'_>, name: &str, chain: &str, converter: &str) -> String {
    let doc = json!({"name": name, "type": "HTTP", "ruleChainId": chain,
                     "configuration": {"enableSecurity": false}, "uplinkConverter": converter});
    let integration = created(api, "/api/integrations", doc).await;
    api.server.url(integration["uplinkPath"].as_str().unwrap())
}

pub(super) fn rest_node(url: &str, body_template: &str) -> Value {
    json!({"type": "rest_api_call", "name": "Out", "configuration": {
        "restEndpointUrlPattern": url, "requestMethod": "POST", "bodyTemplate": body_template}})
}

pub(super) async fn health_within(server: &Server, within: Duration) {
    let started = Instant::now();
    let (status, _) = Api { server, token: String::new() }.get("/api/health").await;
    assert_eq!(status, 200, "the server stopped answering; log:\n{}", server.logs());
    assert!(started.elapsed() < within, "health took {:?}", started.elapsed());
}
