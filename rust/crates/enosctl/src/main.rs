//! enosctl: the gateway from a shell, over D-Bus.

mod bus;
mod check;
mod cloud;
mod comm;
mod model;
mod opcua;
mod package;

use anyhow::{bail, Context};
use bus::Bus;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "EnOS Edge control: check, status, devices, points, cache, updates")]
struct Args {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// What is wrong with this box and what to do: the bus, each service, the cloud session,
    /// devices, disk, clock, cache, update slots. Exit status: 0 all good, 1 a warning, 2 an error.
    Check,
    /// Every service, the cloud session and the backlog.
    Status,
    /// Devices and their state.
    Devices,
    /// Each sub-device's cloud identity and state: registered, logged in, refused and why.
    Cloud,
    /// Read points from a device now (all points when none are named).
    Read { device: String, points: Vec<String> },
    /// Write a value (JSON: 12.5, -5, true, "text") to a point.
    Write {
        device: String,
        point: String,
        /// A negative number needs no `--` before it.
        #[arg(allow_negative_numbers = true)]
        value: String,
    },
    /// Cache backlog and counters.
    Cache,
    /// A sub-device's device model (TSL) from the cloud.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Whole-system updates.
    #[command(subcommand)]
    Ota(OtaCmd),
    /// The device's communication test now: Modbus registers, an IEC 104 interrogation, DL/T 645
    /// identifiers, a DNP3 poll, an OPC UA browse. REQUEST is its JSON (e.g. '{"poll": "events"}'
    /// for DNP3, '{"identifiers": ["02010100"]}' for DL/T 645, '{"node": "ns=2;s=Plant"}' for
    /// OPC UA); without it the protocol's plain test.
    /// Exit status 1 when the test failed.
    CommTest { device: String, request: Option<String> },
    /// Protocol plugins (docs/plugins.md).
    #[command(subcommand)]
    Plugin(PluginCmd),
    /// Resource packages (configuration, point tables, device models, certificates).
    #[command(subcommand)]
    Package(PackageCmd),
    /// An OPC UA device's server certificates: the trusted ones and those refused at a connect.
    #[command(subcommand)]
    OpcuaCerts(OpcuaCertsCmd),
}

#[derive(Subcommand)]
pub enum OpcuaCertsCmd {
    /// Every server certificate of the device's trust list: state, subject, validity, SHA-256.
    List { device: String },
    /// Trust a rejected certificate (named by its SHA-256 thumbprint, as `list` shows it): the
    /// device's next connect attempt accepts its server, no restart needed.
    Trust { device: String, sha256: String },
    /// Remove a certificate from either list: a trusted server is refused again at its next connect.
    Remove { device: String, sha256: String },
}

#[derive(Subcommand)]
enum PluginCmd {
    /// Checks a packed plugin directory (plugin.toml and its component) and installs it into the
    /// plugins directory, replacing an installed version; devices using it load it at their
    /// driver's next start.
    Install { dir: std::path::PathBuf },
}

#[derive(Subcommand)]
pub enum PackageCmd {
    /// Install a signed package file that is on this box (waits until installed, refused or
    /// rolled back).
    Install { file: std::path::PathBuf },
    /// The installed package and its items.
    List,
    /// Past installs: installed, refused, rolled back, interrupted, and why.
    History,
}

#[derive(Subcommand)]
enum ModelCmd {
    /// The model's version and where the device's configured points disagree with it.
    Check {
        device: String,
        /// Ask the cloud for the model now (else the one kept on this box).
        #[arg(long)]
        fetch: bool,
    },
    /// A point table (CSV for the device's protocol) with a row per measure point of the model.
    Skeleton { device: String },
}

#[derive(Subcommand)]
enum OtaCmd {
    /// The running version and slot, and the job in progress.
    Status,
    /// Install a signed bundle (.swu) that is on this box.
    Install { file: std::path::PathBuf },
    /// Past jobs.
    History,
    /// Boot the other slot.
    Rollback,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `enosctl ... | head` ends quietly, as other tools do
    // SAFETY: restores the default disposition of SIGPIPE before any output.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run().await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("enosctl: {e:#}");
            std::process::exit(1);
        }
    }
}

fn ts(ms: u64) -> String {
    let now = enos_batch::now_ms();
    if ms == 0 {
        "-".into()
    } else if now >= ms {
        format!("{:.1} s ago", (now - ms) as f64 / 1000.0)
    } else {
        format!("in {:.1} s", (ms - now) as f64 / 1000.0)
    }
}

