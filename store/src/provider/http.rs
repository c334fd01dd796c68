//! The HTTP client of the providers that are web services (AWS Secrets Manager, Vault): rustls,
//! no redirects (a redirect could carry a credential elsewhere), a timeout per request, and
//! answers read up to [`MAX_ANSWER_BYTES`] only.

use super::{DEFAULT_TIMEOUT, FetchError, MAX_ANSWER_BYTES};

/// A client for one provider.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DEFAULT_TIMEOUT)
        .connect_timeout(DEFAULT_TIMEOUT)
        .build()
        .expect("a client with rustls and no redirects builds")
}

/// An answer: its status and body (at most [`MAX_ANSWER_BYTES`]).
pub(crate) struct Answer {
    pub(crate) status: reqwest::StatusCode,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, or a failure naming `what` was asked.
    pub(crate) fn json(&self, what: &str) -> Result<serde_json::Value, FetchError> {
        serde_json::from_slice(&self.body).map_err(|_| {
            FetchError::Failed(format!("{what}: the answer (HTTP {}) is not JSON", self.status.as_u16()))
        })
    }
}

/// Sends `request` and reads its answer, refusing one larger than [`MAX_ANSWER_BYTES`]. `what`
/// names the request in errors (`AWS Secrets Manager at 127.0.0.1:4566`).
pub(crate) async fn send(request: reqwest::RequestBuilder, what: &str) -> Result<Answer, FetchError> {
    let mut response =
        request.send().await.map_err(|e| FetchError::Failed(format!("{what}: {}", reason(&e))))?;
    let status = response.status();
    if response.content_length().is_some_and(|n| n > MAX_ANSWER_BYTES as u64) {
        return Err(too_large(what));
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| FetchError::Failed(format!("{what}: {}", reason(&e))))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large(what));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { status, body })
}

fn too_large(what: &str) -> FetchError {
    FetchError::Failed(format!("{what}: the answer is larger than {MAX_ANSWER_BYTES} bytes"))
}

/// Why a request failed, without the URL (which may carry a key) or any body.
fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", DEFAULT_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else if e.is_body() || e.is_decode() {
        "the answer broke off".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

/// `host` and port of a URL given in a configuration (`configuration.<field>`), for the
/// destination check; only `http` and `https` URLs.
pub(crate) fn host_port(field: &str, url: &str) -> Result<(reqwest::Url, String, u16), super::FieldProblem> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| super::FieldProblem::new(field, format!("'{url}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(super::FieldProblem::new(field, "must be an http:// or https:// URL"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(super::FieldProblem::new(field, "must not carry credentials (they are secrets)"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| super::FieldProblem::new(field, "has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    Ok((parsed, host, port))
}

/// `host:port` as shown in messages (brackets around an IPv6 host).
pub(crate) fn shown(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}
