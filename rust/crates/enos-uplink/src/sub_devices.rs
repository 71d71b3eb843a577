//! The sub-devices: each collector device with a cloud identity, or one to register, and where it
//! stands. One home for "which EnOS keys does this device upload under, and may it now": the
//! sender packs with `key_map`, commands find their device with `device_of`, the status document
//! lists `status`. `registrar` changes states on the session; `local_devices` brings the
//! collector's configuration in.
//!
//! Identities the gateway registered are kept in `sub-devices.json` (0600, next to
//! `gateway.secret`, see docs/security.md) so a restart never registers a device again. A device
//! removed from the configuration is logged out and taken out of the topology; its identity stays
//! in the file (marked removed), so adding it back uses the same cloud device.

use crate::config::UplinkConfig;
use enos_cloud::subdevices::Registered;
use enos_cloud::telemetry::{KeyMap, Stream};
use enos_cloud::Identity;
use enos_model::device::SubDeviceStatus;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The first wait after the cloud refused a registration or login; doubled up to `RETRY_MAX`.
pub const RETRY_MIN: Duration = Duration::from_secs(5);
/// The first wait after a request got no usable reply (a lost reply is likely to come through
/// at once when asked again); doubled up to `RETRY_MAX` as well.
const RETRY_LOST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No identity yet: registration asked or to be asked.
    Registering,
    /// An identity, not logged in on the current session.
    Registered,
    LoggedIn,
    /// The cloud refused its registration or login (the reason says why); asked again later.
    Refused,
    /// The cloud disabled or deleted it (`combine.disable` / `combine.delete`).
    Disabled,
    Deleted,
    /// No longer configured: to be logged out and taken out of the topology.
    Removing,
}

impl State {
    fn word(self) -> &'static str {
        match self {
            State::Registering => "registering",
            State::Registered => "registered",
            State::LoggedIn => "logged-in",
            State::Refused => "refused",
            State::Disabled => "disabled",
            State::Deleted => "deleted",
            State::Removing => "removing",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sub {
    pub product_key: String,
    /// Keys named in `uplink.toml` (`[[sub_device]]`), not registered by the gateway.
    pub from_config: bool,
    pub identity: Option<Identity>,
    pub asset_id: Option<String>,
    pub state: State,
    pub reason: Option<String>,
    since_ms: u64,
    /// Failed registrations or logins in a row, and when to ask again.
    pub failures: u32,
    pub retry_at: Option<Instant>,
}

impl Sub {
    fn set(&mut self, state: State, reason: Option<String>) {
        if self.state != state || self.reason != reason {
            self.since_ms = enos_batch::now_ms();
        }
        self.state = state;
        self.reason = reason;
    }

    /// Its live records are kept back for now: its first login on this session is under way
    /// (live data needs it; `resume/batch` allows offline sub-devices). Once an attempt failed they
    /// are no longer kept back: its live samples go through resume, the others' live.
    fn waits(&self, stream: Stream) -> bool {
        self.state == State::Registered && stream == Stream::Live && self.failures == 0
    }

    /// No identity yet, but one is being asked for (or will be, after a refusal): its samples
    /// are parked in the cache until it has one, never dropped.
    fn parked(&self) -> bool {
        self.identity.is_none() && matches!(self.state, State::Registering | State::Refused)
    }

    /// Its samples go to the cloud on `stream`: live only when logged in; through resume
    /// (which allows offline sub-devices) whenever it has an identity the cloud has not
    /// disabled or deleted.
    fn uploads(&self, stream: Stream) -> bool {
        match (self.state, stream) {
            (State::LoggedIn, _) => true,
            (State::Disabled | State::Deleted, _) => false,
            (_, Stream::Resume) => self.identity.is_some(),
            (_, Stream::Live) => false,
        }
    }

    pub fn ready_to_ask(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|t| t <= now)
    }

    /// Another failed attempt: the next one waits longer.
    pub fn failed(&mut self, state: State, reason: String, now: Instant) -> Duration {
        let first = if state == State::Refused { RETRY_MIN } else { RETRY_LOST };
        let wait = first.saturating_mul(1 << self.failures.min(10)).min(RETRY_MAX);
        self.failures += 1;
        self.retry_at = Some(now + wait);
        self.set(state, Some(format!("{reason}; asking again in {} s", wait.as_secs())));
        wait
    }
}

/// Every sub-device by collector device id, and the identities file.
pub struct SubDevices {
    pub devices: BTreeMap<String, Sub>,
    store: Store,
    gateway: (String, String),
}

impl SubDevices {
    /// The sub-devices of `uplink.toml` (logged in on every session), and the identities the
    /// gateway registered earlier (`file`), which wait for the collector's configuration to say
    /// which devices exist.
    pub fn new(cfg: &UplinkConfig, file: PathBuf) -> SubDevices {
        let mut devices = BTreeMap::new();
        for (i, s) in cfg.sub_devices.iter().enumerate() {
            let mut sub = Sub {
                product_key: s.product_key.clone(),
                from_config: true,
                identity: None,
                asset_id: None,
                state: State::Registered,
                reason: None,
                since_ms: enos_batch::now_ms(),
                failures: 0,
                retry_at: None,
            };
            match s.secret(i) {
                Ok(secret) => {
                    sub.identity = Some(Identity { product_key: s.product_key.clone(), device_key: s.device_key.clone(), secret })
                }
                Err(e) => sub.set(State::Refused, Some(e.to_string())),
            }
            devices.insert(s.device.clone(), sub);
        }
        let store = Store::load(file);
        SubDevices { devices, store, gateway: (cfg.cloud.product_key.clone(), cfg.cloud.device_key.clone()) }
    }

