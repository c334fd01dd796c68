//! Integrations against real servers on loopback: the LORIOT emulator of `veil-examples` and plain
//! HTTP requests, with a real store.

// A store, secrets, and deploying integrations as the server does.
mod support;
// LORIOT: login, sessions, output creation, downlinks, uplinks, rotation.
mod loriot;
// HTTP: header security and payloads.
mod http;
