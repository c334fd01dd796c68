//! `mqtt`: publishes messages to an MQTT broker (ThingsBoard's configuration names). The
//! connection is kept open; credentials (username/password, or CA/client certificate/key from FILE
//! secrets) are resolved when it connects, and when a secret it uses changes it reconnects with
//! the new value before the next publish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use schemars::JsonSchema;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinHandle;
use veil_core::{
    Accepts, BoxFuture, BuildCtx, CompiledConfig, FieldSpec, Msg, Node, NodeCtx, NodeDescriptor, NodeError,
    NodeResult, Probe, Problem, Secrets, Template, TemplateText,
};

use crate::common::{self, Reconnect};
use crate::credentials::{ClientCert, MqttCredentials, UserPassword};

pub(crate) static DESCRIPTOR: NodeDescriptor = NodeDescriptor {
    type_name: "mqtt",
    description: "Publishes each message to an MQTT broker; credentials and certificates may come from secrets",
    default_config: || {
        json!({
            "topicPattern": "my-topic",
            "host": "localhost",
            "port": 1883,
            "connectTimeoutSec": 10,
            "clientId": "",
            "cleanSession": true,
            "retainedMessage": false,
            "ssl": false,
            "credentials": { "type": "anonymous" },
        })
    },
    schema: || schemars::schema_for!(MqttConfig).to_value(),
    fields: &[
        FieldSpec::template("/topicPattern"),
        FieldSpec::secret("/credentials/username", Accepts::Text),
        FieldSpec::secret("/credentials/password", Accepts::Text),
        FieldSpec::secret("/credentials/caCert", Accepts::Certificate),
        FieldSpec::secret("/credentials/cert", Accepts::Certificate),
        FieldSpec::secret("/credentials/privateKey", Accepts::PrivateKey),
    ],
    relations: &["Success", "Failure"],
    named_relations: false,
    build,
};

enum Credentials {
    Anonymous,
    Basic(UserPassword),
    /// Mutual TLS: CA, client certificate and key (FILE secrets or literal PEM).
    CertPem(ClientCert),
}

struct Settings {
    host: String,
    port: u16,
    client_id: String,
    clean_session: bool,
    retain: bool,
    ssl: bool,
    connect_timeout: Duration,
    credentials: Credentials,
}

