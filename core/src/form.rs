//! What a configuration form shows for each field, derived from the configuration's typed form:
//! each plugin's configuration struct derives its JSON Schema (schemars), and [`form_fields`]
//! flattens it into one entry per field — its kind (text, number, boolean, enum with its values,
//! list, map), whether it is required, its default, its description (the struct's doc comment)
//! and, for a field of one variant of a tagged enum (`credentials.password` of `type` `basic`),
//! the variant it belongs to — joined with what the descriptor declares about secrets and
//! message templates ([`FieldSpec`]). The configuration is described once, by its type.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::template::{Accepts, FieldSpec};

/// The kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FieldKind {
    /// Text (secret placeholders and templates where its spec says so).
    Text,
    /// A number.
    Number,
    /// True or false.
    Boolean,
    /// One of a fixed list of values (see [`FormField::values`]).
    Enum,
    /// A list of values.
    List,
    /// Names to values (`headers`).
    Map,
    /// Any JSON value.
    Any,
}

/// The variant a field belongs to: shown only when the field at `pointer` holds `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variant {
    /// The tag field, e.g. `/credentials/type`.
    pub pointer: String,
    /// The tag's value, e.g. `basic`.
    pub value: String,
}

/// One field of a configuration form.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FormField {
    /// JSON pointer relative to the configuration (`/headers/*` for every key of a map).
    pub pointer: String,
    /// What it holds.
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// An enum's allowed values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Whether the configuration must have it.
    pub required: bool,
    /// The value used when it is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// What it is for, from the configuration type's documentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The variant it belongs to, when it belongs to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<Variant>,
    /// The secret types it takes (`TEXT`, `FILE`, `ANY`), when it takes secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<&'static str>,
    /// Whether message templates are expanded in it.
    pub template: bool,
    /// What a person calls it: the type's `title`, or its key in words (`readTimeoutMs` →
    /// `Read timeout ms`).
    pub label: String,
    /// A number's least value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// A number's greatest value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// Source code in this language (`rhai`, `handlebars`): edited in a code editor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A key in words: `readTimeoutMs` → `Read timeout ms`.
fn words(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    let mut previous_lower = false;
    for c in key.chars() {
        if c.is_uppercase() && previous_lower {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else if c == '_' {
            out.push(' ');
        } else {
            out.push(c);
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
    }
    let mut chars = out.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The name of a secret type as the API shows it.
pub fn accepts_name(accepts: Accepts) -> &'static str {
    match accepts {
        Accepts::Text => "TEXT",
        Accepts::File | Accepts::Certificate | Accepts::PrivateKey => "FILE",
        Accepts::Any => "ANY",
    }
}

/// A schema for a configuration without fields of its own (an empty object).
pub fn empty_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}, "additionalProperties": false})
}

/// The form of a configuration whose JSON Schema is `schema`, with the secret and template
/// declarations of `specs`. Fields come in the schema's key order; a tagged enum's tag comes
/// first, then each variant's fields.
pub fn form_fields(schema: &Value, specs: &[FieldSpec]) -> Vec<FormField> {
    let defs = schema.get("$defs").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut out = Vec::new();
    Walker { defs: &defs, specs, out: &mut out }.object(schema, "", None);
    out
}

/// `schema` with its `$ref` followed (local definitions only).
fn resolve<'s>(defs: &'s Map<String, Value>, schema: &'s Value) -> &'s Value {
    match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => defs.get(name).map_or(schema, |s| resolve(defs, s)),
        None => schema,
    }
}

/// The alternatives of `schema` other than `null` (an `Option`'s `anyOf`, an enum's `oneOf`, and
/// the two nested: an optional tagged enum).
fn alternatives<'s>(defs: &'s Map<String, Value>, schema: &'s Value) -> Vec<&'s Value> {
    let schema = resolve(defs, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(list) = schema.get(key).and_then(Value::as_array) {
            return list
                .iter()
                .map(|s| resolve(defs, s))
                .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
                .flat_map(|s| alternatives(defs, s))
                .collect();
        }
    }
    vec![schema]
}

struct Walker<'a> {
    defs: &'a Map<String, Value>,
    specs: &'a [FieldSpec],
    out: &'a mut Vec<FormField>,
}

