//! The OpenAPI document: served at /api/openapi.json and printed by `veil openapi`, the same
//! text; every operation it lists is a route of the server (and every route under /api/ is
//! registered with its description: `.ci/run` refuses a plain `.route("/api…`).

use serde_json::{Value, json};

use crate::support::{Api, Server, veil};

#[tokio::test]
async fn the_document_is_served_printed_and_lists_only_real_routes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    // Public: a client generator needs no account.
    let served = server.client.get(server.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/json");
    let served: Value = served.json().await.unwrap();
    let printed = veil().arg("openapi").output().unwrap();
    assert!(printed.status.success());
    let printed: Value = serde_json::from_slice(&printed.stdout).unwrap();
    assert_eq!(served, printed, "GET /api/openapi.json and `veil openapi` give the same document");
    assert_eq!(served["openapi"], "3.1.0");
    let schemes = &served["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        (schemes["session"]["in"].as_str(), schemes["session"]["name"].as_str()),
        (Some("cookie"), Some("veil_session"))
    );
    assert_eq!(
        (schemes["csrf"]["in"].as_str(), schemes["csrf"]["name"].as_str()),
        (Some("header"), Some("X-CSRF-Token"))
    );
    assert!(served["components"]["schemas"]["ErrorBody"]["properties"]["problems"].is_object(), "{served}");

    let mut operations = 0;
    let mut missing = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (path, item) in served["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/"), "{path}");
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            assert!(
                ids.insert(operation["operationId"].as_str().unwrap().to_owned()),
                "operationId twice: {operation}"
            );
            let statuses = operation["responses"].as_object().unwrap();
            assert!(statuses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success answer");
            let public = operation["security"] == json!([{}]);
            if !public {
                assert!(
                    statuses.contains_key("401") && statuses.contains_key("403"),
                    "{method} {path}: {statuses:?}"
                );
            }
            // A made-up id in every path parameter: the route must exist (no "no route" 404, no 405).
            let concrete =
                path.split('/')
                    .map(|part| {
                        if part.starts_with('{') { uuid::Uuid::new_v4().to_string() } else { part.to_owned() }
                    })
                    .collect::<Vec<_>>()
                    .join("/");
            // Never end the session this test uses.
            if concrete.ends_with("/logout") {
                continue;
            }
            let request = api.req(method.to_uppercase().parse().unwrap(), &concrete).json(&json!({}));
            let (status, body) = api.send(request).await;
            let no_route =
                status == 404 && body["message"].as_str().is_some_and(|m| m.starts_with("no route for"));
            if no_route || status == 405 {
                missing.push(format!("{method} {path}: {status} {body}"));
            }
        }
    }
    assert!(missing.is_empty(), "documented but not served:\n{}", missing.join("\n"));
    assert!(operations >= 60, "{operations} operations");
}
