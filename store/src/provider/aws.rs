//! `aws-secrets-manager`: AWS Secrets Manager (or a compatible service: moto, LocalStack) through
//! its JSON API, each request `POST /` with `X-Amz-Target: secretsmanager.<Action>` and signed
//! with AWS Signature Version 4 (`aws-sigv4`, service `secretsmanager`):
//! - read: `GetSecretValue {SecretId, VersionId | VersionStage}` → `SecretString` (or one key of
//!   the JSON object in it, `source.field`) or `SecretBinary` (base64);
//! - list: `ListSecrets {MaxResults, NextToken}`, page after page (at most [`MAX_KEYS`] names);
//! - test: `ListSecrets {MaxResults: 1}`.
//!
//! The access key id, secret access key and optional session token are secrets the configuration
//! names; they sign each request and are never sent themselves (but the session token, which
//! AWS needs in `X-Amz-Security-Token`).

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use serde::Deserialize;
use zeroize::Zeroize as _;

use super::http::{self, Answer};
use super::{Creds, FetchError, Source, credential_secret, excerpt, masked, read_configuration};
use crate::error::FieldProblem;
use crate::model::SecretValue;

/// The service name in the signature's scope.
const SERVICE: &str = "secretsmanager";
/// The content type of the JSON protocol (version 1.1).
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The most secret names a listing returns.
const MAX_KEYS: usize = 10_000;
/// Names asked for per `ListSecrets` page (AWS's maximum).
const PAGE: usize = 100;
/// The most `ListSecrets` pages one listing reads (AWS may answer with fewer names than asked).
const MAX_PAGES: usize = 1_000;
/// `SecretId`: a name or an ARN.
const MAX_SECRET_ID_CHARS: usize = 2048;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    region: String,
    endpoint_url: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

pub(crate) struct Aws {
    region: String,
    /// The endpoint, path `/`.
    url: reqwest::Url,
    host: String,
    port: u16,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    client: reqwest::Client,
}

impl Aws {
    pub(super) fn build(configuration: &serde_json::Value) -> Result<Self, Vec<FieldProblem>> {
        let config: Config = read_configuration(configuration)?;
        let mut problems = Vec::new();
        let region_ok = region_ok(&config.region);
        if !region_ok {
            problems.push(FieldProblem::new(
                "configuration.region",
                format!("'{}' is not an AWS region (like eu-west-1)", excerpt(&config.region, 40)),
            ));
        }
        let endpoint = match &config.endpoint_url {
            Some(url) => endpoint("configuration.endpointUrl", url).map_err(|p| problems.push(p)).ok(),
            None if region_ok => endpoint("configuration.region", &default_endpoint(&config.region))
                .map_err(|p| problems.push(p))
                .ok(),
            None => None,
        };
        let mut secret =
            |field: &str, text: &str| credential_secret(field, text).map_err(|p| problems.push(p)).ok();
        let access_key_id = secret("configuration.accessKeyId", &config.access_key_id);
        let secret_access_key = secret("configuration.secretAccessKey", &config.secret_access_key);
        let session_token = config.session_token.as_deref().map(|t| secret("configuration.sessionToken", t));
        match (endpoint, access_key_id, secret_access_key) {
            (Some((url, host, port)), Some(access_key_id), Some(secret_access_key))
                if problems.is_empty() =>
            {
                Ok(Self {
                    region: config.region,
                    url,
                    host,
                    port,
                    access_key_id,
                    secret_access_key,
                    session_token: session_token.flatten(),
                    client: http::client(),
                })
            }
            _ => Err(problems),
        }
    }

