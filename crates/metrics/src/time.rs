//! Wall-clock timestamps as the op-log writes them: RFC 3339 in UTC with nanoseconds
//! (`2026-11-27T19:41:08.123456789Z`), parsed back with any number of fraction digits and
//! any UTC offset, as Go's `time.RFC3339Nano` (which warp uses) writes them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (negative before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i128);

const NANOS_PER_SEC: i128 = 1_000_000_000;
const SECS_PER_DAY: i128 = 86_400;

impl Timestamp {
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(d.as_nanos() as i128),
            Err(e) => Self(-(e.duration().as_nanos() as i128)),
        }
    }

    /// This timestamp moved by `nanos` (negative: earlier).
    pub fn offset(self, nanos: i128) -> Self {
        Self(self.0 + nanos)
    }

    pub fn plus(self, d: Duration) -> Self {
        Self(self.0 + d.as_nanos() as i128)
    }

    /// Nanoseconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn nanos_since(self, earlier: Self) -> i128 {
        self.0 - earlier.0
    }

    /// Parse RFC 3339: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; None for an instant
    /// outside the years 0000 to 9999 in UTC, which could not be written back.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i128> {
            let t = s.get(r)?;
            if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 {
            return None;
        }
        if sec > 60 {
            return None;
        }
        let mut i = 19;
        let mut frac: i128 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &s[start..i];
            if digits.is_empty() {
                return None;
            }
            // Keep nanosecond precision; further digits are truncated.
            for (n, c) in digits.bytes().take(9).enumerate() {
                frac += i128::from(c - b'0') * 10i128.pow(8 - n as u32);
            }
        }
        let offset_secs = match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let v = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
                if sign == b'+' {
                    v
                } else {
                    -v
                }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let secs = days * SECS_PER_DAY + hour * 3600 + min * 60 + sec - offset_secs;
        let t = secs * NANOS_PER_SEC + frac;
        // Only the instants RFC 3339 can write in UTC, years 0000 to 9999: an offset can
        // move a time written in one of them out (`0000-01-01T00:00:00+01:00` is in year
        // -1), and `Display` would then write what this does not read.
        let first = days_from_civil(0, 1, 1) * SECS_PER_DAY * NANOS_PER_SEC;
        let end = days_from_civil(10_000, 1, 1) * SECS_PER_DAY * NANOS_PER_SEC;
        (first..end).contains(&t).then_some(Self(t))
    }
}

impl fmt::Display for Timestamp {
    /// Always UTC, always nine fraction digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let days = secs.div_euclid(SECS_PER_DAY);
        let sod = secs.rem_euclid(SECS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        )
    }
}

/// Formats many timestamps quickly: the part down to the second is kept from the last
/// call, so a log writing thousands of rows a second formats each date once.
#[derive(Debug, Default)]
pub(crate) struct TimeWriter {
    sec: Option<i128>,
    prefix: String,
}

impl TimeWriter {
    /// Write `t` as [`Timestamp`]'s `Display` does.
    pub(crate) fn write(
        &mut self,
        out: &mut impl std::io::Write,
        t: Timestamp,
    ) -> std::io::Result<()> {
        let secs = t.0.div_euclid(NANOS_PER_SEC);
        let nanos = t.0.rem_euclid(NANOS_PER_SEC) as u32;
        if self.sec != Some(secs) {
            let full = Timestamp(secs * NANOS_PER_SEC).to_string();
            // Everything up to and including the '.'.
            self.prefix = full[..full.len() - 10].to_owned();
            self.sec = Some(secs);
        }
        write!(out, "{}{nanos:09}Z", self.prefix)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years).
fn days_from_civil(y: i128, m: i128, d: i128) -> i128 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i128) -> (i128, i128, i128) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back() {
        let t = Timestamp(1_764_272_468_123_456_789);
        assert_eq!(t.to_string(), "2025-11-27T19:41:08.123456789Z");
        assert_eq!(Timestamp::parse(&t.to_string()), Some(t));
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999999999Z");
        // Leap day, end of a century not divisible by 400.
        let leap = Timestamp::parse("2024-02-29T23:59:59Z").unwrap();
        assert_eq!(leap.to_string(), "2024-02-29T23:59:59.000000000Z");
        let c = Timestamp::parse("2100-03-01T00:00:00Z").unwrap();
        assert_eq!(c.to_string(), "2100-03-01T00:00:00.000000000Z");
    }

    #[test]
    fn times_outside_years_0000_to_9999_in_utc_are_refused() {
        // Found by the op-log fuzz property (read, write back, read again): these read, but
        // were written back as "-001-12-31T23:00:00.000000000Z" and "10000-01-01T...",
        // which do not read.
        for bad in [
            "0000-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:59:60Z",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
        for good in [
            "0000-01-01T00:00:00Z",
            "0000-01-01T01:00:00+01:00",
            "9999-12-31T23:59:59.999999999Z",
            "9999-12-31T22:59:59-01:00",
        ] {
            let t = Timestamp::parse(good).expect(good);
            assert_eq!(Timestamp::parse(&t.to_string()), Some(t), "{good}");
        }
    }

    #[test]
    fn the_time_writer_writes_what_display_does() {
        let mut w = TimeWriter::default();
        let mut out = Vec::new();
        for t in [
            5,
            1_764_272_468_123_456_789,
            1_764_272_468_999_999_999,
            1_764_272_469_000_000_001,
            -1,
        ] {
            out.clear();
            w.write(&mut out, Timestamp(t)).unwrap();
            assert_eq!(
                String::from_utf8(out.clone()).unwrap(),
                Timestamp(t).to_string()
            );
        }
    }

    #[test]
    fn parses_go_rfc3339nano_and_offsets() {
        // Go trims trailing zeros of the fraction.
        assert_eq!(
            Timestamp::parse("2025-11-27T19:41:08.5Z"),
            Some(Timestamp(1_764_272_468_500_000_000))
        );
        assert_eq!(
            Timestamp::parse("2025-11-27T21:41:08.5+02:00"),
            Timestamp::parse("2025-11-27T19:41:08.5Z")
        );
        for bad in [
            "",
            "2025-11-27",
            "2025-13-01T00:00:00Z",
            "2025-11-27T19:41:08",
            "x025-11-27T19:41:08Z",
            "2025-11-27T19:41:08.Z",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }
}
