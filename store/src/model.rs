//! The secret model and its validation rules (ARCHITECTURE §2).

use std::fmt;

use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use unicode_normalization::{UnicodeNormalization as _, is_nfc};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

use crate::error::{FieldProblem, Result, StoreError};

pub use crate::ids::{CustomerId, SecretId, TenantId, UserId};

/// What a secret holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SecretType {
    /// UTF-8 text: passwords, tokens, API keys.
    Text,
    /// Bytes: certificates, key files.
    File,
}

impl SecretType {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "TEXT",
            Self::File => "FILE",
        }
    }

    /// Parses `TEXT` or `FILE`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "TEXT" => Some(Self::Text),
            "FILE" => Some(Self::File),
            _ => None,
        }
    }
}

impl fmt::Display for SecretType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret's metadata: everything the API may show. It has no value field by construction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretInfo {
    /// The secret's id.
    pub id: SecretId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The immutable, per-tenant unique name.
    pub name: String,
    /// TEXT or FILE; immutable.
    #[serde(rename = "type")]
    pub kind: SecretType,
    /// Free text.
    pub description: String,
    /// The uploaded file's name (FILE only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// 1 at creation, +1 on every value change.
    pub version: i64,
    /// Milliseconds since the epoch.
    pub created_time: i64,
    /// Milliseconds since the epoch.
    pub updated_time: i64,
    /// Customers this secret is shared with.
    pub shared_with: Vec<CustomerId>,
    /// Where its value may be sent (host patterns with optional port); empty: anywhere.
    pub allowed_destinations: Vec<String>,
    /// How many versions keep their value (the current one included); older ones are destroyed.
    pub max_versions: i64,
    /// When it expires (milliseconds since the epoch), as its owner set it (a token's known
    /// expiry); a certificate's `notAfter` counts when this is not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// FILE values holding a PEM certificate: the first one's metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<crate::inspect::CertificateInfo>,
    /// FILE values holding a PEM private key: its algorithm and whether it is encrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<crate::inspect::PrivateKeyInfo>,
    /// A linked secret's source: its value lives in that provider, never in Veil's database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::provider::Source>,
    /// A linked secret's value on this instance: last fetch, values seen, last error. Filled when
    /// it is shown, never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::provider::cache::LinkedStatus>,
}

impl SecretInfo {
    /// When it expires: `expiresAt`, else its certificate's `notAfter`.
    pub fn expiry(&self) -> Option<i64> {
        self.expires_at.or(self.certificate.as_ref().map(|c| c.not_after))
    }
}

/// The default of [`SecretInfo::max_versions`].
pub const DEFAULT_MAX_VERSIONS: i64 = 10;
/// The most versions a secret may keep with their values.
pub const MAX_MAX_VERSIONS: i64 = 100;

/// Where a version stands: the value in use, one kept (masked, available to a rollback), or one
/// whose value is gone (its metadata stays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VersionState {
    /// A staged value waiting to be promoted: consumers are probed with it, none uses it.
    Pending,
    /// The value every consumer uses.
    Current,
    /// An earlier value, kept encrypted: still masked, and a rollback may bring it back.
    Previous,
    /// An earlier value beyond the secret's `maxVersions`: its ciphertext is removed.
    Destroyed,
}

/// One value a secret has had, without the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersion {
    /// 1 at creation, +1 for every new value.
    pub version: i64,
    /// When it was written (milliseconds since the epoch).
    pub created_time: i64,
    /// Who wrote it (a user name); `null` for values written before versions were recorded.
    pub created_by: Option<String>,
    /// Where it stands.
    pub state: VersionState,
    /// The first 12 hex characters of HMAC-SHA-256 of the value under the tenant's fingerprint
    /// key: equal values show equal fingerprints, and nobody can compute one from a guess
    /// without the key. `null` only for a destroyed value written before versions were recorded.
    pub fingerprint: Option<String>,
}

/// A secret's plaintext, held in zeroizing memory. `Debug` prints `[REDACTED]`; it has no `Serialize`.
pub struct SecretValue(SecretSlice<u8>);

impl SecretValue {
    /// Wraps bytes; the vector is moved, not copied.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(SecretSlice::from(bytes))
    }

    /// The bytes. Call only where the value is written into a request or connection.
    pub fn expose_bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// The value as text, if it is valid UTF-8 (always true for TEXT secrets).
    pub fn expose_text(&self) -> Option<&str> {
        std::str::from_utf8(self.expose_bytes()).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.expose_bytes().len()
    }

    /// True for an empty value (never stored).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<String> for SecretValue {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

