//! A server's life as a load balancer and an operator see it: `503` while starting, ready, and a
//! SIGTERM that finishes the work in hand, closes broker connections cleanly and exits 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::mqtt::Broker;
use crate::support::{Api, Receiver, Server, serve_command};

/// A chain of one rest_api_call to `url`.
fn forward_to(url: &str) -> Value {
    json!({"name": "Forward", "nodes": [{"type": "rest_api_call", "name": "Post", "configuration": {
        "restEndpointUrlPattern": url, "requestMethod": "POST", "readTimeoutMs": 10000}}], "connections": []})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_answers_every_accepted_request_and_exits_0_within_the_grace() {
    // A fast service (connections between two requests when the signal comes: closing them then
    // would lose the request a client is sending), and a slow one (every sender's request in hand).
    for delay in [Duration::ZERO, Duration::from_millis(300)] {
        sigterm_under_load(delay).await;
    }
}

async fn sigterm_under_load(delay: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    receiver.delay(delay);
    let (status, chain) = api.post("/api/rule-chains", forward_to(&format!("{}/in", receiver.url))).await;
    assert_eq!(status, 201, "{chain}");
    let url = server.url(&format!("/api/rule-chains/{}/messages?wait=true", chain["id"].as_str().unwrap()));

    let (answered, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let broken = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let signalled = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for n in 0..32 {
        let (url, token) = (url.clone(), api.token.clone());
        let (answered, refused, broken, signalled) =
            (Arc::clone(&answered), Arc::clone(&refused), Arc::clone(&broken), Arc::clone(&signalled));
        senders.push(tokio::spawn(async move {
            // One kept-alive connection per sender, as a real client keeps.
            let client = reqwest::Client::new();
            loop {
                let sent =
                    client.post(&url).bearer_auth(&token).json(&json!({"data": {"sender": n}})).send().await;
                match sent {
                    Ok(response) => {
                        let status = response.status();
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        if status == 200 && body["trace"][0]["relation"] == json!(["Success"]) {
                            answered.fetch_add(1, Ordering::SeqCst);
                        } else {
                            broken.lock().unwrap().push(format!("{status}: {body}"));
                            return;
                        }
                    }
                    // The listener is closed: the request was never accepted.
                    Err(e) if e.is_connect() && signalled.load(Ordering::SeqCst) => {
                        refused.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => {
                        broken.lock().unwrap().push(format!("{e:?}"));
                        return;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = answered.load(Ordering::SeqCst);
    signalled.store(true, Ordering::SeqCst);
    let signal_at = Instant::now();
    server.signal("-TERM");
    let status = server.exit_within(Duration::from_secs(15)).await;
    let took = signal_at.elapsed();
    for sender in senders {
        sender.await.unwrap();
    }
    let status = status.unwrap_or_else(|| panic!("still running 15 s after SIGTERM:\n{}", server.logs()));
    assert!(status.success(), "{status}\n{}", server.logs());
    assert!(took < Duration::from_secs(10), "the default grace is 10 s; took {took:?}");
    let broken = broken.lock().unwrap().clone();
    assert!(
        broken.is_empty(),
        "{delay:?}: requests that got no answer or an error: {broken:?}\n{}",
        server.logs()
    );
    let answered = answered.load(Ordering::SeqCst);
    assert!(before >= 32, "the load ran before the signal: {before}");
    // The requests in hand when the signal came were answered, then each sender found the door closed.
    assert!(answered >= before + 32, "in-hand requests answered after the signal: {before} -> {answered}");
    assert_eq!(refused.load(Ordering::SeqCst), 32);
    assert!(receiver.requests().len() >= answered, "every answered message reached the service");
    assert!(server.logs().contains("rule chains and integrations stopped"), "{}", server.logs());
}

/// Messages sent without `wait` run in the background: a SIGTERM waits for them (the grace period
/// counts from the signal, however long the server ran before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_messages_running_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(dir.path());
    cmd.args(["--shutdown-grace", "3"]);
    let mut server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    let (slow, last) = (Receiver::start().await, Receiver::start().await);
    slow.delay(Duration::from_millis(1000));
    let post = |name: &str, url: String| {
        json!({"type": "rest_api_call", "name": name, "configuration": {
            "restEndpointUrlPattern": url, "requestMethod": "POST", "readTimeoutMs": 10000}})
    };
    // Slow, then Last: Last is called only once Slow answered, a second after the message was sent.
    let chain = json!({"name": "Background", "nodes": [post("Slow", format!("{}/a", slow.url)), post("Last", format!("{}/b", last.url))],
        "connections": [{"fromIndex": 0, "toIndex": 1, "type": "Success"}]});
    let (status, chain) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{chain}");
    // Longer than the grace period before the signal.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let url = format!("/api/rule-chains/{}/messages", chain["id"].as_str().unwrap());
    for n in 0..5 {
        let (status, body) = api.post(&url, json!({"data": {"n": n}})).await;
        assert_eq!(status, 202, "{body}");
    }
    crate::support::eventually("the five messages to reach the slow service", async || {
        (slow.requests().len() == 5).then_some(())
    })
    .await;
    assert!(last.requests().is_empty());
    server.signal("-TERM");
    let status = server.exit_within(Duration::from_secs(6)).await.expect("stopped within the grace period");
    assert!(status.success(), "{}", server.logs());
    assert_eq!(last.requests().len(), 5, "every background message ran to its end:\n{}", server.logs());
    assert!(!server.logs().contains("still in progress"), "{}", server.logs());
}

#[tokio::test]
async fn while_starting_liveness_answers_everything_else_is_503_and_a_signal_stops_it() {
    // A "database" that accepts connections and never answers: the start-up waits on it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let database = format!("postgres://postgres@{}/veil", silent.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(dir.path());
    cmd.args(["--database", &database]);
    let mut server = Server::start_listening(cmd).await;
    let api = Api { server: &server, token: String::new() };
    let (status, health) = api.get("/api/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("starting")), "{health}");
    let ready = server.client.get(server.url("/api/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.headers()["retry-after"], "1");
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body, json!({"error": "not_ready", "message": "the server is starting"}));
    let (status, body) =
        api.post("/api/auth/login", json!({"username": "admin", "password": "whatever"})).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("not_ready")), "{body}");
    server.signal("-TERM");
    let status = server.exit_within(Duration::from_secs(5)).await.expect("stopped while starting");
    assert!(status.success(), "{status}\n{}", server.logs());
    assert!(server.logs().contains("stopped while starting"), "{}", server.logs());
}

#[tokio::test]
async fn a_second_signal_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_secs(30));
    let (_, chain) = api.post("/api/rule-chains", forward_to(&format!("{}/slow", receiver.url))).await;
    let url = server.url(&format!("/api/rule-chains/{}/messages?wait=true", chain["id"].as_str().unwrap()));
    let (client, token) = (server.client.clone(), api.token.clone());
    let in_hand =
        tokio::spawn(async move { client.post(&url).bearer_auth(token).json(&json!({})).send().await });
    crate::support::eventually("the slow request to reach the service", async || {
        (!receiver.requests().is_empty()).then_some(())
    })
    .await;
    server.signal("-TERM");
    assert!(
        server.exit_within(Duration::from_millis(1500)).await.is_none(),
        "the first signal waits for the work in hand"
    );
    server.signal("-TERM");
    let status = server.exit_within(Duration::from_secs(2)).await.expect("the second signal stops at once");
    assert_eq!(status.code(), Some(1), "{}", server.logs());
    assert!(server.logs().contains("second signal"), "{}", server.logs());
    in_hand.abort();
}

#[tokio::test]
#[ignore = "needs mosquitto (VEIL_TEST_MOSQUITTO)"]
async fn sigterm_disconnects_from_the_mqtt_broker_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let broker = Broker::with_passwords();
    broker.set_password("veil", "broker-pass-1");
    assert_eq!(
        api.post("/api/secrets", json!({"name": "broker", "type": "TEXT", "value": "broker-pass-1"})).await.0,
        201
    );
    let client_id = format!("veil-shutdown-{}", uuid::Uuid::new_v4().simple());
    let chain = json!({"name": "Publish", "nodes": [{"type": "mqtt", "name": "Publish", "configuration": {
        "topicPattern": "shutdown/${deviceName}", "host": "127.0.0.1", "port": broker.port, "clientId": client_id,
        "connectTimeoutSec": 5, "credentials": {"type": "basic", "username": "veil", "password": "$<secret:broker>"}}}],
        "connections": []});
    let (status, chain) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{chain}");
    let (status, sent) = api
        .post(
            &format!("/api/rule-chains/{}/messages?wait=true", chain["id"].as_str().unwrap()),
            json!({"data": {}}),
        )
        .await;
    assert_eq!((status, &sent["trace"][0]["relation"]), (200, &json!(["Success"])), "{sent}");
    assert!(server.terminate().success(), "{}", server.logs());
    crate::support::eventually("the broker to log the disconnection", async || {
        broker.log().contains(&format!("Client {client_id} disconnected")).then_some(())
    })
    .await;
    assert!(!broker.log().contains(&format!("Client {client_id} closed its connection")), "{}", broker.log());
}
