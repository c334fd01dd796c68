use std::process::Command;

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};
use veil_tests::{TempStore, assert_no_leak};

use crate::support::run;

/// `host:port` of the RabbitMQ under test, from `VEIL_TEST_AMQP` (set by `.ci/run`).
fn broker() -> (String, u16) {
    let addr = std::env::var("VEIL_TEST_AMQP")
        .expect("VEIL_TEST_AMQP must be host:port of a RabbitMQ (e.g. 127.0.0.1:5672)");
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    (host.to_owned(), port.parse().expect("a port number"))
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl").arg("-q").args(args).output().expect("rabbitmqctl");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A vhost and a user of the test's own, removed at the end.
struct Tenancy {
    vhost: String,
    user: String,
}

impl Tenancy {
    fn new(password: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let t = Self { vhost: format!("veil-test-{id}"), user: format!("veil-{id}") };
        rabbitmqctl(&["add_vhost", &t.vhost]);
        rabbitmqctl(&["add_user", &t.user, password]);
        rabbitmqctl(&["set_permissions", "-p", &t.vhost, &t.user, ".*", ".*", ".*"]);
        t
    }
}

impl Drop for Tenancy {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["-q", "delete_vhost", &self.vhost]).status();
        let _ = Command::new("rabbitmqctl").args(["-q", "delete_user", &self.user]).status();
    }
}

#[tokio::test]
#[ignore = "needs RabbitMQ (VEIL_TEST_AMQP) and rabbitmqctl"]
async fn publishes_with_credentials_from_secrets_and_follows_a_password_change() {
    let (host, port) = broker();
    let tenancy = Tenancy::new("rabbit-pw-1");
    let env = TempStore::new().await;
    env.text("amqp-user", &tenancy.user).await;
    env.text("amqp-password", "rabbit-pw-1").await;

    // The test's own consumer side: a queue bound to amq.topic in the test's vhost.
    let uri = AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo { username: tenancy.user.clone(), password: "rabbit-pw-1".into() },
            host: host.clone(),
            port,
        },
        vhost: tenancy.vhost.clone(),
        query: Default::default(),
    };
    let conn = Connection::connect_uri(uri, ConnectionProperties::default()).await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_declare("telemetry".into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            "telemetry".into(),
            "amq.topic".into(),
            "telemetry.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let get = || async {
        let got = channel.basic_get("telemetry".into(), BasicGetOptions { no_ack: true }).await.unwrap();
        got.map(|m| serde_json::from_slice::<Value>(&m.delivery.data).unwrap())
    };

    let chain = json!({
        "name": "To RabbitMQ",
        "nodes": [{"type": "rabbitmq", "name": "Publish", "configuration": {
            "exchangeNamePattern": "amq.topic",
            "routingKeyPattern": "telemetry.${deviceName}",
            "messageProperties": "PERSISTENT_TEXT_PLAIN",
            "host": host, "port": port, "virtualHost": tenancy.vhost,
            "username": "$<secret:amqp-user>", "password": "$<secret:amqp-password>",
            "connectionTimeout": 5000
        }}]
    });
    let runtime = env.deploy_chain(&chain).await.unwrap();
    let trace = run(&runtime, json!({"temperature": 30})).await;
    assert_eq!(trace[0].relation, ["Success"], "{trace:?}");
    assert_eq!(get().await, Some(json!({"temperature": 30})));

    // The password changes at the broker and in the store: the node reconnects with the new one.
    rabbitmqctl(&["change_password", &tenancy.user, "rabbit-pw-2"]);
    env.rotate("amqp-password", "rabbit-pw-2").await;
    // No change event is delivered here: the node notices the new version on its own.
    let trace = run(&runtime, json!({"temperature": 31})).await;
    assert_eq!(trace[0].relation, ["Success"], "{trace:?}");
    assert_eq!(get().await, Some(json!({"temperature": 31})));

    // A wrong password is refused by the broker; the error shows no value.
    env.text("wrong-password", "rabbit-pw-1").await;
    let mut wrong = chain.clone();
    wrong["nodes"][0]["configuration"]["password"] = json!("$<secret:wrong-password>");
    let runtime = env.deploy_chain(&wrong).await.unwrap();
    let trace = run(&runtime, json!({"temperature": 32})).await;
    assert_eq!(trace[0].relation, ["Failure"]);
    let error = trace[0].error.as_deref().unwrap();
    assert!(error.contains("RabbitMQ connection to"), "{error}");
    assert_no_leak(error, &["rabbit-pw-1"]);
    assert!(!error.contains("rabbit-pw"), "not even a part of it: {error}");
    assert_eq!(get().await, None, "nothing was published");
    let _ = conn.close(200, "done".into()).await;
}
