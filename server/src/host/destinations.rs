//! Changes to where secrets may go (a secret's `allowedDestinations`, a tenant's "destinations
//! required"), checked against every running configuration before they are stored.

use serde_json::{Value, json};
use veil_core::{Problem, deploy};
use veil_integrations::deploy_integration;
use veil_store::{Actor, Operation, OwnerRecord, OwnerType, Resource, SecretId};

use super::{Host, HostError, HostResult, owner_actor, system_actor};

/// `Ok` when nothing broke; otherwise the 409 naming each configuration and its fields.
fn destinations_in_use(what: String, broken: Vec<Value>) -> HostResult<()> {
    if broken.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = broken
        .iter()
        .map(|b| {
            let kind = if b["type"] == "RULE_CHAIN" { "rule chain" } else { "integration" };
            let sends: Vec<&str> =
                b["problems"].as_array().into_iter().flatten().filter_map(|p| p["path"].as_str()).collect();
            format!("{kind} '{}' ({})", b["name"].as_str().unwrap_or_default(), sends.join(", "))
        })
        .collect();
    Err(HostError::DestinationsInUse(
        format!("allowedDestinations: {what}: {}", names.join("; ")),
        Value::Array(broken),
    ))
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
        let refusal = format!("secret '{}' may not be sent to", info.name);
        let broken = self.refused_sends(&records, &refusal, |deploy| {
            veil_core::with_proposed_destinations(actor.tenant_id, &info.name, list.clone(), deploy)
        });
        destinations_in_use(
            format!("the new list would refuse where these configurations send '{}'", info.name),
            broken,
        )
    }

    /// Turns the tenant's "destinations required" on or off. Turning it on first deploys every
    /// configuration of the tenant again as if it were on: one that sends a secret without a
    /// list to a destination known at save makes it a 409 listing them.
    pub(crate) async fn set_destinations_required(&self, actor: &Actor, on: bool) -> HostResult<bool> {
        actor.require_on(Resource::Role, Operation::Write)?;
        if on {
            let system = system_actor(actor.tenant_id);
            let mut records = self.store.owners(&system, OwnerType::RuleChain).await?;
            records.extend(self.store.owners(&system, OwnerType::Integration).await?);
            let broken = self.refused_sends(&records, "secret '", |deploy| {
                veil_core::with_proposed_destinations_required(actor.tenant_id, true, deploy)
            });
            destinations_in_use(
                "these configurations send secrets that have no allowedDestinations".into(),
                broken,
            )?;
        }
        Ok(self.store.set_destinations_required(actor, on).await?)
    }

    /// Deploys each configuration (not started) inside `scope` and keeps the destination problems
    /// (messages starting with `refusal` and naming a refused destination), per configuration.
    /// Up to a tenant's whole set of configurations is built: off the async workers' turn
    /// (`block_in_place`), so other requests keep being served meanwhile.
    pub(super) fn refused_sends(
        &self,
        records: &[OwnerRecord],
        refusal: &str,
        scope: impl Fn(&mut dyn FnMut() -> Option<Vec<Problem>>) -> Option<Vec<Problem>>,
    ) -> Vec<Value> {
        tokio::task::block_in_place(|| {
            records.iter().filter_map(|record| self.refused_send(record, refusal, &scope)).collect()
        })
    }

    /// [`Host::refused_sends`] for one configuration.
    pub(super) fn refused_send(
        &self,
        record: &OwnerRecord,
        refusal: &str,
        scope: &impl Fn(&mut dyn FnMut() -> Option<Vec<Problem>>) -> Option<Vec<Problem>>,
    ) -> Option<Value> {
        let owner = owner_actor(record);
        let mut deploy_it = || match record.owner.kind {
            OwnerType::RuleChain => deploy(&self.node_types, &self.store, &owner, &record.body).err(),
            _ => deploy_integration(&self.integration_types, &self.store, &owner, &record.body).err(),
        };
        let problems = scope(&mut deploy_it).unwrap_or_default();
        let refused: Vec<&Problem> = problems
            .iter()
            .filter(|p| p.message.starts_with(refusal) && p.message.contains(" may not be sent to "))
            .collect();
        (!refused.is_empty()).then(|| {
            json!({
                "type": record.owner.kind.as_str(), "id": record.owner.id, "name": record.owner.name,
                "problems": refused.iter().map(|p| json!({"path": p.path, "message": p.message})).collect::<Vec<_>>(),
            })
        })
    }
}
