//! `GET /api/node-types`, `GET /api/integration-types` and `veil node-types` /
//! `veil integration-types`: every registered type, with exactly the fields its descriptor
//! declares, for any logged-in user.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};
use veil_core::{Accepts, FieldSpec};

use crate::support::{Api, SYSADMIN_PASSWORD, Server, veil};

/// What the API must say about one type: description, default configuration, fields.
struct Expected {
    description: &'static str,
    default_configuration: Value,
    fields: Vec<Value>,
    /// Node types: the relations they answer, and whether they answer names of their own too.
    relations: Option<(Vec<&'static str>, bool)>,
}

fn accepts(a: Accepts) -> &'static str {
    match a {
        Accepts::Text => "TEXT",
        Accepts::File | Accepts::Certificate | Accepts::PrivateKey => "FILE",
        Accepts::Any => "ANY",
    }
}

fn fields(specs: &[FieldSpec]) -> Vec<Value> {
    specs
        .iter()
        .map(|f| json!({"pointer": f.pointer, "secret": f.secret.map(accepts), "template": f.message_template}))
        .collect()
}

fn expected(
    type_name: &'static str,
    description: &'static str,
    default_config: fn() -> Value,
    declared: &[FieldSpec],
) -> (&'static str, Expected) {
    let default_configuration = default_config();
    (type_name, Expected { description, default_configuration, fields: fields(declared), relations: None })
}

/// The node types the server registers: every node of `veil_nodes` and `integration_downlink`.
fn expected_node_types() -> BTreeMap<&'static str, Expected> {
    let registry = veil_nodes::registry().with(&veil_integrations::DOWNLINK_NODE);
    registry
        .types()
        .map(|d| {
            let (name, mut want) = expected(d.type_name, d.description, d.default_config, d.fields);
            want.relations = Some((d.relations.to_vec(), d.named_relations));
            (name, want)
        })
        .collect()
}

/// Every integration type of `veil_integrations`.
fn expected_integration_types() -> BTreeMap<&'static str, Expected> {
    veil_integrations::registry()
        .types()
        .map(|d| expected(d.type_name, d.description, d.default_config, d.fields))
        .collect()
}