/// A job's phases and how long each took: " (download 12.3 s, install 41.0 s)".
fn timings(t: &std::collections::BTreeMap<String, u64>) -> String {
    if t.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = t.iter().map(|(phase, ms)| format!("{phase} {:.1} s", *ms as f64 / 1000.0)).collect();
    format!(" ({})", parts.join(", "))
}

/// The exit status: 0, or what `check` found.
async fn run() -> anyhow::Result<i32> {
    let args = Args::parse();
    if let Cmd::Check = args.cmd {
        let facts = check::gather(Bus::connect().await).await;
        let findings = check::judge(&facts);
        let worst = check::worst(&findings);
        if args.json {
            let doc = serde_json::json!({ "status": worst, "exit": worst.exit_code(), "checks": findings });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            print!("{}", check::render(&findings));
        }
        return Ok(worst.exit_code());
    }
    if let Cmd::Plugin(PluginCmd::Install { dir }) = &args.cmd {
        let into = enos_plugin_host::plugins_dir();
        let m = enos_plugin_host::install(dir, &into).map_err(anyhow::Error::msg)?;
        println!("installed plugin {} {} (protocols {}) in {}", m.name, m.version, m.protocols.join(", "), into.join(&m.name).display());
        return Ok(0);
    }
    let bus = Bus::connect().await?;
    match args.cmd {
        Cmd::Check | Cmd::Plugin(_) => unreachable!("answered above"),
        Cmd::Status | Cmd::Cache => {
            let (u, c) = tokio::join!(bus.uplink_status(), bus.collector_stats());
            if args.json {
                let v = serde_json::json!({
                    "uplink": u.as_ref().ok(),
                    "collector": c.as_ref().ok(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            match u {
                Ok(u) => {
                    let cl = &u.cloud;
                    println!("uplink      running");
                    println!(
                        "cloud       {} ({}) since {}{}",
                        cl.state,
                        cl.uri,
                        ts(cl.since_ms),
                        cl.last_error.as_ref().map(|e| format!(" — {e}")).unwrap_or_default()
                    );
                    let ca = &u.cache;
                    println!(
                        "backlog     {} points, {} records, {} bytes of {} (oldest {})",
                        ca.points,
                        ca.records,
                        ca.bytes,
                        ca.max_bytes,
                        ca.oldest_ts_ms.map(ts).unwrap_or_else(|| "-".into())
                    );
                    println!(
                        "capacity    {} at {:.0} points/s ({:.0} bytes/s)",
                        ca.outage_hours_capacity
                            .map(|h| format!("{h:.1} hours of outage"))
                            .unwrap_or_else(|| "unknown (no data yet)".into()),
                        ca.ingest_points_per_s,
                        ca.ingest_bytes_per_s
                    );
                    println!(
                        "dropped     {} points (cache full/too old), {} dead-letter records",
                        ca.dropped_points, ca.dead_letter_records
                    );
                    let s = &u.sender;
                    println!(
                        "sent        {} messages, {} acked ({} points: {} live, {} resume), {} timeouts, {} refused, {} in flight",
                        s.messages_sent,
                        s.messages_acked,
                        s.points_acked,
                        s.points_acked_live,
                        s.points_acked_resume,
                        s.timeouts,
                        s.rejected,
                        s.in_flight
                    );
                    println!("sub-devices {}", cloud::summary(&u.sub_devices));
                }
                Err(e) => println!("uplink      {e}"),
            }
            match c {
                Ok(c) => {
                    println!("collector   {}: {}/{} devices online", c.state, c.devices_online, c.devices);
                    println!(
                        "collected   {} samples, pushed {} in {} batches, {} buffered (limit {}), {} shed",
                        c.samples_collected,
                        c.samples_pushed,
                        c.batches_pushed,
                        c.samples_buffered,
                        c.buffer_max_samples,
                        c.samples_dropped
                    );
                }
                Err(e) => println!("collector   {e}"),
            }
        }
        Cmd::Model(ModelCmd::Check { device, fetch }) => {
            let v = bus.device_model(&device, fetch).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", model::render(&v));
            }
            return Ok(if v["findings"].as_array().is_some_and(|f| !f.is_empty()) { 1 } else { 0 });
        }
        Cmd::Model(ModelCmd::Skeleton { device }) => {
            let v = bus.device_model(&device, false).await?;
            let protocol = bus.devices().await?.into_iter().find(|d| d.id == device).map(|d| d.protocol);
            let protocol = protocol.ok_or_else(|| anyhow::anyhow!("the collector has no device {device}"))?;
            print!("{}", model::skeleton(&protocol, &v).map_err(anyhow::Error::msg)?);
        }
        Cmd::Cloud => {
            let u = bus.uplink_status().await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&u.sub_devices)?);
            } else {
                print!("{}", cloud::render(&u.sub_devices));
            }
        }
        Cmd::Devices => {
            let devs = bus.devices().await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&devs)?);
                return Ok(0);
            }
            println!("{:<20} {:<16} {:<10} {:>7} {:>8} {:>8}  last error", "DEVICE", "PROTOCOL", "STATE", "POINTS", "POLLS", "FAILED");
            for d in devs {
                println!(
                    "{:<20} {:<16} {:<10} {:>7} {:>8} {:>8}  {}",
                    d.id,
                    d.protocol,
                    d.state,
                    d.points,
                    d.polls_ok,
                    d.polls_failed,
                    d.last_error.unwrap_or_default()
                );
                for t in d.split_reads {
                    println!("{:<20} split: {t}", "");
                }
            }
        }
        Cmd::Read { device, points } => {
            let refs: Vec<&str> = points.iter().map(String::as_str).collect();
            let r = bus.read_points(&device, &refs).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(0);
            }
            for p in r {
                println!(
                    "{:<24} {:<16} {}{}",
                    p.point,
                    p.value.to_string(),
                    p.quality,
                    p.error.map(|e| format!("  {e}")).unwrap_or_default()
                );
            }
        }
        Cmd::CommTest { device, request } => {
            let devices = bus.devices().await?;
            let Some(d) = devices.iter().find(|d| d.id == device) else { bail!("there is no device \"{device}\"") };
            let kind = enos_collector_config::Protocol::ALL
                .into_iter()
                .find(|p| p.name() == d.protocol)
                .and_then(enos_model::comm_test::kind_of)
                .with_context(|| format!("devices of protocol {} have no communication test yet", d.protocol))?;
            let a = bus.comm_test(&device, &comm::request(kind.name(), request.as_deref())?).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&a)?);
            } else {
                print!("{}", comm::render(&a));
            }
            return Ok(if a.ok() { 0 } else { 1 });
        }
        Cmd::Ota(c) => match c {
            OtaCmd::Status => {
                let st = bus.ota_status().await?;
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&st)?);
                } else {
                    println!("version     {} (slot {})", st.version, st.booted_slot);
                    println!("state       {}", st.state);
                    if let Some(j) = st.job {
                        println!("job         {} → {} ({}), step {}: {}", j.id, j.version, j.source, j.step, j.desc);
                    }
                }
            }
            OtaCmd::Install { file } => {
                let abs = std::fs::canonicalize(&file).with_context(|| format!("{}", file.display()))?;
                let id = bus.install_file(&abs.to_string_lossy()).await?;
                println!("job {id} started; follow it with `enosctl ota status`");
            }
            OtaCmd::History => {
                let h = bus.ota_history().await?;
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&h)?);
                } else {
                    for j in h {
                        println!(
                            "{} {} {} → {} {}: {}{}",
                            j.id,
                            j.source,
                            j.from_version,
                            j.version,
                            j.state,
                            j.desc,
                            timings(&j.timings_ms)
                        );
                    }
                }
            }
            OtaCmd::Rollback => println!("{}", bus.rollback().await?),
        },
        Cmd::Package(c) => package::run(&bus, c, args.json).await?,
        Cmd::OpcuaCerts(c) => opcua::run(&bus, c, args.json).await?,
        Cmd::Write { device, point, value } => {
            // Accept bare words as strings for convenience: `enosctl write d p on` → "on".
            let json = if serde_json::from_str::<serde_json::Value>(&value).is_ok() { value } else { serde_json::to_string(&value)? };
            let out = bus.write_point(&device, &point, &json).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else if out.ok {
                println!("{}", out.message);
            }
            if !out.ok {
                bail!("{}", out.text());
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn job_timings_in_words() {
        let t = [("download".to_string(), 12_340), ("install".to_string(), 41_000)].into_iter().collect();
        assert_eq!(super::timings(&t), " (download 12.3 s, install 41.0 s)");
        assert_eq!(super::timings(&Default::default()), "");
    }
}
