//! Changes to where secrets may go (a secret's `allowedDestinations`, a tenant's "destinations
//! required"), checked against every running configuration before they are stored.

use serde::Serialize;
use uuid::Uuid;
use veil_core::{Problem, Proposal, deploy_proposed};
use veil_integrations::deploy_integration_proposed;
use veil_store::{Actor, Operation, OwnerRecord, OwnerType, Resource, SecretId};

use super::{Host, HostError, HostResult, owner_actor, system_actor};

/// A configuration a change would break, and where: its sends of a secret to a destination the
/// change would refuse.
#[derive(Debug, Clone, Serialize)]
pub struct BrokenConfig {
    /// Rule chain or integration.
    #[serde(rename = "type")]
    pub kind: OwnerType,
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// The refused sends, each at its pointer.
    pub problems: Vec<Problem>,
}

/// `Ok` when nothing broke; otherwise the 409 naming each configuration and its fields.
fn destinations_in_use(what: String, broken: Vec<BrokenConfig>) -> HostResult<()> {
    if broken.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = broken
        .iter()
        .map(|b| {
            let kind = match b.kind {
                OwnerType::RuleChain => "rule chain",
                OwnerType::Integration => "integration",
                OwnerType::SecretProvider => "secret provider",
            };
            let sends: Vec<&str> = b.problems.iter().map(|p| p.path.as_str()).collect();
            format!("{kind} '{}' ({})", b.name, sends.join(", "))
        })
        .collect();
    Err(HostError::DestinationsInUse(format!("allowedDestinations: {what}: {}", names.join("; ")), broken))
}
impl Host {
    /// A new `allowedDestinations` for the secret `id`: every configuration that uses it is
    /// deployed again (not started) as if the list were stored; one whose destination known at
    /// save (a literal URL, a broker, LORIOT's API) the list would refuse makes the change a 409
    /// listing them, as a delete of a used secret is. A list that does not validate is left to
    /// the store's validation.
    pub(crate) async fn check_destinations_change(
        &self,
        actor: &Actor,
        id: SecretId,
        list: &[String],
    ) -> HostResult<()> {
        let Some(list) = veil_store::normalize_destinations(list) else { return Ok(()) };
        let info = self.store.get(actor, id)?;
        let system = system_actor(actor.tenant_id);
        let usages = self.store.usages(&system, id).await?;
        let mut records = Vec::new();
        for (kind, users) in
            [(OwnerType::RuleChain, &usages.rule_chains), (OwnerType::Integration, &usages.integrations)]
        {
            for user in users {
                if let Ok(record) = self.store.owner(&system, kind, user.id).await {
                    records.push(record);
                }
            }
        }
        let proposal = Proposal::destinations(&info.name, list.clone());
        let mut broken = self.refused_sends(&records, &proposal, |secret| secret == info.name);
        // Providers send their credentials to their address.
        for user in &usages.secret_providers {
            let Some((field, host, port)) = self.store.provider_send(actor.tenant_id, user.id, &info.name)
            else {
                continue;
            };
            if let Err(allowed) = self.store.list_allows(actor.tenant_id, &list, &host, port, None) {
                let why = if allowed.is_empty() {
                    "it would have no allowedDestinations and the tenant requires them".to_owned()
                } else {
                    format!("its allowedDestinations would be: {}", allowed.join(", "))
                };
                let message = format!(
                    "secret '{}' may not be sent to {} ({why})",
                    info.name,
                    veil_core::destination(&host, port)
                );
                broken.push(BrokenConfig {
                    kind: OwnerType::SecretProvider,
                    id: user.id,
                    name: user.name.clone(),
                    problems: vec![Problem::new(format!("/configuration/{field}"), message)],
                });
            }
        }
        destinations_in_use(
            format!("the new list would refuse where these configurations send '{}'", info.name),
            broken,
        )
    }

