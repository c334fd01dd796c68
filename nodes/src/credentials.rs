//! `credentials` of the nodes that authenticate (`rest_api_call`, `mqtt`): one tagged enum per
//! node over the same variant types, so `type` picks the variant, an unknown key of that variant
//! is refused at its pointer, and the descriptors say which fields each `type` has. Every
//! credential text may be a secret placeholder; each is checked filled at build, with the same
//! message whatever the node.

use schemars::JsonSchema;
use serde::Deserialize;
use veil_core::{BuildCtx, CompiledConfig, Problem, Template, TemplateText, required_field};

/// `anonymous`: nothing to send (and no other key).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Anonymous {}

/// `basic`: a user name and a password.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Basic {
    /// The user name (TEXT secret allowed).
    #[schemars(required)]
    pub(crate) username: Option<TemplateText>,
    /// The password (TEXT secret).
    #[schemars(required)]
    pub(crate) password: Option<TemplateText>,
}

/// `bearer`: `Authorization: Bearer <token>`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bearer {
    /// The token (TEXT secret).
    #[schemars(required)]
    pub(crate) token: Option<TemplateText>,
}

/// `apiKey`: the key in a header.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiKey {
    /// The header's name (default `X-API-Key`).
    pub(crate) header: Option<String>,
    /// The key (TEXT secret).
    #[schemars(required)]
    pub(crate) value: Option<TemplateText>,
}

/// `cert.PEM`: mutual TLS with a client certificate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CertPem {
    /// The CA certificate(s) the server's certificate must chain to (FILE secret).
    #[schemars(required)]
    pub(crate) ca_cert: Option<TemplateText>,
    /// The client certificate (FILE secret).
    #[schemars(required)]
    pub(crate) cert: Option<TemplateText>,
    /// The client's private key (FILE secret).
    #[schemars(required)]
    pub(crate) private_key: Option<TemplateText>,
    /// The private key's password, when it is encrypted (TEXT secret).
    pub(crate) password: Option<TemplateText>,
}

/// `oauth2`: an access token from an OAuth 2.0 token endpoint (client credentials grant), sent
/// as `Authorization: Bearer <token>`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct OAuth2 {
    /// The token endpoint's URL (http or https; no secrets, no message data). The client secret
    /// (and a client id from a secret) must be allowed to go there.
    #[schemars(required)]
    pub(crate) token_url: Option<String>,
    /// The client id (TEXT secret allowed).
    #[schemars(required)]
    pub(crate) client_id: Option<TemplateText>,
    /// The client secret (TEXT secret).
    #[schemars(required)]
    pub(crate) client_secret: Option<TemplateText>,
    /// The scope to ask for (space-separated); absent: none is sent.
    pub(crate) scope: Option<String>,
    /// The audience to ask for (some providers need it); absent: none is sent.
    pub(crate) audience: Option<String>,
    /// How the client authenticates to the token endpoint: `basic` (HTTP Basic, the default) or
    /// `body` (`client_id` and `client_secret` form fields).
    #[schemars(with = "Option<ClientAuthentication>", extend("default" = "basic"))]
    pub(crate) client_authentication: Option<String>,
}

/// How an `oauth2` client authenticates to its token endpoint (RFC 6749 §2.3.1). Read from a
/// string and checked when the node is built, so a wrong one is named at its own pointer (inside
/// the tagged `credentials`, serde reports a wrong value at the object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub(crate) enum ClientAuthentication {
    /// HTTP Basic with the form-urlencoded client id and secret.
    #[serde(rename = "basic")]
    Basic,
    /// `client_id` and `client_secret` in the request body.
    #[serde(rename = "body")]
    Body,
}

impl ClientAuthentication {
    /// The names, as the configuration writes them.
    pub(crate) const NAMES: [&str; 2] = ["basic", "body"];

    /// The way named `name`.
    pub(crate) fn named(name: &str) -> Option<Self> {
        match name {
            "basic" => Some(Self::Basic),
            "body" => Some(Self::Body),
            _ => None,
        }
    }
}

