//! Rendering a compiled template at execution time: secrets are resolved through the store each
//! time (the value of the moment), message values are inserted as data and never scanned for
//! placeholders, and the result is a zeroizing [`SecretString`].

use std::borrow::Cow;
use std::sync::{LazyLock, OnceLock};

use handlebars::Handlebars;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use smallvec::SmallVec;
use veil_store::{SecretValue, Store, TenantId};
use zeroize::Zeroizing;

use super::compile::{Escape, Segment, Template};
use super::hbs;
use crate::error::RenderError;
use crate::forms::{json_escape_into, json_escaped_len};
use crate::message::Msg;
use crate::sealed;
use crate::secrets::Secrets;

static PLAIN: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut hb = hbs::registry();
    hb.register_escape_fn(handlebars::no_escape);
    hb
});

static JSON_STRING: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut hb = hbs::registry();
    hb.register_escape_fn(|s| {
        let mut out = String::with_capacity(s.len());
        json_escape_into(&mut out, s);
        out
    });
    hb
});

/// Where secrets come from: a host's store (any secret of the tenant), or a plugin's [`Secrets`]
/// (the declared ones only).
enum Source<'a> {
    Store(&'a Store, TenantId),
    Secrets(&'a Secrets),
}

/// What a template renders against: where secrets come from, and the message.
pub struct RenderCtx<'a> {
    source: Source<'a>,
    msg: Option<&'a Msg>,
    /// The message as handlebars sees it, with every sealed-value marker replaced by a handle of
    /// fixed length (helpers such as `len` must learn nothing of a value), and the markers.
    handlebars_data: OnceLock<(handlebars::Context, sealed::Handles)>,
}

impl<'a> RenderCtx<'a> {
    /// A host's context over every secret of `tenant`; `msg` is `None` for connection-level
    /// settings rendered without a message. Plugins get [`RenderCtx::with_secrets`] instead.
    pub fn new(store: &'a Store, tenant: TenantId, msg: Option<&'a Msg>) -> Self {
        Self { source: Source::Store(store, tenant), msg, handlebars_data: OnceLock::new() }
    }

    /// A context over the declared secrets of one node or integration.
    pub fn with_secrets(secrets: &'a Secrets, msg: Option<&'a Msg>) -> Self {
        Self { source: Source::Secrets(secrets), msg, handlebars_data: OnceLock::new() }
    }

    /// Resolves one secret's value (for FILE secrets used as bytes).
    pub fn resolve(&self, name: &str) -> Result<SecretValue, RenderError> {
        match self.source {
            Source::Store(store, tenant) => store
                .resolve(tenant, name)
                .map_err(|source| RenderError::Secret { name: name.to_owned(), source }),
            Source::Secrets(secrets) => secrets.resolve(name),
        }
    }

    fn handlebars_data(&self) -> &(handlebars::Context, sealed::Handles) {
        self.handlebars_data.get_or_init(|| {
            let mut data = match self.msg {
                Some(m) => json!({
                    "msg": m.data,
                    "metadata": m.metadata,
                    "msgType": m.msg_type,
                    "originator": m.originator,
                }),
                None => json!({}),
            };
            let handles = sealed::Handles::take_from(&mut data);
            (handlebars::Context::from(data), handles)
        })
    }

