//! `enosctl opcua-certs list/trust/remove`: an OPC UA device's trust list of server
//! certificates, kept by the collector (`docs/protocols/opcua.md`).

use crate::bus::Bus;
use crate::OpcuaCertsCmd;
use enos_bus::OpcuaCertificate;

/// A Unix ms time as a UTC date, `2026-12-07`.
fn day(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn line(c: &OpcuaCertificate) -> String {
    let now = enos_batch::now_ms();
    let expired = if c.not_after_ms < now {
        " (expired)"
    } else if c.not_before_ms > now {
        " (not yet valid)"
    } else {
        ""
    };
    format!(
        "{:<9} {}\n          issuer {}\n          valid {} to {}{expired}\n          SHA-256 {}",
        c.state,
        c.subject,
        c.issuer,
        day(c.not_before_ms),
        day(c.not_after_ms),
        c.sha256
    )
}

pub async fn run(bus: &Bus, c: OpcuaCertsCmd, json: bool) -> anyhow::Result<()> {
    match c {
        OpcuaCertsCmd::List { device } => {
            let l = bus.opcua_certificates(&device).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&l)?);
            } else if l.certificates.is_empty() {
                println!("no server certificates in {} (trusted/ and rejected/ are empty)", l.pki_dir);
            } else {
                for c in &l.certificates {
                    println!("{}", line(c));
                }
            }
        }
        OpcuaCertsCmd::Trust { device, sha256 } => {
            let c = bus.trust_opcua_certificate(&device, &sha256).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!("trusted {} ({}): {device} accepts its server at the next connect attempt", c.subject, c.sha256);
            }
        }
        OpcuaCertsCmd::Remove { device, sha256 } => {
            let c = bus.remove_opcua_certificate(&device, &sha256).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!("removed {} ({}) from the {} certificates of {device}", c.subject, c.sha256, c.state);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_are_dates() {
        assert_eq!(super::day(0), "1970-01-01");
        assert_eq!(super::day(1_796_601_600_000), "2026-12-07");
        assert_eq!(super::day(951_782_400_000), "2000-02-29");
    }
}
