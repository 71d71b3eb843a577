//! Point tables as CSV, the format field engineers keep their point lists in.
//!
//! Header (case-insensitive, any order; `name`, `area`, `address`, `type` are required):
//! `name,area,address,type,order,bit,length,scale,offset,group,access,min,max,decimals,unit,new_block`
//! Addresses are 0-based protocol addresses; `40001`-style register numbers are refused with a
//! hint because silently guessing the offset writes to the wrong register. `new_block` (`yes`/`no`,
//! empty = no) marks a point no read may reach across to from the points before it: a hole in
//! the device's register map.

use crate::{Access, Area, ByteOrder, DataType, PointConfig};
use enos_config::{Findings, RowError, Scope};

const COLUMNS: &[&str] = &[
    "name",
    "area",
    "address",
    "type",
    "order",
    "bit",
    "length",
    "scale",
    "offset",
    "group",
    "access",
    "min",
    "max",
    "decimals",
    "unit",
    "new_block",
    "description",
];

/// The columns `write` writes (all but the free-text description).
const WRITTEN: usize = 16;

/// Parses a whole table; every bad row is reported, not just the first.
pub fn parse(text: &str) -> Result<Vec<PointConfig>, Vec<RowError>> {
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).comment(Some(b'#')).from_reader(text.as_bytes());
    let headers: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(|s| s.to_ascii_lowercase()).collect(),
        Err(e) => return Err(vec![RowError { line: 1, column: String::new(), reason: format!("unreadable header: {e}") }]),
    };
    let mut errors = Vec::new();
    for h in &headers {
        if !COLUMNS.contains(&h.as_str()) {
            errors.push(RowError { line: 1, column: h.clone(), reason: format!("unknown column (known: {})", COLUMNS.join(", ")) });
        }
    }
    for req in ["name", "area", "address", "type"] {
        if !headers.iter().any(|h| h == req) {
            errors.push(RowError { line: 1, column: req.into(), reason: "required column missing".into() });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let col = |name: &str| headers.iter().position(|h| h == name);
    let mut points = Vec::new();
    let mut names = std::collections::HashMap::new();
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
        let get = |name: &str| col(name).and_then(|i| rec.get(i)).filter(|s| !s.is_empty());
        let mut row_errs = Vec::new();
        let mut err = |column: &str, reason: String| row_errs.push(RowError { line, column: column.into(), reason });

        let name = get("name").map(str::to_owned);
        if name.is_none() {
            err("name", "empty".into());
        }
        let area = match get("area").map(|s| s.to_ascii_lowercase()) {
            Some(a) => match a.as_str() {
                "coil" | "coils" | "0x" => Some(Area::Coil),
                "discrete" | "discrete_input" | "1x" => Some(Area::Discrete),
                "input" | "input_register" | "3x" => Some(Area::Input),
                "holding" | "holding_register" | "4x" => Some(Area::Holding),
                _ => {
                    err("area", format!("{a:?} is not one of coil, discrete, input, holding"));
                    None
                }
            },
            None => {
                err("area", "empty".into());
                None
            }
        };
        let address = match get("address").map(|s| s.parse::<u32>()) {
            Some(Ok(a)) if a <= 65535 => Some(a as u16),
            Some(Ok(a)) => {
                err("address", format!("{a} is above 65535; give the 0-based protocol address, not a 40001-style register number"));
                None
            }
            Some(Err(_)) => {
                err("address", format!("{:?} is not a number", get("address").unwrap_or_default()));
                None
            }
            None => {
                err("address", "empty".into());
                None
            }
        };
        let data_type = match get("type").map(|s| s.to_ascii_lowercase()) {
            Some(t) => match t.as_str() {
                "bool" | "coil" | "discrete" => Some(DataType::Bool),
                "u16" | "uint16" => Some(DataType::U16),
                "i16" | "int16" => Some(DataType::I16),
                "u32" | "uint32" => Some(DataType::U32),
                "i32" | "int32" => Some(DataType::I32),
                "u64" | "uint64" => Some(DataType::U64),
                "i64" | "int64" => Some(DataType::I64),
                "f32" | "float" | "float32" => Some(DataType::F32),
                "f64" | "double" | "float64" => Some(DataType::F64),
                "bit" => Some(DataType::Bit),
                "string" | "str" => Some(DataType::String),
                _ => {
                    err("type", format!("{t:?} is not one of bool, u16, i16, u32, i32, u64, i64, f32, f64, bit, string"));
                    None
                }
            },
            None => {
                err("type", "empty".into());
                None
            }
        };
        let order = match get("order").map(|s| s.to_ascii_uppercase()) {
            None => ByteOrder::ABCD,
            Some(o) => match o.as_str() {
                "ABCD" | "BIG" => ByteOrder::ABCD,
                "CDAB" => ByteOrder::CDAB,
                "BADC" => ByteOrder::BADC,
                "DCBA" | "LITTLE" => ByteOrder::DCBA,
                _ => {
                    err("order", format!("{o:?} is not one of ABCD, CDAB, BADC, DCBA"));
                    ByteOrder::ABCD
                }
            },
        };
        macro_rules! num {
            ($c:expr, $t:ty) => {
                match get($c).map(|s| s.parse::<$t>()) {
                    None => None,
                    Some(Ok(v)) => Some(v),
                    Some(Err(_)) => {
                        err($c, format!("{:?} is not a valid {}", get($c).unwrap_or_default(), stringify!($t)));
                        None
                    }
                }
            };
        }
        let bit = num!("bit", u8);
        let length = num!("length", u16);
        let scale = num!("scale", f64).unwrap_or(1.0);
        let offset = num!("offset", f64).unwrap_or(0.0);
        let min = num!("min", f64);
        let max = num!("max", f64);
        let decimals = num!("decimals", u8);
        let new_block = match get("new_block").map(|s| s.to_ascii_lowercase()) {
            None => false,
            Some(b) => match b.as_str() {
                "yes" | "y" | "true" | "1" | "x" => true,
                "no" | "n" | "false" | "0" => false,
                _ => {
                    err("new_block", format!("{b:?} is not yes or no"));
                    false
                }
            },
        };
        let access = match get("access").map(|s| s.to_ascii_lowercase()) {
            None => Access::R,
            Some(a) => match a.as_str() {
                "r" | "ro" | "read" => Access::R,
                "rw" | "w" | "write" | "readwrite" => Access::Rw,
                _ => {
                    err("access", format!("{a:?} is not r or rw"));
                    Access::R
                }
            },
        };
        if let (Some(name), Some(area), Some(address), Some(data_type)) = (name, area, address, data_type) {
            let p = PointConfig {
                name,
                area,
                address,
                data_type,
                order,
                bit,
                length,
                scale,
                offset,
                new_block,
                group: get("group").unwrap_or("default").to_owned(),
                access,
                min,
                max,
                decimals,
                unit: get("unit").unwrap_or_default().to_owned(),
            };
            if row_errs.is_empty() {
                // The same checks as a point in the TOML file; the column is the field.
                let mut found = Findings::default();
                p.check(&Scope::root(), &mut found);
                row_errs.extend(found.0.into_iter().map(|f| RowError { line, column: f.field, reason: f.reason }));
            }
            if row_errs.is_empty() {
                if let Some(prev) = names.insert(p.name.clone(), line) {
                    row_errs.push(RowError { line, column: "name".into(), reason: format!("duplicate of line {prev}") });
                }
            }
            if row_errs.is_empty() {
                points.push(p);
            }
        }
        errors.extend(row_errs);
    }
    if errors.is_empty() {
        Ok(points)
    } else {
        Err(errors)
    }
}

