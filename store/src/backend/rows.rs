//! Row decoders written once for both backends. A [`Columns`] row reads ids as the backend keeps
//! them (`uuid` in PostgreSQL, text in SQLite); every other column has one type on both (bigint,
//! text holding JSON, bytes), so each record is decoded by one function.

use uuid::Uuid;

use super::OwnerRecord;
use crate::audit::{AuditAction, AuditEntry};
use crate::crypto::Sealed;
use crate::directory::{CustomerRecord, Grant, RoleRecord, TenantRecord, UserRecord};
use crate::error::{Result, StoreError};
use crate::model::{
    CustomerId, SecretId, SecretInfo, SecretType, SecretVersion, TenantId, UserId, VersionState,
};
use crate::references::{Owner, OwnerType, SecretRef};
use crate::rotation::{PendingRow, PendingVersion, ProbeRecord};

/// A row of either backend, read the same way.
pub(crate) trait Columns {
    /// An id column.
    fn uuid(&self, col: &str) -> Result<Uuid>;
    /// An id column that may be NULL.
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>>;
    /// A bigint column.
    fn int(&self, col: &str) -> Result<i64>;
    /// A bigint column that may be NULL.
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    /// A text column.
    fn text(&self, col: &str) -> Result<String>;
    /// A text column that may be NULL.
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    /// A bytes column.
    fn bytes(&self, col: &str) -> Result<Vec<u8>>;
}

/// A column that does not hold what the schema says.
pub(crate) fn decode_err(what: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(what.to_owned().into()))
}

/// JSON kept as text.
fn json<T: serde::de::DeserializeOwned>(row: &impl Columns, col: &str, what: &str) -> Result<T> {
    serde_json::from_str(&row.text(col)?).map_err(|_| decode_err(what))
}

/// A secret's metadata (the columns of `secrets` but its value), with its shares.
pub(crate) fn secret_info_from(row: &impl Columns, shared_with: Vec<CustomerId>) -> Result<SecretInfo> {
    Ok(SecretInfo {
        id: SecretId(row.uuid("id")?),
        tenant_id: TenantId(row.uuid("tenant_id")?),
        name: row.text("name")?,
        kind: SecretType::parse(&row.text("type")?).ok_or_else(|| decode_err("secrets.type"))?,
        description: row.text("description")?,
        file_name: row.opt_text("file_name")?,
        version: row.int("version")?,
        created_time: row.int("created_time")?,
        updated_time: row.int("updated_time")?,
        shared_with,
        allowed_destinations: json(row, "allowed_destinations", "secrets.allowed_destinations")?,
        max_versions: row.int("max_versions")?,
        expires_at: row.opt_int("expires_at")?,
        certificate: opt_json(row, "certificate", "secrets.certificate")?,
        private_key: opt_json(row, "private_key", "secrets.private_key")?,
        source: opt_json(row, "source", "secrets.source")?,
        status: None,
    })
}

/// JSON kept as text that may be NULL.
fn opt_json<T: serde::de::DeserializeOwned>(row: &impl Columns, col: &str, what: &str) -> Result<Option<T>> {
    row.opt_text(col)?.map(|text| serde_json::from_str(&text).map_err(|_| decode_err(what))).transpose()
}

/// The columns [`secret_info_from`] and [`sealed_from`] read, for a `SELECT` from `secrets`.
pub(crate) const SECRET_COLUMNS: &str = "id, tenant_id, name, type, description, file_name, version, \
     created_time, updated_time, allowed_destinations, max_versions, expires_at, certificate, private_key, \
     source, key_id, nonce, ciphertext";

/// The listing of a secret's versions, newest first: the state follows from where the value is
/// (in `secrets`: current; in `secret_history`: kept; nowhere: destroyed). `$1` the secret,
/// `$2` and `$3` limit and offset.
pub(crate) const VERSIONS_SQL: &str = "SELECT v.version, v.created_time, v.created_by, v.fingerprint, \
     CASE WHEN v.version = s.version THEN 'CURRENT' WHEN h.version IS NOT NULL THEN 'PREVIOUS' \
     ELSE 'DESTROYED' END AS state \
     FROM secret_versions v JOIN secrets s ON s.id = v.secret_id \
     LEFT JOIN secret_history h ON h.secret_id = v.secret_id AND h.version = v.version \
     WHERE v.secret_id = $1 ORDER BY v.version DESC LIMIT $2 OFFSET $3";

/// A row of [`VERSIONS_SQL`].
pub(crate) fn version_from(row: &impl Columns) -> Result<SecretVersion> {
    let state = match row.text("state")?.as_str() {
        "CURRENT" => VersionState::Current,
        "PREVIOUS" => VersionState::Previous,
        _ => VersionState::Destroyed,
    };
    Ok(SecretVersion {
        version: row.int("version")?,
        created_time: row.int("created_time")?,
        created_by: row.opt_text("created_by")?,
        state,
        fingerprint: row.opt_text("fingerprint")?,
    })
}

/// The columns of `secret_pending`, for [`pending_from`]. `$1` the secret.
pub(crate) const PENDING_SQL: &str = "SELECT version, key_id, nonce, ciphertext, file_name, created_time, \
     created_by, fingerprint FROM secret_pending WHERE secret_id = $1";

/// A pending value with its ciphertext.
pub(crate) fn pending_from(row: &impl Columns) -> Result<PendingRow> {
    Ok(PendingRow {
        info: PendingVersion {
            version: row.int("version")?,
            created_time: row.int("created_time")?,
            created_by: row.opt_text("created_by")?,
            fingerprint: row.text("fingerprint")?,
            file_name: row.opt_text("file_name")?,
        },
        sealed: sealed_from(row)?,
    })
}

