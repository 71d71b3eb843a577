//! IEC 62056-21 mode C meter readout (optical head or RS-485), written only as a plugin.
//!
//! One readout per poll: sign-on `/?[address]!`, the meter's identification `/XXXZ...`, the
//! acknowledgement with option select `ACK 0 Z 0` (data readout at the meter's baud character),
//! then the data block `STX lines ! CR LF ETX BCC`; the configured points are taken from its OBIS
//! lines `1.8.0(001234.567*kWh)`.

pub mod readout;

use enos_plugin_sdk::{self as sdk, Command, Connection, Description, DeviceConfig, Driver, Level, Quality, Sample, Value};
use readout::{parse_block, parse_identification, sign_on, Line};

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "endpoint": {"type": "string", "description": "The device's endpoint that leads to the meter", "default": "line"},
    "meter_address": {"type": "string", "description": "Device address sent in the sign-on (empty: any meter)", "maxLength": 32, "default": ""},
    "timeout_ms": {"type": "integer", "description": "Wait this long for each answer", "minimum": 100, "maximum": 30000, "default": 3000}
  },
  "additionalProperties": false
}"#;

pub struct Meter {
    endpoint: String,
    address: String,
    timeout_ms: u32,
    /// Point name and OBIS code.
    points: Vec<(String, String)>,
    conn: Option<Connection>,
    missing_logged: bool,
}

impl Driver for Meter {
    fn describe() -> Description {
        Description {
            protocols: vec!["iec62056-21".into()],
            config_schema: SCHEMA.into(),
            point_address_format: "An OBIS code as the meter prints it, e.g. 1.8.0 or 1-0:1.8.0*255".into(),
        }
    }

    fn init(config: DeviceConfig) -> Result<Self, String> {
        let s = readout::Settings::from_json(&config.settings)?;
        let mut points = Vec::new();
        for p in config.points {
            readout::check_obis(&p.address).map_err(|e| format!("point \"{}\": {e}", p.name))?;
            points.push((p.name, p.address));
        }
        Ok(Meter { endpoint: s.endpoint, address: s.meter_address, timeout_ms: s.timeout_ms, points, conn: None, missing_logged: false })
    }

    fn poll(&mut self, now_ms: u64) -> Result<(), String> {
        let lines = match self.read_out() {
            Ok(l) => l,
            Err(e) => {
                // Start over with a fresh connection: the meter is back at its sign-on state.
                self.conn = None;
                return Err(e);
            }
        };
        let mut out = Vec::with_capacity(self.points.len());
        for (name, obis) in &self.points {
            match lines.iter().find(|l| readout::same_obis(&l.obis, obis)) {
                Some(l) => out.push(sample(name, l, now_ms)),
                None if !self.missing_logged => sdk::log(Level::Warn, format!("point \"{name}\": the meter sent no {obis}")),
                None => {}
            }
        }
        self.missing_logged = true;
        sdk::emit(&out);
        Ok(())
    }

    /// Mode C's data readout has nothing to write; its programming mode (passwords, `W1`
    /// writes) is maker-specific and not part of this driver.
    fn command(&mut self, cmd: Command) -> Result<String, String> {
        Err(format!("point \"{}\": an IEC 62056-21 mode C readout only reads the meter; it takes no writes or commands", cmd.point))
    }
}

impl Meter {
    fn read_out(&mut self) -> Result<Vec<Line>, String> {
        if self.conn.is_none() {
            self.conn = Some(Connection::open(&self.endpoint).map_err(|e| format!("endpoint \"{}\": {e}", self.endpoint))?);
        }
        let conn = self.conn.as_ref().expect("opened above");
        let t = self.timeout_ms;
        conn.write(&sign_on(&self.address)).map_err(|e| format!("sign-on: {e}"))?;
        let ident = conn.read_until(t, |b| b.ends_with(b"\r\n")).map_err(|e| format!("identification: {e}"))?;
        let ident = parse_identification(&ident)?;
        conn.write(&readout::ack_readout(ident.baud)).map_err(|e| format!("option select: {e}"))?;
        let block = conn.read_until(t, readout::block_complete).map_err(|e| format!("data block: {e}"))?;
        parse_block(&block)
    }
}

fn sample(name: &str, l: &Line, ts: u64) -> Sample {
    let value = match l.value.parse::<f64>() {
        Ok(v) => Value::Float(v),
        Err(_) => Value::Text(l.value.clone()),
    };
    Sample { point: name.into(), value, quality: Quality::Good, timestamp_ms: ts }
}

sdk::plugin!(Meter);