impl Walker<'_> {
    /// The properties of an object schema as fields under `base`.
    fn object(&mut self, schema: &Value, base: &str, variant: Option<&Variant>) {
        let schema = resolve(self.defs, schema);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return };
        for (name, property) in properties {
            let pointer = format!("{base}/{}", name.replace('~', "~0").replace('/', "~1"));
            self.field(property, &pointer, required.contains(&name.as_str()), variant);
        }
    }

    /// One property, with its nested fields when it is an object or a tagged enum.
    fn field(&mut self, property: &Value, pointer: &str, required: bool, variant: Option<&Variant>) {
        let description = property.get("description").and_then(Value::as_str).map(str::to_owned);
        let default = property.get("default").cloned();
        let choices = alternatives(self.defs, property);
        // A tagged enum: every alternative is an object naming its variant in the same property.
        if let Some(tag) = tagged(&choices) {
            let values: Vec<String> = choices.iter().filter_map(|c| tag_value(c, &tag)).collect();
            let tag_pointer = format!("{pointer}/{tag}");
            let tag_description = choices
                .iter()
                .find_map(|c| c.pointer(&format!("/properties/{tag}/description")).and_then(Value::as_str))
                .map(str::to_owned)
                .or(description);
            self.push(
                &tag_pointer,
                FieldKind::Enum,
                values,
                required,
                default,
                tag_description,
                variant,
                None,
            );
            for choice in choices {
                let Some(value) = tag_value(choice, &tag) else { continue };
                let own = Variant { pointer: tag_pointer.clone(), value };
                let mut fields = Vec::new();
                let mut inner = Walker { defs: self.defs, specs: self.specs, out: &mut fields };
                inner.object(choice, pointer, Some(&own));
                // The tag itself is listed once, above.
                self.out.extend(fields.into_iter().filter(|f| f.pointer != tag_pointer));
            }
            return;
        }
        let schema = choices.first().copied().unwrap_or(property);
        let (kind, values) = if choices.len() > 1 && choices.iter().all(|c| c.get("const").is_some()) {
            // An enum whose values are documented one by one: a `oneOf` of constants.
            let values = choices.iter().flat_map(|c| kind_of(c).1).collect();
            (FieldKind::Enum, values)
        } else {
            kind_of(schema)
        };
        if kind == FieldKind::Any && schema.get("properties").is_some() {
            self.object(schema, pointer, variant);
            return;
        }
        self.push(pointer, kind, values, required, default, description, variant, Some(property));
        if kind == FieldKind::Map
            && let Some(items) = schema.get("additionalProperties").filter(|v| v.is_object())
        {
            let (kind, values) = kind_of(resolve(self.defs, items));
            let key = format!("{pointer}/*");
            self.push(&key, kind, values, false, None, None, variant, None);
        }
    }

    #[allow(clippy::too_many_arguments, reason = "one field's every attribute, named at the call")]
    fn push(
        &mut self,
        pointer: &str,
        kind: FieldKind,
        values: Vec<String>,
        required: bool,
        default: Option<Value>,
        description: Option<String>,
        variant: Option<&Variant>,
        property: Option<&Value>,
    ) {
        let spec = self.specs.iter().find(|s| s.pointer == pointer);
        // What the property says of itself, or of the one alternative an `Option` wraps.
        let own = |key: &str| {
            property.and_then(|p| {
                p.get(key).or_else(|| alternatives(self.defs, p).first().and_then(|a| a.get(key))).cloned()
            })
        };
        let key = pointer.rsplit('/').next().unwrap_or_default().replace("~1", "/").replace("~0", "~");
        let label = own("title").and_then(|t| t.as_str().map(str::to_owned)).unwrap_or_else(|| words(&key));
        self.out.push(FormField {
            label,
            minimum: own("minimum").and_then(|v| v.as_f64()),
            maximum: own("maximum").and_then(|v| v.as_f64()),
            code: own("format")
                .and_then(|v| v.as_str().filter(|f| matches!(*f, "rhai" | "handlebars")).map(str::to_owned)),
            pointer: pointer.to_owned(),
            kind,
            values,
            required,
            default,
            description,
            variant: variant.cloned(),
            secret: spec.and_then(|s| s.secret).map(accepts_name),
            template: spec.is_some_and(|s| s.message_template),
        });
    }
}

/// The keys of each variant of the tagged enum whose tag is at `tag_pointer` (e.g.
/// `/credentials/type`), as `form` lists them: `(variant, keys)`, every variant of the tag.
pub fn variant_keys(form: &[FormField], tag_pointer: &str) -> Vec<(String, Vec<String>)> {
    let Some(tag) = form.iter().find(|f| f.pointer == tag_pointer) else { return Vec::new() };
    let parent = tag_pointer.rsplit_once('/').map_or("", |(parent, _)| parent);
    tag.values
        .iter()
        .map(|value| {
            let keys = form
                .iter()
                .filter(|f| f.variant.as_ref().is_some_and(|v| v.pointer == tag_pointer && v.value == *value))
                .filter_map(|f| f.pointer.strip_prefix(parent)?.strip_prefix('/').map(str::to_owned))
                .collect();
            (value.clone(), keys)
        })
        .collect()
}

