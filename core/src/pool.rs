//! The script threads, shared fairly by tenants. Script and converter runs that outgrow the
//! caller's thread wait here in a queue per tenant; the threads serve the tenants with waiting
//! runs in turn (round robin), so however long one tenant's backlog is, another tenant's next run
//! waits at most for the runs already started — one run's time limit.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use veil_store::TenantId;

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct Queues {
    /// Waiting runs per tenant (only tenants with at least one).
    waiting: HashMap<TenantId, VecDeque<Job>>,
    /// Tenants with waiting runs, in the order they are served.
    turns: VecDeque<TenantId>,
    /// Set when the pool's owner is gone: the threads finish what waits, then end.
    closed: bool,
}

/// Threads with large stacks that run jobs by tenant, in turn. Dropping the pool ends its
/// threads once the runs already queued are done.
pub(crate) struct FairPool {
    shared: Arc<Shared>,
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
}

impl Drop for FairPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

impl FairPool {
    /// Starts `threads` threads of `stack` bytes named `veil-script-N`.
    pub(crate) fn start(threads: usize, stack: usize) -> Self {
        let shared = Arc::new(Shared { queues: Mutex::default(), ready: Condvar::new() });
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("veil-script-{i}"))
                .stack_size(stack)
                .spawn(move || shared.serve())
                .expect("the script threads start");
        }
        Self { shared }
    }

    /// Queues `job` behind the tenant's other waiting runs.
    pub(crate) fn spawn(&self, tenant: TenantId, job: impl FnOnce() + Send + 'static) {
        let mut queues = self.shared.lock();
        let waiting = queues.waiting.entry(tenant).or_default();
        let first = waiting.is_empty();
        waiting.push_back(Box::new(job));
        if first {
            queues.turns.push_back(tenant);
        }
        drop(queues);
        self.shared.ready.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs waiting jobs, one tenant's at a time in turn, until the pool is dropped and nothing
    /// waits.
    fn serve(&self) {
        loop {
            let job = {
                let mut queues = self.lock();
                loop {
                    if let Some(tenant) = queues.turns.pop_front() {
                        let waiting =
                            queues.waiting.get_mut(&tenant).expect("a tenant in turn has waiting runs");
                        let job = waiting.pop_front().expect("a tenant in turn has waiting runs");
                        if waiting.is_empty() {
                            queues.waiting.remove(&tenant);
                        } else {
                            queues.turns.push_back(tenant);
                        }
                        break job;
                    }
                    if queues.closed {
                        return;
                    }
                    queues = self.ready.wait(queues).unwrap_or_else(|e| e.into_inner());
                }
            };
            // A job reports its own panics (see `Script::run`); the thread goes on.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn tenants_take_turns_whatever_one_has_queued() {
        let pool = FairPool::start(1, 1 << 20);
        let (hog, other) = (TenantId::new_random(), TenantId::new_random());
        let (tx, rx) = mpsc::channel();
        let (hold, release) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        // The only thread is busy while the queues fill.
        pool.spawn(hog, move || {
            started_tx.send(()).unwrap();
            let _ = release.recv();
        });
        started.recv().unwrap();
        for i in 0..50 {
            let tx = tx.clone();
            pool.spawn(hog, move || tx.send(format!("hog {i}")).unwrap());
        }
        let tx2 = tx.clone();
        pool.spawn(other, move || tx2.send("other".to_owned()).unwrap());
        hold.send(()).unwrap();
        let order: Vec<String> = (0..51).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(order[..2], ["hog 0", "other"], "{order:?}");
        assert_eq!(order.last().unwrap(), "hog 49");
    }
}
