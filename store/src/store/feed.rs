//! Following the change feed: other instances' writes applied to this one's index and
//! published to its subscribers, and a full resync after a gap.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::Store;
use crate::backend::SecretRow;
use crate::error::Result;
use crate::events::ChangeKind;
use crate::feed::{Change, FeedItem, OwnerChange};
use crate::model::{SecretId, TenantId};

impl Store {
    /// Applies other instances' committed changes as they come (PostgreSQL), until the store
    /// closes. Listening has begun when this returns: what commits later is seen.
    pub(super) async fn follow_feed(&self) -> Result<()> {
        let Some(feed) = self.inner.backend.change_feed() else { return Ok(()) };
        let mut feed = feed.listen().await?;
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            // What committed between loading at open and listening was announced to nobody here:
            // read everything once more now that nothing can be missed.
            // (The index and the tenants' settings; configurations are read by the host after open.)
            if let Some(inner) = weak.upgrade() {
                let store = Store { inner };
                if let Err(e) = store.resync_once().await {
                    tracing::warn!(error = %e, "change feed: the first reload failed; reloading everything");
                    store.resync().await;
                }
            }
            while let Some(item) = feed.recv().await {
                let Some(inner) = weak.upgrade() else { break };
                Store { inner }.apply(item).await;
            }
        });
        Ok(())
    }

    /// Brings this instance's memory up to date with a change committed by another one: the
    /// index, sessions and deleted tenants here; running chains and integrations through
    /// [`Store::subscribe_owners`].
    async fn apply(&self, item: FeedItem) {
        let change = match item {
            FeedItem::Change(change) => change,
            FeedItem::Resync => return self.resync().await,
        };
        crate::metrics::STORE.feed_changes.inc();
        let applied = match change {
            Change::Secret(id) => self.reload_secret(id).await,
            Change::Owner { kind: crate::references::OwnerType::SecretProvider, id, tenant } => {
                self.reload_provider(tenant, id).await
            }
            Change::Owner { kind, id, tenant } => {
                let _ = self.inner.owner_events.send(OwnerChange::Changed { kind, id, tenant });
                Ok(())
            }
            Change::Tenant(id) => self.reload_tenant(id).await,
            Change::Directory => {
                self.inner.sessions.clear();
                Ok(())
            }
            Change::DataKeys => self.reload_keys().await,
        };
        if let Err(e) = applied {
            tracing::warn!(error = %e, "change feed: a change could not be read; reloading everything");
            self.resync().await;
        }
    }

    /// Reads one secret again and updates the index, announcing what changed.
    async fn reload_secret(&self, id: SecretId) -> Result<()> {
        // Under the write lock: a write of this process commits and updates the index as one step.
        let _guard = self.inner.write.lock().await;
        // Only a backend with a change feed announces other instances' changes.
        let Some(feed) = self.inner.backend.change_feed() else { return Ok(()) };
        let now = feed.reload_secret(id).await?;
        if let Some(row) = &now {
            self.ensure_key(row.sealed.key_id).await?;
        }
        let before = self.inner.index.by_id(id);
        self.replace_row(before.as_deref(), now);
        Ok(())
    }

    /// Puts `now` in the index in place of `before`, announcing the difference.
    pub(super) fn replace_row(&self, before: Option<&SecretRow>, now: Option<SecretRow>) {
        match (before, now) {
            (None, None) => {}
            (Some(old), None) => {
                self.inner.index.remove(&old.info);
                self.inner.linked.remove(old.info.id);
                self.publish(&old.info, ChangeKind::Deleted);
            }
            (old, Some(row)) => {
                let info = row.info.clone();
                if let Some(old) = old
                    && old.info.source != info.source
                {
                    self.inner.linked.expire(info.id);
                }
                self.inner.index.insert(row);
                match old {
                    None => self.publish(&info, ChangeKind::Created),
                    Some(old) => {
                        if old.info.version != info.version {
                            self.publish(&info, ChangeKind::ValueUpdated(info.version));
                        }
                        if old.info.description != info.description || old.info.file_name != info.file_name {
                            self.publish(&info, ChangeKind::DescriptionUpdated);
                        }
                    }
                }
            }
        }
    }

    /// A tenant that no longer exists is deleted here too: its secrets leave the index and
    /// writes still in flight for it are refused.
    async fn reload_tenant(&self, id: TenantId) -> Result<()> {
        self.inner.sessions.clear();
        let tenant = self.inner.backend.tenant_by_id(id).await?;
        self.remember_settings(id, tenant.as_ref().map(|t| t.settings()));
        if tenant.is_none() {
            let _guard = self.inner.write.lock().await;
            self.inner.deleted_tenants.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
            self.forget_tenant_providers(id);
            self.inner.index.remove_tenant(id);
        }
        Ok(())
    }

    /// After notifications may have been lost: every secret read again, sessions verified again,
    /// and the host told to compare what runs with the database. Retries until the database
    /// answers.
    async fn resync(&self) {
        crate::metrics::STORE.feed_resyncs.inc();
        loop {
            match self.resync_once().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "change feed: cannot reload yet; retrying in 1 s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
        self.inner.sessions.clear();
        let _ = self.inner.owner_events.send(OwnerChange::Resync);
        tracing::info!(secrets = self.secret_count(), "change feed: resynchronized");
    }

    async fn resync_once(&self) -> Result<()> {
        self.load_settings().await?;
        self.load_providers().await?;
        self.reload_keys().await?;
        let _guard = self.inner.write.lock().await;
        let rows = self.inner.backend.load_secrets().await?;
        let mut gone: std::collections::HashMap<SecretId, Arc<SecretRow>> =
            self.inner.index.by_id.iter().map(|e| (*e.key(), Arc::clone(e.value()))).collect();
        for row in rows {
            let before = gone.remove(&row.info.id);
            self.replace_row(before.as_deref(), Some(row));
        }
        for old in gone.into_values() {
            self.replace_row(Some(&old), None);
        }
        Ok(())
    }

    /// Rule chains and integrations saved or deleted through other instances, from now on.
    pub fn subscribe_owners(&self) -> broadcast::Receiver<OwnerChange> {
        self.inner.owner_events.subscribe()
    }
}
