//! Running integrations: status, uplinks through the converter into messages, downlinks out, and
//! the set of running integrations ([`Integrations`]) shared by the server and the
//! `integration_downlink` node.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use reqwest::header::HeaderMap;
use serde_json::Value;
use uuid::Uuid;
use veil_core::{Limits, Msg, Probe, Redactor, RunBudget, Script, Secrets};
use veil_store::{OwnerRecord, SecretValue, Store, TenantId};

use crate::converter;
use crate::deploy::{IntegrationDef, IntegrationDeployment};
use crate::error::{IntegrationError, UplinkError, UplinkErrorKind};
use crate::integration::{Integration, IntegrationCtx};

/// First wait before starting again after a transient failure (LORIOT unreachable); it doubles.
const FIRST_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest wait between start attempts.
const MAX_RETRY: std::time::Duration = std::time::Duration::from_secs(300);
/// A start another instance finished this recently, for the same configuration and secret
/// versions, is not done again: its outcome is taken (instances start an integration within
/// milliseconds of each other when it is saved, a secret rotates or they boot together).
const START_SHARED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Where an integration is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// `enabled` is false.
    Disabled,
    /// Connecting to the outside service.
    Starting,
    /// Ready.
    Active,
    /// Starting failed; the reason is redacted.
    Error(String),
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disabled => f.write_str("disabled"),
            Self::Starting => f.write_str("starting"),
            Self::Active => f.write_str("active"),
            Self::Error(reason) => write!(f, "error: {reason}"),
        }
    }
}

/// One running integration.
pub struct IntegrationRuntime {
    id: Uuid,
    tenant: TenantId,
    /// When its configuration was saved: every instance running this save knows the same time.
    saved_time: i64,
    store: Store,
    secrets: Secrets,
    def: IntegrationDef,
    uplink_path: &'static str,
    integration: Box<dyn Integration>,
    uplink: Option<Script>,
    downlink: Option<Script>,
    secret_names: Vec<String>,
    /// The limits it was deployed under (its converters' script time per message).
    limits: Limits,
    redactor: Redactor,
    status: Mutex<Status>,
    /// Uplinks refused for their authorization, and the last one's reason and time.
    refused: AtomicU64,
    last_refused: Mutex<Option<(String, i64)>>,
    /// Bumped by every start, so a slow old start cannot overwrite a newer one's status.
    generation: AtomicU64,
    stopped: AtomicBool,
    /// The start in progress: a new start or a stop aborts it.
    starting: Mutex<Option<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for IntegrationRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationRuntime").field("id", &self.id).field("name", &self.def.name).finish()
    }
}

impl IntegrationRuntime {
    /// A runtime for a deployed integration as it was saved (`record`); call
    /// [`IntegrationRuntime::start`] to connect it.
    pub fn new(record: &OwnerRecord, store: Store, deployment: IntegrationDeployment) -> Arc<Self> {
        let (id, tenant) = (record.owner.id, record.tenant_id);
        let IntegrationDeployment {
            def,
            descriptor,
            integration,
            uplink,
            downlink,
            secret_names,
            secrets,
            limits,
            ..
        } = deployment;
        // Every secret it (and its converters) resolves is counted as used by this integration.
        secrets.set_user(veil_store::UseContext {
            kind: veil_store::OwnerType::Integration,
            id,
            name: def.name.clone(),
        });
        let redactor = Redactor::new(store.clone(), tenant, secret_names.iter().cloned());
        redactor.learn();
        let status = if def.enabled { Status::Starting } else { Status::Disabled };
        Arc::new(Self {
            id,
            tenant,
            saved_time: record.updated_time,
            store,
            secrets,
            def,
            uplink_path: descriptor.uplink_path,
            integration,
            uplink,
            downlink,
            secret_names,
            limits,
            redactor,
            status: Mutex::new(status),
            refused: AtomicU64::new(0),
            last_refused: Mutex::new(None),
            generation: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            starting: Mutex::new(None),
        })
    }

