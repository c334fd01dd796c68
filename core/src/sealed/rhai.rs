//! Sealed values in Rhai: the `Secret` type, its conversions at a script's edges (markers in,
//! markers out), and the helpers scripts have for it (combining, one-way derivations, AES-GCM).

use std::any::TypeId;
use std::sync::Arc;

use ::rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, ImmutableString, Map};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use veil_store::TenantId;
use zeroize::Zeroizing;

use super::markers::{markers, mask_sealed, may_hold_markers};
use super::value::{Inner, Sealed};
use crate::forms::MASK;

pub(super) type ScriptResult<T> = Result<T, Box<EvalAltResult>>;

/// A script's input with its markers made sealed values again: a string that is exactly a marker
/// of `to` (tenant and rule chain) becomes a `Secret`; any other marker (inside a longer text, or not this tenant's,
/// or any at all when `opens` is false: a customer's script) shows as `***`.
pub(crate) fn reseal_input(value: &mut Dynamic, to: (TenantId, Option<uuid::Uuid>), opens: bool) {
    if let Some(mut items) = value.write_lock::<Array>() {
        items.iter_mut().for_each(|v| reseal_input(v, to, opens));
        return;
    }
    if let Some(mut entries) = value.write_lock::<Map>() {
        entries.values_mut().for_each(|v| reseal_input(v, to, opens));
        return;
    }
    let replacement = match value.read_lock::<ImmutableString>() {
        Some(text) if may_hold_markers(&text) => {
            let whole = markers(&text).next().filter(|(range, _)| opens && *range == (0..text.len()));
            match whole.and_then(|(_, payload)| Sealed::open_for(payload, to.0, to.1)) {
                Some(sealed) => Dynamic::from(sealed),
                None => Dynamic::from(mask_sealed(&text).into_owned()),
            }
        }
        _ => return,
    };
    *value = replacement;
}

/// Replaces every sealed value in a script's result with its marker (copies of one value share
/// one marker).
pub(crate) fn markers_for_output(value: &mut Dynamic) {
    markers_into(value, &mut std::collections::HashMap::new());
}

fn markers_into(value: &mut Dynamic, made: &mut std::collections::HashMap<*const Inner, String>) {
    if let Some(mut items) = value.write_lock::<Array>() {
        items.iter_mut().for_each(|v| markers_into(v, made));
        return;
    }
    if let Some(mut entries) = value.write_lock::<Map>() {
        entries.values_mut().for_each(|v| markers_into(v, made));
        return;
    }
    let marker = value
        .read_lock::<Sealed>()
        .map(|s| made.entry(Arc::as_ptr(&s.0)).or_insert_with(|| s.marker()).clone());
    if let Some(marker) = marker {
        *value = Dynamic::from(marker);
    }
}

/// How a value shows in an error or a JSON text: sealed values as `***`.
fn shown(value: &Dynamic) -> serde_json::Value {
    if value.is::<Sealed>() {
        return serde_json::Value::String(MASK.to_owned());
    }
    if let Some(items) = value.read_lock::<Array>() {
        return serde_json::Value::Array(items.iter().map(shown).collect());
    }
    if let Some(entries) = value.read_lock::<Map>() {
        return serde_json::Value::Object(entries.iter().map(|(k, v)| (k.to_string(), shown(v))).collect());
    }
    ::rhai::serde::from_dynamic(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()))
}

/// A script error's text with every sealed value in it shown as `***` (Rhai prints a custom
/// type's Rust name where it has no text for it).
pub(crate) fn error_text(text: String) -> String {
    let rust_name = std::any::type_name::<Sealed>();
    if !text.contains(rust_name) {
        return text;
    }
    // Where Rhai names the type it found, say `Secret`; anywhere else it stands for the value.
    text.replace(&format!("Data type incorrect: {rust_name}"), "Data type incorrect: Secret")
        .replace(rust_name, MASK)
}

