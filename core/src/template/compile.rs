//! Compiling a configuration tree once, at deploy: every string value is parsed into segments
//! (literal text, secret placeholder, message template) according to what its field declares.

use std::collections::BTreeMap;

use serde_json::Value;

use super::placeholder::{Piece, parse};
use crate::error::Problem;

/// Which secret types a field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// TEXT secrets only.
    Text,
    /// FILE secrets only.
    File,
    /// FILE secrets holding a PEM certificate (a CA or client certificate field).
    Certificate,
    /// FILE secrets holding a PEM private key.
    PrivateKey,
    /// Either.
    Any,
}

impl Accepts {
    /// Whether a secret of this type may go here.
    pub fn allows(self, kind: veil_store::SecretType) -> bool {
        matches!(
            (self, kind),
            (Self::Any, _)
                | (Self::Text, veil_store::SecretType::Text)
                | (Self::File | Self::Certificate | Self::PrivateKey, veil_store::SecretType::File)
        )
    }

    /// What the value of an allowed secret must hold, when the type alone does not say: a PEM
    /// certificate or private key, read from the secret's metadata (no value is decrypted).
    pub fn content_problem(self, info: &veil_store::SecretInfo) -> Option<&'static str> {
        match self {
            Self::Certificate if info.certificate.is_none() => Some("holds no PEM certificate"),
            Self::PrivateKey if info.private_key.is_none() => Some("holds no PEM private key"),
            _ => None,
        }
    }

    /// For messages: `TEXT`, `FILE` or `TEXT or FILE`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Text => "TEXT",
            Self::File => "FILE",
            Self::Certificate => "FILE (a PEM certificate)",
            Self::PrivateKey => "FILE (a PEM private key)",
            Self::Any => "TEXT or FILE",
        }
    }
}

/// How text inserted into a field (secret values, message values) is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Inserted as is (URLs, headers, passwords).
    None,
    /// Escaped for the inside of a JSON string (JSON body templates).
    JsonString,
}

/// What one field of a node's or integration's configuration may contain.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// JSON pointer relative to the configuration; `*` matches any one segment (`/headers/*`).
    pub pointer: &'static str,
    /// Secret-capable, and for which types (the UI shows a key icon on these fields).
    pub secret: Option<Accepts>,
    /// Whether message templates (`{{msg.x}}`, `${metadataKey}`, `$[dataKey]`) are expanded.
    pub message_template: bool,
    /// Escaping of inserted text.
    pub escape: Escape,
}

impl FieldSpec {
    /// A secret-capable field without message templates.
    pub const fn secret(pointer: &'static str, accepts: Accepts) -> Self {
        Self { pointer, secret: Some(accepts), message_template: false, escape: Escape::None }
    }

    /// A secret-capable field that is also a message template.
    pub const fn secret_template(pointer: &'static str) -> Self {
        Self { pointer, secret: Some(Accepts::Text), message_template: true, escape: Escape::None }
    }

    /// A message template without secrets.
    pub const fn template(pointer: &'static str) -> Self {
        Self { pointer, secret: None, message_template: true, escape: Escape::None }
    }

    /// The same field with JSON-string escaping.
    pub const fn json_escaped(mut self) -> Self {
        self.escape = Escape::JsonString;
        self
    }

    fn matches(&self, pointer: &str) -> bool {
        let mut want = self.pointer.split('/');
        let mut have = pointer.split('/');
        loop {
            match (want.next(), have.next()) {
                (None, None) => return true,
                (Some(w), Some(h)) if w == "*" || w == h => {}
                _ => return false,
            }
        }
    }
}

/// A part of a compiled string.
#[derive(Debug, Clone)]
pub(crate) enum Segment {
    Literal(String),
    Secret {
        name: String,
    },
    Metadata(String),
    Data(String),
    /// A handlebars template, compiled in pieces (see [`super::hbs::compile`]).
    Handlebars(Box<[handlebars::Template]>),
}

