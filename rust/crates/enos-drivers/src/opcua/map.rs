//! OPC UA values, status codes and timestamps to the gateway's, and a written value to a Variant
//! of the node's own type.

use enos_batch::{Flags, Quality, Value};
use enos_collector_config::opcua::{Identifier, Namespace, NodeRef, OpcuaPoint};
use enos_opcua::opcua::types::{ByteString, DataValue, DateTime, Guid, NodeId, StatusCode, Variant, VariantScalarTypeId};
use std::str::FromStr;

/// The node id for async-opcua, and the namespace URI to look up for an `nsu=` one.
pub fn node(r: &NodeRef) -> Result<(NodeId, Option<String>), String> {
    let (ns, uri) = match &r.ns {
        Namespace::Index(i) => (*i, None),
        Namespace::Uri(u) => (0, Some(u.clone())),
    };
    let node = match &r.id {
        Identifier::Numeric(n) => NodeId::new(ns, *n),
        Identifier::String(s) => NodeId::new(ns, s.as_str()),
        Identifier::Guid(g) => NodeId::new(ns, Guid::from_str(g).map_err(|_| format!("{g:?} is not a GUID"))?),
        Identifier::Opaque(b) => NodeId::new(ns, ByteString::from_base64(b).ok_or_else(|| format!("{b:?} is not base64 text"))?),
    };
    Ok((node, uri))
}

fn scaled(p: &OpcuaPoint, x: f64) -> f64 {
    let y = x * p.meta.scale + p.meta.offset;
    match p.meta.decimals {
        Some(d) => {
            let f = 10f64.powi(i32::from(d));
            (y * f).round() / f
        }
        None => y,
    }
}

fn unscaled(p: &OpcuaPoint) -> bool {
    p.meta.scale == 1.0 && p.meta.offset == 0.0
}

/// The value as the gateway carries it, or why it cannot be (arrays, structures).
pub fn value(p: &OpcuaPoint, v: &Variant) -> Result<Value, String> {
    let int = |x: i64| if unscaled(p) { Value::Int(x) } else { Value::Float(scaled(p, x as f64)) };
    Ok(match v {
        Variant::Empty => Value::Null,
        Variant::Boolean(b) => Value::Bool(*b),
        Variant::SByte(x) => int(i64::from(*x)),
        Variant::Byte(x) => int(i64::from(*x)),
        Variant::Int16(x) => int(i64::from(*x)),
        Variant::UInt16(x) => int(i64::from(*x)),
        Variant::Int32(x) => int(i64::from(*x)),
        Variant::UInt32(x) => int(i64::from(*x)),
        Variant::Int64(x) => int(*x),
        Variant::UInt64(x) if unscaled(p) => Value::UInt(*x),
        Variant::UInt64(x) => Value::Float(scaled(p, *x as f64)),
        // a Float as the decimal it was meant to be (231.4, not 231.39999389648438)
        Variant::Float(x) => Value::Float(scaled(p, x.to_string().parse().unwrap_or(f64::from(*x)))),
        Variant::Double(x) => Value::Float(scaled(p, *x)),
        Variant::String(s) => Value::Str(s.as_ref().to_string()),
        Variant::LocalizedText(t) => Value::Str(t.text.as_ref().to_string()),
        Variant::DateTime(t) => Value::Int(t.as_chrono().timestamp_millis()),
        Variant::StatusCode(c) => Value::UInt(u64::from(c.bits())),
        other => {
            let kind = other.scalar_type_id().map_or("an array".to_string(), |t| format!("{t:?}"));
            return Err(format!("the node's value is {kind}, which the gateway does not carry"));
        }
    })
}

/// The time of a value: the source's, else the server's, else its arrival.
pub fn timestamp(v: &DataValue, now_ms: u64) -> u64 {
    let ms = |t: &Option<DateTime>| t.as_ref().filter(|t| !t.is_null()).map(|t| t.as_chrono().timestamp_millis()).filter(|m| *m > 0);
    ms(&v.source_timestamp).or_else(|| ms(&v.server_timestamp)).map_or(now_ms, |m| m as u64)
}

/// Good stays good, Uncertain is doubtful, Bad is invalid; the flags say the particular reason
/// where one of the product's flags means it. The status code itself, in words, is the
/// reading's note (`PointReading::error`) for the local views; the cloud gets quality + flags.
pub fn quality(code: StatusCode) -> (Quality, Flags) {
    let mut flags = Flags::NONE;
    if code.overflow() {
        flags |= Flags::OVERFLOW;
    }
    let name = code.sub_code().name();
    flags |= match name {
        "UncertainSubstituteValue" | "GoodLocalOverride" => Flags::SUBSTITUTED,
        "UncertainLastUsableValue" | "BadLastKnownValue" | "BadWaitingForInitialData" => Flags::NOT_TOPICAL,
        "BadNotConnected" | "BadNoCommunication" | "BadCommunicationError" => Flags::SOURCE_LOST,
        "BadOutOfService" => Flags::BLOCKED,
        _ => Flags::NONE,
    };
    if code.is_bad() {
        (Quality::Invalid, flags | Flags::INVALID)
    } else if code.is_uncertain() {
        (Quality::Doubtful, flags)
    } else {
        (Quality::Good, flags)
    }
}

