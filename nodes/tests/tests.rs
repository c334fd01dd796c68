//! veil-nodes integration tests: nodes deployed through the real engine over a real store.

// Running a message through a chain, and a fresh PKI (the store and deploying are veil_tests').
mod support;
// The Rhai script node: modes, secret(), sandbox, redaction.
mod script;
// Sealed secrets in scripts: the table of exfiltration attempts, a header built in a script.
mod sealed;
// Probes of pending values: a TLS handshake, a named request, nothing for a script.
mod probe;
// rest_api_call with mutual TLS against a TLS server of the test's own.
mod rest_tls;
// rest_api_call against HTTP servers of the test's own: size limit, errors, masking of what it sends.
mod rest;
// rest_api_call with oauth2 credentials against a token endpoint of the test's own.
mod oauth2;
// The MQTT node against a mosquitto of the test's own (password file, mutual TLS).
mod mqtt;
// The RabbitMQ node against the machine's RabbitMQ, in a vhost and user of the test's own.
mod rabbitmq;