/// A compiled string value: what a node renders at execution time.
#[derive(Debug, Clone)]
pub struct Template {
    pub(crate) segments: Vec<Segment>,
    pub(crate) escape: Escape,
    /// A secret-capable field: sealed values in message content inserted here are opened (and
    /// the send is checked against their secrets' destinations); elsewhere they show as `***`.
    pub(crate) unseal: bool,
}

impl Template {
    /// The secret name if the whole value is exactly one placeholder (FILE secrets are used so).
    pub fn single_secret(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [Segment::Secret { name }] => Some(name),
            _ => None,
        }
    }

    /// The text if the value has no placeholder and no message template.
    pub fn literal(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [] => Some(""),
            [Segment::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// Whether rendering needs the message.
    pub fn uses_message(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Metadata(_) | Segment::Data(_) | Segment::Handlebars(_)))
    }

    /// Names of the secrets this template uses.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Secret { name } => Some(name.as_str()),
            _ => None,
        })
    }
}

/// A use of a secret in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUse {
    /// The secret's name.
    pub name: String,
    /// JSON pointer of the field, relative to the configuration.
    pub pointer: String,
    /// The types the field accepts.
    pub accepts: Accepts,
}

/// A configuration compiled once at deploy.
#[derive(Debug)]
pub struct CompiledConfig {
    plain: Value,
    templates: BTreeMap<String, Template>,
    /// Every string at a declared field, compiled or not (one that did not compile has a problem).
    declared: std::collections::BTreeSet<String>,
    uses: Vec<SecretUse>,
}

impl CompiledConfig {
    /// The configuration with escapes (`$$<secret:`) resolved in fields that are not templates;
    /// template fields keep their source text. Use it to read plain settings.
    pub fn plain(&self) -> &Value {
        &self.plain
    }

    /// The compiled template of a declared field, if the configuration has a string there.
    pub fn template(&self, pointer: &str) -> Option<&Template> {
        self.templates.get(pointer)
    }

    /// The compiled template a field read by [`crate::BuildCtx::parse`] is bound to: `None` for
    /// one that did not compile (its problem is reported already) or that no declaration names
    /// (see [`CompiledConfig::declares`]).
    pub fn bound(&self, field: &crate::TemplateText) -> Option<&Template> {
        self.templates.get(field.pointer()?)
    }

    /// Whether the type's declarations name the field: `false` is a bug of the type (a
    /// [`crate::TemplateText`] field without its [`FieldSpec`]).
    pub fn declares(&self, field: &crate::TemplateText) -> bool {
        field.pointer().is_some()
    }

    /// Whether the string at `pointer` is a declared field.
    pub(crate) fn is_declared(&self, pointer: &str) -> bool {
        self.declared.contains(pointer)
    }

    /// Templates whose pointer starts with `prefix/`, with the rest of the pointer (unescaped
    /// JSON-pointer segment), e.g. every header under `/headers`.
    pub fn templates_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (String, &'a Template)> {
        self.templates.iter().filter_map(move |(pointer, template)| {
            let rest = pointer.strip_prefix(prefix)?.strip_prefix('/')?;
            (!rest.contains('/')).then(|| (unescape_segment(rest), template))
        })
    }

    /// Every placeholder use, in document order.
    pub fn secret_uses(&self) -> &[SecretUse] {
        &self.uses
    }
}

