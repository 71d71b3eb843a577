//! `web.toml`: where the Configuration Center listens, how it does TLS, where it keeps accounts,
//! and the sign-in policy. Loaded and validated like every other service config
//! (`enos_config`): errors name the file, the key and the reason.

use enos_config::{parse_toml, read_file, ConfigError, Finding};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WebConfig {
    /// `ip:port` to listen on. The image sets the address the technician reaches (e.g.
    /// `0.0.0.0:443`); the default is for development on one machine.
    #[serde(default = "d_listen")]
    pub listen: String,
    /// Serve plain HTTP instead of HTTPS. Allowed only on a loopback address (the kiosk browser
    /// on the box itself), because the session cookie would otherwise cross the network in clear.
    #[serde(default)]
    pub plain_http: bool,
    /// A second listener, plain HTTP on a loopback address, for the kiosk browser on the box
    /// itself (e.g. `127.0.0.1:8080`) next to HTTPS for the network.
    #[serde(default)]
    pub kiosk_listen: Option<String>,
    /// Accounts, the generated TLS certificate and other state that must survive updates.
    #[serde(default = "d_state_dir")]
    pub state_dir: PathBuf,
    /// Where uploaded update bundles are stored for enos-ota to read (default `<state_dir>/upload`;
    /// the image uses `/data/enos/upload`, readable by the OTA agent).
    #[serde(default)]
    pub upload_dir: Option<PathBuf>,
    /// Answer `GET /metrics` without a session (for a local Prometheus scraper).
    #[serde(default)]
    pub metrics_public: bool,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct TlsConfig {
    /// PEM certificate chain and private key. When both are absent a self-signed certificate is
    /// generated on first start into `<state_dir>/tls/`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Extra names (DNS names or IP addresses) for the generated certificate, besides
    /// `localhost`, `127.0.0.1` and the host name.
    #[serde(default)]
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct AuthConfig {
    /// A session unused for this long ends.
    pub session_idle_minutes: u64,
    /// A session ends this long after sign-in, used or not.
    pub session_max_hours: u64,
    /// Failed sign-ins (per account and per client address) before the lockout.
    pub max_failed_signins: u32,
    /// How long a lockout lasts.
    pub lockout_s: u64,
    /// Shortest password accepted when one is set.
    pub min_password_len: usize,
    /// Per-device provisioning: a file holding the first admin password (one line). Used once,
    /// when no account exists yet; then the web center tries to delete it.
    pub provisioning_file: Option<PathBuf>,
    /// Per-device provisioning: a file holding this box's one-time setup code (as printed on its
    /// label), needed to claim the box over the network. Without it the web center makes a code
    /// on the first start (`<state_dir>/setup-code`, and in its log).
    pub setup_code_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_idle_minutes: 30,
            session_max_hours: 12,
            max_failed_signins: 5,
            lockout_s: 300,
            min_password_len: 10,
            provisioning_file: None,
            setup_code_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct LimitsConfig {
    /// Largest request body of the JSON API.
    pub max_body_bytes: usize,
    /// Connections served at once on `listen` (the network); more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Connections served at once on `kiosk_listen`, apart from the network's: however busy the
    /// network listener is kept, the screen on the box still gets in.
    pub kiosk_connections: usize,
    /// An upload stops (and its part is removed) when the data partition would keep less than
    /// this free: a bundle never fills the partition the cache and the services need.
    pub min_free_bytes: u64,
    /// Time for a D-Bus call to the services (device reads and writes get the device's own
    /// timeout on top, up to `device_timeout_s`).
    pub bus_timeout_s: u64,
    pub device_timeout_s: u64,
    /// Largest update bundle accepted by `POST /api/update/upload` (streamed to the data partition).
    pub max_upload_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 64 * 1024,
            max_connections: 64,
            kiosk_connections: 8,
            min_free_bytes: 64 << 20,
            bus_timeout_s: 5,
            device_timeout_s: 30,
            max_upload_bytes: 1 << 30,
        }
    }
}

fn d_listen() -> String {
    "127.0.0.1:8443".into()
}
fn d_state_dir() -> PathBuf {
    "/data/enos/web".into()
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: d_listen(),
            plain_http: false,
            kiosk_listen: None,
            state_dir: d_state_dir(),
            upload_dir: None,
            metrics_public: false,
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

impl WebConfig {
    pub fn load(file: &Path) -> Result<WebConfig, ConfigError> {
        let text = read_file(file)?;
        Self::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<WebConfig, ConfigError> {
        let cfg: WebConfig = parse_toml(file, text)?;
        cfg.validate().map_err(|e| e.in_file(file))?;
        Ok(cfg)
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated")
    }

    pub fn kiosk_addr(&self) -> Option<SocketAddr> {
        self.kiosk_listen.as_ref().map(|k| k.parse().expect("validated"))
    }

    pub fn validate(&self) -> Result<(), Finding> {
        let addr: SocketAddr =
            self.listen.parse().map_err(|_| Finding::new("listen", format!("{:?} is not ip:port (e.g. 0.0.0.0:443)", self.listen)))?;
        if self.plain_http && !addr.ip().is_loopback() {
            return Err(Finding::new(
                "plain_http",
                format!("plain HTTP is only allowed on a loopback address (the kiosk on the box itself), not on {addr}"),
            ));
        }
        if let Some(k) = &self.kiosk_listen {
            let kaddr: SocketAddr =
                k.parse().map_err(|_| Finding::new("kiosk_listen", format!("{k:?} is not ip:port (e.g. 127.0.0.1:8080)")))?;
            if !kaddr.ip().is_loopback() {
                return Err(Finding::new(
                    "kiosk_listen",
                    format!("the kiosk listener serves plain HTTP, so only on a loopback address, not on {kaddr}"),
                ));
            }
            if kaddr.port() == addr.port() && (kaddr.ip() == addr.ip() || addr.ip().is_unspecified()) {
                return Err(Finding::new("kiosk_listen", format!("{kaddr} is already `listen`")));
            }
        }
        if self.state_dir.as_os_str().is_empty() || self.state_dir.is_relative() {
            return Err(Finding::new("state_dir", "must be an absolute path"));
        }
        if self.upload_dir.as_ref().is_some_and(|d| d.is_relative()) {
            return Err(Finding::new("upload_dir", "must be an absolute path"));
        }
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => return Err(Finding::new("tls.key_file", "missing: cert_file and key_file go together")),
            (None, Some(_)) => return Err(Finding::new("tls.cert_file", "missing: cert_file and key_file go together")),
            _ => {}
        }
        for (i, h) in self.tls.hostnames.iter().enumerate() {
            let ok = !h.is_empty() && h.len() <= 253 && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
            if !ok {
                return Err(Finding::new(format!("tls.hostnames[{i}]"), format!("{h:?} is not a host name or IP address")));
            }
        }
        let a = &self.auth;
        if a.session_idle_minutes == 0 {
            return Err(Finding::new("auth.session_idle_minutes", "must be at least 1"));
        }
        if a.session_max_hours == 0 {
            return Err(Finding::new("auth.session_max_hours", "must be at least 1"));
        }
        if a.max_failed_signins == 0 {
            return Err(Finding::new("auth.max_failed_signins", "must be at least 1"));
        }
        if a.min_password_len < 8 {
            return Err(Finding::new("auth.min_password_len", "must be at least 8"));
        }
        let l = &self.limits;
        if !(1024..=16 << 20).contains(&l.max_body_bytes) {
            return Err(Finding::new("limits.max_body_bytes", "must be between 1024 and 16777216"));
        }
        if !(1 << 20..=16 << 30).contains(&l.max_upload_bytes) {
            return Err(Finding::new("limits.max_upload_bytes", "must be between 1 MiB and 16 GiB"));
        }
        if l.max_connections == 0 {
            return Err(Finding::new("limits.max_connections", "must be at least 1"));
        }
        if l.kiosk_connections == 0 {
            return Err(Finding::new("limits.kiosk_connections", "must be at least 1"));
        }
        if l.bus_timeout_s == 0 || l.device_timeout_s == 0 {
            return Err(Finding::new(
                if l.bus_timeout_s == 0 { "limits.bus_timeout_s" } else { "limits.device_timeout_s" },
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, String> {
        WebConfig::parse(Path::new("/etc/enos/web.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, WebConfig::default());
        assert_eq!(c.listen_addr().to_string(), "127.0.0.1:8443");
        assert!(!c.plain_http);
    }

    #[test]
    fn full_file() {
        let c = parse(
            r#"
listen = "0.0.0.0:443"
state_dir = "/data/enos/web"
[tls]
cert_file = "/etc/enos/web.pem"
key_file = "/etc/enos/web.key"
hostnames = ["gw-17.plant.local", "10.0.0.5"]
[auth]
max_failed_signins = 3
lockout_s = 60
provisioning_file = "/boot/enos-admin-password"
[limits]
max_body_bytes = 8192
"#,
        )
        .unwrap();
        assert_eq!(c.auth.max_failed_signins, 3);
        assert_eq!(c.auth.session_idle_minutes, 30);
        assert_eq!(c.limits.max_body_bytes, 8192);
        assert_eq!(c.tls.hostnames.len(), 2);
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let e = parse("listen = \"nowhere\"").unwrap_err();
        assert!(e.starts_with("/etc/enos/web.toml: listen: "), "{e}");
        assert!(e.contains("not ip:port"), "{e}");

        let e = parse("listen = \"0.0.0.0:80\"\nplain_http = true").unwrap_err();
        assert!(e.contains("plain_http: plain HTTP is only allowed on a loopback address"), "{e}");
        assert!(parse("listen = \"127.0.0.1:8080\"\nplain_http = true").is_ok());

        let e = parse("listen = \"0.0.0.0:443\"\nkiosk_listen = \"0.0.0.0:8080\"").unwrap_err();
        assert!(e.contains("kiosk_listen: the kiosk listener serves plain HTTP, so only on a loopback address"), "{e}");
        let e = parse("listen = \"0.0.0.0:443\"\nkiosk_listen = \"127.0.0.1:443\"").unwrap_err();
        assert!(e.contains("kiosk_listen: 127.0.0.1:443 is already `listen`"), "{e}");
        assert_eq!(parse("listen = \"0.0.0.0:443\"\nkiosk_listen = \"127.0.0.1:8080\"").unwrap().kiosk_addr().unwrap().port(), 8080);

        let e = parse("[tls]\ncert_file = \"/a.pem\"").unwrap_err();
        assert!(e.contains("tls.key_file: missing"), "{e}");

        let e = parse("[auth]\nmin_password_len = 4").unwrap_err();
        assert!(e.contains("auth.min_password_len: must be at least 8"), "{e}");

        let e = parse("state_dir = \"relative\"").unwrap_err();
        assert!(e.contains("state_dir: must be an absolute path"), "{e}");

        let e = parse("[tls]\nhostnames = [\"a b\"]").unwrap_err();
        assert!(e.contains("tls.hostnames[0]"), "{e}");

        // a misspelt (or newer release's) key is a warning naming it, not a refusal (rollbacks)
        let file = std::path::Path::new("/etc/enos/web.toml");
        let (_, unknown) = enos_config::parse_toml_unknown::<WebConfig>(file, "lisen = \"127.0.0.1:1\"").unwrap();
        assert_eq!(unknown, ["lisen"]);
    }
}
