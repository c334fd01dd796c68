//! Pieces the node files share: reading compiled settings, PEM material, payloads, results.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};

use veil_core::{
    BuildCtx, CompiledConfig, Failed, Msg, NodeError, NodeResult, Problem, Secrets, Template, relation,
};

/// A connection setting rendered without a message: the credentials of this moment.
pub(crate) fn setting(secrets: &Secrets, template: &Template) -> Result<SecretString, NodeError> {
    Ok(secrets.render(template, None)?.into_owned())
}

/// A broker's `host` and `port` (`default_port` when absent), checked at save: the host is a
/// plain name or IP address (exactly what is checked against allowed destinations is what is
/// connected to), the port is 1..65535, and every secret of the configuration may go there (the
/// broker gets the credentials). `None` when one is wrong; the problems say which.
pub(crate) fn broker(
    ctx: &BuildCtx<'_>,
    config: &CompiledConfig,
    host: Option<&str>,
    port: Option<u64>,
    default_port: u16,
    problems: &mut Vec<Problem>,
) -> Option<(String, u16)> {
    let host = host.filter(|h| !h.trim().is_empty());
    match host {
        None => problems.push(ctx.problem("/host", "is required (the broker's host name)")),
        Some(h) if !veil_core::is_plain_host(h) => problems.push(ctx.problem(
            "/host",
            format!("'{h}' is not a host name or IP address (no spaces, port, path or user info; the port is /port)"),
        )),
        Some(_) => {}
    }
    let port = match port.map(|p| u16::try_from(p).ok()) {
        None => Some(default_port),
        Some(Some(p)) if p > 0 => Some(p),
        Some(_) => {
            problems.push(ctx.problem("/port", "must be a port number 1..65535"));
            None
        }
    };
    let (host, port) = (host.filter(|h| veil_core::is_plain_host(h))?, port?);
    let names = config.secret_uses().iter().map(|u| u.name.as_str());
    problems.extend(ctx.check_destination("/host", names, host, port));
    Some((host.to_owned(), port))
}

/// PEM bytes of a FILE secret field, or of literal PEM text.
pub(crate) fn pem(secrets: &Secrets, template: &Template) -> Result<Vec<u8>, NodeError> {
    match template.single_secret() {
        Some(name) => Ok(secrets.resolve(name)?.expose_bytes().to_vec()),
        None => Ok(secrets.render(template, None)?.expose_secret().as_bytes().to_vec()),
    }
}

/// The message data as a payload: strings as they are, anything else as JSON. Sealed values
/// show as `***` (only a secret-capable field opens them).
pub(crate) fn payload(msg: &Msg) -> Vec<u8> {
    let text = match &msg.data {
        Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
        other => std::borrow::Cow::Owned(other.to_string()),
    };
    veil_core::mask_sealed(&text).into_owned().into_bytes()
}

/// `Success` with the message when the node's work succeeded, else `Failure`.
pub(crate) fn pass_on(result: Result<(), NodeError>, msg: Msg) -> NodeResult {
    match result {
        Ok(()) => Ok(vec![(relation::SUCCESS.into(), msg)]),
        Err(e) => Err(Failed::new(msg, e)),
    }
}

/// A client private key as PEM rustls can load: an `ENCRYPTED PRIVATE KEY` (PKCS#8) is decrypted
/// with the credentials' `password` (rendered only then); other keys pass through unchanged.
pub(crate) fn private_key_pem(
    secrets: &Secrets,
    password: Option<&Template>,
    pem: Vec<u8>,
) -> Result<Vec<u8>, NodeError> {
    let text = std::str::from_utf8(&pem).map_err(|_| NodeError::new("privateKey: not PEM text"))?;
    if !text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Ok(pem);
    }
    let password = password
        .ok_or_else(|| NodeError::new("privateKey is encrypted: set credentials/password to its password"))?;
    let password = secrets.render(password, None)?;
    let password = password.expose_secret();
    let (_, document) = pkcs8::SecretDocument::from_pem(text)
        .map_err(|_| NodeError::new("privateKey: not a valid PEM document"))?;
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
        .map_err(|_| NodeError::new("privateKey: not an encrypted PKCS#8 key"))?;
    let key = encrypted
        .decrypt(password.as_bytes())
        .map_err(|_| NodeError::new("privateKey: the password does not decrypt it"))?;
    let pem = key
        .to_pem("PRIVATE KEY", pkcs8::LineEnding::LF)
        .map_err(|_| NodeError::new("privateKey: cannot re-encode the decrypted key"))?;
    Ok(pem.as_bytes().to_vec())
}

/// A connection (or client) made with the secrets of some moment, for the nodes that keep one:
/// `mqtt`, `rabbitmq`, and `rest_api_call`'s mutual-TLS client. It is made again when a secret it
/// was made with changed — its versions differ from the store's now, which notices a rotation as
/// soon as it commits, or a change event said so — or when it broke.
pub(crate) struct Reconnect<C> {
    slot: tokio::sync::Mutex<Option<(C, Vec<Option<i64>>)>>,
    stale: AtomicBool,
}

