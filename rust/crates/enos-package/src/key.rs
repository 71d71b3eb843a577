//! ed25519 keys. The public key is PEM (SubjectPublicKeyInfo), as
//! `openssl pkey -pubout` writes it; the private key PKCS#8 PEM as `openssl genpkey -algorithm
//! ed25519` writes it, so an OEM can sign with openssl alone.

use base64::Engine;

/// The DER prefix of an ed25519 SubjectPublicKeyInfo; the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

fn pem_body(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).ok_or_else(|| format!("no \"{begin}\" block"))? + begin.len();
    let stop = pem[start..].find(&end).ok_or_else(|| format!("no \"{end}\" line"))? + start;
    let b64: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("the {label} is not base64: {e}"))
}

/// The 32 bytes of an ed25519 public key in PEM.
pub fn public_from_pem(pem: &str) -> Result<[u8; 32], String> {
    let der = pem_body(pem, "PUBLIC KEY")?;
    if der.len() != 44 || der[..12] != SPKI_PREFIX {
        return Err("not an ed25519 public key (expected openssl's PEM of an ed25519 key)".into());
    }
    Ok(der[12..].try_into().expect("32 bytes"))
}

pub fn public_to_pem(key: &[u8; 32]) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(key);
    pem("PUBLIC KEY", &der)
}

/// The PKCS#8 DER of an ed25519 private key in PEM.
pub fn private_from_pem(pem: &str) -> Result<ring::signature::Ed25519KeyPair, String> {
    let der = pem_body(pem, "PRIVATE KEY")?;
    ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| format!("not an ed25519 private key: {e}"))
}

/// A new key pair: (private PKCS#8 PEM, public PEM). For tests and `enos-package keygen`.
pub fn generate() -> (String, String) {
    use ring::signature::KeyPair;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("ed25519 key generation");
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("generated key");
    let public: [u8; 32] = pair.public_key().as_ref().try_into().expect("32 bytes");
    (pem("PRIVATE KEY", pkcs8.as_ref()), public_to_pem(&public))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_read_back() {
        use ring::signature::KeyPair;
        let (private, public) = generate();
        let pair = private_from_pem(&private).unwrap();
        assert_eq!(pair.public_key().as_ref(), public_from_pem(&public).unwrap());
        assert!(public_from_pem("nonsense").unwrap_err().contains("BEGIN PUBLIC KEY"));
    }
}
