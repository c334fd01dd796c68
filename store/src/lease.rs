//! Work done once for the whole cluster: an integration's start-up (logging in to LORIOT,
//! creating its application output) must not run on every instance that starts the integration.
//!
//! [`Store::lease`] takes a lease on one piece of work of one configuration: on PostgreSQL a
//! transaction-scoped advisory lock (held until the lease is recorded or dropped, so a crashed
//! holder releases it with its connection), on SQLite — one process — an in-process lock. Under
//! the lease the holder reads what the last holder recorded; when that was done for the same
//! fingerprint (configuration and secret versions) moments ago, it takes that outcome instead of
//! doing the work again. Otherwise it does the work and records how it went. A lease dropped
//! without recording is a plain cluster-wide lock (the first start's bootstrap uses one).

use std::time::Duration;

use uuid::Uuid;

use crate::backend::{Held, Recorded};
use crate::error::Result;
use crate::model::now_ms;
use crate::store::Store;

/// The right to do one piece of work of one configuration for the whole cluster, until it is
/// [recorded](Lease::record) or dropped.
pub struct Lease {
    store: Store,
    owner: Uuid,
    work: String,
    held: Held,
    found: Option<Recorded>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("owner", &self.owner).field("work", &self.work).finish()
    }
}

impl Store {
    /// Takes the cluster-wide lease on `work` (e.g. `"start"`) of the configuration `owner`,
    /// waiting while another instance (or task) holds it — at most a minute on PostgreSQL, then
    /// [`StoreError::Database`](crate::StoreError::Database).
    pub async fn lease(&self, owner: Uuid, work: &str) -> Result<Lease> {
        let (held, found) = self.backend().begin_lease(owner, work).await?;
        Ok(Lease { store: self.clone(), owner, work: work.to_owned(), held, found })
    }
}

impl Lease {
    /// How the work went when the last holder did it for `fingerprint` no longer than `fresh`
    /// ago: `Some(Ok(()))` it worked, `Some(Err(reason))` it failed; `None`: do it.
    pub fn outcome(&self, fingerprint: &str, fresh: Duration) -> Option<std::result::Result<(), String>> {
        let found = self.found.as_ref().filter(|r| r.fingerprint == fingerprint)?;
        let age = now_ms().saturating_sub(found.done_time);
        if age < 0 || age as u128 >= fresh.as_millis() {
            return None;
        }
        Some(found.failure.clone().map_or(Ok(()), Err))
    }

    /// Records how the work went for `fingerprint` (`failure`: the reason, already redacted) and
    /// releases the lease. Fails when the configuration was deleted meanwhile.
    pub async fn record(self, fingerprint: &str, failure: Option<&str>) -> Result<()> {
        let recorded = Recorded {
            fingerprint: fingerprint.to_owned(),
            failure: failure.map(str::to_owned),
            done_time: now_ms(),
        };
        self.store.backend().record_lease(self.held, self.owner, &self.work, &recorded).await
    }
}