/// The locked slot of a [`Reconnect`]: empty when the caller must connect; `retired` is a
/// connection just set aside, for the caller to close politely.
pub(crate) struct Locked<'a, C> {
    slot: tokio::sync::MutexGuard<'a, Option<(C, Vec<Option<i64>>)>>,
    pub(crate) retired: Option<C>,
}

impl<C> Reconnect<C> {
    pub(crate) fn new() -> Self {
        Self { slot: tokio::sync::Mutex::new(None), stale: AtomicBool::new(false) }
    }

    /// A secret it uses changed: the next use connects again.
    pub(crate) fn invalidate(&self) {
        self.stale.store(true, Ordering::SeqCst);
    }

    /// Takes the connection out (the node is shutting down), waiting for a use in progress.
    pub(crate) async fn take(&self) -> Option<C> {
        self.slot.lock().await.take().map(|(c, _)| c)
    }

    /// Locks the slot, setting aside a connection that is out of date or not `usable`.
    pub(crate) async fn lock(&self, secrets: &Secrets, usable: impl Fn(&C) -> bool) -> Locked<'_, C> {
        let mut slot = self.slot.lock().await;
        let stale = self.stale.swap(false, Ordering::SeqCst);
        let outdated =
            slot.as_ref().is_some_and(|(c, versions)| stale || !usable(c) || *versions != secrets.versions());
        let retired = if outdated { slot.take().map(|(c, _)| c) } else { None };
        Locked { slot, retired }
    }
}

impl<C> Locked<'_, C> {
    /// The connection, made with `connect` (and the versions of this moment) when there is none.
    pub(crate) async fn get_or_connect<F>(
        &mut self,
        secrets: &Secrets,
        connect: F,
    ) -> Result<&mut C, NodeError>
    where
        F: std::future::Future<Output = Result<C, NodeError>>,
    {
        if self.slot.is_none() {
            // The versions before connecting: a change during the connect shows at the next use.
            let versions = secrets.versions();
            *self.slot = Some((connect.await?, versions));
        }
        Ok(&mut self.slot.as_mut().expect("connected above").0)
    }

    /// Drops the connection (a use failed): the next use connects again.
    pub(crate) fn forget(&mut self) -> Option<C> {
        self.slot.take().map(|(c, _)| c)
    }
}

/// An error with its `source()` chain, each cause once: `client error
/// (Connect): tcp connect error: Connection refused (os error 111)`. A cause whose text its
/// parent already shows is skipped. The caller makes sure no cause holds a URL.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// Every error in the chain, including the error an `io::Error` wraps (which `io::Error::source`
/// skips: it returns the wrapped error's source).
pub(crate) fn causes<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> Vec<&'e (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        out.push(e);
        // `io::Error::other(io::Error::new(kind, rustls::Error))` nests (hyper-rustls does).
        let mut wrapped = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        while let Some(inner) = wrapped {
            out.push(inner);
            wrapped = inner.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        }
        next = e.source();
    }
    out
}

/// The certificates of a PEM text (a CA bundle may hold several). Refused when it holds none or is
/// not valid PEM; the message never quotes the content.
pub(crate) fn pem_certificates(
    pem: &[u8],
    field: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, NodeError> {
    use rustls::pki_types::pem::PemObject as _;
    let certs =
        rustls::pki_types::CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(
            |_| NodeError::new(format!("{field}: not valid PEM (a BEGIN CERTIFICATE block is damaged)")),
        )?;
    if certs.is_empty() {
        return Err(NodeError::new(format!("{field}: no PEM certificate found")));
    }
    Ok(certs)
}

/// Whether a DER certificate is X.509 v1: its `tbsCertificate` has no `[0] version` field.
pub(crate) fn is_x509_v1(der: &[u8]) -> bool {
    /// The content of the DER element at the start of `bytes` and what follows it.
    fn element(bytes: &[u8]) -> Option<(u8, &[u8])> {
        let (&tag, rest) = bytes.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            (rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), &rest[n..])
        };
        Some((tag, rest.get(..len)?))
    }
    let Some((0x30, certificate)) = element(der) else { return false };
    let Some((0x30, tbs)) = element(certificate) else { return false };
    tbs.first().is_some_and(|&tag| tag != 0xa0)
}

/// A host name that did not resolve: the resolver's error, typed so a send's failure is told by
/// its kind rather than by a message's words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DnsFailed(std::io::Error);

/// The addresses of `host` from the system's resolver (as hyper's default asks it).
pub(crate) async fn lookup(host: &str) -> Result<std::vec::IntoIter<std::net::SocketAddr>, DnsFailed> {
    let addrs = tokio::net::lookup_host((host, 0)).await.map_err(DnsFailed)?;
    Ok(addrs.collect::<Vec<_>>().into_iter())
}
