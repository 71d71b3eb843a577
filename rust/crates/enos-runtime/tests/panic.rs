//! A panic in any task of a service ends the process (systemd then starts it again), even when
//! the panic happens while a lock is held and other tasks would otherwise keep running.
//!
//! The test runs this test binary again as the "service" (`ENOS_PANIC_PROBE=1`), so the real
//! `run_service` with its hook is what is checked.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn a_panic_in_a_task_ends_the_service() {
    if std::env::var_os("ENOS_PANIC_PROBE").is_some() {
        return probe();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_panic_in_a_task_ends_the_service", "--nocapture", "--test-threads=1"])
        .env("ENOS_PANIC_PROBE", "1")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "the process ends on the panic: {:?}\n{stderr}", out.status);
    assert!(stderr.contains("internal error, the service stops so that systemd starts it again"), "{stderr}");
    assert!(stderr.contains("probe: the bad thing"), "the panic's own message is logged: {stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("STILL RUNNING"), "nothing ran on after the panic");
}

/// The "service": one task panics while holding a lock the others need; without the hook the
/// other task would go on for ever (the panic would end only its own task).
fn probe() {
    enos_runtime::run_service("probe", || async {
        let shared = Arc::new(Mutex::new(0u32));
        let s = shared.clone();
        let bad = tokio::spawn(async move {
            let _held = s.lock().unwrap();
            panic!("probe: the bad thing");
        });
        let _ = bad.await;
        // Only reached when the panic did not end the process.
        for _ in 0..50 {
            println!("STILL RUNNING: lock poisoned = {}", shared.is_poisoned());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok::<(), std::io::Error>(())
    });
}
