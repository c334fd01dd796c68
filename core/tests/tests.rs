//! veil-core integration tests.

// Placeholder grammar: parse / escape / placeholder / mentions_placeholder on arbitrary text.
mod placeholder_props;
