//! Expiry notices: a `SECRET_EXPIRY` message into the rule chain a tenant names when a secret's
//! version comes within each of its thresholds (`daysBefore`) of its expiry — once per threshold
//! per version for the whole cluster (under the chain's lease), never with a value.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;
use veil_core::{Msg, Problem};
use veil_store::{ExpiryNotices, ListQuery, OwnerType, SecretInfo, TenantId};

use super::{Host, HostError, HostResult, system_actor};

/// How often every tenant's secrets are checked (also at start-up and when the setting changes).
pub(crate) const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(3600);
/// Most thresholds per tenant.
const MAX_THRESHOLDS: usize = 10;
const DAY_MS: i64 = 86_400_000;

/// Whether a notice at that threshold was sent (what the lease records).
const SENT: &str = "sent";
/// A recorded notice stays recorded (the version it is about never expires again).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);

impl Host {
    /// Checks `notices` of `actor`'s tenant: the chain exists and the thresholds are 1..365, at
    /// most ten; each problem names its field.
    pub(crate) async fn check_expiry_notices(
        &self,
        tenant: TenantId,
        notices: &ExpiryNotices,
    ) -> HostResult<()> {
        let mut problems = Vec::new();
        if notices.days_before.is_empty() || notices.days_before.len() > MAX_THRESHOLDS {
            problems.push(Problem::new(
                "/expiryNotices/daysBefore",
                format!("must list 1 to {MAX_THRESHOLDS} thresholds"),
            ));
        }
        for (i, days) in notices.days_before.iter().enumerate() {
            if !(1..=365).contains(days) {
                problems.push(Problem::new(
                    format!("/expiryNotices/daysBefore/{i}"),
                    format!("must be 1..365 days, got {days}"),
                ));
            }
        }
        if self.store.owner(&system_actor(tenant), OwnerType::RuleChain, notices.rule_chain_id).await.is_err()
        {
            problems.push(Problem::new(
                "/expiryNotices/ruleChainId",
                format!("rule chain '{}' does not exist", notices.rule_chain_id),
            ));
        }
        if problems.is_empty() { Ok(()) } else { Err(HostError::Invalid(problems)) }
    }

    /// Sends the notices due now, for every tenant that wants them.
    pub(crate) async fn send_expiry_notices(&self) {
        for (tenant, notices) in self.store.expiry_notices() {
            if let Err(e) = self.send_notices_of(tenant, &notices).await {
                tracing::warn!(%tenant, error = %e, "expiry notices could not be sent; trying again at the next check");
            }
        }
    }

    /// Sends `tenant`'s notices due now: for each secret with an expiry, the nearest threshold it
    /// has come within, unless sent for this version already (on any instance).
    pub(crate) async fn send_notices_of(&self, tenant: TenantId, notices: &ExpiryNotices) -> HostResult<()> {
        let system = system_actor(tenant);
        let now = veil_store::now_ms();
        let mut thresholds = notices.days_before.clone();
        thresholds.sort_unstable();
        let mut page = 0;
        loop {
            let query = ListQuery { page, page_size: 1000, text_search: None };
            let listed = self.store.list_where(&system, &query, |s| s.expiry().is_some())?;
            for secret in &listed.data {
                let Some(expires) = secret.expiry() else { continue };
                let days_left =
                    (expires - now).div_euclid(DAY_MS) + i64::from((expires - now).rem_euclid(DAY_MS) > 0);
                let Some(threshold) = thresholds.iter().copied().find(|d| days_left <= i64::from(*d)) else {
                    continue;
                };
                self.notify(tenant, notices.rule_chain_id, secret, expires, days_left, threshold).await?;
            }
            if !listed.has_next {
                return Ok(());
            }
            page += 1;
        }
    }

    async fn notify(
        &self,
        tenant: TenantId,
        chain: Uuid,
        secret: &SecretInfo,
        expires: i64,
        days_left: i64,
        threshold: u32,
    ) -> HostResult<()> {
        let work = format!("expiry notice {} v{} {threshold}d", secret.id, secret.version);
        let lease = self.store.lease(chain, &work).await?;
        if lease.outcome(SENT, FOREVER).is_some() {
            return Ok(());
        }
        let data = json!({
            "secretId": secret.id, "name": secret.name, "version": secret.version,
            "expiresAt": expires, "daysLeft": days_left, "threshold": threshold,
        });
        let sender = self.sender(&system_actor(tenant), chain, false, false).await?;
        sender.send(Msg::new("SECRET_EXPIRY", secret.name.clone(), data)).await?;
        lease.record(SENT, None).await?;
        tracing::info!(%tenant, secret = %secret.name, version = secret.version, days_left, "expiry notice sent");
        Ok(())
    }
}
