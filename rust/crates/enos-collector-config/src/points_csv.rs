//! Point tables as CSV, the format field engineers keep their point lists in, for every protocol.
//!
//! The columns are the protocol's point fields (`protocols::ProtocolSpec::point_fields`: `name`,
//! the address fields, then `scale`, `offset`, `unit`, `access`, `min`, `max`, `decimals`),
//! header case-insensitive and in any order, plus a free-text `description`. Choices accept the
//! usual other spellings (`4x` for `holding`); booleans `yes`/`no`. Every bad row and column is
//! reported, not just the first. Modbus addresses are 0-based: `40001`-style register numbers are
//! refused because silently guessing the offset writes to the wrong register.

use crate::device::{Protocol, ProtocolConfig};
use crate::fields::{Field, FieldKind};
use crate::protocols::spec;
use enos_config::RowError;
use serde_json::{Map, Value};

/// Parses a whole table into point documents of `protocol` (JSON, as in the files), each checked
/// as a point in the TOML file would be.
pub fn parse(protocol: Protocol, text: &str) -> Result<Vec<Value>, Vec<RowError>> {
    let mut points = Vec::new();
    parse_each(protocol, text, |p| points.push(p))?;
    Ok(points)
}

/// As [`parse`], handing each good row's point document to `each` as it is read (the caller
/// discards them all when an error is returned). The collector turns each into its point at
/// once: a whole table held as JSON (10,000 OPC UA points: 6 MB) left the points made after it
/// scattered over its freed pages, which malloc could then not give back (~1,000 bytes of RSS
/// per point, `enos-bench --opcua`).
pub fn parse_each(protocol: Protocol, text: &str, mut each: impl FnMut(Value)) -> Result<(), Vec<RowError>> {
    let spec = spec(protocol);
    let fields = spec.point_fields();
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).comment(Some(b'#')).from_reader(text.as_bytes());
    let headers: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(|s| s.to_ascii_lowercase()).collect(),
        Err(e) => return Err(vec![RowError { line: 1, column: String::new(), reason: format!("unreadable header: {e}") }]),
    };
    let mut errors = Vec::new();
    let known = || fields.iter().map(|f| f.key).chain(["description"]).collect::<Vec<_>>().join(", ");
    for h in &headers {
        if h != "description" && !fields.iter().any(|f| f.key == h) {
            errors.push(RowError { line: 1, column: h.clone(), reason: format!("unknown column for {protocol} (known: {})", known()) });
        }
    }
    for f in fields.iter().filter(|f| f.required) {
        if !headers.iter().any(|h| h == f.key) {
            errors.push(RowError { line: 1, column: f.key.into(), reason: "required column missing".into() });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut names = Names::default();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                errors.push(RowError { line, column: String::new(), reason: format!("unreadable row: {e}") });
                continue;
            }
        };
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        if rec.iter().all(|f| f.is_empty()) {
            continue;
        }
        let mut row = Map::new();
        let mut row_errs = Vec::new();
        for f in &fields {
            let cell = headers.iter().position(|h| h == f.key).and_then(|i| rec.get(i)).unwrap_or_default();
            if cell.is_empty() {
                if f.required {
                    row_errs.push(RowError { line, column: f.key.into(), reason: "empty".into() });
                }
                continue;
            }
            match cell_value(f, cell) {
                Ok(v) => {
                    row.insert(f.key.into(), v);
                }
                Err(reason) => row_errs.push(RowError { line, column: f.key.into(), reason }),
            }
        }
        let mut row = Value::Object(row);
        if row_errs.is_empty() {
            // The same checks as a point in the TOML file; the column is the field.
            match (spec.check_point)(row) {
                Ok((found, point)) => {
                    row_errs.extend(found.0.into_iter().map(|f| RowError { line, column: f.field, reason: f.reason }));
                    row = point;
                }
                Err(reason) => {
                    row_errs.push(RowError { line, column: String::new(), reason });
                    row = Value::Null;
                }
            }
        }
        if row_errs.is_empty() {
            if let Some(prev) = names.insert(row["name"].as_str().unwrap_or_default(), line) {
                row_errs.push(RowError { line, column: "name".into(), reason: format!("duplicate of line {prev}") });
            }
        }
        if row_errs.is_empty() && errors.is_empty() {
            each(row);
        }
        errors.extend(row_errs);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The names read so far and their lines, for the duplicate check, in one buffer. A string per
