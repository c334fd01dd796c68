//! veil-store integration tests: real SQLite files in temporary directories (the kit's
//! `veil_tests::TempStore`).

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
