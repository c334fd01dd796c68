//! TLS for tests: a fresh PKI per test, and an HTTPS service on loopback that requires a client
//! certificate and records which one each connection presented.

use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A CA with a server certificate (localhost, 127.0.0.1) and a client certificate, generated
/// fresh for each test.
pub struct Pki {
    /// The CA's certificate (PEM).
    pub ca: String,
    /// The server's certificate.
    pub server_cert: String,
    /// The server's key.
    pub server_key: String,
    /// The client's certificate.
    pub client_cert: String,
    /// The client's key (PKCS#8).
    pub client_key: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// Parameters with their own common name (rcgen's default name is the same for every
/// certificate, which makes a leaf look self-issued).
fn params(names: &[&str], common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params
}

impl Pki {
    /// A new CA, server and client.
    pub fn new() -> Self {
        let mut ca_params = params(&[], "Veil test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server =
            params(&["localhost", "127.0.0.1"], "localhost").signed_by(&server_key, &issuer).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = params(&[], "veil-client").signed_by(&client_key, &issuer).unwrap();
        Self {
            ca: issuer.pem(),
            server_cert: server.pem(),
            server_key: server_key.serialize_pem(),
            client_cert: client.pem(),
            client_key: client_key.serialize_pem(),
            issuer,
        }
    }

    /// Another certificate for the key `key_pem` (PKCS#8), signed by this CA.
    pub fn certify(&self, key_pem: &str, common_name: &str) -> String {
        let key = KeyPair::from_pem(key_pem).unwrap();
        params(&[], common_name).signed_by(&key, &self.issuer).unwrap().pem()
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// What a [`MutualTls`] service saw.
#[derive(Default)]
pub struct Handshakes {
    /// Handshakes refused (a client certificate from a CA the service does not trust, or none).
    pub refused: usize,
    /// The leaf certificate (DER) each accepted connection presented, in order.
    pub clients: Vec<Vec<u8>>,
}

/// A TLS listener for `axum::serve` that requires a client certificate signed by one of its CAs.
pub struct MutualTls {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    seen: Arc<Mutex<Handshakes>>,
}

impl MutualTls {
    /// Listens on a free loopback port with `pki`'s server certificate, trusting client
    /// certificates signed by any of `client_cas` (PEM).
    pub async fn bind(pki: &Pki, client_cas: &[&str]) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        for ca in client_cas {
            roots.add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap()).unwrap();
        }
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap();
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(pki.server_cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap(),
            )
            .unwrap();
        Self {
            tcp: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
            seen: Arc::default(),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.tcp.local_addr().unwrap().port()
    }

    /// What it saw so far (shared: read it after handing the listener to `axum::serve`).
    pub fn seen(&self) -> Arc<Mutex<Handshakes>> {
        Arc::clone(&self.seen)
    }
}

/// The DER of the first certificate in `pem`.
pub fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

impl axum::serve::Listener for MutualTls {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else { continue };
            match self.acceptor.accept(stream).await {
                Ok(tls) => {
                    let leaf =
                        tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
                    self.seen.lock().unwrap().clients.extend(leaf);
                    return (tls, addr);
                }
                Err(_) => self.seen.lock().unwrap().refused += 1,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
