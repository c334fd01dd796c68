//! At-least-once processing on NATS JetStream (`veil serve --queue`), against the real binary and
//! the NATS server of `VEIL_TEST_NATS` (each test on a stream of its own): messages and uplinks
//! stored before they are acknowledged, traces across the queue, a full stream, instances killed
//! mid-chain (the message and its sealed value redelivered to another process), dead letters, a
//! cluster losing an instance under load, and a restart with thousands of messages queued. The
//! two load tests (`queue::load_…`) keep both cores busy for a minute: CI runs them on their own,
//! after the rest, so that they do not slow other tests' timed waits down.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::support::{
    Api, Jetstream, Receiver, Server, assert_no_leak, eventually, eventually_within, serve_command,
};

const VALUE: &str = "Qv8-queue-Tk3-Wm7";
const METRICS_TOKEN: &str = "queue-metrics-token";

/// How long a process takes over the partitions of one that died: its leases lapse (10 s), the
/// next look (every 3 s), the ack wait (1 s here).
const TAKE_OVER: Duration = Duration::from_secs(15);

async fn created(api: &Api<'_>, path: &str, doc: Value) -> Value {
    let (status, body) = api.post(path, doc).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// `veil serve` on `dir` with the queue on `stream`, logging everything at trace level.
async fn queued(dir: &std::path::Path, stream: &Jetstream, extra: &[&str]) -> Server {
    let mut cmd = serve_command(dir);
    cmd.args(stream.args()).args(extra).env("VEIL_LOG", "trace");
    Server::start_with(cmd).await
}

/// A chain whose one node POSTs the message data to `url`, with the metadata `token` as the
/// Authorization header and the queue's message id and delivery count as headers.
fn forward_chain(url: &str) -> Value {
    json!({"name": "Forward", "nodes": [{"type": "rest_api_call", "name": "Send", "debugMode": true,
        "configuration": {"restEndpointUrlPattern": format!("{url}/in"), "requestMethod": "POST",
            "readTimeoutMs": 120000,
            "headers": {"Authorization": "${token}", "Idempotency-Key": "${msgId}", "X-Delivery": "${deliveryCount}"}}}]})
}

/// An HTTP integration feeding `chain`, whose converter seals the secret `api-token` into the
/// metadata `token`: its uplink path.
async fn sealing_integration(api: &Api<'_>, chain: &str) -> String {
    let converter = r#"#{deviceName: payload.dev, telemetry: payload, metadata: #{token: "Bearer " + secret("api-token")}}"#;
    let doc = json!({"name": "Devices", "type": "HTTP", "ruleChainId": chain, "routingKey": "devices-key",
                     "configuration": {"enableSecurity": false}, "uplinkConverter": converter});
    let integration = created(api, "/api/integrations", doc).await;
    integration["uplinkPath"].as_str().unwrap().to_owned()
}

/// The `n`s of the bodies the receiver got, in order.
fn ns(receiver: &Receiver) -> Vec<i64> {
    receiver
        .requests()
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok()?["n"].as_i64())
        .collect()
}

#[tokio::test]
async fn without_a_queue_health_says_memory_and_there_are_no_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let (_, health) = api.get("/api/health").await;
    assert_eq!(health["queue"], json!({"kind": "memory"}));
    let chain = created(&api, "/api/rule-chains", forward_chain("http://127.0.0.1:9")).await;
    let id = chain["id"].as_str().unwrap();
    let (status, body) = api.get(&format!("/api/rule-chains/{id}/dead-letters")).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("no_queue")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("--queue"), "{body}");
}