    /// The uplink's own directory (the identities file's).
    pub fn dir(&self) -> PathBuf {
        self.store.file.parent().unwrap_or(Path::new(".")).to_path_buf()
    }

    /// The collector's configuration now: (device id, product key) of every device that names a
    /// product. Answers whether anything changed.
    pub fn configured(&mut self, wanted: &[(String, String)]) -> bool {
        let mut changed = false;
        for (id, pk) in wanted {
            if self.devices.get(id).is_some_and(|s| s.from_config || (&s.product_key == pk && s.state != State::Removing)) {
                continue;
            }
            // new, back after a removal, or moved to another product
            let known = self.store.devices.get(id).filter(|k| &k.product_key == pk);
            let identity =
                known.map(|k| Identity { product_key: k.product_key.clone(), device_key: k.device_key.clone(), secret: k.secret.clone() });
            let state = if identity.is_some() { State::Registered } else { State::Registering };
            let sub = Sub {
                product_key: pk.clone(),
                from_config: false,
                asset_id: known.and_then(|k| k.asset_id.clone()),
                identity,
                state,
                reason: None,
                since_ms: enos_batch::now_ms(),
                failures: 0,
                retry_at: None,
            };
            if let Some(old) = self.devices.insert(id.clone(), sub) {
                if old.identity.is_some() && old.product_key != *pk {
                    log::info!("device {id} moved from product {} to {pk}: it is registered anew", old.product_key);
                }
            }
            changed = true;
        }
        for (id, s) in self.devices.iter_mut() {
            if !s.from_config && s.state != State::Removing && !wanted.iter().any(|(w, _)| w == id) {
                log::info!("device {id} is no longer configured: logging it out of the cloud");
                s.set(State::Removing, None);
                s.retry_at = None;
                changed = true;
            }
        }
        // never registered, nothing to take back
        self.devices.retain(|_, s| !(s.state == State::Removing && s.identity.is_none()));
        changed
    }

    /// A registration the cloud answered: kept on disk first, so a restart never asks again.
    pub fn registered(&mut self, device: &str, r: Registered) -> std::io::Result<()> {
        self.store.devices.insert(
            device.to_string(),
            Known {
                product_key: r.product_key.clone(),
                device_key: r.device_key.clone(),
                secret: r.secret.clone(),
                asset_id: Some(r.asset_id.clone()).filter(|a| !a.is_empty()),
                registered_ms: enos_batch::now_ms(),
                removed_ms: None,
            },
        );
        self.store.save()?;
        if let Some(s) = self.devices.get_mut(device) {
            s.identity = Some(Identity { product_key: r.product_key, device_key: r.device_key, secret: r.secret });
            s.asset_id = Some(r.asset_id).filter(|a| !a.is_empty());
            s.failures = 0;
            s.retry_at = None;
            s.set(State::Registered, None);
        }
        Ok(())
    }

    pub fn set(&mut self, device: &str, state: State, reason: Option<String>) {
        if let Some(s) = self.devices.get_mut(device) {
            if state == State::LoggedIn {
                s.failures = 0;
                s.retry_at = None;
            }
            s.set(state, reason);
        }
    }

    /// Logged out and out of the topology: forgotten here, its identity kept on disk (marked).
    pub fn removed(&mut self, device: &str) {
        self.devices.remove(device);
        if let Some(k) = self.store.devices.get_mut(device) {
            k.removed_ms = Some(enos_batch::now_ms());
            if let Err(e) = self.store.save() {
                log::warn!("{}: {e}", self.store.file.display());
            }
        }
    }

    /// A new session: nobody is logged in on it yet; their login is asked at once (and their
    /// live data waits for it), apart from devices the cloud refused, which keep their backoff.
    pub fn session_started(&mut self) {
        for s in self.devices.values_mut() {
            if matches!(s.state, State::LoggedIn | State::Registered) {
                s.failures = 0;
                s.retry_at = None;
                s.set(State::Registered, None);
            }
        }
    }

