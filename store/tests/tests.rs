//! veil-store integration tests: real stores (the kit's `veil_tests::TempStore`) on both
//! backends. A test written inside [`backend_tests!`] runs as `<test>::sqlite` (a SQLite file in a
//! temporary directory) and `<test>::postgres` (a fresh PostgreSQL database on the server
//! `VEIL_TEST_POSTGRES` names; ignored unless asked for with `--include-ignored`). Tests about
//! the SQLite file itself (its bytes, its modes) stay SQLite-only.

/// Defines each test once and runs it on both backends: every `async fn name(t: TempStore)`
/// becomes the module `name` with the tests `sqlite` and `postgres`, both carrying the function's
/// attributes (`#[tokio::test]`, with its flavor if any).
macro_rules! backend_tests {
    ($( $(#[$attr:meta])* async fn $name:ident($t:ident: $kit:ty $(,)?) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($t: $kit) $body

                $(#[$attr])*
                async fn sqlite() {
                    run(veil_tests::TempStore::sqlite().await).await
                }

                $(#[$attr])*
                #[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
                async fn postgres() {
                    run(veil_tests::TempStore::postgres().await).await
                }
            }
        )*
    };
}

// Every validation rule, name/type immutability, duplicates, size limits, permissions.
mod validation;
// Values round-trip exactly; nothing in plaintext on disk; ciphertext integrity; master keys.
mod crypto;
// References: usages, refused deletes, and the save-vs-delete race.
mod references;
// Tenant isolation and change events.
mod isolation;
// Customers, sharing, custom roles, tenants and the audit log.
mod directory;
// Lookalike and invisible names, terminal-unsafe text, file names, pagination limits, own
// password changes, database file modes.
mod hardening;
// Two instances on one database: what the database itself must refuse (stale versions, taken
// names, deleted secrets, tenants and shares), whatever each instance's memory says.
mod instances;
// Listings read names and times, not whole configurations.
mod listing;
// Per-tenant quotas counted in the inserting transaction, across two instances.
mod quotas;
// `veil migrate`'s copy from SQLite into PostgreSQL, checked by what a user sees.
mod migrate;
// Versions, fingerprints, verify, rollback and check-and-set.
mod versions;
// Secret providers and linked secrets: fetch, cache, generations, guards, two instances.
mod providers;
// tenant_usage: counted right for secrets kept before its migration, and under concurrent writers.
mod usage;
