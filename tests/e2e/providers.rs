//! Linked secrets from providers, against the real binary: a `files` provider on a temporary
//! directory (values, a change upstream seen after the cache period, a path escape refused at
//! save and a link out of the directory refused at fetch), an `exec` provider with a small script
//! (Vector's JSON protocol and the argument one), the guards (a linked secret in use, a provider
//! with linked secrets, a provider's credential secret), and no value in logs at trace level,
//! debug events, traces or the audit log.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Api, Receiver, Server, assert_no_leak, serve_command};

const FIRST: &str = "linked-Vq3-Hx8Rt";
const SECOND: &str = "linked-Zp6-Mw2Kc";
const FROM_COMMAND: &str = "exec-Lr5-Nd9Qy";

async fn created(api: &Api<'_>, path: &str, doc: Value) -> Value {
    let (status, body) = api.post(path, doc).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// A chain whose one node sends the secret `name` as a bearer token to `url`, debug mode on.
async fn forwarding_chain(api: &Api<'_>, name: &str, url: &str) -> String {
    let chain = json!({"name": format!("Forward {name}"), "nodes": [{"type": "rest_api_call", "name": "Call",
        "debugMode": true, "configuration": {"restEndpointUrlPattern": url, "requestMethod": "POST",
        "credentials": {"type": "bearer", "token": format!("$<secret:{name}>")}}}]});
    created(api, "/api/rule-chains", chain).await["id"].as_str().unwrap().to_owned()
}

async fn send(api: &Api<'_>, chain: &str) -> Value {
    let (status, answer) =
        api.post(&format!("/api/rule-chains/{chain}/messages?wait=true"), json!({"data": {"t": 1}})).await;
    assert_eq!(status, 200, "{answer}");
    answer["trace"][0].clone()
}

/// A chain sending the linked secret `name` fails at the fetch: `Failure`, naming the secret and
/// `provider`, with `says` in the reason. The chain's id.
async fn fails_to_fetch(api: &Api<'_>, url: &str, name: &str, provider: &str, says: &str) -> String {
    let chain = forwarding_chain(api, name, url).await;
    let step = send(api, &chain).await;
    assert_eq!(step["relation"], json!(["Failure"]), "{step}");
    let error = step["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("secret '{name}' could not be fetched from provider '{provider}'"))
            && error.contains(says),
        "{error}"
    );
    chain
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn a_files_provider_links_secrets_that_are_used_tracked_and_masked_like_stored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mounts = tempfile::tempdir().unwrap();
    let secrets_dir = mounts.path().join("app");
    std::fs::create_dir(&secrets_dir).unwrap();
    write(&secrets_dir.join("api-token"), FIRST);
    let outside = mounts.path().join("outside-value");
    write(&outside, "outside-Ty7-Bq1Lm");
    std::os::unix::fs::symlink(&outside, secrets_dir.join("escape")).unwrap();

    let mut cmd = serve_command(dir.path());
    cmd.env("VEIL_LOG", "trace").arg("--provider-dir").arg(mounts.path());
    let server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    let sink = Receiver::start().await;

    // A directory outside the allowed ones is refused at save, naming the field.
    let (status, body) = api
        .post(
            "/api/secret-providers",
            json!({"name": "etc", "type": "files", "configuration": {"directory": "/etc"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["problems"][0]["field"], "configuration.directory", "{body}");
    assert!(body["message"].as_str().unwrap().contains("not under a directory this server allows"), "{body}");

    let provider = created(
        &api,
        "/api/secret-providers",
        json!({"name": "mounted", "type": "files", "configuration": {"directory": secrets_dir}, "cacheSeconds": 1}),
    )
    .await;
    assert_eq!((provider["type"].as_str(), provider["cacheSeconds"].as_u64()), (Some("files"), Some(1)));
    let (status, test) = api
        .post(&format!("/api/secret-providers/{}/test", provider["id"].as_str().unwrap()), json!({}))
        .await;
    assert_eq!((status, test["ok"].clone()), (200, json!(true)), "{test}");
    let (_, keys) =
        api.get(&format!("/api/secret-providers/{}/keys", provider["id"].as_str().unwrap())).await;
    assert_eq!(keys["keys"], json!(["api-token"]), "a link out of the directory is not listed: {keys}");

    // A key that is not a file name of the directory is refused at save.
    for key in ["../outside-value", "/etc/passwd", ".hidden"] {
        let (status, body) = api
            .post(
                "/api/secrets",
                json!({"name": "bad", "type": "TEXT", "source": {"provider": "mounted", "key": key}}),
            )
            .await;
        assert_eq!(status, 400, "{key}: {body}");
        assert_eq!(body["problems"][0]["field"], "source.key", "{body}");
    }
    let (status, body) = api
        .post("/api/secrets", json!({"name": "x", "type": "TEXT", "value": "v", "source": {"provider": "mounted", "key": "api-token"}}))
        .await;
    assert_eq!(status, 400, "a value and a source: {body}");

    let secret = created(
        &api,
        "/api/secrets",
        json!({"name": "api-token", "type": "TEXT", "source": {"provider": "mounted", "key": "api-token"}}),
    )
    .await;
    assert_eq!(secret["source"], json!({"provider": "mounted", "key": "api-token"}));
    assert!(secret.get("value").is_none());
    let chain = forwarding_chain(&api, "api-token", &sink.url).await;
    let step = send(&api, &chain).await;
    assert_eq!(step["relation"], json!(["Success"]), "{step}");
    assert_eq!(sink.requests()[0].headers["authorization"], format!("Bearer {FIRST}"));
    let (_, shown) = api.get(&format!("/api/secrets/{}", secret["id"].as_str().unwrap())).await;
    assert!(shown["status"]["lastFetchedTime"].is_i64(), "{shown}");
    assert_eq!(shown["status"]["fetchedValues"], 1, "{shown}");

    // A change upstream is used once the cache period (1 s) is over.
    write(&secrets_dir.join("api-token"), SECOND);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let step = send(&api, &chain).await;
    assert_eq!(step["relation"], json!(["Success"]), "{step}");
    assert_eq!(sink.requests()[1].headers["authorization"], format!("Bearer {SECOND}"));

    // Its value cannot be changed in Veil, and it cannot be deleted while a chain uses it.
    let id = secret["id"].as_str().unwrap();
    let (status, body) = api.patch(&format!("/api/secrets/{id}"), json!({"value": "other"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("linked to provider 'mounted'"), "{body}");
    let (status, body) = api.delete(&format!("/api/secrets/{id}")).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("secret_in_use")), "{body}");
    // Nor its provider while the secret comes from it.
    let (status, body) =
        api.delete(&format!("/api/secret-providers/{}", provider["id"].as_str().unwrap())).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("provider_in_use")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("'api-token'"), "{body}");

    // A link out of the directory fails at fetch: Failure, naming the secret and the provider.
    let escape = created(
        &api,
        "/api/secrets",
        json!({"name": "escape", "type": "TEXT", "source": {"provider": "mounted", "key": "escape"}}),
    )
    .await;
    let escaping = fails_to_fetch(&api, &sink.url, "escape", "mounted", "leads out").await;
    assert_eq!(sink.requests().len(), 2, "nothing was sent");

    // Pointed at another key, it works from the next message on; the change is audited.
    let (status, relinked) = api
        .patch(
            &format!("/api/secrets/{}", escape["id"].as_str().unwrap()),
            json!({"source": {"provider": "mounted", "key": "api-token"}}),
        )
        .await;
    assert_eq!((status, relinked["source"]["key"].as_str()), (200, Some("api-token")), "{relinked}");
    assert_eq!(send(&api, &escaping).await["relation"], json!(["Success"]));
    assert_eq!(sink.requests()[2].headers["authorization"], format!("Bearer {SECOND}"));

    // No value anywhere: server log at trace level, debug events, audit.
    let (_, events) = api.get(&format!("/api/rule-chains/{chain}/events")).await;
    let (_, audit) = api.get("/api/audit-logs?pageSize=1000").await;
    let values = [FIRST, SECOND, "outside-Ty7-Bq1Lm"];
    assert_no_leak(&events.to_string(), &values);
    assert_no_leak(&audit.to_string(), &values);
    assert_no_leak(&server.logs(), &values);
    assert_no_leak(&server.stdout(), &values);
    let uses = audit["data"].as_array().unwrap().iter().filter(|e| e["action"] == "USE").count();
    assert!(uses >= 1, "uses of a linked secret are audited like a stored one's: {audit}");
    let relinked = audit["data"].as_array().unwrap().iter().find(|e| e["action"] == "SOURCE_CHANGE");
    assert_eq!(relinked.map(|e| e["details"]["source"]["key"].clone()), Some(json!("api-token")), "{audit}");
}

#[tokio::test]
async fn an_exec_provider_runs_an_allowed_program_without_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    // Vector's exec protocol: {"version", "secrets": [keys]} in, {key: {value, error}} out.
    let json_script = tools.path().join("json-secrets");
    write(
        &json_script,
        &format!(
            "#!/bin/sh\nread -r request\ncase \"$request\" in\n  *'\"db\"'*) printf '{{\"db\": {{\"value\": \"{FROM_COMMAND}\", \"error\": null}}}}' ;;\n  *) printf '{{\"missing\": {{\"value\": null, \"error\": \"no such secret\"}}}}' ;;\nesac\n"
        ),
    );
    let argument_script = tools.path().join("arg-secret");
    write(&argument_script, "#!/bin/sh\necho \"value-of-$1\"\n");
    for script in [&json_script, &argument_script] {
        std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut cmd = serve_command(dir.path());
    cmd.env("VEIL_LOG", "trace")
        .arg("--provider-command")
        .arg(&json_script)
        .arg("--provider-command")
        .arg(&argument_script);
    let server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    let sink = Receiver::start().await;

    // A program the operator did not allow is refused at save.
    let (status, body) = api
        .post(
            "/api/secret-providers",
            json!({"name": "sh", "type": "exec", "configuration": {"command": ["/bin/sh", "-c", "id"]}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not a program this server allows"), "{body}");

    created(
        &api,
        "/api/secret-providers",
        json!({"name": "vault-cli", "type": "exec", "configuration": {"command": [json_script]}}),
    )
    .await;
    created(
        &api,
        "/api/secret-providers",
        json!({"name": "by-argument", "type": "exec", "configuration": {"command": [argument_script], "protocol": "argument"}}),
    )
    .await;
    created(
        &api,
        "/api/secrets",
        json!({"name": "db", "type": "TEXT", "source": {"provider": "vault-cli", "key": "db"}}),
    )
    .await;
    created(
        &api,
        "/api/secrets",
        json!({"name": "missing", "type": "TEXT", "source": {"provider": "vault-cli", "key": "missing"}}),
    )
    .await;
    created(
        &api,
        "/api/secrets",
        json!({"name": "arg", "type": "TEXT", "source": {"provider": "by-argument", "key": "k1"}}),
    )
    .await;

    let chain = forwarding_chain(&api, "db", &sink.url).await;
    assert_eq!(send(&api, &chain).await["relation"], json!(["Success"]));
    assert_eq!(sink.requests()[0].headers["authorization"], format!("Bearer {FROM_COMMAND}"));
    let by_argument = forwarding_chain(&api, "arg", &sink.url).await;
    assert_eq!(send(&api, &by_argument).await["relation"], json!(["Success"]));
    assert_eq!(
        sink.requests()[1].headers["authorization"],
        "Bearer value-of-k1",
        "one trailing newline dropped"
    );

    fails_to_fetch(&api, &sink.url, "missing", "vault-cli", "no such secret").await;
    let (_, listed) = api.get("/api/secrets?textSearch=missing").await;
    assert!(listed["data"][0]["status"]["error"].as_str().unwrap().contains("no such secret"), "{listed}");
    assert_eq!(sink.requests().len(), 2);
    assert_no_leak(&server.logs(), &[FROM_COMMAND]);
}

#[tokio::test]
async fn a_providers_credentials_are_secrets_that_cannot_be_deleted_while_it_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let token = created(
        &api,
        "/api/secrets",
        json!({"name": "vault-token", "type": "TEXT", "value": "hvs.Cred-Tk9", "allowedDestinations": ["vault.internal"]}),
    )
    .await;
    // The token may go only to vault.internal: a provider at another address is refused at save.
    let (status, body) = api
        .post(
            "/api/secret-providers",
            json!({"name": "vault", "type": "vault-kv2", "configuration": {"address": "http://127.0.0.1:8200", "token": "$<secret:vault-token>"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["problems"][0]["field"], "configuration.token", "{body}");
    assert!(body["message"].as_str().unwrap().contains("may not be sent to 127.0.0.1:8200"), "{body}");
    // A credential written into the configuration is refused: credentials are secrets.
    let (status, body) = api
        .post(
            "/api/secret-providers",
            json!({"name": "vault", "type": "vault-kv2", "configuration": {"address": "http://vault.internal:8200", "token": "hvs.plain"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("must name a secret as $<secret:NAME>"), "{body}");

    let provider = created(
        &api,
        "/api/secret-providers",
        json!({"name": "vault", "type": "vault-kv2", "configuration": {"address": "http://vault.internal:8200", "token": "$<secret:vault-token>"}}),
    )
    .await;
    let (status, body) = api.delete(&format!("/api/secrets/{}", token["id"].as_str().unwrap())).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("secret_in_use")), "{body}");
    assert_eq!(body["references"]["SECRET_PROVIDER"][0]["name"], "vault", "{body}");
    // Nor can its allowedDestinations stop allowing where the provider sends it.
    let (status, body) = api
        .patch(
            &format!("/api/secrets/{}", token["id"].as_str().unwrap()),
            json!({"allowedDestinations": ["elsewhere.internal"]}),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("destinations_in_use")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("secret provider 'vault'"), "{body}");
    // Names and types never change.
    let mut renamed = provider.clone();
    renamed["name"] = json!("other");
    let (status, body) =
        api.put(&format!("/api/secret-providers/{}", provider["id"].as_str().unwrap()), renamed).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("immutable_field")), "{body}");
    // Once the provider is gone, so is the reference.
    let (status, _) =
        api.delete(&format!("/api/secret-providers/{}", provider["id"].as_str().unwrap())).await;
    assert_eq!(status, 204);
    let (status, body) = api.delete(&format!("/api/secrets/{}", token["id"].as_str().unwrap())).await;
    assert_eq!(status, 204, "{body}");
}

/// A stand-in for Vault's HTTP API, as documented: KV v2 read (`GET /v1/{mount}/data/{path}`,
/// `?version=N`), list (`LIST /v1/{mount}/metadata/`) and token lookup
/// (`GET /v1/auth/token/lookup-self`), each answering 403 `{"errors": ["permission denied"]}`
/// to any other `X-Vault-Token`. `values` holds the current value of `app/db`'s `password`.
async fn vault_stand_in(
    token: &'static str,
    values: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> String {
    use axum::extract::{Path as UrlPath, Query};
    use axum::http::{HeaderMap, Method, StatusCode};
    use axum::response::IntoResponse;
    let authorized = move |headers: &HeaderMap| headers.get("x-vault-token").is_some_and(|t| t == token);
    let denied =
        || (StatusCode::FORBIDDEN, axum::Json(json!({"errors": ["permission denied"]}))).into_response();
    let app = axum::Router::new()
        .route(
            "/v1/auth/token/lookup-self",
            axum::routing::get(move |headers: HeaderMap| async move {
                if !authorized(&headers) {
                    return denied();
                }
                axum::Json(json!({"data": {"policies": ["default", "veil-read"]}})).into_response()
            }),
        )
        .route(
            "/v1/secret/data/{*path}",
            axum::routing::get(
                move |headers: HeaderMap,
                      UrlPath(path): UrlPath<String>,
                      Query(q): Query<std::collections::HashMap<String, String>>| {
                    let values = values.clone();
                    async move {
                        if !authorized(&headers) {
                            return denied();
                        }
                        let values = values.lock().unwrap().clone();
                        let version =
                            q.get("version").and_then(|v| v.parse::<usize>().ok()).unwrap_or(values.len());
                        match (path.as_str(), values.get(version.wrapping_sub(1))) {
                            ("app/db", Some(value)) => axum::Json(json!({"data": {
                                "data": {"password": value, "user": "veil"},
                                "metadata": {"version": version}}}))
                            .into_response(),
                            _ => (StatusCode::NOT_FOUND, axum::Json(json!({"errors": []}))).into_response(),
                        }
                    }
                },
            ),
        )
        .route(
            "/v1/secret/metadata/",
            axum::routing::any(move |method: Method, headers: HeaderMap| async move {
                if method.as_str() != "LIST" || !authorized(&headers) {
                    return denied();
                }
                axum::Json(json!({"data": {"keys": ["app/", "db"]}})).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test]
async fn a_vault_kv2_provider_reads_a_field_sees_a_new_version_and_reports_a_refusal() {
    const TOKEN: &str = "hvs.Stand-In-Tk4";
    const V1: &str = "vault-Pw1-Gh5Ls";
    const V2: &str = "vault-Pw2-Rk8Wd";
    let values = std::sync::Arc::new(std::sync::Mutex::new(vec![V1.to_owned()]));
    let address = vault_stand_in(TOKEN, values.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(dir.path());
    cmd.env("VEIL_LOG", "trace");
    let server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    let sink = Receiver::start().await;
    let host = address.trim_start_matches("http://").to_owned();
    created(
        &api,
        "/api/secrets",
        json!({"name": "vault-token", "type": "TEXT", "value": TOKEN, "allowedDestinations": [host]}),
    )
    .await;
    let provider = created(
        &api,
        "/api/secret-providers",
        json!({"name": "vault", "type": "vault-kv2", "cacheSeconds": 1,
               "configuration": {"address": address, "token": "$<secret:vault-token>"}}),
    )
    .await;
    let provider_id = provider["id"].as_str().unwrap().to_owned();
    let (_, test) = api.post(&format!("/api/secret-providers/{provider_id}/test"), json!({})).await;
    assert_eq!(test["ok"], true, "{test}");
    assert!(test["message"].as_str().unwrap().contains("veil-read"), "{test}");
    let (_, keys) = api.get(&format!("/api/secret-providers/{provider_id}/keys")).await;
    assert_eq!(keys["keys"], json!(["db"]), "folders are not keys: {keys}");

    // Two fields: the one asked for is used; without one, the error lists them.
    created(
        &api,
        "/api/secrets",
        json!({"name": "db-password", "type": "TEXT",
        "source": {"provider": "vault", "key": "app/db", "field": "password"}}),
    )
    .await;
    created(
        &api,
        "/api/secrets",
        json!({"name": "db-first", "type": "TEXT",
        "source": {"provider": "vault", "key": "app/db", "field": "password", "version": "1"}}),
    )
    .await;
    created(
        &api,
        "/api/secrets",
        json!({"name": "db-any", "type": "TEXT",
        "source": {"provider": "vault", "key": "app/db"}}),
    )
    .await;
    let chain = forwarding_chain(&api, "db-password", &sink.url).await;
    assert_eq!(send(&api, &chain).await["relation"], json!(["Success"]));
    assert_eq!(sink.requests()[0].headers["authorization"], format!("Bearer {V1}"));

    // A new version upstream, seen after the cache period; a fixed version keeps its value.
    values.lock().unwrap().push(V2.to_owned());
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(send(&api, &chain).await["relation"], json!(["Success"]));
    assert_eq!(sink.requests()[1].headers["authorization"], format!("Bearer {V2}"));
    let pinned = forwarding_chain(&api, "db-first", &sink.url).await;
    assert_eq!(send(&api, &pinned).await["relation"], json!(["Success"]));
    assert_eq!(sink.requests()[2].headers["authorization"], format!("Bearer {V1}"));

    let ambiguous = forwarding_chain(&api, "db-any", &sink.url).await;
    let step = send(&api, &ambiguous).await;
    assert_eq!(step["relation"], json!(["Failure"]), "{step}");
    assert!(
        step["error"].as_str().unwrap().contains("has 2 fields (password, user): set source.field"),
        "{step}"
    );

    // A missing secret, then a token Vault refuses: Failure naming the secret and provider.
    created(
        &api,
        "/api/secrets",
        json!({"name": "gone", "type": "TEXT", "source": {"provider": "vault", "key": "app/gone"}}),
    )
    .await;
    fails_to_fetch(&api, &sink.url, "gone", "vault", "HTTP 404").await;
    let (status, _) = api
        .patch(
            &format!(
                "/api/secrets/{}",
                api.get("/api/secrets?textSearch=vault-token").await.1["data"][0]["id"].as_str().unwrap()
            ),
            json!({"value": "hvs.wrong-token"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, test) = api.post(&format!("/api/secret-providers/{provider_id}/test"), json!({})).await;
    assert_eq!(test["ok"], false, "{test}");
    assert!(test["message"].as_str().unwrap().contains("HTTP 403): permission denied"), "{test}");
    assert_eq!(sink.requests().len(), 3);
    assert_no_leak(&server.logs(), &[TOKEN, V1, V2, "hvs.wrong-token"]);
    let (_, audit) = api.get("/api/audit-logs?pageSize=1000").await;
    assert_no_leak(&audit.to_string(), &[TOKEN, V1, V2]);
}

#[tokio::test]
#[ignore = "needs mosquitto (VEIL_TEST_MOSQUITTO)"]
async fn an_mqtt_node_with_a_linked_password_reconnects_when_the_value_changes_upstream() {
    const OLD: &str = "mqtt-Old-Pw7Hd";
    const NEW: &str = "mqtt-New-Pw2Qa";
    let broker = crate::support::mqtt::Broker::with_passwords();
    broker.set_password("veil", OLD);
    let mut published = broker.watch("linked/#").await;
    let dir = tempfile::tempdir().unwrap();
    let mounts = tempfile::tempdir().unwrap();
    write(&mounts.path().join("mqtt-password"), OLD);
    let mut cmd = serve_command(dir.path());
    cmd.env("VEIL_LOG", "trace").arg("--provider-dir").arg(mounts.path());
    let server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    created(
        &api,
        "/api/secret-providers",
        json!({"name": "mounted", "type": "files", "configuration": {"directory": mounts.path()}, "cacheSeconds": 1}),
    )
    .await;
    created(
        &api,
        "/api/secrets",
        json!({"name": "mqtt-password", "type": "TEXT",
        "source": {"provider": "mounted", "key": "mqtt-password"}}),
    )
    .await;
    let chain = json!({"name": "Publish", "nodes": [{"type": "mqtt", "name": "Publish", "debugMode": true, "configuration": {
        "topicPattern": "linked/${deviceName}", "host": "127.0.0.1", "port": broker.port, "connectTimeoutSec": 5,
        "credentials": {"type": "basic", "username": "veil", "password": "$<secret:mqtt-password>"}}}]});
    let chain = created(&api, "/api/rule-chains", chain).await["id"].as_str().unwrap().to_owned();
    let message = |n: i64| json!({"metadata": {"deviceName": "sensor"}, "data": {"n": n}});
    let path = format!("/api/rule-chains/{chain}/messages?wait=true");
    let (status, answer) = api.post(&path, message(1)).await;
    assert_eq!((status, answer["trace"][0]["relation"].clone()), (200, json!(["Success"])), "{answer}");
    let (topic, payload) =
        tokio::time::timeout(Duration::from_secs(10), published.recv()).await.unwrap().unwrap();
    assert_eq!((topic.as_str(), payload["n"].as_i64()), ("linked/sensor", Some(1)));

    // The password changes at the broker and upstream: after the cache period the node connects
    // again with the new value (a new CONNECT in the broker's log), and the message goes out.
    broker.set_password("veil", NEW);
    write(&mounts.path().join("mqtt-password"), NEW);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let connects_before = broker.log().matches("u'veil'").count();
    let (status, answer) = api.post(&path, message(2)).await;
    assert_eq!((status, answer["trace"][0]["relation"].clone()), (200, json!(["Success"])), "{answer}");
    let (_, payload) =
        tokio::time::timeout(Duration::from_secs(10), published.recv()).await.unwrap().unwrap();
    assert_eq!(payload["n"].as_i64(), Some(2));
    crate::support::eventually("a new connection with the new password", async || {
        (broker.log().matches("u'veil'").count() > connects_before).then_some(())
    })
    .await;
    let (_, events) = api.get(&format!("/api/rule-chains/{chain}/events")).await;
    let (_, audit) = api.get("/api/audit-logs?pageSize=1000").await;
    let seen = format!("{events}\n{audit}\n{}\n{}", server.logs(), server.stdout());
    assert_no_leak(&seen, &[OLD, NEW]);
}

#[tokio::test]
async fn the_cli_makes_providers_and_imports_linked_secrets() {
    use crate::cli::{ok, spawn_run};
    let dir = tempfile::tempdir().unwrap();
    let mounts = tempfile::tempdir().unwrap();
    for (key, value) in [("api-token", FIRST), ("mqtt-password", SECOND), ("broker-ca", "ca")] {
        write(&mounts.path().join(key), value);
    }
    let mut cmd = serve_command(&dir.path().join("data"));
    cmd.arg("--provider-dir").arg(mounts.path());
    let server = Server::start_with(cmd).await;
    let config = dir.path().join("config");
    ok(&spawn_run(
        &config,
        &server,
        &["login", "-u", "admin", "--password-stdin"],
        &format!("{}\n", crate::support::ADMIN_PASSWORD),
    )
    .await);
    let directory = mounts.path().to_str().unwrap();
    let created = spawn_run(
        &config,
        &server,
        &[
            "provider",
            "create",
            "k8s",
            "--type",
            "files",
            "--config",
            &format!("{{\"directory\": \"{directory}\"}}"),
            "--cache-seconds",
            "30",
        ],
        "",
    )
    .await;
    assert!(ok(&created).contains("k8s") && created.stdout.contains("30"), "{}", created.stdout);
    let tested = spawn_run(&config, &server, &["provider", "test", "k8s"], "").await;
    assert!(ok(&tested).contains("the directory can be read: 3 file(s)"), "{}", tested.stdout);
    let keys = spawn_run(&config, &server, &["provider", "keys", "k8s"], "").await;
    assert!(ok(&keys).contains("mqtt-password"), "{}", keys.stdout);

    // Without keys or --all: what could be linked, nothing created.
    let listed =
        spawn_run(&config, &server, &["secret", "import", "--provider", "k8s", "--prefix", "app-"], "").await;
    assert!(
        ok(&listed).contains("lists 3 key(s)") && listed.stdout.contains("api-token"),
        "{}",
        listed.stdout
    );
    let api = Api::new(&server).await;
    let (_, page) = api.get("/api/secrets").await;
    assert_eq!(page["totalElements"], 0, "{page}");
    let imported = spawn_run(
        &config,
        &server,
        &["secret", "import", "--provider", "k8s", "--prefix", "app-", "api-token", "mqtt-password"],
        "",
    )
    .await;
    assert!(ok(&imported).contains("Created 2 linked secret(s) from provider 'k8s'"), "{}", imported.stdout);
    let one = spawn_run(
        &config,
        &server,
        &["secret", "create", "ca", "--provider", "k8s", "--key", "broker-ca"],
        "",
    )
    .await;
    ok(&one);
    let (_, page) = api.get("/api/secrets").await;
    let names: Vec<&str> =
        page["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["app-api-token", "app-mqtt-password", "ca"], "{page}");
    assert_eq!(page["data"][0]["source"], json!({"provider": "k8s", "key": "api-token"}));
    // Importing the same keys again names each one that could not be created.
    let again = spawn_run(
        &config,
        &server,
        &["secret", "import", "--provider", "k8s", "--prefix", "app-", "api-token"],
        "",
    )
    .await;
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("app-api-token: a secret named 'app-api-token' already exists"),
        "{}",
        again.stderr
    );
    let shown = spawn_run(&config, &server, &["secret", "show", "ca"], "").await;
    assert!(ok(&shown).contains("\"provider\":\"k8s\""), "{}", shown.stdout);
    for run in [&created, &tested, &keys, &listed, &imported, &one, &again, &shown] {
        assert_no_leak(&format!("{}{}", run.stdout, run.stderr), &[FIRST, SECOND]);
    }
    // A provider still used by linked secrets is not deleted.
    let refused = spawn_run(&config, &server, &["provider", "delete", "k8s"], "").await;
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("provider_in_use"), "{}", refused.stderr);
}

/// A moto server (AWS Secrets Manager stand-in) of the test's own on a free loopback port.
struct Moto(std::process::Child, String);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Moto {
    async fn start() -> Self {
        let program = std::env::var("VEIL_TEST_MOTO")
            .expect("VEIL_TEST_MOTO: the moto_server program (.ci/run sets it)");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Self(child, format!("http://127.0.0.1:{port}"));
        crate::support::eventually("moto answers", async || {
            reqwest::get(format!("{}/moto-api/", moto.1)).await.ok().map(|_| ())
        })
        .await;
        moto
    }

    /// One Secrets Manager call, as the test's administrator of moto (it checks no signature).
    async fn call(&self, action: &str, body: Value) -> Value {
        let answer = reqwest::Client::new()
            .post(&self.1)
            .header("X-Amz-Target", format!("secretsmanager.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20261207/eu-west-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{action}: {}", answer.status());
        answer.json().await.unwrap()
    }
}

#[tokio::test]
#[ignore = "needs moto (VEIL_TEST_MOTO)"]
async fn an_aws_secrets_manager_provider_reads_values_sees_a_rotation_and_reports_a_missing_secret() {
    const V1: &str = "aws-Pw1-Mk3Td";
    const V2: &str = "aws-Pw2-Lq8Zs";
    let moto = Moto::start().await;
    moto.call(
        "CreateSecret",
        json!({"Name": "prod/db", "SecretString": json!({"password": V1, "user": "veil"}).to_string()}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(dir.path());
    cmd.env("VEIL_LOG", "trace");
    let server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    let sink = Receiver::start().await;
    let host = moto.1.trim_start_matches("http://").to_owned();
    created(&api, "/api/secrets", json!({"name": "aws-id", "type": "TEXT", "value": "AKIAVEILTEST0000001", "allowedDestinations": [host]})).await;
    created(&api, "/api/secrets", json!({"name": "aws-key", "type": "TEXT", "value": "aws-Sk-Zq4Wm-Hn8Kd", "allowedDestinations": [host]})).await;
    let provider = created(
        &api,
        "/api/secret-providers",
        json!({"name": "aws", "type": "aws-secrets-manager", "cacheSeconds": 1, "configuration": {
            "region": "eu-west-1", "endpointUrl": moto.1,
            "accessKeyId": "$<secret:aws-id>", "secretAccessKey": "$<secret:aws-key>"}}),
    )
    .await;
    let (_, test) = api
        .post(&format!("/api/secret-providers/{}/test", provider["id"].as_str().unwrap()), json!({}))
        .await;
    assert_eq!(test["ok"], true, "{test}");
    let (_, keys) =
        api.get(&format!("/api/secret-providers/{}/keys", provider["id"].as_str().unwrap())).await;
    assert_eq!(keys["keys"], json!(["prod/db"]), "{keys}");
    created(
        &api,
        "/api/secrets",
        json!({"name": "db-password", "type": "TEXT",
        "source": {"provider": "aws", "key": "prod/db", "field": "password"}}),
    )
    .await;
    let chain = forwarding_chain(&api, "db-password", &sink.url).await;
    assert_eq!(send(&api, &chain).await["relation"], json!(["Success"]));
    assert_eq!(sink.requests()[0].headers["authorization"], format!("Bearer {V1}"));

    // Rotated upstream: seen once the cache period is over.
    moto.call(
        "PutSecretValue",
        json!({"SecretId": "prod/db", "SecretString": json!({"password": V2, "user": "veil"}).to_string()}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(send(&api, &chain).await["relation"], json!(["Success"]));
    assert_eq!(sink.requests()[1].headers["authorization"], format!("Bearer {V2}"));

    // A secret that does not exist there: Failure naming the secret and the provider.
    created(
        &api,
        "/api/secrets",
        json!({"name": "gone", "type": "TEXT", "source": {"provider": "aws", "key": "prod/gone"}}),
    )
    .await;
    fails_to_fetch(&api, &sink.url, "gone", "aws", "ResourceNotFoundException").await;
    assert_eq!(sink.requests().len(), 2);
    let (_, events) = api.get(&format!("/api/rule-chains/{chain}/events")).await;
    let (_, audit) = api.get("/api/audit-logs?pageSize=1000").await;
    let seen = format!("{events}\n{audit}\n{}\n{}", server.logs(), server.stdout());
    assert_no_leak(&seen, &[V1, V2, "aws-Sk-Zq4Wm-Hn8Kd"]);
}
