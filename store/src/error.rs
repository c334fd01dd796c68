//! The store's one error type.

use crate::references::Usages;

/// One problem with one field of a request, e.g. `name: must not contain '$'`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldProblem {
    /// The field, as the API spells it (`name`, `value`, `fileName`, ...).
    pub field: String,
    /// What is wrong with it, written for the person who sent it.
    pub message: String,
}

impl FieldProblem {
    pub(crate) fn new(field: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), message: message.into() }
    }
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The kind of object a [`StoreError::Needed`] refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NeededKind {
    /// A customer that still has users or configurations.
    Customer,
    /// A custom role that users still hold.
    Role,
    /// An integration that rule chains still send downlinks through.
    Integration,
    /// A secret provider that linked secrets still come from.
    Provider,
}

/// Why a [`StoreError::NameUnavailable`] name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameConflict {
    /// Another object of the same kind has exactly this name.
    Taken,
    /// Another object of the same kind has a name that looks the same (UTS #39 skeleton).
    Lookalike,
}

/// Everything that can go wrong in the store. No variant ever carries a secret's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The request broke one or more validation rules; every problem is listed.
    #[error("{}", join(.0))]
    Invalid(Vec<FieldProblem>),
    /// A user, customer, role or tenant request broke one or more rules; every problem is listed.
    #[error("{}", join(.0))]
    InvalidInput(Vec<FieldProblem>),
    /// The object is still needed and cannot be deleted (a customer with users or
    /// configurations, a role held by users, an integration rule chains send through).
    #[error("{message}")]
    Needed {
        /// Which kind of object is still needed.
        kind: NeededKind,
        /// What needs it.
        message: String,
    },
    /// A user, customer, role or tenant name cannot be used: another one has it, or looks like it.
    #[error("{message}")]
    NameUnavailable {
        /// Why not.
        conflict: NameConflict,
        /// The field, the name and the one it clashes with (when the actor may know it).
        message: String,
    },
    /// A value is larger than the configured limit.
    #[error("{field}: is {size} bytes, the limit for {kind} secrets is {limit} bytes")]
    TooLarge {
        /// The field carrying the value.
        field: &'static str,
        /// `TEXT` or `FILE`.
        kind: &'static str,
        /// The size that was sent.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The tenant already has a secret of this name.
    #[error("a secret named '{0}' already exists")]
    NameTaken(String),
    /// A request tried to change a field that never changes after creation.
    #[error("{field}: cannot be changed after creation (it is '{current}')")]
    Immutable {
        /// `name` or `type`.
        field: &'static str,
        /// The value the field keeps.
        current: String,
    },
    /// No such object for this actor (other tenants' objects are reported the same way).
    #[error("{kind} '{id}' not found")]
    NotFound {
        /// What was looked for (`secret`, `user`, ...).
        kind: &'static str,
        /// The id or name that was asked for.
        id: String,
    },
    /// The actor lacks a permission.
    #[error("permission denied: {0}")]
    Forbidden(String),
    /// A per-tenant quota (rule chains, integrations, secrets, their bytes, users, roles,
    /// customers) would be exceeded; nothing was written.
    #[error("{0}")]
    LimitReached(String),
    /// A configuration references secrets that do not exist (or were deleted concurrently).
    #[error("unknown secrets referenced: {}", .0.join(", "))]
    UnknownSecrets(Vec<String>),
    /// The secret is referenced and cannot be deleted.
    #[error("secret '{name}' is in use by {usages}")]
    InUse {
        /// The secret's name.
        name: String,
        /// Who references it (boxed: errors stay small on the paths that return them).
        usages: Box<Usages>,
    },
    /// A ciphertext failed authentication: altered, moved to another row, or the wrong key.
    #[error("secret '{0}' failed its integrity check (ciphertext altered or moved); no value returned")]
    Integrity(String),
    /// The master key does not unwrap the keyring in the database.
    #[error(
        "the master key does not match this database: the keyring cannot be unwrapped \
         (check VEIL_MASTER_KEY / --master-key-file); nothing was changed"
    )]
    WrongMasterKey,
    /// The master key could not be loaded.
    #[error("master key: {0}")]
    MasterKey(String),
    /// Another integration holds the routing key (decided by the database, whichever instance
    /// saved it).
    #[error("routingKey: '{0}' is used by another integration")]
    RoutingKeyTaken(String),
    /// Check-and-set: the change was based on a version that is no longer the current one;
    /// nothing changed.
    #[error("secret '{name}' is at version {current}, not {expected}: read it again and retry")]
    VersionMismatch {
        /// The secret's name.
        name: String,
        /// The version the change was based on.
        expected: i64,
        /// The current version.
        current: i64,
    },
    /// The tenant requires value changes to name the version they are based on, and this one
    /// did not.
    #[error(
        "secret '{name}': this tenant requires the version a value change is based on (send If-Match: \"<version>\", e.g. \"{current}\")"
    )]
    VersionRequired {
        /// The secret's name.
        name: String,
        /// The current version.
        current: i64,
    },
    /// A version whose value is gone (beyond the secret's `maxVersions`) cannot be brought back.
    #[error("secret '{name}': version {version} is destroyed (its value is no longer kept)")]
    VersionDestroyed {
        /// The secret's name.
        name: String,
        /// The version asked for.
        version: i64,
    },
    /// A secret has a pending value: promote or drop it before another value change.
    #[error(
        "secret '{name}' has a pending value (version {version}): promote it or drop it before changing the value"
    )]
    RotationPending {
        /// The secret's name.
        name: String,
        /// The pending version.
        version: i64,
    },
    /// Two writers changed the same secret at once; the caller may retry.
    #[error("secret '{0}' was changed concurrently, try again")]
    Conflict(String),
    /// A linked secret's value could not be fetched from its provider (the reason is masked:
    /// no value or credential is in it).
    #[error("secret '{secret}' could not be fetched from provider '{provider}': {reason}")]
    Fetch {
        /// The secret's name.
        secret: String,
        /// The provider's name.
        provider: String,
        /// What went wrong.
        reason: String,
    },
    /// A provider did not answer a test or a listing as asked (masked reason).
    #[error("provider '{provider}': {reason}")]
    Provider {
        /// The provider's name.
        provider: String,
        /// What went wrong.
        reason: String,
    },
    /// A bug or a crashed task; details are in the message.
    #[error("internal error: {0}")]
    Internal(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// `veil migrate` could not copy or verify: which table or secret, and what differs.
    #[error("{0}")]
    Copy(String),
    /// Schema migration failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A file operation (master key) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn join(problems: &[FieldProblem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl StoreError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldProblem::new(field, message)])
    }

    pub(crate) fn input(field: &str, message: impl Into<String>) -> Self {
        Self::InvalidInput(vec![FieldProblem::new(field, message)])
    }

    pub(crate) fn secret_not_found(id: impl ToString) -> Self {
        Self::NotFound { kind: "secret", id: id.to_string() }
    }
}

/// Shorthand for results of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