    pub(super) fn credentials(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("accessKeyId", self.access_key_id.clone()),
            ("secretAccessKey", self.secret_access_key.clone()),
        ];
        if let Some(token) = &self.session_token {
            fields.push(("sessionToken", token.clone()));
        }
        fields
    }

    pub(super) fn destination(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }

    pub(super) fn check_source(&self, source: &Source) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        let chars = source.key.chars().count();
        if !(1..=MAX_SECRET_ID_CHARS).contains(&chars) || source.key.chars().any(char::is_control) {
            problems.push(FieldProblem::new(
                "source.key",
                format!("must be a secret's name or ARN (1..{MAX_SECRET_ID_CHARS} characters, no control characters)"),
            ));
        }
        if source.field.as_deref().is_some_and(|f| f.is_empty() || f.len() > 1024) {
            problems.push(FieldProblem::new(
                "source.field",
                "must be a key of the secret's JSON object (1..1024 bytes)",
            ));
        }
        if source.version.as_deref().is_some_and(|v| {
            !(32..=64).contains(&v.len()) || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }) {
            problems.push(FieldProblem::new(
                "source.version",
                "must be a VersionId (32..64 letters, digits and '-')",
            ));
        }
        if source.stage.as_deref().is_some_and(|s| {
            !(1..=256).contains(&s.len()) || s.chars().any(|c| c.is_control() || c.is_whitespace())
        }) {
            problems.push(FieldProblem::new(
                "source.stage",
                "must be a version stage (like AWSCURRENT or AWSPREVIOUS)",
            ));
        }
        if source.version.is_some() && source.stage.is_some() {
            problems.push(FieldProblem::new("source.stage", "set version or stage, not both"));
        }
        problems
    }

    fn what(&self) -> String {
        format!("AWS Secrets Manager at {}", http::shown(&self.host, self.port))
    }

    /// `action` with `body`, signed: the answer when it succeeded, otherwise an error with AWS's
    /// own error type and message (masked, short). `what` names the request in errors.
    async fn call(
        &self,
        creds: &Creds,
        action: &str,
        body: &serde_json::Value,
        what: &str,
    ) -> Result<Answer, FetchError> {
        let body = body.to_string().into_bytes();
        let target = format!("secretsmanager.{action}");
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("x-amz-target", &target);
        for (name, value) in self.signature(creds, &target, &body)? {
            request = request.header(name, value);
        }
        let answer = http::send(request.body(body), &self.what()).await?;
        if answer.status.is_success() { Ok(answer) } else { Err(self.refused(&answer, creds, what)) }
    }

    /// The headers that sign a request to the endpoint with these headers and body:
    /// `Authorization`, `X-Amz-Date` and, with a session token, `X-Amz-Security-Token`.
    fn signature(
        &self,
        creds: &Creds,
        target: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, reqwest::header::HeaderValue)>, FetchError> {
        let missing = |field: &str| FetchError::Denied(format!("the {field} secret has no value"));
        let access_key_id = creds.text("accessKeyId")?.ok_or_else(|| missing("accessKeyId"))?;
        let secret_access_key = creds.text("secretAccessKey")?.ok_or_else(|| missing("secretAccessKey"))?;
        let session_token = match &self.session_token {
            Some(_) => Some(creds.text("sessionToken")?.ok_or_else(|| missing("sessionToken"))?),
            None => None,
        };
        let key = Key { access_key_id, secret_access_key, session_token };
        let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", target)];
        signed_headers(&key, &self.region, SERVICE, self.url.as_str(), &headers, body)
    }

    /// The error of an answer that did not succeed, from AWS's JSON error (`__type`,
    /// `message`): the type decides the kind, its message is quoted masked and short; nothing
    /// else of the answer is.
    fn refused(&self, answer: &Answer, creds: &Creds, what: &str) -> FetchError {
        let json = serde_json::from_slice::<serde_json::Value>(&answer.body).unwrap_or_default();
        let kind = json["__type"].as_str().and_then(error_type);
        let said = json["message"]
            .as_str()
            .or_else(|| json["Message"].as_str())
            .filter(|m| !m.trim().is_empty())
            .map(|m| format!(": {}", excerpt(&masked(m.trim(), creds), 200)))
            .unwrap_or_default();
        let status = answer.status.as_u16();
        let shown = kind.map(|k| format!(", {k}")).unwrap_or_default();
        let text = format!("{} refused {what} (HTTP {status}{shown}){said}", self.what());
        match kind {
            Some("ResourceNotFoundException") => FetchError::NotFound(text),
            Some(
                "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "SignatureDoesNotMatch"
                | "InvalidClientTokenId"
                | "IncompleteSignature"
                | "IncompleteSignatureException"
                | "MissingAuthenticationToken"
                | "MissingAuthenticationTokenException"
                | "ExpiredToken"
                | "ExpiredTokenException",
            ) => FetchError::Denied(text),
            Some(_) => FetchError::Failed(text),
            None if matches!(status, 401 | 403) => FetchError::Denied(text),
            None => FetchError::Failed(text),
        }
    }

    pub(super) async fn fetch(&self, creds: &Creds, source: &Source) -> Result<SecretValue, FetchError> {
        let mut body = serde_json::json!({ "SecretId": source.key });
        match (&source.version, &source.stage) {
            (Some(version), _) => body["VersionId"] = version.as_str().into(),
            (None, Some(stage)) => body["VersionStage"] = stage.as_str().into(),
            (None, None) => body["VersionStage"] = "AWSCURRENT".into(),
        }
        let what = format!("secret '{}'", excerpt(&source.key, 200));
        let mut answer = self.call(creds, "GetSecretValue", &body, &format!("reading {what}")).await?;
        let parsed = serde_json::from_slice::<SecretAnswer>(&answer.body);
        answer.body.zeroize();
        let mut parsed = parsed.map_err(|_| {
            FetchError::Failed(format!("{}: the answer for {what} is not GetSecretValue's JSON", self.what()))
        })?;
        match (parsed.secret_string.take(), parsed.secret_binary.take(), &source.field) {
            (Some(text), _, None) => non_empty(SecretValue::from(text), &what),
            (Some(mut text), _, Some(field)) => {
                let object = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text);
                text.zeroize();
                let object = object.map_err(|_| {
                    FetchError::NotFound(format!(
                        "{what}'s SecretString is not a JSON object, so it has no key '{field}'"
                    ))
                })?;
                json_key(object, field, &what)
            }
            (None, Some(_), Some(field)) => Err(FetchError::NotFound(format!(
                "{what} holds SecretBinary, which has no key '{field}' (source.field is for a JSON SecretString)"
            ))),
            (None, Some(mut encoded), None) => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim());
                encoded.zeroize();
                let bytes =
                    bytes.map_err(|_| FetchError::Failed(format!("{what}'s SecretBinary is not base64")))?;
                non_empty(SecretValue::new(bytes), &what)
            }
            (None, None, _) => Err(FetchError::NotFound(format!("{what} has no value in that version"))),
        }
    }

    pub(super) async fn keys(&self, creds: &Creds) -> Result<Vec<String>, FetchError> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut body = serde_json::json!({ "MaxResults": PAGE });
            if let Some(token) = &token {
                body["NextToken"] = token.as_str().into();
            }
            let answer = self.call(creds, "ListSecrets", &body, "listing the secrets").await?;
            let page = serde_json::from_slice::<ListPage>(&answer.body).map_err(|_| {
                FetchError::Failed(format!("{}: the answer is not ListSecrets' JSON", self.what()))
            })?;
            names.extend(page.secret_list.into_iter().filter_map(|s| s.name));
            if names.len() >= MAX_KEYS {
                names.truncate(MAX_KEYS);
                break;
            }
            match page.next_token.filter(|t| !t.is_empty()) {
                // A token that does not move on would loop.
                Some(next) if token.as_ref() != Some(&next) => token = Some(next),
                _ => break,
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    pub(super) async fn test(&self, creds: &Creds) -> Result<String, FetchError> {
        let answer = self
            .call(creds, "ListSecrets", &serde_json::json!({ "MaxResults": 1 }), "listing the secrets")
            .await?;
        serde_json::from_slice::<ListPage>(&answer.body).map_err(|_| {
            FetchError::Failed(format!("{}: the answer is not ListSecrets' JSON", self.what()))
        })?;
        Ok(format!("{} accepted the credentials", self.what()))
    }
}

