//! Secret providers: where a linked secret's value lives when it is not in Veil's database — a
//! directory of files (Kubernetes and Docker secret mounts), a command, AWS Secrets Manager, or a
//! Vault KV v2 engine. A provider is a tenant's configuration (stored with rule chains and
//! integrations, so its own credentials are tracked references to ordinary secrets); a linked
//! secret names a provider and a key in its `source`, and its value is fetched at execution time
//! and cached in memory only ([`cache`]).
//!
//! Each kind is one module with the same four entry points: its configuration (read and checked
//! at save), `fetch` (one key's value), `keys` (what an import may choose from) and `test`
//! (whether the provider answers with these credentials).

mod aws;
pub(crate) mod cache;
mod exec;
mod files;
mod http;
mod vault;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) use self::http::shown;
use crate::error::FieldProblem;
use crate::model::SecretValue;

/// The kinds of provider, as the API spells them.
pub const PROVIDER_TYPES: [&str; 4] = ["files", "exec", "aws-secrets-manager", "vault-kv2"];

/// The most fetches (and tests, and listings) a tenant's providers run at once: more wait for a
/// slot, so that one tenant's many linked secrets cannot start an unbounded number of programs or
/// requests.
pub const MAX_FETCHES_PER_TENANT: usize = 8;
/// The most keys a listing returns.
pub(crate) const MAX_KEYS: usize = 10_000;
/// The most providers a tenant may have.
pub const MAX_PROVIDERS_PER_TENANT: usize = 50;
/// How long a fetched value is used before it is fetched again, when the provider does not say.
pub const DEFAULT_CACHE_SECONDS: u64 = 60;
/// The longest cache period a provider may set (a day).
pub(crate) const MAX_CACHE_SECONDS: u64 = 86_400;
/// The most bytes a provider's answer may have (a value, a listing, an error): larger answers
/// are refused, never read whole.
pub(crate) const MAX_ANSWER_BYTES: usize = 1024 * 1024 + 64 * 1024;
/// How long one request to a provider (a fetch, a listing, a test) may take, unless the provider
/// sets its own (exec: `timeoutSeconds`).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a linked secret's value comes from: a provider of the tenant, by name, and the key there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// The provider's name.
    pub provider: String,
    /// The key in the provider: a file name (files), the key passed to the command (exec), a
    /// secret id or ARN (AWS), a secret's path under the mount (Vault).
    pub key: String,
    /// AWS: a key of the JSON object in `SecretString`; Vault: the field of the KV secret's data
    /// (optional when the secret has exactly one field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A fixed version: AWS `VersionId`; Vault: the version number. Absent: the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// AWS only: the version stage (absent: `AWSCURRENT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// What the server's operator lets tenants' providers reach on this machine. Tenant
/// administrators configure providers, but only the operator decides which directories may be
/// read and which programs may be run (`veil serve --provider-dir`, `--provider-command`):
/// without them, `files` and `exec` providers are refused.
#[derive(Debug, Clone, Default)]
pub struct ProviderPolicy {
    /// Directories under which a `files` provider's `directory` may lie.
    pub file_roots: Vec<PathBuf>,
    /// Programs an `exec` provider may run (absolute paths, compared after resolving links).
    pub commands: Vec<PathBuf>,
}

/// Why a fetch (or a listing, or a test) failed. The message names what was asked and what went
/// wrong, never a value or a credential (answers are quoted only as an error code or a short,
/// bounded message of the provider's own).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    /// The key (or its field or version) does not exist there.
    #[error("{0}")]
    NotFound(String),
    /// The provider refused the credentials, or this key to them.
    #[error("{0}")]
    Denied(String),
    /// Anything else: unreachable, too slow, an answer too large or not understood.
    #[error("{0}")]
    Failed(String),
}

/// A provider's credentials, resolved from the secrets its configuration names, by field.
#[derive(Default)]
pub(crate) struct Creds {
    values: HashMap<&'static str, SecretValue>,
}

impl Creds {
    pub(crate) fn insert(&mut self, field: &'static str, value: SecretValue) {
        self.values.insert(field, value);
    }

    /// A credential field's value as text (`None` when the configuration does not set it).
    pub(crate) fn text(&self, field: &'static str) -> Result<Option<&str>, FetchError> {
        match self.values.get(field) {
            None => Ok(None),
            Some(value) => value
                .expose_text()
                .map(Some)
                .ok_or_else(|| FetchError::Failed(format!("credential {field} is not UTF-8 text"))),
        }
    }

