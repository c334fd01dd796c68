//! `veil key rekey`: the data keys wrapped again under a new master key, in one transaction, with
//! every server stopped. The values stay as they are (they are encrypted under the data keys);
//! afterwards only the new master key opens the store.

use crate::backend::{Backend, Database};
use crate::crypto::{Keyring, MasterKey, MasterKeySource};
use crate::error::{Result, StoreError};

/// Writes a new random master key to `path` (base64 of 32 bytes, mode 0600); refuses to
/// overwrite a file.
pub fn generate_master_key(path: &std::path::Path) -> Result<()> {
    MasterKey::generate(path).map(|_| ())
}

/// What a rekey did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyReport {
    /// Data keys wrapped again.
    pub data_keys: usize,
}

/// Wraps every data key of `database` again under `new` instead of `current`. Refused, changing
/// nothing, when `current` does not open the keyring, when `new` is the same key, or when the
/// database has no keyring. The new key is checked against the rewritten keyring before the
/// transaction commits.
pub async fn rekey(
    database: &Database,
    current: &MasterKeySource,
    new: &MasterKeySource,
) -> Result<RekeyReport> {
    let missing = |what: &str| {
        StoreError::MasterKey(format!("the {what} master key is needed: {what} key file not found"))
    };
    let current = MasterKey::load(current)?.ok_or_else(|| missing("current"))?;
    let new = MasterKey::load(new)?.ok_or_else(|| missing("new"))?;
    if current.same_as(&new) {
        return Err(StoreError::MasterKey("the new master key is the current one; nothing to do".into()));
    }
    let backend = Backend::connect(database).await?;
    let done = async {
        let stored = backend.load_data_keys().await?;
        if stored.is_empty() {
            return Err(StoreError::MasterKey("this database holds no keyring yet: nothing to rekey".into()));
        }
        let rewrapped = Keyring::rewrap_all(&current, &new, &stored)?;
        Keyring::unwrap_all(&new, &rewrapped)?;
        backend.rewrap_data_keys(&rewrapped).await?;
        Ok(RekeyReport { data_keys: rewrapped.len() })
    }
    .await;
    backend.close().await;
    done
}
