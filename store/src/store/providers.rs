//! Secret providers and linked secrets in the store: providers saved as configurations (their
//! credentials are tracked references to secrets, so those cannot be deleted while a provider
//! names them), kept in memory per tenant by name, and the fetch that refreshes a linked secret's
//! cached value before a node or an integration uses it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use super::Store;
use super::configs::owner_kind_name;
use crate::access::{Actor, Operation, Resource};
use crate::backend::OwnerRecord;
use crate::error::{FieldProblem, NeededKind, Result, StoreError};
use crate::events::ChangeKind;
use crate::model::{SecretInfo, SecretValue, TenantId, validate_name};
use crate::provider::{
    Client, Creds, DEFAULT_CACHE_SECONDS, MAX_CACHE_SECONDS, PROVIDER_TYPES, ProviderPolicy, Source,
};
use crate::references::{Owner, OwnerType, SecretRef};

/// A provider as the API shows it: its configuration names its credentials' secrets, never a value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInfo {
    /// Its id.
    pub id: Uuid,
    /// Unique in the tenant; immutable.
    pub name: String,
    /// `files`, `exec`, `aws-secrets-manager` or `vault-kv2`; immutable.
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind's settings.
    pub configuration: serde_json::Value,
    /// How long a fetched value is used before it is fetched again.
    pub cache_seconds: u64,
    /// Milliseconds since the epoch.
    pub created_time: i64,
    /// Milliseconds since the epoch.
    pub updated_time: i64,
}

/// A request to create or change a provider.
#[derive(Debug, Clone)]
pub struct NewProvider {
    /// The name (immutable once created).
    pub name: String,
    /// The kind (immutable once created).
    pub kind: String,
    /// The kind's settings.
    pub configuration: serde_json::Value,
    /// Absent: [`DEFAULT_CACHE_SECONDS`].
    pub cache_seconds: Option<u64>,
}

/// A provider of a tenant, in memory: its definition and, once asked for, its client.
pub(super) struct Registered {
    info: ProviderInfo,
    /// Built at first use under the server's policy (again when the policy is set).
    client: OnceLock<std::result::Result<Arc<Client>, String>>,
    /// Set while it is being deleted: no new secret may be linked to it meanwhile.
    closing: std::sync::atomic::AtomicBool,
}

/// Providers by tenant and name.
pub(super) type Registry = dashmap::DashMap<(TenantId, String), Arc<Registered>>;

impl Registered {
    fn new(info: ProviderInfo) -> Arc<Self> {
        Arc::new(Self { info, client: OnceLock::new(), closing: Default::default() })
    }

    fn from_record(record: &OwnerRecord) -> Option<Arc<Self>> {
        let body = &record.body;
        Some(Self::new(ProviderInfo {
            id: record.owner.id,
            name: record.owner.name.clone(),
            kind: body["type"].as_str()?.to_owned(),
            configuration: body["configuration"].clone(),
            cache_seconds: body["cacheSeconds"].as_u64().unwrap_or(DEFAULT_CACHE_SECONDS),
            created_time: record.created_time,
            updated_time: record.updated_time,
        }))
    }

    fn client(&self, policy: &ProviderPolicy) -> std::result::Result<Arc<Client>, String> {
        self.client
            .get_or_init(|| {
                Client::build(&self.info.kind, &self.info.configuration, policy).map(Arc::new).map_err(
                    |problems| {
                        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                        format!("its configuration is not usable on this server: {}", text.join("; "))
                    },
                )
            })
            .clone()
    }
}

impl Store {
    /// Sets what providers may reach on this machine (the operator's `--provider-dir` and
    /// `--provider-command`); clients are built again under it.
    pub fn set_provider_policy(&self, policy: ProviderPolicy) {
        *self.inner.provider_policy.write().unwrap_or_else(|e| e.into_inner()) = policy;
        let all: Vec<_> =
            self.inner.providers.iter().map(|e| (e.key().clone(), e.value().info.clone())).collect();
        for (key, info) in all {
            self.inner.providers.insert(key, Registered::new(info));
        }
    }

