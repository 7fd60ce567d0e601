//! Helpers of the fuzz targets: reading structure (numbers, chunk sizes, records) off the
//! front of libFuzzer's bytes, so one input drives several properties.

/// The input, consumed from the front; reads past its end give zeros and empty slices.
#[derive(Debug)]
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    pub fn byte(&mut self) -> u8 {
        let b = self.0.first().copied().unwrap_or(0);
        self.0 = self.0.get(1..).unwrap_or(&[]);
        b
    }

    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// Up to 8 bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let src = self.bytes(8);
        b[..src.len()].copy_from_slice(src);
        u64::from_le_bytes(b)
    }

    /// Up to 7 chunk sizes of 1 to 256 bytes (none: feed everything at once).
    pub fn cuts(&mut self) -> Vec<usize> {
        let n = usize::from(self.byte() % 8);
        (0..n).map(|_| usize::from(self.byte()) + 1).collect()
    }

    /// The rest as records, each a length byte and up to that many bytes.
    pub fn records(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !self.0.is_empty() {
            let n = usize::from(self.byte());
            out.push(self.bytes(n).to_vec());
        }
        out
    }

    /// The rest as framed records, each an 8-byte length field, a byte counting the data
    /// bytes that follow, and up to that many bytes.
    pub fn framed(&mut self) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        while !self.0.is_empty() {
            let len = self.u64();
            let n = usize::from(self.byte());
            out.push((len, self.bytes(n).to_vec()));
        }
        out
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.0.len())
    }
}
