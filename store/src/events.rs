//! Change events, published on a tokio broadcast channel so running nodes and integrations refresh.

use crate::model::{SecretId, TenantId};

/// What happened to a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created (version 1).
    Created,
    /// The value changed; the new version.
    ValueUpdated(i64),
    /// The description (or file name) changed.
    DescriptionUpdated,
    /// Deleted.
    Deleted,
}

/// One change, after it committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEvent {
    /// The secret's tenant.
    pub tenant_id: TenantId,
    /// The secret.
    pub secret_id: SecretId,
    /// Its name (names never change).
    pub name: String,
    /// What happened.
    pub kind: ChangeKind,
}