/// `credentials` of `rest_api_call`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub(crate) enum RestCredentials {
    /// No authentication.
    #[serde(rename = "anonymous")]
    Anonymous(Anonymous),
    /// HTTP Basic authentication.
    #[serde(rename = "basic")]
    Basic(Basic),
    /// A bearer token.
    #[serde(rename = "bearer")]
    Bearer(Bearer),
    /// An API key in a header.
    #[serde(rename = "apiKey")]
    ApiKey(ApiKey),
    /// A client certificate.
    #[serde(rename = "cert.PEM")]
    CertPem(CertPem),
    /// An OAuth 2.0 access token (client credentials grant).
    #[serde(rename = "oauth2")]
    OAuth2(OAuth2),
}

/// `credentials` of `mqtt`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub(crate) enum MqttCredentials {
    /// No authentication.
    #[serde(rename = "anonymous")]
    Anonymous(Anonymous),
    /// A user name and a password in CONNECT.
    #[serde(rename = "basic")]
    Basic(Basic),
    /// A client certificate (TLS).
    #[serde(rename = "cert.PEM")]
    CertPem(CertPem),
}

/// Reads `credentials` of a node's configuration (whose type is `T`) as the nodes always have:
/// without `type` it is `anonymous`, and keys that belong only to other types (a form that
/// switched types leaves them) are ignored; any other key is still refused at its pointer.
pub(crate) fn settle<T: JsonSchema>(
    doc: &mut serde_json::Value,
    keys: &std::sync::OnceLock<Vec<(String, Vec<String>)>>,
) {
    let keys = keys.get_or_init(|| {
        let form = veil_core::form_fields(&schemars::schema_for!(T).to_value(), &[]);
        veil_core::variant_keys(&form, "/credentials/type")
    });
    veil_core::settle_variant(doc, "/credentials/type", keys, Some("anonymous"));
}

/// A user name and a password, bound to their templates.
pub(crate) struct UserPassword {
    pub(crate) username: Template,
    pub(crate) password: Template,
}

/// A client certificate's templates: the CA the server must chain to, the certificate, its key
/// and, for an encrypted key, the key's password.
pub(crate) struct ClientCert {
    pub(crate) ca: Template,
    pub(crate) cert: Template,
    pub(crate) key: Template,
    pub(crate) password: Option<Template>,
}

/// The template of credential `field` (of credentials of type `kind`), filled: otherwise a
/// problem at `/credentials/{field}`.
pub(crate) fn filled(
    ctx: &BuildCtx<'_>,
    config: &CompiledConfig,
    kind: &str,
    (field, value): (&str, Option<&TemplateText>),
    problems: &mut Vec<Problem>,
) -> Option<Template> {
    if let Err(message) = required_field(value, &format!(" for '{kind}' credentials")) {
        problems.push(ctx.problem(&format!("/credentials/{field}"), message));
        return None;
    }
    ctx.bound(config, value?, problems)
}

impl Basic {
    /// Both bound and filled, or a problem for each that is not.
    pub(crate) fn bind(
        &self,
        ctx: &BuildCtx<'_>,
        config: &CompiledConfig,
        problems: &mut Vec<Problem>,
    ) -> Option<UserPassword> {
        let username = filled(ctx, config, "basic", ("username", self.username.as_ref()), problems);
        let password = filled(ctx, config, "basic", ("password", self.password.as_ref()), problems);
        Some(UserPassword { username: username?, password: password? })
    }
}

impl CertPem {
    /// The CA, certificate and key bound and filled (and the key's password, when given, not
    /// blank), or a problem for each that is not.
    pub(crate) fn bind(
        &self,
        ctx: &BuildCtx<'_>,
        config: &CompiledConfig,
        problems: &mut Vec<Problem>,
    ) -> Option<ClientCert> {
        let password = match &self.password {
            Some(text) if text.is_blank() => {
                problems.push(ctx.problem(
                    "/credentials/password",
                    "is empty: give the private key's password, or leave the field out for a key without one",
                ));
                return None;
            }
            Some(text) => Some(ctx.bound(config, text, problems)?),
            None => None,
        };
        let kind = "cert.PEM";
        let ca = filled(ctx, config, kind, ("caCert", self.ca_cert.as_ref()), problems);
        let cert = filled(ctx, config, kind, ("cert", self.cert.as_ref()), problems);
        let key = filled(ctx, config, kind, ("privateKey", self.private_key.as_ref()), problems);
        Some(ClientCert { ca: ca?, cert: cert?, key: key?, password })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};
    use veil_core::{FieldError, NodeDescriptor, form_fields, from_document};

