//! Which running configurations use each secret: a change to one secret is told to its
//! consumers only, so its cost grows with them, not with every chain or integration the process
//! runs.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;

use uuid::Uuid;
use veil_store::TenantId;

/// The running configurations (rule chains, or integrations) that use each thing of a tenant:
/// a secret, by name (the default), or anything else they depend on (a rule chain, by id).
#[derive(Debug)]
pub struct Consumers<K = String> {
    by_secret: Mutex<HashMap<(TenantId, K), HashSet<Uuid>>>,
}

impl<K> Default for Consumers<K> {
    fn default() -> Self {
        Self { by_secret: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash + Clone> Consumers<K> {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `id` of `tenant` uses `names`.
    pub fn add<'a>(&self, tenant: TenantId, id: Uuid, names: impl IntoIterator<Item = &'a K>)
    where
        K: 'a,
    {
        let mut map = self.by_secret.lock().unwrap_or_else(|e| e.into_inner());
        for name in names {
            map.entry((tenant, name.clone())).or_default().insert(id);
        }
    }

    /// `id` of `tenant` no longer uses `names` (except those `still_uses` keeps).
    pub fn remove<'a>(
        &self,
        tenant: TenantId,
        id: Uuid,
        names: impl IntoIterator<Item = &'a K>,
        still_uses: impl Fn(&K) -> bool,
    ) where
        K: 'a,
    {
        let mut map = self.by_secret.lock().unwrap_or_else(|e| e.into_inner());
        for name in names {
            if still_uses(name) {
                continue;
            }
            let key = (tenant, name.clone());
            if let Some(ids) = map.get_mut(&key) {
                ids.remove(&id);
                if ids.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }

    /// Forgets every consumer of `tenant`.
    pub fn remove_tenant(&self, tenant: TenantId) {
        self.by_secret.lock().unwrap_or_else(|e| e.into_inner()).retain(|(t, _), _| *t != tenant);
    }

    /// The configurations of `tenant` that use `name`.
    pub fn of<Q>(&self, tenant: TenantId, name: &Q) -> Vec<Uuid>
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + ?Sized,
    {
        let map = self.by_secret.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(tenant, name.to_owned())).map(|ids| ids.iter().copied().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_names_exactly_the_configurations_that_use_it() {
        let (t, other) = (TenantId::new_random(), TenantId::new_random());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let c: Consumers = Consumers::new();
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        c.add(t, a, &names(&["token", "key"]));
        c.add(t, b, &names(&["token"]));
        c.add(other, b, &names(&["key"]));
        let mut users = c.of(t, "token");
        users.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(users, both);
        assert_eq!(c.of(t, "key"), [a]);
        assert!(c.of(other, "token").is_empty());
        // A replaced configuration that still uses `key` keeps it; `token` goes.
        c.remove(t, a, &names(&["token", "key"]), |n| n == "key");
        assert_eq!(c.of(t, "token"), [b]);
        assert_eq!(c.of(t, "key"), [a]);
        c.remove_tenant(t);
        assert!(c.of(t, "token").is_empty() && c.of(t, "key").is_empty());
        assert_eq!(c.of(other, "key"), [b]);
    }
}
