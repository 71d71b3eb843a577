//! The mode C messages and the data block's parser (no I/O: testable on the host).

pub const ACK: u8 = 0x06;
pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;

pub struct Settings {
    pub endpoint: String,
    pub meter_address: String,
    pub timeout_ms: u32,
}

impl Settings {
    /// The settings JSON the host checked against the schema; read by hand to keep the component
    /// small (no JSON library): flat string and integer values only.
    pub fn from_json(text: &str) -> Result<Settings, String> {
        let mut s = Settings { endpoint: "line".into(), meter_address: String::new(), timeout_ms: 3000 };
        for (k, v) in flat_json(text)? {
            match k.as_str() {
                "endpoint" => s.endpoint = v,
                "meter_address" => s.meter_address = v,
                "timeout_ms" => s.timeout_ms = v.parse().map_err(|_| format!("timeout_ms: \"{v}\" is not a number"))?,
                _ => return Err(format!("unknown setting \"{k}\"")),
            }
        }
        Ok(s)
    }
}

/// Key/value pairs of a flat JSON object of strings and numbers.
fn flat_json(text: &str) -> Result<Vec<(String, String)>, String> {
    let body = text.trim().strip_prefix('{').and_then(|t| t.strip_suffix('}')).ok_or("the settings are not a JSON object")?;
    let mut out = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (k, r) = json_string(rest).ok_or("a setting's name is not a string")?;
        let r = r.trim_start().strip_prefix(':').ok_or("a setting without a value")?.trim_start();
        let (v, r) = if r.starts_with('"') {
            json_string(r).ok_or("a setting's text is not closed")?
        } else {
            let end = r.find(',').unwrap_or(r.len());
            (r[..end].trim().to_string(), &r[end..])
        };
        out.push((k, v));
        rest = r.trim_start().strip_prefix(',').unwrap_or(r).trim_start();
    }
    Ok(out)
}

fn json_string(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('"')?;
    let end = s.find('"')?;
    Some((s[..end].to_string(), &s[end + 1..]))
}

pub fn sign_on(address: &str) -> Vec<u8> {
    format!("/?{address}!\r\n").into_bytes()
}

/// `ACK 0 Z 0 CR LF`: normal protocol, the meter's baud character, data readout.
pub fn ack_readout(baud: u8) -> Vec<u8> {
    vec![ACK, b'0', baud, b'0', b'\r', b'\n']
}

pub struct Identification {
    pub manufacturer: String,
    pub baud: u8,
    pub id: String,
}

/// `/XXXZ<identification>CR LF`.
pub fn parse_identification(b: &[u8]) -> Result<Identification, String> {
    let t = std::str::from_utf8(b).map_err(|_| "the identification is not text".to_string())?;
    let t = t.trim_end_matches(['\r', '\n']);
    let body = t.strip_prefix('/').ok_or_else(|| format!("the identification \"{}\" does not start with /", t.escape_debug()))?;
    if body.len() < 5 || !body.is_char_boundary(4) {
        return Err(format!("the identification \"{}\" is too short", t.escape_debug()));
    }
    let baud = body.as_bytes()[3];
    if !baud.is_ascii_digit() || baud > b'6' {
        return Err(format!("the identification \"{}\" names no mode C baud rate (0-6)", t.escape_debug()));
    }
    Ok(Identification { manufacturer: body[..3].into(), baud, id: body[4..].into() })
}

/// The data block is complete when its ETX and the BCC after it have arrived.
pub fn block_complete(b: &[u8]) -> bool {
    b.iter().position(|&c| c == ETX).is_some_and(|i| b.len() > i + 1)
}

#[derive(Debug)]
pub struct Line {
    pub obis: String,
    pub value: String,
    pub unit: String,
}

/// `STX data ! CR LF ETX BCC`, the BCC the XOR of every byte after STX up to ETX.
pub fn parse_block(b: &[u8]) -> Result<Vec<Line>, String> {
    let start = b.iter().position(|&c| c == STX).ok_or("the data block has no STX")?;
    let end = b.iter().position(|&c| c == ETX).ok_or("the data block has no ETX")?;
    let bcc = *b.get(end + 1).ok_or("the data block has no BCC")?;
    let want = b[start + 1..=end].iter().fold(0u8, |a, c| a ^ c);
    if bcc != want {
        return Err(format!("the data block's check character is {bcc:#04x}, its bytes give {want:#04x}"));
    }
    let text = std::str::from_utf8(&b[start + 1..end]).map_err(|_| "the data block is not text".to_string())?;
    let mut lines = Vec::new();
    for raw in text.split("\r\n") {
        let raw = raw.trim();
        if raw.is_empty() || raw == "!" {
            continue;
        }
        // `1.8.0(001234.567*kWh)`; a line may carry several values, the first is the reading.
        let open = raw.find('(').ok_or_else(|| format!("data line \"{raw}\" has no ( value )"))?;
        let close = raw[open..].find(')').ok_or_else(|| format!("data line \"{raw}\" is not closed with )"))? + open;
        let inner = &raw[open + 1..close];
        let (value, unit) = inner.split_once('*').unwrap_or((inner, ""));
        lines.push(Line { obis: raw[..open].to_string(), value: value.to_string(), unit: unit.to_string() });
    }
    Ok(lines)
}

/// `C.D.E` with an optional `A-B:` medium/channel and `*F`, digits (or C letters such as `C.1.0`).
pub fn check_obis(code: &str) -> Result<(), String> {
    let core = short_obis(code);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric())) {
        return Err(format!("\"{code}\" is not an OBIS code (e.g. 1.8.0 or 1-0:1.8.0*255)"));
    }
    Ok(())
}

/// The `C.D.E` part a meter's readout uses.
fn short_obis(code: &str) -> &str {
    let c = code.rsplit_once(':').map_or(code, |(_, r)| r);
    c.split_once('*').map_or(c, |(l, _)| l)
}

pub fn same_obis(a: &str, b: &str) -> bool {
    short_obis(a) == short_obis(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(text: &str) -> Vec<u8> {
        let mut b = vec![STX];
        b.extend(text.as_bytes());
        b.push(ETX);
        let bcc = b[1..].iter().fold(0, |a, c| a ^ c);
        b.push(bcc);
        b
    }

    #[test]
    fn reads_a_data_block_and_checks_its_bcc() {
        let b = block("0.0.0(12345678)\r\n1.8.0(001234.567*kWh)\r\n!\r\n");
        let l = parse_block(&b).unwrap();
        assert_eq!((l[1].obis.as_str(), l[1].value.as_str(), l[1].unit.as_str()), ("1.8.0", "001234.567", "kWh"));
        let mut bad = b.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(parse_block(&bad).unwrap_err().contains("check character"));
    }

    #[test]
    fn settings_and_identification() {
        let s = Settings::from_json(r#"{"endpoint":"opt","timeout_ms":500}"#).unwrap();
        assert_eq!((s.endpoint.as_str(), s.timeout_ms), ("opt", 500));
        let i = parse_identification(b"/ISK5MT174-0001\r\n").unwrap();
        assert_eq!((i.manufacturer.as_str(), i.baud, i.id.as_str()), ("ISK", b'5', "MT174-0001"));
        assert!(same_obis("1-0:1.8.0*255", "1.8.0"));
        assert!(check_obis("1.8").is_ok() && check_obis("kWh").is_err());
    }
}