#[tokio::test]
#[ignore = "needs NATS with JetStream (VEIL_TEST_NATS)"]
async fn messages_and_uplinks_go_through_the_stream_in_order_with_their_id_and_sealed_values() {
    let stream = Jetstream::new();
    let dir = tempfile::tempdir().unwrap();
    let server = queued(dir.path(), &stream, &["--metrics-token", METRICS_TOKEN]).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    created(&api, "/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": VALUE})).await;
    let chain = created(&api, "/api/rule-chains", forward_chain(&receiver.url)).await;
    let id = chain["id"].as_str().unwrap();

    let (_, health) = api.get("/api/health").await;
    assert_eq!(health["queue"]["kind"], "nats-jetstream", "{health}");
    assert_eq!(health["queue"]["state"], "connected", "{health}");
    assert_eq!(health["queue"]["stream"], stream.name.as_str(), "{health}");

    // ?wait=true: the trace comes back from the consumer (here the same instance).
    let (status, answer) = api
        .post(
            &format!("/api/rule-chains/{id}/messages?wait=true"),
            json!({"originator": "dev-1", "metadata": {"token": "plain"}, "data": {"n": 0}}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["trace"][0]["relation"], json!(["Success"]), "{answer}");
    let first = &receiver.requests()[0];
    assert_eq!(first.headers["idempotency-key"], answer["msgId"].as_str().unwrap());
    assert_eq!(first.headers["x-delivery"], "1");

    // 30 messages of one originator without waiting: 202 each, processed in the order sent.
    for n in 1..=30 {
        let (status, body) = api
            .post(
                &format!("/api/rule-chains/{id}/messages"),
                json!({"originator": "dev-1", "metadata": {"token": "plain"}, "data": {"n": n}}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    eventually("30 queued messages", async || (ns(&receiver).len() == 31).then_some(())).await;
    assert_eq!(ns(&receiver), (0..=30).collect::<Vec<_>>());

    // An uplink whose converter seals the token: the value opens in the consuming process.
    let path = sealing_integration(&api, id).await;
    let resp =
        server.client.post(server.url(&path)).json(&json!({"dev": "dev-2", "n": 100})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"messages": 1}));
    let request = eventually("the uplink's request", async || {
        receiver.requests().into_iter().find(|r| r.body.contains("\"n\":100"))
    })
    .await;
    assert_eq!(request.headers["authorization"], format!("Bearer {VALUE}"));
    // The node's debug event is recorded once its call returned: after the receiver saw it.
    let events = eventually("the uplink's debug event", async || {
        let (_, events) = api.get(&format!("/api/rule-chains/{id}/events")).await;
        events.to_string().contains(r#""n":100"#).then_some(events)
    })
    .await;
    assert!(events.to_string().contains(r#""token":"***""#), "{events}");

    eventually("an empty stream", async || {
        let (_, health) = api.get("/api/health").await;
        (health["queue"]["pending"] == 0).then_some(())
    })
    .await;
    let (status, dead) = api.get(&format!("/api/rule-chains/{id}/dead-letters")).await;
    assert_eq!((status, dead), (200, json!({"deadLetters": [], "next": null})));

    // The queue's metrics: one instance holds every partition; 32 messages ran, none came twice.
    let scrape = server
        .client
        .get(server.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |line: &str| {
        let found = scrape.lines().find_map(|l| l.strip_prefix(line)?.strip_prefix(' '));
        found.unwrap_or_else(|| panic!("no {line} in {scrape}")).parse::<f64>().unwrap()
    };
    assert_eq!(value("veil_queue_partitions_held"), 32.0);
    assert_eq!(value(r#"veil_queue_messages_total{outcome="done"}"#), 32.0);
    assert_eq!(value("veil_queue_redeliveries_total"), 0.0);
    assert_no_leak(&format!("{}\n{events}", server.logs()), &[VALUE]);
}

#[tokio::test]
#[ignore = "needs NATS with JetStream (VEIL_TEST_NATS)"]
async fn a_full_stream_answers_503_with_retry_after_and_loses_nothing_it_accepted() {
    let stream = Jetstream::new();
    let dir = tempfile::tempdir().unwrap();
    let server = queued(dir.path(), &stream, &["--queue-max-bytes", "4096"]).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_secs(3));
    let chain = created(&api, "/api/rule-chains", forward_chain(&receiver.url)).await;
    let id = chain["id"].as_str().unwrap();
    let mut accepted = Vec::new();
    let mut refused = None;
    for n in 0..200 {
        let resp = api
            .req(reqwest::Method::POST, &format!("/api/rule-chains/{id}/messages"))
            .json(&json!({"originator": "dev-1", "metadata": {"token": "t"}, "data": {"n": n}}))
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            202 => accepted.push(n),
            503 => {
                let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                refused = Some((retry, resp.json::<Value>().await.unwrap()));
                break;
            }
            other => panic!("{other}: {}", resp.text().await.unwrap()),
        }
    }
    let (retry, body) = refused.expect("the stream never filled");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"], "queue_full", "{body}");
    assert!(body["message"].as_str().unwrap().contains("try again later"), "{body}");
    assert!(accepted.len() >= 3, "{accepted:?}");
    receiver.delay(Duration::ZERO);
    let expected: Vec<i64> = accepted.iter().map(|n| *n as i64).collect();
    let got = crate::support::eventually("every accepted message", async || {
        let got = ns(&receiver);
        (got.len() >= expected.len()).then_some(got)
    })
    .await;
    assert_eq!(got, expected, "in order, none lost");
}

#[tokio::test]
#[ignore = "needs NATS with JetStream (VEIL_TEST_NATS)"]
async fn the_queued_messages_of_a_deleted_chain_are_dropped_without_holding_up_the_queue() {
    let stream = Jetstream::new();
    let dir = tempfile::tempdir().unwrap();
    let server = queued(dir.path(), &stream, &[]).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_secs(2));
    let chain = created(&api, "/api/rule-chains", forward_chain(&receiver.url)).await;
    let id = chain["id"].as_str().unwrap();
    for n in 0..30 {
        let body = json!({"originator": "dev-1", "metadata": {"token": "t"}, "data": {"n": n}});
        assert_eq!(api.post(&format!("/api/rule-chains/{id}/messages"), body).await.0, 202);
    }
    let (status, _) = api.delete(&format!("/api/rule-chains/{id}")).await;
    assert_eq!(status, 204);
    // Health's count is read every 250 ms: wait for the drops first, then for an empty stream.
    eventually("the drops", async || {
        server.logs().contains("queued messages of a deleted rule chain are dropped").then_some(())
    })
    .await;
    eventually("an empty stream", async || {
        let (_, health) = api.get("/api/health").await;
        (health["queue"]["pending"] == 0).then_some(())
    })
    .await;
    assert!(ns(&receiver).len() < 30, "{:?}", ns(&receiver));
    let said = server.logs().matches("queued messages of a deleted rule chain are dropped").count();
    assert_eq!(said, 1, "said once for the chain, not once per message");
}

#[tokio::test]
#[ignore = "needs NATS with JetStream (VEIL_TEST_NATS)"]
async fn a_message_outliving_its_process_is_redelivered_with_its_sealed_value_then_dead_lettered_and_replayed()
 {
    let stream = Jetstream::new();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let flags = ["--queue-ack-wait", "1", "--queue-max-deliveries", "2"];
    let mut first = queued(dir.path(), &stream, &flags).await;
    let (id, path) = {
        let api = Api::new(&first).await;
        created(&api, "/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": VALUE})).await;
        let chain = created(&api, "/api/rule-chains", forward_chain(&receiver.url)).await;
        let id = chain["id"].as_str().unwrap().to_owned();
        let path = sealing_integration(&api, &id).await;
        (id, path)
    };
    let mut seen = String::new();

    // The process dies while the message's REST call is out: nothing acknowledged it.
    receiver.delay(Duration::from_secs(600));
    let resp = first.client.post(first.url(&path)).json(&json!({"dev": "d", "n": 1})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    eventually("the first delivery", async || (ns(&receiver) == [1]).then_some(())).await;
    first.kill9();
    seen.push_str(&first.logs());
    receiver.delay(Duration::ZERO);

    // Another process (another marker key) takes it once the first one's partition leases lapsed
    // (10 s, looked at every 3 s) and the ack wait passed, and opens its value.
    let mut second = queued(dir.path(), &stream, &flags).await;
    let again = eventually_within(TAKE_OVER, "the redelivery", async || {
        let requests = receiver.requests();
        (requests.len() == 2).then(|| requests[1].clone())
    })
    .await;
    assert_eq!(again.headers["authorization"], format!("Bearer {VALUE}"));
    assert_eq!(again.headers["x-delivery"], "2");
    assert_eq!(again.headers["idempotency-key"], receiver.requests()[0].headers["idempotency-key"]);

    // Again, and this time the next process allows one delivery only: a dead letter.
    receiver.delay(Duration::from_secs(600));
    let resp = second.client.post(second.url(&path)).json(&json!({"dev": "d", "n": 2})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    eventually("the delivery of n=2", async || (ns(&receiver) == [1, 1, 2]).then_some(())).await;
    second.kill9();
    seen.push_str(&second.logs());
    receiver.delay(Duration::ZERO);
    let third = queued(dir.path(), &stream, &["--queue-ack-wait", "1", "--queue-max-deliveries", "1"]).await;
    let api = Api::new(&third).await;
    let dead = eventually_within(TAKE_OVER, "the dead letter", async || {
        let (status, body) = api.get(&format!("/api/rule-chains/{id}/dead-letters")).await;
        assert_eq!(status, 200, "{body}");
        (body["deadLetters"].as_array().unwrap().len() == 1).then_some(body)
    })
    .await;
    let letter = &dead["deadLetters"][0];
    assert!(letter["reason"].as_str().unwrap().contains("delivered 2 times"), "{dead}");
    assert_eq!(letter["deliveries"], 2, "{dead}");
    assert_eq!(letter["message"]["metadata"]["token"], "***", "{dead}");
    assert_eq!(letter["message"]["data"]["n"], 2, "{dead}");
    assert_eq!(dead["next"], Value::Null, "the last page: {dead}");
    assert_eq!(ns(&receiver), [1, 1, 2], "a dead letter is not run");
    seen.push_str(&dead.to_string());

    // Replayed: it runs again, its sealed value intact, and leaves the dead letters.
    let (status, replayed) = api.post(&format!("/api/rule-chains/{id}/dead-letters/replay"), json!({})).await;
    assert_eq!((status, replayed), (200, json!({"replayed": 1})));
    let last = eventually("the replayed message", async || {
        let requests = receiver.requests();
        (requests.len() == 4).then(|| requests[3].clone())
    })
    .await;
    assert_eq!(last.body, r#"{"dev":"d","n":2}"#);
    assert_eq!(last.headers["authorization"], format!("Bearer {VALUE}"));
    let (_, dead) = api.get(&format!("/api/rule-chains/{id}/dead-letters")).await;
    assert_eq!(dead["deadLetters"], json!([]));
    let (status, body) =
        api.post(&format!("/api/rule-chains/{id}/dead-letters/replay"), json!({"seqs": "x"})).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("seqs: expected an array of sequence numbers"))
    );
    seen.push_str(&third.logs());
    assert_no_leak(&seen, &[VALUE]);
}

/// Two instances on one PostgreSQL database and one stream.
async fn cluster(
    stream: &Jetstream,
    database: &str,
    dirs: &[tempfile::TempDir; 2],
    extra: &[&str],
) -> (Server, Server) {
    let start = |dir: &std::path::Path| {
        let mut cmd = serve_command(dir);
        cmd.args(stream.args()).args(extra).arg("--database").arg(database).env(
            "VEIL_MASTER_KEY",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]),
        );
        Server::start_with(cmd)
    };
    (start(dirs[0].path()).await, start(dirs[1].path()).await)
}

/// The `(dev, seq)` of each request the sink got, in order.
fn arrivals(sink: &Receiver) -> Vec<(String, i64, Instant)> {
    sink.requests()
        .iter()
        .filter_map(|r| {
            let body: Value = serde_json::from_str(&r.body).ok()?;
            Some((body["dev"].as_str()?.to_owned(), body["seq"].as_i64()?, r.at))
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs NATS with JetStream (VEIL_TEST_NATS) and PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn load_twenty_thousand_uplinks_from_fifty_devices_survive_a_kill_of_one_instance_in_order() {
    const DEVICES: usize = 50;
    const PER_DEVICE: i64 = 400;
    let stream = Jetstream::new();
    let (_db, database) = crate::support::PostgresDatabase::create();
    let veil_store::Database::Postgres(database) = database else { unreachable!("a PostgreSQL database") };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (mut a, b) = cluster(&stream, &database, &dirs, &["--queue-ack-wait", "2"]).await;
    let sink = Receiver::start().await;
    let path = {
        let api = Api::new(&a).await;
        created(&api, "/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": VALUE})).await;
        let chain = created(&api, "/api/rule-chains", forward_chain(&sink.url)).await;
        sealing_integration(&api, chain["id"].as_str().unwrap()).await
    };
    // The integration runs on B too.
    let on_b = b.url(&path);
    eventually("the integration on B", async || {
        let resp = b.client.post(&on_b).json(&json!({"dev": "warm-up", "seq": -1})).send().await.unwrap();
        (resp.status() == 200).then_some(())
    })
    .await;

    // One sender per device, each uplink after the previous was answered; half the devices start
    // on each instance and move to the other when theirs is gone.
    let urls = Arc::new([a.url(&path), b.url(&path)]);
    let accepted: Arc<Mutex<Vec<(String, i64, Instant)>>> = Arc::default();
    let started = Instant::now();
    let mut senders = Vec::new();
    for dev in 0..DEVICES {
        let (urls, accepted, client) = (Arc::clone(&urls), Arc::clone(&accepted), a.client.clone());
        senders.push(tokio::spawn(async move {
            let mut target = dev % 2;
            let name = format!("dev-{dev}");
            for seq in 0..PER_DEVICE {
                loop {
                    let body = json!({"dev": name, "seq": seq});
                    match client.post(&urls[target]).json(&body).send().await {
                        Ok(r) if r.status() == 200 => {
                            accepted.lock().unwrap().push((name.clone(), seq, Instant::now()));
                            break;
                        }
                        Ok(r) if r.status() == 503 => tokio::time::sleep(Duration::from_millis(20)).await,
                        Ok(r) => panic!("{}: {}", r.status(), r.text().await.unwrap()),
                        // The instance is gone: the same uplink to the other one.
                        Err(_) => target = 1 - target,
                    }
                }
            }
        }));
    }
    while accepted.lock().unwrap().len() < DEVICES * PER_DEVICE as usize / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.kill9();
    let killed = Instant::now();
    for sender in senders {
        sender.await.unwrap();
    }
    let sent_in = started.elapsed();
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), DEVICES * PER_DEVICE as usize);

    // Every accepted uplink reaches the sink at least once.
    let wanted: HashSet<(String, i64)> = accepted.iter().map(|(d, s, _)| (d.clone(), *s)).collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    let seen = loop {
        let seen = arrivals(&sink);
        let got: HashSet<(String, i64)> = seen.iter().map(|(d, s, _)| (d.clone(), *s)).collect();
        let missing = wanted.difference(&got).count();
        if missing == 0 {
            break seen;
        }
        assert!(Instant::now() < deadline, "{missing} accepted uplinks never reached the sink");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Per device, in order (a repeat may come again after a kill, never an older one first).
    let mut per_device: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (dev, seq, _) in &seen {
        per_device.entry(dev.as_str()).or_default().push(*seq);
    }
    for (dev, seqs) in &per_device {
        let mut first_seen = Vec::new();
        let mut known = HashSet::new();
        for seq in seqs {
            if known.insert(*seq) {
                first_seen.push(*seq);
            }
        }
        assert!(first_seen.windows(2).all(|w| w[0] < w[1]), "{dev} out of order: {seqs:?}");
    }
    let duplicates = seen.len() - wanted.len();
    // Recovery: how long after the kill the last uplink accepted before it reached the sink.
    let before_kill: HashSet<(String, i64)> =
        accepted.iter().filter(|(_, _, at)| *at < killed).map(|(d, s, _)| (d.clone(), *s)).collect();
    let recovered = seen
        .iter()
        .filter(|(d, s, _)| before_kill.contains(&(d.clone(), *s)))
        .map(|(_, _, at)| at.saturating_duration_since(killed))
        .max()
        .unwrap_or_default();
    eprintln!(
        "queue kill test: {} uplinks accepted in {sent_in:?}, {} requests at the sink, {duplicates} duplicates, \
         the last uplink accepted before the kill arrived {recovered:?} after it",
        accepted.len(),
        seen.len()
    );
    assert!(sink.requests().iter().all(|r| r.headers["authorization"] == format!("Bearer {VALUE}")));
    assert_no_leak(&b.logs(), &[VALUE]);
}

#[tokio::test]
#[ignore = "needs NATS with JetStream (VEIL_TEST_NATS) and PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn load_thousands_of_queued_messages_are_processed_after_both_instances_restart() {
    const MESSAGES: i64 = 5000;
    let stream = Jetstream::new();
    let (_db, database) = crate::support::PostgresDatabase::create();
    let veil_store::Database::Postgres(database) = database else { unreachable!("a PostgreSQL database") };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (mut a, mut b) = cluster(&stream, &database, &dirs, &[]).await;
    let sink = Receiver::start().await;
    // A slow service: messages pile up in the stream.
    sink.delay(Duration::from_millis(300));
    let id = {
        let api = Api::new(&a).await;
        let chain = created(&api, "/api/rule-chains", forward_chain(&sink.url)).await;
        chain["id"].as_str().unwrap().to_owned()
    };
    let messages = format!("/api/rule-chains/{id}/messages");
    let (api_a, api_b) = (Api::new(&a).await, Api::new(&b).await);
    eventually("the chain on B", async || {
        let (status, _) = api_b.get(&format!("/api/rule-chains/{id}")).await;
        (status == 200).then_some(())
    })
    .await;
    let sent = futures_util::stream::iter(0..MESSAGES)
        .map(|n| {
            let (api, messages) = (if n % 2 == 0 { &api_a } else { &api_b }, &messages);
            async move {
                let body = json!({"originator": format!("dev-{}", n % 50), "metadata": {"token": "t"},
                                  "data": {"dev": format!("dev-{}", n % 50), "seq": n}});
                let (status, answer) = api.post(messages, body).await;
                assert_eq!(status, 202, "{answer}");
            }
        })
        .buffer_unordered(32)
        .count()
        .await;
    assert_eq!(sent, MESSAGES as usize);
    let (_, health) = api_a.get("/api/health").await;
    let pending = health["queue"]["pending"].as_u64().unwrap();
    assert!(pending > 2500, "too few messages waited for the restart to mean anything: {health}");
    drop((api_a, api_b));
    assert!(a.terminate().success());
    assert!(b.terminate().success());
    sink.delay(Duration::ZERO);
    let (a, b) = cluster(&stream, &database, &dirs, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let got: HashSet<i64> = arrivals(&sink).into_iter().map(|(_, s, _)| s).collect();
        if got.len() == MESSAGES as usize {
            break;
        }
        assert!(Instant::now() < deadline, "{} of {MESSAGES} processed after the restart", got.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "queue restart test: {pending} messages waiting at the restart; {} requests at the sink for {MESSAGES} messages",
        arrivals(&sink).len()
    );
    // ?wait=true through A: the messages of some devices run on B, whose traces come back over NATS.
    let api_a = Api::new(&a).await;
    for dev in 0..20 {
        let body = json!({"originator": format!("w-{dev}"), "metadata": {"token": "t"}, "data": {"dev": "w", "seq": -1}});
        let (status, answer) = api_a.post(&format!("{messages}?wait=true"), body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["trace"][0]["relation"], json!(["Success"]), "{answer}");
    }
    drop(api_a);
    drop((a, b));
}
