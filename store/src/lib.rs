//! veil-store: Veil's encrypted secret store.
//!
//! A [`Store`] keeps secrets (TEXT or FILE) per tenant. Values are encrypted with AES-256-GCM under
//! data keys; the data keys are kept in the database wrapped by a master key that never touches the
//! database ([`MasterKeySource`]). Each ciphertext's associated data binds it to its tenant, secret
//! id and version, so a ciphertext copied to another row fails to decrypt.
//!
//! Writes go to the database first (a [`Database`] backend: SQLite by default) and then to an
//! in-memory index of metadata and ciphertext, so [`Store::resolve`] — the one call that decrypts —
//! never touches the database. Configurations that use secrets are saved with
//! [`Store::save_owner`], which replaces their references atomically; the database refuses to
//! delete a referenced secret. Every call takes an [`Actor`] and checks its permissions here, so
//! every entry point enforces the same rules. Committed changes are published as [`SecretEvent`]s.
//!
//! Plaintext lives only in [`SecretValue`] (zeroized on drop, `Debug` prints `[REDACTED]`, no
//! `Serialize`).

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
mod lease;
mod model;
mod quota;
mod references;
mod sessions;
mod store;

pub use crate::access::{Actor, Operation, Permissions, Resource, Role};
pub use crate::audit::{AuditAction, AuditEntry, AuditQuery, UseContext};
pub use crate::backend::{Database, OwnerRecord};
pub use crate::copy::{MigrateProgress, MigrateReport, migrate_to_postgres};
pub use crate::crypto::MasterKeySource;
pub use crate::destinations::{MAX_DESTINATIONS, destination_allowed, is_plain_host, normalize_destinations};
pub use crate::directory::{
    CustomerRecord, Grant, RoleRecord, SYSTEM_TENANT, TenantRecord, UserInfo, UserRecord, UserUpdate,
};
pub use crate::error::{FieldProblem, NameConflict, NeededKind, Result, StoreError};
pub use crate::events::{ChangeKind, SecretEvent};
pub use crate::feed::OwnerChange;
pub use crate::lease::Lease;
pub use crate::model::{
    CustomerId, Limits, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, NewSecret, SecretId, SecretInfo, SecretType,
    SecretUpdate, SecretValue, TenantId, UserId, now_ms, validate_label, validate_name,
};
pub use crate::references::{NodeUsage, Owner, OwnerLink, OwnerType, OwnerUsage, SecretRef, Usages};
pub use crate::sessions::{SESSION_TTL, Session};
pub use crate::store::{ListQuery, MAX_DIRECTORY_NAME, NewUser, Page, Store, StoreConfig};