impl From<&str> for SecretValue {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes().to_vec())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([REDACTED])")
    }
}

/// A request to create a secret.
#[derive(Debug)]
pub struct NewSecret {
    /// Name (trimmed before use).
    pub name: String,
    /// TEXT or FILE.
    pub kind: SecretType,
    /// Optional description.
    pub description: Option<String>,
    /// The plaintext.
    pub value: SecretValue,
    /// FILE only: the file's name.
    pub file_name: Option<String>,
    /// Where its value may be sent (see [`SecretInfo::allowed_destinations`]).
    pub allowed_destinations: Vec<String>,
    /// How many versions keep their value (1..100; absent: [`DEFAULT_MAX_VERSIONS`]).
    pub max_versions: Option<i64>,
    /// When it expires (milliseconds since the epoch).
    pub expires_at: Option<i64>,
}

/// A request to change a secret. `name` and `kind` are there only so a change can be refused.
#[derive(Debug, Default)]
pub struct SecretUpdate {
    /// A new value: version +1.
    pub value: Option<SecretValue>,
    /// A new description.
    pub description: Option<String>,
    /// FILE only: a new file name (usually with a new value).
    pub file_name: Option<String>,
    /// Must equal the current name if present.
    pub name: Option<String>,
    /// Must equal the current type if present.
    pub kind: Option<String>,
    /// A new list of allowed destinations (empty: anywhere).
    pub allowed_destinations: Option<Vec<String>>,
    /// A new number of versions kept with their values (1..100).
    pub max_versions: Option<i64>,
    /// A new expiry: `Some(None)` clears it.
    pub expires_at: Option<Option<i64>>,
    /// Check-and-set: the version the change was based on. When it is no longer the current
    /// one, nothing changes ([`crate::StoreError::VersionMismatch`]).
    pub expected_version: Option<i64>,
}

/// Size limits for values.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest TEXT value in bytes (default 64 KiB).
    pub max_text_bytes: usize,
    /// Largest FILE value in bytes (default 1 MiB).
    pub max_file_bytes: usize,
    /// Most rule chains per tenant (default 100).
    pub max_chains_per_tenant: usize,
    /// Most integrations per tenant (default 100).
    pub max_integrations_per_tenant: usize,
    /// Most secrets per tenant (default 10,000).
    pub max_secrets_per_tenant: usize,
    /// Most bytes of secret values (current values, encrypted) per tenant (default 256 MiB).
    pub max_secret_bytes_per_tenant: usize,
    /// Most users per tenant, customer users included (default 1,000).
    pub max_users_per_tenant: usize,
    /// Most custom roles per tenant (default 100).
    pub max_roles_per_tenant: usize,
    /// Most customers per tenant (default 1,000).
    pub max_customers_per_tenant: usize,
    /// Days audit entries are kept (default 365); older ones are deleted once an hour.
    pub audit_retention_days: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_text_bytes: 64 * 1024,
            max_file_bytes: 1024 * 1024,
            max_chains_per_tenant: 100,
            max_integrations_per_tenant: 100,
            max_secrets_per_tenant: 10_000,
            max_secret_bytes_per_tenant: 256 * 1024 * 1024,
            max_users_per_tenant: 1_000,
            max_roles_per_tenant: 100,
            max_customers_per_tenant: 1_000,
            audit_retention_days: 365,
        }
    }
}

/// The longest name or file name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4096;
const FORBIDDEN_NAME_CHARS: [char; 6] = ['<', '>', '{', '}', ';', '$'];

/// Whether `c` is invisible formatting: a format character (Cf: zero-width space and joiners,
/// bidirectional overrides and isolates, the byte order mark, ...) or a line or paragraph
/// separator.
fn invisible(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Format | GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
    )
}

/// Whether `c` is a character no name may hold: a control character (Cc) or invisible formatting.
fn invisible_or_control(c: char) -> bool {
    c.is_control() || invisible(c)
}

/// The characters every name (secret, user, role, customer, tenant) must avoid, and the NFC rule.
/// `name` is already trimmed.
pub(crate) fn check_name_chars(field: &str, name: &str) -> Result<(), FieldProblem> {
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(FieldProblem::new(
            field,
            format!("must not contain control characters (found U+{:04X})", c as u32),
        ));
    }
    if let Some(c) = name.chars().find(|c| invisible(*c)) {
        return Err(FieldProblem::new(
            field,
            format!(
                "must not contain invisible formatting characters such as zero-width spaces or joiners, \
                 bidirectional overrides or isolates, byte order marks or line separators (found U+{:04X})",
                c as u32
            ),
        ));
    }
    if !is_nfc(name) {
        let nfc: String = name.nfc().collect();
        return Err(FieldProblem::new(
            field,
            format!(
                "is not in Unicode normalization form NFC (a letter and its accent sent as separate \
                 characters look the same but are a different name); send the NFC form '{nfc}'"
            ),
        ));
    }
    Ok(())
}