/// row, kept until the whole table was read, lay between the points' own names (made from the
/// rows meanwhile) and, freed, left them scattered over pages malloc could not give back
/// (~60 bytes of RSS a point, `enos-bench --opcua`).
#[derive(Default)]
struct Names {
    text: String,
    /// By the name's hash: where it is in `text`, and its line.
    first: std::collections::HashMap<u64, (usize, usize, usize)>,
    /// Names whose hash an earlier, other name has (rare).
    rest: std::collections::HashMap<String, usize>,
    hasher: std::collections::hash_map::RandomState,
}

impl Names {
    /// Records `name` at `line`; the line it was last seen at when it is a duplicate.
    fn insert(&mut self, name: &str, line: usize) -> Option<usize> {
        use std::collections::hash_map::Entry;
        use std::hash::BuildHasher;
        match self.first.entry(self.hasher.hash_one(name)) {
            Entry::Vacant(e) => {
                e.insert((self.text.len(), name.len(), line));
                self.text.push_str(name);
                None
            }
            Entry::Occupied(mut e) => {
                let (at, len, prev) = *e.get();
                if &self.text[at..at + len] == name {
                    // the latest line, as a map of name to line says
                    e.get_mut().2 = line;
                    Some(prev)
                } else {
                    self.rest.insert(name.to_string(), line)
                }
            }
        }
    }
}

/// One cell as the JSON value of its field, or why it is not one.
fn cell_value(f: &Field, cell: &str) -> Result<Value, String> {
    // The field's help says what the number is: "400001 is above 65535: 0-based protocol
    // address (not 40001-style)".
    let help = || f.help.chars().next().map(|c| c.to_lowercase().chain(f.help.chars().skip(1)).collect::<String>()).unwrap_or_default();
    let bounded = |v: f64| match (f.min, f.max) {
        (Some(lo), _) if v < lo => Err(format!("{cell} is below {lo}: {}", help())),
        (_, Some(hi)) if v > hi => Err(format!("{cell} is above {hi}: {}", help())),
        _ => Ok(()),
    };
    match f.kind {
        FieldKind::Integer => {
            let v: i64 = cell.parse().map_err(|_| format!("{cell:?} is not a whole number"))?;
            bounded(v as f64)?;
            Ok(Value::from(v))
        }
        FieldKind::Number => {
            let v: f64 = cell.parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| format!("{cell:?} is not a number"))?;
            bounded(v)?;
            Ok(Value::from(v))
        }
        FieldKind::Bool => match cell.to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "1" | "x" => Ok(Value::Bool(true)),
            "no" | "n" | "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("{cell:?} is not yes or no")),
        },
        FieldKind::Choice => {
            let c = f
                .choices
                .iter()
                .copied()
                .find(|c| c.eq_ignore_ascii_case(cell))
                .or_else(|| f.aliases.iter().find(|(a, _)| a.eq_ignore_ascii_case(cell)).map(|(_, c)| *c));
            c.map(Value::from).ok_or_else(|| format!("{cell:?} is not one of {}", f.choices.join(", ")))
        }
        FieldKind::Text | FieldKind::Serial | FieldKind::PollGroups | FieldKind::Tls | FieldKind::PluginSettings | FieldKind::Endpoints => {
            Ok(Value::from(cell))
        }
    }
}

