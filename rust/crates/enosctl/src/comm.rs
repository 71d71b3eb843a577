//! `enosctl comm-test DEVICE [REQUEST]`: the device's communication test (the one its protocol
//! has: Modbus registers, IEC 104 interrogation, DL/T 645 identifiers, DNP3 poll, OPC UA browse,
//! a plugin device's points read now) from a shell,
//! for the technician without a browser. What it read is printed as a table in words.

use enos_model::comm_test::{CommAnswer, Dnp3PollAnswer, IdentifierAnswer, InterrogationAnswer, OpcuaBrowseAnswer, PluginReadAnswer};
use enos_model::raw_read::RawAnswer;
use std::fmt::Write;

/// The request: the JSON given (its `kind` taken from the device's protocol when absent), or
/// the protocol's plain test: Modbus 10 holding registers from 0, an interrogation of the
/// device's common address, an integrity poll, a browse of the Objects folder. DL/T 645 needs the
/// identifiers.
pub fn request(kind: &str, given: Option<&str>) -> anyhow::Result<String> {
    let mut v: serde_json::Value = match given {
        Some(text) => serde_json::from_str(text).map_err(|e| anyhow::anyhow!("the request is not JSON: {e}"))?,
        None => match kind {
            "modbus-registers" => serde_json::json!({"function": 3, "address": 0, "count": 10}),
            "dlt645-identifiers" => {
                anyhow::bail!("a DL/T 645 test reads chosen identifiers: enosctl comm-test DEVICE '{{\"identifiers\": [\"02010100\"]}}'")
            }
            _ => serde_json::json!({}),
        },
    };
    let Some(obj) = v.as_object_mut() else { anyhow::bail!("the request must be a JSON object") };
    obj.entry("kind").or_insert_with(|| kind.into());
    Ok(v.to_string())
}

pub fn render(a: &CommAnswer) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ({} ms){}", a.message(), took(a), if a.ok() { "" } else { ": the test failed" });
    match a {
        CommAnswer::ModbusRegisters(r) => modbus(&mut out, r),
        CommAnswer::Iec104Interrogation(r) => iec104(&mut out, r),
        CommAnswer::Dlt645Identifiers(r) => dlt645(&mut out, r),
        CommAnswer::Dnp3Poll(r) => dnp3(&mut out, r),
        CommAnswer::OpcuaBrowse(r) => opcua(&mut out, r),
        CommAnswer::PluginRead(r) => plugin(&mut out, r),
    }
    out
}

fn took(a: &CommAnswer) -> u64 {
    match a {
        CommAnswer::ModbusRegisters(r) => r.took_ms,
        CommAnswer::Iec104Interrogation(r) => r.took_ms,
        CommAnswer::Dlt645Identifiers(r) => r.took_ms,
        CommAnswer::Dnp3Poll(r) => r.took_ms,
        CommAnswer::OpcuaBrowse(r) => r.took_ms,
        CommAnswer::PluginRead(r) => r.took_ms,
    }
}

fn time(ms: Option<u64>) -> String {
    ms.map_or("-".into(), |t| t.to_string())
}

fn modbus(out: &mut String, r: &RawAnswer) {
    if !r.words.is_empty() {
        let _ = writeln!(out, "{:<8} {:>6} {:>7}", "ADDRESS", "WORD", "HEX");
        for (i, w) in r.words.iter().enumerate() {
            let _ = writeln!(out, "{:<8} {:>6} {:>#7x}", u32::from(r.address) + i as u32, w, w);
        }
    }
    for (i, b) in r.bits.iter().enumerate() {
        let _ = writeln!(out, "{:<8} {}", u32::from(r.address) + i as u32, u8::from(*b));
    }
}

