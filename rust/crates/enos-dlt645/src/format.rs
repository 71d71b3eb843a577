//! Data formats of DL/T 645 values and their decoding. Every value is BCD, its low byte first on
//! the wire; a signed value keeps its sign in the top bit of the most significant (last) byte.

use std::fmt;

/// How the bytes of one data identifier are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `digits` BCD digits of which `decimals` after the point ("XXX.XXX": 6, 3).
    Number { digits: u8, decimals: u8, signed: bool },
    /// YYMMDDWW: date and weekday (0 = Sunday).
    Date,
    /// YYMMDD: a date without weekday.
    DateOnly,
    /// hhmmss.
    Time,
    /// YYMMDDhhmm.
    DateTimeMinutes,
    /// YYMMDDhhmmss.
    DateTime,
}

impl Format {
    /// Parses a format as the standard writes it: "XXXXXX.XX", "XX.XXXX", "NNNN", "YYMMDDWW",
    /// "hhmmss", "YYMMDDhhmm", "YYMMDDhhmmss". `signed` marks a number whose top bit is a sign.
    pub fn parse(text: &str, signed: bool) -> Result<Format, String> {
        let fixed = match text {
            "YYMMDDWW" => Some(Format::Date),
            "YYMMDD" => Some(Format::DateOnly),
            "hhmmss" => Some(Format::Time),
            "YYMMDDhhmm" => Some(Format::DateTimeMinutes),
            "YYMMDDhhmmss" => Some(Format::DateTime),
            _ => None,
        };
        if let Some(f) = fixed {
            return match signed {
                false => Ok(f),
                true => Err(format!("format \"{text}\" is a date or time and cannot be signed")),
            };
        }
        let bad = || {
            format!("format \"{text}\": expected digits as X or N with at most one decimal point (\"XXX.X\"), or YYMMDDWW, YYMMDD, hhmmss, YYMMDDhhmm, YYMMDDhhmmss")
        };
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let is_digits = |s: &str| s.bytes().all(|b| matches!(b, b'X' | b'x' | b'N' | b'n'));
        if !is_digits(int) || !is_digits(frac) || (text.contains('.') && frac.is_empty()) {
            return Err(bad());
        }
        let digits = int.len() + frac.len();
        if digits == 0 || digits > 16 {
            return Err(format!("format \"{text}\": 1 to 16 digits expected, it has {digits}"));
        }
        Ok(Format::Number { digits: digits as u8, decimals: frac.len() as u8, signed })
    }

    /// Bytes this format takes on the wire.
    pub fn len(&self) -> usize {
        match *self {
            Format::Number { digits, .. } => (digits as usize).div_ceil(2),
            Format::Date => 4,
            Format::DateOnly | Format::Time => 3,
            Format::DateTimeMinutes => 5,
            Format::DateTime => 6,
        }
    }