/// Writes a device's points in the format `parse` reads.
pub fn write(proto: &ProtocolConfig) -> String {
    let fields = spec(proto.protocol()).point_fields();
    // `#` starts a comment for `parse`: a cell beginning with it is quoted, or a point named
    // "#1" would come back as a comment line, silently gone.
    let mut w = csv::WriterBuilder::new().comment(Some(b'#')).from_writer(Vec::new());
    let _ = w.write_record(fields.iter().map(|f| f.key));
    for p in proto.points_json() {
        let _ = w.write_record(fields.iter().map(|f| match p.get(f.key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => String::new(),
            Some(Value::Bool(true)) => "yes".into(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_find_duplicates_also_when_hashes_collide() {
        let mut n = Names::default();
        assert_eq!((n.insert("a", 1), n.insert("b", 2), n.insert("a", 3), n.insert("a", 4)), (None, None, Some(1), Some(3)));
        // "c" as if its hash were that of "a": kept beside, still found again
        let h = std::hash::BuildHasher::hash_one(&n.hasher, "c");
        n.first.insert(h, (0, 1, 1));
        assert_eq!((n.insert("c", 5), n.insert("c", 6), n.insert("b", 7)), (None, Some(5), Some(2)));
    }

    #[test]
    fn a_table_with_bad_rows_reports_each_row_and_column() {
        let t = "Name,Area,Address,Type,Scale,Bit,New_Block\n\
                 P,holding,0,f32,0.1,,\n\
                 Q,holding,400001,u16,,,maybe\n\
                 R,holding,2,flaot,,,\n\
                 S,coil,3,u16,,,\n\
                 T,holding,4,bit,,17,\n\
                 P,input,5,u16,,,\n";
        let errs = parse(Protocol::ModbusTcp, t).unwrap_err();
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(got.len(), 6, "{got:#?}");
        assert!(got[0].starts_with("line 3, column \"address\": 400001 is above 65535"), "{}", got[0]);
        assert_eq!(got[1], "line 3, column \"new_block\": \"maybe\" is not yes or no");
        assert!(got[2].starts_with("line 4, column \"type\": \"flaot\""), "{}", got[2]);
        assert!(got[3].starts_with("line 5, column \"type\":"), "{}", got[3]);
        assert!(got[4].starts_with("line 6, column \"bit\": 17"), "{}", got[4]);
        assert_eq!(got[5], "line 7, column \"name\": duplicate of line 2");
    }

    fn round_trip(protocol: Protocol, settings: &str, table: &str) {
        let rows = parse(protocol, table).unwrap_or_else(|e| panic!("{protocol}: {e:?}"));
        let text = format!("id = \"d\"\nprotocol = \"{protocol}\"\n{settings}\n");
        let mut d: crate::DeviceConfig = toml::from_str(&text).unwrap();
        d.proto.extend_points(rows.clone()).unwrap();
        let mut again = d.clone();
        again.proto.clear_points();
        again.proto.extend_points(parse(protocol, &write(&d.proto)).unwrap()).unwrap();
        assert_eq!(again, d, "{protocol}");
        assert_eq!(again.proto.point_count(), rows.len());
    }

    #[test]
    fn write_then_parse_gives_the_same_points_for_every_protocol() {
        round_trip(
            Protocol::ModbusTcp,
            "address = \"h:1\"",
            "name,area,address,type,order,scale,access,min,max,unit,new_block\nP,4x,0,float,CDAB,0.1,rw,0,100,kW,\nB,coil,7,bool,,,rw,,,,yes\n",
        );
        round_trip(
            Protocol::Iec104,
            "address = \"h:2404\"",
            "name,ioa,type,command,select_before_operate,access\nbreaker,1001,M_DP,C_DC,yes,rw\nP,2001,m_me_nc,,,\n",
        );
        round_trip(
            Protocol::Dlt645,
            "address = \"h:1\"\nmeter = \"000000000001\"",
            "name,di,format,unit\nUa,02010100,,V\nE,00010000,XXXXXX.XX,kWh\n",
        );
        round_trip(
            Protocol::Dnp3,
            "address = \"h:20000\"",
            "name,type,index,command,select_before_operate,pulse_ms,access\ntrip,BO,0,trip-close,yes,200,rw\nP,g30,5,,,,\n",
        );
        round_trip(
            Protocol::Opcua,
            "endpoint = \"opc.tcp://h:4840\"\nsecurity_policy = \"None\"",
            "name,node,mode,sampling_ms,queue_size,deadband,deadband_type,access\nP,ns=2;s=Plant.P,,250,10,0.5,percent,rw\nE,nsu=urn:x;i=7,poll,,,,,\n",
        );
        round_trip(Protocol::Plugin, "plugin = \"iec62056\"", "name,address,scale,unit\nenergy,1-0:1.8.0*255,,kWh\nU,32.7.0,0.1,V\n");
    }

    #[test]
    fn a_column_of_another_protocol_is_named_with_the_known_ones() {
        let errs = parse(Protocol::Iec104, "name,ioa,type,area\nP,1,M_SP,holding\n").unwrap_err();
        assert!(
            errs[0].to_string().starts_with("line 1, column \"area\": unknown column for iec104 (known: name, ca, ioa, type"),
            "{}",
            errs[0]
        );
        let errs = parse(Protocol::Iec104, "name,ioa,type,access\nP,1,M_SP,rw\n").unwrap_err();
        assert!(errs[0].to_string().contains("column \"access\": a writable point needs `command`"), "{}", errs[0]);
    }
}
