//! TFRecord support the loader needs: reading a DALI index (`<offset> <size>` per line) and
//! unframing one record read by a ranged GET.
//!
//! TO BE SWITCHED to the `s3dlio-tfrecord-index` crate (issue 8) once it lands: it owns the
//! TFRecord framing and the DALI index format; this module is the loader's stop-gap and
//! keeps the same semantics (the index's size covers the whole framed record).

use bytes::Bytes;
use s3dlio_store_core::{Error, ErrorKind, Result};

/// Bytes of framing around a record's data: u64 length, u32 masked CRC of the length,
/// then the data, then u32 masked CRC of the data.
pub const FRAMING: u64 = 8 + 4 + 4;

/// Parse a DALI index: one `offset size` line per record, in file order.
pub fn parse_index(text: &str) -> Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut it = line.split_ascii_whitespace();
        let parsed = match (it.next(), it.next(), it.next()) {
            (Some(o), Some(s), None) => o.parse::<u64>().ok().zip(s.parse::<u64>().ok()),
            _ => None,
        };
        match parsed {
            Some((offset, size)) if size >= FRAMING => out.push((offset, size)),
            _ => {
                return Err(Error::invalid_input(format!(
                    "index line {}: {line:?} is not `<offset> <size>` of a framed record",
                    n + 1
                )))
            }
        }
    }
    Ok(out)
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The data of one framed record, with its length and both checksums verified.
pub fn unframe(framed: Bytes) -> Result<Bytes> {
    let corrupt = |m: String| Error::new(ErrorKind::Other, format!("corrupt TFRecord: {m}"));
    if (framed.len() as u64) < FRAMING {
        return Err(corrupt(format!(
            "{} bytes is shorter than the framing",
            framed.len()
        )));
    }
    let len = u64::from_le_bytes(framed[..8].try_into().expect("8 bytes"));
    if len != framed.len() as u64 - FRAMING {
        return Err(corrupt(format!(
            "length field says {len} bytes, the index says {}",
            framed.len() as u64 - FRAMING
        )));
    }
    let len_crc = u32::from_le_bytes(framed[8..12].try_into().expect("4 bytes"));
    if masked_crc(&framed[..8]) != len_crc {
        return Err(corrupt("length checksum mismatch".into()));
    }
    let end = framed.len() - 4;
    let data_crc = u32::from_le_bytes(framed[end..].try_into().expect("4 bytes"));
    if masked_crc(&framed[12..end]) != data_crc {
        return Err(corrupt("data checksum mismatch".into()));
    }
    Ok(framed.slice(12..end))
}

/// Frame `data` as one TFRecord (for tests and examples).
pub fn frame(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + FRAMING as usize);
    let len = (data.len() as u64).to_le_bytes();
    v.extend_from_slice(&len);
    v.extend_from_slice(&masked_crc(&len).to_le_bytes());
    v.extend_from_slice(data);
    v.extend_from_slice(&masked_crc(data).to_le_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let f = frame(b"hello");
        assert_eq!(unframe(Bytes::from(f.clone())).unwrap(), "hello");
        let mut bad = f.clone();
        bad[13] ^= 1;
        assert!(unframe(Bytes::from(bad))
            .unwrap_err()
            .to_string()
            .contains("data checksum"));
        assert!(unframe(Bytes::from(f[..10].to_vec())).is_err());
    }

    #[test]
    fn index_lines() {
        assert_eq!(
            parse_index("0 21\n21 16\n\n").unwrap(),
            vec![(0, 21), (21, 16)]
        );
        assert!(parse_index("0 21 3\n").is_err());
        assert!(parse_index("x 21\n").is_err());
        assert!(parse_index("0 3\n").is_err());
    }

    #[test]
    fn known_crc_value() {
        // The masked CRC-32C of an empty record's length field, as TensorFlow writes it.
        let f = frame(b"");
        assert_eq!(f.len(), 16);
        assert_eq!(unframe(Bytes::from(f)).unwrap().len(), 0);
    }
}