/// Checks a free-text label (a rule chain's, node's or integration's name): no control characters
/// and no invisible formatting characters, which would reach terminals and screens as they are.
pub fn validate_label(field: &str, label: &str) -> Result<(), FieldProblem> {
    if let Some(c) = label.chars().find(|c| invisible_or_control(*c)) {
        return Err(FieldProblem::new(
            field,
            format!(
                "must not contain control characters or invisible formatting characters such as \
                 zero-width spaces or bidirectional overrides (found U+{:04X})",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// The UTS #39 confusable skeleton of a name: two names with the same skeleton look alike
/// (`s-basic` and `s-b\u{430}sic` with a Cyrillic a, `paypal` and `paypa1`).
pub(crate) fn skeleton(name: &str) -> String {
    unicode_security::skeleton(name).collect()
}

/// The first of `existing` that differs from `name` but looks like it (same skeleton).
pub(crate) fn lookalike<'a>(name: &str, existing: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = skeleton(name);
    existing.into_iter().find(|other| *other != name && skeleton(other) == wanted)
}

/// Checks a secret name and returns it trimmed. The rules of ARCHITECTURE §2 plus: no invisible
/// format characters and NFC only, so two names that look the same are the same name. The
/// placeholder parser in veil-core uses the same function so a name that can be stored can be
/// referenced. (Names that merely look like an existing one are refused when created; that needs
/// the store.)
pub fn validate_name(raw: &str) -> Result<String, FieldProblem> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldProblem::new("name", "must not be empty"));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(FieldProblem::new(
            "name",
            format!("is {chars} characters long, the limit is {MAX_NAME_CHARS}"),
        ));
    }
    check_name_chars("name", name)?;
    if let Some(c) = name.chars().find(|c| FORBIDDEN_NAME_CHARS.contains(c)) {
        return Err(FieldProblem::new(
            "name",
            format!("must not contain '{c}' (none of < > {{ }} ; $ are allowed)"),
        ));
    }
    Ok(name.to_owned())
}

/// Zero-width non-joiner and joiner: scripts (Persian, Indic) and emoji sequences need them in
/// free text.
const JOINERS: [char; 2] = ['\u{200C}', '\u{200D}'];

fn validate_description(raw: &str, problems: &mut Vec<FieldProblem>) {
    let chars = raw.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        problems.push(FieldProblem::new(
            "description",
            format!("is {chars} characters long, the limit is {MAX_DESCRIPTION_CHARS}"),
        ));
    } else if let Some(c) = raw.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\t')) {
        problems.push(FieldProblem::new(
            "description",
            format!(
                "must not contain control characters other than newline and tab (found U+{:04X})",
                c as u32
            ),
        ));
    } else if let Some(c) = raw.chars().find(|c| invisible(*c) && !JOINERS.contains(c)) {
        problems.push(FieldProblem::new(
            "description",
            format!(
                "must not contain invisible formatting characters such as bidirectional overrides or \
                 isolates, zero-width spaces, byte order marks or line separators (found U+{:04X})",
                c as u32
            ),
        ));
    }
}

fn validate_file_name(raw: &str, problems: &mut Vec<FieldProblem>) -> String {
    let name = raw.trim();
    if name.is_empty() {
        problems.push(FieldProblem::new("fileName", "must not be empty for a FILE secret"));
    } else if name.chars().count() > MAX_NAME_CHARS {
        problems.push(FieldProblem::new("fileName", format!("is longer than {MAX_NAME_CHARS} characters")));
    } else if name == "." || name == ".." {
        problems.push(FieldProblem::new("fileName", format!("must be a plain file name, not '{name}'")));
    } else if name.chars().any(|c| invisible_or_control(c) || c == '/' || c == '\\') {
        problems.push(FieldProblem::new(
            "fileName",
            "must be a plain file name without control or invisible formatting characters, '/' or '\\'",
        ));
    }
    name.to_owned()
}