/// The credentials that sign a request.
struct Key<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: Option<&'a str>,
}

/// The SigV4 headers of a `POST` to `url` (path `/`) with these headers and body, for `service`
/// in `region`.
fn signed_headers(
    key: &Key<'_>,
    region: &str,
    service: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<(&'static str, reqwest::header::HeaderValue)>, FetchError> {
    let unsigned = || FetchError::Failed("the request cannot be signed".into());
    let identity = aws_credential_types::Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        key.session_token.map(str::to_owned),
        None,
        "veil",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| unsigned())?
        .into();
    let signable = SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(body))
        .map_err(|_| unsigned())?;
    let (instructions, _) = sign(signable, &params).map_err(|_| unsigned())?.into_parts();
    let (headers, _) = instructions.into_parts();
    headers
        .into_iter()
        .map(|header| {
            let mut value = reqwest::header::HeaderValue::from_str(header.value())
                .map_err(|_| FetchError::Denied("a credential is not a valid header value".into()))?;
            value.set_sensitive(header.sensitive() || header.name() != "x-amz-date");
            Ok((header.name(), value))
        })
        .collect()
}

/// `GetSecretValue`'s answer: the value (its other fields are not read). Zeroized on drop.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SecretAnswer {
    secret_string: Option<String>,
    secret_binary: Option<String>,
}

impl Drop for SecretAnswer {
    fn drop(&mut self) {
        self.secret_string.zeroize();
        self.secret_binary.zeroize();
    }
}

/// One page of `ListSecrets`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPage {
    #[serde(default)]
    secret_list: Vec<ListedSecret>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedSecret {
    name: Option<String>,
}

/// One key of a JSON `SecretString`: a string as it is, another JSON value as its JSON text.
fn json_key(
    mut object: serde_json::Map<String, serde_json::Value>,
    field: &str,
    what: &str,
) -> Result<SecretValue, FetchError> {
    match object.remove(field) {
        Some(serde_json::Value::String(text)) => non_empty(SecretValue::from(text), what),
        Some(serde_json::Value::Null) => {
            Err(FetchError::NotFound(format!("key '{field}' of {what} is null")))
        }
        Some(other) => {
            let mut text = other.to_string();
            let value = SecretValue::from(text.as_str());
            text.zeroize();
            Ok(value)
        }
        None => {
            let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
            keys.sort_unstable();
            Err(FetchError::NotFound(format!(
                "{what} has no key '{field}' in its JSON (keys: {})",
                excerpt(&keys.join(", "), 200)
            )))
        }
    }
}

