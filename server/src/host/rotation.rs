//! Staged rotation: a pending value is tested on every consumer of the secret — each node or
//! integration type probes the service it talks to (connect and authenticate, log in, a TLS
//! handshake, a named request) — before it is promoted. The probes run on the instance that
//! staged the value (or was asked to test again); their results are stored, so every instance
//! shows the same table.

use std::sync::Arc;

use futures_util::StreamExt as _;
use serde::Serialize;
use veil_core::{Probe, ProbeResult};
use veil_store::{Actor, OwnerType, PendingVersion, ProbeRecord, SecretId, SecretInfo, SecretValue, now_ms};

use super::impact::Place;
use super::{Host, HostError, HostResult};

/// How many configurations are probed at once.
const PROBES_AT_ONCE: usize = 8;

/// The answer of `GET /api/secrets/{id}/rotation`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rotation {
    /// The pending version (number, fingerprint, who staged it and when).
    pub(crate) pending: PendingVersion,
    /// One row per consumer field.
    pub(crate) consumers: Vec<ProbeRecord>,
    /// How many rows have each result.
    pub(crate) summary: Summary,
}

/// Counts of the probe results.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Summary {
    pub(crate) ok: usize,
    pub(crate) failed: usize,
    pub(crate) not_probed: usize,
    pub(crate) probing: usize,
}

impl Summary {
    fn of(rows: &[ProbeRecord]) -> Self {
        let mut summary = Self::default();
        for row in rows {
            match ProbeResult::named(&row.result) {
                Some(ProbeResult::Ok) => summary.ok += 1,
                Some(ProbeResult::Failed) => summary.failed += 1,
                Some(ProbeResult::NotProbed) => summary.not_probed += 1,
                Some(ProbeResult::Probing) | None => summary.probing += 1,
            }
        }
        summary
    }
}

impl Host {
    /// Stages `value` as the pending value of secret `id` and starts probing its consumers.
    pub(crate) async fn stage_rotation(
        self: &Arc<Self>,
        actor: &Actor,
        id: SecretId,
        value: SecretValue,
        file_name: Option<String>,
        expected_version: Option<i64>,
    ) -> HostResult<PendingVersion> {
        let pending = self.store.stage(actor, id, value, file_name, expected_version).await?;
        self.probe_again(actor, id).await?;
        Ok(pending)
    }

    /// Probes every consumer of the pending value again, in the background (every row shows
    /// `PROBING` until its probe answers).
    pub(crate) async fn probe_again(self: &Arc<Self>, actor: &Actor, id: SecretId) -> HostResult<()> {
        let info = self.store.get(actor, id)?;
        let Some((pending, value)) = self.store.open_pending(actor, id).await? else {
            return Err(no_pending(&info));
        };
        // One run per secret at a time: asking again while one runs starts nothing more (each
        // run opens connections to every consumer's service).
        if !self.probing.lock().unwrap_or_else(|e| e.into_inner()).insert(id) {
            return Err(veil_store::StoreError::Conflict(format!(
                "the pending value of '{}' is being tested; wait for its results",
                info.name
            ))
            .into());
        }
        let started = async {
            let places = self.places(actor, id, &info.name).await?;
            let rows: Vec<ProbeRecord> =
                places.iter().map(|p| record(p, ProbeResult::Probing, String::new())).collect();
            self.store.record_probes(id, pending.version, &rows).await?;
            HostResult::Ok(places)
        };
        let places = match started.await {
            Ok(places) => places,
            Err(e) => {
                self.probing.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                return Err(e);
            }
        };
        let host = Arc::clone(self);
        tokio::spawn(async move {
            host.run_probes(info, pending.version, value, places).await;
            host.probing.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        });
        Ok(())
    }

    /// Probes the consumers, a few configurations at a time, recording each one's rows as soon as
    /// it answered.
    async fn run_probes(&self, info: SecretInfo, version: i64, value: SecretValue, places: Vec<Place>) {
        let mut by_owner: Vec<Vec<Place>> = Vec::new();
        for place in places {
            match by_owner.iter_mut().find(|g| g[0].owner.id == place.owner.id) {
                Some(group) => group.push(place),
                None => by_owner.push(vec![place]),
            }
        }
        let value = &value;
        let info = &info;
        let mut probing = futures_util::stream::iter(by_owner)
            .map(|group| async move { self.probe_owner(info, value, group).await })
            .buffer_unordered(PROBES_AT_ONCE);
        while let Some(rows) = probing.next().await {
            if let Err(e) = self.store.record_probes(info.id, version, &rows).await {
                tracing::warn!(secret = %info.name, "recording probe results failed: {e}");
            }
        }
        tracing::info!(secret = %info.name, version, "probes finished");
    }

