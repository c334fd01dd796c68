//! One budget per incoming message. Whatever path a message takes — nodes of any type, switch
//! relations, fan-out, loops, converters — what it makes the server spend is charged to one
//! [`RunBudget`] where it is spent: node executions and queued copies by the engine, script and
//! converter time by [`crate::Script::run`]. Exceeding it stops the message naming the limit. The
//! budget also carries whether the message's rule chain still runs: a deleted or redeployed
//! chain's messages stop at their next step (a script in progress at its next clock check).
//!
//! And the state of the script run on this thread ([`RunState`], held where Rhai's callbacks can
//! reach it): who resolves its secrets, its deadlines, what it printed, the bytes of Secrets it
//! built, and a failure that decides it whatever it returns ([`Halt`]).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rhai::{Dynamic, EvalAltResult, Position};
use veil_store::TenantId;

use crate::limits::{Limits, limit_error};
use crate::secrets::Secrets;

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

/// At most this many printed lines per run are kept, each cut to [`MAX_NOTE_BYTES`].
pub const MAX_NOTES: usize = 100;
/// The longest printed line kept.
pub const MAX_NOTE_BYTES: usize = 4096;
/// The most bytes (by their bounds) of Secrets one script run may build.
pub const MAX_SEALED_BYTES: usize = 16 * 1024 * 1024;

/// The state of the run on this thread: who resolves, which names, until when, what it printed.
pub(crate) struct RunState {
    /// Where `secret()` resolves (the node's or integration's handle), for the names the script
    /// declared (none: nothing to resolve).
    pub(crate) secrets: Option<(Secrets, Arc<[String]>)>,
    pub(crate) timeout: Duration,
    /// The stop flag of the message's chain: the run stops when it is set.
    pub(crate) stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// A first attempt on the caller's thread gives up (to go to the script threads) after this
    /// many operations or this long.
    pub(crate) inline: Option<(u64, Duration)>,
    /// The run's time limit and the first attempt's, set at the first read of the clock.
    pub(crate) deadlines: Option<(Instant, Instant)>,
    pub(crate) notes: Vec<String>,
    /// Bytes (by their bounds) of the Secrets this run built.
    pub(crate) sealed_bytes: usize,
    /// Set when something failed in a way that depends on a secret's value: the run fails with
    /// this, whatever the script did after (a swallowed error must not let it go on).
    pub(crate) failed: Option<&'static str>,
}

thread_local! {
    pub(crate) static RUN: RefCell<Option<RunState>> = const { RefCell::new(None) };
}

pub(crate) fn note(mut line: String) {
    RUN.with(|r| {
        let mut run = r.borrow_mut();
        let Some(run) = run.as_mut() else { return };
        if run.notes.len() < MAX_NOTES {
            if line.len() > MAX_NOTE_BYTES {
                let mut cut = MAX_NOTE_BYTES;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
                line.push_str(" [cut]");
            }
            run.notes.push(line);
        }
    });
}

/// Counts `bytes` of a new Secret against the run's [`MAX_SEALED_BYTES`].
pub(crate) fn charge_sealed(bytes: usize) -> Result<(), Box<EvalAltResult>> {
    let max = MAX_SEALED_BYTES;
    RUN.with(|r| {
        let mut run = r.borrow_mut();
        let Some(run) = run.as_mut() else { return Ok(()) };
        run.sealed_bytes = run.sealed_bytes.saturating_add(bytes);
        if run.sealed_bytes > max {
            return Err(format!("the Secrets this run built could hold more than {max} bytes").into());
        }
        Ok(())
    })
}

/// Whether a value computed from the secrets `names` must stay sealed: one of them may be sent
/// only to some destinations, or the tenant requires destinations for every secret (or the run
/// cannot tell: then yes).
pub(crate) fn restricted(names: &[String]) -> bool {
    RUN.with(|r| {
        let run = r.borrow();
        let Some((secrets, _)) = run.as_ref().and_then(|run| run.secrets.as_ref()) else { return true };
        let (store, tenant) = (secrets.store(), secrets.tenant());
        store.destinations_required(tenant)
            || names.iter().any(|n| store.allowed_destinations(tenant, n).is_none_or(|list| !list.is_empty()))
    })
}

/// Fails the current run with `reason` whatever it returns (see [`RunState::failed`]).
pub(crate) fn fail_run(reason: &'static str) {
    RUN.with(|r| {
        if let Some(run) = r.borrow_mut().as_mut() {
            run.failed.get_or_insert(reason);
        }
    });
}

/// Why a run was ended where the script cannot catch it: the token of Rhai's `ErrorTerminated`,
/// typed, so the end is told by its kind and never by a text.
#[derive(Debug, Clone)]
pub(crate) enum Halt {
    /// It ran out of time.
    TimedOut,
    /// A first attempt took too long for the caller's thread: start again on the script threads.
    MoveToPool,
    /// Its rule chain was stopped.
    Stopped,
    /// A failure that depends on a secret decides the run (its text).
    Failed(&'static str),
}

impl Halt {
    /// Ends the run here.
    pub(crate) fn error(self) -> Box<EvalAltResult> {
        Box::new(EvalAltResult::ErrorTerminated(Dynamic::from(self), Position::NONE))
    }
}
