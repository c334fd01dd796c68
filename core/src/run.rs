//! One budget per incoming message. Whatever path a message takes — nodes of any type, switch
//! relations, fan-out, loops, converters — what it makes the server spend is charged to one
//! [`RunBudget`] where it is spent: node executions and queued copies by the engine, script and
//! converter time by [`crate::Script::run`]. Exceeding it stops the message naming the limit. The
//! budget also carries whether the message's rule chain still runs: a deleted or redeployed
//! chain's messages stop at their next step (a script in progress at its next clock check).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use veil_store::TenantId;

use crate::limits::{Limits, limit_error};

/// What one incoming message may still spend. It lives with the message (on the stack of the
/// task that processes it); the script threads get only its chain's stop flag and report the
/// time they spent back to it.
#[derive(Debug)]
pub struct RunBudget<'a> {
    tenant: TenantId,
    /// Script and converter time spent on the script threads, in microseconds.
    script_micros: AtomicU64,
    max_script: Duration,
    /// Set when the rule chain the message runs in was stopped.
    stopped: StopFlag<'a>,
}

/// A chain's stop flag, borrowed from the running chain (no reference count per message), or a
/// message's own when it runs in no chain.
#[derive(Debug)]
enum StopFlag<'a> {
    Chain(&'a Arc<AtomicBool>),
    Own(Arc<AtomicBool>),
}

impl StopFlag<'_> {
    fn get(&self) -> &Arc<AtomicBool> {
        match self {
            Self::Chain(flag) => flag,
            Self::Own(flag) => flag,
        }
    }
}

impl<'a> RunBudget<'a> {
    /// A budget for one message of `tenant` in a rule chain whose stop flag is `stopped`, under
    /// the script limits of `limits` (the chain's registry's).
    pub fn new(tenant: TenantId, stopped: &'a Arc<AtomicBool>, limits: &Limits) -> Self {
        Self::with(tenant, StopFlag::Chain(stopped), limits)
    }

    fn with(tenant: TenantId, stopped: StopFlag<'a>, limits: &Limits) -> Self {
        Self {
            tenant,
            script_micros: AtomicU64::new(0),
            // A message may always take one whole run.
            max_script: limits.max_script_time_per_message.max(limits.script_timeout),
            stopped,
        }
    }

    /// A budget for one message of `tenant` outside any rule chain (an uplink's conversion), under
    /// the script limits of `limits`.
    pub fn detached(tenant: TenantId, limits: &Limits) -> RunBudget<'static> {
        RunBudget::with(tenant, StopFlag::Own(Arc::default()), limits)
    }

    /// The flag that tells a run on the script threads its message's chain was stopped.
    pub(crate) fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(self.stopped.get())
    }

    /// The tenant whose share of the script threads the message's runs take.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Whether the message's rule chain was deleted or redeployed since it came in.
    pub fn stopped(&self) -> bool {
        self.stopped.get().load(Ordering::Relaxed)
    }

    /// Script time left, or the error naming the limit when none is.
    pub(crate) fn script_time_left(&self) -> Result<Duration, String> {
        let spent = self.script_micros.load(Ordering::Relaxed);
        if spent == 0 {
            return Ok(self.max_script);
        }
        match self.max_script.checked_sub(Duration::from_micros(spent)) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(self.script_time_error()),
        }
    }

    pub(crate) fn script_time_error(&self) -> String {
        limit_error(
            "maxScriptTimePerMessageMs",
            self.max_script.as_millis(),
            "the message's scripts and converters ran longer in all",
        )
    }

    /// Charges `spent` of script time.
    pub(crate) fn charge_script(&self, spent: Duration) {
        let micros = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
        self.script_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// The error of a message whose chain was stopped while it ran.
pub(crate) fn stopped_error(chain: &str) -> String {
    format!("rule chain '{chain}' was deleted or redeployed while the message ran; it was stopped")
}
