//! Pieces the node files share: reading compiled settings, PEM material, payloads, results.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use veil_core::{CompiledConfig, Failed, Msg, NodeError, NodeResult, RenderCtx, Template, relation};

/// A declared field's template; its absence is a bug in the node's factory, reported, not a panic.
pub(crate) fn template<'c>(config: &'c CompiledConfig, pointer: &str) -> Result<&'c Template, NodeError> {
    config
        .template(pointer)
        .ok_or_else(|| NodeError::new(format!("{pointer}: missing from the compiled configuration")))
}

/// A connection setting rendered without a message: the credentials of this moment.
pub(crate) fn setting(
    render: &RenderCtx<'_>,
    config: &CompiledConfig,
    pointer: &str,
) -> Result<SecretString, NodeError> {
    Ok(render.render(template(config, pointer)?)?)
}

/// PEM bytes of a FILE secret field, or of literal PEM text.
pub(crate) fn pem(render: &RenderCtx<'_>, template: &Template) -> Result<Vec<u8>, NodeError> {
    match template.single_secret() {
        Some(name) => Ok(render.resolve(name)?.expose_bytes().to_vec()),
        None => Ok(render.render(template)?.expose_secret().as_bytes().to_vec()),
    }
}

/// The message data as a payload: strings as they are, anything else as JSON.
pub(crate) fn payload(msg: &Msg) -> Vec<u8> {
    match &msg.data {
        Value::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

/// `Success` with the message when the node's work succeeded, else `Failure`.
pub(crate) fn pass_on(result: Result<(), NodeError>, msg: Msg) -> NodeResult {
    match result {
        Ok(()) => Ok(vec![(relation::SUCCESS.into(), msg)]),
        Err(e) => Err(Failed::new(msg, e)),
    }
}

/// A client private key as PEM rustls can load: an `ENCRYPTED PRIVATE KEY` (PKCS#8) is decrypted
/// with `password`; other keys pass through unchanged.
pub(crate) fn private_key_pem(pem: Vec<u8>, password: Option<&SecretString>) -> Result<Vec<u8>, NodeError> {
    let text = std::str::from_utf8(&pem).map_err(|_| NodeError::new("privateKey: not PEM text"))?;
    if !text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Ok(pem);
    }
    let password = password
        .ok_or_else(|| NodeError::new("privateKey is encrypted: set credentials/password to its password"))?;
    let (_, document) = pkcs8::SecretDocument::from_pem(text)
        .map_err(|_| NodeError::new("privateKey: not a valid PEM document"))?;
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
        .map_err(|_| NodeError::new("privateKey: not an encrypted PKCS#8 key"))?;
    let key = encrypted
        .decrypt(password.expose_secret().as_bytes())
        .map_err(|_| NodeError::new("privateKey: the password does not decrypt it"))?;
    let pem = key
        .to_pem("PRIVATE KEY", pkcs8::LineEnding::LF)
        .map_err(|_| NodeError::new("privateKey: cannot re-encode the decrypted key"))?;
    Ok(pem.as_bytes().to_vec())
}

/// The versions of the secrets a connection was made with. Comparing them with the store's on
/// each use notices a rotation as soon as it commits, without waiting for the change event.
pub(crate) fn secret_versions(
    store: &veil_store::Store,
    tenant: veil_store::TenantId,
    config: &CompiledConfig,
) -> Vec<Option<i64>> {
    config.secret_uses().iter().map(|u| store.version(tenant, &u.name)).collect()
}
