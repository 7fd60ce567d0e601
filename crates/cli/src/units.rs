//! Values as users type them and as people read them: sizes, counts, times, JSON strings.

use std::time::SystemTime;

/// A byte size for clap: `4096`, `4KiB`, `8MB`, `1.5GB`, `1GiB`.
pub fn size_arg(s: &str) -> Result<u64, String> {
    s3dlio_store_core::parse_size(s).map_err(|e| e.message().to_owned())
}

/// A size for clap that must be at least 1 byte.
pub fn positive_size_arg(s: &str) -> Result<u64, String> {
    match size_arg(s)? {
        0 => Err(format!("'{s}' must be at least 1 byte")),
        n => Ok(n),
    }
}

/// A count for clap: `1000`, `1k`, `10m`.
pub fn count_arg(s: &str) -> Result<u64, String> {
    s3dlio_store_core::parse_count(s).map_err(|e| e.message().to_owned())
}

/// A count for clap that must be at least 1 (concurrency, factors).
pub fn positive_count_arg(s: &str) -> Result<u64, String> {
    match count_arg(s)? {
        0 => Err(format!("'{s}' must be at least 1")),
        n => Ok(n),
    }
}

/// `1.5 MiB`-style sizes (binary units, one decimal; bytes below 1 KiB exact).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// RFC 3339 UTC with second precision (`2025-01-31T12:00:00Z`); `-` when unknown.
pub fn rfc3339(t: Option<SystemTime>) -> String {
    let Some(t) = t else {
        return "-".to_owned();
    };
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (era-based conversion: 400-year
/// eras of 146,097 days, years starting in March so the leap day falls last).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value for an optional string.
pub fn json_opt(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_owned(), json_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }

    #[test]
    fn times() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661);
        assert_eq!(rfc3339(Some(t)), "2000-02-29T01:01:01Z");
        assert_eq!(
            rfc3339(Some(SystemTime::UNIX_EPOCH)),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(rfc3339(None), "-");
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
        assert_eq!(json_opt(None), "null");
    }

    #[test]
    fn args_reject_garbage_clearly() {
        assert_eq!(size_arg("1.5GB").unwrap(), 1_500_000_000);
        assert!(size_arg("12XB").unwrap_err().contains("unknown unit"));
        assert_eq!(count_arg("10m").unwrap(), 10_000_000);
        assert!(positive_count_arg("0").unwrap_err().contains("at least 1"));
    }
}