    /// Renders a template to text. Constant text is borrowed from the template and a field that
    /// is exactly one secret hands over its decrypted buffer; anything else is assembled once in a
    /// zeroizing buffer of exact size.
    pub fn render<'t>(&self, template: &'t Template) -> Result<Rendered<'t>, RenderError> {
        match template.segments.as_slice() {
            [] => return Ok(Rendered::Constant("")),
            [Segment::Literal(text)] => return Ok(Rendered::Constant(text)),
            [Segment::Secret { name }] => {
                let value = self.resolve_text(name)?;
                let text = value.expose_text().unwrap_or_default();
                let len = match template.escape {
                    Escape::None => text.len(),
                    Escape::JsonString => json_escaped_len(text),
                };
                if len == text.len() {
                    return Ok(Rendered::Value(value));
                }
                let mut out = String::with_capacity(len);
                json_escape_into(&mut out, text);
                return Ok(Rendered::Assembled(SecretString::from(out)));
            }
            _ => {}
        }
        // Decrypt first (one buffer per secret, owned here), then borrow the texts; most
        // templates have a handful of segments, kept on the stack.
        let values: SmallVec<[SecretValue; 2]> = template
            .segments
            .iter()
            .filter_map(|segment| match segment {
                Segment::Secret { name } => Some(self.resolve(name)),
                _ => None,
            })
            .collect::<Result<_, _>>()?;
        let mut values = values.iter();
        // Secrets of sealed values opened from the message.
        let mut opened = Vec::new();
        let mut parts: SmallVec<[Part<'_>; 6]> = SmallVec::with_capacity(template.segments.len());
        for segment in &template.segments {
            parts.push(match segment {
                Segment::Literal(text) => Part::Text(Cow::Borrowed(text)),
                Segment::Secret { name } => {
                    let value = values.next().expect("one value per secret segment");
                    let text = value.expose_text().ok_or_else(|| RenderError::NotText(name.clone()))?;
                    Part::Inserted(Cow::Borrowed(text))
                }
                Segment::Metadata(key) => self.inserted(
                    template,
                    match self.msg.and_then(|m| m.metadata.get(key)) {
                        Some(v) => Cow::Borrowed(v.as_str()),
                        None => Cow::Owned(format!("${{{key}}}")),
                    },
                    &mut opened,
                )?,
                Segment::Data(key) => self.inserted(
                    template,
                    match self.msg.and_then(|m| m.data.get(key)) {
                        Some(Value::String(s)) => Cow::Borrowed(s.as_str()),
                        Some(other) => Cow::Owned(other.to_string()),
                        None => Cow::Owned(format!("$[{key}]")),
                    },
                    &mut opened,
                )?,
                Segment::Handlebars(tpl) => {
                    let registry: &Handlebars<'static> = match template.escape {
                        Escape::None => &PLAIN,
                        Escape::JsonString => &JSON_STRING,
                    };
                    let (data, handles) = self.handlebars_data();
                    let text = hbs::render(tpl, registry, data).map_err(RenderError::Template)?;
                    let text = handles.restore(text);
                    // Handlebars already escaped the inserted values (a marker has nothing to
                    // escape); an opened value is escaped as it goes in.
                    if !sealed::may_hold_markers(&text) {
                        Part::Text(Cow::Owned(text))
                    } else if template.unseal {
                        let mut out = Zeroizing::new(String::with_capacity(text.len()));
                        sealed::unseal_into(&text, self.opener()?, template.escape, &mut out, &mut opened)?;
                        Part::OpenedText(out)
                    } else {
                        Part::Text(Cow::Owned(sealed::mask_sealed(&text).into_owned()))
                    }
                }
            });
        }
        let escape = template.escape;
        let len: usize = parts.iter().map(|p| p.len(escape)).sum();
        // Exact capacity: the buffer holding plaintext is never reallocated (which would leave an
        // unzeroized copy behind); SecretString zeroizes it on drop.
        let mut out = String::with_capacity(len);
        for part in &parts {
            part.write(&mut out, escape);
        }
        debug_assert_eq!(out.len(), len);
        if opened.is_empty() {
            Ok(Rendered::Assembled(SecretString::from(out)))
        } else {
            opened.sort();
            opened.dedup();
            // A sealed value outlives nothing: a secret deleted since it was sealed is not sent.
            let (tenant, _) = self.opener()?;
            if let Some(gone) = opened.iter().find(|name| self.store().version(tenant, name).is_none()) {
                return Err(RenderError::SealedSecretDeleted(gone.clone()));
            }
            Ok(Rendered::Unsealed(Box::new((SecretString::from(out), opened))))
        }
    }

    fn store(&self) -> &Store {
        match self.source {
            Source::Store(store, _) => store,
            Source::Secrets(secrets) => secrets.store(),
        }
    }

    /// The tenant and rule chain whose sealed values this context opens, or why it opens none.
    fn opener(&self) -> Result<(TenantId, Option<uuid::Uuid>), RenderError> {
        match self.source {
            Source::Store(_, tenant) => Ok((tenant, None)),
            Source::Secrets(secrets) if secrets.opens_sealed() => Ok((secrets.tenant(), secrets.scope())),
            Source::Secrets(_) => Err(RenderError::SealedInCustomerChain),
        }
    }

    /// Message content for a field: sealed values in it are opened in a secret-capable field
    /// (their secrets added to `opened`) and shown as `***` elsewhere.
    #[inline]
    fn inserted<'v>(
        &self,
        template: &Template,
        text: Cow<'v, str>,
        opened: &mut Vec<String>,
    ) -> Result<Part<'v>, RenderError> {
        if !sealed::may_hold_markers(&text) {
            return Ok(Part::Inserted(text));
        }
        if !template.unseal {
            return Ok(Part::Inserted(Cow::Owned(sealed::mask_sealed(&text).into_owned())));
        }
        let mut out = Zeroizing::new(String::with_capacity(text.len()));
        sealed::unseal_into(&text, self.opener()?, Escape::None, &mut out, opened)?;
        Ok(Part::OpenedInserted(out))
    }

    /// Resolves a secret that must be text.
    fn resolve_text(&self, name: &str) -> Result<SecretValue, RenderError> {
        let value = self.resolve(name)?;
        match value.expose_text() {
            Some(_) => Ok(value),
            None => Err(RenderError::NotText(name.to_owned())),
        }
    }
}

