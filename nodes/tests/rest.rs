//! rest_api_call against real HTTP servers on loopback: response size limit, errors that say what
//! happened, certificates refused up front, and what the debug events show of the secrets sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use veil_core::{Limits, TraceStep};
use veil_tests::{Receiver, TempStore, assert_no_leak};

use crate::support::{new_pki, run};

fn call(configuration: Value) -> Value {
    json!({
        "name": "Call",
        "nodes": [{"type": "rest_api_call", "name": "Call", "debugMode": true, "configuration": configuration}]
    })
}

fn get(url: &str) -> Value {
    call(json!({"restEndpointUrlPattern": url, "requestMethod": "GET"}))
}

fn error(trace: &[TraceStep]) -> &str {
    assert_eq!(trace[0].relation, ["Failure"], "{trace:?}");
    trace[0].error.as_deref().unwrap()
}

/// A server that answers every request with an endless chunked body, counting what it wrote;
/// `stopped` turns true when the client closed the connection.
async fn endless_server() -> (String, Arc<AtomicUsize>, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (written, stopped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let (w, s) = (Arc::clone(&written), Arc::clone(&stopped));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (w, s) = (Arc::clone(&w), Arc::clone(&s));
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("400\r\n{}\r\n", "y".repeat(0x400));
                while socket.write_all(chunk.as_bytes()).await.is_ok() {
                    w.fetch_add(0x400, Ordering::SeqCst);
                }
                s.store(true, Ordering::SeqCst);
            });
        }
    });
    (base, written, stopped)
}

#[tokio::test]
async fn a_response_over_max_response_bytes_goes_to_failure_naming_the_limit() {
    let env = TempStore::new().await;
    let limits = Limits { max_response_bytes: 1000, ..Default::default() };
    let receiver = Receiver::start().await;
    let expected = "limit maxResponseBytes (1000) exceeded: the response body is larger";

    for (n, ok) in [(999, true), (1000, true), (1001, false), (5_000_000, false)] {
        receiver.answer_text("x".repeat(n));
        let runtime = env.deploy_chain_with(limits, &get(&format!("{}/bytes", receiver.url))).await.unwrap();
        let trace = run(&runtime, json!({})).await;
        if ok {
            assert_eq!(trace[0].relation, ["Success"], "{n}: {trace:?}");
            let event = &runtime.debug_events()[0];
            assert_eq!(event.outputs[0].msg["data"].as_str().map(str::len), Some(n));
        } else {
            assert_eq!(error(&trace), expected, "{n}");
            let event = &runtime.debug_events()[0];
            assert_eq!(event.outputs[0].msg["metadata"]["statusCode"], "200", "{event:?}");
        }
    }

    // No Content-Length: the body is counted as it streams and the connection dropped at the
    // limit, with the server still sending.
    let (endless, written, stopped) = endless_server().await;
    let runtime = env.deploy_chain_with(limits, &get(&format!("{endless}/stream"))).await.unwrap();
    let started = Instant::now();
    let trace = run(&runtime, json!({})).await;
    assert_eq!(error(&trace), expected);
    assert!(started.elapsed() < Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stopped.load(Ordering::SeqCst) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stopped.load(Ordering::SeqCst), "the client closed the connection");
    assert!(written.load(Ordering::SeqCst) < 64 << 20, "only socket buffers' worth was sent");

    // The default limit is the documented 10 MiB.
    receiver.answer_text("x".repeat(10 * 1024 * 1024 + 1));
    let runtime = env.deploy_chain(&get(&format!("{}/bytes", receiver.url))).await.unwrap();
    let trace = run(&runtime, json!({})).await;
    assert_eq!(error(&trace), "limit maxResponseBytes (10485760) exceeded: the response body is larger");
}

