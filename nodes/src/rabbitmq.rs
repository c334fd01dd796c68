//! `rabbitmq`: publishes messages to a RabbitMQ exchange (ThingsBoard's configuration names). The
//! connection is kept open with publisher confirms, so a message routes to `Success` only once the
//! broker has it; username and password may come from secrets, and a change reconnects.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use schemars::JsonSchema;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use veil_core::{
    Accepts, BoxFuture, BuildCtx, CompiledConfig, FieldSpec, Msg, Node, NodeCtx, NodeDescriptor, NodeError,
    NodeResult, Probe, Problem, Secrets, Template, TemplateText,
};

use crate::common::{self, Reconnect};
use crate::credentials::UserPassword;

pub(crate) static DESCRIPTOR: NodeDescriptor = NodeDescriptor {
    type_name: "rabbitmq",
    description: "Publishes each message to a RabbitMQ exchange; username and password may come from secrets",
    default_config: || {
        json!({
            "exchangeNamePattern": "",
            "routingKeyPattern": "",
            "messageProperties": null,
            "host": "localhost",
            "port": 5672,
            "virtualHost": "/",
            "username": "guest",
            "password": "guest",
            "connectionTimeout": 60000,
        })
    },
    schema: || schemars::schema_for!(RabbitMqConfig).to_value(),
    fields: &[
        FieldSpec::template("/exchangeNamePattern"),
        FieldSpec::template("/routingKeyPattern"),
        FieldSpec::secret("/username", Accepts::Text),
        FieldSpec::secret("/password", Accepts::Text),
    ],
    relations: &["Success", "Failure"],
    named_relations: false,
    build,
};

struct Settings {
    host: String,
    port: u16,
    vhost: String,
    timeout: Duration,
    properties: BasicProperties,
}

/// A connection and its confirm-mode channel.
struct Open {
    connection: Connection,
    channel: Channel,
}

struct RabbitMq {
    secrets: Secrets,
    settings: Settings,
    /// `exchangeNamePattern` (absent: the default exchange).
    exchange: Option<Template>,
    /// `routingKeyPattern` (absent: empty).
    routing_key: Option<Template>,
    /// The user name and password (TEXT secrets allowed).
    login: UserPassword,
    open: Reconnect<Open>,
}

/// `rabbitmq` configuration (ThingsBoard's names).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RabbitMqConfig {
    /// The exchange; a message template (empty or absent: the default exchange).
    exchange_name_pattern: Option<TemplateText>,
    /// The routing key; a message template (absent: empty).
    routing_key_pattern: Option<TemplateText>,
    /// ThingsBoard's predefined message properties (absent: none).
    #[schemars(with = "Option<MessageProperties>")]
    message_properties: Option<String>,
    /// The broker's host name.
    #[schemars(required)]
    host: Option<String>,
    /// The broker's port (default 5672).
    #[schemars(range(min = 1, max = 65535), extend("default" = 5672))]
    port: Option<u64>,
    /// The virtual host (default `/`).
    #[schemars(extend("default" = "/"))]
    virtual_host: Option<String>,
    /// The user name (TEXT secret allowed).
    #[schemars(required)]
    username: Option<TemplateText>,
    /// The password (TEXT secret allowed).
    #[schemars(required)]
    password: Option<TemplateText>,
    /// Milliseconds to connect and to wait for a publisher confirm (default 60000, at least 100).
    #[schemars(extend("default" = 60000))]
    connection_timeout: Option<u64>,
}

/// ThingsBoard's predefined message properties, by name.
#[derive(Debug, Clone, Copy, JsonSchema)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms, reason = "the names as ThingsBoard spells them")]
enum MessageProperties {
    BASIC,
    TEXT_PLAIN,
    MINIMAL_BASIC,
    MINIMAL_PERSISTENT_BASIC,
    PERSISTENT_BASIC,
    PERSISTENT_TEXT_PLAIN,
}