/// The secret-capable fields of a list of field views: (pointer, accepted types).
fn secret_fields(fields: &[Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fields
        .iter()
        .filter(|f| !f["secret"].is_null())
        .map(|f| (f["pointer"].as_str().unwrap().to_owned(), f["secret"].as_str().unwrap().to_owned()))
        .collect();
    out.sort();
    out
}

/// Checks an answer of `/api/node-types` or `/api/integration-types` against the descriptors.
fn check_listing(answer: &Value, expected: &BTreeMap<&'static str, Expected>, what: &str) {
    let listed = answer.as_array().unwrap_or_else(|| panic!("{what}: expected an array, got {answer}"));
    let names: Vec<&str> = listed.iter().map(|t| t["type"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "{what}: a type is listed twice: {names:?}");
    assert_eq!(sorted, expected.keys().copied().collect::<Vec<_>>(), "{what}: the listed types");
    for item in listed {
        let name = item["type"].as_str().unwrap();
        let want = &expected[name];
        let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
        match &want.relations {
            Some((relations, named)) => {
                assert_eq!(
                    keys.len(),
                    7,
                    "{what} {name}: type, description, defaultConfiguration, fields, form, relations, namedRelations"
                );
                assert_eq!(item["relations"], json!(relations), "{what} {name}: relations");
                assert_eq!(item["namedRelations"], json!(named), "{what} {name}: namedRelations");
            }
            None => assert_eq!(
                keys.len(),
                5,
                "{what} {name}: exactly type, description, defaultConfiguration, fields, form"
            ),
        }
        // Every declared field is in the form, taking the same secrets and templates.
        let form = item["form"].as_array().unwrap_or_else(|| panic!("{what} {name}: a form"));
        for field in &want.fields {
            let pointer = field["pointer"].as_str().unwrap();
            let entries: Vec<&Value> = form.iter().filter(|f| f["pointer"] == pointer).collect();
            assert!(!entries.is_empty(), "{what} {name}: {pointer} is not in the form: {form:?}");
            for entry in entries {
                assert_eq!(
                    entry.get("secret").unwrap_or(&Value::Null),
                    &field["secret"],
                    "{what} {name}: {pointer}"
                );
                assert_eq!(entry["template"], field["template"], "{what} {name}: {pointer}");
            }
        }
        assert_eq!(item["description"], want.description, "{what} {name}: description");
        assert_eq!(item["defaultConfiguration"], want.default_configuration, "{what} {name}: default");
        let got_fields = item["fields"].as_array().unwrap();
        assert_eq!(
            secret_fields(got_fields),
            secret_fields(&want.fields),
            "{what} {name}: exactly the descriptor's secret-capable fields"
        );
        assert_eq!(got_fields, &want.fields, "{what} {name}: every declared field, in order");
    }
}

#[tokio::test]
async fn node_and_integration_types_list_every_descriptor_for_any_logged_in_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let nodes = expected_node_types();
    let integrations = expected_integration_types();
    // The descriptors this test compares against are the ones a form needs: some take secrets.
    assert!(nodes.contains_key("integration_downlink") && nodes.contains_key("rest_api_call"));
    assert!(nodes.values().any(|t| !secret_fields(&t.fields).is_empty()));
    assert!(integrations.values().any(|t| !secret_fields(&t.fields).is_empty()));

    // No token, or a bad one: 401.
    for path in ["/api/node-types", "/api/integration-types"] {
        let resp = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path} without a token");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{path}: {body}");
        let resp = server.client.get(server.url(path)).bearer_auth("not-a-token").send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path} with a bad token");
    }

    // The tenant administrator, the system administrator, and a customer user without any
    // permission on chains or integrations all see the same descriptors.
    let admin = Api::new(&server).await;
    let (status, customer) = admin.post("/api/customers", json!({"name": "Acme"})).await;
    assert_eq!(status, 201, "{customer}");
    let (status, user) = admin
        .post(
            "/api/users",
            json!({"username": "acme-viewer", "password": "viewer password 1", "customerId": customer["id"], "roles": ["CUSTOMER_USER"]}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let viewer = Api::as_user(&server, "acme-viewer", "viewer password 1").await;
    let sysadmin = Api::as_user(&server, "sysadmin", SYSADMIN_PASSWORD).await;
    let mut first: Option<(Value, Value)> = None;
    for api in [&admin, &viewer, &sysadmin] {
        let (status, node_types) = api.get("/api/node-types").await;
        assert_eq!(status, 200, "{node_types}");
        check_listing(&node_types, &nodes, "node type");
        let (status, integration_types) = api.get("/api/integration-types").await;
        assert_eq!(status, 200, "{integration_types}");
        check_listing(&integration_types, &integrations, "integration type");
        match &first {
            None => first = Some((node_types, integration_types)),
            Some(seen) => assert_eq!(seen, &(node_types, integration_types), "the same for every user"),
        }
    }

    // The CLI: a table with the secret-capable fields, or the API's JSON.
    let (node_json, integration_json) = first.unwrap();
    let config = dir.path().join("config");
    for (command, expected, api_json) in
        [("node-types", &nodes, &node_json), ("integration-types", &integrations, &integration_json)]
    {
        let (code, stdout, stderr) = run_cli(&config, &server.base, &admin.token, &[command]).await;
        assert_eq!(code, 0, "veil {command}: {stderr}");
        let mut lines = stdout.lines();
        let header = lines.next().unwrap_or_default();
        let columns: Vec<&str> = header.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
        assert_eq!(columns, ["TYPE", "DESCRIPTION", "SECRET FIELDS"], "veil {command}:\n{stdout}");
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), expected.len(), "veil {command}: one row per type:\n{stdout}");
        for (name, want) in expected {
            let row = rows
                .iter()
                .find(|r| r.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("veil {command}: no row for {name}:\n{stdout}"));
            assert!(row.contains(want.description), "veil {command} {name}: description in\n{row}");
            // In the order the descriptor declares them.
            let shown: String = want
                .fields
                .iter()
                .filter(|f| !f["secret"].is_null())
                .map(|f| format!("{} ({})", f["pointer"].as_str().unwrap(), f["secret"].as_str().unwrap()))
                .collect::<Vec<_>>()
                .join(", ");
            assert!(row.trim_end().ends_with(&shown), "veil {command} {name}: '{shown}' ends\n{row}");
        }
        let (code, stdout, stderr) =
            run_cli(&config, &server.base, &admin.token, &[command, "--output", "json"]).await;
        assert_eq!(code, 0, "veil {command} --output json: {stderr}");
        let printed: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(&printed, api_json, "veil {command} --output json prints the API's JSON");
    }

    // Not logged in: the CLI's auth exit code.
    let (code, _, stderr) = run_cli(&config, &server.base, "", &["node-types"]).await;
    assert_eq!(code, 5, "{stderr}");
}