#[tokio::test]
async fn errors_say_what_happened() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = TempStore::new().await;
    env.text("query-key", "Qk-TANGO-19").await;

    // Connection refused: a port nobody listens on (any more).
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let runtime = env
        .deploy_chain(&get(&format!("http://127.0.0.1:{closed}/x?key=$<secret:query-key>")))
        .await
        .unwrap();
    let e = error(&run(&runtime, json!({})).await).to_owned();
    assert!(e.starts_with("request failed: connection refused ("), "{e}");
    assert!(e.contains("Connection refused"), "the cause chain: {e}");
    assert!(!e.contains("key=") && !e.contains("127.0.0.1"), "no URL: {e}");

    // Timeout: a server that accepts and never answers.
    let hold = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hold_port = hold.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hold.accept().await {
            held.push(socket);
        }
    });
    let mut config =
        json!({"restEndpointUrlPattern": format!("http://127.0.0.1:{hold_port}/"), "readTimeoutMs": 300});
    config["requestMethod"] = json!("GET");
    let runtime = env.deploy_chain(&call(config)).await.unwrap();
    let e = error(&run(&runtime, json!({})).await).to_owned();
    assert!(e.starts_with("request failed: no response within readTimeoutMs (300 ms) ("), "{e}");

    // DNS: a name that never resolves (RFC 6761 `.invalid`).
    let runtime = env.deploy_chain(&get("http://veil-test-host.invalid/x")).await.unwrap();
    let e = error(&run(&runtime, json!({})).await).to_owned();
    assert!(e.starts_with("request failed: cannot resolve the host name ("), "{e}");
    assert!(e.contains("dns error"), "{e}");

    // TLS: a server whose certificate no trusted CA signed.
    let pki = new_pki();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(pki.server_cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_port = tls.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = tls.accept().await {
            let _ = acceptor.accept(socket).await;
        }
    });
    let runtime = env.deploy_chain(&get(&format!("https://localhost:{tls_port}/"))).await.unwrap();
    let e = error(&run(&runtime, json!({})).await).to_owned();
    assert!(
        e.starts_with(
            "request failed: TLS handshake failed: the server's certificate is not signed by a trusted CA ("
        ),
        "{e}"
    );
    assert!(e.contains("UnknownIssuer"), "{e}");

    // TLS to a port that speaks plain HTTP.
    let plain = Receiver::start().await.url.replace("http://", "https://");
    let runtime = env.deploy_chain(&get(&format!("{plain}/x"))).await.unwrap();
    let e = error(&run(&runtime, json!({})).await).to_owned();
    assert!(
        e.starts_with("request failed: TLS handshake failed: the server does not speak TLS on that port ("),
        "{e}"
    );
}

fn mtls_chain(port: u16, ca: &str, cert: &str, key: &str) -> Value {
    call(json!({
        "restEndpointUrlPattern": format!("https://localhost:{port}/api"),
        "requestMethod": "GET",
        "credentials": {"type": "cert.PEM", "caCert": ca, "cert": cert, "privateKey": key}
    }))
}

#[tokio::test]
async fn a_ca_cert_without_a_pem_certificate_is_refused_at_save_and_before_connecting() {
    let env = TempStore::new().await;
    let pki = new_pki();
    env.file("client-cert", &pki.client_cert).await;
    env.file("client-key", &pki.client_key).await;
    env.file("not-pem", "this is not a certificate at all\n").await;
    env.file("key-not-cert", &pki.client_key).await;
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    // At save: the secret's metadata says it holds no certificate (or no key), naming the field.
    for (ca, cert, key, field, what) in [
        ("not-pem", "client-cert", "client-key", "caCert", "holds no PEM certificate"),
        ("key-not-cert", "client-cert", "client-key", "caCert", "holds no PEM certificate"),
        ("client-cert", "client-key", "client-key", "cert", "holds no PEM certificate"),
        ("client-cert", "client-cert", "client-cert", "privateKey", "holds no PEM private key"),
    ] {
        let chain = mtls_chain(
            port,
            &format!("$<secret:{ca}>"),
            &format!("$<secret:{cert}>"),
            &format!("$<secret:{key}>"),
        );
        let problems = format!("{:?}", env.deploy_chain(&chain).await.unwrap_err());
        assert!(problems.contains(&format!("/nodes/0/configuration/credentials/{field}")), "{problems}");
        assert!(problems.contains(what), "{problems}");
    }
    // A value changed afterwards is caught before connecting (nothing listens: the error comes
    // from building the client).
    env.file("ca", &pki.ca).await;
    let runtime = env
        .deploy_chain(&mtls_chain(port, "$<secret:ca>", "$<secret:client-cert>", "$<secret:client-key>"))
        .await
        .unwrap();
    env.rotate("ca", "this is not a certificate at all\n").await;
    assert_eq!(error(&run(&runtime, json!({})).await), "credentials/caCert: no PEM certificate found");
}

#[tokio::test]
async fn an_x509_v1_client_certificate_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("the openssl command line tool");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=v1 CA", "-days", "2"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-new"][..],
            &ec,
            &["-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=v1 client"],
        ]
        .concat(),
    );
    // Without extensions, `openssl x509 -req` issues a version 1 certificate.
    openssl(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.pem",
        "-days",
        "2",
    ]);
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();

    let env = TempStore::new().await;
    env.file("ca", &read("ca.pem")).await;
    env.file("v1-cert", &read("client.pem")).await;
    env.file("v1-key", &read("client.key")).await;
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let runtime = env
        .deploy_chain(&mtls_chain(port, "$<secret:ca>", "$<secret:v1-cert>", "$<secret:v1-key>"))
        .await
        .unwrap();
    let e = error(&run(&runtime, json!({})).await).to_owned();
    assert!(e.starts_with("credentials/cert: the client certificate is X.509 v1, which TLS (rustls) refuses; issue a v3 certificate"), "{e}");
    assert!(e.contains("UnsupportedCertVersion"), "with the cause chain: {e}");
    assert!(!e.contains("PRIVATE KEY") && !e.contains("BEGIN"), "{e}");
}