struct Connection {
    client: AsyncClient,
    /// Polls the event loop; set `broken` and ends on the first error.
    poller: JoinHandle<()>,
    broken: Arc<AtomicBool>,
    /// One item per PUBACK from the broker. Publishes are serialized by the node's lock, so the
    /// next acknowledgement after a publish is that publish's.
    acks: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

struct MqttNode {
    secrets: Secrets,
    settings: Settings,
    topic: Template,
    connection: Reconnect<Connection>,
}

/// `mqtt` configuration (ThingsBoard's names).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct MqttConfig {
    /// The topic; a message template.
    #[schemars(required)]
    topic_pattern: Option<TemplateText>,
    /// The broker's host name.
    #[schemars(required)]
    host: Option<String>,
    /// The broker's port (default 1883).
    #[schemars(range(min = 1, max = 65535), extend("default" = 1883))]
    port: Option<u64>,
    /// Seconds to wait for the broker's CONNACK and PUBACK (default 10).
    #[schemars(extend("default" = 10))]
    connect_timeout_sec: Option<u64>,
    /// The MQTT client id (default `veil-<node name>`).
    client_id: Option<String>,
    /// MQTT clean session (default true).
    #[schemars(extend("default" = true))]
    clean_session: Option<bool>,
    /// Publish retained messages.
    #[schemars(extend("default" = false))]
    retained_message: Option<bool>,
    /// TLS (implied by `cert.PEM` credentials).
    #[schemars(extend("default" = false))]
    ssl: Option<bool>,
    /// How the client authenticates.
    credentials: Option<MqttCredentials>,
}

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn Node>, Vec<Problem>> {
    static KEYS: std::sync::OnceLock<Vec<(String, Vec<String>)>> = std::sync::OnceLock::new();
    let settings: MqttConfig =
        ctx.parse_with(&config, |doc| crate::credentials::settle::<MqttConfig>(doc, &KEYS))?;
    let mut problems = Vec::new();
    let broker = common::broker(ctx, &config, settings.host.as_deref(), settings.port, 1883, &mut problems);
    let topic = match &settings.topic_pattern {
        None => {
            problems.push(ctx.problem("/topicPattern", "is required"));
            None
        }
        Some(text) => ctx.bound(&config, text, &mut problems),
    };
    let credentials = match &settings.credentials {
        None | Some(MqttCredentials::Anonymous(_)) => Some(Credentials::Anonymous),
        Some(MqttCredentials::Basic(basic)) => {
            basic.bind(ctx, &config, &mut problems).map(Credentials::Basic)
        }
        Some(MqttCredentials::CertPem(cert)) => {
            cert.bind(ctx, &config, &mut problems).map(Credentials::CertPem)
        }
    };
    let client_id = settings.client_id.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| {
        format!("veil-{}", ctx.node_name.chars().filter(char::is_ascii_alphanumeric).collect::<String>())
    });
    let connect_timeout = Duration::from_secs(settings.connect_timeout_sec.unwrap_or(10).max(1));
    let ssl = settings.ssl.unwrap_or(false) || matches!(credentials, Some(Credentials::CertPem(_)));
    match (broker, credentials, topic) {
        (Some((host, port)), Some(credentials), Some(topic)) if problems.is_empty() => {
            Ok(Box::new(MqttNode {
                secrets: ctx.secrets(),
                settings: Settings {
                    host,
                    port,
                    client_id,
                    clean_session: settings.clean_session.unwrap_or(true),
                    retain: settings.retained_message.unwrap_or(false),
                    ssl,
                    connect_timeout,
                    credentials,
                },
                topic,
                connection: Reconnect::new(),
            }))
        }
        _ => Err(problems),
    }
}

impl MqttNode {
    /// The client key, decrypted with `credentials/password` when it is an encrypted PKCS#8 key.
    fn private_key(secrets: &Secrets, cert: &ClientCert) -> Result<Vec<u8>, NodeError> {
        common::private_key_pem(secrets, cert.password.as_ref(), common::pem(secrets, &cert.key)?)
    }

