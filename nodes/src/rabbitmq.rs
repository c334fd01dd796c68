//! `rabbitmq`: publishes messages to a RabbitMQ exchange (ThingsBoard's configuration names). The
//! connection is kept open with publisher confirms, so a message routes to `Success` only once the
//! broker has it; username and password may come from secrets, and a change reconnects.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use veil_core::{
    Accepts, BoxFuture, BuildCtx, CompiledConfig, FieldSpec, Msg, Node, NodeCtx, NodeDescriptor, NodeError,
    NodeResult, Problem, Secrets,
};

use crate::common::{self, Reconnect};

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
    fields: &[
        FieldSpec::template("/exchangeNamePattern"),
        FieldSpec::template("/routingKeyPattern"),
        FieldSpec::secret("/username", Accepts::Text),
        FieldSpec::secret("/password", Accepts::Text),
    ],
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
    config: CompiledConfig,
    open: Reconnect<Open>,
}

/// ThingsBoard's predefined message properties.
fn properties(name: &str) -> Option<BasicProperties> {
    let text = || "text/plain".into();
    let octets = || "application/octet-stream".into();
    Some(match name {
        "BASIC" => {
            BasicProperties::default().with_content_type(octets()).with_delivery_mode(1).with_priority(0)
        }
        "TEXT_PLAIN" => {
            BasicProperties::default().with_content_type(text()).with_delivery_mode(1).with_priority(0)
        }
        "MINIMAL_BASIC" => BasicProperties::default().with_delivery_mode(1),
        "MINIMAL_PERSISTENT_BASIC" => BasicProperties::default().with_delivery_mode(2),
        "PERSISTENT_BASIC" => {
            BasicProperties::default().with_content_type(octets()).with_delivery_mode(2).with_priority(0)
        }
        "PERSISTENT_TEXT_PLAIN" => {
            BasicProperties::default().with_content_type(text()).with_delivery_mode(2).with_priority(0)
        }
        _ => return None,
    })
}

/// `rabbitmq` configuration (ThingsBoard's names).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RabbitMqConfig {
    #[allow(dead_code, reason = "a template: read through the compiled configuration")]
    /// The exchange; a message template (empty: the default exchange).
    exchange_name_pattern: Option<String>,
    #[allow(dead_code, reason = "a template: read through the compiled configuration")]
    /// The routing key; a message template.
    routing_key_pattern: Option<String>,
    /// BASIC, TEXT_PLAIN, MINIMAL_BASIC, MINIMAL_PERSISTENT_BASIC, PERSISTENT_BASIC or
    /// PERSISTENT_TEXT_PLAIN (absent: none).
    message_properties: Option<String>,
    /// The broker's host name.
    host: Option<String>,
    /// The broker's port (default 5672).
    port: Option<u64>,
    /// The virtual host (default `/`).
    virtual_host: Option<String>,
    #[allow(dead_code, reason = "a template: read through the compiled configuration")]
    /// The user name (TEXT secret allowed).
    username: Option<String>,
    #[allow(dead_code, reason = "a template: read through the compiled configuration")]
    /// The password (TEXT secret allowed).
    password: Option<String>,
    /// Milliseconds to connect and to wait for a publisher confirm (default 60000, at least 100).
    connection_timeout: Option<u64>,
}

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn Node>, Vec<Problem>> {
    let settings: RabbitMqConfig = ctx.parse(&config)?;
    let mut problems = Vec::new();
    let broker = common::broker(ctx, &config, settings.host.as_deref(), settings.port, 5672, &mut problems);
    for field in ["/username", "/password"] {
        if config.filled(field).is_none() {
            let empty = if config.template(field).is_some() { ": it is empty" } else { "" };
            problems.push(ctx.problem(field, format!("is required{empty}")));
        }
    }
    let props = match settings.message_properties.as_deref() {
        None => BasicProperties::default(),
        Some(name) => properties(name).unwrap_or_else(|| {
            problems.push(ctx.problem(
                "/messageProperties",
                format!("'{name}' is not one of BASIC, TEXT_PLAIN, MINIMAL_BASIC, MINIMAL_PERSISTENT_BASIC, PERSISTENT_BASIC, PERSISTENT_TEXT_PLAIN"),
            ));
            BasicProperties::default()
        }),
    };
    let vhost = settings.virtual_host.unwrap_or_else(|| "/".to_owned());
    let timeout = Duration::from_millis(settings.connection_timeout.unwrap_or(60_000).max(100));
    match broker {
        Some((host, port)) if problems.is_empty() => Ok(Box::new(RabbitMq {
            secrets: ctx.secrets(),
            settings: Settings { host, port, vhost, timeout, properties: props },
            config,
            open: Reconnect::new(),
        })),
        _ => Err(problems),
    }
}

impl RabbitMq {
    fn render(&self, pointer: &str) -> Result<String, NodeError> {
        let template =
            self.config.template(pointer).ok_or_else(|| NodeError::new(format!("{pointer}: missing")))?;
        Ok(self.secrets.render(template, None)?.expose_secret().to_owned())
    }

    /// Connects with the credentials of this moment (passed as a structure, never as URL text).
    async fn connect(&self) -> Result<Open, NodeError> {
        let s = &self.settings;
        let uri = AMQPUri {
            scheme: AMQPScheme::AMQP,
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: self.render("/username")?,
                    password: self.render("/password")?,
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
        let render = |pointer: &str| -> Result<String, NodeError> {
            match self.config.template(pointer) {
                Some(t) => Ok(ctx.render(t, msg)?.expose_secret().to_owned()),
                None => Ok(String::new()),
            }
        };
        let (exchange, routing_key) = (render("/exchangeNamePattern")?, render("/routingKeyPattern")?);
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
}
