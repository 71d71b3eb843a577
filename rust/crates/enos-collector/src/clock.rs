//! The gateway's clock as the collector stamps with it: looked at every second
//! (`enos_runtime::clock`); while it is not set, the pusher marks every value it takes
//! (`Flags::CLOCK_UNSET`), so the value is kept whatever its age and the cloud knows its time is
//! a guess. Changes are logged once each way.

use enos_runtime::clock::{Clock, Trust};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Looks at the clock now (so the first values are marked right) and then every second.
pub fn watch(floor_file: PathBuf) -> Arc<AtomicBool> {
    let mut clock = Clock::from_env(Some(floor_file));
    let unset = Arc::new(AtomicBool::new(false));
    let mut was = None;
    look(&mut clock, &unset, &mut was);
    let flag = unset.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            look(&mut clock, &flag, &mut was);
        }
    });
    unset
}

fn look(clock: &mut Clock, unset: &AtomicBool, was: &mut Option<Trust>) {
    let t = clock.check(enos_batch::now_ms());
    let changed = match was {
        Some(w) => std::mem::discriminant(w) != std::mem::discriminant(&t),
        None => true,
    };
    if changed {
        match t {
            Trust::Unset(why) => {
                log::warn!("the clock is not set ({why}): every value is marked \"gateway clock unset\" and kept whatever its age")
            }
            Trust::Synced if was.is_some() => log::info!("the clock is synchronised: values are stamped as usual again"),
            Trust::Believed if was.is_some() => log::info!("the battery-backed clock is believed: values are stamped as usual again"),
            _ => {}
        }
    }
    unset.store(matches!(t, Trust::Unset(_)), Relaxed);
    *was = Some(t);
}
