//! `enosctl opcua-certs list/trust/remove`: an OPC UA device's trust list of server
//! certificates, kept by the collector (`docs/protocols/opcua.md`).

use crate::bus::Bus;
use crate::OpcuaCertsCmd;
use enos_bus::OpcuaCertificate;

/// A Unix ms time as a UTC date, `2026-12-07`.
fn day(ms: u64) -> String {
    let (y, m, d) = enos_batch::calendar::civil_from_days((ms / 86_400_000) as i64);
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
