//! Human sizes and counts, as users write them on command lines and in environment
//! variables: `4096`, `4KiB`, `8MB`, `1.5GB`, `1GiB`; counts `1000`, `1k`, `10m`.

use crate::error::{Error, Result};

/// Bytes in `s`: a number with an optional unit. Decimal units (`KB`, `MB`, `GB`, `TB`, and
/// `K`, `M`, `G`, `T`) are powers of 1,000; binary ones (`KiB`, `MiB`, `GiB`, `TiB`) of 1,024.
/// Units are case-insensitive; a trailing `B` alone means bytes. Fractions are allowed with a
/// unit (`1.5GB`) and rounded down to whole bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let (num, unit, raw_unit) = split_number(s);
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => {
            return Err(Error::invalid_input(format!(
                "size '{s}': unknown unit '{}' (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)",
                raw_unit
            )))
        }
    };
    scaled(s, &num, mult, "size")
}

/// A count with an optional `k` (thousand), `m` (million) or `g`/`b` (billion) suffix.
pub fn parse_count(s: &str) -> Result<u64> {
    let (num, unit, raw_unit) = split_number(s);
    let mult: u64 = match unit.as_str() {
        "" => 1,
        "k" => 1_000,
        "m" => 1_000_000,
        "g" | "b" => 1_000_000_000,
        _ => {
            return Err(Error::invalid_input(format!(
                "count '{s}': unknown suffix '{}' (use k, m or g)",
                raw_unit
            )))
        }
    };
    scaled(s, &num, mult, "count")
}

/// `" 1.5 GiB "` -> (`"1.5"`, `"gib"`, `"GiB"`): the number (underscores dropped), the unit
/// lowercased for matching, and the unit as written for error messages.
fn split_number(s: &str) -> (String, String, &str) {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let raw_unit = t[split..].trim();
    (
        t[..split].replace('_', ""),
        raw_unit.to_ascii_lowercase(),
        raw_unit,
    )
}

fn scaled(orig: &str, num: &str, mult: u64, what: &str) -> Result<u64> {
    let bad = || Error::invalid_input(format!("{what} '{orig}' is not a number"));
    if num.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| Error::invalid_input(format!("{what} '{orig}' is too large")));
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    if mult == 1 {
        return Err(Error::invalid_input(format!(
            "{what} '{orig}': a fraction needs a unit"
        )));
    }
    let v = f * mult as f64;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(Error::invalid_input(format!(
            "{what} '{orig}' is too large"
        )));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("8MB").unwrap(), 8_000_000);
        assert_eq!(parse_size("8mib").unwrap(), 8 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_size(" 16 MiB ").unwrap(), 16 << 20);
        assert_eq!(parse_size("10B").unwrap(), 10);
        for bad in [
            "",
            "MiB",
            "12XB",
            "1.5",
            "-3",
            "1..2GB",
            "99999999999999TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("12XB")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("1000").unwrap(), 1000);
        assert_eq!(parse_count("1k").unwrap(), 1000);
        assert_eq!(parse_count("10m").unwrap(), 10_000_000);
        assert_eq!(parse_count("2.5k").unwrap(), 2500);
        assert!(parse_count("3x").is_err());
        assert!(parse_count("").is_err());
    }
}