fn non_empty(value: SecretValue, what: &str) -> Result<SecretValue, FetchError> {
    if value.is_empty() { Err(FetchError::NotFound(format!("{what} is empty"))) } else { Ok(value) }
}

/// The error type of AWS's `__type` (`ResourceNotFoundException`, also given as
/// `namespace#Type` or `Type:url`), if it looks like one.
fn error_type(kind: &str) -> Option<&str> {
    let kind = kind.rsplit('#').next()?.split(':').next()?.trim();
    (!kind.is_empty() && kind.len() <= 100 && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'))
        .then_some(kind)
}

/// An AWS region's shape: `eu-west-1`, `us-gov-east-1`, `cn-north-1` (lower-case words, a number
/// last).
fn region_ok(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, words)) = parts.split_last() else { return false };
    region.len() <= 32
        && words.len() >= 2
        && words[0].len() == 2
        && words.iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// AWS's own endpoint of the region (China's regions are under `amazonaws.com.cn`).
fn default_endpoint(region: &str) -> String {
    let domain = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("https://secretsmanager.{region}.{domain}")
}

/// The endpoint's URL (path `/`), host and port; a URL with a path, query or fragment is refused
/// (the JSON protocol posts to `/`).
fn endpoint(field: &str, url: &str) -> Result<(reqwest::Url, String, u16), FieldProblem> {
    let (url, host, port) = http::host_port(field, url.trim())?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(FieldProblem::new(
            field,
            "must be the service's root URL, like https://host[:port], without a path",
        ));
    }
    Ok((url, host, port))
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use serde_json::json;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    const ID: &str = "AKIDVEILTEST0001";
    const SECRET: &str = "veil-test-secret-access-key/0001";

    fn configuration(endpoint: &str) -> serde_json::Value {
        json!({
            "region": "eu-west-1",
            "endpointUrl": endpoint,
            "accessKeyId": "$<secret:aws-id>",
            "secretAccessKey": "$<secret:aws-key>",
        })
    }

    fn creds(token: Option<&str>) -> Creds {
        let mut creds = Creds::default();
        creds.insert("accessKeyId", SecretValue::from(ID));
        creds.insert("secretAccessKey", SecretValue::from(SECRET));
        if let Some(token) = token {
            creds.insert("sessionToken", SecretValue::from(token));
        }
        creds
    }

    fn source(key: &str) -> Source {
        Source { provider: "aws".into(), key: key.into(), field: None, version: None, stage: None }
    }

    fn fields(problems: &[FieldProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    fn text(value: &SecretValue) -> &str {
        value.expose_text().expect("UTF-8")
    }

    #[test]
    fn configuration_is_checked() {
        let aws = Aws::build(&json!({
            "region": "eu-west-1",
            "accessKeyId": "$<secret:aws-id>",
            "secretAccessKey": "$<secret:aws-key>",
            "sessionToken": "$<secret:aws-token>",
        }))
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(aws.destination(), ("secretsmanager.eu-west-1.amazonaws.com".to_owned(), 443));
        assert_eq!(
            aws.credentials(),
            vec![
                ("accessKeyId", "aws-id".to_owned()),
                ("secretAccessKey", "aws-key".to_owned()),
                ("sessionToken", "aws-token".to_owned())
            ]
        );
        let china = Aws::build(&json!({
            "region": "cn-north-1", "accessKeyId": "$<secret:a>", "secretAccessKey": "$<secret:b>",
        }))
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(china.destination().0, "secretsmanager.cn-north-1.amazonaws.com.cn");
        let local = Aws::build(&configuration("http://127.0.0.1:4566")).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(local.destination(), ("127.0.0.1".to_owned(), 4566));
        assert_eq!(local.credentials().len(), 2);

        let problems = |c: serde_json::Value| Aws::build(&c).err().expect("refused");
        let bad = problems(json!({
            "region": "Europe", "accessKeyId": "AKIA123", "secretAccessKey": "$<secret:ok>",
            "sessionToken": "plain",
        }));
        assert_eq!(
            fields(&bad),
            ["configuration.region", "configuration.accessKeyId", "configuration.sessionToken"]
        );
        for url in ["ftp://host", "https://host/path", "https://user:pw@host", "https://host/?a=b", "nope"] {
            let mut c = configuration(url);
            c["endpointUrl"] = url.into();
            assert_eq!(fields(&problems(c)), ["configuration.endpointUrl"], "{url}");
        }
        let mut unknown = configuration("http://127.0.0.1:1");
        unknown["secretKey"] = "x".into();
        assert_eq!(fields(&problems(unknown)), ["configuration.secretKey"]);
        assert_eq!(
            fields(&problems(json!({"region": "eu-west-1", "accessKeyId": "$<secret:a>"}))),
            ["configuration.secretAccessKey"]
        );
        for region in ["us-gov-west-1", "ap-southeast-4", "il-central-1", "eu-isoe-west-1"] {
            assert!(region_ok(region), "{region}");
        }
        for region in ["", "eu", "eu-west", "eu-west-x", "EU-west-1", "e-west-1", "eu--1", "eu-west-1 "] {
            assert!(!region_ok(region), "{region:?}");
        }
    }

    #[test]
    fn sources_are_checked() {
        let aws = Aws::build(&configuration("http://127.0.0.1:4566")).expect("builds");
        let uuid = "01234567-89ab-cdef-0123-456789abcdef";
        let ok = [
            source("prod/db"),
            source("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"),
            Source { field: Some("password".into()), stage: Some("AWSPREVIOUS".into()), ..source("db") },
            Source { version: Some(uuid.into()), ..source("db") },
        ];
        for s in ok {
            assert_eq!(aws.check_source(&s).len(), 0, "{s:?}");
        }
        assert_eq!(fields(&aws.check_source(&source(""))), ["source.key"]);
        assert_eq!(fields(&aws.check_source(&source(&"k".repeat(2049)))), ["source.key"]);
        assert_eq!(fields(&aws.check_source(&source("a\nb"))), ["source.key"]);
        let s = Source { field: Some(String::new()), version: Some("3".into()), ..source("db") };
        assert_eq!(fields(&aws.check_source(&s)), ["source.field", "source.version"]);
        let both = Source { version: Some(uuid.into()), stage: Some("AWSCURRENT".into()), ..source("db") };
        assert_eq!(fields(&aws.check_source(&both)), ["source.stage"]);
    }

    #[test]
    fn error_types_are_read() {
        assert_eq!(error_type("ResourceNotFoundException"), Some("ResourceNotFoundException"));
        assert_eq!(
            error_type("com.amazonaws.secretsmanager#AccessDeniedException"),
            Some("AccessDeniedException")
        );
        assert_eq!(
            error_type("UnrecognizedClientException:http://internal.amazon.com/coral/"),
            Some("UnrecognizedClientException")
        );
        assert_eq!(error_type("<script>"), None);
        assert_eq!(error_type(""), None);
    }

    /// Each request's head and body, as the recorder saw them.
    type Requests = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

    /// A loopback HTTP server for one request at a time: it records each request's head and
    /// body and answers with `status` and `body` (without a length when `close_delimited`).
    struct Recorder {
        port: u16,
        requests: Requests,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Recorder {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn recorder(status: u16, body: Vec<u8>, close_delimited: bool) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let length = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                seen.lock().expect("lock").push((head, buf[head_end..head_end + length].to_vec()));
                let mut answer =
                    format!("HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\n");
                if close_delimited {
                    answer.push_str("Connection: close\r\n\r\n");
                } else {
                    answer.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
                }
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            }
        });
        Recorder { port, requests, task }
    }

    fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    #[tokio::test]
    async fn requests_are_signed_with_sigv4() {
        let server = recorder(200, br#"{"Name":"db","SecretString":"v4lue"}"#.to_vec(), false).await;
        let mut config = configuration(&format!("http://127.0.0.1:{}", server.port));
        config["sessionToken"] = "$<secret:aws-token>".into();
        let aws = Aws::build(&config).expect("builds");
        let value = aws.fetch(&creds(Some("session-token-0001")), &source("prod/db")).await.expect("fetched");
        assert_eq!(text(&value), "v4lue");

        let requests = server.requests.lock().expect("lock").clone();
        let (head, body) = &requests[0];
        assert!(head.starts_with("POST / HTTP/1.1\r\n"), "{head}");
        assert_eq!(header(head, "x-amz-target"), Some("secretsmanager.GetSecretValue"));
        assert_eq!(header(head, "content-type"), Some("application/x-amz-json-1.1"));
        assert_eq!(header(head, "x-amz-security-token"), Some("session-token-0001"));
        let date = header(head, "x-amz-date").expect("X-Amz-Date");
        assert!(date.len() == 16 && date.ends_with('Z') && date.as_bytes()[8] == b'T', "{date}");
        let authorization = header(head, "authorization").expect("Authorization");
        let scope = format!(
            "AWS4-HMAC-SHA256 Credential={ID}/{}/eu-west-1/secretsmanager/aws4_request, ",
            &date[..8]
        );
        let rest = authorization.strip_prefix(&scope).unwrap_or_else(|| panic!("{authorization}"));
        let signed =
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=";
        let signature = rest.strip_prefix(signed).unwrap_or_else(|| panic!("{authorization}"));
        assert!(signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()), "{signature}");
        assert!(!head.contains(SECRET), "the secret access key is never sent");
        let body: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        assert_eq!(body, json!({"SecretId": "prod/db", "VersionStage": "AWSCURRENT"}));

        // The signature is AWS's: computed again here from the canonical request.
        let canonical = format!(
            "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:127.0.0.1:{}\nx-amz-date:{date}\n\
             x-amz-security-token:session-token-0001\nx-amz-target:secretsmanager.GetSecretValue\n\n\
             content-type;host;x-amz-date;x-amz-security-token;x-amz-target\n{}",
            server.port,
            sha256_hex(&requests[0].1)
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{date}\n{}/eu-west-1/secretsmanager/aws4_request\n{}",
            &date[..8],
            sha256_hex(canonical.as_bytes())
        );
        let mut key = hmac_sha256(format!("AWS4{SECRET}").as_bytes(), &date.as_bytes()[..8]);
        for part in ["eu-west-1", "secretsmanager", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes());
        }
        assert_eq!(signature, hex::encode(hmac_sha256(&key, to_sign.as_bytes())));
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(bytes))
    }

    fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    #[tokio::test]
    async fn answers_larger_than_the_limit_are_refused() {
        let huge = format!(r#"{{"SecretString":"{}"}}"#, "x".repeat(2 * 1024 * 1024)).into_bytes();
        for close_delimited in [false, true] {
            let server = recorder(200, huge.clone(), close_delimited).await;
            let aws =
                Aws::build(&configuration(&format!("http://127.0.0.1:{}", server.port))).expect("builds");
            let error = aws.fetch(&creds(None), &source("big")).await.expect_err("refused");
            assert!(
                matches!(&error, FetchError::Failed(m) if m.contains("larger than")),
                "{close_delimited}: {error:?}"
            );
        }
    }

    #[tokio::test]
    async fn errors_quote_only_the_type_and_a_masked_message() {
        let body = json!({
            "__type": "com.amazonaws#AccessDeniedException",
            "message": format!("User {ID} with key {SECRET} may not read it"),
            "Other": "never shown",
        });
        let server = recorder(400, body.to_string().into_bytes(), false).await;
        let aws = Aws::build(&configuration(&format!("http://127.0.0.1:{}", server.port))).expect("builds");
        let error = aws.fetch(&creds(None), &source("db")).await.expect_err("refused");
        let FetchError::Denied(message) = &error else { panic!("{error:?}") };
        assert!(message.contains("AccessDeniedException") && message.contains("secret 'db'"), "{message}");
        assert!(
            !message.contains(SECRET) && !message.contains(ID) && !message.contains("never"),
            "{message}"
        );

        let server = recorder(500, b"<html>internal secret page</html>".to_vec(), false).await;
        let aws = Aws::build(&configuration(&format!("http://127.0.0.1:{}", server.port))).expect("builds");
        let error = aws.test(&creds(None)).await.expect_err("refused");
        let FetchError::Failed(message) = &error else { panic!("{error:?}") };
        assert!(message.contains("HTTP 500") && !message.contains("secret page"), "{message}");
    }

    // moto (`pip install 'moto[server]'`): a local AWS Secrets Manager. It accepts any
    // credentials unless told otherwise, so the signature itself is checked above.

    /// A `moto_server` of the test's own on a free loopback port, stopped on drop.
    struct Moto {
        child: Child,
        port: u16,
    }

    impl Drop for Moto {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn moto() -> Moto {
        moto_with(&[])
    }

    fn moto_with(env: &[(&str, &str)]) -> Moto {
        let program = std::env::var("VEIL_TEST_MOTO")
            .expect("VEIL_TEST_MOTO: the path of moto_server (pip install 'moto[server]')");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .expect("bind")
                .local_addr()
                .expect("address")
                .port();
            let child = Command::new(&program)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{program} cannot be started: {e}"));
            let mut moto = Moto { child, port };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return moto;
                }
                if moto.child.try_wait().ok().flatten().is_some() {
                    break; // the port was taken meanwhile: another one
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("moto_server did not start");
    }

    impl Moto {
        fn aws(&self) -> Aws {
            Aws::build(&configuration(&format!("http://127.0.0.1:{}", self.port))).expect("builds")
        }
    }

    /// An action through the same signed client: its answer's JSON.
    async fn act(aws: &Aws, action: &str, body: serde_json::Value) -> serde_json::Value {
        act_as(aws, &creds(None), action, body).await
    }

    async fn act_as(aws: &Aws, creds: &Creds, action: &str, body: serde_json::Value) -> serde_json::Value {
        let answer = aws.call(creds, action, &body, action).await.unwrap_or_else(|e| panic!("{action}: {e}"));
        serde_json::from_slice(&answer.body).expect("JSON")
    }

    async fn create(aws: &Aws, name: &str, value: serde_json::Value) -> serde_json::Value {
        let mut body = json!({ "Name": name });
        match value {
            serde_json::Value::String(text) => body["SecretString"] = text.into(),
            serde_json::Value::Array(bytes) => {
                let bytes: Vec<u8> = bytes.iter().map(|b| b.as_u64().expect("byte") as u8).collect();
                body["SecretBinary"] = base64::engine::general_purpose::STANDARD.encode(bytes).into();
            }
            other => body["SecretString"] = other.to_string().into(),
        }
        act(aws, "CreateSecret", body).await
    }

    #[tokio::test]
    #[ignore = "needs moto (VEIL_TEST_MOTO)"]
    async fn moto_string_field_and_binary_values() {
        let moto = moto();
        let aws = moto.aws();
        let creds = creds(None);
        create(&aws, "prod/db-password", json!("s3cret-one")).await;
        create(&aws, "prod/db", json!({"username": "app", "password": "pw-1", "port": 5432, "none": null}))
            .await;
        create(&aws, "prod/keystore", json!([0, 1, 2, 254, 255])).await;
        create(&aws, "prod/not-json", json!("plain text")).await;

        assert_eq!(
            text(&aws.fetch(&creds, &source("prod/db-password")).await.expect("string")),
            "s3cret-one"
        );
        let field = |f: &str| Source { field: Some(f.into()), ..source("prod/db") };
        assert_eq!(text(&aws.fetch(&creds, &field("password")).await.expect("field")), "pw-1");
        assert_eq!(text(&aws.fetch(&creds, &field("port")).await.expect("number")), "5432");
        let whole = aws.fetch(&creds, &source("prod/db")).await.expect("whole");
        assert!(text(&whole).starts_with('{'), "without a field, the whole SecretString");
        for missing in ["nope", "none"] {
            let error = aws.fetch(&creds, &field(missing)).await.expect_err("no such key");
            assert!(
                matches!(&error, FetchError::NotFound(m) if m.contains(missing) && m.contains("prod/db")),
                "{error:?}"
            );
        }
        assert!(!format!("{:?}", aws.fetch(&creds, &field("nope")).await).contains("pw-1"));
        let binary = aws.fetch(&creds, &source("prod/keystore")).await.expect("binary");
        assert_eq!(binary.expose_bytes(), [0, 1, 2, 254, 255]);
        let error = aws
            .fetch(&creds, &Source { field: Some("x".into()), ..source("prod/keystore") })
            .await
            .expect_err("a binary secret has no fields");
        assert!(matches!(error, FetchError::NotFound(_)), "{error:?}");
        let error = aws
            .fetch(&creds, &Source { field: Some("x".into()), ..source("prod/not-json") })
            .await
            .expect_err("not JSON");
        assert!(matches!(&error, FetchError::NotFound(m) if !m.contains("plain text")), "{error:?}");
    }

    #[tokio::test]
    #[ignore = "needs moto (VEIL_TEST_MOTO)"]
    async fn moto_rotation_versions_and_stages() {
        let moto = moto();
        let aws = moto.aws();
        let creds = creds(None);
        let first = create(&aws, "rotated", json!("value-1")).await;
        let first_version = first["VersionId"].as_str().expect("VersionId").to_owned();
        assert_eq!(text(&aws.fetch(&creds, &source("rotated")).await.expect("first")), "value-1");

        let put =
            act(&aws, "PutSecretValue", json!({"SecretId": "rotated", "SecretString": "value-2"})).await;
        let second_version = put["VersionId"].as_str().expect("VersionId").to_owned();
        assert_eq!(text(&aws.fetch(&creds, &source("rotated")).await.expect("rotated")), "value-2");

        let stage = |s: &str| Source { stage: Some(s.into()), ..source("rotated") };
        let version = |v: &str| Source { version: Some(v.into()), ..source("rotated") };
        assert_eq!(text(&aws.fetch(&creds, &stage("AWSPREVIOUS")).await.expect("previous")), "value-1");
        assert_eq!(text(&aws.fetch(&creds, &version(&first_version)).await.expect("by id")), "value-1");
        assert_eq!(text(&aws.fetch(&creds, &version(&second_version)).await.expect("by id")), "value-2");
        assert!(aws.check_source(&version(&first_version)).is_empty(), "moto's version ids pass the check");
        let error = aws.fetch(&creds, &stage("NOSUCHSTAGE")).await.expect_err("no such stage");
        assert!(matches!(error, FetchError::NotFound(_)), "{error:?}");
    }

    #[tokio::test]
    #[ignore = "needs moto (VEIL_TEST_MOTO)"]
    async fn moto_missing_secret_is_not_found() {
        let moto = moto();
        let aws = moto.aws();
        let error = aws.fetch(&creds(None), &source("prod/no-such-secret")).await.expect_err("missing");
        let FetchError::NotFound(message) = &error else { panic!("{error:?}") };
        assert!(
            message.contains("prod/no-such-secret") && message.contains("ResourceNotFoundException"),
            "{message}"
        );
        assert!(message.contains(&format!("127.0.0.1:{}", moto.port)), "{message}");
    }

    #[tokio::test]
    #[ignore = "needs moto (VEIL_TEST_MOTO)"]
    async fn moto_lists_every_name_and_tests() {
        let moto = moto();
        let aws = moto.aws();
        let creds = creds(None);
        assert_eq!(aws.keys(&creds).await.expect("empty listing"), Vec::<String>::new());
        // More than one page of ListSecrets.
        let mut expected: Vec<String> =
            (0..PAGE + 5).map(|i| format!("app/key-{:03}", PAGE + 4 - i)).collect();
        for name in &expected {
            create(&aws, name, json!("v")).await;
        }
        expected.sort();
        assert_eq!(aws.keys(&creds).await.expect("listing"), expected);
        let said = aws.test(&creds).await.expect("test");
        assert_eq!(said, format!("AWS Secrets Manager at 127.0.0.1:{} accepted the credentials", moto.port));
    }

    #[tokio::test]
    #[ignore = "needs moto (VEIL_TEST_MOTO)"]
    async fn moto_answer_larger_than_the_limit_is_refused() {
        let moto = moto();
        let aws = moto.aws();
        // moto keeps a value larger than AWS's 64 KiB: its answer is over the limit.
        create(&aws, "huge", json!("x".repeat(2 * 1024 * 1024))).await;
        let error = aws.fetch(&creds(None), &source("huge")).await.expect_err("refused");
        assert!(matches!(&error, FetchError::Failed(m) if m.contains("larger than")), "{error:?}");
    }

    /// An IAM action (query protocol) on moto, signed for `iam`: its XML answer.
    async fn iam(port: u16, params: &[(&str, &str)]) -> String {
        let mut form = reqwest::Url::parse("http://form/").expect("URL");
        form.query_pairs_mut().extend_pairs(params).append_pair("Version", "2010-05-08");
        let body = form.query().expect("pairs").as_bytes().to_vec();
        let url = format!("http://127.0.0.1:{port}/");
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let key = Key { access_key_id: ID, secret_access_key: SECRET, session_token: None };
        let signature =
            signed_headers(&key, "us-east-1", "iam", &url, &[("content-type", content_type)], &body)
                .expect("signed");
        let mut request = reqwest::Client::new().post(&url).header("content-type", content_type);
        for (name, value) in signature {
            request = request.header(name, value);
        }
        let answer = request.body(body).send().await.expect("IAM answers");
        assert!(answer.status().is_success(), "{params:?}: HTTP {}", answer.status());
        answer.text().await.expect("text")
    }

    fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
        let start =
            xml.find(&format!("<{tag}>")).unwrap_or_else(|| panic!("no {tag} in {xml}")) + tag.len() + 2;
        let end = start + xml[start..].find(&format!("</{tag}>")).expect("closed");
        &xml[start..end]
    }

    #[tokio::test]
    #[ignore = "needs moto (VEIL_TEST_MOTO)"]
    async fn moto_checks_the_signature_and_refuses_wrong_credentials() {
        // After its first three actions (the IAM user, its key and its policy, made here), moto
        // checks each request's signature against the IAM user's key, as AWS does.
        let moto = moto_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]);
        iam(moto.port, &[("Action", "CreateUser"), ("UserName", "veil")]).await;
        let xml = iam(moto.port, &[("Action", "CreateAccessKey"), ("UserName", "veil")]).await;
        let (id, secret) =
            (between(&xml, "AccessKeyId").to_owned(), between(&xml, "SecretAccessKey").to_owned());
        let policy =
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        iam(
            moto.port,
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", "veil"),
                ("PolicyName", "all"),
                ("PolicyDocument", policy),
            ],
        )
        .await;

        let aws = moto.aws();
        let with = |id: &str, secret: &str| {
            let mut creds = Creds::default();
            creds.insert("accessKeyId", SecretValue::from(id));
            creds.insert("secretAccessKey", SecretValue::from(secret));
            creds
        };
        let good = with(&id, &secret);
        act_as(&aws, &good, "CreateSecret", json!({"Name": "checked", "SecretString": "signed-value"})).await;
        assert_eq!(text(&aws.fetch(&good, &source("checked")).await.expect("signed right")), "signed-value");
        assert_eq!(aws.keys(&good).await.expect("listing"), ["checked"]);
        aws.test(&good).await.expect("test");

        let wrong_secret = "wrong-secret-access-key-0123456789";
        for creds in [with(&id, wrong_secret), with("AKIDNOSUCHKEY00000", &secret)] {
            let error = aws.fetch(&creds, &source("checked")).await.expect_err("refused");
            let FetchError::Denied(message) = &error else { panic!("{error:?}") };
            assert!(message.contains("secret 'checked'") && message.contains("HTTP 403"), "{message}");
            assert!(!message.contains(wrong_secret) && !message.contains(&secret), "{message}");
            assert!(matches!(aws.test(&creds).await, Err(FetchError::Denied(_))));
            assert!(matches!(aws.keys(&creds).await, Err(FetchError::Denied(_))));
        }
    }
}
