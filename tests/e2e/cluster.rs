//! Two `veil` processes on one PostgreSQL database, as behind a load balancer: what is changed
//! through one is used by the other without a restart.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{Api, PostgresDatabase, Receiver, Server, serve_command};

/// One master key for the cluster (each instance has a data directory of its own).
const MASTER_KEY: [u8; 32] = [42; 32];

async fn instance(database: &str, dir: &std::path::Path) -> Server {
    let mut cmd = serve_command(dir);
    cmd.arg("--database")
        .arg(database)
        .env("VEIL_MASTER_KEY", base64::engine::general_purpose::STANDARD.encode(MASTER_KEY));
    Server::start_with(cmd).await
}

fn bearer_chain(url: &str) -> Value {
    json!({
        "name": "Forward",
        "firstNodeIndex": 0,
        "nodes": [{
            "type": "rest_api_call",
            "name": "Call",
            "configuration": {
                "restEndpointUrlPattern": format!("{url}/ingest"),
                "requestMethod": "POST",
                "credentials": {"type": "bearer", "token": "$<secret:api-token>"},
                "readTimeoutMs": 5000
            }
        }],
        "connections": []
    })
}

#[tokio::test]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn a_value_rotated_through_one_instance_is_used_by_the_next_message_on_the_other() {
    let (_db, database) = PostgresDatabase::create();
    let veil_store::Database::Postgres(database) = database else { unreachable!("a PostgreSQL database") };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = instance(&database, dir_a.path()).await;
    let b = instance(&database, dir_b.path()).await;
    let (api_a, api_b) = (Api::new(&a).await, Api::new(&b).await);
    let receiver = Receiver::start().await;

    // Made through A: the secret and the chain; the chain runs on B too.
    let (status, secret) =
        api_a.post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": "v0"})).await;
    assert_eq!(status, 201, "{secret}");
    let secret_id = secret["id"].as_str().unwrap().to_owned();
    let (status, chain) = api_a.post("/api/rule-chains", bearer_chain(&receiver.url)).await;
    assert_eq!(status, 201, "{chain}");
    let chain_id = chain["id"].as_str().unwrap().to_owned();
    let messages = format!("/api/rule-chains/{chain_id}/messages?wait=true");
    let send_b = || api_b.post(&messages, json!({"data": {"t": 1}}));
    let start = Instant::now();
    loop {
        let (status, _) = send_b().await;
        if status == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the chain saved on A never ran on B: {status}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(receiver.requests().last().unwrap().headers["authorization"], "Bearer v0");

    // Each rotation answered by A: the next message processed by B sends the new value once B
    // has it; how long that takes is measured.
    let mut delays = Vec::new();
    for i in 1..=200 {
        let value = format!("v{i}");
        let (status, body) = api_a.patch(&format!("/api/secrets/{secret_id}"), json!({"value": value})).await;
        assert_eq!(status, 200, "{body}");
        let answered = Instant::now();
        loop {
            let (status, body) = send_b().await;
            assert_eq!(status, 200, "{body}");
            let sent = receiver.requests().last().unwrap().headers["authorization"].clone();
            if sent == format!("Bearer {value}") {
                delays.push(answered.elapsed());
                break;
            }
            assert_eq!(sent, format!("Bearer v{}", i - 1), "B sent neither the old nor the new value");
            assert!(answered.elapsed() < Duration::from_secs(10), "B never used {value}");
        }
    }
    delays.sort();
    let (p50, p99) = (delays[delays.len() / 2], delays[delays.len() * 99 / 100]);
    println!(
        "PATCH answered on A -> next message on B sends the new value, over {} rotations: p50 {p50:?}, p99 {p99:?}, max {:?}",
        delays.len(),
        delays.last().unwrap()
    );
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");

    // A delete through B of the chain stops it on A; then the secret can be deleted through A.
    assert_eq!(api_b.delete(&format!("/api/rule-chains/{chain_id}")).await.0, 204);
    let start = Instant::now();
    loop {
        let (status, _) =
            api_a.post(&format!("/api/rule-chains/{chain_id}/messages?wait=true"), json!({"data": {}})).await;
        if status == 404 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the chain deleted on B still runs on A");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(api_a.delete(&format!("/api/secrets/{secret_id}")).await.0, 204);
}
