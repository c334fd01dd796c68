//! The in-memory index of every secret's metadata and ciphertext: what `resolve` and every read
//! use, so the message path never touches the database.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use dashmap::DashMap;

use crate::backend::SecretRow;
use crate::model::{CustomerId, SecretId, SecretInfo, TenantId, skeleton};

/// foldhash: half the cost of SipHash on `resolve`'s two look-ups; seeded randomly per process.
type FastMap<K, V> = DashMap<K, V, foldhash::fast::RandomState>;

/// Metadata and ciphertext of every secret, so look-ups never touch the database.
#[derive(Default)]
pub(super) struct Index {
    pub(super) by_id: FastMap<SecretId, Arc<SecretRow>>,
    pub(super) by_name: FastMap<TenantId, FastMap<String, Arc<SecretRow>>>,
    /// The names of each tenant by their UTS #39 confusable skeleton, so a new name that looks
    /// like an existing one is found without scanning the tenant (several only in databases
    /// written before the rule).
    pub(super) by_skeleton: FastMap<(TenantId, String), Vec<String>>,
    /// Each tenant's secrets sorted by name, for listing a page without sorting (or copying)
    /// the whole tenant on every request.
    pub(super) sorted: FastMap<TenantId, RwLock<BTreeMap<String, Listed>>>,
}

/// A secret in a tenant's sorted index: its row, and its name in lower case, kept so that a
/// search compares bytes (one vectorised substring search per name) instead of folding every
/// name of the tenant on every request.
pub(super) struct Listed {
    pub(super) lowercase: Box<str>,
    pub(super) row: Arc<SecretRow>,
}

impl Index {
    pub(super) fn insert(&self, row: SecretRow) {
        let row = Arc::new(row);
        let (tenant, name) = (row.info.tenant_id, row.info.name.clone());
        self.by_id.insert(row.info.id, Arc::clone(&row));
        self.sorted
            .entry(tenant)
            .or_default()
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), Listed { lowercase: name.to_lowercase().into(), row: Arc::clone(&row) });
        let known = self.by_name.entry(tenant).or_default().insert(name.clone(), row).is_some();
        if !known {
            let mut names = self.by_skeleton.entry((tenant, skeleton(&name))).or_default();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }

    pub(super) fn remove(&self, info: &SecretInfo) {
        self.by_id.remove(&info.id);
        if let Some(names) = self.by_name.get(&info.tenant_id) {
            names.remove(&info.name);
        }
        if let Some(sorted) = self.sorted.get(&info.tenant_id) {
            sorted.write().unwrap_or_else(|e| e.into_inner()).remove(&info.name);
        }
        let key = (info.tenant_id, skeleton(&info.name));
        if let Some(mut names) = self.by_skeleton.get_mut(&key) {
            names.retain(|n| *n != info.name);
        }
        self.by_skeleton.remove_if(&key, |_, names| names.is_empty());
    }

    /// Another name of the tenant that looks like `name`.
    pub(super) fn lookalike(&self, tenant: TenantId, name: &str) -> Option<String> {
        let names = self.by_skeleton.get(&(tenant, skeleton(name)))?;
        names.iter().find(|n| *n != name).cloned()
    }

    pub(super) fn by_name(&self, tenant: TenantId, name: &str) -> Option<Arc<SecretRow>> {
        self.by_name.get(&tenant).and_then(|names| names.get(name).map(|r| Arc::clone(r.value())))
    }

    pub(super) fn by_id(&self, id: SecretId) -> Option<Arc<SecretRow>> {
        self.by_id.get(&id).map(|r| Arc::clone(r.value()))
    }

    pub(super) fn remove_tenant(&self, tenant: TenantId) {
        self.by_id.retain(|_, row| row.info.tenant_id != tenant);
        self.by_name.remove(&tenant);
        self.sorted.remove(&tenant);
        self.by_skeleton.retain(|(t, _), _| *t != tenant);
    }

    /// Calls `each` with the tenant's secrets (the name in lower case, and the row) in name
    /// order, under the tenant's read lock, until it returns false.
    pub(super) fn in_name_order(
        &self,
        tenant: TenantId,
        mut each: impl FnMut(&str, &Arc<SecretRow>) -> bool,
    ) {
        if let Some(sorted) = self.sorted.get(&tenant) {
            for listed in sorted.read().unwrap_or_else(|e| e.into_inner()).values() {
                if !each(&listed.lowercase, &listed.row) {
                    break;
                }
            }
        }
    }

    /// How many secrets the tenant has, and the rows `skip..skip + take` in name order: a page
    /// found without looking at the rows before it.
    pub(super) fn name_order_page(
        &self,
        tenant: TenantId,
        skip: usize,
        take: usize,
    ) -> (usize, Vec<Arc<SecretRow>>) {
        match self.sorted.get(&tenant) {
            Some(sorted) => {
                let sorted = sorted.read().unwrap_or_else(|e| e.into_inner());
                (
                    sorted.len(),
                    sorted.values().skip(skip).take(take).map(|listed| Arc::clone(&listed.row)).collect(),
                )
            }
            None => (0, Vec::new()),
        }
    }

    pub(super) fn forget_customer(&self, tenant: TenantId, customer: CustomerId) {
        let shared: Vec<Arc<SecretRow>> = self
            .by_id
            .iter()
            .filter(|r| r.info.tenant_id == tenant && r.info.shared_with.contains(&customer))
            .map(|r| Arc::clone(r.value()))
            .collect();
        for row in shared {
            let mut info = row.info.clone();
            info.shared_with.retain(|c| *c != customer);
            self.insert(SecretRow { info, sealed: row.sealed.clone() });
        }
    }
}
