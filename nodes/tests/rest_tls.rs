use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use veil_tests::TempStore;

use crate::support::{new_pki, run};

/// A TLS listener that requires a client certificate signed by the test CA.
struct MutualTls {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    refused: Arc<AtomicUsize>,
}

impl axum::serve::Listener for MutualTls {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else { continue };
            match self.acceptor.accept(stream).await {
                Ok(tls) => return (tls, addr),
                Err(_) => {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[tokio::test]
async fn rest_calls_present_the_client_certificate_from_file_secrets() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = new_pki();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap()).unwrap();
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(pki.server_cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap(),
        )
        .unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let listener = MutualTls {
        tcp: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
        refused: Arc::clone(&refused),
    };
    let port = listener.tcp.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(|| async { axum::Json(json!({"mutual": "tls"})) });
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env = TempStore::new().await;
    env.file("ca", &pki.ca).await;
    env.file("client-cert", &pki.client_cert).await;
    env.file("client-key", &pki.client_key).await;
    let chain = |cert: &str, key: &str| {
        json!({
            "name": "mTLS",
            "nodes": [{"type": "rest_api_call", "name": "Call", "configuration": {
                "restEndpointUrlPattern": format!("https://localhost:{port}/api"),
                "requestMethod": "POST",
                "credentials": {"type": "cert.PEM", "caCert": "$<secret:ca>", "cert": cert, "privateKey": key}
            }}]
        })
    };
    let runtime = env.deploy_chain(&chain("$<secret:client-cert>", "$<secret:client-key>")).await.unwrap();
    let trace = run(&runtime, json!({"x": 1})).await;
    assert_eq!(trace[0].relation, ["Success"], "{trace:?}");
    assert_eq!(refused.load(Ordering::SeqCst), 0);

    // An encrypted PKCS#8 key is decrypted with the password from a TEXT secret.
    let encrypted = encrypt_key(&pki.client_key, "key-pass-123");
    env.file("encrypted-key", &encrypted).await;
    env.text("key-password", "key-pass-123").await;
    env.text("bad-key-password", "nope").await;
    for (password, relation) in
        [("$<secret:key-password>", "Success"), ("$<secret:bad-key-password>", "Failure")]
    {
        let mut with_password = chain("$<secret:client-cert>", "$<secret:encrypted-key>");
        with_password["nodes"][0]["configuration"]["credentials"]["password"] = json!(password);
        let runtime = env.deploy_chain(&with_password).await.unwrap();
        let trace = run(&runtime, json!({"x": 3})).await;
        assert_eq!(trace[0].relation, [relation], "{trace:?}");
        if relation == "Failure" {
            assert_eq!(trace[0].error.as_deref(), Some("privateKey: the password does not decrypt it"));
        }
    }

    // A certificate from another CA is refused by the server.
    let other = new_pki();
    env.file("other-cert", &other.client_cert).await;
    env.file("other-key", &other.client_key).await;
    let runtime = env.deploy_chain(&chain("$<secret:other-cert>", "$<secret:other-key>")).await.unwrap();
    let trace = run(&runtime, json!({"x": 2})).await;
    assert_eq!(trace[0].relation, ["Failure"], "{trace:?}");
    assert!(refused.load(Ordering::SeqCst) >= 1, "the server refused the handshake");
    let error = trace[0].error.as_deref().unwrap();
    assert!(!error.contains("PRIVATE KEY"), "{error}");
}

/// The key as an encrypted PKCS#8 PEM (`openssl pkcs8 -topk8 -v2 aes-256-cbc`).
fn encrypt_key(key_pem: &str, password: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (plain, encrypted) = (dir.path().join("key.pem"), dir.path().join("encrypted.pem"));
    std::fs::write(&plain, key_pem).unwrap();
    let status = std::process::Command::new("openssl")
        .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout"])
        .arg(format!("pass:{password}"))
        .arg("-in")
        .arg(&plain)
        .arg("-out")
        .arg(&encrypted)
        .status()
        .expect("the openssl command line tool");
    assert!(status.success());
    let pem = std::fs::read_to_string(encrypted).unwrap();
    assert!(pem.contains("BEGIN ENCRYPTED PRIVATE KEY"));
    pem
}