/// Records one consumer's probe result, while the pending value of that version is there.
/// `$1` secret, `$2` version, then owner type, id, name, node id, node name, field, result,
/// reason, time.
pub(crate) const RECORD_PROBE_SQL: &str = "INSERT INTO secret_probes (secret_id, version, owner_type, \
     owner_id, owner_name, node_id, node_name, field, result, reason, time) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
     WHERE EXISTS (SELECT 1 FROM secret_pending WHERE secret_id = $1 AND version = $2) \
     ON CONFLICT (secret_id, owner_id, node_id, field) DO UPDATE SET version = excluded.version, \
     owner_name = excluded.owner_name, node_name = excluded.node_name, result = excluded.result, \
     reason = excluded.reason, time = excluded.time";

/// The probe results for a pending version, in a stable order. `$1` secret, `$2` version.
pub(crate) const PROBES_SQL: &str = "SELECT owner_type, owner_id, owner_name, node_id, node_name, field, \
     result, reason, time FROM secret_probes WHERE secret_id = $1 AND version = $2 \
     ORDER BY owner_type DESC, owner_name, owner_id, node_name, node_id, field";

pub(crate) fn probe_from(row: &impl Columns) -> Result<ProbeRecord> {
    Ok(ProbeRecord {
        owner_type: OwnerType::parse(&row.text("owner_type")?)
            .ok_or_else(|| decode_err("secret_probes.owner_type"))?,
        id: row.uuid("owner_id")?,
        name: row.text("owner_name")?,
        node_id: row.text("node_id")?,
        node: row.opt_text("node_name")?,
        field: row.text("field")?,
        result: row.text("result")?,
        reason: row.text("reason")?,
        time: row.int("time")?,
    })
}

/// A ciphertext with its data key and nonce.
pub(crate) fn sealed_from(row: &impl Columns) -> Result<Sealed> {
    let nonce = row.bytes("nonce")?;
    Ok(Sealed {
        key_id: row.int("key_id")?,
        nonce: nonce.as_slice().try_into().map_err(|_| decode_err("nonce is not 12 bytes"))?,
        ciphertext: row.bytes("ciphertext")?,
    })
}

pub(crate) fn user_from(row: &impl Columns) -> Result<UserRecord> {
    Ok(UserRecord {
        id: UserId(row.uuid("id")?),
        tenant_id: TenantId(row.uuid("tenant_id")?),
        customer_id: row.opt_uuid("customer_id")?.map(CustomerId),
        username: row.text("username")?,
        password_hash: row.text("password_hash")?,
        roles: json(row, "roles", "users.roles")?,
        created_time: row.int("created_time")?,
        tokens_valid_after: row.int("tokens_valid_after")?,
    })
}

pub(crate) fn owner_from(row: &impl Columns) -> Result<OwnerRecord> {
    Ok(OwnerRecord {
        owner: Owner {
            kind: OwnerType::parse(&row.text("type")?).ok_or_else(|| decode_err("owners.type"))?,
            id: row.uuid("id")?,
            name: row.text("name")?,
            customer_id: row.opt_uuid("customer_id")?.map(CustomerId),
        },
        tenant_id: TenantId(row.uuid("tenant_id")?),
        body: json(row, "body", "owners.body")?,
        created_time: row.int("created_time")?,
        updated_time: row.int("updated_time")?,
    })
}

pub(crate) fn tenant_from(row: &impl Columns) -> Result<TenantRecord> {
    Ok(TenantRecord {
        id: TenantId(row.uuid("id")?),
        name: row.text("name")?,
        created_time: row.int("created_time")?,
        destinations_required: row.int("destinations_required")? != 0,
        cas_required: row.int("cas_required")? != 0,
        strict_values: row.int("strict_values")? != 0,
        expiry_notices: opt_json(row, "expiry_notices", "tenants.expiry_notices")?,
    })
}

pub(crate) fn customer_from(row: &impl Columns) -> Result<CustomerRecord> {
    Ok(CustomerRecord {
        id: CustomerId(row.uuid("id")?),
        tenant_id: TenantId(row.uuid("tenant_id")?),
        name: row.text("name")?,
        created_time: row.int("created_time")?,
    })
}

pub(crate) fn role_from(row: &impl Columns) -> Result<RoleRecord> {
    Ok(RoleRecord {
        id: row.uuid("id")?,
        tenant_id: TenantId(row.uuid("tenant_id")?),
        name: row.text("name")?,
        permissions: json::<Vec<Grant>>(row, "permissions", "roles.permissions")?,
        created_time: row.int("created_time")?,
    })
}

pub(crate) fn audit_from(row: &impl Columns) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.int("id")?,
        tenant_id: row.opt_uuid("tenant_id")?.map(TenantId),
        time: row.int("time")?,
        actor_id: row.opt_text("actor_id")?,
        actor_name: row.text("actor_name")?,
        action: AuditAction::parse(&row.text("action")?).ok_or_else(|| decode_err("audit_log.action"))?,
        target_type: row.opt_text("target_type")?,
        target_id: row.opt_text("target_id")?,
        target_name: row.opt_text("target_name")?,
        outcome: row.text("outcome")?,
        details: json(row, "details", "audit_log.details")?,
    })
}

/// One use of a secret: the configuration's kind, id and name, and where in it.
pub(crate) fn usage_from(row: &impl Columns) -> Result<(OwnerType, Uuid, String, SecretRef)> {
    Ok((
        OwnerType::parse(&row.text("type")?).ok_or_else(|| decode_err("owners.type"))?,
        row.uuid("id")?,
        row.text("name")?,
        SecretRef {
            secret_name: String::new(),
            node_id: row.opt_text("node_id")?,
            node_name: row.opt_text("node_name")?,
            pointer: row.text("pointer")?,
        },
    ))
}
