//! Attacks on the network edge and sessions: slow connections, proxies, host and origin checks,
//! logout.

use std::time::Duration;

use serde_json::{Value, json};

use super::{created, health_within};
use crate::limits::start;
use crate::support::{Api, Receiver, Server, serve_command};

/// A connection to `server` from the loopback address `from` (127.0.0.x), having sent `sent`.
async fn connect_from(server: &Server, from: &str, sent: &[u8]) -> tokio::net::TcpStream {
    let addr: std::net::SocketAddr =
        server.url("").trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, sent).await.unwrap();
    stream
}

/// Whether the server closed `stream` within `within` (reading whatever it sent first).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read(stream, &mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// G8: half-sent requests and idle connections are closed after the header timeout; connections
/// are capped in all and per client address, so one address cannot starve the others.
#[tokio::test]
async fn g8_slow_and_idle_connections_are_closed_and_capped() {
    let (_dir, server) = start(&[
        "--header-timeout-secs",
        "2",
        "--max-connections-per-address",
        "20",
        "--max-connections",
        "45",
    ])
    .await;
    let half = b"POST /api/v1/integrations/http/none HTTP/1.1\r\nHost: x\r\n";
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(connect_from(&server, "127.0.0.2", half).await);
    }
    // The 21st from the same address is closed at once; another address is served.
    let mut extra = connect_from(&server, "127.0.0.2", half).await;
    assert!(closed_within(&mut extra, Duration::from_millis(500)).await, "over the per-address cap");
    health_within(&server, Duration::from_secs(1)).await;
    // 20 more from another address fill the server (45): a third address gets closed at once.
    for _ in 0..20 {
        slow.push(connect_from(&server, "127.0.0.3", half).await);
    }
    let mut filler = Vec::new();
    for _ in 0..5 {
        filler.push(connect_from(&server, "127.0.0.4", half).await);
    }
    let mut over = connect_from(&server, "127.0.0.5", half).await;
    assert!(closed_within(&mut over, Duration::from_millis(500)).await, "over the global cap");
    // Within the header timeout every half-sent request is closed, and the server serves again.
    for stream in slow.iter_mut().chain(filler.iter_mut()) {
        assert!(closed_within(stream, Duration::from_secs(4)).await, "a half-sent request stayed open");
    }
    health_within(&server, Duration::from_secs(1)).await;
    // A kept-alive connection left idle is closed too.
    let mut idle = connect_from(&server, "127.0.0.6", b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(closed_within(&mut idle, Duration::from_secs(4)).await, "an idle connection stayed open");
}

/// G13: proxy variables in the server's environment are not used: the request goes to the host
/// the destination check allowed, the "proxy" sees nothing.
#[tokio::test]
async fn g13_system_proxy_variables_are_ignored() {
    let proxy = Receiver::start().await;
    let target = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(dir.path());
    cmd.env("HTTP_PROXY", &proxy.url).env("http_proxy", &proxy.url).env("ALL_PROXY", &proxy.url);
    let server = Server::start_with(cmd).await;
    let admin = Api::new(&server).await;
    let port = target.url.rsplit(':').next().unwrap().to_owned();
    created(
        &admin,
        "/api/secrets",
        json!({"name": "pinned", "type": "TEXT", "value": "Pinned-KILO-88",
        "allowedDestinations": [format!("127.0.0.1:{port}")]}),
    )
    .await;
    let doc = json!({"name": "pinned", "nodes": [{"type": "rest_api_call", "name": "R", "configuration": {
        "restEndpointUrlPattern": format!("{}/api", target.url), "requestMethod": "POST",
        "headers": {"Authorization": "Bearer $<secret:pinned>"}}}]});
    let chain = created(&admin, "/api/rule-chains", doc).await;
    let id = chain["id"].as_str().unwrap();
    let (_, answer) =
        admin.post(&format!("/api/rule-chains/{id}/messages?wait=true"), json!({"data": {}})).await;
    assert_eq!(answer["trace"][0]["relation"], json!(["Success"]), "{answer}");
    assert_eq!(target.requests().len(), 1);
    assert!(proxy.requests().is_empty(), "the proxy got {:?}", proxy.requests());
}

