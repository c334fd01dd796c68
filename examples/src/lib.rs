//! veil-examples: the example chain documents the README walks through (`examples/chains/*.json`)
//! and small programs to try them with (`cargo run -p veil-examples --bin echo-server`).

/// `examples/chains/rest-bearer.json`: a chain that calls a REST endpoint with a bearer token
/// taken from the secret `api-token`, then logs the response.
pub const REST_BEARER_CHAIN: &str = include_str!("../chains/rest-bearer.json");

pub mod loriot;
