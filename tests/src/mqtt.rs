//! A mosquitto broker of the test's own: free ports, a password file, an anonymous listener to
//! watch what was published. The binary comes from `VEIL_TEST_MOSQUITTO` (set by `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::mpsc;

/// The mosquitto binary, from `VEIL_TEST_MOSQUITTO` (set by `.ci/run`).
fn mosquitto_binary() -> String {
    std::env::var("VEIL_TEST_MOSQUITTO")
        .expect("VEIL_TEST_MOSQUITTO must name the mosquitto binary (e.g. /usr/sbin/mosquitto)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A mosquitto broker of the test's own, on free ports, with a password file.
pub struct Broker {
    child: Child,
    dir: tempfile::TempDir,
    /// The password-protected (or TLS) listener.
    pub port: u16,
    /// An anonymous plain listener for the test's subscriber.
    pub watch_port: u16,
}

impl Broker {
    /// Starts mosquitto with `main_listener`'s configuration lines (given the broker's directory
    /// and port) for the main listener, plus an anonymous plain listener to watch with.
    pub fn start(main_listener: impl FnOnce(&Path, u16) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (port, watch_port) = (free_port(), free_port());
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "").unwrap();
        let config = format!(
            "per_listener_settings true\nuser root\npersistence false\nlog_dest file {}\n\
             {}\n\
             listener {watch_port} 127.0.0.1\nallow_anonymous true\n",
            dir.path().join("mosquitto.log").display(),
            main_listener(dir.path(), port)
        );
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let broker = Self { child, dir, port, watch_port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", watch_port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return broker;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mosquitto did not start");
    }

    /// A broker whose main listener requires a user from its password file (empty at first).
    pub fn with_passwords() -> Self {
        Self::start(|dir, port| {
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}",
                dir.join("passwd").display()
            )
        })
    }

    /// What the broker logged so far (connections and disconnections: `Client … disconnected.`
    /// for a clean DISCONNECT, `Client … closed its connection.` for a dropped one).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Its password file.
    pub fn passwd(&self) -> PathBuf {
        self.dir.path().join("passwd")
    }

    /// Sets a user's password and makes the running broker reload the file.
    pub fn set_password(&self, user: &str, password: &str) {
        let status = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(self.passwd())
            .args([user, password])
            .status()
            .unwrap();
        assert!(status.success());
        let status = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Subscribes to `topic` on the anonymous listener; received payloads arrive on the channel.
    pub async fn watch(&self, topic: &str) -> mpsc::UnboundedReceiver<(String, Value)> {
        let mut options =
            MqttOptions::new(format!("watcher-{}", self.watch_port), "127.0.0.1", self.watch_port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut events) = AsyncClient::new(options, 16);
        client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _client = client;
            let mut ready = Some(ready_tx);
            while let Ok(event) = events.poll().await {
                match event {
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Event::Incoming(Packet::Publish(p)) => {
                        let _ = tx.send((
                            p.topic.clone(),
                            serde_json::from_slice(&p.payload).unwrap_or(Value::Null),
                        ));
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), ready_rx).await.unwrap().unwrap();
        rx
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
