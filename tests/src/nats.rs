//! [`Jetstream`]: a JetStream stream of the test's own on the NATS server [`NATS_ENV`] names,
//! deleted (with its dead letters and partition leases) when the test ends.

/// The environment variable with the NATS server's URL (`nats://127.0.0.1:4222`).
pub const NATS_ENV: &str = "VEIL_TEST_NATS";

/// A stream name of this test's own for `veil serve --queue-stream`; its streams go at drop.
pub struct Jetstream {
    /// The NATS server's URL.
    pub url: String,
    /// The stream's name (`T<random>`).
    pub name: String,
}

impl Jetstream {
    /// A fresh name on the server of [`NATS_ENV`] (the test panics without it).
    pub fn new() -> Self {
        let url = std::env::var(NATS_ENV).unwrap_or_else(|_| panic!("{NATS_ENV} is not set"));
        let name = format!("T{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Self { url, name }
    }

    /// The flags of `veil serve` that use it.
    pub fn args(&self) -> [String; 4] {
        ["--queue".into(), self.url.clone(), "--queue-stream".into(), self.name.clone()]
    }

    /// Publishes `payload` to `subject` and waits for the stream's acknowledgement (what a
    /// message someone else put into the stream looks like).
    pub async fn publish(&self, subject: &str, payload: &str) {
        let client = async_nats::connect(self.url.as_str()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.publish(subject.to_owned(), payload.to_owned().into()).await.unwrap().await.unwrap();
    }
}

impl Default for Jetstream {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Jetstream {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop may run inside the test's runtime: the clean-up gets a thread and a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(client) = async_nats::connect(url.as_str()).await {
                    let js = async_nats::jetstream::new(client);
                    let _ = js.delete_stream(&name).await;
                    let _ = js.delete_stream(format!("{name}_DEAD")).await;
                    let _ = js.delete_key_value(format!("{name}_LEASES")).await;
                }
            });
        })
        .join();
    }
}
