//! veil-core integration tests.

// Placeholder grammar: parse / escape / placeholder / mentions_placeholder on arbitrary text.
mod placeholder_props;
// The redactor over a real store: earlier values after a restart, encodings, keys, composites.
mod redact;
// The redactor on arbitrary values: every form a value takes on its way out is masked.
mod redact_props;
// Capabilities: a node resolves only the secrets its configuration declared.
mod capabilities;
// Rendering: every shape of field, escaping, rotation, FILE bytes.
mod render;