    /// Connects as `client_id` with the credentials `secrets` hold now and waits for the
    /// broker's answer.
    async fn open(&self, secrets: &Secrets, client_id: &str) -> Result<(AsyncClient, EventLoop), NodeError> {
        let s = &self.settings;
        let mut options = MqttOptions::new(client_id, &s.host, s.port);
        options.set_keep_alive(Duration::from_secs(30)).set_clean_session(s.clean_session);
        match &s.credentials {
            Credentials::Anonymous => {}
            Credentials::Basic(basic) => {
                let username = common::setting(secrets, &basic.username)?;
                let password = common::setting(secrets, &basic.password)?;
                options.set_credentials(username.expose_secret(), password.expose_secret());
            }
            Credentials::CertPem(cert) => {
                options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                    ca: common::pem(secrets, &cert.ca)?,
                    alpn: None,
                    client_auth: Some((common::pem(secrets, &cert.cert)?, Self::private_key(secrets, cert)?)),
                }));
            }
        }
        if s.ssl && !matches!(s.credentials, Credentials::CertPem(_)) {
            // The platform's trusted roots.
            options.set_transport(Transport::tls_with_config(TlsConfiguration::default()));
        }
        let (client, mut events) = AsyncClient::new(options, 64);
        let target = format!("{}:{}", s.host, s.port);
        let connected = tokio::time::timeout(s.connect_timeout, async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        return match ack.code {
                            ConnectReturnCode::Success => Ok(()),
                            code => Err(format!("the broker refused the connection ({code:?})")),
                        };
                    }
                    Ok(_) => {}
                    Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                        return Err(format!("the broker refused the connection ({code:?})"));
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        match connected {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(NodeError::new(format!("MQTT connection to {target} failed: {e}"))),
            Err(_) => return Err(NodeError::new(format!("MQTT connection to {target} timed out"))),
        }
        Ok((client, events))
    }

    /// Connects with the node's credentials of this moment and keeps the connection polled.
    async fn connect(&self) -> Result<Connection, NodeError> {
        let (client, mut events) = self.open(&self.secrets, &self.settings.client_id).await?;
        let target = format!("{}:{}", self.settings.host, self.settings.port);
        let broken = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&broken);
        let (ack_tx, acks) = tokio::sync::mpsc::unbounded_channel();
        let poller = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        let _ = ack_tx.send(());
                    }
                    // Sent at shutdown: the connection ends here, cleanly.
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(broker = %target, "MQTT connection lost: {e}");
                        flag.store(true, Ordering::SeqCst);
                        break;
                    }
                }
            }
        });
        Ok(Connection { client, poller, broken, acks })
    }

    async fn publish(&self, ctx: &NodeCtx<'_>, msg: &Msg) -> Result<(), NodeError> {
        let topic = ctx.render(&self.topic, msg)?;
        let payload = common::payload(msg);
        let mut connection = self.connection.lock(&self.secrets, |c| !c.broken.load(Ordering::SeqCst)).await;
        if let Some(old) = connection.retired.take() {
            let _ = old.client.disconnect().await;
        }
        let open = connection.get_or_connect(&self.secrets, self.connect()).await?;
        // Acknowledgements of earlier publishes that timed out must not confirm this one.
        while open.acks.try_recv().is_ok() {}
        let published =
            open.client.publish(topic.expose_secret(), QoS::AtLeastOnce, self.settings.retain, payload).await;
        let acked = match published {
            Ok(()) => tokio::time::timeout(self.settings.connect_timeout, open.acks.recv()).await,
            Err(e) => {
                connection.forget();
                return Err(NodeError::new(format!("MQTT publish failed: {e}")));
            }
        };
        match acked {
            Ok(Some(())) => Ok(()),
            // The poller ended (connection lost) or the broker did not acknowledge in time.
            _ => {
                connection.forget();
                Err(NodeError::new("MQTT publish was not acknowledged by the broker"))
            }
        }
    }
}

impl Node for MqttNode {
    fn process<'a>(&'a self, ctx: &'a NodeCtx<'a>, msg: Msg) -> BoxFuture<'a, NodeResult> {
        Box::pin(async move { common::pass_on(self.publish(ctx, &msg).await, msg) })
    }

    fn secret_changed(&self, _name: &str) {
        self.connection.invalidate();
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(mut open) = self.connection.take().await {
                // DISCONNECT goes out through the event loop, which then ends.
                if open.client.disconnect().await.is_ok() {
                    let _ = tokio::time::timeout(self.settings.connect_timeout, &mut open.poller).await;
                }
            }
        })
    }

    fn reconnects(&self) -> bool {
        true
    }

    fn probe<'a>(&'a self, secrets: &'a Secrets, _name: &'a str) -> BoxFuture<'a, Probe> {
        Box::pin(async move {
            // Its own client id: the broker would close the node's connection for a second one
            // under the same id.
            let client_id = format!("{}-probe", self.settings.client_id);
            match self.open(secrets, &client_id).await {
                Ok((client, mut events)) => {
                    let _ = client.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_secs(1), events.poll()).await;
                    Probe::Ok(format!(
                        "connected to {}:{} and authenticated",
                        self.settings.host, self.settings.port
                    ))
                }
                Err(e) => Probe::Failed(e.to_string()),
            }
        })
    }
}
