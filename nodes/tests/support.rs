//! What only the node tests share: running a message through a chain, and a fresh PKI for TLS
//! servers. The store, deploying and leak checks are the workspace kit's (`veil_tests`).

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair};
use serde_json::Value;
use veil_core::{ChainRuntime, Msg, TraceStep};

/// Runs one telemetry message from `device-1` through the chain.
pub(crate) async fn run(runtime: &ChainRuntime, data: Value) -> Vec<TraceStep> {
    let msg = Msg::new("POST_TELEMETRY_REQUEST", "device-1", data).with_metadata("deviceName", "device-1");
    runtime.process(msg).await
}

/// A CA with a server certificate (localhost, 127.0.0.1) and a client certificate, generated
/// fresh for each test.
pub(crate) struct Pki {
    pub(crate) ca: String,
    pub(crate) server_cert: String,
    pub(crate) server_key: String,
    pub(crate) client_cert: String,
    pub(crate) client_key: String,
}

/// Parameters with their own common name (rcgen's default name is the same for every certificate,
/// which makes a leaf look self-issued).
fn params(names: &[&str], common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params
}

pub(crate) fn new_pki() -> Pki {
    let mut ca_params = params(&[], "Veil test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = params(&["localhost", "127.0.0.1"], "localhost").signed_by(&server_key, &ca).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = params(&[], "veil-client").signed_by(&client_key, &ca).unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}