fn escape_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn unescape_segment(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// Compiles a configuration against its field declarations. Problems are appended with pointers
/// prefixed by `base` (the configuration's own pointer in the document).
pub fn compile(
    config: &Value,
    fields: &[FieldSpec],
    base: &str,
    problems: &mut Vec<Problem>,
) -> CompiledConfig {
    let mut compiled = CompiledConfig {
        plain: Value::Null,
        templates: BTreeMap::new(),
        declared: Default::default(),
        uses: Vec::new(),
    };
    compiled.plain = walk(config, "", fields, base, problems, &mut compiled);
    compiled
}

fn walk(
    value: &Value,
    pointer: &str,
    fields: &[FieldSpec],
    base: &str,
    problems: &mut Vec<Problem>,
    out: &mut CompiledConfig,
) -> Value {
    match value {
        Value::String(s) => compile_string(s, pointer, fields, base, problems, out),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| walk(v, &format!("{pointer}/{i}"), fields, base, problems, out))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let child = format!("{pointer}/{}", escape_segment(k));
                    (k.clone(), walk(v, &child, fields, base, problems, out))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn compile_string(
    s: &str,
    pointer: &str,
    fields: &[FieldSpec],
    base: &str,
    problems: &mut Vec<Problem>,
    out: &mut CompiledConfig,
) -> Value {
    let path = format!("{base}{pointer}");
    if fields.iter().any(|f| f.matches(pointer)) {
        out.declared.insert(pointer.to_owned());
    }
    let pieces = match parse(s) {
        Ok(p) => p,
        Err(e) => {
            problems.push(Problem::new(path, e.to_string()));
            return Value::String(s.to_owned());
        }
    };
    let spec = fields.iter().find(|f| f.matches(pointer));
    let has_secret = pieces.iter().any(|p| matches!(p, Piece::Secret(_)));
    match spec {
        None if has_secret => {
            problems.push(Problem::new(
                path,
                "secret placeholders are not allowed in this field (it is not secret-capable)",
            ));
            Value::String(s.to_owned())
        }
        None => Value::String(
            pieces
                .iter()
                .map(|p| match p {
                    Piece::Literal(t) => t.as_ref(),
                    Piece::Secret(_) => "",
                })
                .collect(),
        ),
        Some(spec) => {
            if has_secret && spec.secret.is_none() {
                problems.push(Problem::new(
                    path.clone(),
                    "secret placeholders are not allowed in this field (it is not secret-capable)",
                ));
            }
            let mut segments = Vec::with_capacity(pieces.len());
            for piece in pieces {
                match piece {
                    Piece::Secret(name) => {
                        out.uses.push(SecretUse {
                            name: name.to_owned(),
                            pointer: pointer.to_owned(),
                            accepts: spec.secret.unwrap_or(Accepts::Any),
                        });
                        segments.push(Segment::Secret { name: name.to_owned() });
                    }
                    Piece::Literal(text) if spec.message_template => {
                        match message_segments(&text, spec.escape) {
                            Ok(parts) => segments.extend(parts),
                            Err(e) => problems.push(Problem::new(path.clone(), e)),
                        }
                    }
                    Piece::Literal(text) => segments.push(Segment::Literal(text.into_owned())),
                }
            }
            out.templates.insert(
                pointer.to_owned(),
                Template { segments, escape: spec.escape, unseal: spec.secret.is_some() },
            );
            Value::String(s.to_owned())
        }
    }
}

/// Splits literal text into literal / `${metadataKey}` / `$[dataKey]` segments, or compiles it as
/// a handlebars template when it contains `{{` (ThingsBoard patterns are rewritten into it).
fn message_segments(text: &str, escape: Escape) -> Result<Vec<Segment>, String> {
    if text.len() > super::MAX_TEMPLATE_BYTES {
        return Err(crate::limits::limit_error(
            "maxTemplateBytes",
            super::MAX_TEMPLATE_BYTES,
            format!("the message template is {} bytes long", text.len()),
        ));
    }
    if escape == Escape::JsonString && text.contains("{{{") {
        // `{{{x}}}` and `{{{{raw}}}}` switch escaping off: message data could change the JSON.
        return Err(
            "message template: triple braces are not allowed here (values must be JSON-escaped); use {{...}}"
                .into(),
        );
    }
    if text.contains("{{") {
        let source = rewrite_tb_patterns(text);
        let pieces = super::hbs::compile(&source)?;
        return Ok(vec![Segment::Handlebars(pieces.into_boxed_slice())]);
    }
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some((before, kind, key, after)) = next_tb_pattern(rest) {
        literal.push_str(before);
        if !literal.is_empty() {
            segments.push(Segment::Literal(std::mem::take(&mut literal)));
        }
        segments.push(if kind == '{' {
            Segment::Metadata(key.to_owned())
        } else {
            Segment::Data(key.to_owned())
        });
        rest = after;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

/// Finds the next `${key}` or `$[key]`: (text before, '{' or '[', key, text after).
fn next_tb_pattern(s: &str) -> Option<(&str, char, &str, &str)> {
    let mut from = 0;
    while let Some(offset) = s[from..].find('$') {
        let at = from + offset;
        let (open, close) = match s[at + 1..].chars().next() {
            Some('{') => ('{', '}'),
            Some('[') => ('[', ']'),
            _ => {
                from = at + 1;
                continue;
            }
        };
        let body = &s[at + 2..];
        // The scan stops at the first character that ends or breaks a pattern, so a text full
        // of `${` costs one pass, not one per `$`.
        match body.find([close, '{', '[', '$']) {
            Some(end) if end > 0 && body[end..].starts_with(close) => {
                return Some((&s[..at], open, &body[..end], &body[end + 1..]));
            }
            _ => from = at + 1,
        }
    }
    None
}

fn rewrite_tb_patterns(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((before, kind, key, after)) = next_tb_pattern(rest) {
        out.push_str(before);
        let root = if kind == '{' { "metadata" } else { "msg" };
        out.push_str(&format!("{{{{{root}.[{key}]}}}}"));
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FIELDS: &[FieldSpec] = &[
        FieldSpec::secret_template("/url"),
        FieldSpec::secret_template("/headers/*"),
        FieldSpec::secret("/credentials/password", Accepts::Text),
        FieldSpec::template("/topic"),
    ];

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Typed {
        url: crate::TemplateText,
        headers: std::collections::BTreeMap<String, crate::TemplateText>,
        note: Option<crate::TemplateText>,
    }

    /// A typed configuration's template fields come bound to their own compiled templates; a
    /// field the declarations do not name is bound to none, and no document can claim another
    /// field's template (a template field is a string, nothing else).
    #[test]
    fn typed_template_fields_are_bound_to_their_own_templates() {
        let config = json!({
            "url": "http://h/$<secret:api-key>",
            "headers": {"A/b": "Bearer $<secret:api-token>", "X": "{{msg.a}}"},
            "note": "plain"
        });
        let c = compile(&config, FIELDS, "", &mut Vec::new());
        let typed: Typed = crate::config::parse_compiled(&c, "", |_| {}).unwrap();
        assert_eq!(c.bound(&typed.url).map(|t| t.secret_names().collect::<Vec<_>>()), Some(vec!["api-key"]));
        let header = |name: &str| c.bound(&typed.headers[name]).map(|t| t.secret_names().count());
        assert_eq!((header("A/b"), header("X")), (Some(1), Some(0)));
        assert!(c.bound(typed.note.as_ref().unwrap()).is_none(), "not declared: no template");
        let plain: Typed = crate::config::from_document(&config).unwrap();
        assert!(c.bound(&plain.url).is_none(), "read without the compiled configuration: unbound");
        assert!(
            !c.declares(&plain.url) && !c.declares(typed.note.as_ref().unwrap()) && c.declares(&typed.url)
        );

        // A declared field that does not compile is declared, with no template (its problem is reported).
        let broken = json!({"url": "$<secret:>", "headers": {}});
        let mut problems = Vec::new();
        let c = compile(&broken, FIELDS, "", &mut problems);
        let typed: Typed = crate::config::parse_compiled(&c, "", |_| {}).unwrap();
        assert_eq!((c.declares(&typed.url), c.bound(&typed.url).is_none()), (true, true));
        assert_eq!(problems[0].path, "/url");

        let forged = json!({"url": ["x", "/headers/A~1b"], "headers": {}});
        let c = compile(&forged, FIELDS, "", &mut Vec::new());
        let problems = crate::config::parse_compiled::<Typed>(&c, "/c", |_| {}).unwrap_err();
        assert_eq!(problems[0].path, "/c/url");
        assert!(problems[0].message.contains("expected a string"), "{problems:?}");
    }

    #[test]
    fn compiles_fields_by_declaration_and_reports_every_problem() {
        let config = json!({
            "url": "http://h/${deviceName}/$[temp]?k=$<secret:api-key>",
            "headers": {"Authorization": "Bearer $<secret:api-token>", "X-Literal": "$$<secret:x>"},
            "credentials": {"password": "$<secret:pw>", "username": "$<secret:user>"},
            "topic": "t/{{msg.a}}/$<secret:nope>",
            "note": "cost $$<secret: is escaped",
            "bad": "$<secret:unterminated",
            "timeout": 5,
        });
        let mut problems = Vec::new();
        let c = compile(&config, FIELDS, "/nodes/0/configuration", &mut problems);
        let paths: Vec<(&str, &str)> =
            problems.iter().map(|p| (p.path.as_str(), p.message.as_str())).collect();
        assert_eq!(
            paths,
            [
                (
                    "/nodes/0/configuration/credentials/username",
                    "secret placeholders are not allowed in this field (it is not secret-capable)"
                ),
                (
                    "/nodes/0/configuration/topic",
                    "secret placeholders are not allowed in this field (it is not secret-capable)"
                ),
                (
                    "/nodes/0/configuration/bad",
                    "malformed placeholder at character 0: unterminated placeholder (missing '>')"
                ),
            ]
        );
        let names: Vec<(&str, &str)> =
            c.secret_uses().iter().map(|u| (u.name.as_str(), u.pointer.as_str())).collect();
        assert_eq!(
            names,
            [
                ("api-key", "/url"),
                ("api-token", "/headers/Authorization"),
                ("pw", "/credentials/password"),
                ("nope", "/topic"),
            ]
        );
        assert_eq!(c.plain()["note"], "cost $<secret: is escaped");
        assert_eq!(c.plain()["timeout"], 5);
        assert_eq!(c.template("/headers/X-Literal").unwrap().literal(), Some("$<secret:x>"));
        assert_eq!(c.template("/credentials/password").unwrap().single_secret(), Some("pw"));
        let headers: Vec<String> = c.templates_under("/headers").map(|(k, _)| k).collect();
        assert_eq!(headers, ["Authorization", "X-Literal"]);
        assert!(c.template("/url").unwrap().uses_message());
    }

    #[test]
    fn tb_patterns() {
        let segs = message_segments("a ${x} b $[y] $ {z} ${} $[", Escape::None).unwrap();
        let kinds: Vec<String> = segs
            .iter()
            .map(|s| match s {
                Segment::Literal(t) => format!("L({t})"),
                Segment::Metadata(k) => format!("M({k})"),
                Segment::Data(k) => format!("D({k})"),
                _ => "?".into(),
            })
            .collect();
        assert_eq!(kinds, ["L(a )", "M(x)", "L( b )", "D(y)", "L( $ {z} ${} $[)"]);
        assert_eq!(rewrite_tb_patterns("{{msg.a}} ${k}"), "{{msg.a}} {{metadata.[k]}}");
        assert!(message_segments("{{#if x}}", Escape::None).is_err());
        assert!(message_segments("{\"a\": \"{{{msg.a}}}\"}", Escape::JsonString).is_err());
        assert!(message_segments("{\"a\": \"{{msg.a}}\"}", Escape::JsonString).is_ok());
    }
}
