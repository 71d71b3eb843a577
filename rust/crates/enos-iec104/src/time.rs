//! CP56Time2a (7 octets: milliseconds, minute+IV, hour+SU, day of month+day of week, month, year
//! 00-99 meaning 2000-2099) to and from Unix milliseconds.
//!
//! The octets carry the station's wall-clock time without a zone. We assume UTC unless the
//! settings give the station's offset (`Settings::station_utc_offset_minutes`); the SU (summer
//! time) bit is reported but not applied, because a station that sets it already counts local
//! summer time in its fields and its configured offset must say so.

use crate::error::DecodeErrorKind;

/// A device time tag as Unix milliseconds (UTC) with the tag's own flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeTag {
    pub unix_ms: i64,
    /// IV: the station says this time is not valid (e.g. its clock is not synchronised).
    pub invalid: bool,
    /// SU: the station counts summer time.
    pub summer: bool,
}

const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    days_from_civil(if m == 12 { y + 1 } else { y }, if m == 12 { 1 } else { m + 1 }, 1) - days_from_civil(y, m, 1)
}

/// Decodes 7 octets; `offset_min` is the station's offset from UTC.
pub fn decode(b: &[u8; 7], offset_min: i32) -> Result<TimeTag, DecodeErrorKind> {
    let ms = i64::from(u16::from_le_bytes([b[0], b[1]]));
    let (min, hour, day, month) = (i64::from(b[2] & 0x3f), i64::from(b[3] & 0x1f), i64::from(b[4] & 0x1f), i64::from(b[5] & 0x0f));
    let year = 2000 + i64::from(b[6] & 0x7f);
    if ms > 59_999 {
        return Err(DecodeErrorKind::BadTime("milliseconds above 59999"));
    }
    if min > 59 {
        return Err(DecodeErrorKind::BadTime("minute above 59"));
    }
    if hour > 23 {
        return Err(DecodeErrorKind::BadTime("hour above 23"));
    }
    if !(1..=12).contains(&month) {
        return Err(DecodeErrorKind::BadTime("month not 1-12"));
    }
    if b[6] & 0x7f > 99 {
        return Err(DecodeErrorKind::BadTime("year above 99"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(DecodeErrorKind::BadTime("day not in the month"));
    }
    let local = days_from_civil(year, month, day) * DAY_MS + hour * 3_600_000 + min * 60_000 + ms;
    Ok(TimeTag { unix_ms: local - i64::from(offset_min) * 60_000, invalid: b[2] & 0x80 != 0, summer: b[3] & 0x80 != 0 })
}

/// Encodes Unix milliseconds as the station's wall-clock time (years 2000-2099 only).
pub fn encode(unix_ms: i64, offset_min: i32) -> Option<[u8; 7]> {
    let local = unix_ms + i64::from(offset_min) * 60_000;
    let (days, in_day) = (local.div_euclid(DAY_MS), local.rem_euclid(DAY_MS));
    let (y, m, d) = civil_from_days(days);
    if !(2000..=2099).contains(&y) {
        return None;
    }
    let ms = (in_day % 60_000) as u16;
    let min = (in_day / 60_000 % 60) as u8;
    let hour = (in_day / 3_600_000) as u8;
    let weekday = ((days + 3).rem_euclid(7) + 1) as u8; // 1 = Monday; 1970-01-01 was a Thursday
    let [ms0, ms1] = ms.to_le_bytes();
    Some([ms0, ms1, min, hour, d as u8 | (weekday << 5), m as u8, (y - 2000) as u8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instant_round_trips() {
        // 2024-02-29 13:45:12.345 UTC, a Thursday
        let ms = 1_709_214_312_345;
        let b = encode(ms, 0).unwrap();
        assert_eq!(b, [0x39, 0x30, 45, 13, 29 | (4 << 5), 2, 24]);
        assert_eq!(decode(&b, 0).unwrap(), TimeTag { unix_ms: ms, invalid: false, summer: false });
    }

    #[test]
    fn offset_and_flags() {
        let ms = 1_709_214_312_345;
        let b = encode(ms, 120).unwrap();
        assert_eq!(b[3], 15, "two hours ahead on the station's clock");
        assert_eq!(decode(&b, 120).unwrap().unix_ms, ms);
        let mut flagged = b;
        flagged[2] |= 0x80;
        flagged[3] |= 0x80;
        let t = decode(&flagged, 120).unwrap();
        assert!(t.invalid && t.summer);
        assert_eq!(t.unix_ms, ms);
    }

    #[test]
    fn every_day_of_a_century_round_trips() {
        let start = days_from_civil(2000, 1, 1);
        for day in (start..start + 36_500).step_by(7) {
            let ms = day * DAY_MS + 12_345_678;
            assert_eq!(decode(&encode(ms, 0).unwrap(), 0).unwrap().unix_ms, ms);
        }
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert_eq!(decode(&[0, 0, 0, 0, 30, 2, 24], 0), Err(DecodeErrorKind::BadTime("day not in the month")));
        assert_eq!(decode(&[0, 0, 0, 0, 1, 13, 24], 0), Err(DecodeErrorKind::BadTime("month not 1-12")));
        assert_eq!(decode(&[0x60, 0xea, 0, 0, 1, 1, 24], 0), Err(DecodeErrorKind::BadTime("milliseconds above 59999")));
    }
}
