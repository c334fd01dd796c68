//! veil-store: Veil's encrypted secret store, and the directory and configurations around it.
//!
//! **Secrets.** A [`Store`] keeps secrets (TEXT or FILE) per tenant. Values are encrypted with
//! AES-256-GCM under data keys; the data keys are kept in the database wrapped by a master key that
//! never touches the database ([`MasterKeySource`]). Each ciphertext's associated data binds it to
//! its tenant, secret id and version, so a ciphertext copied to another row fails to decrypt.
//! Plaintext lives only in [`SecretValue`] (zeroized on drop, `Debug` prints `[REDACTED]`, no
//! `Serialize`).
//!
//! **Reads from memory, writes to the database first.** Writes commit in the database (a
//! [`Database`]: a SQLite file by default, PostgreSQL for several instances) — each in one
//! transaction with what it checks and its audit row — and then update an in-memory index of
//! metadata and ciphertext, so [`Store::resolve`] (the one call that decrypts) and every read on the
//! message path never touch the database. Committed changes are published as [`SecretEvent`]s.
//!
//! **Access.** Every call takes an [`Actor`] and checks its permissions here, so every entry point
//! enforces the same rules; another tenant's object is "not found". Tenants, customers, users and
//! custom roles, sharing with customers and the audit log live here too, and so do the
//! destinations a secret may be sent to ([`normalize_destinations`], [`destination_allowed`]).
//!
//! **Configurations.** Rule chains and integrations that use secrets are saved with
//! [`Store::save_owner`], which replaces their references atomically; the database refuses to
//! delete a referenced secret, and [`Store::usages`] says who uses it.
//!
//! **Several instances** share one PostgreSQL database: the database keeps every invariant
//! (unique names, references, versions, quotas), a change feed carries each instance's commits to
//! the others ([`Store::subscribe_owners`] for configurations), and a [`Lease`] lets one instance
//! do a piece of work for the whole cluster. [`migrate_to_postgres`] copies a SQLite store into
//! PostgreSQL (`veil migrate`).

mod access;
mod audit;
mod backend;
mod copy;
mod crypto;
mod destinations;
mod directory;
mod error;
mod events;
mod feed;
mod ids;
mod inspect;
mod keys;
mod lease;
pub mod metrics;
mod model;
mod provider;
mod quota;
mod references;
mod rekey;
mod rotation;
mod sessions;
mod store;

// The exports, by who uses them.

// Opening and running a store (the server's start-up, `veil migrate`, the test kit).
pub use crate::backend::Database;
pub use crate::copy::{MigrateProgress, MigrateReport, migrate_to_postgres};
pub use crate::crypto::MasterKeySource;
pub use crate::lease::Lease;
pub use crate::model::{Limits, now_ms};
pub use crate::provider::cache::LinkedStatus;
pub use crate::provider::{
    DEFAULT_CACHE_SECONDS, MAX_FETCHES_PER_TENANT, MAX_PROVIDERS_PER_TENANT, PROVIDER_TYPES, ProviderPolicy,
    Source,
};
pub use crate::rekey::{RekeyReport, generate_master_key, rekey};
pub use crate::store::{Bootstrap, NewProvider, ProviderInfo, Store, StoreConfig};

// Secrets: their records, values, changes and where they may go (the API, the engine).
pub use crate::destinations::{MAX_DESTINATIONS, destination_allowed, is_plain_host, normalize_destinations};
pub use crate::events::{ChangeKind, SecretEvent};
pub use crate::inspect::{CertificateInfo, PrivateKeyInfo};
pub use crate::keys::{DataKeyInfo, KeyRotation, KeyStatus};
pub use crate::model::{
    DEFAULT_MAX_VERSIONS, MAX_DESCRIPTION_CHARS, MAX_MAX_VERSIONS, MAX_NAME_CHARS, NewSecret,
    SHORT_VALUE_CHARS, SecretId, SecretInfo, SecretType, SecretUpdate, SecretValue, SecretVersion,
    VersionState, validate_label, validate_name, value_warnings,
};
pub use crate::rotation::{PendingVersion, ProbeRecord};
pub use crate::store::{KeyRotationReport, ListQuery, Page, Verification};

// Configurations that use secrets: rule chains and integrations, their references and links.
pub use crate::backend::OwnerRecord;
pub use crate::feed::OwnerChange;
pub use crate::references::{NodeUsage, Owner, OwnerLink, OwnerType, OwnerUsage, SecretRef, Usages};

// Who may do what: tenants, customers, users, roles, sessions and the audit log.
pub use crate::access::{Actor, Operation, Permissions, Resource, Role};
pub use crate::audit::{AuditAction, AuditEntry, AuditQuery, UseContext};
pub use crate::directory::{
    CustomerRecord, ExpiryNotices, Grant, RoleRecord, SYSTEM_TENANT, TenantRecord, TenantSettings, UserInfo,
    UserRecord, UserUpdate,
};
pub use crate::model::{CustomerId, TenantId, UserId};
pub use crate::sessions::{SESSION_TTL, Session};
pub use crate::store::{MAX_DIRECTORY_NAME, NewUser};

// What went wrong, by kind.
pub use crate::error::{FieldProblem, NameConflict, NeededKind, Result, StoreError};

/// What the fuzz targets (`store/fuzz`) reach of the internals; only in fuzzing builds.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Reads a change-feed payload as a listening instance `own` does: whether it is a change.
    pub fn feed_change(payload: &str, own: &str) -> bool {
        crate::feed::parse(payload, own).is_some()
    }
}
