//! Reading a document into its typed form: every problem at its JSON pointer. serde reports what
//! went wrong through [`FieldError`] (its own calls: an unknown field and the fields expected, a
//! missing field, a value of the wrong type), so no message text is ever parsed, and a problem
//! never carries a value from the document (a password typed into the wrong field stays unseen).

use std::fmt;

use serde::de::{DeserializeOwned, Expected, Unexpected};
use serde_json::Value;

use crate::error::Problem;

/// A field that holds a template (secret placeholders, message templates): its text as written
/// and where it stood. Read by [`crate::BuildCtx::parse`], it is bound to its compiled template,
/// which [`crate::CompiledConfig::bound`] returns: a configuration type says which of its fields
/// are templates, and a node takes each field's template from the field itself (no pointer is
/// written twice). Its JSON form, and its schema, is a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateText {
    text: String,
    /// The pointer of the compiled template (relative to the configuration); `None` when read
    /// without one (a plain JSON document).
    at: Option<String>,
}

impl TemplateText {
    /// Whether it holds nothing but white space (a required credential left blank would be sent
    /// as nothing, e.g. `Authorization: Bearer `). A placeholder is never blank.
    pub fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where its compiled template is, when it was read bound to one.
    pub(crate) fn pointer(&self) -> Option<&str> {
        self.at.as_deref()
    }
}

impl<'de> serde::Deserialize<'de> for TemplateText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = TemplateText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<TemplateText, E> {
                Ok(TemplateText { text: text.to_owned(), at: None })
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<TemplateText, E> {
                Ok(TemplateText { text, at: None })
            }
            fn visit_newtype_struct<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<TemplateText, D::Error> {
                let (text, at) = <(String, String) as serde::Deserialize>::deserialize(d)?;
                Ok(TemplateText { text, at: Some(at) })
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

impl schemars::JsonSchema for TemplateText {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "String".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// The tree serde reads, with every string at one of `templates` (pointers relative to the
/// tree's root) handed over with its pointer: a newtype wrapping `(text, pointer)`, a shape no
/// JSON document makes, so a configuration cannot claim another field's template.
fn bind_templates(
    value: serde_value::Value,
    pointer: &mut String,
    templates: &dyn Fn(&str) -> bool,
) -> serde_value::Value {
    use serde_value::Value as V;
    match value {
        V::String(text) if templates(pointer) => {
            V::Newtype(Box::new(V::Seq(vec![V::String(text), V::String(pointer.clone())])))
        }
        V::Map(map) => V::Map(
            map.into_iter()
                .map(|(key, value)| {
                    let len = pointer.len();
                    if let V::String(k) = &key {
                        pointer.push('/');
                        pointer.push_str(&escape_pointer(k));
                    }
                    let value = bind_templates(value, pointer, templates);
                    pointer.truncate(len);
                    (key, value)
                })
                .collect(),
        ),
        V::Seq(items) => V::Seq(
            items
                .into_iter()
                .enumerate()
                .map(|(i, value)| {
                    let len = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    let value = bind_templates(value, pointer, templates);
                    pointer.truncate(len);
                    value
                })
                .collect(),
        ),
        other => other,
    }
}

/// `Ok` when `field` holds something; otherwise the problem at `pointer`: `is required{why}`,
/// with `: it is empty` when it is there but blank.
pub fn required_field(field: Option<&TemplateText>, why: &str) -> Result<(), String> {
    match field {
        Some(text) if !text.is_blank() => Ok(()),
        Some(_) => Err(format!("is required{why}: it is empty")),
        None => Err(format!("is required{why}")),
    }
}

/// Why a document does not deserialize, as serde told it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldError {
    /// A key the type does not have.
    UnknownField {
        /// The key.
        field: String,
        /// The keys the type has.
        expected: &'static [&'static str],
    },
    /// A required key is absent.
    MissingField(&'static str),
    /// A value of the wrong kind (what was found, never its content; what was expected).
    WrongType {
        /// What was found: `a string`, `an integer`, ….
        found: String,
        /// What the type expected.
        expected: String,
    },
    /// A variant name the type does not have (an enum's tag).
    UnknownVariant {
        /// The name found (a type name such as `oauth`, never a value field's content).
        variant: String,
        /// The expected names.
        expected: &'static [&'static str],
    },
    /// Any other failure, as the type's own deserializer words it.
    Other(String),
}

/// `a`, `a or b`, `one of a, b, c`.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => "nothing".to_owned(),
        [one] => (*one).to_owned(),
        [a, b] => format!("{a} or {b}"),
        many => format!("one of {}", many.join(", ")),
    }
}

