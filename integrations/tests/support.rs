//! What only the integration tests share: request headers, problem paths, and waiting for a status.
//! The store, deploying and leak checks are the workspace kit's (`veil_tests`).

use reqwest::header::{HeaderMap, HeaderValue};
use veil_core::Problem;
use veil_integrations::{IntegrationRuntime, Status};
use veil_tests::eventually;

/// Waits until the integration has left `starting`.
pub(crate) async fn settled(runtime: &IntegrationRuntime) -> Status {
    eventually("the integration to leave starting", async || match runtime.status() {
        Status::Starting => None,
        other => Some(other),
    })
    .await
}

pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

pub(crate) fn paths(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.path.as_str()).collect()
}
