//! Which points the cloud may write: a numeric point needs a configured range (`min` and `max`
//! in the collector's point table), or the uplink's `type_range_points` saying that its data
//! type's range is meant. A write from afar without bounds could drive a setpoint anywhere the
//! register holds; the local tools (enosctl, web center) are not held to this.

use serde::Deserialize;

/// The parts of the collector's configuration (`Collector1.GetConfig`) this policy reads.
#[derive(Deserialize)]
pub struct PointTable {
    #[serde(rename = "device")]
    devices: Vec<Device>,
}

#[derive(Deserialize)]
struct Device {
    id: String,
    #[serde(default, rename = "point")]
    points: Vec<Point>,
}

#[derive(Deserialize)]
struct Point {
    name: String,
    /// Modbus and IEC 104 points have one; others (OPC UA) take their node's type.
    #[serde(default, rename = "type")]
    data_type: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
}

impl PointTable {
    /// Why the cloud may not write `point` of `device`, in words; `None` when it may (points the
    /// collector does not know go on: it answers them as unknown).
    pub fn refusal(&self, device: &str, point: &str, type_range_points: &[String]) -> Option<String> {
        let p = self.devices.iter().find(|d| d.id == device)?.points.iter().find(|p| p.name == point)?;
        let numeric = !matches!(p.data_type.as_deref(), Some("bool" | "bit" | "string"));
        if !numeric || (p.min.is_some() && p.max.is_some()) || type_range_points.iter().any(|n| n == point) {
            return None;
        }
        Some(format!(
            "{point}: the cloud may not write a point without a configured range (set min and max of {point}, or list it in \
             type_range_points of the sub-device to allow its whole {} range)",
            p.data_type.as_deref().unwrap_or("data type's")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_points_need_a_range_or_the_type_range_allowed() {
        let t: PointTable = serde_json::from_str(
            r#"{"device":[{"id":"inv01","point":[
                {"name":"sp","type":"u16","min":0,"max":100},
                {"name":"half","type":"f32","min":0},
                {"name":"free","type":"i32"},
                {"name":"on","type":"bool"}]}]}"#,
        )
        .unwrap();
        assert_eq!(t.refusal("inv01", "sp", &[]), None);
        assert_eq!(t.refusal("inv01", "on", &[]), None, "a bit has no range to set");
        let why = t.refusal("inv01", "free", &[]).expect("refused");
        assert!(why.starts_with("free: the cloud may not write a point without a configured range") && why.contains("i32"), "{why}");
        assert!(t.refusal("inv01", "half", &[]).is_some(), "one bound is not a range");
        assert_eq!(t.refusal("inv01", "free", &["free".into()]), None);
        assert_eq!(t.refusal("inv01", "nosuch", &[]), None, "the collector answers unknown points");
        assert_eq!(t.refusal("other", "free", &[]), None);
    }

    #[test]
    fn points_of_protocols_without_a_type_key_are_read_too() {
        // OPC UA points name a node, not a `type`; one such device must not make the whole
        // table unreadable (every cloud write was refused with 2099)
        let t: PointTable = serde_json::from_str(
            r#"{"device":[{"id":"plc","point":[
                {"name":"sp","node":"ns=2;s=S","min":0,"max":9},
                {"name":"free","node":"ns=2;s=F"}]}]}"#,
        )
        .unwrap();
        assert_eq!(t.refusal("plc", "sp", &[]), None);
        let why = t.refusal("plc", "free", &[]).expect("refused");
        assert!(why.contains("to allow its whole data type's range"), "{why}");
    }
}
