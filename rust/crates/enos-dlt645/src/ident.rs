//! Data identifiers (DI3 DI2 DI1 DI0, sent low byte first) and the table of the ones a meter
//! reader needs most, with their standard formats. A [`Point`] is what the caller keeps per
//! configured value: an identifier and the format to decode it with.

use crate::format::Format;
use std::fmt;

/// A data identifier, written as the standard prints it ("02010100": DI3 first).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identifier(pub u32);

impl Identifier {
    pub fn parse(text: &str) -> Result<Identifier, String> {
        let t = text.trim();
        match u32::from_str_radix(t, 16) {
            // from_str_radix takes a leading '+': "+2010100" is not 8 digits.
            Ok(v) if t.len() == 8 && t.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(Identifier(v)),
            _ => Err(format!("data identifier \"{text}\": 8 hexadecimal digits expected, such as \"02010100\"")),
        }
    }

    /// The four bytes as they go on the wire (DI0 first).
    pub fn wire(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}", self.0)
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A known identifier: its standard format and what it is (with the unit).
pub struct Known {
    pub id: Identifier,
    pub format: Format,
    pub name: &'static str,
    pub unit: &'static str,
}

const fn num(digits: u8, decimals: u8, signed: bool) -> Format {
    Format::Number { digits, decimals, signed }
}

const fn k(id: u32, format: Format, name: &'static str, unit: &'static str) -> Known {
    Known { id: Identifier(id), format, name, unit }
}

/// DL/T 645-2007 appendix A: the identifiers most meters are read for. Energy and voltage are
/// unsigned; current, power and power factor carry a sign (the direction of the flow).
pub static KNOWN: &[Known] = &[
    k(0x0000_0000, num(8, 2, true), "combined active energy, total", "kWh"),
    k(0x0001_0000, num(8, 2, false), "forward active energy, total", "kWh"),
    k(0x0001_0100, num(8, 2, false), "forward active energy, tariff 1", "kWh"),
    k(0x0001_0200, num(8, 2, false), "forward active energy, tariff 2", "kWh"),
    k(0x0001_0300, num(8, 2, false), "forward active energy, tariff 3", "kWh"),
    k(0x0001_0400, num(8, 2, false), "forward active energy, tariff 4", "kWh"),
    k(0x0002_0000, num(8, 2, false), "reverse active energy, total", "kWh"),
    k(0x0015_0000, num(8, 2, false), "forward active energy, phase A", "kWh"),
    k(0x0029_0000, num(8, 2, false), "forward active energy, phase B", "kWh"),
    k(0x003D_0000, num(8, 2, false), "forward active energy, phase C", "kWh"),
    k(0x0201_0100, num(4, 1, false), "voltage, phase A", "V"),
    k(0x0201_0200, num(4, 1, false), "voltage, phase B", "V"),
    k(0x0201_0300, num(4, 1, false), "voltage, phase C", "V"),
    k(0x0202_0100, num(6, 3, true), "current, phase A", "A"),
    k(0x0202_0200, num(6, 3, true), "current, phase B", "A"),
    k(0x0202_0300, num(6, 3, true), "current, phase C", "A"),
    k(0x0203_0000, num(6, 4, true), "active power, total", "kW"),
    k(0x0203_0100, num(6, 4, true), "active power, phase A", "kW"),
    k(0x0203_0200, num(6, 4, true), "active power, phase B", "kW"),
    k(0x0203_0300, num(6, 4, true), "active power, phase C", "kW"),
    k(0x0204_0000, num(6, 4, true), "reactive power, total", "kvar"),
    k(0x0204_0100, num(6, 4, true), "reactive power, phase A", "kvar"),
    k(0x0204_0200, num(6, 4, true), "reactive power, phase B", "kvar"),
    k(0x0204_0300, num(6, 4, true), "reactive power, phase C", "kvar"),
    k(0x0205_0000, num(6, 4, true), "apparent power, total", "kVA"),
    k(0x0205_0100, num(6, 4, true), "apparent power, phase A", "kVA"),
    k(0x0205_0200, num(6, 4, true), "apparent power, phase B", "kVA"),
    k(0x0205_0300, num(6, 4, true), "apparent power, phase C", "kVA"),
    k(0x0206_0000, num(4, 3, true), "power factor, total", ""),
    k(0x0206_0100, num(4, 3, true), "power factor, phase A", ""),
    k(0x0206_0200, num(4, 3, true), "power factor, phase B", ""),
    k(0x0206_0300, num(4, 3, true), "power factor, phase C", ""),
    k(0x0280_0001, num(6, 3, true), "neutral current", "A"),
    k(0x0280_0002, num(4, 2, false), "grid frequency", "Hz"),
    k(0x0400_0101, Format::Date, "meter date and weekday", ""),
    k(0x0400_0102, Format::Time, "meter time", ""),
];

pub fn known(id: Identifier) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.id == id)
}