    fn provider_policy(&self) -> ProviderPolicy {
        self.inner.provider_policy.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads every tenant's providers into memory (at open, and when the change feed was lost).
    pub(super) async fn load_providers(&self) -> Result<()> {
        let records = self.inner.backend.all_owners(OwnerType::SecretProvider).await?;
        self.inner.providers.clear();
        for record in &records {
            if let Some(registered) = Registered::from_record(record) {
                self.inner.providers.insert((record.tenant_id, registered.info.name.clone()), registered);
            }
        }
        Ok(())
    }

    /// Follows a provider saved or deleted by another instance.
    pub(super) async fn reload_provider(&self, tenant: TenantId, id: Uuid) -> Result<()> {
        self.inner.providers.retain(|(t, _), p| !(*t == tenant && p.info.id == id));
        if let Some(record) = self.inner.backend.owner(tenant, OwnerType::SecretProvider, id).await?
            && let Some(registered) = Registered::from_record(&record)
        {
            self.inner.providers.insert((tenant, registered.info.name.clone()), registered);
        }
        self.expire_linked_of(tenant, None);
        Ok(())
    }

    /// The tenant's providers (SECRET_PROVIDER:READ), by name.
    pub fn providers(&self, actor: &Actor) -> Result<Vec<ProviderInfo>> {
        actor.require_on(Resource::SecretProvider, Operation::Read)?;
        let mut all: Vec<ProviderInfo> = self
            .inner
            .providers
            .iter()
            .filter(|e| e.key().0 == actor.tenant_id)
            .map(|e| e.value().info.clone())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// One provider of the actor's tenant.
    pub fn provider(&self, actor: &Actor, id: Uuid) -> Result<ProviderInfo> {
        actor.require_on(Resource::SecretProvider, Operation::Read)?;
        self.registered_by_id(actor.tenant_id, id).map(|p| p.info.clone())
    }

    fn registered_by_id(&self, tenant: TenantId, id: Uuid) -> Result<Arc<Registered>> {
        self.inner
            .providers
            .iter()
            .find(|e| e.key().0 == tenant && e.value().info.id == id)
            .map(|e| Arc::clone(e.value()))
            .ok_or_else(|| StoreError::NotFound { kind: "secret provider", id: id.to_string() })
    }

    fn registered(&self, tenant: TenantId, name: &str) -> Option<Arc<Registered>> {
        self.inner.providers.get(&(tenant, name.to_owned())).map(|p| Arc::clone(p.value()))
    }

    /// Creates a provider (SECRET_PROVIDER:CREATE; SECRET:USE when it names credentials).
    pub async fn create_provider(&self, actor: &Actor, req: NewProvider) -> Result<ProviderInfo> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.save_provider(&actor, None, req).await }).await
    }

    /// Changes a provider's configuration or cache period (SECRET_PROVIDER:WRITE); its name and
    /// type stay. Its linked secrets are fetched again at their next use.
    pub async fn update_provider(&self, actor: &Actor, id: Uuid, req: NewProvider) -> Result<ProviderInfo> {
        let actor = actor.clone();
        self.detached(move |s| async move { s.save_provider(&actor, Some(id), req).await }).await
    }

    async fn save_provider(&self, actor: &Actor, id: Option<Uuid>, req: NewProvider) -> Result<ProviderInfo> {
        let existing = match id {
            Some(id) => {
                actor.require_on(Resource::SecretProvider, Operation::Read)?;
                Some(self.registered_by_id(actor.tenant_id, id)?)
            }
            None => None,
        };
        let mut problems = Vec::new();
        let name = validate_name(&req.name).map_err(|p| problems.push(p)).unwrap_or_default();
        if !PROVIDER_TYPES.contains(&req.kind.as_str()) {
            problems.push(FieldProblem::new(
                "type",
                format!("unknown provider type '{}'; one of {}", req.kind, PROVIDER_TYPES.join(", ")),
            ));
        }
        if let Some(existing) = &existing {
            if name != existing.info.name {
                return Err(StoreError::Immutable { field: "name", current: existing.info.name.clone() });
            }
            if req.kind != existing.info.kind {
                return Err(StoreError::Immutable { field: "type", current: existing.info.kind.clone() });
            }
        }
        let cache_seconds = req.cache_seconds.unwrap_or(DEFAULT_CACHE_SECONDS);
        if cache_seconds > MAX_CACHE_SECONDS {
            problems.push(FieldProblem::new(
                "cacheSeconds",
                format!("must be between 0 and {MAX_CACHE_SECONDS}"),
            ));
        }
        if !req.configuration.is_object() {
            problems.push(FieldProblem::new("configuration", "must be an object"));
        }
        let client = if problems.is_empty() {
            Client::build(&req.kind, &req.configuration, &self.provider_policy())
                .map_err(|p| problems.extend(p))
                .ok()
        } else {
            None
        };
        let mut refs = Vec::new();
        if let Some(client) = &client {
            for (field, secret) in client.credentials() {
                let at = format!("configuration.{field}");
                match self.find(actor, &secret) {
                    None => problems.push(FieldProblem::new(&at, format!("no secret named '{secret}'"))),
                    Some(info) if info.kind != crate::model::SecretType::Text => {
                        problems.push(FieldProblem::new(&at, format!("secret '{secret}' is a FILE secret; a TEXT one is needed")))
                    }
                    Some(info) if info.source.is_some() => problems.push(FieldProblem::new(
                        &at,
                        format!("secret '{secret}' is itself linked to a provider; a provider's credentials are stored secrets"),
                    )),
                    Some(info) => {
                        if let Some((host, port)) = client.destination()
                            && let Err(allowed) = self.destination_allowed(actor.tenant_id, &info.name, &host, port)
                        {
                            let why = if allowed.is_empty() {
                                "it has no allowedDestinations and the tenant requires them".to_owned()
                            } else {
                                format!("its allowedDestinations: {}", allowed.join(", "))
                            };
                            problems.push(FieldProblem::new(
                                &at,
                                format!("secret '{secret}' may not be sent to {} ({why})", crate::provider::shown(&host, port)),
                            ));
                        }
                        refs.push(SecretRef {
                            secret_name: secret,
                            node_id: None,
                            node_name: None,
                            pointer: format!("/configuration/{field}"),
                        });
                    }
                }
            }
        }
        if existing.is_none()
            && let Some(other) = self.registered(actor.tenant_id, &name)
        {
            return Err(StoreError::NameUnavailable {
                conflict: crate::error::NameConflict::Taken,
                message: format!("name: a secret provider named '{}' already exists", other.info.name),
            });
        }
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        let id = existing.as_ref().map_or_else(Uuid::new_v4, |e| e.info.id);
        let owner = Owner { kind: OwnerType::SecretProvider, id, name: name.clone(), customer_id: None };
        let body = serde_json::json!({
            "name": name,
            "type": req.kind,
            "configuration": req.configuration,
            "cacheSeconds": cache_seconds,
        });
        self.save_owner(actor, &owner, &body, &refs).await?;
        let record = self
            .inner
            .backend
            .owner(actor.tenant_id, OwnerType::SecretProvider, id)
            .await?
            .ok_or_else(|| StoreError::NotFound { kind: "secret provider", id: id.to_string() })?;
        let registered = Registered::from_record(&record)
            .ok_or_else(|| StoreError::Internal("a saved provider cannot be read back".into()))?;
        let info = registered.info.clone();
        self.inner.providers.insert((actor.tenant_id, info.name.clone()), registered);
        self.expire_linked_of(actor.tenant_id, Some(&info.name));
        tracing::info!(provider = %info.name, kind = %info.kind, actor = %actor.username, "secret provider saved");
        Ok(info)
    }

    /// Deletes a provider (SECRET_PROVIDER:DELETE); refused while linked secrets name it.
    pub async fn delete_provider(&self, actor: &Actor, id: Uuid) -> Result<()> {
        let registered = self.registered_by_id(actor.tenant_id, id)?;
        actor.require_on(Resource::SecretProvider, Operation::Delete)?;
        // No secret is linked to it from now on; one being created holds the write lock until it
        // is in the index, so the look below (under that lock) sees it.
        registered.closing.store(true, std::sync::atomic::Ordering::Release);
        let deleted = self.delete_unlinked_provider(actor, &registered).await;
        if deleted.is_err() {
            registered.closing.store(false, std::sync::atomic::Ordering::Release);
        }
        deleted
    }

    async fn delete_unlinked_provider(&self, actor: &Actor, registered: &Registered) -> Result<()> {
        let mut linked: Vec<String> = {
            let _guard = self.inner.write.lock().await;
            self.inner
                .index
                .by_name
                .get(&actor.tenant_id)
                .map(|names| {
                    names
                        .iter()
                        .filter(|r| {
                            r.value().info.source.as_ref().is_some_and(|s| s.provider == registered.info.name)
                        })
                        .map(|r| r.value().info.name.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        if !linked.is_empty() {
            linked.sort();
            let shown: Vec<String> = linked.iter().take(20).map(|n| format!("'{n}'")).collect();
            return Err(StoreError::Needed {
                kind: NeededKind::Provider,
                message: format!(
                    "{} '{}' is the source of {} linked secret(s): {}{}; delete those first",
                    owner_kind_name(OwnerType::SecretProvider),
                    registered.info.name,
                    linked.len(),
                    shown.join(", "),
                    if linked.len() > 20 { ", …" } else { "" }
                ),
            });
        }
        self.delete_owner(actor, OwnerType::SecretProvider, registered.info.id).await?;
        self.inner.providers.remove(&(actor.tenant_id, registered.info.name.clone()));
        tracing::info!(provider = %registered.info.name, actor = %actor.username, "secret provider deleted");
        Ok(())
    }

    /// Checks that a provider answers with its credentials (SECRET_PROVIDER:READ): what was
    /// checked, or why it failed (masked).
    pub async fn test_provider(&self, actor: &Actor, id: Uuid) -> Result<String> {
        actor.require_on(Resource::SecretProvider, Operation::Read)?;
        let registered = self.registered_by_id(actor.tenant_id, id)?;
        let (client, creds) = self.provider_client(actor.tenant_id, &registered)?;
        let _slot = self.fetch_slot(actor.tenant_id).await;
        client.test(&creds).await.map_err(|e| StoreError::Provider {
            provider: registered.info.name.clone(),
            reason: crate::provider::masked(&e.to_string(), &creds),
        })
    }

    /// The keys a provider can list (SECRET_PROVIDER:READ), for an import.
    pub async fn provider_keys(&self, actor: &Actor, id: Uuid) -> Result<Vec<String>> {
        actor.require_on(Resource::SecretProvider, Operation::Read)?;
        let registered = self.registered_by_id(actor.tenant_id, id)?;
        let (client, creds) = self.provider_client(actor.tenant_id, &registered)?;
        let _slot = self.fetch_slot(actor.tenant_id).await;
        client.keys(&creds).await.map_err(|e| StoreError::Provider {
            provider: registered.info.name.clone(),
            reason: crate::provider::masked(&e.to_string(), &creds),
        })
    }

    /// Waits for one of the tenant's fetch slots ([`crate::provider::MAX_FETCHES_PER_TENANT`]).
    async fn fetch_slot(&self, tenant: TenantId) -> tokio::sync::OwnedSemaphorePermit {
        let slots = self
            .inner
            .fetch_slots
            .entry(tenant)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(crate::provider::MAX_FETCHES_PER_TENANT)))
            .clone();
        slots.acquire_owned().await.expect("the semaphore is never closed")
    }

    /// A provider's client and its credentials resolved now.
    fn provider_client(&self, tenant: TenantId, registered: &Registered) -> Result<(Arc<Client>, Creds)> {
        let provider = || registered.info.name.clone();
        let client = registered
            .client(&self.provider_policy())
            .map_err(|reason| StoreError::Provider { provider: provider(), reason })?;
        let mut creds = Creds::default();
        for (field, secret) in client.credentials() {
            let value = self.resolve(tenant, &secret).map_err(|e| StoreError::Provider {
                provider: provider(),
                reason: format!("credential {field}: {e}"),
            })?;
            creds.insert(field, value);
        }
        Ok((client, creds))
    }

    /// Where provider `id` sends the credential secret `secret`: its configuration field, host
    /// and port (`None` when it does not, or sends nothing anywhere).
    pub fn provider_send(
        &self,
        tenant: TenantId,
        id: Uuid,
        secret: &str,
    ) -> Option<(&'static str, String, u16)> {
        let registered = self.registered_by_id(tenant, id).ok()?;
        let client = registered.client(&self.provider_policy()).ok()?;
        let (field, _) = client.credentials().into_iter().find(|(_, name)| name == secret)?;
        let (host, port) = client.destination()?;
        Some((field, host, port))
    }

    /// Checks a linked secret's source against its provider (at create and change).
    pub(super) fn check_source(&self, tenant: TenantId, source: &Source) -> Result<()> {
        let registered = self
            .registered(tenant, &source.provider)
            .filter(|p| !p.closing.load(std::sync::atomic::Ordering::Acquire));
        let Some(registered) = registered else {
            return Err(StoreError::invalid(
                "source.provider",
                format!("no secret provider named '{}'", source.provider),
            ));
        };
        let client = registered.client(&self.provider_policy()).map_err(|reason| {
            StoreError::invalid("source.provider", format!("provider '{}': {reason}", source.provider))
        })?;
        let problems = client.check_source(source);
        if problems.is_empty() { Ok(()) } else { Err(StoreError::Invalid(problems)) }
    }

    /// Refuses what only a stored secret has (versions, a comparison) for a linked one: `400`
    /// naming its provider and `why`.
    pub(super) fn refuse_linked(&self, info: &SecretInfo, why: &str) -> Result<()> {
        match &info.source {
            Some(source) => Err(StoreError::invalid(
                "source",
                format!("secret '{}' is linked to provider '{}': {why}", info.name, source.provider),
            )),
            None => Ok(()),
        }
    }

    /// Whether the secret `name` of `tenant` is linked (its value comes from a provider).
    pub fn is_linked(&self, tenant: TenantId, name: &str) -> bool {
        self.inner
            .index
            .by_name
            .get(&tenant)
            .and_then(|names| names.get(name).map(|r| r.info.source.is_some()))
            .unwrap_or(false)
    }

    /// Makes sure the linked secrets among `names` have a value to use now, fetching those whose
    /// cache period is over (one fetch per secret however many callers wait for it). Stored
    /// secrets and unknown names are left alone. The first failure is returned, naming the
    /// secret and provider with a masked reason.
    pub async fn refresh_linked(&self, tenant: TenantId, names: &[String]) -> Result<()> {
        for name in names {
            let Some(row) = self.inner.index.by_name(tenant, name) else { continue };
            let Some(source) = &row.info.source else { continue };
            if self.inner.linked.fresh(row.info.id) {
                continue;
            }
            self.fetch_linked(&row.info, source).await?;
        }
        Ok(())
    }

    async fn fetch_linked(&self, info: &SecretInfo, source: &Source) -> Result<()> {
        let entry = self.inner.linked.entry(info.id);
        let seen = entry.finished();
        let _fetching = entry.fetching.lock().await;
        if entry.fresh() {
            return Ok(());
        }
        if entry.finished() != seen {
            // A fetch finished while this caller waited for it: its outcome is this one's too
            // (however short the cache period: one fetch for the messages that came together).
            return entry.outcome().map_err(|reason| not_fetched(info, reason));
        }
        let keep = usize::try_from(info.max_versions).unwrap_or(1);
        let failed = |reason: String| {
            self.inner.linked.failed(info.id, reason.clone(), keep);
            crate::metrics::STORE.linked_fetch(false);
            tracing::warn!(secret = %info.name, provider = %source.provider, "linked secret not fetched: {reason}");
            StoreError::Fetch { secret: info.name.clone(), provider: source.provider.clone(), reason }
        };
        let Some(registered) = self.registered(info.tenant_id, &source.provider) else {
            return Err(failed("the provider does not exist".into()));
        };
        let (client, creds) = match self.provider_client(info.tenant_id, &registered) {
            Ok(found) => found,
            Err(StoreError::Provider { reason, .. }) => return Err(failed(reason)),
            Err(e) => return Err(failed(e.to_string())),
        };
        let slot = self.fetch_slot(info.tenant_id).await;
        let fetched = client.fetch(&creds, source).await;
        drop(slot);
        let value = match fetched {
            Ok(value) => value,
            Err(e) => return Err(failed(crate::provider::masked(&e.to_string(), &creds))),
        };
        if let Err(reason) = self.check_fetched(info, &value) {
            return Err(failed(reason));
        }
        crate::metrics::STORE.linked_fetch(true);
        let ttl = Duration::from_secs(registered.info.cache_seconds);
        if let Some(generation) = self.inner.linked.fetched(info.id, value, ttl, keep)
            && generation > 1
        {
            tracing::info!(secret = %info.name, provider = %source.provider, "a linked secret's value changed upstream");
            self.publish(info, ChangeKind::ValueUpdated(generation));
        }
        Ok(())
    }

    /// A fetched value must be one the secret could hold: not empty, within its type's limit,
    /// UTF-8 for TEXT.
    fn check_fetched(&self, info: &SecretInfo, value: &SecretValue) -> std::result::Result<(), String> {
        let limits = self.inner.limits;
        let (limit, text) = match info.kind {
            crate::model::SecretType::Text => (limits.max_text_bytes, true),
            crate::model::SecretType::File => (limits.max_file_bytes, false),
        };
        if value.is_empty() {
            return Err("the provider gave an empty value".into());
        }
        if value.len() > limit {
            return Err(format!(
                "the value is {} bytes, the limit for {} secrets is {limit}",
                value.len(),
                info.kind
            ));
        }
        if text && value.expose_text().is_none() {
            return Err("the value is not UTF-8 text (make the secret a FILE secret)".into());
        }
        Ok(())
    }

    /// The cached value of a linked secret, for `resolve`.
    pub(super) fn linked_value(&self, info: &SecretInfo) -> Result<SecretValue> {
        self.inner.linked.value(info.id).map_err(|error| not_fetched(info, error))
    }

    /// A linked secret's generation (its version on this instance).
    pub(super) fn linked_generation(&self, info: &SecretInfo) -> i64 {
        self.inner.linked.generation(info.id)
    }

    /// A linked secret's values to mask.
    pub(super) fn linked_masking(&self, info: &SecretInfo) -> Vec<SecretValue> {
        self.inner.linked.values_for_masking(info.id)
    }

    /// `info` with its linked status filled in.
    pub(super) fn with_status(&self, mut info: SecretInfo) -> SecretInfo {
        if info.source.is_some() {
            info.status = Some(self.inner.linked.status(info.id));
        }
        info
    }

    /// Makes the tenant's linked secrets (of `provider`, or all) fetch again at their next use.
    fn expire_linked_of(&self, tenant: TenantId, provider: Option<&str>) {
        if let Some(names) = self.inner.index.by_name.get(&tenant) {
            for row in names.iter() {
                if let Some(source) = &row.info.source
                    && provider.is_none_or(|p| p == source.provider)
                {
                    self.inner.linked.expire(row.info.id);
                }
            }
        }
    }

    /// Forgets a deleted tenant's providers and its linked secrets' values (zeroized).
    pub(super) fn forget_tenant_providers(&self, tenant: TenantId) {
        self.inner.providers.retain(|(t, _), _| *t != tenant);
        if let Some(names) = self.inner.index.by_name.get(&tenant) {
            for row in names.iter().filter(|r| r.info.source.is_some()) {
                self.inner.linked.remove(row.info.id);
            }
        }
    }

    /// Drops cached values unused past their period, now and then, while the store lives.
    pub(super) fn sweep_linked_periodically(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.linked.sweep(Duration::from_secs(60));
            }
        });
    }
}

/// Why a linked secret has no value to use: the last fetch's reason, or that there was none yet.
fn not_fetched(info: &SecretInfo, reason: Option<String>) -> StoreError {
    StoreError::Fetch {
        secret: info.name.clone(),
        provider: info.source.as_ref().map(|s| s.provider.clone()).unwrap_or_default(),
        reason: reason.unwrap_or_else(|| "its value has not been fetched yet".into()),
    }
}
