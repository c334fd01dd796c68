//! Pieces both integrations share: header security (`enableSecurity` + `headersFilter`, whose
//! expected values may be secrets) and reading an uplink body.

use reqwest::header::HeaderMap;
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use subtle::ConstantTimeEq;

use veil_core::{BuildCtx, CompiledConfig, Problem, Template, TemplateText};

use crate::error::{UplinkError, UplinkErrorKind};
use crate::integration::IntegrationCtx;

/// Expected request headers; empty when security is off.
pub(crate) struct HeaderSecurity {
    filters: Vec<(String, Template)>,
}

impl HeaderSecurity {
    /// Reads `enableSecurity` and `headersFilter` (header name to its expected value, bound to
    /// its compiled template) of a compiled configuration.
    pub(crate) fn from_config(
        ctx: &BuildCtx<'_>,
        config: &CompiledConfig,
        enable_security: Option<&Value>,
        headers_filter: Option<&BTreeMap<String, TemplateText>>,
        problems: &mut Vec<Problem>,
    ) -> Self {
        let enabled = flag(ctx, enable_security, "enableSecurity", false, problems);
        let mut filters = Vec::new();
        for (name, value) in headers_filter.into_iter().flatten() {
            let pointer = format!("/headersFilter/{}", name.replace('~', "~0").replace('/', "~1"));
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(ctx.problem(&pointer, "is not a valid HTTP header name"));
                continue;
            }
            if let Some(template) = ctx.bound(config, value, problems) {
                filters.push((name.to_ascii_lowercase(), template));
            }
        }
        if !enabled {
            return Self { filters: Vec::new() };
        }
        if filters.is_empty() {
            problems.push(ctx.problem(
                "/headersFilter",
                "enableSecurity is on: name at least one header and its expected value",
            ));
        }
        Self { filters }
    }

    /// Whether uplinks must carry headers.
    pub(crate) fn is_enabled(&self) -> bool {
        !self.filters.is_empty()
    }

    /// The expected value of a header, rendered now (the LORIOT output's `auth`).
    pub(crate) fn expected(&self, header: &str) -> Option<&Template> {
        self.filters.iter().find(|(name, _)| name.eq_ignore_ascii_case(header)).map(|(_, t)| t)
    }

    /// Checks every filtered header in constant time (digests compared, so neither content nor
    /// length leaks through timing). The error names the header, never a value.
    pub(crate) fn check(&self, ctx: &IntegrationCtx<'_>, headers: &HeaderMap) -> Result<(), UplinkError> {
        for (name, template) in &self.filters {
            let Some(got) = headers.get(name.as_str()) else {
                return Err(UplinkError::unauthorized(format!("header '{name}' is missing")));
            };
            let expected = ctx.render(template).map_err(|e| {
                let message = ctx.redactor.mask(&format!("cannot check header '{name}': {e}"));
                UplinkError::new(UplinkErrorKind::Unavailable, message)
            })?;
            let a = Sha256::digest(got.as_bytes());
            let b = Sha256::digest(expected.expose_secret().as_bytes());
            if !bool::from(a.ct_eq(&b)) {
                return Err(UplinkError::unauthorized(format!("header '{name}' does not match")));
            }
        }
        Ok(())
    }
}

/// The body as JSON, naming the problem when it is not.
pub(crate) fn json_body(body: &[u8]) -> Result<Value, UplinkError> {
    serde_json::from_slice(body).map_err(|e| UplinkError::invalid(format!("body: invalid JSON ({e})")))
}

/// The body as JSON when it parses, else as text; binary that is not UTF-8 is refused.
pub(crate) fn json_or_text(headers: &HeaderMap, body: &[u8]) -> Result<Value, UplinkError> {
    let declared_json = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    if declared_json {
        return json_body(body);
    }
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    std::str::from_utf8(body)
        .map(|text| Value::String(text.to_owned()))
        .map_err(|_| UplinkError::invalid("body: neither JSON nor UTF-8 text"))
}

/// A boolean setting (absent = `default`), or a problem naming it.
pub(crate) fn flag(
    ctx: &BuildCtx<'_>,
    value: Option<&Value>,
    key: &str,
    default: bool,
    problems: &mut Vec<Problem>,
) -> bool {
    match value {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            problems.push(ctx.problem(&format!("/{key}"), "must be true or false"));
            default
        }
    }
}

/// An optional string setting, or a problem naming it.
pub(crate) fn text<'v>(
    ctx: &BuildCtx<'_>,
    value: Option<&'v Value>,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<&'v str> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            problems.push(ctx.problem(&format!("/{key}"), "must be a string"));
            None
        }
    }
}

/// An `http(s)://` URL setting without a trailing slash, or a problem naming it.
pub(crate) fn url(ctx: &BuildCtx<'_>, pointer: &str, raw: &str, problems: &mut Vec<Problem>) -> String {
    if veil_core::mentions_placeholder(raw) {
        // Already reported: the field is not secret-capable.
        return String::new();
    }
    match reqwest::Url::parse(raw) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            raw.trim_end_matches('/').to_owned()
        }
        _ => {
            problems.push(ctx.problem(pointer, format!("'{raw}' is not an http(s) URL")));
            String::new()
        }
    }
}