    /// What the cloud did to one of them (`combine.enable/disable/delete`); `None`: not ours.
    pub fn cloud_action(&mut self, pk: &str, dk: &str, action: enos_cloud::subdevices::CloudAction) -> Option<String> {
        use enos_cloud::subdevices::CloudAction;
        let (id, s) =
            self.devices.iter_mut().find(|(_, s)| s.identity.as_ref().is_some_and(|i| i.product_key == pk && i.device_key == dk))?;
        let id = id.clone();
        match action {
            CloudAction::Enable => s.set(State::Registered, None),
            CloudAction::Disable => s.set(State::Disabled, Some("the cloud disabled this device; its data is not uploaded".into())),
            CloudAction::Delete => {
                s.set(State::Deleted, Some("the cloud deleted this device; its data is not uploaded".into()));
                // its keys are void: a later registration (restart, product change) makes a new one
                s.identity = None;
                if self.store.devices.remove(&id).is_some() {
                    if let Err(e) = self.store.save() {
                        log::warn!("{}: {e}", self.store.file.display());
                    }
                }
            }
        }
        Some(id)
    }

    /// The keys samples go under on `stream` (the gateway's own points: no keys).
    pub fn key_map(&self, stream: Stream) -> Routes {
        let mut m = HashMap::new();
        m.insert(crate::state::GATEWAY_DEVICE.to_string(), None);
        for (id, s) in &self.devices {
            if let (true, Some(i)) = (s.uploads(stream), &s.identity) {
                m.insert(id.clone(), Some((i.product_key.clone(), i.device_key.clone())));
            }
        }
        Routes(m)
    }

    /// Devices without an identity yet whose samples wait in the cache (`Sub::parked`).
    pub fn parked(&self) -> Vec<String> {
        self.devices.iter().filter(|(_, s)| s.parked()).map(|(id, _)| id.clone()).collect()
    }

    /// Devices that upload through resume only for now (an identity, not logged in).
    pub fn offline(&self) -> Vec<String> {
        self.devices.iter().filter(|(_, s)| s.uploads(Stream::Resume) && !s.uploads(Stream::Live)).map(|(id, _)| id.clone()).collect()
    }

    /// Devices whose samples are kept back on `stream` for now.
    pub fn waiting(&self, stream: Stream) -> Vec<String> {
        self.devices.iter().filter(|(_, s)| s.waits(stream)).map(|(id, _)| id.clone()).collect()
    }

    /// The collector device of EnOS keys (the gateway's own: `gateway`).
    pub fn device_of(&self, pk: &str, dk: &str) -> Option<String> {
        if (pk, dk) == (self.gateway.0.as_str(), self.gateway.1.as_str()) {
            return Some(crate::state::GATEWAY_DEVICE.to_string());
        }
        self.devices
            .iter()
            .find(|(_, s)| s.identity.as_ref().is_some_and(|i| i.product_key == pk && i.device_key == dk))
            .map(|(id, _)| id.clone())
    }

    /// The keys of a device (gateway: `Some(None)`), whatever its state.
    pub fn keys_of(&self, device: &str) -> Option<Option<(String, String)>> {
        if device == crate::state::GATEWAY_DEVICE {
            return Some(None);
        }
        let i = self.devices.get(device)?.identity.as_ref()?;
        Some(Some((i.product_key.clone(), i.device_key.clone())))
    }

    pub fn logged_in(&self) -> usize {
        self.devices.values().filter(|s| s.state == State::LoggedIn).count()
    }

    pub fn status(&self) -> Vec<SubDeviceStatus> {
        self.devices
            .iter()
            .map(|(id, s)| SubDeviceStatus {
                device: id.clone(),
                product_key: s.product_key.clone(),
                device_key: s.identity.as_ref().map(|i| i.device_key.clone()),
                asset_id: s.asset_id.clone(),
                source: if s.from_config { "config" } else { "registered" }.into(),
                state: s.state.word().into(),
                reason: s.reason.clone(),
                uploading: s.uploads(Stream::Resume),
                since_ms: s.since_ms,
            })
            .collect()
    }
}

/// A snapshot of the routes for one packing.
pub struct Routes(HashMap<String, Option<(String, String)>>);

impl KeyMap for Routes {
    fn keys(&self, device: &str) -> Option<Option<(&str, &str)>> {
        self.0.get(device).map(|k| k.as_ref().map(|(p, d)| (p.as_str(), d.as_str())))
    }
}

/// One identity the gateway registered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Known {
    product_key: String,
    device_key: String,
    secret: String,
    #[serde(default)]
    asset_id: Option<String>,
    registered_ms: u64,
    /// Taken out of the configuration (logged out, out of the topology) at this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    removed_ms: Option<u64>,
}