/// Reads the object holding the tag at `tag_pointer` as configurations have always been read:
/// without a tag it is the `default` variant (when there is one), and keys that belong only to
/// other variants (a form that switched variants leaves them) are dropped from this copy. Keys of
/// no variant stay, to be refused at their pointer.
pub fn settle_variant(
    doc: &mut Value,
    tag_pointer: &str,
    variants: &[(String, Vec<String>)],
    default: Option<&str>,
) {
    let Some((parent, tag)) = tag_pointer.rsplit_once('/') else { return };
    let Some(Value::Object(object)) = doc.pointer_mut(parent) else { return };
    if !object.contains_key(tag)
        && let Some(default) = default
    {
        object.insert(tag.to_owned(), Value::String(default.to_owned()));
    }
    let Some(chosen) = object.get(tag).and_then(Value::as_str).map(str::to_owned) else { return };
    let Some((_, own)) = variants.iter().find(|(value, _)| *value == chosen) else { return };
    let others: Vec<&String> =
        variants.iter().flat_map(|(_, keys)| keys).filter(|key| !own.contains(key)).collect();
    object.retain(|key, _| !others.contains(&key));
}

/// The property every alternative names its variant by (`type`), when `choices` are a tagged
/// enum's variants.
fn tagged(choices: &[&Value]) -> Option<String> {
    let first = choices.first()?.get("properties")?.as_object()?;
    let tag = first.keys().find(|k| choices.iter().all(|c| tag_value(c, k).is_some()))?;
    (choices.len() > 1 || first.len() > 1).then(|| tag.clone())
}

/// The constant a variant's tag property holds.
fn tag_value(choice: &Value, tag: &str) -> Option<String> {
    let property = choice.get("properties")?.get(tag)?;
    match property.get("const") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => match property.get("enum")?.as_array()?.as_slice() {
            [Value::String(s)] => Some(s.clone()),
            _ => None,
        },
    }
}

/// A schema's kind, and an enum's values.
fn kind_of(schema: &Value) -> (FieldKind, Vec<String>) {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return (FieldKind::Enum, values.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect());
    }
    if let Some(Value::String(one)) = schema.get("const") {
        return (FieldKind::Enum, vec![one.clone()]);
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => Vec::new(),
    };
    let kind = match types.as_slice() {
        ["string"] => FieldKind::Text,
        ["integer"] | ["number"] => FieldKind::Number,
        ["boolean"] => FieldKind::Boolean,
        ["array"] => FieldKind::List,
        ["object"] if schema.get("properties").is_none() => FieldKind::Map,
        _ => FieldKind::Any,
    };
    (kind, Vec::new())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_tagged_enum_becomes_its_tag_and_each_variants_fields() {
        // What schemars derives for `credentials: Option<Credentials>`, an internally tagged enum.
        let schema = json!({
            "type": "object",
            "properties": {
                "url": {"type": ["string", "null"], "description": "Where to."},
                "method": {"anyOf": [{"$ref": "#/$defs/Method"}, {"type": "null"}], "default": "POST"},
                "headers": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
                "credentials": {"anyOf": [{"$ref": "#/$defs/Credentials"}, {"type": "null"}]},
            },
            "required": ["url"],
            "$defs": {
                "Method": {"type": "string", "enum": ["GET", "POST"]},
                "Credentials": {"oneOf": [
                    {"type": "object", "properties": {"type": {"type": "string", "const": "anonymous"}}, "required": ["type"]},
                    {"type": "object", "description": "User and password.", "properties": {
                        "type": {"type": "string", "const": "basic"},
                        "username": {"type": ["string", "null"]},
                        "password": {"type": ["string", "null"]},
                    }, "required": ["type"]},
                ]},
            },
        });
        let specs = [FieldSpec::secret("/credentials/password", Accepts::Text), FieldSpec::template("/url")];
        let form = form_fields(&schema, &specs);
        let shown: Vec<(&str, FieldKind, bool)> =
            form.iter().map(|f| (f.pointer.as_str(), f.kind, f.required)).collect();
        // In the schema's key order (the declaration's: serde_json keeps it); each variant's
        // fields after the tag.
        assert_eq!(
            shown,
            [
                ("/url", FieldKind::Text, true),
                ("/method", FieldKind::Enum, false),
                ("/headers", FieldKind::Map, false),
                ("/headers/*", FieldKind::Text, false),
                ("/credentials/type", FieldKind::Enum, false),
                ("/credentials/username", FieldKind::Text, false),
                ("/credentials/password", FieldKind::Text, false),
            ]
        );
        let field = |pointer: &str| form.iter().find(|f| f.pointer == pointer).unwrap();
        assert_eq!(field("/method").values, ["GET", "POST"]);
        assert_eq!(field("/method").default, Some(json!("POST")));
        assert_eq!(field("/credentials/type").values, ["anonymous", "basic"]);
        let basic = Variant { pointer: "/credentials/type".into(), value: "basic".into() };
        let (password, url) = (field("/credentials/password"), field("/url"));
        assert_eq!(password.variant.as_ref(), Some(&basic));
        assert_eq!(
            (password.secret, url.template, url.description.as_deref()),
            (Some("TEXT"), true, Some("Where to."))
        );
    }
}
