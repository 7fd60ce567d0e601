//! Writing TFRecord framing with correct masked CRC32C values.

use std::io::Write;

use bytes::BufMut;

use crate::format::{masked_crc32c, IndexEntry, FOOTER_LEN, HEADER_LEN, RECORD_OVERHEAD};

/// The 12 bytes before a record of `len` data bytes: the length and its masked CRC.
#[inline]
pub fn encode_header(len: u64) -> [u8; HEADER_LEN] {
    let l = len.to_le_bytes();
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&l);
    h[8..].copy_from_slice(&masked_crc32c(&l).to_le_bytes());
    h
}

/// Frame a record in place: `buf` is `12 + len + 4` bytes with the data already at
/// `buf[12..12 + len]`; the header and trailing CRC are filled in. For generators that
/// write data straight into their output buffer.
///
/// # Panics
/// If `buf` is shorter than the 16 framing bytes.
pub fn frame_in_place(buf: &mut [u8]) {
    assert!(
        buf.len() >= RECORD_OVERHEAD as usize,
        "a framed record has at least 16 bytes"
    );
    let end = buf.len() - FOOTER_LEN;
    let crc = masked_crc32c(&buf[HEADER_LEN..end]);
    buf[..HEADER_LEN].copy_from_slice(&encode_header((end - HEADER_LEN) as u64));
    buf[end..].copy_from_slice(&crc.to_le_bytes());
}

/// Append one framed record holding `data` to `out`.
pub fn append_record(out: &mut impl BufMut, data: &[u8]) {
    out.put_slice(&encode_header(data.len() as u64));
    out.put_slice(data);
    out.put_u32_le(masked_crc32c(data));
}

/// Writes records to any [`Write`], keeping count of offsets so the index of what it wrote
/// is known without reading it back.
#[derive(Debug)]
pub struct TfRecordWriter<W: Write> {
    inner: W,
    offset: u64,
    records: u64,
}

impl<W: Write> TfRecordWriter<W> {
    pub fn new(inner: W) -> Self {
        Self::at_offset(inner, 0)
    }

    /// A writer whose first record goes at `offset` (appending to an existing file).
    pub fn at_offset(inner: W, offset: u64) -> Self {
        Self {
            inner,
            offset,
            records: 0,
        }
    }

    /// Write one record; returns its index entry.
    pub fn write_record(&mut self, data: &[u8]) -> std::io::Result<IndexEntry> {
        self.inner.write_all(&encode_header(data.len() as u64))?;
        self.inner.write_all(data)?;
        self.inner.write_all(&masked_crc32c(data).to_le_bytes())?;
        let e = IndexEntry::new(self.offset, data.len() as u64 + RECORD_OVERHEAD);
        self.offset += e.size;
        self.records += 1;
        Ok(e)
    }

    /// Bytes written so far (the offset of the next record).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_matches_append() {
        let data = b"some record data";
        let mut a = Vec::new();
        append_record(&mut a, data);
        let mut b = vec![0u8; data.len() + 16];
        b[12..12 + data.len()].copy_from_slice(data);
        frame_in_place(&mut b);
        assert_eq!(a, b);
        let mut w = TfRecordWriter::new(Vec::new());
        assert_eq!(w.write_record(data).unwrap(), IndexEntry::new(0, 32));
        assert_eq!(w.into_inner(), a);
    }
}