    /// Probes one configuration (all its nodes at once) and makes its rows.
    async fn probe_owner(
        &self,
        info: &SecretInfo,
        value: &SecretValue,
        places: Vec<Place>,
    ) -> Vec<ProbeRecord> {
        let first = &places[0];
        let not_running = || Probe::Failed("it is not running on this instance".into());
        let masked = |reason: &str, redactor: &veil_core::Redactor| {
            redactor.mask(&mask_value(reason, value.expose_bytes()))
        };
        match first.kind {
            OwnerType::RuleChain => {
                let Some(chain) = self.chains.get(first.owner.id) else {
                    return places.iter().map(|p| probed(p, not_running(), |r| r.to_owned())).collect();
                };
                let found = chain.probe(&info.name, value).await;
                places
                    .iter()
                    .map(|place| {
                        let probe = found
                            .iter()
                            .find(|(node, _, _)| Some(node.as_str()) == place.node_id.as_deref())
                            .map(|(_, _, probe)| probe.clone())
                            .unwrap_or_else(|| {
                                Probe::not_probed("the node does not use the secret any more")
                            });
                        probed(place, probe, |r| masked(r, chain.redactor()))
                    })
                    .collect()
            }
            OwnerType::Integration => {
                let Some(integration) = self.integrations.get(info.tenant_id, first.owner.id) else {
                    return places.iter().map(|p| probe_row(p, not_running())).collect();
                };
                let probe = integration
                    .probe(&info.name, value)
                    .await
                    .unwrap_or_else(|| Probe::not_probed("it does not use the secret any more"));
                places
                    .iter()
                    .map(|p| probed(p, probe.clone(), |r| masked(r, integration.redactor())))
                    .collect()
            }
            OwnerType::SecretProvider => {
                let probe = Probe::not_probed(
                    "a secret provider is not probed with a pending value; test it after the promotion",
                );
                places.iter().map(|p| probe_row(p, probe.clone())).collect()
            }
        }
    }

    /// The pending value of secret `id` and what its consumers said of it.
    pub(crate) async fn rotation(&self, actor: &Actor, id: SecretId) -> HostResult<Rotation> {
        let info = self.store.get(actor, id)?;
        let Some(pending) = self.store.pending(actor, id).await? else {
            return Err(no_pending(&info));
        };
        let consumers = self.store.probe_results(actor, id, pending.version).await?;
        let summary = Summary::of(&consumers);
        Ok(Rotation { pending, consumers, summary })
    }

    /// Promotes the pending value. Unless `force`, refused while a probe failed or is still
    /// running (409 `probes_failed` with the rows).
    pub(crate) async fn promote(
        &self,
        actor: &Actor,
        id: SecretId,
        force: bool,
        expected_version: Option<i64>,
    ) -> HostResult<SecretInfo> {
        if !force {
            let rotation = self.rotation(actor, id).await?;
            let blocking: Vec<&ProbeRecord> = rotation
                .consumers
                .iter()
                .filter(|r| {
                    matches!(ProbeResult::named(&r.result), Some(ProbeResult::Failed | ProbeResult::Probing))
                })
                .collect();
            if !blocking.is_empty() {
                let names: Vec<String> = blocking
                    .iter()
                    .map(|r| match &r.node {
                        Some(node) => {
                            format!("{} '{}' node '{}': {}", kind_name(r.owner_type), r.name, node, r.result)
                        }
                        None => format!("{} '{}': {}", kind_name(r.owner_type), r.name, r.result),
                    })
                    .collect();
                return Err(HostError::ProbesFailed {
                    message: format!(
                        "not promoted: {} (send {{\"force\": true}} to promote anyway)",
                        names.join("; ")
                    ),
                    consumers: serde_json::to_value(&blocking).unwrap_or_default(),
                });
            }
        }
        Ok(self.store.promote(actor, id, expected_version).await?)
    }
}

fn kind_name(kind: OwnerType) -> &'static str {
    match kind {
        OwnerType::RuleChain => "rule chain",
        OwnerType::Integration => "integration",
        OwnerType::SecretProvider => "secret provider",
    }
}

fn no_pending(info: &SecretInfo) -> HostError {
    veil_store::StoreError::NotFound { kind: "pending value", id: format!("of secret '{}'", info.name) }
        .into()
}

/// A row for `place` with `result`.
fn record(place: &Place, result: ProbeResult, reason: String) -> ProbeRecord {
    ProbeRecord {
        owner_type: place.kind,
        id: place.owner.id,
        name: place.owner.name.clone(),
        node_id: place.node_id.clone().unwrap_or_default(),
        node: place.node.clone(),
        field: place.field.clone(),
        result: result.as_str().to_owned(),
        reason,
        time: now_ms(),
    }
}

/// A row for what a probe found, its reason passed through `mask`.
fn probed(place: &Place, probe: Probe, mask: impl Fn(&str) -> String) -> ProbeRecord {
    let (result, reason) = probe.into_parts();
    record(place, result, mask(&reason))
}

fn probe_row(place: &Place, probe: Probe) -> ProbeRecord {
    probed(place, probe, str::to_owned)
}

/// `text` with every form of `value` (as the redactor would mask it) replaced by `***`.
fn mask_value(text: &str, value: &[u8]) -> String {
    let mut out = text.to_owned();
    let mut forms = veil_core::masked_forms(value);
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    for form in forms {
        if let Ok(form) = std::str::from_utf8(&form)
            && form.len() >= 3
        {
            out = out.replace(form, veil_core::MASK);
        }
    }
    out
}
