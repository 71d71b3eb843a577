//! What the web center holds while it runs: configuration, accounts, sessions, the sign-in
//! limiter, the services on the bus, counters. Shared by every request (`Arc<App>`).

use crate::accounts::Accounts;
use crate::auth::{Limiter, Sessions};
use crate::bus::Services;
use crate::config::WebConfig;
use crate::setup_code::SetupCode;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub signins_ok: AtomicU64,
    pub signins_failed: AtomicU64,
    pub lockouts: AtomicU64,
    pub csrf_refused: AtomicU64,
    pub writes: AtomicU64,
    pub writes_failed: AtomicU64,
}

pub struct App {
    pub cfg: WebConfig,
    pub accounts: tokio::sync::Mutex<Accounts>,
    pub sessions: Mutex<Sessions>,
    pub limiter: Mutex<Limiter>,
    /// Argon2 runs at most this many at once (each takes ~19 MiB and a core for a moment).
    pub hashing: tokio::sync::Semaphore,
    /// The other services, systemd and logind, over D-Bus.
    pub bus: Services,
    /// `/proc/stat` totals at the previous `GET /api/system` (CPU use in between).
    pub cpu_last: Mutex<Option<(u64, u64)>>,
    pub counters: Counters,
    pub started: Instant,
    /// Names the box answers to besides IP addresses (lower case): `localhost`, its host name
    /// (and `<name>.local`), `tls.hostnames`. Other `Host` headers are refused: that stops DNS
    /// rebinding, where a page of another site reaches the box under that site's name.
    pub host_names: Vec<String>,
    /// Device changes are read-modify-write of the collector's configuration: one at a time.
    pub config_edit: tokio::sync::Mutex<()>,
    /// While the box is unclaimed: the code a setup over the network must carry.
    pub setup_code: Mutex<Option<SetupCode>>,
    /// Of the HTTPS certificate, shown on the sign-in page (the kiosk) to compare with the browser's.
    pub tls_fingerprint: Option<String>,
}

impl App {
    pub async fn new(
        cfg: WebConfig,
        accounts: Accounts,
        setup_code: Option<SetupCode>,
        tls_fingerprint: Option<String>,
        bus: &zbus::Connection,
    ) -> anyhow::Result<App> {
        let l = &cfg.limits;
        let services = Services::new(bus, Duration::from_secs(l.bus_timeout_s), Duration::from_secs(l.device_timeout_s)).await?;
        let a = &cfg.auth;
        let mut host_names = vec!["localhost".to_string()];
        if let Some(h) = crate::tls::host_name() {
            host_names.push(format!("{h}.local"));
            host_names.push(h);
        }
        host_names.extend(cfg.tls.hostnames.iter().filter(|h| h.parse::<IpAddr>().is_err()).cloned());
        host_names.iter_mut().for_each(|h| h.make_ascii_lowercase());
        Ok(App {
            host_names,
            sessions: Mutex::new(Sessions::new(
                Duration::from_secs(a.session_idle_minutes * 60),
                Duration::from_secs(a.session_max_hours * 3600),
            )),
            limiter: Mutex::new(Limiter::new(a.max_failed_signins, Duration::from_secs(a.lockout_s))),
            hashing: tokio::sync::Semaphore::new(2),
            accounts: tokio::sync::Mutex::new(accounts),
            bus: services,
            cpu_last: Mutex::new(None),
            counters: Counters::default(),
            config_edit: tokio::sync::Mutex::new(()),
            setup_code: Mutex::new(setup_code),
            tls_fingerprint,
            started: Instant::now(),
            cfg,
        })
    }

    /// Whether the `Host` header names this box: an IP address, or one of `host_names`.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return false };
        let name = if let Some(rest) = host.strip_prefix('[') {
            return rest.split_once(']').is_some_and(|(ip, port)| {
                ip.parse::<std::net::Ipv6Addr>().is_ok()
                    && (port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok()))
            });
        } else {
            match host.rsplit_once(':') {
                Some((n, port)) if port.parse::<u16>().is_ok() => n,
                Some(_) => return false,
                None => host,
            }
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        name.parse::<std::net::Ipv4Addr>().is_ok() || self.host_names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    pub fn body_limit(&self) -> usize {
        self.cfg.limits.max_body_bytes
    }
}

/// The connection a request came on, put into its extensions by the router.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// Over TLS: the session cookie gets `Secure` and the `__Host-` prefix.
    pub tls: bool,
    /// On a listener only the box itself reaches (the kiosk, or plain HTTP on loopback): the
    /// person is at the box, so claiming it needs no setup code and sign-in failures of the
    /// network never lock them out.
    pub local: bool,
}
