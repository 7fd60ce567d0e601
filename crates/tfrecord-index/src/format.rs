//! TFRecord framing: `u64` LE length, `u32` LE masked CRC32C of the length bytes, the data,
//! `u32` LE masked CRC32C of the data.

use bytes::Bytes;

use crate::error::{FormatError, FormatErrorKind};

/// Bytes before a record's data: the length and its CRC.
pub const HEADER_LEN: usize = 12;
/// Bytes after a record's data: its CRC.
pub const FOOTER_LEN: usize = 4;
/// Framing bytes around each record's data.
pub const RECORD_OVERHEAD: u64 = (HEADER_LEN + FOOTER_LEN) as u64;

const MASK_DELTA: u32 = 0xa282_ead8;

/// TFRecord's masked CRC32C: `((crc >> 15) | (crc << 17)) + 0xa282ead8` (hardware CRC32C
/// where the CPU has it).
#[inline]
pub fn masked_crc32c(data: &[u8]) -> u32 {
    mask(crc32c::crc32c(data))
}

#[inline]
pub(crate) fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// One line of a DALI index: where a record starts and its whole framed size (length,
/// CRCs and data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexEntry {
    pub offset: u64,
    pub size: u64,
}

impl IndexEntry {
    pub fn new(offset: u64, size: u64) -> Self {
        Self { offset, size }
    }

    /// The record's data length (`size` less the 16 framing bytes).
    pub fn data_len(&self) -> u64 {
        self.size.saturating_sub(RECORD_OVERHEAD)
    }

    /// The byte after the record.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.size)
    }
}

/// Check a 12-byte header at `offset` and return the data length it announces.
#[inline]
pub(crate) fn check_header(h: &[u8], offset: u64, record: u64) -> Result<u64, FormatError> {
    let len_bytes: [u8; 8] = h[..8].try_into().expect("8 bytes");
    let want = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    let got = masked_crc32c(&len_bytes);
    if got != want {
        return Err(FormatError {
            kind: FormatErrorKind::LengthCrc,
            offset,
            record,
            detail: format!(
                "length field {} has masked CRC32C {got:#010x}, the file says {want:#010x} \
                 (corrupt, or not a TFRecord file)",
                u64::from_le_bytes(len_bytes)
            ),
        });
    }
    Ok(u64::from_le_bytes(len_bytes))
}

pub(crate) fn data_crc_error(offset: u64, record: u64, got: u32, want: u32) -> FormatError {
    FormatError {
        kind: FormatErrorKind::DataCrc,
        offset,
        record,
        detail: format!("data has masked CRC32C {got:#010x}, the file says {want:#010x}"),
    }
}

/// The data of one whole framed record (as fetched with the range of its [`IndexEntry`]),
/// without copying. The length CRC is always checked (and the length must match the
/// buffer); the data CRC when `verify` is set. `offset` and `record` only label errors.
pub fn decode_record(
    framed: &Bytes,
    offset: u64,
    record: u64,
    verify: bool,
) -> Result<Bytes, FormatError> {
    let err = |kind, detail: String| FormatError {
        kind,
        offset,
        record,
        detail,
    };
    if framed.len() < HEADER_LEN + FOOTER_LEN {
        return Err(err(
            FormatErrorKind::Truncated,
            format!("{} bytes are not a whole record", framed.len()),
        ));
    }
    let len = check_header(framed, offset, record)?;
    if len != (framed.len() - HEADER_LEN - FOOTER_LEN) as u64 {
        return Err(err(
            FormatErrorKind::Invalid,
            format!(
                "the record holds {len} bytes of data, its index entry {} (index and file differ)",
                framed.len() as u64 - RECORD_OVERHEAD
            ),
        ));
    }
    let end = framed.len() - FOOTER_LEN;
    let data = framed.slice(HEADER_LEN..end);
    if verify {
        let want = u32::from_le_bytes(framed[end..].try_into().expect("4 bytes"));
        let got = masked_crc32c(&data);
        if got != want {
            return Err(data_crc_error(offset, record, got, want));
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_known_value() {
        // CRC32C("123456789") = 0xe3069283 (the standard check value), masked by hand.
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
    }
}