/// G16 (edge): browser sessions only under IP addresses, localhost and `--public-host` names
/// (DNS rebinding), and the Origin check includes the scheme.
#[tokio::test]
async fn g16_browser_sessions_check_host_and_origin_scheme() {
    let (_dir, server) = start(&["--public-host", "veil.test"]).await;
    let client = reqwest::Client::new();
    let port = server.url("").trim_end_matches('/').rsplit(':').next().unwrap().to_owned();
    let login = |host: String| {
        client
            .post(server.url("/api/auth/session"))
            .header("host", host)
            .json(&json!({"username": "admin", "password": crate::support::ADMIN_PASSWORD}))
    };
    let refused = login(format!("rebound.example:{port}")).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "host_refused", "{body}");
    assert!(body["message"].as_str().unwrap().contains("'rebound.example' is not one"), "{body}");
    assert_eq!(login(format!("veil.test:{port}")).send().await.unwrap().status(), 200);
    let ok = login(format!("127.0.0.1:{port}")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let session: Value = ok.json().await.unwrap();
    let csrf = session["csrfToken"].as_str().unwrap().to_owned();
    // The cookie under a rebound name is refused too.
    let rebound = client
        .get(server.url("/api/secrets"))
        .header("host", format!("rebound.example:{port}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    // Same host and port but https: another origin.
    let create = |origin: String| {
        client
            .post(server.url("/api/secrets"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .header("origin", origin)
            .json(&json!({"name": "from-origin", "type": "TEXT", "value": "v"}))
    };
    let https = create(format!("https://127.0.0.1:{port}")).send().await.unwrap();
    assert_eq!(https.status(), 403);
    assert_eq!(create(format!("http://127.0.0.1:{port}")).send().await.unwrap().status(), 201);
}

/// G16: a script's value used as a message type must be a string; the scripts' clock has
/// millisecond resolution; someone guessing a password elsewhere does not lock the owner out.
#[tokio::test]
async fn g16_leftovers() {
    let (_dir, server) = start(&[]).await;
    let admin = Api::new(&server).await;
    created(&admin, "/api/secrets", json!({"name": "k", "type": "TEXT", "value": "key-value-1"})).await;
    for (script, says) in [
        ("#{msg: msg, msgType: [secret(\"k\")]}", "msgType: a message type must be a string, not array"),
        ("#{msg: msg, msgType: #{a: 1}}", "msgType: a message type must be a string, not map"),
    ] {
        let doc = json!({"name": script, "nodes": [{"type": "script", "name": "S", "configuration": {"mode": "transform", "script": script}}]});
        let chain = created(&admin, "/api/rule-chains", doc).await;
        let id = chain["id"].as_str().unwrap();
        let (_, answer) =
            admin.post(&format!("/api/rule-chains/{id}/messages?wait=true"), json!({"data": {}})).await;
        let error = answer["trace"][0]["error"].as_str().unwrap_or_default();
        assert!(error.contains(says) && !error.contains("veil_core"), "{answer}");
    }
    let timing = "let t = timestamp(); let h = sha256_hex(secret(\"k\")); #{msg: #{ms: t.elapsed * 1000.0}}";
    let doc = json!({"name": "timing", "nodes": [{"type": "script", "name": "S", "debugMode": true,
        "configuration": {"mode": "transform", "script": timing}}]});
    let chain = created(&admin, "/api/rule-chains", doc).await;
    let id = chain["id"].as_str().unwrap();
    for _ in 0..20 {
        admin.post(&format!("/api/rule-chains/{id}/messages?wait=true"), json!({"data": {}})).await;
    }
    let (_, events) = admin.get(&format!("/api/rule-chains/{id}/events")).await;
    for event in events.as_array().unwrap() {
        let ms = event["outputs"][0]["msg"]["data"]["ms"].as_f64().unwrap();
        assert!((ms - ms.round()).abs() < 1e-6, "{ms} ms");
    }

    // Ten wrong passwords for admin from another address; admin logs in from its own at once.
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    for _ in 0..10 {
        let resp = elsewhere
            .post(server.url("/api/auth/login"))
            .json(&json!({"username": "admin", "password": "a wrong guess"}))
            .send()
            .await
            .unwrap();
        assert!([401, 429].contains(&resp.status().as_u16()));
    }
    let resp = elsewhere
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": "admin", "password": crate::support::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429, "the guesser's address waits, even with the right password");
    let own = server
        .client
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": "admin", "password": crate::support::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200, "the owner is not locked out");
}

/// A trap a new user fell into: logging out in the browser ended every session of the account,
/// the CLI's too. Logout ends the session it is sent with; "log out everywhere" (and a password
/// change) ends all.
#[tokio::test]
async fn trap_logout_ends_this_session_only_and_everywhere_ends_all() {
    let (_dir, server) = start(&[]).await;
    let browser = Api::new(&server).await;
    let cli = Api::new(&server).await;
    let third = Api::new(&server).await;
    assert_eq!(browser.post("/api/auth/logout", json!({})).await.0, 204);
    let (status, body) = browser.get("/api/secrets").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["message"].as_str().unwrap().contains("this session was logged out"), "{body}");
    assert_eq!(cli.get("/api/secrets").await.0, 200, "another session of the account goes on");
    assert_eq!(third.get("/api/secrets").await.0, 200);
    assert_eq!(cli.post("/api/auth/logout?everywhere=true", json!({})).await.0, 204);
    assert_eq!(cli.get("/api/secrets").await.0, 401);
    assert_eq!(third.get("/api/secrets").await.0, 401, "everywhere ends every session");
    let again = Api::new(&server).await;
    assert_eq!(again.get("/api/secrets").await.0, 200, "a new login works");
}
