//! The EnOS sign: a plain SHA-256 over sorted `key+value` pairs plus the secret (not an HMAC,
//! whatever the method is called), lowercase hex.

use sha2::{Digest, Sha256};

pub fn sign(params: &[(&str, &str)], secret: &str) -> String {
    let mut p = params.to_vec();
    p.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (k, v) in p {
        h.update(k.as_bytes());
        h.update(v.as_bytes());
    }
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// The three CONNECT fields of a gateway in secure mode 2 (device secret).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectFields {
    pub client_id: String,
    pub username: String,
    pub password: String,
}

pub fn connect_fields(id: &crate::Identity, timestamp_ms: u64) -> ConnectFields {
    let ts = timestamp_ms.to_string();
    let client = &id.device_key;
    let password =
        sign(&[("clientId", client), ("deviceKey", &id.device_key), ("productKey", &id.product_key), ("timestamp", &ts)], &id.secret);
    ConnectFields {
        client_id: format!("{client}|securemode=2,signmethod=sha256,timestamp={ts}|"),
        username: format!("{}&{}", id.device_key, id.product_key),
        password,
    }
}

/// Parses a CONNECT client id back into (id, securemode, signmethod, timestamp): the cloud side.
pub fn parse_client_id(client_id: &str) -> Option<(String, String, String, String)> {
    let (id, rest) = client_id.split_once('|')?;
    let attrs = rest.strip_suffix('|')?;
    let mut mode = None;
    let mut method = None;
    let mut ts = None;
    for kv in attrs.split(',') {
        match kv.split_once('=')? {
            ("securemode", v) => mode = Some(v.to_string()),
            ("signmethod", v) => method = Some(v.to_string()),
            ("timestamp", v) => ts = Some(v.to_string()),
            _ => {}
        }
    }
    Some((id.to_string(), mode?, method?, ts?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worked_example_of_the_protocol_reference() {
        let id = crate::Identity { product_key: "pkGW".into(), device_key: "gw01".into(), secret: "secretXYZ".into() };
        let f = connect_fields(&id, 1700000000000);
        assert_eq!(f.password, "c14a7469f3ff7129db58fd6aca1f47e982bdb5615eb19b487ac215bafff69714");
        assert_eq!(f.client_id, "gw01|securemode=2,signmethod=sha256,timestamp=1700000000000|");
        assert_eq!(f.username, "gw01&pkGW");
        assert_eq!(parse_client_id(&f.client_id), Some(("gw01".into(), "2".into(), "sha256".into(), "1700000000000".into())));
    }
}