/// Checks a value against its type's rules; size problems come back as [`StoreError::TooLarge`].
pub(crate) fn validate_value(
    kind: SecretType,
    value: &SecretValue,
    limits: &Limits,
    problems: &mut Vec<FieldProblem>,
) -> Result<()> {
    if value.is_empty() {
        problems.push(FieldProblem::new("value", "must not be empty"));
        return Ok(());
    }
    let limit = match kind {
        SecretType::Text => limits.max_text_bytes,
        SecretType::File => limits.max_file_bytes,
    };
    if value.len() > limit {
        return Err(StoreError::TooLarge { field: "value", kind: kind.as_str(), size: value.len(), limit });
    }
    if kind == SecretType::Text && value.expose_text().is_none() {
        problems.push(FieldProblem::new("value", "a TEXT secret must be valid UTF-8"));
    }
    Ok(())
}

/// A validated creation request.
pub(crate) struct ValidNewSecret {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) file_name: Option<String>,
    pub(crate) allowed_destinations: Vec<String>,
    pub(crate) max_versions: i64,
    pub(crate) expires_at: Option<i64>,
}

/// Latest expiry accepted (the year 9999), in milliseconds since the epoch.
const MAX_EXPIRES_AT: i64 = 253_402_300_799_000;

fn validate_expires_at(at: Option<i64>, problems: &mut Vec<FieldProblem>) -> Option<i64> {
    if let Some(at) = at
        && !(1..=MAX_EXPIRES_AT).contains(&at)
    {
        problems.push(FieldProblem::new(
            "expiresAt",
            "must be a time in milliseconds since 1970 (before the year 10000)",
        ));
    }
    at
}

/// Checks a number of versions to keep.
fn validate_max_versions(max: i64, problems: &mut Vec<FieldProblem>) -> i64 {
    if !(1..=MAX_MAX_VERSIONS).contains(&max) {
        problems.push(FieldProblem::new("maxVersions", format!("must be 1..{MAX_MAX_VERSIONS}, got {max}")));
    }
    max
}

/// Checks a new secret; `with_value: false` for a linked secret, whose value is not Veil's.
pub(crate) fn validate_new_secret(
    req: &NewSecret,
    limits: &Limits,
    with_value: bool,
) -> Result<ValidNewSecret> {
    let mut problems = Vec::new();
    let name = validate_name(&req.name).map_err(|p| problems.push(p)).unwrap_or_default();
    let description = req.description.clone().unwrap_or_default();
    validate_description(&description, &mut problems);
    let file_name = match (req.kind, &req.file_name) {
        (SecretType::File, Some(f)) => Some(validate_file_name(f, &mut problems)),
        (SecretType::File, None) => {
            problems.push(FieldProblem::new("fileName", "is required for a FILE secret"));
            None
        }
        (SecretType::Text, Some(_)) => {
            problems.push(FieldProblem::new("fileName", "only FILE secrets have a file name"));
            None
        }
        (SecretType::Text, None) => None,
    };
    if with_value {
        validate_value(req.kind, &req.value, limits, &mut problems)?;
    }
    let allowed_destinations =
        crate::destinations::validate_destinations(&req.allowed_destinations, &mut problems);
    let max_versions = validate_max_versions(req.max_versions.unwrap_or(DEFAULT_MAX_VERSIONS), &mut problems);
    let expires_at = validate_expires_at(req.expires_at, &mut problems);
    if problems.is_empty() {
        Ok(ValidNewSecret { name, description, file_name, allowed_destinations, max_versions, expires_at })
    } else {
        Err(StoreError::Invalid(problems))
    }
}

/// An update's checked fields.
pub(crate) struct ValidUpdate {
    pub(crate) description: Option<String>,
    pub(crate) file_name: Option<String>,
    pub(crate) allowed_destinations: Option<Vec<String>>,
    pub(crate) max_versions: Option<i64>,
}

/// Validates an update against the current metadata.
pub(crate) fn validate_update(
    current: &SecretInfo,
    req: &SecretUpdate,
    limits: &Limits,
) -> Result<ValidUpdate> {
    if let Some(name) = &req.name
        && name.trim() != current.name
    {
        return Err(StoreError::Immutable { field: "name", current: current.name.clone() });
    }
    if let Some(kind) = &req.kind
        && kind != current.kind.as_str()
    {
        return Err(StoreError::Immutable { field: "type", current: current.kind.as_str().to_owned() });
    }
    let mut problems = Vec::new();
    if let Some(d) = &req.description {
        validate_description(d, &mut problems);
    }
    let file_name = match (&req.file_name, current.kind) {
        (Some(f), SecretType::File) => Some(validate_file_name(f, &mut problems)),
        (Some(_), SecretType::Text) => {
            problems.push(FieldProblem::new("fileName", "only FILE secrets have a file name"));
            None
        }
        (None, _) => None,
    };
    if let Some(value) = &req.value {
        validate_value(current.kind, value, limits, &mut problems)?;
    }
    let allowed_destinations = req
        .allowed_destinations
        .as_ref()
        .map(|list| crate::destinations::validate_destinations(list, &mut problems));
    let max_versions = req.max_versions.map(|max| validate_max_versions(max, &mut problems));
    if let Some(at) = req.expires_at {
        validate_expires_at(at, &mut problems);
    }
    if req.value.is_none()
        && req.description.is_none()
        && req.file_name.is_none()
        && req.allowed_destinations.is_none()
        && req.max_versions.is_none()
        && req.expires_at.is_none()
    {
        problems.push(FieldProblem::new(
            "value",
            "nothing to change: send a value, a description, a fileName, allowedDestinations, maxVersions or expiresAt",
        ));
    }
    if problems.is_empty() {
        Ok(ValidUpdate {
            description: req.description.clone(),
            file_name,
            allowed_destinations,
            max_versions,
        })
    } else {
        Err(StoreError::Invalid(problems))
    }
}