    /// The form of `descriptor` agrees with what its configuration type `T` accepts: every field
    /// of every credentials variant is accepted with that variant, and a key the form does not
    /// list is refused with exactly the form's fields as the expected ones.
    fn form_agrees_with<T: DeserializeOwned + std::fmt::Debug>(descriptor: &NodeDescriptor) {
        let form = form_fields(&(descriptor.schema)(), descriptor.fields);
        let kinds =
            &form.iter().find(|f| f.pointer == "/credentials/type").expect("a credentials type").values;
        assert!(kinds.len() >= 3, "{kinds:?}");
        for kind in kinds {
            let fields: Vec<_> =
                form.iter().filter(|f| f.variant.as_ref().is_some_and(|v| v.value == *kind)).collect();
            let listed: BTreeSet<&str> =
                fields.iter().map(|f| f.pointer.trim_start_matches("/credentials/")).collect();
            let mut credentials = json!({"type": kind});
            for field in &fields {
                // Text, or an enum's first value.
                let value = field.values.first().map_or("x", String::as_str);
                credentials[field.pointer.trim_start_matches("/credentials/")] = json!(value);
            }
            from_document::<T>(&json!({"credentials": credentials}))
                .unwrap_or_else(|e| panic!("{}: {kind} with {listed:?}: {e:?}", descriptor.type_name));
            credentials["notAField"] = Value::Null;
            match from_document::<T>(&json!({"credentials": credentials})) {
                Err((_, FieldError::UnknownField { field, expected })) => {
                    assert_eq!(field, "notAField");
                    assert_eq!(expected.iter().copied().collect::<BTreeSet<_>>(), listed, "{kind}");
                }
                other => {
                    panic!("{}: {kind}: an unknown key was not refused: {other:?}", descriptor.type_name)
                }
            }
        }
    }

    #[test]
    fn the_credentials_forms_agree_with_the_configuration_types() {
        form_agrees_with::<crate::rest_api_call::RestConfig>(&crate::rest_api_call::DESCRIPTOR);
        form_agrees_with::<crate::mqtt::MqttConfig>(&crate::mqtt::DESCRIPTOR);
    }

    #[test]
    fn an_unknown_credentials_type_is_named_with_the_types_there_are() {
        let problems = veil_core::parse_config::<crate::rest_api_call::RestConfig>(
            &json!({"credentials": {"type": "oauth"}}),
            "/nodes/0/configuration",
        )
        .unwrap_err();
        let shown: Vec<(&str, &str)> =
            problems.iter().map(|p| (p.path.as_str(), p.message.as_str())).collect();
        assert_eq!(
            shown,
            [(
                "/nodes/0/configuration/credentials/type",
                "'oauth' is not one of anonymous, basic, bearer, apiKey, cert.PEM, oauth2"
            )]
        );
    }

    #[test]
    fn credentials_read_as_they_always_were_a_typo_is_still_refused() {
        use crate::rest_api_call::RestConfig;
        static KEYS: std::sync::OnceLock<Vec<(String, Vec<String>)>> = std::sync::OnceLock::new();
        let parse = |credentials: Value| {
            veil_core::parse_config_with::<RestConfig>(&json!({ "credentials": credentials }), "", |doc| {
                super::settle::<RestConfig>(doc, &KEYS)
            })
        };
        // No type: anonymous, as ThingsBoard reads it.
        let config = parse(json!({"token": "x"})).unwrap();
        assert!(matches!(config.credentials, Some(super::RestCredentials::Anonymous(_))), "{config:?}");
        // Keys a form left from another type are ignored.
        let config =
            parse(json!({"type": "bearer", "token": "t", "username": "alice", "password": ""})).unwrap();
        assert!(matches!(config.credentials, Some(super::RestCredentials::Bearer(_))), "{config:?}");
        // A key of no type is refused at its pointer.
        let problems = parse(json!({"type": "bearer", "tokn": "t"})).unwrap_err();
        assert_eq!(problems[0].path, "/credentials/tokn", "{problems:?}");
        assert_eq!(problems[0].message, "unknown field (expected token)");
        // A wrong type keeps its message.
        let problems = parse(json!({"type": "oauth"})).unwrap_err();
        assert_eq!(problems[0].path, "/credentials/type", "{problems:?}");
    }
}