fn iec104(out: &mut String, r: &InterrogationAnswer) {
    let _ = writeln!(out, "{:<8} {:<10} {:<14} {:<20} {:<14} POINT", "IOA", "TYPE", "VALUE", "QUALITY", "TIME TAG");
    for o in &r.objects {
        let q = if o.flags.is_empty() { "good".to_string() } else { o.flags.join(", ") };
        let t = o.time_ms.map_or("-".into(), |t| t.to_string() + if o.time_invalid { " (invalid)" } else { "" });
        let _ = writeln!(out, "{:<8} {:<10} {:<14} {:<20} {:<14} {}", o.ioa, o.type_name, o.text, q, t, o.point.as_deref().unwrap_or("-"));
    }
}

fn dlt645(out: &mut String, r: &IdentifierAnswer) {
    for x in &r.reads {
        let _ = writeln!(out, "{} {}: {}", x.di, x.name, x.text);
        for f in &x.frames {
            let _ = writeln!(out, "  -> {}", f.request);
            let _ = writeln!(out, "  <- {}", if f.response.is_empty() { "no answer" } else { &f.response });
        }
    }
}

fn dnp3(out: &mut String, r: &Dnp3PollAnswer) {
    let _ = writeln!(out, "IIN: {}", if r.iin.is_empty() { "none".to_string() } else { r.iin.join(", ") });
    if r.objects.is_empty() {
        return;
    }
    let _ = writeln!(out, "{:<10} {:>6} {:<14} {:<24} {:<14} POINT", "TYPE", "INDEX", "VALUE", "FLAGS", "TIME");
    for o in &r.objects {
        let ty = format!("{}{}", o.type_name, if o.event { " event" } else { "" });
        let flags = if o.flags.is_empty() { "online".to_string() } else { o.flags.join(", ") };
        let v = match &o.value {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let _ = writeln!(
            out,
            "{:<10} {:>6} {:<14} {:<24} {:<14} {}",
            ty,
            o.index,
            v,
            flags,
            time(o.time_ms),
            o.point.as_deref().unwrap_or("-")
        );
    }
}

fn opcua(out: &mut String, r: &OpcuaBrowseAnswer) {
    if r.nodes.is_empty() {
        return;
    }
    let _ = writeln!(out, "{:<28} {:<20} {:<12} {:<10} {:<12} {:<14} POINT", "NODE ID", "BROWSE NAME", "CLASS", "TYPE", "ACCESS", "VALUE");
    for n in &r.nodes {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let value = if n.node_class == "Variable" { n.text.clone() } else { "-".into() };
        let _ = writeln!(
            out,
            "{:<28} {:<20} {:<12} {:<10} {:<12} {:<14} {}",
            n.node_id,
            n.browse_name,
            n.node_class,
            dash(&n.data_type),
            dash(&n.access),
            value,
            n.point.as_deref().unwrap_or("-")
        );
        if let Some(nsu) = &n.nsu_id {
            let _ = writeln!(out, "  {nsu}");
        }
    }
}

fn plugin(out: &mut String, r: &PluginReadAnswer) {
    let _ = writeln!(out, "plugin {}", r.plugin);
    if r.values.is_empty() {
        return;
    }
    let _ = writeln!(out, "{:<20} {:<20} {:<10} VALUE", "POINT", "ADDRESS", "QUALITY");
    for v in &r.values {
        let q = if v.ok { v.quality.as_str() } else { "-" };
        let _ = writeln!(out, "{:<20} {:<20} {:<10} {}", v.point, v.address, q, v.text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_takes_its_kind_from_the_protocol() {
        let r: serde_json::Value = serde_json::from_str(&request("dnp3-poll", Some(r#"{"poll": "events"}"#)).unwrap()).unwrap();
        assert_eq!(r, serde_json::json!({"kind": "dnp3-poll", "poll": "events"}));
        assert!(request("dlt645-identifiers", None).unwrap_err().to_string().contains("identifiers"));
        assert!(request("dnp3-poll", Some("[1]")).unwrap_err().to_string().contains("JSON object"));
    }
}
