//! The incremental parser: fed chunks of any size, it finds each record's offset and size.

use crate::error::{FormatError, FormatErrorKind};
use crate::format::{
    check_header, data_crc_error, mask, IndexEntry, FOOTER_LEN, HEADER_LEN, RECORD_OVERHEAD,
};

/// What the parser checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOptions {
    /// Check every record's data CRC too (reading every byte). The length CRC is always
    /// checked: it is what stops a garbage length.
    pub verify_data: bool,
    /// Accept input of zero bytes as a TFRecord file with no records (as `tfrecord2idx`
    /// does: its index is empty). Off: an empty input is a [`FormatErrorKind::Empty`] error.
    pub allow_empty: bool,
}

impl Default for IndexOptions {
    /// Indexing: lengths checked, data not read, an empty file is an empty index.
    fn default() -> Self {
        Self {
            verify_data: false,
            allow_empty: true,
        }
    }
}

impl IndexOptions {
    /// Validation: every CRC checked, and an empty input is an error.
    pub fn verify() -> Self {
        Self {
            verify_data: true,
            allow_empty: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Collecting the 12 header bytes of the record starting at `start`.
    Header { buf: [u8; HEADER_LEN], have: usize },
    /// Inside the data: `left` bytes to go; `crc` is the running CRC32C when verifying.
    Body { len: u64, left: u64, crc: u32 },
    /// Collecting the 4 bytes of the data CRC.
    Footer {
        len: u64,
        crc: u32,
        buf: [u8; FOOTER_LEN],
        have: usize,
    },
}

/// An incremental TFRecord parser. Feed it the input in chunks of any size with
/// [`feed`](Self::feed); the entries found so far are in [`entries`](Self::entries) (or
/// taken with [`take_entries`](Self::take_entries)); [`finish`](Self::finish) at the end
/// of the input reports a record cut short. It never buffers a record body (at most 12
/// bytes of a header that spans chunks), so memory does not grow with record sizes, and a
/// length is only believed once its CRC matches.
///
/// After an error the parser stays failed: every later call returns the same error.
#[derive(Debug, Clone)]
pub struct Indexer {
    opts: IndexOptions,
    state: State,
    /// Bytes of input consumed so far (fed or skipped).
    pos: u64,
    /// Offset of the record being parsed.
    start: u64,
    /// Records completed.
    records: u64,
    entries: Vec<IndexEntry>,
    failed: Option<FormatError>,
}

const EMPTY_HEADER: State = State::Header {
    buf: [0; HEADER_LEN],
    have: 0,
};

impl Indexer {
    /// A parser with [`IndexOptions::default`], checking data CRCs if `verify_data`.
    pub fn new(verify_data: bool) -> Self {
        Self::with_options(IndexOptions {
            verify_data,
            ..IndexOptions::default()
        })
    }

    pub fn with_options(opts: IndexOptions) -> Self {
        Self {
            opts,
            state: EMPTY_HEADER,
            pos: 0,
            start: 0,
            records: 0,
            entries: Vec::new(),
            failed: None,
        }
    }

    /// Bytes consumed so far: the offset in the input of the next byte to feed.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Records completed so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The entries found so far and not yet taken.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Take the entries found so far (to write them out while parsing goes on).
    pub fn take_entries(&mut self) -> Vec<IndexEntry> {
        std::mem::take(&mut self.entries)
    }

    fn fail(&mut self, e: FormatError) -> FormatError {
        self.failed = Some(e.clone());
        e
    }

    fn complete(&mut self, len: u64) {
        self.entries
            .push(IndexEntry::new(self.start, len + RECORD_OVERHEAD));
        self.records += 1;
    }

    /// Parse the next `chunk` of input.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), FormatError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let base = self.pos;
        let r = self.feed_inner(chunk, base);
        self.pos = base + chunk.len() as u64;
        r.map_err(|e| self.fail(e))
    }

    fn feed_inner(&mut self, chunk: &[u8], base: u64) -> Result<(), FormatError> {
        let verify = self.opts.verify_data;
        let mut i = 0usize;
        while i < chunk.len() {
            match &mut self.state {
                State::Header { have: 0, .. } => {
                    // The fast path: whole records inside this chunk, no copying.
                    loop {
                        let rest = &chunk[i..];
                        if rest.len() < HEADER_LEN {
                            break;
                        }
                        self.start = base + i as u64;
                        let len = check_header(rest, self.start, self.records)?;
                        let Some(total) = len.checked_add(RECORD_OVERHEAD) else {
                            return Err(too_long(self.start, self.records, len));
                        };
                        if total > rest.len() as u64 {
                            // Runs past this chunk: go on byte by byte.
                            i += HEADER_LEN;
                            self.state = State::Body {
                                len,
                                left: len,
                                crc: 0,
                            };
                            break;
                        }
                        let total = total as usize;
                        if verify {
                            let data = &rest[HEADER_LEN..total - FOOTER_LEN];
                            let want = u32::from_le_bytes(
                                rest[total - FOOTER_LEN..total].try_into().expect("4 bytes"),
                            );
                            let got = crate::format::masked_crc32c(data);
                            if got != want {
                                return Err(data_crc_error(self.start, self.records, got, want));
                            }
                        }
                        self.complete(len);
                        i += total;
                    }
                    if matches!(self.state, State::Header { have: 0, .. }) && i < chunk.len() {
                        // A header split across chunks: keep its first bytes.
                        self.start = base + i as u64;
                        let n = chunk.len() - i;
                        let mut buf = [0u8; HEADER_LEN];
                        buf[..n].copy_from_slice(&chunk[i..]);
                        self.state = State::Header { buf, have: n };
                        i = chunk.len();
                    }
                }
                State::Header { buf, have } => {
                    let n = (HEADER_LEN - *have).min(chunk.len() - i);
                    buf[*have..*have + n].copy_from_slice(&chunk[i..i + n]);
                    *have += n;
                    i += n;
                    if *have == HEADER_LEN {
                        let len = check_header(&buf[..], self.start, self.records)?;
                        if len.checked_add(RECORD_OVERHEAD).is_none() {
                            return Err(too_long(self.start, self.records, len));
                        }
                        self.state = State::Body {
                            len,
                            left: len,
                            crc: 0,
                        };
                    }
                }
                State::Body { len, left, crc } => {
                    let n = (*left).min((chunk.len() - i) as u64) as usize;
                    if verify {
                        *crc = crc32c::crc32c_append(*crc, &chunk[i..i + n]);
                    }
                    *left -= n as u64;
                    i += n;
                    if *left == 0 {
                        self.state = footer(*len, *crc);
                    }
                }
                State::Footer {
                    len,
                    crc,
                    buf,
                    have,
                } => {
                    let n = (FOOTER_LEN - *have).min(chunk.len() - i);
                    buf[*have..*have + n].copy_from_slice(&chunk[i..i + n]);
                    *have += n;
                    i += n;
                    if *have == FOOTER_LEN {
                        let (len, crc, want) = (*len, *crc, u32::from_le_bytes(*buf));
                        if verify && mask(crc) != want {
                            return Err(data_crc_error(self.start, self.records, mask(crc), want));
                        }
                        self.complete(len);
                        self.state = EMPTY_HEADER;
                    }
                }
            }
        }
        Ok(())
    }

    /// Bytes the caller may skip instead of feeding: the rest of the current record's data
    /// when data CRCs are not checked (0 otherwise). A reader that can seek (a local file)
    /// skips them with [`skip`](Self::skip), which is how indexing without verification
    /// avoids reading record bodies.
    pub fn skippable(&self) -> u64 {
        match self.state {
            State::Body { left, .. } if !self.opts.verify_data && self.failed.is_none() => left,
            _ => 0,
        }
    }

    /// Skip `n` bytes of input (at most [`skippable`](Self::skippable)) without feeding them.
    /// The caller makes sure they exist, or stops at the end of the input so that
    /// [`finish`](Self::finish) reports the record as truncated.
    pub fn skip(&mut self, n: u64) {
        assert!(n <= self.skippable(), "skip past what the parser may skip");
        if let State::Body { len, left, crc } = &mut self.state {
            *left -= n;
            self.pos += n;
            if *left == 0 {
                self.state = footer(*len, *crc);
            }
        }
    }

    /// The input has ended: the entries not yet taken, or the error of a record cut short
    /// (or of an empty input when that is not allowed).
    pub fn finish(mut self) -> Result<Vec<IndexEntry>, FormatError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let truncated = |detail: String| FormatError {
            kind: FormatErrorKind::Truncated,
            offset: self.start,
            record: self.records,
            detail,
        };
        match self.state {
            State::Header { have: 0, .. } => {
                if self.pos == 0 && !self.opts.allow_empty {
                    return Err(FormatError {
                        kind: FormatErrorKind::Empty,
                        offset: 0,
                        record: 0,
                        detail: "no bytes, so no records".into(),
                    });
                }
                Ok(self.entries)
            }
            State::Header { have, .. } => Err(truncated(format!(
                "the input ends {have} bytes into the 12-byte header"
            ))),
            State::Body { len, left, .. } => Err(truncated(format!(
                "the input ends {} bytes into {len} bytes of data (size {}, {} bytes missing)",
                len - left,
                len + RECORD_OVERHEAD,
                left + FOOTER_LEN as u64
            ))),
            State::Footer { have, len, .. } => Err(truncated(format!(
                "the input ends {have} bytes into the 4-byte data CRC after {len} bytes of data"
            ))),
        }
    }
}