    /// Every credential value (to mask them in an answer quoted in an error).
    pub(crate) fn values(&self) -> impl Iterator<Item = &SecretValue> {
        self.values.values()
    }
}

/// One configured provider, ready to fetch.
pub(crate) enum Client {
    Files(files::Files),
    Exec(exec::Exec),
    Aws(aws::Aws),
    Vault(Box<vault::Vault>),
}

impl Client {
    /// Reads and checks a provider's `configuration` for its `kind`. Problems name the field
    /// (`configuration.directory`).
    pub(crate) fn build(
        kind: &str,
        configuration: &serde_json::Value,
        policy: &ProviderPolicy,
    ) -> Result<Self, Vec<FieldProblem>> {
        match kind {
            "files" => files::Files::build(configuration, policy).map(Self::Files),
            "exec" => exec::Exec::build(configuration, policy).map(Self::Exec),
            "aws-secrets-manager" => aws::Aws::build(configuration).map(Self::Aws),
            "vault-kv2" => vault::Vault::build(configuration).map(|v| Self::Vault(Box::new(v))),
            other => Err(vec![FieldProblem::new(
                "type",
                format!("unknown provider type '{other}'; one of {}", PROVIDER_TYPES.join(", ")),
            )]),
        }
    }

    /// The configuration's credential fields and the secret each names (`$<secret:NAME>`).
    pub(crate) fn credentials(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Files(_) | Self::Exec(_) => Vec::new(),
            Self::Aws(c) => c.credentials(),
            Self::Vault(c) => c.credentials(),
        }
    }

    /// Where the credentials are sent (`host`, `port`): checked against their secrets'
    /// `allowedDestinations` at save. `None` for providers that send nothing anywhere.
    pub(crate) fn destination(&self) -> Option<(String, u16)> {
        match self {
            Self::Files(_) | Self::Exec(_) => None,
            Self::Aws(c) => Some(c.destination()),
            Self::Vault(c) => Some(c.destination()),
        }
    }

    /// Checks a linked secret's source against this kind (a file name without `/`, a numeric
    /// Vault version): problems name the field (`source.key`).
    pub(crate) fn check_source(&self, source: &Source) -> Vec<FieldProblem> {
        match self {
            Self::Files(c) => c.check_source(source),
            Self::Exec(c) => c.check_source(source),
            Self::Aws(c) => c.check_source(source),
            Self::Vault(c) => c.check_source(source),
        }
    }

    /// The value of `source` now.
    pub(crate) async fn fetch(&self, creds: &Creds, source: &Source) -> Result<SecretValue, FetchError> {
        match self {
            Self::Files(c) => c.fetch(source).await,
            Self::Exec(c) => c.fetch(source).await,
            Self::Aws(c) => c.fetch(creds, source).await,
            Self::Vault(c) => c.fetch(creds, source).await,
        }
    }

    /// The keys an import may link, sorted (where the provider can list them).
    pub(crate) async fn keys(&self, creds: &Creds) -> Result<Vec<String>, FetchError> {
        match self {
            Self::Files(c) => c.keys().await,
            Self::Exec(_) => Err(FetchError::Failed("an exec provider cannot list its keys".into())),
            Self::Aws(c) => c.keys(creds).await,
            Self::Vault(c) => c.keys(creds).await,
        }
    }

    /// Whether the provider answers with these credentials: a short description of what was
    /// checked.
    pub(crate) async fn test(&self, creds: &Creds) -> Result<String, FetchError> {
        match self {
            Self::Files(c) => c.test().await,
            Self::Exec(c) => c.test().await,
            Self::Aws(c) => c.test(creds).await,
            Self::Vault(c) => c.test(creds).await,
        }
    }
}

/// The secret a credential field names: the whole field must be one placeholder,
/// `$<secret:NAME>` (a credential is never written into a configuration).
pub(crate) fn credential_secret(field: &str, text: &str) -> Result<String, FieldProblem> {
    let name =
        text.trim().strip_prefix("$<secret:").and_then(|rest| rest.strip_suffix('>')).ok_or_else(|| {
            FieldProblem::new(
                field,
                "must name a secret as $<secret:NAME> (a credential is kept as a secret, never written here)",
            )
        })?;
    crate::model::validate_name(name).map_err(|p| FieldProblem::new(field, p.message))
}

