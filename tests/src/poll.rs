//! Waiting for something that happens in the background, without timed assertions.

use std::time::{Duration, Instant};

/// How long [`eventually`] waits before it gives up: long enough for a loaded CI machine, so a
/// failure means "never", not "slow".
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How often [`eventually`] asks.
const EVERY: Duration = Duration::from_millis(25);

/// Asks `check` every 25 ms until it answers `Some`, and returns that; panics naming `what` after
/// [`PATIENCE`]. A condition is `async || cond.then_some(())`.
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(answer) = check().await {
            return answer;
        }
        assert!(Instant::now() < deadline, "timed out after {PATIENCE:?} waiting for {what}");
        tokio::time::sleep(EVERY).await;
    }
}
