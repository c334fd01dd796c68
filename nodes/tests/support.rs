//! What only the node tests share: running a message through a chain (and the kit's fresh PKI for
//! TLS servers). The store, deploying and leak checks are the workspace kit's (`veil_tests`).

use serde_json::Value;
use veil_core::{ChainRuntime, Msg, TraceStep};

/// Runs one telemetry message from `device-1` through the chain.
pub(crate) async fn run(runtime: &ChainRuntime, data: Value) -> Vec<TraceStep> {
    let msg = Msg::new("POST_TELEMETRY_REQUEST", "device-1", data).with_metadata("deviceName", "device-1");
    runtime.process(msg).await
}

pub(crate) use veil_tests::tls::Pki;

/// A fresh CA with server and client certificates.
pub(crate) fn new_pki() -> Pki {
    Pki::new()
}
