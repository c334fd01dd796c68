use serde_json::json;
use veil_tests::TempStore;
use veil_tests::tls::MutualTls;

use crate::support::{new_pki, run};

#[tokio::test]
async fn rest_calls_present_the_client_certificate_from_file_secrets() {
    let pki = new_pki();
    let listener = MutualTls::bind(&pki, &[&pki.ca]).await;
    let port = listener.port();
    let seen = listener.seen();
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
    assert_eq!(seen.lock().unwrap().refused, 0);

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
    assert!(seen.lock().unwrap().refused >= 1, "the server refused the handshake");
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