    /// Always false: every format takes at least one byte (for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Decodes exactly [`Format::len`] bytes (as they came, low byte first, offset 0x33 removed).
    pub fn decode(&self, bytes: &[u8]) -> Result<Reading, String> {
        if bytes.len() != self.len() {
            return Err(format!("{} bytes arrived for format {self}, which takes {}", bytes.len(), self.len()));
        }
        // Most significant byte first from here on.
        let mut b: Vec<u8> = bytes.iter().rev().copied().collect();
        match *self {
            Format::Number { decimals, signed, .. } => {
                let negative = signed && b[0] & 0x80 != 0;
                if signed {
                    b[0] &= 0x7F;
                }
                let mut n: u64 = 0;
                for byte in &b {
                    n = n * 100 + bcd(*byte)? as u64;
                }
                let v = n as f64 / 10f64.powi(decimals as i32);
                Ok(Reading::Number(if negative { -v } else { v }))
            }
            _ => {
                let f: Vec<u8> = b.iter().map(|x| bcd(*x)).collect::<Result<_, _>>()?;
                let date = |y: u8, m: u8, d: u8| -> Result<(u16, u8, u8), String> {
                    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
                        return Err(format!("{self} holds no valid date (month {m}, day {d})"));
                    }
                    Ok((2000 + y as u16, m, d))
                };
                let time = |h: u8, mi: u8, s: u8| -> Result<(u8, u8, u8), String> {
                    if h > 23 || mi > 59 || s > 59 {
                        return Err(format!("{self} holds no valid time of day ({h:02}:{mi:02}:{s:02})"));
                    }
                    Ok((h, mi, s))
                };
                match *self {
                    Format::Date => {
                        let (year, month, day) = date(f[0], f[1], f[2])?;
                        if f[3] > 6 {
                            return Err(format!("{self} holds weekday {}, 0 (Sunday) to 6 expected", f[3]));
                        }
                        Ok(Reading::Date(Date { year, month, day, weekday: Some(f[3]) }))
                    }
                    Format::DateOnly => {
                        let (year, month, day) = date(f[0], f[1], f[2])?;
                        Ok(Reading::Date(Date { year, month, day, weekday: None }))
                    }
                    Format::Time => {
                        let (hour, minute, second) = time(f[0], f[1], f[2])?;
                        Ok(Reading::Time(TimeOfDay { hour, minute, second }))
                    }
                    Format::DateTimeMinutes | Format::DateTime => {
                        let (year, month, day) = date(f[0], f[1], f[2])?;
                        let (hour, minute, second) = time(f[3], f[4], f.get(5).copied().unwrap_or(0))?;
                        Ok(Reading::DateTime(Date { year, month, day, weekday: None }, TimeOfDay { hour, minute, second }))
                    }
                    Format::Number { .. } => unreachable!("numbers are decoded above"),
                }
            }
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Format::Number { digits, decimals, signed } => {
                let int = "X".repeat((digits - decimals) as usize);
                let sign = if signed { "signed " } else { "" };
                match decimals {
                    0 => write!(f, "{sign}{int}"),
                    d => write!(f, "{sign}{int}.{}", "X".repeat(d as usize)),
                }
            }
            Format::Date => f.write_str("YYMMDDWW"),
            Format::DateOnly => f.write_str("YYMMDD"),
            Format::Time => f.write_str("hhmmss"),
            Format::DateTimeMinutes => f.write_str("YYMMDDhhmm"),
            Format::DateTime => f.write_str("YYMMDDhhmmss"),
        }
    }
}

fn bcd(b: u8) -> Result<u8, String> {
    let (hi, lo) = (b >> 4, b & 0x0F);
    if hi > 9 || lo > 9 {
        return Err(format!("byte {b:02X} is not a BCD number"));
    }
    Ok(hi * 10 + lo)
}

/// Packs a value 0..=99 as BCD (the broadcast time).
#[cfg(feature = "line")]
pub(crate) fn to_bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

/// A calendar date as the meter keeps it (its local time; the standard has no time zone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    /// 0 = Sunday; only in YYMMDDWW.
    pub weekday: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// A decoded value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reading {
    Number(f64),
    Date(Date),
    Time(TimeOfDay),
    DateTime(Date, TimeOfDay),
}

impl Reading {
    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Reading::Number(v) => Some(*v),
            _ => None,
        }
    }

    /// A date (its midnight) or date and time as a Unix timestamp, for a meter whose clock runs
    /// `utc_offset_s` seconds ahead of UTC (China: 8 h); `None` for numbers and times of day.
    pub fn unix_seconds(&self, utc_offset_s: i32) -> Option<i64> {
        let (d, t) = match *self {
            Reading::Date(d) => (d, TimeOfDay { hour: 0, minute: 0, second: 0 }),
            Reading::DateTime(d, t) => (d, t),
            _ => return None,
        };
        Some(d.days_since_epoch() * 86_400 + t.seconds_of_day() as i64 - utc_offset_s as i64)
    }
}