impl MessageProperties {
    const ALL: [(&'static str, Self); 6] = [
        ("BASIC", Self::BASIC),
        ("TEXT_PLAIN", Self::TEXT_PLAIN),
        ("MINIMAL_BASIC", Self::MINIMAL_BASIC),
        ("MINIMAL_PERSISTENT_BASIC", Self::MINIMAL_PERSISTENT_BASIC),
        ("PERSISTENT_BASIC", Self::PERSISTENT_BASIC),
        ("PERSISTENT_TEXT_PLAIN", Self::PERSISTENT_TEXT_PLAIN),
    ];

    fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    /// The AMQP properties they stand for.
    fn properties(self) -> BasicProperties {
        let text = || "text/plain".into();
        let octets = || "application/octet-stream".into();
        let basic = BasicProperties::default();
        match self {
            Self::BASIC => basic.with_content_type(octets()).with_delivery_mode(1).with_priority(0),
            Self::TEXT_PLAIN => basic.with_content_type(text()).with_delivery_mode(1).with_priority(0),
            Self::MINIMAL_BASIC => basic.with_delivery_mode(1),
            Self::MINIMAL_PERSISTENT_BASIC => basic.with_delivery_mode(2),
            Self::PERSISTENT_BASIC => {
                basic.with_content_type(octets()).with_delivery_mode(2).with_priority(0)
            }
            Self::PERSISTENT_TEXT_PLAIN => {
                basic.with_content_type(text()).with_delivery_mode(2).with_priority(0)
            }
        }
    }
}

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn Node>, Vec<Problem>> {
    let settings: RabbitMqConfig = ctx.parse(&config)?;
    let mut problems = Vec::new();
    let broker = common::broker(ctx, &config, settings.host.as_deref(), settings.port, 5672, &mut problems);
    let login = |field: &str, value: Option<&TemplateText>, problems: &mut Vec<Problem>| {
        match veil_core::required_field(value, "") {
            Ok(()) => ctx.bound(&config, value?, problems),
            Err(message) => {
                problems.push(ctx.problem(field, message));
                None
            }
        }
    };
    let username = login("/username", settings.username.as_ref(), &mut problems);
    let password = login("/password", settings.password.as_ref(), &mut problems);
    let props = match settings.message_properties.as_deref() {
        None => BasicProperties::default(),
        Some(name) => {
            MessageProperties::named(name).map(MessageProperties::properties).unwrap_or_else(|| {
                let names: Vec<&str> = MessageProperties::ALL.iter().map(|(n, _)| *n).collect();
                problems.push(
                    ctx.problem("/messageProperties", format!("'{name}' is not one of {}", names.join(", "))),
                );
                BasicProperties::default()
            })
        }
    };
    // The templates of the two message fields (absent: empty).
    let mut bound =
        |text: &Option<TemplateText>| text.as_ref().and_then(|text| ctx.bound(&config, text, &mut problems));
    let exchange = bound(&settings.exchange_name_pattern);
    let routing_key = bound(&settings.routing_key_pattern);
    let vhost = settings.virtual_host.unwrap_or_else(|| "/".to_owned());
    let timeout = Duration::from_millis(settings.connection_timeout.unwrap_or(60_000).max(100));
    match (broker, username, password) {
        (Some((host, port)), Some(username), Some(password)) if problems.is_empty() => {
            Ok(Box::new(RabbitMq {
                secrets: ctx.secrets(),
                settings: Settings { host, port, vhost, timeout, properties: props },
                exchange,
                routing_key,
                login: UserPassword { username, password },
                open: Reconnect::new(),
            }))
        }
        _ => Err(problems),
    }
}

impl RabbitMq {
    /// Connects with the node's credentials of this moment.
    async fn connect(&self) -> Result<Open, NodeError> {
        self.connect_with(&self.secrets).await
    }

