//! veil-core integration tests.
