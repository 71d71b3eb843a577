//! The short profile of the kill -9 campaign (`scripts/campaign` runs the long one): 21 kills
//! of the uplink, the collector and both at random moments, with the real services.

use enos_testkit::campaign::{clock_seed, run, Fault, Plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_campaign_short_profile_loses_nothing_acknowledged() {
    // ENOS_CAMPAIGN_SEED replays a failing run's kill moments.
    let seed = std::env::var("ENOS_CAMPAIGN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(clock_seed);
    let plan = Plan { cycles: 21, seed, max_delay_ms: 1000, memory_window_ms: 500 };
    let rep = run(&plan, |_, _| {}).await;
    let table = rep.table();
    eprintln!("{table}");
    assert!(rep.stalled.is_none(), "{table}");
    assert_eq!(rep.cycles(), 21, "{table}");
    assert!(Fault::ALL.iter().all(|f| rep.kinds.iter().any(|k| k.0 == *f && k.1.cycles == 7)), "{table}");
    assert!(rep.lost_after_ack.is_empty(), "acknowledged values lost: {table}");
    assert!(rep.out_of_order.is_empty(), "order broken: {table}");
    // Something was measured: most of what was served arrived.
    assert!(rep.served > 100 && rep.reached * 10 >= rep.served * 9, "{table}");
    // Re-deliveries come from what was in flight at a kill (64 messages of one or two polls).
    assert!(rep.max_duplicates <= 128, "{table}");
}