/// What was found, without its content.
fn kind_of(unexpected: &Unexpected<'_>) -> String {
    match unexpected {
        Unexpected::Str(_) | Unexpected::Char(_) => "a string".to_owned(),
        Unexpected::Bytes(_) => "bytes".to_owned(),
        Unexpected::Signed(_) | Unexpected::Unsigned(_) => "an integer".to_owned(),
        Unexpected::Float(_) => "a number".to_owned(),
        Unexpected::Unit => "null".to_owned(),
        other => other.to_string(),
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownField { expected, .. } => write!(f, "unknown field (expected {})", one_of(expected)),
            Self::MissingField(field) => write!(f, "missing field `{field}`"),
            Self::WrongType { found, expected } => write!(f, "invalid type: {found}, expected {expected}"),
            Self::UnknownVariant { variant, expected } => {
                write!(f, "'{variant}' is not one of {}", expected.join(", "))
            }
            Self::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for FieldError {}

impl serde::de::Error for FieldError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::Other(message.to_string())
    }

    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self::WrongType { found: kind_of(&unexpected), expected: expected.to_string() }
    }

    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self::WrongType { found: kind_of(&unexpected), expected: expected.to_string() }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::UnknownVariant { variant: variant.to_owned(), expected }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::UnknownField { field: field.to_owned(), expected }
    }

    fn missing_field(field: &'static str) -> Self {
        Self::MissingField(field)
    }
}

/// Deserializes `doc` as `T`: the value, or the first failure with the pointer where it happened.
pub fn from_document<T: DeserializeOwned>(doc: &Value) -> Result<T, (String, FieldError)> {
    from_document_bound(doc, None)
}

/// [`from_document`], with the [`TemplateText`] fields at the pointers `templates` accepts (if
/// any) bound to them.
fn from_document_bound<T: DeserializeOwned>(
    doc: &Value,
    templates: Option<&dyn Fn(&str) -> bool>,
) -> Result<T, (String, FieldError)> {
    // serde_json's own deserializer has serde_json's error type; a serde-value tree lets serde
    // report through ours.
    let tree = serde_value::to_value(doc).map_err(|e| (String::new(), FieldError::Other(e.to_string())))?;
    // Only a compiled configuration has templates to bind: any other document is read as it is.
    let tree = match templates {
        Some(templates) => bind_templates(tree, &mut String::new(), templates),
        None => tree,
    };
    let de = serde_value::ValueDeserializer::<FieldError>::new(tree);
    serde_path_to_error::deserialize(de).map_err(|e| (pointer_of(e.path()), e.into_inner()))
}

/// Deserializes a configuration document, reporting a type error at its JSON pointer.
pub fn parse_doc<T: DeserializeOwned>(doc: &Value) -> Result<T, Vec<Problem>> {
    from_document(doc).map_err(|(path, e)| vec![Problem::new(path, e.to_string())])
}

/// Deserializes a node's or integration's configuration into its typed form. Every unknown or
/// misspelt key is a problem at its own pointer (`/nodes/0/configuration/readTimeoutMS`), all of
/// them at once, and then the first type error, all under `base`.
pub fn parse_config<T: DeserializeOwned>(doc: &Value, base: &str) -> Result<T, Vec<Problem>> {
    parse_config_with(doc, base, |_| {})
}

/// [`parse_config_with`] of a compiled configuration: its [`TemplateText`] fields come bound to
/// their compiled templates.
pub(crate) fn parse_compiled<T: DeserializeOwned>(
    config: &crate::CompiledConfig,
    base: &str,
    prepare: impl FnOnce(&mut Value),
) -> Result<T, Vec<Problem>> {
    parse_document(config.plain(), base, prepare, Some(&|pointer| config.is_declared(pointer)))
}

