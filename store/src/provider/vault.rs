//! `vault-kv2`: a KV version 2 secrets engine of HashiCorp Vault or OpenBao, through its HTTP API:
//! - read: `GET {address}/v1/{mount}/data/{key}[?version=N]` → `data.data.{field}`;
//! - list: `LIST {address}/v1/{mount}/metadata/` (top level; folders end with `/`);
//! - test: `GET {address}/v1/auth/token/lookup-self`;
//! - with AppRole instead of a token: `POST {address}/v1/auth/{approleMount}/login` with
//!   `{role_id, secret_id}` gives a client token, kept in memory until its lease ends.
//!
//! `X-Vault-Token` carries the token, `X-Vault-Namespace` the namespace (Enterprise / OpenBao).

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use super::http::{self, Answer};
use super::{Creds, FetchError, Source, credential_secret, excerpt, masked, read_configuration};
use crate::error::FieldProblem;
use crate::model::SecretValue;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    address: String,
    #[serde(default = "default_mount")]
    mount: String,
    token: Option<String>,
    role_id: Option<String>,
    secret_id: Option<String>,
    #[serde(default = "default_approle_mount")]
    approle_mount: String,
    namespace: Option<String>,
}

fn default_mount() -> String {
    "secret".into()
}

fn default_approle_mount() -> String {
    "approle".into()
}

pub(crate) struct Vault {
    base: reqwest::Url,
    host: String,
    port: u16,
    mount: String,
    namespace: Option<String>,
    auth: Auth,
    client: reqwest::Client,
    /// An AppRole login's client token and when to log in again.
    login: Mutex<Option<(SecretValue, Instant)>>,
}

enum Auth {
    /// A token, from the secret the configuration names.
    Token(String),
    /// AppRole: the role id and secret id secrets, and the auth mount.
    AppRole { role_id: String, secret_id: String, mount: String },
}

impl Vault {
    pub(super) fn build(configuration: &serde_json::Value) -> Result<Self, Vec<FieldProblem>> {
        let config: Config = read_configuration(configuration)?;
        let mut problems = Vec::new();
        let address = http::host_port("configuration.address", config.address.trim_end_matches('/'))
            .map_err(|p| problems.push(p))
            .ok();
        for (field, value) in
            [("configuration.mount", &config.mount), ("configuration.approleMount", &config.approle_mount)]
        {
            if !path_ok(value) {
                problems.push(FieldProblem::new(field, "must be a path of names separated by '/' (no '..')"));
            }
        }
        let mut secret =
            |field: &str, text: &str| credential_secret(field, text).map_err(|p| problems.push(p)).ok();
        let auth = match (&config.token, &config.role_id, &config.secret_id) {
            (Some(token), None, None) => secret("configuration.token", token).map(Auth::Token),
            (None, Some(role), Some(id)) => {
                match (secret("configuration.roleId", role), secret("configuration.secretId", id)) {
                    (Some(role_id), Some(secret_id)) => {
                        Some(Auth::AppRole { role_id, secret_id, mount: config.approle_mount.clone() })
                    }
                    _ => None,
                }
            }
            _ => {
                problems.push(FieldProblem::new(
                    "configuration.token",
                    "set either token, or roleId and secretId (AppRole), each as $<secret:NAME>",
                ));
                None
            }
        };
        match (address, auth) {
            (Some((base, host, port)), Some(auth)) if problems.is_empty() => Ok(Self {
                base,
                host,
                port,
                mount: config.mount.trim_matches('/').to_owned(),
                namespace: config.namespace.filter(|n| !n.is_empty()),
                auth,
                client: http::client(),
                login: Mutex::new(None),
            }),
            _ => Err(problems),
        }
    }

    pub(super) fn credentials(&self) -> Vec<(&'static str, String)> {
        match &self.auth {
            Auth::Token(token) => vec![("token", token.clone())],
            Auth::AppRole { role_id, secret_id, .. } => {
                vec![("roleId", role_id.clone()), ("secretId", secret_id.clone())]
            }
        }
    }

    pub(super) fn destination(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }

    pub(super) fn check_source(&self, source: &Source) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        if !path_ok(&source.key) {
            problems.push(FieldProblem::new(
                "source.key",
                "must be a secret's path under the mount (names separated by '/', no '..')",
            ));
        }
        if source.version.as_deref().is_some_and(|v| v.parse::<u64>().map_or(true, |n| n == 0)) {
            problems.push(FieldProblem::new("source.version", "must be a version number (1, 2, …)"));
        }
        if source.stage.is_some() {
            problems
                .push(FieldProblem::new("source.stage", "a vault-kv2 provider has no stages (use version)"));
        }
        problems
    }

    fn what(&self) -> String {
        format!("Vault at {}", http::shown(&self.host, self.port))
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/v1/{path}"));
        url
    }

    /// The token to send: the configured one, or an AppRole login's (logging in when needed).
    async fn token(&self, creds: &Creds) -> Result<SecretValue, FetchError> {
        match &self.auth {
            Auth::Token(_) => creds
                .text("token")?
                .map(SecretValue::from)
                .ok_or_else(|| FetchError::Denied("the token secret has no value".into())),
            Auth::AppRole { mount, .. } => {
                let mut login = self.login.lock().await;
                if let Some((token, until)) = login.as_ref()
                    && Instant::now() < *until
                {
                    return Ok(SecretValue::new(token.expose_bytes().to_vec()));
                }
                let body = serde_json::json!({
                    "role_id": creds.text("roleId")?.unwrap_or_default(),
                    "secret_id": creds.text("secretId")?.unwrap_or_default(),
                });
                let request = self
                    .with_namespace(self.client.post(self.url(&format!("auth/{mount}/login"))))
                    .json(&body);
                let answer = http::send(request, &self.what()).await?;
                let json = self.checked(answer, creds, "the AppRole login")?;
                let token =
                    json["auth"]["client_token"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| {
                        FetchError::Failed("the AppRole login's answer has no auth.client_token".into())
                    })?;
                let lease = json["auth"]["lease_duration"].as_u64().unwrap_or(300);
                // Log in again a little before the token's lease ends.
                let until = Instant::now() + Duration::from_secs(lease.saturating_sub(lease / 10).max(1));
                let value = SecretValue::from(token);
                *login = Some((SecretValue::new(value.expose_bytes().to_vec()), until));
                Ok(value)
            }
        }
    }

    fn with_namespace(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.namespace {
            Some(ns) => request.header("X-Vault-Namespace", ns),
            None => request,
        }
    }

    async fn get(
        &self,
        creds: &Creds,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Answer, FetchError> {
        let token = self.token(creds).await?;
        let mut header = reqwest::header::HeaderValue::from_bytes(token.expose_bytes())
            .map_err(|_| FetchError::Denied("the token is not a valid header value".into()))?;
        header.set_sensitive(true);
        let request =
            self.client.request(method, self.url(path)).query(query).header("X-Vault-Token", header);
        let answer = http::send(self.with_namespace(request), &self.what()).await?;
        if answer.status == reqwest::StatusCode::FORBIDDEN && matches!(self.auth, Auth::AppRole { .. }) {
            // The login's token may have been revoked: log in again next time.
            *self.login.lock().await = None;
        }
        Ok(answer)
    }

    /// The answer's JSON when it succeeded; otherwise an error with Vault's own `errors`
    /// (masked, short).
    fn checked(&self, answer: Answer, creds: &Creds, what: &str) -> Result<serde_json::Value, FetchError> {
        if answer.status.is_success() {
            return answer.json(&self.what());
        }
        let errors = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|j| {
                j["errors"]
                    .as_array()
                    .map(|e| e.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join("; "))
            })
            .filter(|e| !e.is_empty())
            .map(|e| format!(": {}", excerpt(&masked(&e, creds), 200)))
            .unwrap_or_default();
        let message = format!("{} refused {what} (HTTP {}){errors}", self.what(), answer.status.as_u16());
        Err(match answer.status.as_u16() {
            404 => FetchError::NotFound(message),
            401 | 403 => FetchError::Denied(message),
            _ => FetchError::Failed(message),
        })
    }

    pub(super) async fn fetch(&self, creds: &Creds, source: &Source) -> Result<SecretValue, FetchError> {
        let query: Vec<(&str, String)> = source.version.iter().map(|v| ("version", v.clone())).collect();
        let answer = self
            .get(creds, reqwest::Method::GET, &format!("{}/data/{}", self.mount, source.key), &query)
            .await?;
        let what = format!("secret '{}'", source.key);
        let mut json = self.checked(answer, creds, &format!("reading {what}"))?;
        let data = json["data"]["data"].take();
        let serde_json::Value::Object(mut fields) = data else {
            return Err(FetchError::NotFound(format!(
                "{what} has no data (deleted or destroyed in that version?)"
            )));
        };
        let field = match &source.field {
            Some(field) => field.clone(),
            None if fields.len() == 1 => fields.keys().next().cloned().unwrap_or_default(),
            None => {
                let mut names: Vec<&String> = fields.keys().collect();
                names.sort();
                let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
                return Err(FetchError::NotFound(format!(
                    "{what} has {} fields ({}): set source.field",
                    fields.len(),
                    excerpt(&names.join(", "), 200)
                )));
            }
        };
        match fields.remove(&field) {
            Some(serde_json::Value::String(text)) if !text.is_empty() => Ok(SecretValue::from(text)),
            Some(serde_json::Value::String(_)) => {
                Err(FetchError::NotFound(format!("field '{field}' of {what} is empty")))
            }
            Some(other @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                Ok(SecretValue::from(other.to_string()))
            }
            Some(_) => Err(FetchError::Failed(format!("field '{field}' of {what} is not text"))),
            None => Err(FetchError::NotFound(format!("{what} has no field '{field}'"))),
        }
    }

    pub(super) async fn keys(&self, creds: &Creds) -> Result<Vec<String>, FetchError> {
        let list = reqwest::Method::from_bytes(b"LIST").expect("a valid method");
        let answer = self.get(creds, list, &format!("{}/metadata/", self.mount), &[]).await?;
        let json = self.checked(answer, creds, "listing the mount")?;
        let mut keys: Vec<String> = json["data"]["keys"]
            .as_array()
            .map(|k| {
                k.iter().filter_map(|k| k.as_str()).filter(|k| !k.ends_with('/')).map(str::to_owned).collect()
            })
            .unwrap_or_default();
        keys.sort();
        keys.truncate(super::MAX_KEYS);
        Ok(keys)
    }

    pub(super) async fn test(&self, creds: &Creds) -> Result<String, FetchError> {
        let answer = self.get(creds, reqwest::Method::GET, "auth/token/lookup-self", &[]).await?;
        let json = self.checked(answer, creds, "the token lookup")?;
        let policies = json["data"]["policies"]
            .as_array()
            .map(|p| p.iter().filter_map(|p| p.as_str()).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        Ok(format!("{} accepted the token (policies: {})", self.what(), excerpt(&policies, 200)))
    }
}

/// A Vault path: names separated by `/`, none empty, `.` or `..`.
fn path_ok(path: &str) -> bool {
    let path = path.trim_matches('/');
    !path.is_empty()
        && path.len() <= 1024
        && path.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains(['?', '#', '\0']))
}
