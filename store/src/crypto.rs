//! Envelope encryption: a master key (KEK) wraps data keys kept in the database; data keys encrypt
//! values with AES-256-GCM, a fresh random 96-bit nonce each time, and associated data binding the
//! ciphertext to its tenant, secret id and version.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, AeadCore, AeadInPlace, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox};
use zeroize::{Zeroize, Zeroizing};

const TAG_LEN: usize = 16;

use crate::error::{Result, StoreError};
use crate::model::{SecretId, SecretValue, TenantId};

/// Where the master key comes from. First match wins: env `VEIL_MASTER_KEY`, a key file, else a
/// key generated on first start in the data directory.
#[derive(Clone)]
pub enum MasterKeySource {
    /// Base64 of 32 bytes (the content of `VEIL_MASTER_KEY`).
    Base64(secrecy::SecretString),
    /// A file holding base64 of 32 bytes; it must exist.
    File(PathBuf),
    /// `<data-dir>/master.key`: read if present, generated (mode 0600) if the database is new.
    Generated(PathBuf),
}

impl std::fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Base64(_) => f.write_str("MasterKeySource::Base64([REDACTED])"),
            Self::File(p) => write!(f, "MasterKeySource::File({})", p.display()),
            Self::Generated(p) => write!(f, "MasterKeySource::Generated({})", p.display()),
        }
    }
}

/// The key-encryption key. Never leaves memory; zeroized on drop.
pub(crate) struct MasterKey(SecretBox<[u8; 32]>);

impl MasterKey {
    fn parse(text: &str, origin: &str) -> Result<Self> {
        let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
            StoreError::MasterKey(format!("{origin} is not valid base64 (expected base64 of 32 bytes)"))
        })?);
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            StoreError::MasterKey(format!(
                "{origin} decodes to {} bytes, a master key is exactly 32 bytes",
                bytes.len()
            ))
        })?;
        Ok(Self(SecretBox::new(Box::new(arr))))
    }

    fn read_file(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| StoreError::Io {
            context: format!("cannot read master key file {}", path.display()),
            source,
        })?);
        Self::parse(&text, &format!("master key file {}", path.display()))
    }

    /// Loads the key from an explicit source; `None` for a generated key file that does not exist yet.
    pub(crate) fn load(source: &MasterKeySource) -> Result<Option<Self>> {
        match source {
            MasterKeySource::Base64(s) => Self::parse(s.expose_secret(), "VEIL_MASTER_KEY").map(Some),
            MasterKeySource::File(p) => Self::read_file(p).map(Some),
            MasterKeySource::Generated(p) if p.exists() => Self::read_file(p).map(Some),
            MasterKeySource::Generated(_) => Ok(None),
        }
    }

    /// Generates a key and writes it to `path` with mode 0600; refuses to overwrite.
    pub(crate) fn generate(path: &Path) -> Result<Self> {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let text = Zeroizing::new(format!("{}\n", STANDARD.encode(bytes)));
        let key = Self(SecretBox::new(Box::new(bytes)));
        bytes.zeroize();
        let io = |source| StoreError::Io {
            context: format!("cannot write master key file {}", path.display()),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        if let Some(dir) = path.parent() {
            // Make the new directory entry durable too.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(key)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.expose_secret().into())
    }

    /// Whether both are the same key (compared in constant time).
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        self.0.expose_secret().ct_eq(other.0.expose_secret()).into()
    }
}

/// An encrypted value: which data key, the nonce, the ciphertext with its tag.
#[derive(Clone)]
pub(crate) struct Sealed {
    pub(crate) key_id: i64,
    pub(crate) nonce: [u8; 12],
    pub(crate) ciphertext: Vec<u8>,
}

/// A data key as stored: its id and its bytes wrapped by the master key (nonce || ciphertext).
pub(crate) struct WrappedKey {
    pub(crate) id: i64,
    pub(crate) wrapped: Vec<u8>,
}

/// The unwrapped data keys, as ready-to-use ciphers (key schedule computed once).
pub(crate) struct Keyring {
    /// Few keys (one per rotation): a linear scan beats hashing on the hot path.
    keys: Vec<(i64, Aes256Gcm)>,
    active: i64,
}

