use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::support::{Api, SECRET_INFO_KEYS, Server, assert_no_leak, sorted_keys};

const VALUE: &str = r#"tok-"quoted"\back\slash-ünï-🔑"#;

fn assert_error(resp: &(u16, Value), status: u16, code: &str, message_part: &str) {
    assert_eq!(resp.0, status, "{resp:?}");
    assert_eq!(resp.1["error"], code, "{resp:?}");
    let message = resp.1["message"].as_str().unwrap_or_default();
    assert!(message.contains(message_part), "{message:?} should contain {message_part:?}");
}

#[tokio::test]
async fn secrets_crud_as_a_client_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;

    let (status, created) = api
        .post(
            "/api/secrets",
            json!({"name": "api-token", "type": "TEXT", "description": "REST token", "value": VALUE}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(sorted_keys(&created), SECRET_INFO_KEYS, "metadata only");
    assert_eq!((created["name"].as_str(), created["version"].as_i64()), (Some("api-token"), Some(1)));

    let (status, mut got) = api.get(&format!("/api/secrets/{id}")).await;
    // GET adds when a configuration last used it: never, yet.
    assert_eq!(got.as_object_mut().unwrap().remove("lastUsedTime"), Some(Value::Null));
    assert_eq!((status, &got), (200, &created));

    let (status, patched) = api.patch(&format!("/api/secrets/{id}"), json!({"value": "rotated"})).await;
    assert_eq!((status, patched["version"].as_i64()), (200, Some(2)));
    // A client may send the whole object back; read-only fields are ignored.
    let mut whole = created.clone();
    whole["description"] = json!("new");
    let (status, patched) = api.patch(&format!("/api/secrets/{id}"), whole).await;
    assert_eq!(
        (status, patched["version"].as_i64(), patched["description"].as_str()),
        (200, Some(2), Some("new"))
    );

    let resp = api.patch(&format!("/api/secrets/{id}"), json!({"name": "renamed", "value": "x"})).await;
    assert_error(&resp, 400, "immutable_field", "name: cannot be changed after creation (it is 'api-token')");
    let resp = api.patch(&format!("/api/secrets/{id}"), json!({"type": "FILE"})).await;
    assert_error(&resp, 400, "immutable_field", "type: cannot be changed");
    assert_eq!(
        api.get(&format!("/api/secrets/{id}")).await.1["version"],
        2,
        "refused patches change nothing"
    );

    let (status, usages) = api.get(&format!("/api/secrets/{id}/usages")).await;
    assert_eq!((status, usages), (200, json!({"RULE_CHAIN": [], "INTEGRATION": []})));

    let (status, _) = api.delete(&format!("/api/secrets/{id}")).await;
    assert_eq!(status, 204);
    assert_error(&api.get(&format!("/api/secrets/{id}")).await, 404, "not_found", &id);
    assert_error(&api.delete(&format!("/api/secrets/{id}")).await, 404, "not_found", &id);
}

#[tokio::test]
async fn bad_requests_get_clear_errors_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;

    let resp = api.post("/api/secrets", json!({"type": "TEXT", "value": "v"})).await;
    assert_error(&resp, 400, "invalid_secret", "name: is required");
    let resp = api.post("/api/secrets", json!({"name": "a$b", "type": "TEXT", "value": "v"})).await;
    assert_error(&resp, 400, "invalid_secret", "name: must not contain '$'");
    assert_eq!(resp.1["problems"][0]["field"], "name");
    let resp = api.post("/api/secrets", json!({"name": "n", "type": "BLOB", "value": "v"})).await;
    assert_error(&resp, 400, "invalid_secret", "type: must be TEXT or FILE");
    let resp = api.post("/api/secrets", json!({"name": "n", "type": "TEXT", "value": 424242})).await;
    assert_error(&resp, 400, "invalid_secret", "value: must be a string");
    assert!(!resp.1.to_string().contains("424242"), "a wrongly typed value is not echoed");
    let resp = api.post("/api/secrets", json!({"name": "n", "type": "TEXT", "value": ""})).await;
    assert_error(&resp, 400, "invalid_secret", "value: must not be empty");
    let resp = api.send(api.req(Method::POST, "/api/secrets").body("{\"name\": \"n\", ")).await;
    assert_error(&resp, 400, "bad_request", "invalid JSON");

    assert_eq!(api.post("/api/secrets", json!({"name": "dup", "type": "TEXT", "value": "v"})).await.0, 201);
    let resp = api.post("/api/secrets", json!({"name": " dup ", "type": "TEXT", "value": "w"})).await;
    assert_error(&resp, 409, "name_taken", "a secret named 'dup' already exists");

    assert_error(
        &api.get("/api/secrets/not-a-uuid").await,
        400,
        "bad_request",
        "id: 'not-a-uuid' is not a UUID",
    );
    let resp = api.get("/api/secrets/00000000-0000-0000-0000-000000000000").await;
    assert_error(&resp, 404, "not_found", "secret '00000000-0000-0000-0000-000000000000' not found");
    assert_error(&api.get("/api/nothing-here").await, 404, "not_found", "no route for GET /api/nothing-here");

    // Authentication.
    let anonymous = server.client.get(server.url("/api/secrets")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.json::<Value>().await.unwrap()["error"], "unauthorized");
    let forged = Api { server: &server, token: format!("{}x", api.token) };
    assert_error(&forged.get("/api/secrets").await, 401, "unauthorized", "invalid token");
    let resp = server
        .client
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": "admin", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["message"], "invalid username or password");

    let resp = server
        .client
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": "admin", "password": 987654321}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(!resp.text().await.unwrap().contains("987654321"), "a login error never quotes the request");
    let resp =
        api.post("/api/secrets", json!({"name": "typo", "type": "TEXT", "value": "v", "fileNme": "x"})).await;
    assert_error(
        &resp,
        400,
        "invalid_secret",
        "fileNme: unknown field (expected name, type, description, value, source, fileName, allowedDestinations, maxVersions, expiresAt)",
    );
    let resp = api.get("/api/secrets?page=18446744073709551615").await;
    assert_eq!((resp.0, resp.1["hasNext"].as_bool()), (200, Some(false)));

    let (status, health) = api.get("/api/health").await;
    assert_eq!((status, &health["status"], &health["backend"]), (200, &json!("ok"), &json!("sqlite")));
    assert!(health["databaseQueries"].as_u64().is_some(), "{health}");
}