    /// Connects with the credentials `secrets` hold now (passed as a structure, never as URL text).
    async fn connect_with(&self, secrets: &Secrets) -> Result<Open, NodeError> {
        let render = |template: &Template| -> Result<String, NodeError> {
            Ok(secrets.render(template, None)?.expose_secret().to_owned())
        };
        let s = &self.settings;
        let uri = AMQPUri {
            scheme: AMQPScheme::AMQP,
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: render(&self.login.username)?,
                    password: render(&self.login.password)?,
                },
                host: s.host.clone(),
                port: s.port,
            },
            vhost: s.vhost.clone(),
            query: AMQPQueryString {
                connection_timeout: Some(s.timeout.as_millis() as u64),
                ..Default::default()
            },
        };
        let target = format!("{}:{}{}", s.host, s.port, if s.vhost.starts_with('/') { "" } else { "/" });
        let fail = |e: lapin::Error| {
            NodeError::new(format!("RabbitMQ connection to {target}{} failed: {e}", s.vhost))
        };
        let connection =
            tokio::time::timeout(s.timeout, Connection::connect_uri(uri, ConnectionProperties::default()))
                .await
                .map_err(|_| NodeError::new(format!("RabbitMQ connection to {target}{} timed out", s.vhost)))?
                .map_err(fail)?;
        let channel = connection.create_channel().await.map_err(fail)?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(fail)?;
        Ok(Open { connection, channel })
    }

    async fn publish(&self, ctx: &NodeCtx<'_>, msg: &Msg) -> Result<(), NodeError> {
        let render = |template: &Option<Template>| -> Result<String, NodeError> {
            match template {
                Some(t) => Ok(ctx.render(t, msg)?.expose_secret().to_owned()),
                None => Ok(String::new()),
            }
        };
        let (exchange, routing_key) = (render(&self.exchange)?, render(&self.routing_key)?);
        let payload = common::payload(msg);
        let usable = |o: &Open| o.connection.status().connected() && o.channel.status().connected();
        let mut open = self.open.lock(&self.secrets, usable).await;
        if let Some(Open { connection, .. }) = open.retired.take() {
            let _ = tokio::time::timeout(self.settings.timeout, connection.close(200, "reconnecting".into()))
                .await;
        }
        let channel = &open.get_or_connect(&self.secrets, self.connect()).await?.channel;
        let mut headers = FieldTable::default();
        headers.insert("originator".into(), AMQPValue::LongString(msg.originator.clone().into()));
        let properties = self.settings.properties.clone().with_headers(headers);
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                &payload,
                properties,
            )
            .await;
        let result = match confirm {
            Ok(confirm) => tokio::time::timeout(self.settings.timeout, confirm).await.unwrap_or_else(|_| {
                Err(lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(
                    lapin::ConnectionState::Error,
                )))
            }),
            Err(e) => Err(e),
        };
        match result {
            Ok(Confirmation::Nack(_)) => Err(NodeError::new("RabbitMQ did not accept the message (nack)")),
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(Open { connection, .. }) = open.forget() {
                    let _ = tokio::time::timeout(
                        self.settings.timeout,
                        connection.close(200, "publish failed".into()),
                    )
                    .await;
                }
                Err(NodeError::new(format!("RabbitMQ publish failed: {e}")))
            }
        }
    }
}

impl Node for RabbitMq {
    fn process<'a>(&'a self, ctx: &'a NodeCtx<'a>, msg: Msg) -> BoxFuture<'a, NodeResult> {
        Box::pin(async move { common::pass_on(self.publish(ctx, &msg).await, msg) })
    }

    fn secret_changed(&self, _name: &str) {
        self.open.invalidate();
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(Open { connection, .. }) = self.open.take().await {
                let closing = connection.close(200, "server shutting down".into());
                let _ = tokio::time::timeout(self.settings.timeout, closing).await;
            }
        })
    }

    fn reconnects(&self) -> bool {
        true
    }

    fn probe<'a>(&'a self, secrets: &'a Secrets, _name: &'a str) -> BoxFuture<'a, Probe> {
        Box::pin(async move {
            match self.connect_with(secrets).await {
                Ok(Open { connection, .. }) => {
                    let _ =
                        tokio::time::timeout(self.settings.timeout, connection.close(200, "probe".into()))
                            .await;
                    let s = &self.settings;
                    Probe::Ok(format!(
                        "connected to {}:{} (vhost {}) and authenticated",
                        s.host, s.port, s.vhost
                    ))
                }
                Err(e) => Probe::Failed(e.to_string()),
            }
        })
    }
}