fn key_aad(id: i64) -> Vec<u8> {
    format!("veil:data-key:{id}").into_bytes()
}

/// Format byte of a secret's associated data; other uses of a data key (system values) use text
/// AAD starting with `v`, so the two can never be confused.
const SECRET_AAD_FORMAT: u8 = 1;

/// Associated data for a secret's ciphertext: a moved or replayed ciphertext fails to decrypt.
/// 41 bytes, so GHASH covers it in three blocks (it is on the `resolve` hot path).
fn secret_aad(tenant: TenantId, id: SecretId, version: i64) -> [u8; 41] {
    let mut aad = [0u8; 41];
    aad[0] = SECRET_AAD_FORMAT;
    aad[1..17].copy_from_slice(tenant.0.as_bytes());
    aad[17..33].copy_from_slice(id.0.as_bytes());
    aad[33..].copy_from_slice(&version.to_be_bytes());
    aad
}

fn system_aad(name: &str) -> Vec<u8> {
    format!("veil:system:{name}").into_bytes()
}

/// What a stored value's ciphertext is bound to: a secret's version, or a system value's name.
pub(crate) enum ValueAad {
    Secret { tenant: TenantId, id: SecretId, version: i64 },
    System(String),
}

impl ValueAad {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Secret { tenant, id, version } => secret_aad(*tenant, *id, *version).to_vec(),
            Self::System(name) => system_aad(name),
        }
    }
}

impl Keyring {
    /// Unwraps every stored key; any failure means the master key is wrong.
    pub(crate) fn unwrap_all(master: &MasterKey, stored: &[WrappedKey]) -> Result<Self> {
        let kek = master.cipher();
        let mut keys = Vec::with_capacity(stored.len());
        for k in stored {
            if k.wrapped.len() < 12 {
                return Err(StoreError::WrongMasterKey);
            }
            let (nonce, ct) = k.wrapped.split_at(12);
            let aad = key_aad(k.id);
            let plain = Zeroizing::new(
                kek.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
                    .map_err(|_| StoreError::WrongMasterKey)?,
            );
            if plain.len() != 32 {
                return Err(StoreError::WrongMasterKey);
            }
            keys.push((k.id, Aes256Gcm::new(plain.as_slice().into())));
        }
        let active = stored.iter().map(|k| k.id).max().unwrap_or(0);
        Ok(Self { keys, active })
    }

    /// The stored keys wrapped again under `new` (same ids, same associated data), after
    /// unwrapping each with `current` (any failure: the current key is wrong).
    pub(crate) fn rewrap_all(
        current: &MasterKey,
        new: &MasterKey,
        stored: &[WrappedKey],
    ) -> Result<Vec<WrappedKey>> {
        let (old_kek, new_kek) = (current.cipher(), new.cipher());
        stored
            .iter()
            .map(|k| {
                if k.wrapped.len() < 12 {
                    return Err(StoreError::WrongMasterKey);
                }
                let (nonce, ct) = k.wrapped.split_at(12);
                let aad = key_aad(k.id);
                let plain = Zeroizing::new(
                    old_kek
                        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
                        .map_err(|_| StoreError::WrongMasterKey)?,
                );
                let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
                let ct = new_kek
                    .encrypt(&nonce, Payload { msg: plain.as_slice(), aad: &aad })
                    .expect("AES-GCM encryption of 32 bytes cannot fail");
                let mut wrapped = nonce.to_vec();
                wrapped.extend_from_slice(&ct);
                Ok(WrappedKey { id: k.id, wrapped })
            })
            .collect()
    }

    /// Creates a new random data key wrapped by the master key.
    pub(crate) fn new_wrapped_key(master: &MasterKey, id: i64) -> WrappedKey {
        let key = Zeroizing::new(random_bytes(32));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = key_aad(id);
        let ct = master
            .cipher()
            .encrypt(&nonce, Payload { msg: key.as_slice(), aad: &aad })
            .expect("AES-GCM encryption of 32 bytes cannot fail");
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&ct);
        WrappedKey { id, wrapped }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key new values are sealed with.
    pub(crate) fn active(&self) -> i64 {
        self.active
    }

