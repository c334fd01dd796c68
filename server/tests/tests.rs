//! End-to-end tests of the `veil` binary: the real process on a random loopback port.

// Starting, stopping and talking to a `veil serve` process.
mod support;
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
// Roles, customers, sharing and the audit log, route by route.
mod access;
// Limits: hostile chains, scripts and messages against the real binary.
mod limits;