/// A written engineering value as a Variant of `like`'s type (the node's current value), or
/// why not: `(true, ..)` for out of range, `(false, ..)` for a bad value.
pub fn command(p: &OpcuaPoint, like: Option<VariantScalarTypeId>, v: &serde_json::Value) -> Result<Variant, (bool, String)> {
    use VariantScalarTypeId as T;
    let bad = |why: String| Err((false, why));
    if let serde_json::Value::String(s) = v {
        return match like {
            Some(T::String) | None => Ok(Variant::from(s.as_str())),
            Some(t) => bad(format!("{v} is text; the node holds {t:?}")),
        };
    }
    if like == Some(T::Boolean) || (like.is_none() && v.is_boolean()) {
        return match v {
            serde_json::Value::Bool(b) => Ok(Variant::Boolean(*b)),
            n if n.as_i64() == Some(0) => Ok(Variant::Boolean(false)),
            n if n.as_i64() == Some(1) => Ok(Variant::Boolean(true)),
            _ => bad(format!("{v} is not a switching value (true/false or 1/0)")),
        };
    }
    let Some(x) = v.as_f64() else { return bad(format!("{v} is not a number")) };
    if let Some(why) = p.meta.out_of_range(x) {
        return Err((true, why));
    }
    let raw = (x - p.meta.offset) / p.meta.scale;
    let whole = |lo: f64, hi: f64, name: &str| {
        if raw.fract() == 0.0 && raw >= lo && raw <= hi {
            Ok(raw)
        } else {
            Err((false, format!("{raw} is not a whole number in {lo}..{hi} (the node holds {name})")))
        }
    };
    Ok(match like {
        Some(T::SByte) => Variant::SByte(whole(-128.0, 127.0, "SByte")? as i8),
        Some(T::Byte) => Variant::Byte(whole(0.0, 255.0, "Byte")? as u8),
        Some(T::Int16) => Variant::Int16(whole(-32768.0, 32767.0, "Int16")? as i16),
        Some(T::UInt16) => Variant::UInt16(whole(0.0, 65535.0, "UInt16")? as u16),
        Some(T::Int32) => Variant::Int32(whole(f64::from(i32::MIN), f64::from(i32::MAX), "Int32")? as i32),
        Some(T::UInt32) => Variant::UInt32(whole(0.0, f64::from(u32::MAX), "UInt32")? as u32),
        Some(T::Int64) => Variant::Int64(whole(-9.007e15, 9.007e15, "Int64")? as i64),
        Some(T::UInt64) => Variant::UInt64(whole(0.0, 9.007e15, "UInt64")? as u64),
        Some(T::Float) if (raw as f32).is_finite() => Variant::Float(raw as f32),
        Some(T::Float) => return bad(format!("{raw} does not fit a Float")),
        Some(T::Double) | None => Variant::Double(raw),
        Some(t) => return bad(format!("the node holds {t:?}, which the gateway does not write")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use enos_collector_config::opcua::{ItemSettings, OpcuaAddress, ReadMode};
    use enos_collector_config::PointMeta;

    fn point(scale: f64) -> OpcuaPoint {
        let mut meta = PointMeta::named("P");
        meta.scale = scale;
        meta.range = enos_collector_config::Range::new(Some(0.0), Some(100.0));
        let at = OpcuaAddress::new("ns=2;i=5", ReadMode::Subscribe, ItemSettings::default());
        OpcuaPoint::new(meta, at)
    }

    #[test]
    fn values_statuses_and_writes() {
        let p = point(1.0);
        assert_eq!(value(&p, &Variant::Float(231.4)), Ok(Value::Float(231.4)));
        assert_eq!(value(&point(0.1), &Variant::UInt16(25)), Ok(Value::Float(2.5)));
        assert_eq!(value(&p, &Variant::Int32(-3)), Ok(Value::Int(-3)));
        assert_eq!(quality(StatusCode::Good), (Quality::Good, Flags::NONE));
        assert_eq!(quality(StatusCode::UncertainLastUsableValue), (Quality::Doubtful, Flags::NOT_TOPICAL));
        assert_eq!(quality(StatusCode::BadSensorFailure), (Quality::Invalid, Flags::INVALID));
        assert_eq!(quality(StatusCode::BadNoCommunication), (Quality::Invalid, Flags::INVALID | Flags::SOURCE_LOST));
        assert_eq!(command(&p, Some(VariantScalarTypeId::Double), &serde_json::json!(12.5)), Ok(Variant::Double(12.5)));
        assert_eq!(command(&p, Some(VariantScalarTypeId::Int16), &serde_json::json!(12)), Ok(Variant::Int16(12)));
        assert!(matches!(command(&p, Some(VariantScalarTypeId::Int16), &serde_json::json!(12.5)), Err((false, _))));
        assert!(matches!(command(&p, Some(VariantScalarTypeId::Double), &serde_json::json!(120)), Err((true, _))));
        assert_eq!(command(&p, Some(VariantScalarTypeId::Boolean), &serde_json::json!(1)), Ok(Variant::Boolean(true)));
        let n = node(&NodeRef::parse("ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a").unwrap()).unwrap();
        assert_eq!(n.0.namespace, 1);
        assert_eq!(node(&NodeRef::parse("nsu=urn:x;i=7").unwrap()).unwrap().1.as_deref(), Some("urn:x"));
    }
}