#[tokio::test]
async fn file_secrets_by_json_and_multipart_and_size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec();

    let (status, info) = api
        .post(
            "/api/secrets",
            json!({"name": "ca", "type": "FILE", "fileName": "ca.pem", "value": STANDARD.encode(&pem)}),
        )
        .await;
    assert_eq!(
        (status, info["type"].as_str(), info["fileName"].as_str()),
        (201, Some("FILE"), Some("ca.pem"))
    );
    let resp = api
        .post("/api/secrets", json!({"name": "bad", "type": "FILE", "fileName": "x", "value": "%%%"}))
        .await;
    assert_error(&resp, 400, "invalid_secret", "value: must be base64 for a FILE secret");

    let form = Form::new()
        .text("name", "client-cert")
        .text("description", "mTLS")
        .part("file", Part::bytes(pem.clone()).file_name("client.pem"));
    let (status, info) = api.send(api.req(Method::POST, "/api/secrets").multipart(form)).await;
    assert_eq!(
        (status, info["fileName"].as_str(), info["description"].as_str()),
        (201, Some("client.pem"), Some("mTLS"))
    );

    // A new file replaces the value and the file name.
    let id = info["id"].as_str().unwrap();
    let (status, info) = api
        .patch(
            &format!("/api/secrets/{id}"),
            json!({"value": STANDARD.encode(b"new"), "fileName": "renewed.pem"}),
        )
        .await;
    assert_eq!(
        (status, info["version"].as_i64(), info["fileName"].as_str()),
        (200, Some(2), Some("renewed.pem"))
    );

    // Exactly at the limits is accepted; one byte more is refused with 413.
    let form = Form::new()
        .text("name", "one-mib")
        .part("file", Part::bytes(vec![7u8; 1 << 20]).file_name("big.bin"));
    assert_eq!(api.send(api.req(Method::POST, "/api/secrets").multipart(form)).await.0, 201);
    let form = Form::new()
        .text("name", "too-big")
        .part("file", Part::bytes(vec![7u8; (1 << 20) + 1]).file_name("big.bin"));
    let resp = api.send(api.req(Method::POST, "/api/secrets").multipart(form)).await;
    assert_error(
        &resp,
        413,
        "payload_too_large",
        "value: is 1048577 bytes, the limit for FILE secrets is 1048576 bytes",
    );
    let resp = api
        .post("/api/secrets", json!({"name": "big-json", "type": "FILE", "fileName": "b", "value": STANDARD.encode(vec![1u8; (1 << 20) + 1])}))
        .await;
    assert_eq!(resp.0, 413);
    assert_eq!(
        api.post("/api/secrets", json!({"name": "text-max", "type": "TEXT", "value": "t".repeat(65536)}))
            .await
            .0,
        201
    );
    let resp = api
        .post("/api/secrets", json!({"name": "text-over", "type": "TEXT", "value": "t".repeat(65537)}))
        .await;
    assert_error(&resp, 413, "payload_too_large", "the limit for TEXT secrets is 65536 bytes");

    let (_, page) = api.get("/api/secrets?pageSize=100").await;
    let mut names: Vec<&str> =
        page["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["ca", "client-cert", "one-mib", "text-max"]);

    // A body beyond what any value needs is cut off early (the server closes that connection).
    let resp = api
        .send(
            api.req(Method::POST, "/api/secrets")
                .header("content-type", "application/json")
                .body(vec![b' '; 4 << 20]),
        )
        .await;
    assert_error(&resp, 413, "payload_too_large", "request body is larger than the server accepts");
}

