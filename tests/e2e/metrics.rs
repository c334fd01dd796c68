//! `GET /metrics` after a known workload: exact counts per node and relation, a refusal by a
//! limit, a blocked destination; who may read it.

use serde_json::{Value, json};

use crate::support::{Api, Receiver, Server, serve_command};

const TOKEN: &str = "metrics-api-token-5150";
const METRICS_TOKEN: &str = "scrape-me-7e1f";

/// The value of the series `name` whose labels include every one of `labels`; `None` when no
/// series matches.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, number) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        let all = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        (metric == name && all).then(|| number.parse().unwrap())
    })
}

fn port_of(url: &str) -> &str {
    url.rsplit(':').next().unwrap()
}

#[tokio::test]
async fn a_scrape_after_a_known_workload_shows_its_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(dir.path());
    cmd.env("VEIL_METRICS_TOKEN", METRICS_TOKEN);
    let server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    let (allowed, other) = (Receiver::start().await, Receiver::start().await);
    let allowed_host = format!("127.0.0.1:{}", port_of(&allowed.url));
    let secret =
        json!({"name": "api-token", "type": "TEXT", "value": TOKEN, "allowedDestinations": [allowed_host]});
    assert_eq!(api.post("/api/secrets", secret).await.0, 201);
    let call = |name: &str, url: &str| {
        json!({"type": "rest_api_call", "name": name, "configuration": {
            "restEndpointUrlPattern": url, "requestMethod": "POST",
            "credentials": {"type": "bearer", "token": "$<secret:api-token>"}}})
    };
    // Post (allowed) --Success--> Elsewhere (to the host in the message's metadata, not allowed: blocked, Failure).
    let other_host = format!("127.0.0.1:{}", port_of(&other.url));
    let chain = json!({"name": "Measured", "nodes": [
        call("Post", &format!("{}/in", allowed.url)), call("Elsewhere", "http://${host}/out")],
        "connections": [{"fromIndex": 0, "toIndex": 1, "type": "Success"}]});
    let (status, chain) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{chain}");
    let id = chain["id"].as_str().unwrap().to_owned();
    let messages = format!("/api/rule-chains/{id}/messages?wait=true");
    for n in 0..3 {
        let (status, trace) =
            api.post(&messages, json!({"data": {"n": n}, "metadata": {"host": other_host}})).await;
        assert_eq!(status, 200, "{trace}");
        assert_eq!(trace["trace"][1]["relation"], json!(["Failure"]), "{trace}");
        assert!(trace["trace"][1]["error"].as_str().unwrap().contains("may not be sent to"), "{trace}");
    }
    // One message refused by maxDataDepth (64): never admitted.
    let mut deep = json!(1);
    for _ in 0..70 {
        deep = json!([deep]);
    }
    let (status, refused) = api.post(&messages, json!({"data": deep})).await;
    assert_eq!(status, 400, "{refused}");
    // An HTTP integration feeding a chain of its own, and one uplink to it.
    let sink = json!({"name": "Sink", "nodes": [{"type": "log", "name": "Log", "configuration": {}}], "connections": []});
    let (_, sink) = api.post("/api/rule-chains", sink).await;
    let integration = json!({"name": "Devices", "type": "HTTP", "ruleChainId": sink["id"],
        "configuration": {"enableSecurity": false}, "uplinkConverter": "#{deviceName: \"d\", telemetry: payload}"});
    let (status, integration) = api.post("/api/integrations", integration).await;
    assert_eq!(status, 201, "{integration}");
    let integration_id = integration["id"].as_str().unwrap().to_owned();
    // It starts in the background: active before it is counted as such.
    crate::support::eventually("the integration to be active", async || {
        let (_, body) = api.get(&format!("/api/integrations/{integration_id}")).await;
        (body["status"] == "active").then_some(())
    })
    .await;
    let uplink = server.url(integration["uplinkPath"].as_str().unwrap());
    let sent = server
        .client
        .post(uplink)
        .header("content-type", "application/json")
        .body("{\"t\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    // An uplink nobody's routing key names.
    let uplink = server
        .client
        .post(server.url("/api/v1/integrations/http/no-such-key"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let uplink_status = uplink.status().as_u16().to_string();

    let scrape = server.client.get(server.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(scrape.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = scrape.text().await.unwrap();
    let chain_id = id.as_str();
    // Saving gave each node an id.
    let (post, elsewhere) =
        (chain["nodes"][0]["id"].as_str().unwrap(), chain["nodes"][1]["id"].as_str().unwrap());
    let exact = [
        ("veil_chain_messages_in_total", vec![("chain", chain_id)], 3.0),
        ("veil_node_messages_in_total", vec![("chain", chain_id), ("node", post)], 3.0),
        (
            "veil_node_messages_out_total",
            vec![("chain", chain_id), ("node", post), ("relation", "Success")],
            3.0,
        ),
        (
            "veil_node_messages_out_total",
            vec![("chain", chain_id), ("node", post), ("relation", "Failure")],
            0.0,
        ),
        ("veil_node_messages_in_total", vec![("chain", chain_id), ("node", elsewhere)], 3.0),
        (
            "veil_node_messages_out_total",
            vec![("chain", chain_id), ("node", elsewhere), ("relation", "Failure")],
            3.0,
        ),
        ("veil_node_duration_seconds_count", vec![("chain", chain_id), ("node", elsewhere)], 3.0),
        ("veil_node_failures_total", vec![("node_type", "rest_api_call")], 3.0),
        ("veil_limit_refusals_total", vec![("limit", "maxDataDepth")], 1.0),
        ("veil_destinations_blocked_total", vec![("secret", "api-token")], 3.0),
        ("veil_uplinks_total", vec![("integration", "unknown"), ("status", uplink_status.as_str())], 1.0),
        ("veil_chain_info", vec![("chain", chain_id), ("name", "Measured")], 1.0),
        (
            "veil_node_info",
            vec![
                ("chain", chain_id),
                ("node", elsewhere),
                ("name", "Elsewhere"),
                ("node_type", "rest_api_call"),
            ],
            1.0,
        ),
        ("veil_chain_in_flight", vec![("chain", chain_id)], 0.0),
        ("veil_uplinks_total", vec![("integration", integration_id.as_str()), ("status", "200")], 1.0),
        ("veil_integration_state", vec![("integration", integration_id.as_str()), ("state", "active")], 1.0),
    ];
    let mut wrong = Vec::new();
    for (name, labels, expected) in &exact {
        let found = value(&text, name, labels);
        if found != Some(*expected) {
            wrong.push(format!("{name}{labels:?}: expected {expected}, found {found:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}\n{text}", wrong.join("\n"));
    assert!(value(&text, "veil_secret_resolves_total", &[("secret", "api-token")]).unwrap() >= 3.0, "{text}");
    assert!(
        value(&text, "veil_db_operation_duration_seconds_count", &[("backend", "sqlite")]).unwrap() > 0.0
    );
    assert!(value(&text, "veil_sessions_served_total", &[("source", "memory")]).unwrap() >= 4.0, "{text}");
    assert_eq!(value(&text, "veil_db_connections", &[("backend", "sqlite")]), Some(1.0));
    assert!(!text.contains(TOKEN), "no value in the metrics");
    dashboard_names_exist(&text);

    // A deleted chain's series go.
    assert_eq!(api.delete(&format!("/api/rule-chains/{chain_id}")).await.0, 204);
    let text = server.client.get(server.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    let text = text.text().await.unwrap();
    assert!(!text.contains(chain_id), "{text}");
    assert_eq!(value(&text, "veil_node_failures_total", &[("node_type", "rest_api_call")]), Some(3.0));
}

/// Every metric the Grafana dashboard (server/grafana-dashboard.json) queries is one the server
/// serves.
fn dashboard_names_exist(scrape: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../server/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let families: Vec<&str> =
        scrape.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("veil_"))
            {
                let family = ["_bucket", "_count", "_sum", "_total"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix))
                    .unwrap_or(word);
                assert!(
                    families.contains(&family),
                    "the dashboard queries {word}, which is not served: {families:?}"
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 18, "{queried}");
}

#[tokio::test]
async fn metrics_need_the_token_on_the_main_listener_and_none_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = serve_command(dir.path());
    cmd.env("VEIL_METRICS_TOKEN", METRICS_TOKEN).args(["--metrics-listen", &format!("127.0.0.1:{port}")]);
    let server = Server::start_with(cmd).await;
    let main = server.url("/metrics");
    let anonymous = server.client.get(&main).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = server.client.get(&main).bearer_auth("scrape-me-7e1e").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    // A user's token is not the metrics token.
    let user = server.login().await;
    assert_eq!(server.client.get(&main).bearer_auth(user).send().await.unwrap().status(), 401);
    let own = server.client.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(own.status(), 200);
    assert!(own.text().await.unwrap().contains("veil_sessions_served_total"));
    assert!(!server.logs().contains(METRICS_TOKEN));

    // Without either setting, /metrics is not served.
    let dir = tempfile::tempdir().unwrap();
    let plain = Server::start(dir.path()).await;
    let off = plain.client.get(plain.url("/metrics")).send().await.unwrap();
    assert_eq!(off.status(), 404);
    let body: Value = off.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("--metrics-token"), "{body}");
}