/// A one-way helper's output (a signature, a hash) computed from `inputs`. It is public data,
/// unless one of the secrets it comes from may be sent only to some destinations (or its tenant
/// requires destinations for every secret): then it is sealed under those secrets, so that a
/// signature made with a key limited to one API goes only to that API.
fn one_way(inputs: &[&Dynamic], output: Vec<u8>, text: bool) -> ScriptResult<Dynamic> {
    let sealed: Vec<Sealed> =
        inputs.iter().filter_map(|v| v.read_lock::<Sealed>().map(|s| s.clone())).collect();
    let mut names: Vec<String> = sealed.iter().flat_map(|s| s.names().iter().cloned()).collect();
    names.sort();
    names.dedup();
    match sealed.first() {
        Some(first) if crate::run::restricted(&names) => {
            crate::run::charge_sealed(output.len())?;
            let inner = Inner {
                tenant: first.0.tenant,
                scope: first.0.scope,
                names,
                bound: output.len(),
                value: Zeroizing::new(output),
            };
            Ok(Dynamic::from(Sealed(Arc::new(inner))))
        }
        _ if text => Ok(Dynamic::from(String::from_utf8(output).unwrap_or_default())),
        _ => Ok(Dynamic::from_blob(output)),
    }
}

fn refuse<T>(what: &str) -> ScriptResult<T> {
    Err(format!("{what}: a Secret is sealed; it can be combined (+, basic_auth, base64_encode) and used for signing, hashing and decryption, not read").into())
}

/// The bytes of a helper's argument: a string, a blob or (for key and data) a sealed value.
/// (A copy, zeroized when dropped: it may be a secret's value.)
fn bytes_of(value: &Dynamic, what: &str) -> ScriptResult<Zeroizing<Vec<u8>>> {
    if let Some(s) = value.read_lock::<Sealed>() {
        return Ok(Zeroizing::new(s.expose().to_vec()));
    }
    if let Some(s) = value.read_lock::<ImmutableString>() {
        return Ok(Zeroizing::new(s.as_bytes().to_vec()));
    }
    if let Some(b) = value.read_lock::<Blob>() {
        return Ok(Zeroizing::new(b.clone()));
    }
    Err(format!("{what} must be a string, a blob or a Secret, not {}", value.type_name()).into())
}

fn concat(parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(parts.iter().map(|p| p.len()).sum()));
    parts.iter().for_each(|p| out.extend_from_slice(p));
    out
}

/// The bound of base64 text of a value bounded by `bound`.
fn base64_bound(bound: usize) -> usize {
    bound.div_ceil(3) * 4
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Reads a key: 16 or 32 bytes as they are, or that many in hex or base64.
fn aes_key(bytes: &[u8]) -> ScriptResult<Zeroizing<Vec<u8>>> {
    let text = std::str::from_utf8(bytes).ok().map(str::trim);
    if let Some(text) = text
        && matches!(text.len(), 32 | 64)
        && text.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Ok(Zeroizing::new(hex::decode(text).expect("checked to be hex")));
    }
    if matches!(bytes.len(), 16 | 32) {
        return Ok(Zeroizing::new(bytes.to_vec()));
    }
    if let Some(decoded) = text.and_then(|t| STANDARD.decode(t).ok()).filter(|k| matches!(k.len(), 16 | 32)) {
        return Ok(Zeroizing::new(decoded));
    }
    Err("aes_gcm_decrypt: the key must be 16 or 32 bytes (AES-128 or AES-256), raw, in hex or in base64"
        .into())
}

/// A nonce, ciphertext or additional data: a blob, or a string in hex (when it is hex) or base64.
fn binary_arg(value: &Dynamic, what: &str) -> ScriptResult<Vec<u8>> {
    if value.is::<Sealed>() {
        return refuse(&format!("aes_gcm_decrypt: {what}"));
    }
    if let Some(b) = value.read_lock::<Blob>() {
        return Ok(b.clone());
    }
    if let Some(s) = value.read_lock::<ImmutableString>() {
        let s = s.trim();
        if s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(hex::decode(s).expect("checked to be hex"));
        }
        return STANDARD
            .decode(s)
            .map_err(|_| format!("aes_gcm_decrypt: {what} is neither hex nor base64").into());
    }
    Err(format!(
        "aes_gcm_decrypt: {what} must be a blob or a hex or base64 string, not {}",
        value.type_name()
    )
    .into())
}

/// What any failure of a decryption with a sealed key says: the same for a key of the wrong
/// size, a wrong key and a tag that does not match, since each depends on the key.
const SEALED_KEY_FAILED: &str = "aes_gcm_decrypt: the ciphertext does not decrypt with this key \
     (the key must be 16 or 32 bytes — raw, hex or base64 — and nonce, data and tag must match)";