/// Writes a point table in the same format `parse` reads.
pub fn write(points: &[PointConfig]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(&COLUMNS[..WRITTEN]);
    for p in points {
        let o = |v: Option<String>| v.unwrap_or_default();
        let _ = w.write_record([
            p.name.clone(),
            p.area.to_string(),
            p.address.to_string(),
            p.data_type.to_string(),
            p.order.to_string(),
            o(p.bit.map(|b| b.to_string())),
            o(p.length.map(|b| b.to_string())),
            p.scale.to_string(),
            p.offset.to_string(),
            p.group.clone(),
            p.access.to_string(),
            o(p.min.map(|b| b.to_string())),
            o(p.max.map(|b| b.to_string())),
            o(p.decimals.map(|b| b.to_string())),
            p.unit.clone(),
            if p.new_block { "yes" } else { "" }.to_string(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_with_bad_rows_reports_each_row_and_column() {
        let t = "Name,Area,Address,Type,Scale,Bit\n\
                 P,holding,0,f32,0.1,\n\
                 Q,holding,400001,u16,,\n\
                 R,holding,2,flaot,,\n\
                 S,coil,3,u16,,\n\
                 T,holding,4,bit,,17\n\
                 P,input,5,u16,,\n";
        let t = t.replace("Bit\n", "Bit,New_Block\n").replace("Q,holding,400001,u16,,\n", "Q,holding,400001,u16,,,maybe\n");
        let errs = parse(&t).unwrap_err();
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(got.len(), 6, "{got:#?}");
        assert!(got[0].starts_with("line 3, column \"address\": 400001 is above 65535"), "{}", got[0]);
        assert_eq!(got[1], "line 3, column \"new_block\": \"maybe\" is not yes or no");
        assert!(got[2].starts_with("line 4, column \"type\": \"flaot\""), "{}", got[2]);
        assert!(got[3].starts_with("line 5, column \"type\":"), "{}", got[3]);
        assert!(got[4].starts_with("line 6, column \"bit\": 17"), "{}", got[4]);
        assert_eq!(got[5], "line 7, column \"name\": duplicate of line 2");
    }

    #[test]
    fn write_then_parse_gives_the_same_points() {
        let t = "name,area,address,type,order,scale,access,min,max,unit,new_block\nP,holding,0,f32,CDAB,0.1,rw,0,100,kW,\nB,coil,7,bool,,,rw,,,,yes\n";
        let pts = parse(t).unwrap();
        assert!(!pts[0].new_block && pts[1].new_block);
        assert_eq!(parse(&write(&pts)).unwrap(), pts);
    }
}