/// `sub-devices.json`: every identity the gateway registered, by collector device id.
struct Store {
    file: PathBuf,
    devices: BTreeMap<String, Known>,
}

impl Store {
    /// A missing file is an empty store; an unreadable one is said in the log and left untouched
    /// until the next registration replaces it (its devices would otherwise be registered twice
    /// without anyone noticing).
    fn load(file: PathBuf) -> Store {
        let devices = match std::fs::read(&file) {
            Ok(b) => match serde_json::from_slice::<StoreFile>(&b) {
                Ok(f) => f.devices,
                Err(e) => {
                    log::error!("{}: not a sub-device identity file ({e}); its devices will be registered again", file.display());
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                log::error!("{}: {e}; its devices will be registered again", file.display());
                BTreeMap::new()
            }
        };
        Store { file, devices }
    }

    /// Written like `gateway.secret`: atomically, readable by the uplink only.
    fn save(&self) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(&StoreFile { devices: self.devices.clone() }).map_err(std::io::Error::other)?;
        enos_runtime::fs::write_atomic(&self.file, &text, 0o600)
    }
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    devices: BTreeMap<String, Known>,
}

/// Where the identities live: next to the gateway's secret, in the uplink's own directory.
pub fn store_file(config_written: &Path) -> PathBuf {
    config_written.parent().unwrap_or(Path::new(".")).join("sub-devices.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> UplinkConfig {
        UplinkConfig::from_str_at(
            Path::new("u.toml"),
            "[cloud]\nuri = \"tcp://h:1\"\nallow_plain = true\nproduct_key = \"pk\"\ndevice_key = \"gw\"\ndevice_secret = \"s\"\n",
        )
        .unwrap()
    }

    #[test]
    fn a_registered_identity_survives_a_restart_and_a_removal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub-devices.json");
        let mut s = SubDevices::new(&cfg(), file.clone());
        assert!(s.configured(&[("inv".into(), "pkI".into())]));
        assert_eq!(s.parked(), vec!["inv".to_string()], "its samples wait for its registration");
        assert!(s.key_map(Stream::Live).keys("inv").is_none());
        let r = Registered { product_key: "pkI".into(), device_key: "gw_inv".into(), secret: "x".into(), asset_id: "a".into() };
        s.registered("inv", r).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        s.set("inv", State::LoggedIn, None);
        assert_eq!(s.key_map(Stream::Live).keys("inv"), Some(Some(("pkI", "gw_inv"))));
        assert_eq!(s.device_of("pkI", "gw_inv").as_deref(), Some("inv"));

        // a restart: known, not registered again
        let mut s = SubDevices::new(&cfg(), file.clone());
        s.configured(&[("inv".into(), "pkI".into())]);
        assert_eq!(s.devices["inv"].state, State::Registered);
        assert_eq!(s.devices["inv"].identity.as_ref().unwrap().secret, "x");
        // removed, then back: the same identity
        assert!(s.configured(&[]));
        assert_eq!(s.devices["inv"].state, State::Removing);
        s.removed("inv");
        assert!(s.devices.is_empty());
        s.configured(&[("inv".into(), "pkI".into())]);
        assert_eq!(s.devices["inv"].identity.as_ref().unwrap().device_key, "gw_inv");
        // another product: registered anew
        s.configured(&[("inv".into(), "pkOther".into())]);
        assert_eq!(s.devices["inv"].state, State::Registering);
    }

    #[test]
    fn a_refused_device_is_retried_later_and_holds_nobody_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SubDevices::new(&cfg(), dir.path().join("f.json"));
        s.configured(&[("inv".into(), "pkI".into())]);
        let now = Instant::now();
        let d = s.devices.get_mut("inv").unwrap();
        assert_eq!(d.failed(State::Refused, "code 1000".into(), now), RETRY_MIN);
        assert!(!d.ready_to_ask(now + Duration::from_secs(1)) && d.ready_to_ask(now + RETRY_MIN));
        assert_eq!(d.failed(State::Refused, "code 1000".into(), now), RETRY_MIN * 2);
        assert!(s.waiting(Stream::Live).is_empty() && s.waiting(Stream::Resume).is_empty());
        assert_eq!(s.parked(), vec!["inv".to_string()], "a refused device's samples wait for its registration, never lost");
        let st = &s.status()[0];
        assert_eq!((st.state.as_str(), st.uploading), ("refused", false));
        assert_eq!(st.reason.as_deref(), Some("code 1000; asking again in 10 s"));
        let d = s.devices.get_mut("inv").unwrap();
        d.failures = 0;
        assert_eq!(d.failed(State::Registering, "no reply".into(), now), RETRY_LOST, "a lost reply is asked again sooner");
    }
}