    /// Whether the key `id` is in the keyring.
    pub(crate) fn knows(&self, id: i64) -> bool {
        self.cipher(id).is_some()
    }

    /// Adds the keys of `other` this keyring lacks and takes its active key: a key retired from
    /// the database stays usable in memory, for ciphertexts this process still holds.
    pub(crate) fn merge(&mut self, other: Keyring) {
        for (id, cipher) in other.keys {
            if !self.knows(id) {
                self.keys.push((id, cipher));
            }
        }
        self.active = self.active.max(other.active);
    }

    /// `sealed` (a stored value with its associated data) sealed again under the active key;
    /// `None` when it does not decrypt.
    pub(crate) fn reseal(&self, sealed: &Sealed, aad: &ValueAad) -> Option<Sealed> {
        let aad = aad.bytes();
        let plain = self.open_with_aad(sealed, &aad)?;
        Some(self.seal_with_aad(plain.expose_bytes(), &aad))
    }

    /// Whether `sealed` decrypts with its associated data.
    pub(crate) fn opens(&self, sealed: &Sealed, aad: &ValueAad) -> bool {
        self.open_with_aad(sealed, &aad.bytes()).is_some()
    }

    fn cipher(&self, id: i64) -> Option<&Aes256Gcm> {
        self.keys.iter().find(|(k, _)| *k == id).map(|(_, c)| c)
    }

    fn seal_with_aad(&self, plain: &[u8], aad: &[u8]) -> Sealed {
        let cipher = self.cipher(self.active).expect("the active key is in the keyring");
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(&nonce, Payload { msg: plain, aad })
            .expect("AES-GCM encryption within size limits cannot fail");
        Sealed { key_id: self.active, nonce: nonce.into(), ciphertext }
    }

    fn open_with_aad(&self, sealed: &Sealed, aad: &[u8]) -> Option<SecretValue> {
        let cipher = self.cipher(sealed.key_id)?;
        let split = sealed.ciphertext.len().checked_sub(TAG_LEN)?;
        let (ciphertext, tag) = sealed.ciphertext.split_at(split);
        // Decrypt into a buffer of exactly the plaintext's size: no reallocation leaves a copy behind.
        let mut buf = ciphertext.to_vec();
        match cipher.decrypt_in_place_detached(
            Nonce::from_slice(&sealed.nonce),
            aad,
            &mut buf,
            Tag::from_slice(tag),
        ) {
            Ok(()) => Some(SecretValue::new(buf)),
            Err(_) => {
                buf.zeroize();
                None
            }
        }
    }

    pub(crate) fn seal(&self, tenant: TenantId, id: SecretId, version: i64, value: &SecretValue) -> Sealed {
        self.seal_with_aad(value.expose_bytes(), &secret_aad(tenant, id, version))
    }

    /// Decrypts; `None` when authentication fails (altered, moved, unknown key).
    pub(crate) fn open(
        &self,
        tenant: TenantId,
        id: SecretId,
        version: i64,
        sealed: &Sealed,
    ) -> Option<SecretValue> {
        self.open_with_aad(sealed, &secret_aad(tenant, id, version))
    }

    pub(crate) fn seal_system(&self, name: &str, value: &SecretValue) -> Sealed {
        self.seal_with_aad(value.expose_bytes(), &system_aad(name))
    }

    pub(crate) fn open_system(&self, name: &str, sealed: &Sealed) -> Option<SecretValue> {
        self.open_with_aad(sealed, &system_aad(name))
    }
}

/// Random bytes from the operating system.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    OsRng.fill_bytes(&mut v);
    v
}

/// The name of the system secret fingerprint keys are derived from.
pub(crate) const FINGERPRINT_ROOT: &str = "fingerprint-root";

/// Keyed fingerprints of values: HMAC-SHA-256 under a per-tenant key, itself HMAC-SHA-256 of the
/// tenant's id under a root key kept encrypted in the store (a system secret). Equal values of a
/// tenant fingerprint alike; without the key nobody can test a guess offline, and one tenant's
/// fingerprints say nothing about another's.
pub(crate) struct Fingerprinter(SecretBox<[u8; 32]>);

