//! Settings of one connection to one controlled station, with the standard's defaults.

use std::path::PathBuf;
use std::time::Duration;

/// Mutual TLS per IEC 62351-3: our certificate and key, and the CA that signed the station's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The name the station's certificate must carry; the address's host when empty.
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `host:port` of the station, then optionally its redundant second address.
    pub addresses: Vec<String>,
    /// Common addresses to interrogate after every (re)connect and on the schedules.
    pub common_addresses: Vec<u16>,
    /// Our originator address in every ASDU we send.
    pub originator: u8,
    /// Most I frames we send before the station acknowledges them.
    pub k: u16,
    /// We acknowledge at the latest after this many received I frames.
    pub w: u16,
    /// Connection establishment (TCP, and the TLS handshake).
    pub t0: Duration,
    /// A sent frame (I frame, or a U act) not acknowledged within t1 closes the link.
    pub t1: Duration,
    /// Received I frames are acknowledged within t2 when there is nothing to send.
    pub t2: Duration,
    /// After t3 without any frame from the station we send TESTFR act.
    pub t3: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Scheduled general interrogation, counter interrogation, clock sync; zero = off.
    pub interrogation_interval: Duration,
    pub counter_interval: Duration,
    pub clock_sync_interval: Duration,
    /// Each step of a command (select, execute, termination) waits this long.
    pub command_timeout: Duration,
    /// Wait for ACTTERM after the execute is confirmed. Off by default: the standard leaves a
    /// command's termination to the station's application, and many (lib60870/c104 based
    /// ones among them) never send it for single, double and set-point commands.
    pub await_termination: bool,
    /// The station's clock offset from UTC in minutes (CP56Time2a carries no zone).
    pub station_utc_offset_minutes: i32,
    pub tls: Option<TlsSettings>,
    /// Capacity of the event channel; when full, the link stops reading (TCP backpressure).
    pub event_capacity: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            addresses: Vec::new(),
            common_addresses: vec![1],
            originator: 0,
            k: 12,
            w: 8,
            t0: Duration::from_secs(30),
            t1: Duration::from_secs(15),
            t2: Duration::from_secs(10),
            t3: Duration::from_secs(20),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            interrogation_interval: Duration::ZERO,
            counter_interval: Duration::ZERO,
            clock_sync_interval: Duration::ZERO,
            command_timeout: Duration::from_secs(5),
            await_termination: false,
            station_utc_offset_minutes: 0,
            tls: None,
            event_capacity: 4096,
        }
    }
}

/// A duration as people write it: "15 s", "500 ms".
pub(crate) fn words(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A setting that cannot work, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("no station address is configured")]
    NoAddress,
    #[error("at most two addresses (the station and its redundant one) are supported, {0} are configured")]
    TooManyAddresses(usize),
    #[error("k must be 1..=32767, not {0}")]
    K(u16),
    #[error("w must be 1..=k ({k}), not {w}")]
    W { w: u16, k: u16 },
    #[error("t2 ({}) must be shorter than t1 ({}) or the station gives up before we acknowledge", words(*.t2), words(*.t1))]
    T2NotBelowT1 { t1: Duration, t2: Duration },
    #[error("{0} must not be zero")]
    Zero(&'static str),
    #[error("reconnect_min ({}) is above reconnect_max ({})", words(*.min), words(*.max))]
    Backoff { min: Duration, max: Duration },
}

impl Settings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        match self.addresses.len() {
            0 => return Err(SettingsError::NoAddress),
            1 | 2 => {}
            n => return Err(SettingsError::TooManyAddresses(n)),
        }
        if !(1..=32767).contains(&self.k) {
            return Err(SettingsError::K(self.k));
        }
        if self.w == 0 || self.w > self.k {
            return Err(SettingsError::W { w: self.w, k: self.k });
        }
        for (name, d) in [("t0", self.t0), ("t1", self.t1), ("t2", self.t2), ("t3", self.t3), ("command_timeout", self.command_timeout)] {
            if d.is_zero() {
                return Err(SettingsError::Zero(name));
            }
        }
        if self.t2 >= self.t1 {
            return Err(SettingsError::T2NotBelowT1 { t1: self.t1, t2: self.t2 });
        }
        if self.reconnect_min > self.reconnect_max {
            return Err(SettingsError::Backoff { min: self.reconnect_min, max: self.reconnect_max });
        }
        if self.event_capacity == 0 {
            return Err(SettingsError::Zero("event_capacity"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_standards_and_bad_values_are_named() {
        let s = Settings { addresses: vec!["127.0.0.1:2404".into()], ..Settings::default() };
        assert_eq!((s.k, s.w, s.t0.as_secs(), s.t1.as_secs(), s.t2.as_secs(), s.t3.as_secs()), (12, 8, 30, 15, 10, 20));
        s.validate().unwrap();
        assert_eq!(Settings::default().validate().unwrap_err().to_string(), "no station address is configured");
        let bad = Settings { w: 13, ..s.clone() };
        assert_eq!(bad.validate().unwrap_err().to_string(), "w must be 1..=k (12), not 13");
        let bad = Settings { t2: Duration::from_secs(15), ..s };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "t2 (15 s) must be shorter than t1 (15 s) or the station gives up before we acknowledge"
        );
    }
}
