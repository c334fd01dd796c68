//! Integrations against real servers on loopback: the LORIOT emulator of `veil-examples` and plain
//! HTTP requests, with a real store.

// Request headers, problem paths, waiting for a status (the store and deploying are veil_tests').
mod support;
// LORIOT: login, sessions, output creation, downlinks, uplinks, rotation.
mod loriot;
// HTTP: header security and payloads.
mod http;
// Every node and integration type deploys with its default configuration.
mod defaults;
