use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use veil_tests::mqtt::Broker;
use veil_tests::{TempStore, assert_no_leak};

use crate::support::{new_pki, run};

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, Value)>) -> (String, Value) {
    tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("a published message").unwrap()
}

fn mqtt_chain(port: u16, credentials: Value) -> Value {
    json!({
        "name": "To broker",
        "nodes": [{"type": "mqtt", "name": "Publish", "debugMode": true, "configuration": {
            "topicPattern": "veil/${deviceName}/telemetry",
            "host": "127.0.0.1",
            "port": port,
            "connectTimeoutSec": 5,
            "credentials": credentials
        }}]
    })
}

#[tokio::test]
#[ignore = "needs mosquitto (VEIL_TEST_MOSQUITTO)"]
async fn publishes_with_the_password_from_a_secret_and_reconnects_after_rotation() {
    let broker = Broker::with_passwords();
    broker.set_password("veil", "pw-one-1111");
    let env = TempStore::new().await;
    env.text("mqtt-password", "pw-one-1111").await;
    let mut watched = broker.watch("veil/#").await;
    let chain = mqtt_chain(
        broker.port,
        json!({"type": "basic", "username": "veil", "password": "$<secret:mqtt-password>"}),
    );
    let runtime = env.deploy_chain(&chain).await.unwrap();

    let trace = run(&runtime, json!({"temperature": 21})).await;
    assert_eq!(trace[0].relation, ["Success"], "{trace:?}");
    assert_eq!(next(&mut watched).await, ("veil/device-1/telemetry".into(), json!({"temperature": 21})));

    // The broker's password changes, then the secret: the node reconnects with the new value.
    broker.set_password("veil", "pw-two-2222");
    env.rotate("mqtt-password", "pw-two-2222").await;
    // No change event is delivered here: the node notices the new version on its own.
    let trace = run(&runtime, json!({"temperature": 22})).await;
    assert_eq!(trace[0].relation, ["Success"], "{trace:?}");
    assert_eq!(next(&mut watched).await.1, json!({"temperature": 22}));

    // The broker really checks: the old password is refused now, and the error shows no value.
    env.text("old-password", "pw-one-1111").await;
    let stale = mqtt_chain(
        broker.port,
        json!({"type": "basic", "username": "veil", "password": "$<secret:old-password>"}),
    );
    let stale = env.deploy_chain(&stale).await.unwrap();
    let trace = run(&stale, json!({"temperature": 23})).await;
    assert_eq!(trace[0].relation, ["Failure"]);
    let error = trace[0].error.as_deref().unwrap();
    assert!(error.contains("refused the connection"), "{error}");
    assert_no_leak(error, &["pw-one-1111"]);
    assert!(!error.contains("pw-one"), "not even a part of it: {error}");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watched.recv()).await.is_err(),
        "nothing was published"
    );
}

#[tokio::test]
#[ignore = "needs mosquitto (VEIL_TEST_MOSQUITTO)"]
async fn mutual_tls_with_certificates_from_file_secrets() {
    let pki = new_pki();
    let broker = Broker::start(|dir, port| {
        for (name, pem) in
            [("ca.pem", &pki.ca), ("server.pem", &pki.server_cert), ("server.key", &pki.server_key)]
        {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nrequire_certificate true\n\
             cafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key",
            dir.display()
        )
    });
    let env = TempStore::new().await;
    for (name, pem) in [("mqtt-ca", &pki.ca), ("mqtt-cert", &pki.client_cert), ("mqtt-key", &pki.client_key)]
    {
        env.file(name, pem).await;
    }
    let mut watched = broker.watch("veil/#").await;
    let credentials = json!({"type": "cert.PEM", "caCert": "$<secret:mqtt-ca>", "cert": "$<secret:mqtt-cert>", "privateKey": "$<secret:mqtt-key>"});
    let runtime = env.deploy_chain(&mqtt_chain(broker.port, credentials)).await.unwrap();
    let trace = run(&runtime, json!({"secure": true})).await;
    assert_eq!(trace[0].relation, ["Success"], "{trace:?}");
    assert_eq!(next(&mut watched).await.1, json!({"secure": true}));

    // A client certificate the broker does not trust is refused.
    let other = new_pki();
    for (name, pem) in [("other-cert", &other.client_cert), ("other-key", &other.client_key)] {
        env.file(name, pem).await;
    }
    let credentials = json!({"type": "cert.PEM", "caCert": "$<secret:mqtt-ca>", "cert": "$<secret:other-cert>", "privateKey": "$<secret:other-key>"});
    let runtime = env.deploy_chain(&mqtt_chain(broker.port, credentials)).await.unwrap();
    let trace = run(&runtime, json!({"secure": false})).await;
    assert_eq!(trace[0].relation, ["Failure"], "{trace:?}");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watched.recv()).await.is_err(),
        "nothing was published"
    );

    // A TEXT secret where a FILE is expected is refused at deploy.
    env.text("text", "not a file").await;
    let wrong = json!({"type": "cert.PEM", "caCert": "$<secret:text>", "cert": "$<secret:mqtt-cert>", "privateKey": "$<secret:mqtt-key>"});
    let problems = env.deploy_chain(&mqtt_chain(broker.port, wrong)).await.unwrap_err();
    assert_eq!(
        problems[0].message,
        "secret 'text' is a TEXT secret; this field accepts FILE (a PEM certificate)"
    );
}