#[tokio::test]
async fn listing_pages_sorts_and_searches_and_no_response_carries_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let mut bodies = Vec::new();
    for (i, name) in ["mqtt-password", "api-token", "Loriot", "zeta", "ÄÖÜ-key"].iter().enumerate() {
        let (status, body) = api
            .post("/api/secrets", json!({"name": name, "type": "TEXT", "value": format!("{VALUE}-{i}")}))
            .await;
        assert_eq!(status, 201);
        bodies.push(body);
    }
    let (status, page) = api.get("/api/secrets?page=0&pageSize=2").await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        page["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Loriot", "api-token"]);
    assert_eq!(
        (page["totalElements"].as_u64(), page["totalPages"].as_u64(), page["hasNext"].as_bool()),
        (Some(5), Some(3), Some(true))
    );
    let (_, page) = api.get("/api/secrets?page=2&pageSize=2").await;
    assert_eq!((page["data"].as_array().unwrap().len(), page["hasNext"].as_bool()), (1, Some(false)));
    let (_, found) = api.get("/api/secrets?textSearch=PASS").await;
    assert_eq!(found["data"][0]["name"], "mqtt-password");
    assert_eq!(found["totalElements"], 1);
    let resp = api.get("/api/secrets?pageSize=abc").await;
    assert_error(&resp, 400, "bad_request", "pageSize");
    bodies.extend([page, found, resp.1]);
    let values: Vec<String> = (0..5).map(|i| format!("{VALUE}-{i}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    for body in &bodies {
        let text = body.to_string();
        assert_no_leak(&text, &values);
        assert!(!text.contains("tok-") && !text.contains("back"), "not even a part of one: {text}");
    }
}

#[tokio::test]
async fn audit_pages_at_the_integer_limits_are_empty_not_wrapped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    for i in 0..3 {
        let body = json!({"name": format!("audited-{i}"), "type": "TEXT", "value": "v"});
        assert_eq!(api.post("/api/secrets", body).await.0, 201);
    }
    let (status, first) = api.get("/api/audit-logs?page=0&pageSize=2").await;
    assert_eq!(
        (status, first["data"].as_array().unwrap().len(), first["hasNext"].as_bool()),
        (200, 2, Some(true))
    );
    // This page used to wrap around to page 0 with hasNext true; now it is past the end, like
    // the same page of /api/secrets.
    for page in ["18446744073709551615", "9223372036854775807", "4611686018427387904"] {
        let (status, beyond) = api.get(&format!("/api/audit-logs?page={page}&pageSize=2")).await;
        assert_eq!(status, 200, "{beyond}");
        assert_eq!(beyond["data"], json!([]), "page {page}");
        assert_eq!(beyond["hasNext"], false, "page {page}");
        assert_eq!(beyond["totalElements"], first["totalElements"], "page {page}");
    }
    let resp = api.get("/api/audit-logs?page=18446744073709551616&pageSize=2").await;
    assert_error(&resp, 400, "bad_request", "page");
}

