//! enosctl: the gateway from a shell, over D-Bus.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use enos_bus::{CollectorProxy, DeviceStatus, OtaJob, OtaProxy, OtaStatus, PointReading, UplinkProxy, UplinkStatus, WriteOutcome};

#[derive(Parser)]
#[command(version, about = "EnOS Edge control: status, devices, points, cache")]
struct Args {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every service, the cloud session and the backlog.
    Status,
    /// Devices and their state.
    Devices,
    /// Read points from a device now (all points when none are named).
    Read { device: String, points: Vec<String> },
    /// Write a value (JSON: 12.5, true, "text") to a point.
    Write { device: String, point: String, value: String },
    /// Cache backlog and counters.
    Cache,
    /// Whole-system updates.
    #[command(subcommand)]
    Ota(OtaCmd),
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
    if let Err(e) = run().await {
        eprintln!("enosctl: {e:#}");
        std::process::exit(1);
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

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let conn = enos_bus::connect().await.context("connecting to the bus (is dbus running? ENOS_BUS_ADDRESS?)")?;
    match args.cmd {
        Cmd::Status | Cmd::Cache => {
            let up = UplinkProxy::new(&conn).await?;
            let col = CollectorProxy::new(&conn).await?;
            let u = up.status().await.map(|j| serde_json::from_str::<UplinkStatus>(&j));
            let c = col.stats().await.map(|j| serde_json::from_str::<enos_bus::CollectorStats>(&j));
            if args.json {
                let v = serde_json::json!({
                    "uplink": u.as_ref().ok().and_then(|r| r.as_ref().ok()),
                    "collector": c.as_ref().ok().and_then(|r| r.as_ref().ok()),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            match u {
                Ok(Ok(u)) => {
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
                }
                Ok(Err(e)) => println!("uplink      answered garbage: {e}"),
                Err(e) => println!("uplink      not reachable: {e}"),
            }
            match c {
                Ok(Ok(c)) => {
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
                Ok(Err(e)) => println!("collector   answered garbage: {e}"),
                Err(e) => println!("collector   not reachable: {e}"),
            }
        }
        Cmd::Devices => {
            let devs: Vec<DeviceStatus> = serde_json::from_str(&CollectorProxy::new(&conn).await?.list_devices().await?)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&devs)?);
                return Ok(());
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
            let r: Vec<PointReading> = serde_json::from_str(&CollectorProxy::new(&conn).await?.read_points(&device, &refs).await?)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
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
        Cmd::Ota(c) => {
            let p = OtaProxy::new(&conn).await?;
            match c {
                OtaCmd::Status => {
                    let st: OtaStatus = serde_json::from_str(&p.status().await.context("update agent (enos-ota) not reachable")?)?;
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
                    let id = p.install_file(&abs.to_string_lossy()).await?;
                    println!("job {id} started; follow it with `enosctl ota status`");
                }
                OtaCmd::History => {
                    let h: Vec<OtaJob> = serde_json::from_str(&p.history().await?)?;
                    if args.json {
                        println!("{}", serde_json::to_string_pretty(&h)?);
                    } else {
                        for j in h {
                            println!("{} {} {} → {} {}: {} {:?}", j.id, j.source, j.from_version, j.version, j.state, j.desc, j.timings_ms);
                        }
                    }
                }
                OtaCmd::Rollback => println!("{}", p.rollback().await?),
            }
        }
        Cmd::Write { device, point, value } => {
            // Accept bare words as strings for convenience: `enosctl write d p on` → "on".
            let json = if serde_json::from_str::<serde_json::Value>(&value).is_ok() { value } else { serde_json::to_string(&value)? };
            let out: WriteOutcome = serde_json::from_str(&CollectorProxy::new(&conn).await?.write_point(&device, &point, &json).await?)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{}", out.message);
            }
            if !out.ok {
                bail!("write refused ({:?})", out.failure);
            }
        }
    }
    Ok(())
}