/// [`parse_config`] of the document as `prepare` leaves it (a copy: the configuration stored is
/// the one written), for what a type reads differently from its JSON (a tagged enum's default
/// variant, say).
pub fn parse_config_with<T: DeserializeOwned>(
    doc: &Value,
    base: &str,
    prepare: impl FnOnce(&mut Value),
) -> Result<T, Vec<Problem>> {
    parse_document(doc, base, prepare, None)
}

fn parse_document<T: DeserializeOwned>(
    doc: &Value,
    base: &str,
    prepare: impl FnOnce(&mut Value),
    templates: Option<&dyn Fn(&str) -> bool>,
) -> Result<T, Vec<Problem>> {
    let mut doc = doc.clone();
    prepare(&mut doc);
    let mut problems = Vec::new();
    // Each round takes one unknown key out (serde stops at the first); a configuration has far
    // fewer keys than this.
    for _ in 0..256 {
        let (path, error) = match from_document_bound::<T>(&doc, templates) {
            Ok(value) if problems.is_empty() => return Ok(value),
            Ok(_) => return Err(problems),
            Err(e) => e,
        };
        if let FieldError::UnknownField { field, .. } = &error {
            // The path ends with the key itself, or (inside a tagged enum) at its object.
            let escaped = escape_pointer(field);
            let parent = path.strip_suffix(&format!("/{escaped}")).unwrap_or(&path).to_owned();
            if let Some(Value::Object(map)) = doc.pointer_mut(&parent)
                && map.remove(field).is_some()
            {
                problems.push(Problem::new(format!("{base}{parent}/{escaped}"), error.to_string()));
                continue;
            }
        }
        if let FieldError::MissingField(field) = &error {
            // At the field's own pointer, where a form shows it.
            problems.push(Problem::new(format!("{base}{path}/{}", escape_pointer(field)), "is required"));
            return Err(problems);
        }
        problems.push(Problem::new(format!("{base}{path}"), error.to_string()));
        return Err(problems);
    }
    Err(problems)
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    path.iter()
        .map(|s| match s {
            serde_path_to_error::Segment::Seq { index } => format!("/{index}"),
            serde_path_to_error::Segment::Map { key } => format!("/{}", escape_pointer(key)),
            serde_path_to_error::Segment::Enum { variant } => format!("/{variant}"),
            serde_path_to_error::Segment::Unknown => String::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        token: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        read_timeout_ms: Option<u64>,
        inner: Option<Inner>,
    }

    #[test]
    fn every_unknown_key_is_named_at_its_pointer() {
        let doc = json!({"readTimeoutMS": 5, "inner": {"tokn": "x", "a/b": 1}, "readTimeoutMs": 3});
        let problems = parse_config::<Config>(&doc, "/nodes/0/configuration").unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/nodes/0/configuration/inner/a~1b",
                "/nodes/0/configuration/inner/tokn",
                "/nodes/0/configuration/readTimeoutMS"
            ]
        );
        assert!(problems[2].message.contains("expected readTimeoutMs or inner"), "{problems:?}");
        let wrong = parse_config::<Config>(&json!({"readTimeoutMs": "soon"}), "").unwrap_err();
        assert_eq!(wrong[0].path, "/readTimeoutMs");
        assert!(parse_config::<Config>(&json!({"readTimeoutMs": 3}), "").is_ok());
    }

    #[test]
    fn a_wrong_value_is_named_by_its_kind_never_shown() {
        let wrong = parse_config::<Config>(&json!({"readTimeoutMs": "hunter2-secret"}), "/c").unwrap_err();
        assert_eq!(wrong[0].path, "/c/readTimeoutMs");
        assert_eq!(wrong[0].message, "invalid type: a string, expected u64");
        let nested = parse_config::<Config>(&json!({"inner": {"token": 12345678}}), "").unwrap_err();
        assert_eq!(
            (nested[0].path.as_str(), nested[0].message.as_str()),
            ("/inner/token", "invalid type: an integer, expected a string")
        );
        let missing = from_document::<Required>(&json!({})).unwrap_err();
        assert_eq!(missing, (String::new(), FieldError::MissingField("name")));
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Required {
        name: String,
    }
}
