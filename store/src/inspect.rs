//! What a FILE value is, read at upload: the first certificate of a PEM bundle (subject, issuer,
//! serial number, validity, SHA-256 fingerprint, how many certificates the bundle holds) and a
//! private key's algorithm and whether it is encrypted. Never any key material, only metadata.

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use x509_parser::pem::Pem;

/// The first certificate of a PEM value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateInfo {
    /// The subject's distinguished name (`CN=device-7, O=Acme`).
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The serial number in hex, colon-separated.
    pub serial_number: String,
    /// Valid from (milliseconds since the epoch).
    pub not_before: i64,
    /// Valid until (milliseconds since the epoch): the secret's expiry unless `expiresAt` says
    /// otherwise.
    pub not_after: i64,
    /// SHA-256 of the certificate's DER bytes, hex (what `openssl x509 -fingerprint -sha256` shows).
    pub sha256_fingerprint: String,
    /// How many certificates the value holds (a chain or a CA bundle: more than one).
    pub certificates: usize,
}

/// A private key in a PEM value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKeyInfo {
    /// `RSA`, `EC`, `Ed25519`, `X25519`, or the algorithm's OID; `unknown` when encrypted.
    pub algorithm: String,
    /// Whether a password protects it.
    pub encrypted: bool,
}

/// The certificate and key metadata of a FILE value (`None` for what is not PEM of that kind).
pub(crate) fn inspect(value: &[u8]) -> (Option<CertificateInfo>, Option<PrivateKeyInfo>) {
    let (mut certificate, mut key, mut count) = (None, None, 0);
    for pem in Pem::iter_from_buffer(value).map_while(Result::ok) {
        match pem.label.as_str() {
            "CERTIFICATE" => {
                count += 1;
                if certificate.is_none() {
                    certificate = certificate_info(&pem);
                }
            }
            label if label.ends_with("PRIVATE KEY") && key.is_none() => {
                key = Some(key_info(label, &pem, value))
            }
            _ => {}
        }
    }
    // A traditional encrypted key has headers the PEM reader refuses: its label still tells.
    if key.is_none() {
        key = legacy_key_label(value)
            .map(|label| key_info(&label, &Pem { label: label.clone(), contents: Vec::new() }, value));
    }
    (certificate.map(|c| CertificateInfo { certificates: count, ..c }), key)
}

/// The label of the first `-----BEGIN … PRIVATE KEY-----` line.
fn legacy_key_label(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    text.lines().find_map(|line| {
        let label = line.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----")?;
        label.ends_with("PRIVATE KEY").then(|| label.to_owned())
    })
}

fn certificate_info(pem: &Pem) -> Option<CertificateInfo> {
    let cert = pem.parse_x509().ok()?;
    let validity = cert.validity();
    let digest = sha2::Sha256::digest(&pem.contents);
    Some(CertificateInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial_number: cert.raw_serial_as_string(),
        not_before: validity.not_before.timestamp().saturating_mul(1000),
        not_after: validity.not_after.timestamp().saturating_mul(1000),
        sha256_fingerprint: hex::encode(digest),
        certificates: 1,
    })
}

fn key_info(label: &str, pem: &Pem, whole: &[u8]) -> PrivateKeyInfo {
    // A traditional (PKCS#1 / SEC 1) key says in a header that it is encrypted.
    let legacy_encrypted = whole.windows(17).any(|w| w == b"Proc-Type: 4,ENCR");
    let (algorithm, encrypted) = match label {
        "RSA PRIVATE KEY" => ("RSA".to_owned(), legacy_encrypted),
        "EC PRIVATE KEY" => ("EC".to_owned(), legacy_encrypted),
        "ENCRYPTED PRIVATE KEY" => ("unknown".to_owned(), true),
        "PRIVATE KEY" => (pkcs8_algorithm(&pem.contents).unwrap_or_else(|| "unknown".to_owned()), false),
        other => (other.trim_end_matches(" PRIVATE KEY").to_owned(), legacy_encrypted),
    };
    PrivateKeyInfo { algorithm, encrypted }
}

/// The algorithm of a PKCS#8 `PrivateKeyInfo` (SEQUENCE { version, AlgorithmIdentifier, key }).
fn pkcs8_algorithm(der: &[u8]) -> Option<String> {
    let (_, parsed) = x509_parser::der_parser::parse_der(der).ok()?;
    let items = parsed.as_sequence().ok()?;
    let oid = items.get(1)?.as_sequence().ok()?.first()?.as_oid().ok()?.to_id_string();
    Some(
        match oid.as_str() {
            "1.2.840.113549.1.1.1" => "RSA",
            "1.2.840.10045.2.1" => "EC",
            "1.3.101.112" => "Ed25519",
            "1.3.101.113" => "Ed448",
            "1.3.101.110" => "X25519",
            _ => return Some(oid),
        }
        .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_say_their_kind_and_whether_a_password_protects_them() {
        let block = |label: &str, headers: &str| {
            format!("-----BEGIN {label}-----\n{headers}MAMCAQA=\n-----END {label}-----\n").into_bytes()
        };
        let (cert, key) = inspect(&block("ENCRYPTED PRIVATE KEY", ""));
        assert_eq!(
            (cert, key),
            (None, Some(PrivateKeyInfo { algorithm: "unknown".into(), encrypted: true }))
        );
        let legacy = block("RSA PRIVATE KEY", "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\n");
        assert_eq!(inspect(&legacy).1, Some(PrivateKeyInfo { algorithm: "RSA".into(), encrypted: true }));
        assert_eq!(
            inspect(&block("EC PRIVATE KEY", "")).1,
            Some(PrivateKeyInfo { algorithm: "EC".into(), encrypted: false })
        );
        // Not PEM, or a certificate block that does not parse: nothing described.
        assert_eq!(inspect(b"just some bytes"), (None, None));
        assert_eq!(inspect(&block("CERTIFICATE", "")), (None, None));
    }
}