/// The state after `len` bytes of data whose running CRC32C is `crc`.
fn footer(len: u64, crc: u32) -> State {
    State::Footer {
        len,
        crc,
        buf: [0; FOOTER_LEN],
        have: 0,
    }
}

fn too_long(offset: u64, record: u64, len: u64) -> FormatError {
    FormatError {
        kind: FormatErrorKind::Invalid,
        offset,
        record,
        detail: format!("length {len} does not fit in a file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::append_record;

    fn file(sizes: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, &s) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..s).map(|i| (i * 31 + n) as u8).collect();
            append_record(&mut out, &data);
        }
        out
    }

    fn expected(sizes: &[usize]) -> Vec<IndexEntry> {
        let mut off = 0;
        sizes
            .iter()
            .map(|&s| {
                let e = IndexEntry::new(off, s as u64 + 16);
                off += e.size;
                e
            })
            .collect()
    }

    #[test]
    fn every_chunk_size_gives_the_same_index() {
        let sizes = [0, 1, 11, 12, 13, 100, 0, 4096, 3, 0];
        let f = file(&sizes);
        for verify in [false, true] {
            for step in 1..=f.len() {
                let mut ix = Indexer::new(verify);
                for c in f.chunks(step) {
                    ix.feed(c).unwrap();
                }
                assert_eq!(ix.finish().unwrap(), expected(&sizes), "step {step}");
            }
        }
    }

    #[test]
    fn skipping_bodies_gives_the_same_index() {
        let sizes = [5000, 0, 70000, 1];
        let f = file(&sizes);
        let mut ix = Indexer::new(false);
        let mut pos = 0usize;
        while pos < f.len() {
            let end = (pos + 100).min(f.len());
            ix.feed(&f[pos..end]).unwrap();
            pos = end;
            let s = ix.skippable() as usize;
            ix.skip(s as u64);
            pos += s;
        }
        assert_eq!(ix.position(), f.len() as u64);
        assert_eq!(ix.finish().unwrap(), expected(&sizes));
    }

    #[test]
    fn errors_stick() {
        let mut ix = Indexer::new(false);
        let e = ix.feed(b"this is not a tfrecord file").unwrap_err();
        assert_eq!(e.kind, FormatErrorKind::LengthCrc);
        assert_eq!(ix.feed(b"more").unwrap_err(), e);
        assert_eq!(ix.finish().unwrap_err(), e);
    }
}