impl Date {
    /// Days since 1970-01-01 (proleptic Gregorian; H. Hinnant's days_from_civil).
    pub fn days_since_epoch(&self) -> i64 {
        let (m, d) = (self.month as i64, self.day as i64);
        let y = self.year as i64 - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
}

impl TimeOfDay {
    pub fn seconds_of_day(&self) -> u32 {
        self.hour as u32 * 3600 + self.minute as u32 * 60 + self.second as u32
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::Number(v) => write!(f, "{v}"),
            Reading::Date(d) => write!(f, "{d}"),
            Reading::Time(t) => write!(f, "{t}"),
            Reading::DateTime(d, t) => write!(f, "{d}T{t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(f: &str, signed: bool, wire: &[u8]) -> Result<f64, String> {
        Format::parse(f, signed)?.decode(wire).map(|r| r.as_f64().unwrap())
    }

    #[test]
    fn numbers_with_decimals_and_sign() {
        assert_eq!(num("XXX.X", false, &[0x14, 0x23]), Ok(231.4));
        assert_eq!(num("XXXXXX.XX", false, &[0x67, 0x45, 0x23, 0x01]), Ok(12345.67));
        // -5.123 A: 005123 with the sign bit on the most significant (last) byte.
        assert_eq!(num("XXX.XXX", true, &[0x23, 0x51, 0x80]), Ok(-5.123));
        assert_eq!(num("XX.XXXX", true, &[0x56, 0x34, 0x92]), Ok(-12.3456));
        // Read unsigned, the sign bit is the digit 8.
        assert_eq!(num("XXX.XXX", false, &[0x23, 0x51, 0x80]), Ok(805.123));
        assert_eq!(num("XX.XXXX", false, &[0x56, 0x34, 0xA2]).unwrap_err(), "byte A2 is not a BCD number");
        assert_eq!(num("NNNN", false, &[0x34, 0x12]), Ok(1234.0));
        assert_eq!(num("XX.XX", false, &[0x01]).unwrap_err(), "1 bytes arrived for format XX.XX, which takes 2");
    }

    #[test]
    fn dates_and_times() {
        let d = Format::Date.decode(&[0x06, 0x07, 0x12, 0x26]).unwrap();
        assert_eq!(d, Reading::Date(Date { year: 2026, month: 12, day: 7, weekday: Some(6) }));
        assert_eq!(d.to_string(), "2026-12-07");
        assert_eq!(Format::Time.decode(&[0x12, 0x30, 0x15]).unwrap().to_string(), "15:30:12");
        assert_eq!(Format::parse("YYMMDD", false).unwrap().decode(&[0x07, 0x12, 0x26]).unwrap().to_string(), "2026-12-07");
        assert_eq!(Format::DateTime.decode(&[0x05, 0x04, 0x03, 0x02, 0x01, 0x26]).unwrap().to_string(), "2026-01-02T03:04:05");
        assert_eq!(Format::Time.decode(&[0x00, 0x61, 0x10]).unwrap_err(), "hhmmss holds no valid time of day (10:61:00)");
        assert_eq!(Format::Date.decode(&[0x01, 0x01, 0x13, 0x26]).unwrap_err(), "YYMMDDWW holds no valid date (month 13, day 1)");
    }

    #[test]
    fn dates_as_unix_timestamps() {
        let day = |year, month, day| Date { year, month, day, weekday: None };
        assert_eq!(day(1970, 1, 1).days_since_epoch(), 0);
        assert_eq!(day(2000, 2, 29).days_since_epoch(), 11016);
        assert_eq!(day(2026, 12, 6).days_since_epoch(), 20793);
        let t = TimeOfDay { hour: 15, minute: 4, second: 59 };
        assert_eq!(Reading::DateTime(day(2026, 12, 6), t).unix_seconds(8 * 3600), Some(1_796_540_699));
        assert_eq!(Reading::Date(day(1970, 1, 2)).unix_seconds(0), Some(86_400));
        assert_eq!(Reading::Time(t).unix_seconds(0), None);
        assert_eq!(t.seconds_of_day(), 54_299);
    }

    #[test]
    fn formats_parse_or_say_what_is_wrong() {
        assert_eq!(Format::parse("XX.XXXX", true), Ok(Format::Number { digits: 6, decimals: 4, signed: true }));
        assert_eq!(Format::parse("XXX.X", false).unwrap().len(), 2);
        assert_eq!(Format::parse("xxx.x", false), Format::parse("XXX.X", false), "as people type it");
        assert_eq!(Format::parse("XXX.XXX", true).unwrap().to_string(), "signed XXX.XXX");
        for bad in ["", "XX.", "X.X.X", "12.3", "hh:mm"] {
            let e = Format::parse(bad, false).unwrap_err();
            assert!(e.starts_with(&format!("format \"{bad}\"")), "{e}");
        }
        assert!(Format::parse("hhmmss", true).unwrap_err().contains("cannot be signed"));
    }
}