/// Hex characters of a fingerprint shown (48 bits).
const FINGERPRINT_CHARS: usize = 12;

impl Fingerprinter {
    pub(crate) fn new(root: &SecretValue) -> Option<Self> {
        let bytes: [u8; 32] = root.expose_bytes().try_into().ok()?;
        Some(Self(SecretBox::new(Box::new(bytes))))
    }

    fn tenant_key(&self, tenant: TenantId) -> Zeroizing<[u8; 32]> {
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(b"veil:fingerprint-key:");
        mac.update(tenant.0.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// The fingerprint of `value` for `tenant`: 12 lowercase hex characters.
    pub(crate) fn fingerprint(&self, tenant: TenantId, value: &[u8]) -> String {
        use hmac::Mac as _;
        let key = self.tenant_key(tenant);
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key.as_slice())
            .expect("HMAC takes a key of any length");
        mac.update(value);
        let mut text = hex::encode(mac.finalize().into_bytes());
        text.truncate(FINGERPRINT_CHARS);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::parse(&STANDARD.encode([7u8; 32]), "test").unwrap()
    }

    #[test]
    fn round_trip_and_binding() {
        let m = master();
        let ring = Keyring::unwrap_all(&m, &[Keyring::new_wrapped_key(&m, 1)]).unwrap();
        let (t, s) = (TenantId::new_random(), SecretId::new_random());
        let sealed = ring.seal(t, s, 1, &SecretValue::from("p\"a\\ss"));
        assert_eq!(ring.open(t, s, 1, &sealed).unwrap().expose_text(), Some("p\"a\\ss"));
        assert!(ring.open(t, s, 2, &sealed).is_none(), "other version");
        assert!(ring.open(t, SecretId::new_random(), 1, &sealed).is_none(), "other secret");
        assert!(ring.open(TenantId::new_random(), s, 1, &sealed).is_none(), "other tenant");
        let again = ring.seal(t, s, 1, &SecretValue::from("p\"a\\ss"));
        assert_ne!(again.nonce, sealed.nonce, "fresh nonce per encryption");
    }

    #[test]
    fn wrong_master_key_is_detected() {
        let m = master();
        let wrapped = Keyring::new_wrapped_key(&m, 1);
        let other = MasterKey::parse(&STANDARD.encode([8u8; 32]), "test").unwrap();
        assert!(matches!(Keyring::unwrap_all(&other, &[wrapped]), Err(StoreError::WrongMasterKey)));
    }

    #[test]
    fn master_key_parse_errors_name_the_source() {
        let e = MasterKey::parse("not base64!", "VEIL_MASTER_KEY").err().unwrap().to_string();
        assert!(e.contains("VEIL_MASTER_KEY") && e.contains("base64"), "{e}");
        let e = MasterKey::parse(&STANDARD.encode([1u8; 16]), "VEIL_MASTER_KEY").err().unwrap();
        assert!(e.to_string().contains("16 bytes"), "{e}");
    }

    #[test]
    fn fingerprints_depend_on_the_value_the_tenant_and_the_key() {
        let root = Fingerprinter::new(&SecretValue::new(vec![7; 32])).unwrap();
        let other_root = Fingerprinter::new(&SecretValue::new(vec![8; 32])).unwrap();
        let (a, b) = (TenantId(uuid::Uuid::new_v4()), TenantId(uuid::Uuid::new_v4()));
        let fp = root.fingerprint(a, b"hunter2");
        assert_eq!(fp.len(), 12);
        assert!(fp.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{fp}");
        assert_eq!(root.fingerprint(a, b"hunter2"), fp, "equal values, equal fingerprints");
        assert_ne!(root.fingerprint(a, b"hunter3"), fp);
        assert_ne!(root.fingerprint(b, b"hunter2"), fp, "another tenant");
        assert_ne!(other_root.fingerprint(a, b"hunter2"), fp, "another key");
        assert!(Fingerprinter::new(&SecretValue::new(vec![7; 31])).is_none());
    }
}