#[tokio::test]
async fn multipart_text_fields_must_be_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let file = || Part::bytes(b"cert".to_vec()).file_name("c.pem");
    // FF FE is a UTF-16 byte order mark: axum's text() used to decode "name" as UTF-16 ("慮敭").
    for field in ["name", "description", "fileName", "type"] {
        let mut form = Form::new().part(field, Part::bytes(vec![0xFF, 0xFE, b'n', b'a', b'm', b'e']));
        if field != "name" {
            form = form.text("name", format!("utf8-{field}"));
        }
        let form = form.part("file", file());
        let resp = api.send(api.req(Method::POST, "/api/secrets").multipart(form)).await;
        assert_error(&resp, 400, "invalid_secret", &format!("{field}: must be UTF-8 text"));
        assert_eq!(resp.1["problems"][0]["field"], field);
    }
    // A UTF-8 byte order mark decodes, and is then refused as an invisible character.
    let mut bom_name = vec![0xEF, 0xBB, 0xBF];
    bom_name.extend_from_slice(b"name");
    let form = Form::new().part("name", Part::bytes(bom_name)).part("file", file());
    let resp = api.send(api.req(Method::POST, "/api/secrets").multipart(form)).await;
    assert_error(&resp, 400, "invalid_secret", "(found U+FEFF)");
    let (_, page) = api.get("/api/secrets").await;
    assert_eq!(page["totalElements"], 0, "nothing was created: {page}");
    let form =
        Form::new().text("name", "ünïcode-ok").text("description", "Zertifikat für ünï").part("file", file());
    let (status, created) = api.send(api.req(Method::POST, "/api/secrets").multipart(form)).await;
    assert_eq!((status, created["name"].as_str()), (201, Some("ünïcode-ok")), "{created}");
}

#[tokio::test]
async fn lookalike_invisible_and_unnormalized_names_and_unsafe_text_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let text = |name: &str| json!({"name": name, "type": "TEXT", "value": "v"});
    assert_eq!(api.post("/api/secrets", text("s-basic")).await.0, 201);
    assert_eq!(api.post("/api/secrets", text("café-key")).await.0, 201);

    let resp = api.post("/api/secrets", text("s-b\u{430}sic")).await;
    assert_error(
        &resp,
        409,
        "name_confusable",
        "name: 's-b\u{430}sic' looks like the existing secret 's-basic'",
    );
    let resp = api.post("/api/secrets", text("cafe\u{301}-key")).await;
    assert_error(&resp, 400, "invalid_secret", "send the NFC form 'café-key'");
    for (name, found) in [("api\u{200b}-token", "U+200B"), ("token\u{202e}gnp.exe", "U+202E")] {
        let resp = api.post("/api/secrets", text(name)).await;
        assert_error(&resp, 400, "invalid_secret", found);
        assert_eq!(resp.1["problems"][0]["field"], "name");
    }
    // A placeholder with such a name is refused too (the same rule in veil-core).
    let chain = json!({"name": "c", "nodes": [{"type": "rest_api_call", "name": "Call", "configuration": {
        "restEndpointUrlPattern": "http://127.0.0.1:9/x", "requestMethod": "POST",
        "credentials": {"type": "bearer", "token": "$<secret:cafe\u{301}-key>"}}}]});
    let resp = api.post("/api/rule-chains", chain).await;
    assert_error(&resp, 400, "invalid_config", "NFC");

    // Descriptions: newline and tab yes; NUL, ESC, bidi overrides no. File names: not . or ..
    let described = |d: &str| json!({"name": "described", "type": "TEXT", "value": "v", "description": d});
    for (d, found) in [("a\u{0}b", "U+0000"), ("line2\u{1b}[31mRED", "U+001B"), ("x\u{202e}y", "U+202E")] {
        let resp = api.post("/api/secrets", described(d)).await;
        assert_error(&resp, 400, "invalid_secret", "description: must not contain");
        assert!(resp.1["message"].as_str().unwrap().contains(found), "{resp:?}");
    }
    let (status, info) = api.post("/api/secrets", described("line one\n\tline two")).await;
    assert_eq!((status, info["description"].as_str()), (201, Some("line one\n\tline two")));
    let resp = api
        .patch(&format!("/api/secrets/{}", info["id"].as_str().unwrap()), json!({"description": "\u{1b}[2J"}))
        .await;
    assert_error(&resp, 400, "invalid_secret", "U+001B");
    for file_name in [".", ".."] {
        let body = json!({"name": "f", "type": "FILE", "fileName": file_name, "value": STANDARD.encode("x")});
        let resp = api.post("/api/secrets", body).await;
        assert_error(
            &resp,
            400,
            "invalid_secret",
            &format!("fileName: must be a plain file name, not '{file_name}'"),
        );
    }

    // Users, roles, customers.
    let user =
        |name: &str| json!({"username": name, "password": "a long password", "roles": ["SECRET_MANAGER"]});
    let resp = api.post("/api/users", user("\u{430}dmin")).await;
    assert_error(
        &resp,
        409,
        "name_confusable",
        "username: '\u{430}dmin' looks like the existing user 'admin'",
    );
    let resp = api.post("/api/users", user("bob\u{200d}")).await;
    assert_error(&resp, 400, "invalid_request", "username: must not contain invisible formatting characters");
    let role =
        |name: &str| json!({"name": name, "permissions": [{"resource": "SECRET", "operations": ["READ"]}]});
    let resp = api.post("/api/roles", role("TENANT_ADMIN\u{200b}")).await;
    assert_error(&resp, 400, "invalid_request", "U+200B");
    let resp = api.post("/api/roles", role("SECRET_MANAGЕR")).await; // Cyrillic Е
    assert_error(&resp, 400, "invalid_request", "looks like the built-in role 'SECRET_MANAGER'");
    assert_eq!(api.post("/api/customers", json!({"name": "Acme"})).await.0, 201);
    let resp = api.post("/api/customers", json!({"name": "\u{410}cme"})).await;
    assert_error(&resp, 409, "name_confusable", "looks like the existing customer 'Acme'");

    // A tenant administrator's name follows the same rules (checked before the tenant exists).
    let sysadmin = Api::as_user(&server, "sysadmin", crate::support::SYSADMIN_PASSWORD).await;
    let tenant =
        json!({"name": "Globex", "admin": {"username": "\u{430}dmin", "password": "a long password"}});
    let resp = sysadmin.post("/api/tenants", tenant).await;
    assert_error(&resp, 409, "name_confusable", "username: '\u{430}dmin' looks like");
    let tenant = json!({"name": "Globex", "admin": {"username": "x\u{202e}", "password": "a long password"}});
    let resp = sysadmin.post("/api/tenants", tenant).await;
    assert_error(&resp, 400, "invalid_request", "admin.username: must not contain invisible");
    let (_, tenants) = sysadmin.get("/api/tenants").await;
    assert_eq!(tenants["totalElements"], 1, "no tenant was left behind: {tenants}");
}