    /// Its id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// A budget for one message of this integration outside any rule chain (an uplink, a
    /// downlink sent through the API), under the limits it was deployed with.
    pub fn budget(&self) -> RunBudget<'static> {
        RunBudget::detached(self.tenant, &self.limits)
    }

    /// The tenant it belongs to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Its definition (placeholders, never values).
    pub fn def(&self) -> &IntegrationDef {
        &self.def
    }

    /// The routing key of its uplink URL.
    pub fn routing_key(&self) -> &str {
        self.def.routing_key.as_deref().unwrap_or_default()
    }

    /// The uplink path segment of its type (`loriot`).
    pub fn uplink_path(&self) -> &'static str {
        self.uplink_path
    }

    /// The secrets its uplink converter reads: what it hands the rule chain may be computed from them.
    pub fn uplink_secrets(&self) -> &[String] {
        self.uplink.as_ref().map_or(&[], Script::secrets)
    }

    /// Where it is now.
    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Masks the values of every secret the integration uses.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    fn set_status(&self, status: Status) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
    }

    fn ctx(&self) -> IntegrationCtx<'_> {
        IntegrationCtx { secrets: &self.secrets, name: &self.def.name, redactor: &self.redactor }
    }

    /// Connects in the background (log in, create the LORIOT output); the status shows how it went.
    pub fn start(self: &Arc<Self>) {
        if !self.def.enabled || self.stopped.load(Ordering::SeqCst) {
            return;
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.set_status(Status::Starting);
        let this = Arc::clone(self);
        let mut starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(previous) = starting.take() {
            previous.abort();
        }
        let task = tokio::spawn(async move {
            let mut delay = FIRST_RETRY;
            loop {
                let result = this.start_once().await;
                if this.stopped.load(Ordering::SeqCst) || this.generation.load(Ordering::SeqCst) != generation
                {
                    return;
                }
                match result {
                    Ok(()) => {
                        tracing::info!(integration = %this.def.name, id = %this.id, "integration active");
                        this.set_status(Status::Active);
                        return;
                    }
                    Err(e) => {
                        let reason = this.redactor.mask(&e.to_string());
                        tracing::warn!(integration = %this.def.name, id = %this.id, "integration failed to start: {reason}");
                        this.set_status(Status::Error(reason));
                        if !e.is_transient() {
                            // Wrong credentials stay wrong: a changed secret or a save starts it again.
                            return;
                        }
                    }
                }
                tracing::info!(integration = %this.def.name, "retrying in {} s", delay.as_secs());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        });
        *starting = Some(task.abort_handle());
    }

    /// The integration was deleted: removes what it created at the outside service (once, by the
    /// instance that deleted it). The error is redacted.
    pub async fn removed(&self) -> Result<(), IntegrationError> {
        let ctx = self.ctx();
        let work = self.integration.removed(&ctx);
        work.await.map_err(|e| IntegrationError::new(self.redactor.mask(&e.to_string())))
    }

    /// Uplinks refused for their authorization since the integration started: how many, and the
    /// last one's reason and time (ms since the epoch).
    pub fn refused_uplinks(&self) -> (u64, Option<(String, i64)>) {
        let last = self.last_refused.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (self.refused.load(Ordering::Relaxed), last)
    }

    /// Stops it: no more uplinks, downlinks or status changes.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(task) = self.starting.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }

    fn check_running(&self) -> Result<(), UplinkError> {
        if self.stopped.load(Ordering::SeqCst) {
            let message = format!("integration '{}' was removed", self.def.name);
            return Err(UplinkError::new(UplinkErrorKind::NotFound, message));
        }
        if !self.def.enabled {
            let message = format!("integration '{}' is disabled", self.def.name);
            return Err(UplinkError::new(UplinkErrorKind::Disabled, message));
        }
        Ok(())
    }

    /// Checks an uplink request and converts it into messages for the rule chain. Nothing is
    /// returned unless every part of the uplink was valid.
    pub async fn uplink(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<Msg>, UplinkError> {
        self.convert_uplink(headers, body).await
    }

    async fn convert_uplink(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<Msg>, UplinkError> {
        self.check_running()?;
        if let Err(e) = self.secrets.prepare().await {
            // The sender is not authenticated: which secret and provider failed stays in the log.
            tracing::warn!(integration = %self.def.name, "uplink refused: {}", self.redactor.mask(&e.to_string()));
            return Err(UplinkError::new(
                UplinkErrorKind::Unavailable,
                "a secret the integration uses cannot be fetched from its provider now; try again later",
            ));
        }
        let ctx = self.ctx();
        let payload = match self.integration.accept_uplink(&ctx, headers, body) {
            Ok(payload) => payload,
            Err(e) => {
                if e.kind == UplinkErrorKind::Unauthorized {
                    // Shown with the status: a sender pushing with a wrong authorization (a stale
                    // LORIOT output) is otherwise invisible while the status says active.
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    *self.last_refused.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((self.redactor.mask(&e.message), veil_store::now_ms()));
                }
                return Err(e);
            }
        };
        let Some(script) = &self.uplink else {
            return Err(UplinkError::new(
                UplinkErrorKind::Unavailable,
                "the integration has no uplink converter",
            ));
        };
        let mut metadata = BTreeMap::new();
        metadata.insert("integrationName".to_owned(), self.def.name.clone());
        metadata.insert("integrationType".to_owned(), self.def.integration_type.clone());
        let converted = converter::uplink(script, &self.budget(), payload, &metadata).await;
        for note in converted.notes {
            tracing::debug!(integration = %self.def.name, "uplink converter: {}", self.redactor.mask(&note));
        }
        let mut messages = converted.result.map_err(|e| {
            let reason = self.redactor.mask(&e);
            // The sender is not authenticated: when the converter reads secrets, what it failed on
            // may be computed from them, so the detail stays in the log.
            let message = if script.secrets().is_empty() {
                format!("uplink converter: {reason}")
            } else {
                tracing::warn!(integration = %self.def.name, "uplink converter failed: {reason}");
                "uplink converter failed; the converter reads secrets, so the reason is only in the server log"
                    .to_owned()
            };
            UplinkError::new(UplinkErrorKind::ConverterFailed, message)
        })?;
        // A converter's plain output (what it decrypted, say) must not hand one of the
        // integration's secrets to the chain, whose redactor does not know them; sealed values
        // stay sealed for a secret-capable field of the chain to open.
        for msg in &mut messages {
            self.redactor.mask_json_keep_sealed(&mut msg.data);
            for value in msg.metadata.values_mut() {
                *value = self.redactor.mask_keep_sealed(value);
            }
            msg.originator = self.redactor.mask(&msg.originator);
        }
        Ok(messages)
    }

    /// Converts a message with the downlink converter (or takes its data as is) and sends it;
    /// the converter's time is charged to the message's `budget`. The error is redacted.
    pub async fn downlink(&self, budget: &RunBudget<'_>, msg: &Msg) -> Result<Value, IntegrationError> {
        self.send_downlink(budget, msg).await
    }

    async fn send_downlink(&self, budget: &RunBudget<'_>, msg: &Msg) -> Result<Value, IntegrationError> {
        self.check_running().map_err(|e| IntegrationError::new(e.message))?;
        self.secrets
            .prepare()
            .await
            .map_err(|e| IntegrationError::new(self.redactor.mask(&e.to_string())))?;
        let downlink = match &self.downlink {
            Some(script) => {
                let converted = converter::downlink(script, budget, msg).await;
                for note in converted.notes {
                    tracing::debug!(integration = %self.def.name, "downlink converter: {}", self.redactor.mask(&note));
                }
                converted.result.map_err(|e| {
                    IntegrationError::new(format!("downlink converter: {}", self.redactor.mask(&e)))
                })?
            }
            None => msg.data.clone(),
        };
        // A downlink has no secret-capable field: sealed values go out as `***`.
        let mut downlink = downlink;
        veil_core::mask_sealed_json(&mut downlink);
        let result = self.integration.downlink(&self.ctx(), downlink).await;
        match result {
            Ok(mut out) => {
                self.redactor.mask_json(&mut out);
                tracing::info!(integration = %self.def.name, "downlink sent");
                Ok(out)
            }
            Err(e) => {
                let reason = self.redactor.mask(&e.to_string());
                tracing::warn!(integration = %self.def.name, "downlink failed: {reason}");
                Err(IntegrationError::new(reason))
            }
        }
    }

    /// Starts the integration once for the whole cluster: under the store's lease on this
    /// integration's start, whoever comes first logs in and creates what must exist (one LORIOT
    /// output, one login); an instance coming moments later for the same configuration and
    /// secret versions takes its outcome. A transient failure is not recorded: the next attempt,
    /// here or elsewhere, tries again.
    async fn start_once(&self) -> Result<(), IntegrationError> {
        // A provider that cannot answer now may answer at the next attempt.
        self.secrets
            .prepare()
            .await
            .map_err(|e| IntegrationError::transient(self.redactor.mask(&e.to_string())))?;
        let lease = self.store.lease(self.id, "start").await.map_err(|e| {
            IntegrationError::transient(format!("cannot take the start lease in the database: {e}"))
        })?;
        let fingerprint = self.fingerprint();
        if let Some(outcome) = lease.outcome(&fingerprint, START_SHARED_FOR) {
            tracing::debug!(integration = %self.def.name, "started by another instance moments ago");
            return outcome.map_err(IntegrationError::new);
        }
        let ctx = self.ctx();
        let result = self.integration.start(&ctx).await;
        let recorded = match &result {
            Ok(()) => lease.record(&fingerprint, None).await,
            Err(e) if !e.is_transient() => {
                lease.record(&fingerprint, Some(&self.redactor.mask(&e.to_string()))).await
            }
            Err(_) => Ok(()),
        };
        if let Err(e) = recorded {
            tracing::debug!(integration = %self.def.name, "start outcome not recorded: {e}");
        }
        result
    }

    /// What a start depends on: the save it runs (a save starts again even when nothing
    /// changed), the configuration and the versions of the secrets it uses.
    fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(self.saved_time.to_le_bytes());
        hash.update(self.def.configuration.to_string());
        for version in self.secrets.versions() {
            hash.update(version.unwrap_or(-1).to_le_bytes());
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Probes the integration with `value` in place of the secret `name` (a staged rotation's
    /// pending value), under [`veil_core::PROBE_TIMEOUT`]; `None` when it does not use `name`.
    pub async fn probe(&self, name: &str, value: &SecretValue) -> Option<Probe> {
        if !self.secret_names.iter().any(|n| n == name) {
            return None;
        }
        let secrets = self.secrets.with_value(name, SecretValue::new(value.expose_bytes().to_vec()));
        let ctx = IntegrationCtx { secrets: &secrets, name: &self.def.name, redactor: &self.redactor };
        Some(veil_core::bounded_probe(self.integration.probe(&ctx, name)).await)
    }

    /// Whether it holds a session or connection that a change of its secrets reconnects.
    pub fn reconnects(&self) -> bool {
        self.integration.reconnects()
    }

    /// A secret changed: learn its value for masking and, when the integration uses it, drop
    /// what was made with the old value and start again (a fixed password clears an error).
    pub fn secret_changed(self: &Arc<Self>, name: &str) {
        if self.secret_names.iter().any(|n| n == name) {
            self.redactor.learn();
            self.integration.secret_changed(name);
            self.start();
        }
    }
}

/// The running integrations, by id and by routing key.
#[derive(Debug, Default)]
pub struct Integrations {
    by_id: DashMap<Uuid, Arc<IntegrationRuntime>>,
    /// Routing key → integration id; a key is reserved before its integration is saved.
    keys: DashMap<String, Uuid>,
    /// The integrations that use each secret: a change is told to them only.
    consumers: veil_core::Consumers,
    /// The integrations that feed each rule chain (read on every watched message).
    feeds: veil_core::Consumers<Uuid>,
}

impl Integrations {
    /// None running.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves a routing key for an integration; false when another integration holds it.
    pub fn reserve_key(&self, key: &str, id: Uuid) -> bool {
        match self.keys.entry(key.to_owned()) {
            Entry::Occupied(e) => *e.get() == id,
            Entry::Vacant(e) => {
                e.insert(id);
                true
            }
        }
    }

    /// Gives up a reservation that did not lead to a save.
    pub fn release_key(&self, key: &str, id: Uuid) {
        self.keys.remove_if(key, |_, holder| *holder == id);
    }

    /// Runs `runtime` in place of the integration with the same id (stopped, its old key freed).
    pub fn insert(&self, runtime: Arc<IntegrationRuntime>) {
        self.keys.insert(runtime.routing_key().to_owned(), runtime.id());
        self.consumers.add(runtime.tenant(), runtime.id(), &runtime.secret_names);
        self.feeds.add(runtime.tenant(), runtime.id(), [&runtime.def().rule_chain_id]);
        if let Some(old) = self.by_id.insert(runtime.id(), Arc::clone(&runtime)) {
            old.stop();
            if old.routing_key() != runtime.routing_key() {
                self.release_key(old.routing_key(), old.id());
            }
            self.forget_consumer(&old);
        }
    }

    /// Forgets that `old` (stopped) uses its secrets, except those the integration running
    /// under its id now uses.
    fn forget_consumer(&self, old: &IntegrationRuntime) {
        let current =
            self.by_id.get(&old.id()).map(|r| Arc::clone(r.value())).filter(|r| r.tenant() == old.tenant());
        self.consumers.remove(old.tenant(), old.id(), &old.secret_names, |name| {
            current.as_ref().is_some_and(|c| c.secret_names.contains(name))
        });
        self.feeds.remove(old.tenant(), old.id(), [&old.def().rule_chain_id], |chain| {
            current.as_ref().is_some_and(|c| c.def().rule_chain_id == *chain)
        });
    }

    /// The ids of the running integrations.
    pub fn ids(&self) -> Vec<Uuid> {
        self.by_id.iter().map(|r| *r.key()).collect()
    }

    /// Stops and forgets every integration of a tenant (the tenant was deleted).
    pub fn remove_tenant(&self, tenant: TenantId) {
        let ids: Vec<Uuid> = self.by_id.iter().filter(|r| r.tenant() == tenant).map(|r| r.id()).collect();
        for id in ids {
            self.remove(id);
        }
    }

    /// Stops and forgets an integration.
    pub fn remove(&self, id: Uuid) {
        if let Some((_, old)) = self.by_id.remove(&id) {
            old.stop();
            self.release_key(old.routing_key(), id);
            self.forget_consumer(&old);
        }
    }

    /// An integration by id, if it belongs to `tenant`.
    pub fn get(&self, tenant: TenantId, id: Uuid) -> Option<Arc<IntegrationRuntime>> {
        self.by_id.get(&id).filter(|r| r.tenant() == tenant).map(|r| Arc::clone(r.value()))
    }

    /// Every running integration.
    pub fn all(&self) -> Vec<Arc<IntegrationRuntime>> {
        self.by_id.iter().map(|r| Arc::clone(r.value())).collect()
    }

    /// The integration an uplink URL addresses.
    pub fn by_routing_key(&self, uplink_path: &str, key: &str) -> Option<Arc<IntegrationRuntime>> {
        let id = *self.keys.get(key)?;
        self.by_id.get(&id).filter(|r| r.uplink_path() == uplink_path).map(|r| Arc::clone(r.value()))
    }

    /// The integrations of `tenant` whose uplinks go to rule chain `chain`.
    pub fn feeding(&self, tenant: TenantId, chain: Uuid) -> Vec<Arc<IntegrationRuntime>> {
        let mut feeding: Vec<Arc<IntegrationRuntime>> = self
            .feeds
            .of(tenant, &chain)
            .into_iter()
            .filter_map(|id| self.get(tenant, id))
            .filter(|r| r.def().rule_chain_id == chain)
            .collect();
        // In a stable order, as a listing by id would give.
        feeding.sort_by_key(|r| r.id());
        feeding
    }

    /// How many run.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// None run.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Tells the integrations of `tenant` that use `name` that it changed.
    pub fn secret_changed(&self, tenant: TenantId, name: &str) {
        let affected: Vec<_> =
            self.consumers.of(tenant, name).into_iter().filter_map(|id| self.get(tenant, id)).collect();
        for runtime in affected {
            runtime.secret_changed(name);
        }
    }

    /// Change events were lost: every integration refreshes every secret.
    pub fn all_secrets_changed(&self) {
        let all: Vec<_> = self.by_id.iter().map(|r| Arc::clone(r.value())).collect();
        for runtime in all.iter().filter(|r| !r.secret_names.is_empty()) {
            runtime.redactor.learn();
            for name in &runtime.secret_names {
                runtime.integration.secret_changed(name);
            }
            runtime.start();
        }
    }
}
