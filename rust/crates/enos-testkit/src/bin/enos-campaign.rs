//! The fault campaign (`scripts/fault-campaign`): repeats faults (kill -9 of the uplink, the
//! collector or both; broker and cloud outages of random length) at random moments against the
//! real services and prints one table. Exits non-zero when a value the uplink acknowledged was
//! lost, order was broken, a service crashed or the gateway stalled.

use clap::Parser;
use enos_testkit::campaign::{clock_seed, run, Fault, Plan};

#[derive(Parser)]
struct Args {
    /// Cycles; the kinds take turns.
    #[arg(long, default_value_t = 200)]
    cycles: usize,
    /// Start no cycle after this many minutes (the cycles run so far are counted).
    #[arg(long)]
    minutes: Option<f64>,
    /// Fault kinds, comma-separated: all, kills, outages, or kill-uplink, kill-collector,
    /// kill-both, broker-down, cloud-refuses, cloud-silent, link-drops, broker-restarts,
    /// disk-full (root: the cache goes on a tmpfs).
    #[arg(long, default_value = "all", value_parser = Fault::parse_list)]
    kinds: std::vec::Vec<Fault>,
    /// Seed of the random moments and lengths; printed, so a run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// A fault comes at a random moment up to this long after the previous cycle's recovery.
    #[arg(long, default_value_t = 1000)]
    max_delay_ms: u64,
    /// Values served this long before a collector kill may be lost with its memory.
    #[arg(long, default_value_t = 500)]
    memory_window_ms: u64,
    /// Shortest outage (ms).
    #[arg(long, default_value_t = 500)]
    min_outage_ms: u64,
    /// Longest outage (ms); lengths are drawn log-uniformly in between.
    #[arg(long, default_value_t = 60_000)]
    max_outage_ms: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = Args::parse();
    if a.min_outage_ms == 0 || a.max_outage_ms < a.min_outage_ms {
        eprintln!("--min-outage-ms must be at least 1 and not above --max-outage-ms");
        std::process::exit(2);
    }
    let plan = Plan {
        cycles: a.cycles,
        minutes: a.minutes,
        kinds: a.kinds,
        seed: a.seed.unwrap_or_else(clock_seed),
        max_delay_ms: a.max_delay_ms,
        memory_window_ms: a.memory_window_ms,
        outage_ms: a.min_outage_ms..a.max_outage_ms,
    };
    let names: Vec<&str> = plan.kinds.iter().map(|f| f.name()).collect();
    eprintln!("campaign: {} cycles of {}, seed {}", plan.cycles, names.join(", "), plan.seed);
    let rep = run(&plan, |n, f| {
        if n % 10 == 0 {
            eprintln!("  cycle {n} ({})", f.label());
        }
    })
    .await;
    println!("{}", rep.table());
    if !rep.passed() {
        eprintln!("FAILED: see the table above (seed {})", rep.seed);
        std::process::exit(1);
    }
}
