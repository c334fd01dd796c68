//! veil-tests: Veil's test kit, and (in `e2e/`) the end-to-end suite of the `veil` program.
//!
//! Every crate's integration tests and the end-to-end suite use this one kit instead of copies:
//!
//! | Module | What it gives a test |
//! |---|---|
//! | `server` | [`Server`]: the real `veil serve` on a free loopback port with a temporary data directory, its logs and stdout, [`Server::peak_rss`], [`Server::watch_health`], `kill -9`; [`veil`] and [`serve_command`] for the CLI and other flags |
//! | `api` | [`Api`]: a client logged in as any user; [`SECRET_INFO_KEYS`] and [`sorted_keys`] for what a client sees of a secret |
//! | `receiver` | [`Receiver`]: a real HTTP service on loopback that records every request and answers as told |
//! | `oauth` | [`OAuthServer`]: an OAuth 2.0 token endpoint (client credentials, Basic or body client authentication) and an API that takes only its current token, counting both |
//! | `store` | [`TempStore`]: a real store (SQLite in a temporary directory, or with [`TempStore::postgres`] a fresh PostgreSQL database on the server [`POSTGRES_ENV`] names) with a tenant administrator; [`open_at`], [`open_with`], [`explicit_key`], … to open one by hand |
//! | `deploy` | [`TempStore::deploy_chain`], [`TempStore::deploy_integration`]: deploy, save with references and start, as the server does |
//! | `leak` | [`assert_no_leak`] and [`leaks`]: the one definition of "a value leaked", exactly the forms the `Redactor` masks |
//! | `browser` | [`Browser`]: headless Chromium through chromedriver ([`CHROMEDRIVER_ENV`]), with helpers to wait, click, type, screenshot and collect what a page exposes; [`RecordingProxy`]: every response the browser received |
//! | `sealed` | [`sealed::ATTEMPTS`]: the table of attempts to turn a sealed secret into data, [`sealed::derived_forms`] of a value |
//! | `poll` | [`eventually`]: wait for a background state without timed assertions |
//! | `files` | [`snapshot`] of a data directory, [`contains`] for bytes |
//! | `mqtt` | [`mqtt::Broker`]: a mosquitto of the test's own with a password file and a listener to watch |
//! | `nats` | [`Jetstream`]: a JetStream stream of the test's own on the NATS server [`NATS_ENV`] names, deleted at the end |
//! | `tls` | [`tls::Pki`]: a fresh CA, server and client certificates; [`tls::MutualTls`]: an HTTPS listener that requires client certificates and records each one |
//!
//! The program under test is the `veil-e2e` binary of this package (the same entry point as
//! `veil`), which cargo builds before this package's tests run; [`veil_binary`] finds it, or
//! `VEIL_BIN` names another. Use the kit from integration tests (`<crate>/tests/`) only, never from
//! `#[cfg(test)]` unit tests: the kit links the normal build of each crate, and a unit test binary
//! would hold a second, different copy of the crate under test.

mod api;
mod browser;
mod deploy;
mod files;
mod leak;
pub mod mqtt;
mod nats;
mod oauth;
mod poll;
mod receiver;
pub mod sealed;
mod server;
mod store;
pub mod tls;

pub use crate::api::{Api, SECRET_INFO_KEYS, problem_at, sorted_keys};
pub use crate::browser::{Browser, CHROMEDRIVER_ENV, Exchange, RecordingProxy};
pub use crate::files::{contains, snapshot};
pub use crate::leak::{assert_no_leak, leaks};
pub use crate::nats::{Jetstream, NATS_ENV};
pub use crate::oauth::{ApiRequest, OAuthServer, TokenRequest};
pub use crate::poll::{PATIENCE, eventually, eventually_within};
pub use crate::receiver::{Receiver, Recorded};
pub use crate::server::{
    ADMIN_PASSWORD, HealthWatch, SYSADMIN_PASSWORD, Server, serve_command, veil, veil_binary,
};
pub use crate::store::{
    POSTGRES_ENV, PostgresDatabase, StoreKind, TempStore, admin_of, db_path, explicit_key, file_secret,
    generated_key, linked_secret, open_at, open_with, text_secret,
};