/// `veil ARGS` against `base` with `token` (none when empty), off the async runtime: (exit code,
/// stdout, stderr).
async fn run_cli(config: &Path, base: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = veil();
    cmd.args(args)
        .env("XDG_CONFIG_HOME", config)
        .env("HOME", config)
        .env("VEIL_URL", base)
        .env("VEIL_TOKEN", token)
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || {
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// The form of `rest_api_call` as a chain editor reads it: each credentials field with the
/// `credentials.type` it belongs to, and the allowed values of every enum field.
#[tokio::test]
async fn node_types_name_each_fields_variant_and_each_enums_values() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let api = Api::new(&server).await;
    let (status, types) = api.get("/api/node-types").await;
    assert_eq!(status, 200, "{types}");
    let rest = types.as_array().unwrap().iter().find(|t| t["type"] == "rest_api_call").unwrap();
    let form = rest["form"].as_array().unwrap();
    let variants: BTreeMap<String, Vec<String>> = form
        .iter()
        .filter(|f| {
            f["pointer"].as_str().unwrap().starts_with("/credentials/") && f["pointer"] != "/credentials/type"
        })
        .fold(BTreeMap::new(), |mut by, f| {
            assert_eq!(f["variant"]["pointer"], "/credentials/type", "{f}");
            let field = f["pointer"].as_str().unwrap().trim_start_matches("/credentials/").to_owned();
            by.entry(field).or_default().push(f["variant"]["value"].as_str().unwrap().to_owned());
            by
        });
    let expected: BTreeMap<String, Vec<String>> = [
        ("username", vec!["basic"]),
        ("password", vec!["basic", "cert.PEM"]),
        ("token", vec!["bearer"]),
        ("header", vec!["apiKey"]),
        ("value", vec!["apiKey"]),
        ("caCert", vec!["cert.PEM"]),
        ("cert", vec!["cert.PEM"]),
        ("privateKey", vec!["cert.PEM"]),
        ("tokenUrl", vec!["oauth2"]),
        ("clientId", vec!["oauth2"]),
        ("clientSecret", vec!["oauth2"]),
        ("scope", vec!["oauth2"]),
        ("audience", vec!["oauth2"]),
        ("clientAuthentication", vec!["oauth2"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(variants, expected);
    let field =
        |pointer: &str| form.iter().find(|f| f["pointer"] == pointer).unwrap_or_else(|| panic!("{pointer}"));
    assert_eq!(field("/credentials/type")["type"], "enum");
    assert_eq!(
        field("/credentials/type")["values"],
        json!(["anonymous", "basic", "bearer", "apiKey", "cert.PEM", "oauth2"])
    );
    assert_eq!(
        (
            field("/credentials/clientSecret")["secret"].as_str(),
            field("/credentials/tokenUrl")["secret"].as_str()
        ),
        (Some("TEXT"), None)
    );
    assert_eq!(field("/credentials/clientAuthentication")["values"], json!(["basic", "body"]));
    assert_eq!(field("/credentials/clientAuthentication")["default"], "basic");
    assert_eq!(
        field("/requestMethod")["values"],
        json!(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
    );
    assert_eq!(field("/requestMethod")["default"], "POST");
    assert_eq!(
        (
            field("/restEndpointUrlPattern")["required"].as_bool(),
            field("/restEndpointUrlPattern")["secret"].as_str()
        ),
        (Some(true), Some("TEXT"))
    );
    assert_eq!(field("/readTimeoutMs")["type"], "number");
    assert_eq!(field("/headers/*")["template"], true);
    // Every enum field of every node and integration type lists its values.
    let (_, integrations) = api.get("/api/integration-types").await;
    for t in types.as_array().unwrap().iter().chain(integrations.as_array().unwrap()) {
        for f in t["form"].as_array().unwrap() {
            if f["type"] == "enum" {
                assert!(f["values"].as_array().is_some_and(|v| !v.is_empty()), "{}: {f}", t["type"]);
            }
            assert!(
                f["description"].is_string() || f["pointer"].as_str().unwrap().ends_with("/*"),
                "{}: undocumented {f}",
                t["type"]
            );
        }
    }
}
