//! `enosctl package install/list/history`: the collector installs packages and keeps the
//! history (`docs/packages.md`).

use crate::bus::Bus;
use crate::PackageCmd;
use anyhow::Context;

pub async fn run(bus: &Bus, c: PackageCmd, json: bool) -> anyhow::Result<()> {
    let show = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let word = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    match c {
        PackageCmd::Install { file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("{}", file.display()))?;
            let out = bus.install_package(&bytes).await?;
            if json {
                println!("{}", show(&out));
            } else if out["ok"] == true {
                println!("package {} {} installed", word(&out, "name"), word(&out, "version"));
            } else {
                anyhow::bail!("package {} {}: {}", word(&out, "outcome"), word(&out, "version"), word(&out, "reason"));
            }
        }
        PackageCmd::List | PackageCmd::History => {
            let all = bus.packages().await?;
            let history = matches!(c, PackageCmd::History);
            if json {
                println!("{}", show(if history { &all["history"] } else { &all["installed"] }));
            } else if history {
                for h in all["history"].as_array().into_iter().flatten() {
                    let reason = word(h, "reason");
                    let reason = if reason.is_empty() { String::new() } else { format!(": {reason}") };
                    println!("{} {} {} by {}{reason}", word(h, "name"), word(h, "version"), word(h, "outcome"), word(h, "origin"));
                }
            } else if all["installed"].is_null() {
                println!("no package installed");
            } else {
                let i = &all["installed"];
                println!("{} {}", word(i, "name"), word(i, "version"));
                for item in i["items"].as_array().into_iter().flatten() {
                    println!("  {:<28} {}", word(item, "path"), word(item, "type"));
                }
            }
        }
    }
    Ok(())
}