/// The configuration object of a provider, read as `T`: unknown, missing or mistyped fields are
/// problems naming `configuration.<field>`. Told apart by serde's error kinds (through a
/// serde-value tree, whose error type keeps them), never by the words of a message; a wrong value
/// is never quoted (it may be a credential pasted in the wrong place).
pub(crate) fn read_configuration<T: serde::de::DeserializeOwned>(
    configuration: &serde_json::Value,
) -> Result<T, Vec<FieldProblem>> {
    use serde_value::DeserializerError as E;
    let problem = |field: &str, message: String| vec![FieldProblem::new(field, message)];
    let tree = serde_value::to_value(configuration)
        .map_err(|_| problem("configuration", "is not a JSON object".to_owned()))?;
    let de = serde_value::ValueDeserializer::<E>::new(tree);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path: Vec<String> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        let at = |last: Option<&str>| {
            let mut field = String::from("configuration");
            for part in path.iter().map(String::as_str).chain(last) {
                field.push('.');
                field.push_str(part);
            }
            field
        };
        match e.into_inner() {
            E::UnknownField(field, expected) => {
                // The path ends with the key itself.
                let field = if path.last() == Some(&field) { at(None) } else { at(Some(&field)) };
                problem(
                    &field,
                    format!("is not a setting of this provider (its settings: {})", expected.join(", ")),
                )
            }
            E::MissingField(field) => problem(&at(Some(field)), "is required".to_owned()),
            E::DuplicateField(field) => problem(&at(Some(field)), "is set twice".to_owned()),
            E::InvalidType(..) if path.is_empty() => {
                problem("configuration", "must be a JSON object of the provider's settings".to_owned())
            }
            E::InvalidType(_, expected) | E::InvalidValue(_, expected) => {
                problem(&at(None), format!("must be {expected}"))
            }
            E::UnknownVariant(variant, expected) => problem(
                &at(None),
                format!("'{}' is not one of {}", excerpt(&variant, 40), expected.join(", ")),
            ),
            E::InvalidLength(_, expected) => problem(&at(None), format!("must be {expected}")),
            E::Custom(message) => problem(&at(None), message),
        }
    })
}

/// `text` with every credential value (and the value being fetched, if any) replaced by `***`:
/// for the short excerpts of a provider's answer an error quotes.
pub(crate) fn masked(text: &str, creds: &Creds) -> String {
    let mut out = text.to_owned();
    for value in creds.values() {
        if let Some(v) = value.expose_text().filter(|v| v.len() >= 4) {
            out = out.replace(v, "***");
        }
    }
    out
}

/// At most `max` characters of `text` (on a character boundary), with `…` when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Settings {
        address: String,
        timeout_seconds: Option<u64>,
        #[serde(default)]
        command: Vec<String>,
    }

    fn problems(configuration: serde_json::Value) -> Vec<(String, String)> {
        read_configuration::<Settings>(&configuration)
            .expect_err("refused")
            .into_iter()
            .map(|p| (p.field, p.message))
            .collect()
    }

    #[test]
    fn configuration_problems_name_their_field_and_never_quote_a_value() {
        let read = read_configuration::<Settings>(
            &json!({"address": "a", "timeoutSeconds": null, "command": ["x"]}),
        )
        .expect("reads");
        assert_eq!((read.address.as_str(), read.timeout_seconds, read.command.len()), ("a", None, 1));
        let unknown = problems(json!({"address": "a", "secretKey": "AKIA-PASTED"}));
        assert_eq!(unknown[0].0, "configuration.secretKey");
        assert!(unknown[0].1.contains("timeoutSeconds") && !unknown[0].1.contains("AKIA"), "{unknown:?}");
        assert_eq!(problems(json!({})), [("configuration.address".to_owned(), "is required".to_owned())]);
        let wrong = problems(json!({"address": "a", "timeoutSeconds": "hunter2-secret"}));
        assert_eq!(wrong[0].0, "configuration.timeoutSeconds");
        assert!(!wrong[0].1.contains("hunter2"), "{wrong:?}");
        let negative = problems(json!({"address": "a", "timeoutSeconds": -5}));
        assert_eq!(negative[0].0, "configuration.timeoutSeconds");
        assert_eq!(problems(json!({"address": "a", "command": ["x", 7]}))[0].0, "configuration.command.1");
        assert_eq!(problems(json!("just a string"))[0].0, "configuration");
    }
}