#[tokio::test]
async fn what_a_rest_call_sends_is_masked_in_debug_events_whatever_its_encoding() {
    let env = TempStore::new().await;
    env.text("urlish", "my-pass word.JULIET~9").await;
    env.text("short", "Zq4").await;
    env.text("host", "LocalHost").await;
    let receiver = Receiver::start().await;
    receiver.reflect();
    let port = receiver.url.rsplit(':').next().unwrap();
    let runtime = env
        .deploy_chain(&call(json!({
            "restEndpointUrlPattern":
                format!("http://$<secret:host>:{port}/echo/$<secret:urlish>?key=$<secret:urlish>"),
            "requestMethod": "GET",
            "credentials": {"type": "basic", "username": "user", "password": "$<secret:short>"}
        })))
        .await
        .unwrap();
    let trace = run(&runtime, json!({})).await;
    assert_eq!(trace[0].relation, ["Success"], "{trace:?}");
    let event = &runtime.debug_events()[0];
    let data = &event.outputs[0].msg["data"];
    // What the server received, as the event shows it.
    assert_eq!(data["path"], "/echo/***?key=***", "{data}");
    assert_eq!(data["headers"]["authorization"], "Basic ***", "{data}");
    assert_eq!(data["headers"]["host"], format!("***:{port}"), "{data}");
    let shown = serde_json::to_string(event).unwrap();
    assert_no_leak(&shown, &["my-pass word.JULIET~9", "Zq4", "LocalHost", "user:Zq4"]);
    // Not even a part of the value.
    for part in ["JULIET", "juliet"] {
        assert!(!shown.contains(part), "{part} in {shown}");
    }
}

#[tokio::test]
async fn user_info_in_the_url_is_sent_as_basic_credentials_never_in_the_request_line() {
    let env = TempStore::new().await;
    env.text("meter-password", "p@ss:w0rd").await;
    let receiver = Receiver::start().await;
    let authority = receiver.url.trim_start_matches("http://").to_owned();
    let runtime = env
        .deploy_chain(&call(json!({
            // Percent-encoded in the URL as a browser would send it; decoded before encoding.
            "restEndpointUrlPattern": format!("http://meter:$<secret:meter-password>@{authority}/in#part"),
            "requestMethod": "POST",
        })))
        .await
        .unwrap();
    let trace = run(&runtime, json!({"t": 1})).await;
    assert_eq!(trace[0].relation, ["Success"], "{trace:?}");
    let got = receiver.requests();
    assert_eq!(got.len(), 1);
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode("meter:p@ss:w0rd");
    assert_eq!(got[0].headers["authorization"], format!("Basic {expected}"));
    // Neither the user info nor the fragment travels in the request line or the Host header.
    assert_eq!(got[0].uri, "/in");
    assert_eq!(got[0].headers["host"], authority);
    assert_eq!(got[0].body, r#"{"t":1}"#);
    // The debug event shows the credentials masked, the composite too.
    let shown = serde_json::to_string(&runtime.debug_events()).unwrap();
    assert_no_leak(&shown, &["p@ss:w0rd", &expected]);
}

#[tokio::test]
async fn only_http_and_https_urls_are_sent_to_and_a_redirect_is_an_answer_not_followed() {
    let env = TempStore::new().await;
    let problems = format!("{:?}", env.deploy_chain(&get("ftp://127.0.0.1/file")).await.unwrap_err());
    assert!(problems.contains("/nodes/0/configuration/restEndpointUrlPattern"), "{problems}");
    assert!(problems.contains("is not a valid URL: the scheme must be http or https, not ftp"), "{problems}");
    // A 302 (to wherever) goes to Failure as it came: the node never follows it.
    let receiver = Receiver::start().await;
    receiver.answer_with(302);
    let runtime = env.deploy_chain(&get(&format!("{}/moved", receiver.url))).await.unwrap();
    let trace = run(&runtime, json!({})).await;
    assert_eq!(error(&trace), "HTTP 302 Found");
    assert_eq!(receiver.requests().len(), 1);
}
