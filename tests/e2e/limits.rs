//! Hostile but authorized users against the real binary: deep data, fan-out, CPU-heavy scripts and
//! converters, huge chains, huge responses and debug events, floods of messages. Each time the
//! server keeps answering `/api/health` within a second, the offending message is stopped or
//! refused with the limit named, and the server's peak memory stays bounded.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Api, Server, assert_no_leak, serve_command};

/// Peak resident memory a test may bring the server to (it starts around 30-60 MB).
const MAX_PEAK_RSS: u64 = 400 * 1024 * 1024;

/// `veil serve` with `args` on a fresh data directory (kept with the server).
pub(crate) async fn start(args: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(dir.path());
    cmd.args(args);
    let server = Server::start_with(cmd).await;
    (dir, server)
}

async fn chain(api: &Api<'_>, doc: Value) -> String {
    let (status, body) = api.post("/api/rule-chains", doc).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn script_chain(mode: &str, script: &str) -> Value {
    json!({"name": format!("{mode} script"), "nodes": [
        {"type": "script", "name": "S", "configuration": {"mode": mode, "script": script}}]})
}

async fn run_traced(api: &Api<'_>, id: &str, data: Value) -> Vec<Value> {
    let (status, body) =
        api.post(&format!("/api/rule-chains/{id}/messages?wait=true"), json!({"data": data})).await;
    assert_eq!(status, 200, "{body}");
    body["trace"].as_array().unwrap().clone()
}

async fn assert_healthy(server: &Server) {
    let (status, _) = Api { server, token: String::new() }.get("/api/health").await;
    assert_eq!(status, 200, "the server stopped answering; log:\n{}", server.logs());
    let peak = server.peak_rss();
    assert!(peak < MAX_PEAK_RSS, "peak RSS {peak} bytes");
}

/// Creates an HTTP integration (no header security) feeding `chain` through `converter`, as
/// `api`'s user; returns its id and its uplink URL.
async fn http_integration(api: &Api<'_>, name: &str, chain: &str, converter: &str) -> (String, String) {
    let doc = json!({"name": name, "type": "HTTP", "ruleChainId": chain,
                     "configuration": {"enableSecurity": false}, "uplinkConverter": converter});
    let (status, body) = api.post("/api/integrations", doc).await;
    assert_eq!(status, 201, "{body}");
    (body["id"].as_str().unwrap().to_owned(), api.server.url(body["uplinkPath"].as_str().unwrap()))
}

/// Posts an uplink; returns the status, the Retry-After header and the body.
async fn post_uplink(server: &Server, url: &str, body: Value) -> (u16, Option<String>, Value) {
    let resp = server.client.post(url).json(&body).send().await.unwrap();
    let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), retry, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn deep_script_values_fail_the_message_not_the_server() {
    // Time enough to build values thousands deep (each step rechecks the whole value's size).
    let (_dir, server) = start(&["--script-timeout-ms", "60000"]).await;
    let api = Api::new(&server).await;
    let health = server.watch_health();
    for (what, script) in [
        ("arrays", "let a = []; for i in 0..8000 { a = [a]; } #{msg: #{d: a}}"),
        ("maps", "let m = #{}; for i in 0..7000 { m = #{a: m}; } #{msg: m}"),
        ("arrays in maps", "let v = []; for i in 0..3600 { v = [#{a: v}]; } #{msg: #{v: v}}"),
        ("metadata", "let m = #{}; for i in 0..7000 { m = #{a: m}; } #{metadata: #{x: m}}"),
        ("65 levels", "let a = 1; for i in 0..65 { a = [a]; } #{msg: #{d: a}}"),
    ] {
        let id = chain(&api, script_chain("transform", script)).await;
        let trace = run_traced(&api, &id, json!({})).await;
        assert_eq!(trace[0]["relation"], json!(["Failure"]), "{what}: {trace:?}");
        let error = trace[0]["error"].as_str().unwrap();
        assert!(error.contains("limit maxDataDepth (64) exceeded"), "{what}: {error}");
    }
    // What a script keeps to itself may be deep: it is dropped on a script thread.
    let id = chain(&api, script_chain("filter", "let a = []; for i in 0..7000 { a = [a]; } true")).await;
    assert_eq!(run_traced(&api, &id, json!({})).await[0]["relation"], json!(["True"]));
    // Curried arguments escape the size checks (`f = f.curry(f)` doubles each step): refused.
    let curry = script_chain("filter", "let f = Fn(\"x\"); for i in 0..40 { f = f.curry(f); } true");
    let (status, body) = api.post("/api/rule-chains", curry).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["problems"][0]["path"], "/nodes/0/configuration/script");
    // The same from an uplink converter: the uplink is refused naming the limit.
    let converter = "let m = #{}; for i in 0..7000 { m = #{a: m}; } #{deviceName: \"d\", telemetry: m}";
    let (_, uplink) = http_integration(&api, "deep", &id, converter).await;
    let (status, _, body) = post_uplink(&server, &uplink, json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("limit maxDataDepth (64) exceeded"), "{body}");
    // 64 levels are allowed.
    let id = chain(&api, script_chain("transform", "let a = 1; for i in 0..63 { a = [a]; } #{msg: #{d: a}}"))
        .await;
    assert_eq!(run_traced(&api, &id, json!({})).await[0]["relation"], json!(["Success"]));
    // Data deeper than the limit is refused at the door, naming it.
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let (status, body) = api.post(&format!("/api/rule-chains/{id}/messages"), json!({"data": deep})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("limit maxDataDepth (64) exceeded"), "{body}");
    assert!(health.slowest().await < Duration::from_secs(1));
    assert_healthy(&server).await;
}