/// A rendered field. Read it with [`ExposeSecret::expose_secret`] where it is written into a
/// request or connection; keep it with [`Rendered::into_owned`] when it must outlive the
/// template. Plaintext lives only in zeroizing buffers, and `Debug` never shows it.
pub enum Rendered<'t> {
    /// Constant text of the configuration (no secret, no message value): borrowed, not copied.
    Constant(&'t str),
    /// A field that is exactly one TEXT secret: its decrypted buffer, not copied.
    Value(SecretValue),
    /// Everything else: assembled in one buffer.
    Assembled(SecretString),
    /// Message content that held sealed values, opened for this field: the text and the names
    /// of the secrets in it (the send must be checked against their destinations).
    /// Boxed: the rare case does not make every rendered field bigger.
    Unsealed(Box<(SecretString, Vec<String>)>),
}

impl Rendered<'_> {
    /// The secrets of the sealed values opened into this field (sorted; usually none).
    pub fn sealed_secrets(&self) -> &[String] {
        match self {
            Self::Unsealed(opened) => &opened.1,
            _ => &[],
        }
    }

    /// The value in a buffer of its own, for keeping past the template's lifetime.
    pub fn into_owned(self) -> SecretString {
        match self {
            Self::Assembled(s) => s,
            Self::Unsealed(opened) => opened.0,
            other => SecretString::from(other.expose_secret()),
        }
    }
}

impl ExposeSecret<str> for Rendered<'_> {
    fn expose_secret(&self) -> &str {
        match self {
            Self::Constant(text) => text,
            // Checked to be text when rendered.
            Self::Value(value) => value.expose_text().unwrap_or_default(),
            Self::Assembled(s) => s.expose_secret(),
            Self::Unsealed(opened) => opened.0.expose_secret(),
        }
    }
}

impl std::fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rendered([REDACTED])")
    }
}

enum Part<'a> {
    /// Literal text from the configuration, or handlebars output (already escaped).
    Text(Cow<'a, str>),
    /// A secret's value or message content: escaped as the field asks.
    Inserted(Cow<'a, str>),
    /// Handlebars output with sealed values opened (already escaped).
    OpenedText(Zeroizing<String>),
    /// Message content with sealed values opened: escaped as the field asks.
    OpenedInserted(Zeroizing<String>),
}

impl Part<'_> {
    fn text(&self) -> (&str, bool) {
        match self {
            Self::Text(t) => (t, false),
            Self::Inserted(t) => (t, true),
            Self::OpenedText(t) => (t, false),
            Self::OpenedInserted(t) => (t, true),
        }
    }

    fn len(&self, escape: Escape) -> usize {
        match (self.text(), escape) {
            ((t, false), _) | ((t, true), Escape::None) => t.len(),
            ((t, true), Escape::JsonString) => json_escaped_len(t),
        }
    }

    fn write(&self, out: &mut String, escape: Escape) {
        match (self.text(), escape) {
            ((t, false), _) | ((t, true), Escape::None) => out.push_str(t),
            ((t, true), Escape::JsonString) => json_escape_into(out, t),
        }
    }
}