    /// Changes the tenant's settings (those `change` names). Turning "destinations required" on
    /// first deploys every configuration of the tenant again as if it were on: one that sends a
    /// secret without a list to a destination known at save makes it a 409 listing them.
    pub(crate) async fn update_tenant_settings(
        &self,
        actor: &Actor,
        change: SettingsChange,
    ) -> HostResult<veil_store::TenantSettings> {
        actor.require_on(Resource::Role, Operation::Write)?;
        let mut settings = self.store.tenant_settings(actor.tenant_id);
        let turned_on = change.destinations_required == Some(true) && !settings.destinations_required;
        settings.destinations_required =
            change.destinations_required.unwrap_or(settings.destinations_required);
        settings.cas_required = change.cas_required.unwrap_or(settings.cas_required);
        settings.strict_values = change.strict_values.unwrap_or(settings.strict_values);
        if let Some(notices) = change.expiry_notices {
            if let Some(n) = &notices {
                self.check_expiry_notices(actor.tenant_id, n).await?;
            }
            settings.expiry_notices = notices;
        }
        if turned_on {
            let system = system_actor(actor.tenant_id);
            let mut records = self.store.owners(&system, OwnerType::RuleChain).await?;
            records.extend(self.store.owners(&system, OwnerType::Integration).await?);
            let broken = self.refused_sends(&records, &Proposal::destinations_required(true), |_| true);
            destinations_in_use(
                "these configurations send secrets that have no allowedDestinations".into(),
                broken,
            )?;
        }
        let saved = self.store.set_tenant_settings(actor, settings).await?;
        // Notices already due go now, not at the next hourly check.
        if let Some(notices) = &saved.expiry_notices
            && let Err(e) = self.send_notices_of(actor.tenant_id, notices).await
        {
            tracing::warn!(tenant = %actor.tenant_id, error = %e, "expiry notices could not be sent; trying again at the next check");
        }
        Ok(saved)
    }

    /// Deploys each configuration (not started) as if `proposal` were stored and keeps, per
    /// configuration, the refused sends of the secrets `wanted` picks. Up to a tenant's whole set
    /// of configurations is built: off the async workers' turn (`block_in_place`), so other
    /// requests keep being served meanwhile.
    pub(super) fn refused_sends(
        &self,
        records: &[OwnerRecord],
        proposal: &Proposal,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<BrokenConfig> {
        tokio::task::block_in_place(|| {
            records.iter().filter_map(|record| self.refused_send(record, proposal, &wanted)).collect()
        })
    }

    /// [`Host::refused_sends`] for one configuration.
    pub(super) fn refused_send(
        &self,
        record: &OwnerRecord,
        proposal: &Proposal,
        wanted: &impl Fn(&str) -> bool,
    ) -> Option<BrokenConfig> {
        let owner = owner_actor(record);
        let problems = match record.owner.kind {
            OwnerType::RuleChain => {
                deploy_proposed(&self.node_types, &self.store, &owner, &record.body, Some(proposal)).err()
            }
            OwnerType::Integration => deploy_integration_proposed(
                &self.integration_types,
                &self.store,
                &owner,
                &record.body,
                Some(proposal),
            )
            .err(),
            // A provider's destination is checked by the store (see check_destinations_change).
            OwnerType::SecretProvider => None,
        };
        let refused: Vec<Problem> = problems
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.refused_secret().is_some_and(wanted))
            .collect();
        (!refused.is_empty()).then(|| BrokenConfig {
            kind: record.owner.kind,
            id: record.owner.id,
            name: record.owner.name.clone(),
            problems: refused,
        })
    }
}

/// A change of tenant settings: the ones given change, the others stay.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SettingsChange {
    pub(crate) destinations_required: Option<bool>,
    pub(crate) cas_required: Option<bool>,
    pub(crate) strict_values: Option<bool>,
    /// Absent: unchanged; `null`: none.
    #[serde(default, deserialize_with = "present")]
    pub(crate) expiry_notices: Option<Option<veil_store::ExpiryNotices>>,
}

/// A field that was sent, `null` included.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}