/// TEXT values shorter than this many characters get a warning: they are masked wherever those
/// characters appear (in every log line and debug event), and they are easy to guess.
pub const SHORT_VALUE_CHARS: usize = 8;

/// What looks wrong with a TEXT value that is valid (typically a copy-and-paste slip): leading or
/// trailing whitespace, a trailing newline, surrounding quotes, a value shorter than
/// [`SHORT_VALUE_CHARS`]. Each names the field (`value`) and never quotes the value. FILE values
/// (certificates, keys: whitespace and newlines belong there) get none.
pub fn value_warnings(kind: SecretType, value: &SecretValue) -> Vec<FieldProblem> {
    let Some(text) = value.expose_text().filter(|_| kind == SecretType::Text) else { return Vec::new() };
    let mut warnings = Vec::new();
    if text.ends_with('\n') || text.ends_with('\r') {
        warnings.push(FieldProblem::new("value", "ends with a newline (often pasted by accident)"));
    } else if text.ends_with(char::is_whitespace) {
        warnings.push(FieldProblem::new("value", "ends with whitespace"));
    }
    if text.starts_with(char::is_whitespace) {
        warnings.push(FieldProblem::new("value", "starts with whitespace"));
    }
    let trimmed = text.trim();
    let quoted = ['"', '\'', '`']
        .iter()
        .any(|q| trimmed.len() >= 2 && trimmed.starts_with(*q) && trimmed.ends_with(*q));
    if quoted {
        warnings.push(FieldProblem::new("value", "is surrounded by quotes (they become part of the value)"));
    }
    let chars = text.chars().count();
    if chars < SHORT_VALUE_CHARS {
        warnings.push(FieldProblem::new(
            "value",
            format!(
                "is {chars} characters: values shorter than {SHORT_VALUE_CHARS} are masked wherever those characters appear, and are easy to guess"
            ),
        ));
    }
    warnings
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_value_debug_is_redacted() {
        let v = SecretValue::from("hunter2");
        assert_eq!(format!("{v:?}"), "SecretValue([REDACTED])");
        let req = NewSecret {
            name: "n".into(),
            kind: SecretType::Text,
            description: None,
            value: SecretValue::from("hunter2"),
            file_name: None,
            allowed_destinations: Vec::new(),
            max_versions: None,
            expires_at: None,
        };
        assert!(!format!("{req:?}").contains("hunter2"));
        let upd = SecretUpdate { value: Some("hunter2".into()), ..Default::default() };
        assert!(!format!("{upd:?}").contains("hunter2"));
    }

    #[test]
    fn name_rules() {
        assert_eq!(validate_name("  loriot password ").unwrap(), "loriot password");
        assert_eq!(validate_name("пароль-ключ 🔑").unwrap(), "пароль-ключ 🔑");
        assert_eq!(validate_name(&"é".repeat(255)).unwrap().chars().count(), 255);
        for (bad, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("a\u{7}b", "control"),
            ("a\nb", "control"),
            ("a<b", "'<'"),
            ("a>b", "'>'"),
            ("a{b", "'{'"),
            ("a}b", "'}'"),
            ("a;b", "';'"),
            ("a$b", "'$'"),
            ("a\u{200b}b", "invisible formatting characters"),
            ("a\u{202e}b", "U+202E"),
            ("cafe\u{301}", "send the NFC form 'caf\u{e9}'"),
        ] {
            let p = validate_name(bad).unwrap_err();
            assert_eq!(p.field, "name");
            assert!(p.message.contains(needle), "{bad:?}: {}", p.message);
        }
        let p = validate_name(&"x".repeat(256)).unwrap_err();
        assert!(p.message.contains("256 characters"), "{}", p.message);
    }
}