/// Decrypts `ciphertext`. Errors about the nonce, ciphertext and aad (what the script passed)
/// are ordinary errors; when the key is a `Secret`, a failure fails the whole run — the script
/// cannot catch it, and a run whose error was swallowed (`dedup`, `sort`) fails all the same —
/// because whether it fails depends on the key.
fn aes_gcm_decrypt(key: &Dynamic, nonce: &Dynamic, ciphertext: &Dynamic, aad: &[u8]) -> ScriptResult<Blob> {
    let nonce = binary_arg(nonce, "the nonce")?;
    if nonce.len() != 12 {
        return Err(format!("aes_gcm_decrypt: the nonce must be 12 bytes, not {}", nonce.len()).into());
    }
    let ciphertext = binary_arg(ciphertext, "the ciphertext")?;
    let sealed_key = key.is::<Sealed>();
    let key = bytes_of(key, "aes_gcm_decrypt: the key")?;
    let plain = aes_key(&key).and_then(|key| {
        let payload = Payload { msg: &ciphertext, aad };
        let nonce = Nonce::from_slice(&nonce);
        let plain = match key.len() {
            16 => Aes128Gcm::new_from_slice(&key).ok().and_then(|c| c.decrypt(nonce, payload).ok()),
            _ => Aes256Gcm::new_from_slice(&key).ok().and_then(|c| c.decrypt(nonce, payload).ok()),
        };
        plain.ok_or_else(|| {
            "aes_gcm_decrypt: the ciphertext does not decrypt with this key and nonce (wrong key, nonce or data, or the tag does not match)".into()
        })
    });
    match plain {
        Err(_) if sealed_key => {
            crate::run::fail_run(SEALED_KEY_FAILED);
            Err(crate::run::Halt::Failed(SEALED_KEY_FAILED).error())
        }
        other => other,
    }
}

