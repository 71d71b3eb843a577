//! What every EnOS Edge service does the same way: logging, readiness and watchdog, files
//! replaced atomically, the box's own figures.

pub mod clock;
pub mod fs;
pub mod sys;

use std::time::Duration;

/// A service's `main`: the allocator set-up below and logging before any thread exists, a tokio runtime with
/// two workers (the boards have 1-4 cores; the services are I/O bound), then `run` to its end;
/// an error is logged and the process exits 1 (systemd restarts it per its unit).
pub fn run_service<F, E>(service: &'static str, run: impl FnOnce() -> F)
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Debug + std::fmt::Display,
{
    limit_malloc_arenas();
    init_logging(service);
    end_on_panic(service);
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return exit_on_error(service, Err(format!("starting the async runtime: {e}"))),
    };
    let r = rt.block_on(run());
    exit_on_error(service, r);
}

/// A panic anywhere ends the whole process, so that systemd starts it again from a clean state.
/// Left alone, a panic ends only its task or thread: the process would live on half-dead (a
/// poisoned `std::sync::Mutex`, a lost worker) while the watchdog task keeps pinging systemd.
fn end_on_panic(service: &'static str) {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("internal error, the service stops so that systemd starts it again: {info}");
        log::logger().flush();
        print(info);
        eprintln!("{service}: stopping after an internal error");
        std::process::abort();
    }));
}

/// glibc gives every thread that allocates its own malloc arena (up to 8 per core), and memory
/// freed in one arena is not reused by another: with tokio's workers, RocksDB's and paho's threads
/// that grew the uplink's RSS from 33 to 47 MiB at 100k points/s (`scripts/bench`). Two arenas
/// cost no measurable throughput here. An explicit `MALLOC_ARENA_MAX` in the environment wins.
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; `run_service` calls it before any
        // other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Whether the log goes to the journal (else to stderr).
static TO_JOURNAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Logs to the journal when systemd connected us to it, else to stderr (tests, development,
/// CI machines without a journal socket). Level from `ENOS_LOG` (`info` by default), changed at
/// run time by [`set_log_level`]; it applies to the EnOS crates only, libraries stay at `info` at
/// most (paho's and zbus's debug output would drown ours).
fn init_logging(service: &'static str) {
    let level = std::env::var("ENOS_LOG").ok().and_then(|l| l.parse::<log::LevelFilter>().ok()).unwrap_or(log::LevelFilter::Info);
    OUR_LEVEL.store(level as usize, std::sync::atomic::Ordering::Relaxed);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(logger) = systemd_journal_logger::JournalLog::new() {
            if log::set_boxed_logger(Box::new(OursAt { inner: logger.with_syslog_identifier(service.to_string()) })).is_ok() {
                log::set_max_level(level);
                TO_JOURNAL.store(true, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        }
    }
    // env_logger passes everything; OursAt filters, so the level can change.
    let logger = env_logger::Builder::new()
        .filter_level(log::LevelFilter::Trace)
        .format_target(false)
        .format(move |buf, rec| {
            use std::io::Write;
            writeln!(buf, "{} {service} {}: {}", buf.timestamp_millis(), rec.level(), rec.args())
        })
        .build();
    if log::set_boxed_logger(Box::new(OursAt { inner: logger })).is_ok() {
        log::set_max_level(level);
    }
}

/// The level of our crates (a `log::LevelFilter` as a number).
static OUR_LEVEL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(log::LevelFilter::Info as usize);

/// The level of the service's own log lines now.
pub fn log_level() -> log::LevelFilter {
    let n = OUR_LEVEL.load(std::sync::atomic::Ordering::Relaxed);
    log::LevelFilter::iter().find(|l| *l as usize == n).unwrap_or(log::LevelFilter::Info)
}

/// Changes the level of the service's own log lines until it stops (`ENOS_LOG` at the next
/// start); libraries stay at `info` at most. Returns the level before.
pub fn set_log_level(level: log::LevelFilter) -> log::LevelFilter {
    let old = log_level();
    OUR_LEVEL.store(level as usize, std::sync::atomic::Ordering::Relaxed);
    log::set_max_level(level);
    old
}

/// A service's `SetLogLevel` on the bus (each service's own method, the same rules): `level` a
/// word (`error`, `warn`, `info`, `debug`, `trace`, any case), else refused in words and nothing
/// changes; a change is audited with `who` asked. Answers the level before, in words.
pub fn set_log_level_by(level: &str, who: impl std::fmt::Display) -> Result<String, String> {
    let new = match level.trim().to_ascii_lowercase().as_str() {
        l @ ("error" | "warn" | "info" | "debug" | "trace") => l.parse::<log::LevelFilter>().expect("a level name"),
        _ => return Err(format!("\"{level}\" is not a log level (error, warn, info, debug, trace)")),
    };
    let old = set_log_level(new);
    let said = |l: log::LevelFilter| l.to_string().to_ascii_lowercase();
    if old != new {
        log::warn!("AUDIT the log level set by {who}: {} -> {}", said(old), said(new));
    }
    Ok(said(old))
}

/// A logger with the run-time level for our crates (`enos_*`, `enosctl`) and at most `info` for
/// libraries.
struct OursAt<L> {
    inner: L,
}

impl<L: log::Log> log::Log for OursAt<L> {
    fn enabled(&self, m: &log::Metadata) -> bool {
        let ours = log_level();
        m.level() <= if m.target().starts_with("enos") { ours } else { ours.min(log::LevelFilter::Info) }
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            self.inner.log(r);
        }
    }
    fn flush(&self) {
        self.inner.flush();
    }
}

/// Tells systemd the service is ready and starts the watchdog pings when a watchdog is set.
/// The pings come from the async runtime, so a wedged runtime stops them and systemd restarts us.
pub fn notify_ready() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        let period = Duration::from_micros(usec / 2);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
}

pub fn notify_stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The end of every service's `main`: say the error with its causes once, in the journal when
/// the log goes there (systemd's status shows it), else on stderr (`--check`, a terminal), and
/// exit non-zero.
pub fn exit_on_error<E: std::fmt::Debug + std::fmt::Display>(service: &str, r: Result<(), E>) {
    if let Err(e) = r {
        if TO_JOURNAL.load(std::sync::atomic::Ordering::Relaxed) {
            log::error!("{e:#}");
            log::logger().flush();
        } else {
            eprintln!("{service}: {e:#}");
        }
        std::process::exit(1);
    }
}
