//! The CLI's side of the REST API: where the server and the token are, one call, and errors mapped
//! to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::output::escape;

/// Exit codes: scripts can tell these apart.
pub(crate) mod exit {
    /// Anything else: the server could not be reached, an internal error.
    pub(crate) const FAILURE: u8 = 1;
    /// The command line is wrong (also clap's code).
    pub(crate) const USAGE: u8 = 2;
    /// The object does not exist (or is not visible to you).
    pub(crate) const NOT_FOUND: u8 = 3;
    /// The request conflicts with the current state (name taken, secret in use).
    pub(crate) const CONFLICT: u8 = 4;
    /// Not logged in, token expired, or permission denied.
    pub(crate) const AUTH: u8 = 5;
    /// The server refused the input (validation).
    pub(crate) const INVALID: u8 = 6;
}

/// A failed command: what to print and the exit code.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) code: u8,
    pub(crate) message: String,
    /// The fields the server's answer names in its `problems`.
    pub(crate) fields: Vec<String>,
}

impl CliError {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self { code: exit::USAGE, message: message.into(), fields: Vec::new() }
    }

    pub(crate) fn failure(message: impl Into<String>) -> Self {
        Self { code: exit::FAILURE, message: message.into(), fields: Vec::new() }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self { code: exit::NOT_FOUND, message: message.into(), fields: Vec::new() }
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

pub(crate) type CliResult<T> = Result<T, CliError>;

/// What `veil login` keeps: the server and the token (file mode 0600).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Credentials {
    pub(crate) url: String,
    pub(crate) token: String,
}

/// `$XDG_CONFIG_HOME/veil/credentials.json` (or the platform's config directory).
pub(crate) fn credentials_path() -> CliResult<PathBuf> {
    dirs::config_dir().map(|d| d.join("veil").join("credentials.json")).ok_or_else(|| {
        CliError::failure("cannot find a configuration directory (set HOME or XDG_CONFIG_HOME)")
    })
}

pub(crate) fn load_credentials() -> Option<Credentials> {
    let path = credentials_path().ok()?;
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

pub(crate) fn save_credentials(c: &Credentials) -> CliResult<PathBuf> {
    let path = credentials_path()?;
    let dir = path.parent().unwrap_or(&path);
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| CliError::failure(format!("cannot create {}: {e}", dir.display())))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let text = serde_json::to_vec_pretty(c).map_err(|e| CliError::failure(e.to_string()))?;
    let write = |mut f: std::fs::File| std::io::Write::write_all(&mut f, &text);
    options
        .open(&path)
        .and_then(|f| {
            // A file left by an older version keeps its mode on truncation: tighten it.
            #[cfg(unix)]
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            write(f)
        })
        .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// A client for one server.
pub(crate) struct Client {
    http: reqwest::Client,
    pub(crate) url: String,
    token: Option<String>,
}

/// Where the server is: `--url`/`VEIL_URL`, else the one `veil login` saved, else the default.
pub(crate) fn server_url(flag: Option<&str>) -> String {
    flag.map(str::to_owned)
        .or_else(|| load_credentials().map(|c| c.url))
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

impl Client {
    /// A client without a token (for `veil login`).
    pub(crate) fn anonymous(url: String) -> CliResult<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::failure(format!("cannot create an HTTP client: {e}")))?;
        Ok(Self { http, url, token: None })
    }

    /// A client with the token from `VEIL_TOKEN` or `veil login`.
    pub(crate) fn authenticated(flag_url: Option<&str>) -> CliResult<Self> {
        let url = server_url(flag_url);
        // A saved token goes only to the server it was issued by.
        let saved = load_credentials().filter(|c| c.url.trim_end_matches('/') == url);
        let token = std::env::var("VEIL_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| saved.as_ref().map(|c| c.token.clone()))
            .ok_or_else(|| CliError {
                code: exit::AUTH,
                message: format!("not logged in to {url}: run `veil login` or set VEIL_TOKEN"),
                fields: Vec::new(),
            })?;
        let mut client = Self::anonymous(url)?;
        client.token = Some(token);
        Ok(client)
    }

    /// The user id in the token (its `sub` claim), read without checking the signature: only to
    /// find your own account, which the server then checks.
    pub(crate) fn token_subject(&self) -> Option<String> {
        use base64::Engine as _;
        let payload = self.token.as_deref()?.split('.').nth(1)?;
        let bytes =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        let claims: Value = serde_json::from_slice(&bytes).ok()?;
        claims["sub"].as_str().filter(|s| uuid::Uuid::parse_str(s).is_ok()).map(str::to_owned)
    }

    /// One API call; the JSON answer (Null for 204), or the server's error as a `CliError`.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> CliResult<Value> {
        self.call_if_match(method, path, body, None).await
    }

    /// [`Client::call`] with check-and-set: `If-Match: "<version>"` when `version` is given (the
    /// server answers 412 when that is no longer the current version).
    pub(crate) async fn call_if_match(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        version: Option<i64>,
    ) -> CliResult<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(version) = version {
            request = request.header(reqwest::header::IF_MATCH, format!("\"{version}\""));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response =
            request.send().await.map_err(|e| CliError::failure(format!("cannot reach {}: {e}", self.url)))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(json);
        }
        // The server's words may quote stored text: never raw on the terminal.
        let message = json["message"].as_str().map(escape).unwrap_or_else(|| format!("HTTP {status}"));
        let error = escape(json["error"].as_str().unwrap_or("error"));
        let mut message = format!("{message} ({error})");
        let mut fields = Vec::new();
        if let Some(problems) = json["problems"].as_array() {
            for p in problems {
                if let Some(field) = p["field"].as_str() {
                    fields.push(field.to_owned());
                }
                let at = escape(p["path"].as_str().or_else(|| p["field"].as_str()).unwrap_or(""));
                message.push_str(&format!("\n  {at}: {}", escape(p["message"].as_str().unwrap_or(""))));
            }
        }
        let code = match status {
            401 | 403 => exit::AUTH,
            404 => exit::NOT_FOUND,
            409 | 412 => exit::CONFLICT,
            400 | 413 | 422 => exit::INVALID,
            _ => exit::FAILURE,
        };
        Err(CliError { code, message, fields })
    }

    pub(crate) async fn get(&self, path: &str) -> CliResult<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Every page of a listing (`path` may have a query): the first page's answer with `data`
    /// holding every item.
    pub(crate) async fn get_all(&self, path: &str) -> CliResult<Value> {
        let join = if path.contains('?') { '&' } else { '?' };
        let mut first = self.get(&format!("{path}{join}pageSize=200&page=0")).await?;
        let mut page = 0;
        while first["hasNext"].as_bool() == Some(true) {
            page += 1;
            let next = self.get(&format!("{path}{join}pageSize=200&page={page}")).await?;
            let items = next["data"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                break;
            }
            if let Some(all) = first["data"].as_array_mut() {
                all.extend(items);
            }
            first["hasNext"] = next["hasNext"].clone();
        }
        Ok(first)
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> CliResult<Value> {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

/// Percent-encodes a query value.
pub(crate) fn query(value: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", [("v", value)])
        .ok()
        .and_then(|u| u.query().map(|q| q.trim_start_matches("v=").to_owned()))
        .unwrap_or_default()
}
