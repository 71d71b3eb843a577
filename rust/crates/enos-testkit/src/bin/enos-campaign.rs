//! The kill -9 fault campaign (`scripts/campaign`): repeats kills of the uplink, the collector
//! and both at random moments against the real services and prints one table. Exits non-zero
//! when a value the uplink acknowledged was lost, order was broken, or the gateway stalled.

use clap::Parser;
use enos_testkit::campaign::{clock_seed, run, Plan};

#[derive(Parser)]
struct Args {
    /// Kill cycles (they rotate uplink, collector, both).
    #[arg(long, default_value_t = 200)]
    cycles: usize,
    /// Seed of the random kill moments; printed, so a run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// A kill comes at a random moment up to this long after the previous cycle's recovery.
    #[arg(long, default_value_t = 1000)]
    max_delay_ms: u64,
    /// Values served this long before a collector kill may be lost with its memory.
    #[arg(long, default_value_t = 500)]
    memory_window_ms: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = Args::parse();
    let plan = Plan {
        cycles: a.cycles,
        seed: a.seed.unwrap_or_else(clock_seed),
        max_delay_ms: a.max_delay_ms,
        memory_window_ms: a.memory_window_ms,
    };
    eprintln!("campaign: {} cycles, seed {}", plan.cycles, plan.seed);
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
