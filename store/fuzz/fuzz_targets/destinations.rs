//! Fuzzes `allowedDestinations` patterns: lines of arbitrary text as a list, then a host and a
//! port. Normalizing is idempotent, a list allows each plain host it names (on any port), and
//! checking a send never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veil_store::{destination_allowed, normalize_destinations};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let target = lines.pop().unwrap_or_default();
    let (host, port) = match target.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse::<u16>().unwrap_or(443)),
        None => (target.clone(), 443),
    };
    let Some(normalized) = normalize_destinations(&lines) else {
        return;
    };
    assert_eq!(normalize_destinations(&normalized).as_ref(), Some(&normalized), "{lines:?}");
    let _ = destination_allowed(&normalized, &host, port);
    for pattern in &normalized {
        let plain = !pattern.contains(['*', ':', '[', ']']);
        if plain {
            assert!(destination_allowed(&normalized, pattern, port), "{normalized:?} refuses {pattern}:{port}");
        }
    }
});
