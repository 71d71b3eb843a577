//! Misbehaves the way the device's `how` setting says, at the first poll (or at init for
//! `snoop`): `trap` panics (`trap-once` only at the first poll it ever runs), `spin` loops forever, `hog` allocates without bound, `snoop` opens an
//! endpoint its device does not name; `count` behaves and emits a counter; `silent` (or any
//! other word: the settings of another plugin's device) answers its polls and emits nothing,
//! a new version that produces no data.
//!
//! Commands (any `how`): writing point `n` sets the counter, directly or selected then
//! executed with the same value; a negative value, an execute without its select, or another
//! point is refused in words. Writing `wait` busies the driver that many milliseconds before it
//! answers (past the caller's timeout); writing `boom` panics.

use enos_plugin_sdk::{self as sdk, Command, CommandKind, Connection, Description, DeviceConfig, Driver, Quality, Sample, Value};

pub struct Misbehave {
    how: String,
    n: i64,
    hoard: Vec<Vec<u8>>,
    /// The value a select armed, waiting for its execute.
    selected: Option<i64>,
}

impl Driver for Misbehave {
    fn describe() -> Description {
        Description {
            protocols: vec!["misbehave".into()],
            config_schema: r#"{"type":"object","properties":{"how":{"type":"string","enum":["count","silent","trap","trap-once","spin","hog","snoop"]}},"required":["how"],"additionalProperties":false}"#.into(),
            point_address_format: "anything".into(),
        }
    }

    fn init(config: DeviceConfig) -> Result<Self, String> {
        let how = config.settings.split('"').nth(3).unwrap_or_default().to_string();
        if how == "snoop" {
            // Not among the device's endpoints: the host must refuse.
            Connection::open("127.0.0.1:22").map_err(|e| format!("opening 127.0.0.1:22: {e}"))?;
        }
        Ok(Misbehave { how, n: 0, hoard: Vec::new(), selected: None })
    }

    fn poll(&mut self, now_ms: u64) -> Result<(), String> {
        match self.how.as_str() {
            "trap" => panic!("the meter table is corrupt (on purpose)"),
            // Once: the store remembers across the restart that follows.
            "trap-once" if sdk::host::kv_get("trapped").is_none() => {
                sdk::host::kv_set("trapped", b"yes")?;
                panic!("trapping once (on purpose)")
            }
            "spin" => {
                let mut x = now_ms;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "hog" => loop {
                self.hoard.push(vec![1u8; 1 << 20]);
            },
            "count" => {
                self.n += 1;
                sdk::emit(&[Sample { point: "n".into(), value: Value::Integer(self.n), quality: Quality::Good, timestamp_ms: now_ms }]);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn command(&mut self, cmd: Command) -> Result<String, String> {
        match (cmd.point.as_str(), &cmd.value) {
            ("boom", _) => panic!("the command table is corrupt (on purpose)"),
            ("wait", Value::Integer(ms)) => {
                let end = sdk::now_ms() + *ms as u64;
                while sdk::now_ms() < end {}
                return Ok(format!("waited {ms} ms"));
            }
            _ => {}
        }
        if cmd.point != "n" {
            return Err(format!("point \"{}\" takes no commands (only n does)", cmd.point));
        }
        let v = match cmd.value {
            Value::Integer(v) if v >= 0 => v,
            Value::Float(f) if f >= 0.0 && f.fract() == 0.0 => f as i64,
            Value::Integer(_) | Value::Float(_) => return Err("the counter cannot go below zero".into()),
            _ => return Err("the counter takes a whole number".into()),
        };
        match cmd.kind {
            CommandKind::Select => {
                self.selected = Some(v);
                return Ok(format!("selected {v}"));
            }
            CommandKind::Execute if self.selected.take() != Some(v) => return Err(format!("execute {v} without a select of {v}")),
            CommandKind::Execute | CommandKind::Direct => self.n = v,
        }
        Ok(format!("counter set to {v}"))
    }
}

sdk::plugin!(Misbehave);