#[tokio::test]
async fn fan_out_is_refused_at_save_or_stopped_at_its_limit() {
    let (_dir, server) = start(&["--max-fanout-bytes", "1000000"]).await;
    let api = Api::new(&server).await;
    let health = server.watch_health();

    // The same connection twice would send two copies: refused where it is.
    let (status, body) = api
        .post(
            "/api/rule-chains",
            json!({"name": "dup", "nodes": [{"type": "script", "name": "F", "configuration": {"mode": "filter", "script": "true"}}],
                   "connections": vec![json!({"fromIndex": 0, "toIndex": 0, "type": "True"}); 1000]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["problems"][0]["path"], "/connections/1");
    assert!(body["problems"][0]["message"].as_str().unwrap().contains("repeats connection 0"), "{body}");

    // Fan-out through twenty nodes that all loop back.
    let mut nodes =
        vec![json!({"type": "script", "name": "Hub", "configuration": {"mode": "filter", "script": "true"}})];
    let mut connections = Vec::new();
    for i in 1..=20 {
        nodes.push(json!({"type": "script", "name": format!("N{i}"), "configuration": {"mode": "filter", "script": "true"}}));
        connections.push(json!({"fromIndex": 0, "toIndex": i, "type": "True"}));
        connections.push(json!({"fromIndex": i, "toIndex": 0, "type": "True"}));
    }
    let id = chain(&api, json!({"name": "fan", "nodes": nodes, "connections": connections})).await;
    let trace = run_traced(&api, &id, json!({"pad": "p".repeat(20)})).await;
    let errors: Vec<&str> = trace.iter().filter_map(|s| s["error"].as_str()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("limit maxQueuedMessages (1000) exceeded"), "{errors:?}");
    assert!(trace.len() < 1000, "stopped before the step limit: {}", trace.len());

    // Fan-out through several relations of a switch, back to itself.
    let relations: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let connections: Vec<Value> =
        relations.iter().map(|r| json!({"fromIndex": 0, "toIndex": 0, "type": r})).collect();
    let switch = json!({"name": "switch fan", "nodes": [{"type": "script", "name": "Sw",
        "configuration": {"mode": "switch", "script": format!("{relations:?}")}}], "connections": connections});
    let id = chain(&api, switch).await;
    let trace = run_traced(&api, &id, json!({})).await;
    let errors: Vec<&str> = trace.iter().filter_map(|s| s["error"].as_str()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("limit maxQueuedMessages (1000) exceeded"), "{errors:?}");
    // A switch names at most 100 relations per message.
    let many = script_chain("switch", "let r = []; for i in 0..500 { r.push(`r${i}`); } r");
    let id = chain(&api, many).await;
    let trace = run_traced(&api, &id, json!({})).await;
    assert!(
        trace[0]["error"].as_str().unwrap().contains("limit maxSwitchRelations (100) exceeded"),
        "{trace:?}"
    );

    // Copies of a large message count by their bytes.
    let nodes: Vec<Value> = (0..21)
        .map(|i| json!({"type": "script", "name": format!("C{i}"), "configuration": {"mode": "filter", "script": "true"}}))
        .collect();
    let connections: Vec<Value> =
        (1..21).map(|i| json!({"fromIndex": 0, "toIndex": i, "type": "True"})).collect();
    let id = chain(&api, json!({"name": "copies", "nodes": nodes, "connections": connections})).await;
    let trace = run_traced(&api, &id, json!({"pad": "p".repeat(100_000)})).await;
    assert!(
        trace[0]["error"].as_str().unwrap().contains("limit maxFanoutBytes (1000000) exceeded"),
        "{trace:?}"
    );
    assert_eq!(trace.len(), 1);

    assert!(health.slowest().await < Duration::from_secs(1));
    assert_healthy(&server).await;
}

const HEAVY: &str = r#"let s = ""; s.pad(1000000, "a"); let n = 0; for i in 0..30000 { let u = s.to_upper(); n += u.len(); } n > 0"#;

#[tokio::test]
async fn cpu_heavy_scripts_and_converters_stop_at_the_time_limit_and_the_api_answers() {
    let (_dir, server) = start(&[]).await;
    let api = Api::new(&server).await;
    let id = chain(&api, script_chain("filter", HEAVY)).await;
    let health = server.watch_health();
    for _ in 0..6 {
        let (status, _) = api.post(&format!("/api/rule-chains/{id}/messages"), json!({"data": {}})).await;
        assert_eq!(status, 202);
    }
    let trace = run_traced(&api, &id, json!({})).await;
    assert_eq!(trace[0]["relation"], json!(["Failure"]));
    assert!(
        trace[0]["error"].as_str().unwrap().contains("limit scriptTimeoutMs (500) exceeded"),
        "{trace:?}"
    );

    // A customer user, with rights on its own chains only, is held to the same.
    let (status, customer) = api.post("/api/customers", json!({"name": "Acme"})).await;
    assert_eq!(status, 201, "{customer}");
    let user = json!({"username": "acme-ops", "password": "Acme-ops-pass-1", "customerId": customer["id"],
                      "roles": ["CUSTOMER_USER"]});
    assert_eq!(api.post("/api/users", user).await.0, 201);
    let acme = Api::as_user(&server, "acme-ops", "Acme-ops-pass-1").await;
    let theirs = chain(&acme, script_chain("filter", HEAVY)).await;
    for _ in 0..4 {
        assert_eq!(
            acme.post(&format!("/api/rule-chains/{theirs}/messages"), json!({"data": {}})).await.0,
            202
        );
    }
    let trace = run_traced(&acme, &theirs, json!({})).await;
    assert!(
        trace[0]["error"].as_str().unwrap().contains("limit scriptTimeoutMs (500) exceeded"),
        "{trace:?}"
    );

    // The same in an uplink converter: the uplink is refused naming the limit.
    let (_, uplink) =
        http_integration(&api, "heavy", &id, &HEAVY.replace("n > 0", "#{deviceName: \"d\"}")).await;
    let (status, _, body) = post_uplink(&server, &uplink, json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("limit scriptTimeoutMs (500) exceeded"), "{body}");

    assert!(health.slowest().await < Duration::from_secs(1));
    assert_healthy(&server).await;
}

#[tokio::test]
async fn chain_size_and_count_are_bounded() {
    let (_dir, server) = start(&["--max-chains-per-tenant", "3", "--max-integrations-per-tenant", "1"]).await;
    let api = Api::new(&server).await;
    let health = server.watch_health();
    let nodes = vec![
        json!({"type": "script", "name": "S", "configuration": {"mode": "filter", "script": "true"}});
        10_000
    ];
    let (status, body) = api.post("/api/rule-chains", json!({"name": "huge", "nodes": nodes})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["problems"][0]["path"], "/nodes");
    assert!(
        body["problems"][0]["message"].as_str().unwrap().contains("limit maxNodesPerChain (1000) exceeded")
    );

    // A thousand script nodes deploy, and cost little memory (one shared engine).
    let before = server.peak_rss();
    let nodes: Vec<Value> = (0..1000)
        .map(|i| json!({"type": "script", "name": format!("S{i}"), "configuration": {"mode": "filter", "script": format!("msg.t > {i}")}}))
        .collect();
    chain(&api, json!({"name": "big", "nodes": nodes})).await;
    let added = server.peak_rss().saturating_sub(before);
    assert!(added < 100 * 1024 * 1024, "a 1,000-node chain added {added} bytes");

    let target = chain(&api, script_chain("filter", "true")).await;
    chain(&api, script_chain("filter", "true")).await;
    let (status, body) = api.post("/api/rule-chains", script_chain("filter", "true")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "limit_exceeded");
    assert!(body["message"].as_str().unwrap().contains("limit maxChainsPerTenant (3) exceeded"), "{body}");

    http_integration(&api, "first", &target, "#{deviceName: \"d\"}").await;
    let doc = json!({"name": "second", "type": "HTTP", "ruleChainId": target, "uplinkConverter": "#{deviceName: \"d\"}"});
    let (status, body) = api.post("/api/integrations", doc).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("limit_exceeded")), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("limit maxIntegrationsPerTenant (1) exceeded"),
        "{body}"
    );
    assert!(health.slowest().await < Duration::from_secs(1));
    assert_healthy(&server).await;
}

