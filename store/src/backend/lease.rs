//! What the backends keep of a cluster-wide lease: how it is held (dropping it releases it) and
//! what its last holder recorded.

use crate::error::Result;

/// What the last holder of a lease recorded.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) fingerprint: String,
    /// `None`: the work succeeded.
    pub(crate) failure: Option<String>,
    /// Milliseconds since the epoch.
    pub(crate) done_time: i64,
}

impl Recorded {
    /// A `cluster_work` row (either backend).
    pub(crate) fn from_row<R: sqlx::Row>(r: &R) -> Result<Self>
    where
        for<'c> &'c str: sqlx::ColumnIndex<R>,
        for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
        for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(Self {
            fingerprint: r.try_get("fingerprint")?,
            failure: r.try_get::<Option<String>, _>("failure")?,
            done_time: r.try_get("done_time")?,
        })
    }
}

/// How a lease is held: dropping it releases the lease.
pub(crate) enum Held {
    /// SQLite: one process, an in-process lock per piece of work.
    Local(
        #[allow(dead_code, reason = "held for its drop, which releases the lease")]
        tokio::sync::OwnedMutexGuard<()>,
    ),
    /// PostgreSQL: a transaction holding `pg_advisory_xact_lock`, and one of the instance's
    /// lease permits (leases never take more than a few of the pool's connections).
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>, tokio::sync::OwnedSemaphorePermit),
}
