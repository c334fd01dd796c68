//! `rabbitmq`: publishes messages to a RabbitMQ exchange (ThingsBoard's configuration names). The
//! connection is kept open with publisher confirms, so a message routes to `Success` only once the
//! broker has it; username and password may come from secrets, and a change reconnects.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use veil_core::{
    Accepts, BoxFuture, BuildCtx, CompiledConfig, FieldSpec, Msg, Node, NodeCtx, NodeDescriptor, NodeError,
    NodeResult, Problem, RenderCtx,
};
use veil_store::{Store, TenantId};

use crate::common;

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

/// A connection, its confirm-mode channel, and the versions of the secrets it was made with.
struct Open {
    connection: Connection,
    channel: Channel,
    versions: Vec<Option<i64>>,
}

struct RabbitMq {
    store: Store,
    tenant: TenantId,
    settings: Settings,
    config: CompiledConfig,
    open: Mutex<Option<Open>>,
    stale: AtomicBool,
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

fn build(ctx: &BuildCtx<'_>, config: CompiledConfig) -> Result<Box<dyn Node>, Vec<Problem>> {
    let mut problems = Vec::new();
    let plain = config.plain();
    let host = plain.get("host").and_then(Value::as_str).filter(|h| !h.trim().is_empty()).map(str::to_owned);
    if host.is_none() {
        problems.push(ctx.problem("/host", "is required (the broker's host name)"));
    }
    let port = match plain.get("port").map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok())) {
        None => 5672,
        Some(Some(p)) if p > 0 => p,
        Some(_) => {
            problems.push(ctx.problem("/port", "must be a port number 1..65535"));
            0
        }
    };
    for field in ["/username", "/password"] {
        if config.template(field).is_none() {
            problems.push(ctx.problem(field, "is required"));
        }
    }
    let props = match plain.get("messageProperties") {
        None | Some(Value::Null) => BasicProperties::default(),
        Some(Value::String(name)) => properties(name).unwrap_or_else(|| {
            problems.push(ctx.problem(
                "/messageProperties",
                format!("'{name}' is not one of BASIC, TEXT_PLAIN, MINIMAL_BASIC, MINIMAL_PERSISTENT_BASIC, PERSISTENT_BASIC, PERSISTENT_TEXT_PLAIN"),
            ));
            BasicProperties::default()
        }),
        Some(_) => {
            problems.push(ctx.problem("/messageProperties", "must be a string"));
            BasicProperties::default()
        }
    };
    let vhost = plain.get("virtualHost").and_then(Value::as_str).unwrap_or("/").to_owned();
    let timeout = Duration::from_millis(
        plain.get("connectionTimeout").and_then(Value::as_u64).unwrap_or(60_000).max(100),
    );
    match host {
        Some(host) if problems.is_empty() => Ok(Box::new(RabbitMq {
            store: ctx.store.clone(),
            tenant: ctx.tenant,
            settings: Settings { host, port, vhost, timeout, properties: props },
            config,
            open: Mutex::new(None),
            stale: AtomicBool::new(false),
        })),
        _ => Err(problems),
    }
}

impl RabbitMq {
    fn render(&self, pointer: &str) -> Result<String, NodeError> {
        let template =
            self.config.template(pointer).ok_or_else(|| NodeError::new(format!("{pointer}: missing")))?;
        Ok(RenderCtx::new(&self.store, self.tenant, None).render(template)?.expose_secret().to_owned())
    }

    /// Connects with the credentials of this moment (passed as a structure, never as URL text).
    async fn connect(&self) -> Result<Open, NodeError> {
        let versions = common::secret_versions(&self.store, self.tenant, &self.config);
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
        Ok(Open { connection, channel, versions })
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
        let mut open = self.open.lock().await;
        let stale = self.stale.swap(false, Ordering::SeqCst);
        let current = common::secret_versions(&self.store, self.tenant, &self.config);
        if stale
            || open.as_ref().is_some_and(|o| {
                !o.connection.status().connected() || !o.channel.status().connected() || o.versions != current
            })
        {
            if let Some(Open { connection, .. }) = open.take() {
                let _ =
                    tokio::time::timeout(self.settings.timeout, connection.close(200, "reconnecting".into()))
                        .await;
            }
        }
        if open.is_none() {
            *open = Some(self.connect().await?);
        }
        let channel = &open.as_ref().expect("connected above").channel;
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
                if let Some(Open { connection, .. }) = open.take() {
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
        self.stale.store(true, Ordering::SeqCst);
    }
}