#[tokio::test]
async fn the_database_files_are_private_in_a_pre_existing_shared_data_dir() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start(&data).await;
    let api = Api::new(&server).await;
    assert_eq!(api.post("/api/secrets", json!({"name": "n", "type": "TEXT", "value": "v"})).await.0, 201);
    for file in ["veil.db", "veil.db-wal", "veil.db-shm", "master.key"] {
        let mode = std::fs::metadata(data.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
}

/// `allowedDestinations` on create, GET and PATCH: normalized, every bad entry named, cleared
/// with an empty list, each change in the audit log; the CLI's `--allow-host`.
#[tokio::test]
async fn allowed_destinations_are_kept_checked_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let (status, created) = api
        .post(
            "/api/secrets",
            json!({"name": "loriot-password", "type": "TEXT", "value": "pw",
                   "allowedDestinations": ["*.LORIOT.io", "127.0.0.1:9000", "*.loriot.io"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["allowedDestinations"], json!(["*.loriot.io", "127.0.0.1:9000"]));
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, shown) = api.get(&format!("/api/secrets/{id}")).await;
    assert_eq!(shown["allowedDestinations"], created["allowedDestinations"]);

    let bad = api
        .post(
            "/api/secrets",
            json!({"name": "x", "type": "TEXT", "value": "v", "allowedDestinations": ["ok.example.com", "a b", "h:0"]}),
        )
        .await;
    assert_error(&bad, 400, "invalid_secret", "allowedDestinations/1: 'a b' is not a host name");
    let fields: Vec<&str> =
        bad.1["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["allowedDestinations/1", "allowedDestinations/2"]);
    let not_a_list = api
        .post("/api/secrets", json!({"name": "x", "type": "TEXT", "value": "v", "allowedDestinations": "h"}))
        .await;
    assert_error(
        &not_a_list,
        400,
        "invalid_secret",
        "allowedDestinations: must be an array of host patterns",
    );

    let (status, patched) =
        api.patch(&format!("/api/secrets/{id}"), json!({"allowedDestinations": ["eu1.loriot.io:443"]})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["allowedDestinations"].clone(), patched["version"].clone()),
        (json!(["eu1.loriot.io:443"]), json!(1))
    );
    let (_, cleared) = api.patch(&format!("/api/secrets/{id}"), json!({"allowedDestinations": []})).await;
    assert_eq!(cleared["allowedDestinations"], json!([]));
    let (_, audit) = api.get(&format!("/api/audit-logs?secretId={id}")).await;
    let changes: Vec<&Value> =
        audit["data"].as_array().unwrap().iter().filter(|e| e["action"] == "DESTINATIONS_CHANGE").collect();
    assert_eq!(changes.len(), 2, "{audit}");
    assert_eq!(changes[1]["details"]["allowedDestinations"], json!(["eu1.loriot.io:443"]));
}
