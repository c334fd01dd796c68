//! Waiting for something that happens in the background, without timed assertions.

use std::time::{Duration, Instant};

/// How long [`eventually`] waits before it gives up: long enough for a loaded CI machine, so a
/// failure means "never", not "slow".
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How often [`eventually`] asks.
const EVERY: Duration = Duration::from_millis(25);

/// Asks `check` every 25 ms until it answers `Some`, and returns that; panics naming `what` after
/// [`PATIENCE`]. A condition is `async || cond.then_some(())`.
pub async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    eventually_within(PATIENCE, what, check).await
}

/// [`eventually`] for what the system under test is documented to take longer for (a lease that
/// lapses, then an ack wait): `patience` on top of [`PATIENCE`].
pub async fn eventually_within<T>(
    patience: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let patience = patience + PATIENCE;
    let deadline = Instant::now() + patience;
    loop {
        if let Some(answer) = check().await {
            return answer;
        }
        assert!(Instant::now() < deadline, "timed out after {patience:?} waiting for {what}");
        tokio::time::sleep(EVERY).await;
    }
}
