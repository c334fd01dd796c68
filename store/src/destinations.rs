//! Where a secret may be sent: `allowedDestinations`, a list of host patterns with an optional
//! port — `api.example.com`, `*.loriot.io` (any subdomain, not the domain itself), `127.0.0.1:9000`,
//! `[::1]:8443`, `mqtt.example.com:8883`. An empty list means anywhere.

use crate::error::FieldProblem;

/// Patterns one secret may carry at most.
pub const MAX_DESTINATIONS: usize = 32;
/// The longest pattern (a DNS name is at most 253 characters, plus `:65535`).
const MAX_PATTERN: usize = 260;

/// Checks and normalizes a list (lower case, no duplicates); every problem names its entry
/// (`allowedDestinations/2: ...`).
pub(crate) fn validate_destinations(list: &[String], problems: &mut Vec<FieldProblem>) -> Vec<String> {
    if list.len() > MAX_DESTINATIONS {
        problems.push(FieldProblem::new(
            "allowedDestinations",
            format!("has {} entries, at most {MAX_DESTINATIONS} are allowed", list.len()),
        ));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        match normalize(raw) {
            Ok(p) if !out.contains(&p) => out.push(p),
            Ok(_) => {}
            Err(why) => problems.push(FieldProblem::new(&format!("allowedDestinations/{i}"), why)),
        }
    }
    out
}

/// The list as the store would keep it, or `None` when it has a problem (the store's own
/// validation then reports it).
pub fn normalize_destinations(list: &[String]) -> Option<Vec<String>> {
    let mut problems = Vec::new();
    let out = validate_destinations(list, &mut problems);
    problems.is_empty().then_some(out)
}

/// One pattern, lower-cased, or why it is not one.
fn normalize(raw: &str) -> Result<String, String> {
    let p = raw.trim().to_ascii_lowercase();
    if p.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some((_, rest)) = p.split_once("://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        return Err(format!(
            "'{}' is a URL: write the host (and port), not a URL, e.g. '{host}'",
            raw.trim()
        ));
    }
    if p.len() > MAX_PATTERN {
        return Err(format!("is longer than {MAX_PATTERN} characters"));
    }
    let (host, port) = split(&p).ok_or("expected a host with an optional :port, e.g. api.example.com:443")?;
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("port '{port}' is not 1..65535")),
        }
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    let is_ip = host.starts_with('[') || name.parse::<std::net::Ipv4Addr>().is_ok();
    if is_ip {
        if host.starts_with("*.") {
            return Err("a wildcard applies to names, not IP addresses".into());
        }
        if host.starts_with('[') && host.trim_matches(['[', ']']).parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("'{host}' is not an IPv6 address"));
        }
        return Ok(p);
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    // `*.0.1` would match IPv4 addresses (URLs read numeric hosts as IPv4): names end in a
    // label that is not all digits.
    let numeric_tail = name.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if host.starts_with("*.") && numeric_tail {
        return Err(format!("'{host}': a wildcard applies to names, not IP addresses"));
    }
    if !labels_ok || name.contains('*') {
        return Err(format!(
            "'{host}' is not a host name (letters, digits, '-' and '.'; a wildcard only as a leading '*.')"
        ));
    }
    Ok(p)
}

/// `host[:port]`, with `[v6]` hosts.
fn split(p: &str) -> Option<(&str, Option<&str>)> {
    if p.starts_with('[') {
        let end = p.find(']')?;
        let (host, rest) = p.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => rest.strip_prefix(':').map(|port| (host, Some(port))),
        };
    }
    match p.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((p, None)),
    }
}

/// Whether `host` is a plain host name or IP address (what a broker setting may hold): no
/// spaces, ports, paths or user info that a resolver or client could read differently from the
/// destination check.
pub fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || normalize(host).is_ok_and(|p| !p.contains(':') && !p.starts_with("*.")))
}

/// Whether a send to `host` (a name or an IP address, IPv6 with or without brackets) on `port`
/// is allowed by `patterns` (an empty list allows everything).
pub fn destination_allowed(patterns: &[String], host: &str, port: u16) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let bracketed = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
    patterns.iter().any(|pattern| {
        let Some((want, want_port)) = split(pattern) else { return false };
        if want_port.is_some_and(|p| p.parse::<u16>().ok() != Some(port)) {
            return false;
        }
        match want.strip_prefix("*.") {
            Some(domain) => bracketed.len() > domain.len() + 1 && bracketed.ends_with(&format!(".{domain}")),
            None => bracketed == want,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(list: &[&str]) -> Result<Vec<String>, Vec<String>> {
        let mut problems = Vec::new();
        let out =
            validate_destinations(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &mut problems);
        if problems.is_empty() { Ok(out) } else { Err(problems.iter().map(ToString::to_string).collect()) }
    }

    #[test]
    fn patterns_are_checked_and_normalized() {
        assert_eq!(
            valid(&["API.example.com", "*.loriot.io", "127.0.0.1:9000", "[::1]:8443", "api.example.com"])
                .unwrap(),
            ["api.example.com", "*.loriot.io", "127.0.0.1:9000", "[::1]:8443"]
        );
        let errors =
            valid(&["", "a b", "x:0", "x:70000", "*.10.0.0.1", "a.*.com", "[zz]", "-a.com", "h:1:2"])
                .unwrap_err();
        assert_eq!(errors.len(), 9, "{errors:?}");
        assert!(errors[0].starts_with("allowedDestinations/0: must not be empty"), "{errors:?}");
        assert!(errors[2].contains("port '0' is not 1..65535"), "{errors:?}");
        let url = valid(&["https://user@API.example.com:8443/v1?x"]).unwrap_err();
        assert_eq!(
            url,
            [
                "allowedDestinations/0: 'https://user@API.example.com:8443/v1?x' is a URL: write the host (and port), \
              not a URL, e.g. 'api.example.com:8443'"
            ]
        );
    }

    #[test]
    fn a_send_is_matched_by_host_and_port() {
        let list: Vec<String> =
            ["api.example.com", "*.loriot.io", "127.0.0.1:9000", "[::1]:8443"].map(String::from).into();
        assert!(destination_allowed(&list, "api.example.com", 443));
        assert!(destination_allowed(&list, "API.Example.com.", 80));
        assert!(destination_allowed(&list, "eu1.loriot.io", 443));
        assert!(!destination_allowed(&list, "loriot.io", 443), "a wildcard needs a subdomain");
        assert!(!destination_allowed(&list, "evil-loriot.io", 443));
        assert!(destination_allowed(&list, "127.0.0.1", 9000));
        assert!(!destination_allowed(&list, "127.0.0.1", 9001));
        assert!(destination_allowed(&list, "::1", 8443));
        assert!(!destination_allowed(&list, "api.example.com.evil.com", 443));
        assert!(destination_allowed(&[], "anything", 1), "an empty list allows everything");
    }
}
