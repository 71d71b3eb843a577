//! `enosctl model`: a sub-device's device model (TSL) from the cloud, where its configured points
//! disagree with it, and a point-table skeleton made from it.

use enos_collector_config::protocols;
use enos_collector_config::Protocol;
use serde_json::Value;

/// The model's version and the findings, one line each.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    if let Some(n) = v["note"].as_str() {
        out += &format!("note        {n}\n");
    }
    if v["model"].is_null() {
        return out;
    }
    out += &format!(
        "model       {} version {}, {} measure points\n",
        v["product_key"].as_str().unwrap_or(""),
        v["version"].as_str().unwrap_or("?"),
        v["model"]["measurepoints"].as_object().map(|m| m.len()).unwrap_or(0)
    );
    let found = v["findings"].as_array().cloned().unwrap_or_default();
    if found.is_empty() {
        out += "findings    none: every configured point is in the model, of a fitting type\n";
    }
    for f in found {
        out += &format!("{}: {}\n", f["point"].as_str().unwrap_or(""), f["problem"].as_str().unwrap_or(""));
    }
    out
}

/// A model data type as the protocol's `type` column names it, when it has one that fits.
fn local_type(model_type: &str, choices: &[&str]) -> &'static str {
    let want: &[&'static str] = match model_type {
        "FLOAT" => &["f32"],
        "DOUBLE" => &["f64", "f32"],
        "INT" | "ENUM" => &["i32", "i16", "u16"],
        "LONG" => &["i64", "i32"],
        "BOOL" | "BOOLEAN" => &["bool", "bit"],
        "STRING" | "TEXT" => &["string"],
        _ => &[],
    };
    want.iter().copied().find(|t| choices.contains(t)).unwrap_or("")
}

/// A CSV point table for `protocol` with one row per measure point of the model: the name, a
/// fitting type and the access filled in, the addresses left for the operator.
pub fn skeleton(protocol: &str, v: &Value) -> Result<String, String> {
    let p = Protocol::ALL.into_iter().find(|p| p.name() == protocol).ok_or_else(|| format!("no point table for protocol {protocol}"))?;
    let fields = protocols::spec(p).point_fields();
    let mps =
        v["model"]["measurepoints"].as_object().ok_or("the model has not been fetched yet: run `enosctl model check DEVICE --fetch`")?;
    let mut out = fields.iter().map(|f| f.key).collect::<Vec<_>>().join(",") + "\n";
    for (name, mp) in mps {
        let row: Vec<String> = fields
            .iter()
            .map(|f| match f.key {
                "name" => name.clone(),
                "type" => local_type(mp["data_type"].as_str().unwrap_or(""), f.choices).to_string(),
                "access" => if mp["writable"] == true { "rw" } else { "r" }.to_string(),
                _ => String::new(),
            })
            .collect();
        out += &(row.join(",") + "\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skeleton_and_the_findings_in_words() {
        let v = serde_json::json!({"product_key": "pkI", "version": "3", "note": null,
            "model": {"measurepoints": {"power": {"data_type": "FLOAT", "writable": null}, "sp": {"data_type": "INT", "writable": true}}},
            "findings": [{"point": "extra", "problem": "the device model has no measure point extra"}]});
        let out = render(&v);
        assert!(
            out.contains("pkI version 3, 2 measure points") && out.contains("extra: the device model has no measure point extra"),
            "{out}"
        );
        let csv = skeleton("modbus-tcp", &v).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |k: &str| header.iter().position(|h| *h == k).unwrap();
        assert_eq!((row[col("name")], row[col("type")], row[col("access")]), ("power", "f32", "r"));
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!((row[col("name")], row[col("type")], row[col("access")]), ("sp", "i32", "rw"));
        assert!(skeleton("x", &v).is_err());
    }
}