/// A loopback HTTP server answering every request with `mb` megabytes, with or without a
/// Content-Length (then the body ends when the connection closes).
async fn big_body_server(mb: usize, declared: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/big", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let length = if declared {
                    format!("content-length: {}\r\n", mb * 1024 * 1024)
                } else {
                    String::new()
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n{length}connection: close\r\n\r\n"
                );
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 1024 * 1024];
                for _ in 0..mb {
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// A loopback TCP server that accepts connections and never answers.
async fn hold_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hold", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

fn rest_chain(url: &str, debug: bool) -> Value {
    json!({"name": "rest", "nodes": [
        {"type": "rest_api_call", "name": "Call", "debugMode": debug,
         "configuration": {"restEndpointUrlPattern": url, "requestMethod": "GET", "readTimeoutMs": 10000}}]})
}

#[tokio::test]
async fn large_responses_are_refused_past_the_limit() {
    let (_dir, server) = start(&["--max-response-bytes", "1048576"]).await;
    let api = Api::new(&server).await;
    let health = server.watch_health();
    for declared in [true, false] {
        let url = big_body_server(200, declared).await;
        let id = chain(&api, rest_chain(&url, false)).await;
        let trace = run_traced(&api, &id, json!({})).await;
        assert_eq!(trace[0]["relation"], json!(["Failure"]), "{trace:?}");
        let error = trace[0]["error"].as_str().unwrap();
        assert!(error.contains("limit maxResponseBytes (1048576) exceeded"), "{error}");
    }
    assert!(health.slowest().await < Duration::from_secs(1));
    assert_healthy(&server).await;
}

#[tokio::test]
async fn debug_events_are_cut_and_bounded_per_tenant() {
    let (_dir, server) = start(&["--max-event-bytes-per-tenant", "300000"]).await;
    let api = Api::new(&server).await;
    let log_chain = |name: &str| json!({"name": name, "nodes": [{"type": "log", "name": "Log", "debugMode": true, "configuration": {}}]});
    let (first, second) = (chain(&api, log_chain("one")).await, chain(&api, log_chain("two")).await);
    let health = server.watch_health();
    let big = "b".repeat(1_000_000);
    for id in [&first, &second] {
        for _ in 0..10 {
            run_traced(&api, id, json!({"big": big})).await;
        }
    }
    let (status, events) = api.get(&format!("/api/rule-chains/{second}/events")).await;
    assert_eq!(status, 200);
    let events = events.as_array().unwrap();
    assert!(!events.is_empty());
    let input = &events.last().unwrap()["input"];
    assert_eq!(input["truncated"], true, "{input}");
    assert!(input["bytes"].as_u64().unwrap() > 1_000_000, "{input}");
    assert!(input["preview"].as_str().unwrap().len() <= 16 * 1024);
    // Both chains together stay within the tenant's budget.
    let mut total = 0;
    for id in [&first, &second] {
        let text =
            api.req(reqwest::Method::GET, &format!("/api/rule-chains/{id}/events")).send().await.unwrap();
        total += text.text().await.unwrap().len();
    }
    assert!(total < 300_000, "{total} bytes of events");
    assert!(health.slowest().await < Duration::from_secs(1));
    assert_healthy(&server).await;
}

#[tokio::test]
async fn messages_in_flight_are_bounded_with_retry_after() {
    let (_dir, server) = start(&["--max-in-flight-per-chain", "2", "--max-in-flight-per-tenant", "3"]).await;
    let api = Api::new(&server).await;
    let hold = hold_server().await;
    let (a, b) = (chain(&api, rest_chain(&hold, false)).await, chain(&api, rest_chain(&hold, false)).await);
    let health = server.watch_health();
    for _ in 0..2 {
        let (status, _) = api.post(&format!("/api/rule-chains/{a}/messages"), json!({"data": {}})).await;
        assert_eq!(status, 202);
    }
    let resp = api
        .req(reqwest::Method::POST, &format!("/api/rule-chains/{a}/messages"))
        .json(&json!({"data": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_many_messages");
    assert!(body["message"].as_str().unwrap().contains("limit maxInFlightPerChain (2) exceeded"), "{body}");

    // The tenant's third message goes through another chain; the fourth is refused.
    let (status, _) = api.post(&format!("/api/rule-chains/{b}/messages"), json!({"data": {}})).await;
    assert_eq!(status, 202);
    let (status, body) =
        api.post(&format!("/api/rule-chains/{b}/messages?wait=true"), json!({"data": {}})).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["message"].as_str().unwrap().contains("limit maxInFlightPerTenant (3) exceeded"), "{body}");

    // Uplinks count too, and get a 503 (senders retry those).
    let (_, uplink) = http_integration(&api, "hook", &b, "#{deviceName: \"d\"}").await;
    let (status, retry, body) = post_uplink(&server, &uplink, json!({})).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("limit maxInFlightPerTenant (3) exceeded"), "{body}");
    assert!(health.slowest().await < Duration::from_secs(1));
    assert_healthy(&server).await;
}

#[tokio::test]
async fn integration_downlink_needs_integration_rights_and_is_tracked() {
    use crate::support::SYSADMIN_PASSWORD;
    let (_dir, server) = start(&[]).await;
    let admin = Api::new(&server).await;
    let target = chain(&admin, script_chain("filter", "true")).await;
    let (integration, _) = http_integration(&admin, "hook", &target, "#{deviceName: \"d\"}").await;
    let downlink = |id: &str| {
        json!({"name": "Fan control", "nodes": [{"type": "integration_downlink", "name": "To hook",
               "configuration": {"integrationId": id}}]})
    };

    // A role with every rule-chain permission and none on integrations.
    let role = json!({"name": "chains-only", "permissions": [{"resource": "RULE_CHAIN", "operations": ["READ", "CREATE", "WRITE", "DELETE"]}]});
    assert_eq!(admin.post("/api/roles", role).await.0, 201);
    let user = json!({"username": "chainonly", "password": "Chain-only-pass-1", "roles": ["chains-only"]});
    assert_eq!(admin.post("/api/users", user).await.0, 201);
    let chain_only = Api::as_user(&server, "chainonly", "Chain-only-pass-1").await;
    let (status, body) = chain_only.post("/api/rule-chains", downlink(&integration)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["problems"][0]["path"], "/nodes/0/configuration/integrationId");
    assert!(body["problems"][0]["message"].as_str().unwrap().contains("INTEGRATION:WRITE"), "{body}");

    // An id that is not an integration of this tenant: another tenant's, or none at all.
    let sysadmin = Api::as_user(&server, "sysadmin", SYSADMIN_PASSWORD).await;
    let other =
        json!({"name": "Other", "admin": {"username": "other-admin", "password": "Other-admin-pass-1"}});
    assert_eq!(sysadmin.post("/api/tenants", other).await.0, 201);
    let other_admin = Api::as_user(&server, "other-admin", "Other-admin-pass-1").await;
    let other_chain = chain(&other_admin, script_chain("filter", "true")).await;
    let (theirs, _) = http_integration(&other_admin, "theirs", &other_chain, "#{deviceName: \"d\"}").await;
    for id in [theirs, uuid::Uuid::new_v4().to_string()] {
        let (status, body) = admin.post("/api/rule-chains", downlink(&id)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["problems"][0]["path"], "/nodes/0/configuration/integrationId");
        assert!(body["problems"][0]["message"].as_str().unwrap().contains("does not exist"), "{body}");
    }

    // The integration a chain sends through cannot be deleted under it.
    let fan = chain(&admin, downlink(&integration)).await;
    let (status, body) = admin.delete(&format!("/api/integrations/{integration}")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "integration_in_use");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("rule chain 'Fan control' (node 'To hook')"), "{message}");
    assert_eq!(admin.delete(&format!("/api/rule-chains/{fan}")).await.0, 204);
    assert_eq!(admin.delete(&format!("/api/integrations/{integration}")).await.0, 204);
}

#[tokio::test]
async fn reading_what_a_chain_computed_needs_use_on_its_secrets() {
    let (_dir, server) = start(&[]).await;
    let admin = Api::new(&server).await;
    let (status, _) = admin
        .post("/api/secrets", json!({"name": "s-script", "type": "TEXT", "value": "scr1pt-DELTA-k9"}))
        .await;
    assert_eq!(status, 201);
    let upper = json!({"name": "derived", "nodes": [{"type": "script", "name": "Upper", "debugMode": true,
        "configuration": {"mode": "transform", "script": "#{msg: #{u: secret(\"s-script\").to_upper()}}"}}]});
    let with_secret = chain(&admin, upper).await;
    let plain = chain(&admin, json!({"name": "plain", "nodes": [{"type": "log", "name": "Log", "debugMode": true, "configuration": {}}]})).await;
    for id in [&with_secret, &plain] {
        run_traced(&admin, id, json!({})).await;
    }

    let roles = [
        ("chain-viewer", json!([{"resource": "RULE_CHAIN", "operations": ["READ"]}])),
        ("chain-operator", json!([{"resource": "RULE_CHAIN", "operations": ["READ", "WRITE"]}])),
        (
            "chain-user",
            json!([{"resource": "RULE_CHAIN", "operations": ["READ", "WRITE"]}, {"resource": "SECRET", "operations": ["USE"]}]),
        ),
    ];
    for (name, permissions) in roles {
        assert_eq!(admin.post("/api/roles", json!({"name": name, "permissions": permissions})).await.0, 201);
        let user = json!({"username": format!("{name}-1"), "password": "Some-pass-word-1", "roles": [name]});
        assert_eq!(admin.post("/api/users", user).await.0, 201);
    }
    let viewer = Api::as_user(&server, "chain-viewer-1", "Some-pass-word-1").await;
    let (status, body) = viewer.get(&format!("/api/rule-chains/{with_secret}/events")).await;
    assert_eq!(status, 403, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("SECRET:USE on 's-script'"), "{message}");
    assert!(!body.to_string().contains("SCR1PT"), "{body}");
    assert_eq!(viewer.get(&format!("/api/rule-chains/{plain}/events")).await.0, 200);

    // An integration whose converter reads a secret feeds the plain chain: its events now need
    // USE on that secret too; a converter error does not tell the (unauthenticated) sender why.
    let (status, _) =
        admin.post("/api/secrets", json!({"name": "s-conv", "type": "TEXT", "value": "c0nv-ECHO-77"})).await;
    assert_eq!(status, 201);
    let converter = "if payload.fail == true { throw secret(\"s-conv\").to_lower(); } \
                     #{deviceName: \"d\", telemetry: #{k: secret(\"s-conv\").len()}}";
    let (_, uplink) = http_integration(&admin, "hook", &plain, converter).await;
    let resp = server.client.post(&uplink).json(&json!({"fail": true})).send().await.unwrap();
    assert_eq!(resp.status(), 422);
    let text = resp.text().await.unwrap();
    assert_no_leak(&text, &["c0nv-ECHO-77"]);
    assert!(!text.to_lowercase().contains("c0nv-echo-77"), "in no mix of cases either: {text}");
    assert!(text.contains("the reason is only in the server log"), "{text}");
    let (status, body) = viewer.get(&format!("/api/rule-chains/{plain}/events")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("SECRET:USE on 's-conv'"), "{body}");

    let operator = Api::as_user(&server, "chain-operator-1", "Some-pass-word-1").await;
    let path = format!("/api/rule-chains/{with_secret}/messages");
    let (status, body) = operator.post(&format!("{path}?wait=true"), json!({"data": {}})).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("the trace of rule chain 'derived'"), "{body}");
    assert_eq!(operator.post(&path, json!({"data": {}})).await.0, 202);

    let user = Api::as_user(&server, "chain-user-1", "Some-pass-word-1").await;
    assert_eq!(user.post(&format!("{path}?wait=true"), json!({"data": {}})).await.0, 200);
    let (status, events) = user.get(&format!("/api/rule-chains/{with_secret}/events")).await;
    assert_eq!(status, 200);
    assert_eq!(events[0]["nodeName"], "Upper", "{events}");
}