/// Registers the `Secret` type and every function scripts have for sealed values.
pub(crate) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Sealed>("Secret");
    engine.register_fn("to_string", |_: &mut Sealed| MASK.to_owned());
    engine.register_fn("to_debug", |_: &mut Sealed| MASK.to_owned());
    engine.register_fn("print", |_: &mut Sealed| MASK.to_owned());
    engine.register_fn("debug", |_: &mut Sealed| MASK.to_owned());

    // Combining: the result stays sealed.
    engine.register_fn("+", |a: ImmutableString, b: Sealed| -> ScriptResult<Sealed> {
        b.derive(None, a.len() + b.bound(), || concat(&[a.as_bytes(), b.expose()]))
    });
    engine.register_fn("+", |a: Sealed, b: ImmutableString| -> ScriptResult<Sealed> {
        a.derive(None, a.bound() + b.len(), || concat(&[a.expose(), b.as_bytes()]))
    });
    engine.register_fn("+", |a: Sealed, b: Sealed| -> ScriptResult<Sealed> {
        a.derive(Some(&b), a.bound() + b.bound(), || concat(&[a.expose(), b.expose()]))
    });
    // `text += secret` makes `text` a Secret (Rhai's own `+=` would append `***`).
    engine.register_raw_fn(
        "+=",
        [TypeId::of::<ImmutableString>(), TypeId::of::<Sealed>()],
        |_, args| -> ScriptResult<()> {
            let b = args[1].read_lock::<Sealed>().map(|s| s.clone()).expect("typed argument");
            let a = args[0].read_lock::<ImmutableString>().map(|s| s.clone()).expect("typed argument");
            let combined = b.derive(None, a.len() + b.bound(), || concat(&[a.as_bytes(), b.expose()]))?;
            *args[0] = Dynamic::from(combined);
            Ok(())
        },
    );
    engine.register_fn("append", |_: &mut ImmutableString, _: Sealed| -> ScriptResult<()> {
        refuse("append() with a Secret (use + to combine)")
    });
    for op in ["==", "!=", "<", "<=", ">", ">="] {
        engine.register_fn(op, move |_: Sealed, _: Dynamic| -> ScriptResult<bool> {
            refuse(&format!("comparing with {op}"))
        });
        engine.register_fn(op, move |_: Dynamic, _: Sealed| -> ScriptResult<bool> {
            refuse(&format!("comparing with {op}"))
        });
        engine.register_fn(op, move |_: Sealed, _: Sealed| -> ScriptResult<bool> {
            refuse(&format!("comparing with {op}"))
        });
    }

    engine.register_fn("base64_encode", |s: Sealed| -> ScriptResult<Sealed> {
        s.derive(None, base64_bound(s.bound()), || Zeroizing::new(STANDARD.encode(s.expose()).into_bytes()))
    });
    engine.register_fn("basic_auth", |user: Dynamic, pass: Dynamic| -> ScriptResult<Dynamic> {
        let bound_of = |v: &Dynamic| v.read_lock::<Sealed>().map(|s| s.bound());
        let sealed: Vec<Sealed> =
            [&user, &pass].iter().filter_map(|v| v.read_lock::<Sealed>().map(|s| s.clone())).collect();
        let (user_bound, pass_bound) = (bound_of(&user), bound_of(&pass));
        let (user, pass) =
            (bytes_of(&user, "basic_auth: the user")?, bytes_of(&pass, "basic_auth: the password")?);
        let value = || {
            let pair = concat(&[&user, b":", &pass]);
            // Built in one buffer of its final size: no unzeroized copy of the encoded pair.
            let mut out = Zeroizing::new(String::with_capacity("Basic ".len() + base64_bound(pair.len())));
            out.push_str("Basic ");
            STANDARD.encode_string(&*pair, &mut out);
            Zeroizing::new(std::mem::take(&mut *out).into_bytes())
        };
        let bound = "Basic ".len()
            + base64_bound(user_bound.unwrap_or(user.len()) + 1 + pass_bound.unwrap_or(pass.len()));
        Ok(match sealed.as_slice() {
            [] => Dynamic::from(String::from_utf8(value().to_vec()).unwrap_or_default()),
            [one] => Dynamic::from(one.derive(None, bound, value)?),
            [a, b, ..] => Dynamic::from(a.derive(Some(b), bound, value)?),
        })
    });

    // One-way values: public, unless a secret they come from is limited to some destinations.
    engine.register_fn("hmac_sha256", |key: Dynamic, data: Dynamic| -> ScriptResult<Dynamic> {
        let mac = hmac(&bytes_of(&key, "hmac_sha256: the key")?, &bytes_of(&data, "hmac_sha256: the data")?);
        one_way(&[&key, &data], mac, false)
    });
    engine.register_fn("hmac_sha256_hex", |key: Dynamic, data: Dynamic| -> ScriptResult<Dynamic> {
        let mac = hmac(
            &bytes_of(&key, "hmac_sha256_hex: the key")?,
            &bytes_of(&data, "hmac_sha256_hex: the data")?,
        );
        one_way(&[&key, &data], hex::encode(mac).into_bytes(), true)
    });
    engine.register_fn("hmac_sha256_base64", |key: Dynamic, data: Dynamic| -> ScriptResult<Dynamic> {
        let mac = hmac(
            &bytes_of(&key, "hmac_sha256_base64: the key")?,
            &bytes_of(&data, "hmac_sha256_base64: the data")?,
        );
        one_way(&[&key, &data], STANDARD.encode(mac).into_bytes(), true)
    });
    engine.register_fn("sha256", |data: Dynamic| -> ScriptResult<Dynamic> {
        one_way(&[&data], Sha256::digest(bytes_of(&data, "sha256: the data")?).to_vec(), false)
    });
    engine.register_fn("sha256_hex", |data: Dynamic| -> ScriptResult<Dynamic> {
        let digest = Sha256::digest(bytes_of(&data, "sha256_hex: the data")?);
        one_way(&[&data], hex::encode(digest).into_bytes(), true)
    });
    engine.register_fn("sha256_base64", |data: Dynamic| -> ScriptResult<Dynamic> {
        let digest = Sha256::digest(bytes_of(&data, "sha256_base64: the data")?);
        one_way(&[&data], STANDARD.encode(digest).into_bytes(), true)
    });
    engine.register_fn("aes_gcm_decrypt", |key: Dynamic, nonce: Dynamic, ciphertext: Dynamic| {
        aes_gcm_decrypt(&key, &nonce, &ciphertext, &[])
    });
    engine.register_fn(
        "aes_gcm_decrypt",
        |key: Dynamic, nonce: Dynamic, ciphertext: Dynamic, aad: Dynamic| -> ScriptResult<Blob> {
            let aad = binary_arg(&aad, "the additional data")?;
            aes_gcm_decrypt(&key, &nonce, &ciphertext, &aad)
        },
    );

    // JSON text of a map with its sealed values as `***` (Rhai's own prints the Rust type).
    engine.register_fn("to_json", |map: &mut Map| shown(&Dynamic::from_map(map.clone())).to_string());
}