/// One value to read: an identifier and its format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    pub id: Identifier,
    pub format: Format,
}

impl Point {
    /// A point from its configuration: a known identifier takes its standard format unless
    /// `format` (and `signed`) override it; an unknown one needs a format.
    pub fn new(id: &str, format: Option<&str>, signed: Option<bool>) -> Result<Point, String> {
        Point::of(Identifier::parse(id)?, format, signed)
    }

    /// [`Point::new`] for an identifier already parsed.
    pub fn of(id: Identifier, format: Option<&str>, signed: Option<bool>) -> Result<Point, String> {
        let standard = known(id).map(|k| k.format);
        let format = match (format, standard) {
            (Some(f), std) => {
                let std_signed = matches!(std, Some(Format::Number { signed: true, .. }));
                Format::parse(f, signed.unwrap_or(std_signed))?
            }
            (None, Some(Format::Number { digits, decimals, signed: s })) => {
                Format::Number { digits, decimals, signed: signed.unwrap_or(s) }
            }
            (None, Some(_)) if signed == Some(true) => return Err(format!("data identifier {id} is a date or time and cannot be signed")),
            (None, Some(std)) => std,
            (None, None) => {
                return Err(format!("data identifier {id} is not in the table of known identifiers: give its format (such as \"XXX.X\")"))
            }
        };
        Ok(Point { id, format })
    }
}

impl Point {
    /// A point as the collector's configuration writes it: `format` with a leading `-` for a
    /// signed value ("-XX.XXXX"), absent for a known identifier's standard format.
    pub fn configured(id: Identifier, format: Option<&str>) -> Result<Point, String> {
        match format.map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) => match f.strip_prefix('-') {
                Some(unsigned) => Point::of(id, Some(unsigned), Some(true)),
                None => Point::of(id, Some(f), Some(false)),
            },
            None => Point::of(id, None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_config(id: &str, format: Option<&str>) -> Result<Point, String> {
        Point::configured(Identifier::parse(id)?, format)
    }

    #[test]
    fn known_identifiers_take_their_format_and_may_override_it() {
        let p = Point::new("02020100", None, None).unwrap();
        assert_eq!(p.format, num(6, 3, true), "current is signed XXX.XXX");
        assert_eq!(p.id.wire(), [0x00, 0x01, 0x02, 0x02], "sent low byte first");
        assert_eq!(Point::new("02010100", Some("XXX.XX"), None).unwrap().format, num(5, 2, false));
        assert_eq!(Point::new("02010100", None, Some(true)).unwrap().format, num(4, 1, true));
        assert_eq!(Point::new("04000102", None, None).unwrap().format, Format::Time);
        assert_eq!(Point::new("02990100", Some("XX.XX"), Some(true)).unwrap().format, num(4, 2, true));
    }

    #[test]
    fn points_as_the_collector_configures_them() {
        assert_eq!(from_config("02020100", None).unwrap().format, num(6, 3, true));
        assert_eq!(from_config("02020100", Some("XXX.XXX")).unwrap().format, num(6, 3, false));
        assert_eq!(from_config("02990100", Some("-XX.XX")).unwrap().format, num(4, 2, true));
        assert_eq!(from_config("04000101", Some("")).unwrap().format, Format::Date);
        assert!(from_config("02990100", None).unwrap_err().contains("give its format"));
    }

    #[test]
    fn bad_points_are_refused_in_words() {
        assert_eq!(
            Point::new("02990100", None, None).unwrap_err(),
            "data identifier 02990100 is not in the table of known identifiers: give its format (such as \"XXX.X\")"
        );
        assert!(Point::new("0201010", None, None).unwrap_err().contains("8 hexadecimal digits"));
        assert!(Point::new("0201010G", None, None).unwrap_err().contains("\"0201010G\""));
        assert!(Point::new("04000101", None, Some(true)).unwrap_err().contains("cannot be signed"));
    }

    #[test]
    fn the_table_has_no_duplicates() {
        for (i, a) in KNOWN.iter().enumerate() {
            assert!(KNOWN[i + 1..].iter().all(|b| b.id != a.id), "{} twice", a.id);
        }
    }
}
