//! End-to-end tests of the `veil` program: the real process on a random loopback port, real
//! services beside it. The test kit (veil-tests' library) starts and drives it.

// The kit, under the name the modules use.
use veil_tests as support;
// The secrets REST API as a client sees it.
mod api;
// Rule chains calling a real HTTP service with secrets from the store.
mod chains;
// LORIOT and HTTP integrations against the LORIOT emulator.
mod integrations;
// The `veil` CLI against a live server: output and exit codes.
mod cli;
// The process: logs, master key, crash safety, shutdown, first start.
mod process;
// Starting (503), ready, and a graceful SIGTERM under load.
mod lifecycle;
// veil.toml: precedence, unknown keys, veil config check and show.
mod config_file;
// GET /metrics: exact counts after a known workload; the metrics token.
mod metrics;
// The OpenAPI document: served, printed, and every operation a real route.
mod openapi;
// Roles, customers, sharing and the audit log, route by route.
mod access;
// Limits: hostile chains, scripts and messages against the real binary.
mod limits;
// GET /api/node-types, /api/integration-types and the CLI's view of them.
mod node_types;
// Typed configurations: unknown keys refused with their pointers.
mod configs;
// Two instances on one PostgreSQL database: changes through one are used by the other.
mod cluster;
// Sessions from memory (every revocation applies to the next request); no database on the message path.
mod sessions;
// The web UI in headless Chromium: flows, leaks, CSRF, page speed.
mod ui;
// The rule chain canvas in headless Chromium: dragging, forms, undo, test path, import, frame rate.
mod canvas;
// allowedDestinations: per message, at save, in the audit log.
mod destinations;
// rest_api_call with OAuth2 client credentials: one token for many messages, refresh, 401 retry, leaks.
mod oauth2;
// Sealed secrets in scripts and converters: exfiltration attempts, signing, headers, decryption.
mod sealed;
// The second attack pass (ATTACKS-2.md): one test per finding.
mod attacks;
// The hostile-input generator (VEIL_HOSTILE_SECS): random chains, converters and messages.
mod hostile;
// ThingsBoard rule chain exports in and out; node positions.
mod thingsboard;
// The guides: links resolve, every `veil` command line parses.
mod docs;
// Versions, check-and-set, verify and rollback through the API and the CLI.
mod versions;
// Staged rotation: a pending value probed on MQTT, LORIOT and mutual TLS, then promoted.
mod rotation;
// Data key rotation: every stored value sealed again, resumed by another instance after kill -9.
mod keys;

// At-least-once processing on NATS JetStream: the stream, redeliveries, dead letters, a cluster losing an instance.
mod queue;
// Linked secrets from providers (files, exec) and the guards around them.
mod providers;
