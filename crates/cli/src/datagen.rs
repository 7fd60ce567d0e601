//! Synthetic object data for `s3-cli put` (and later the Python facade): fast, seedable,
//! different in every object, with honest dedup and compression ratios, produced in
//! bounded-size chunks.
//!
//! An object's payload is cut into blocks of [`BLOCK_SIZE`] (64 KiB, a common dedup block
//! size; the last block may be shorter). Each block's bytes come from a xoshiro256++
//! generator seeded from the run seed and the block's *identity*:
//!
//! * **Dedup `D`**: an object of `b >= D` blocks has `ceil(b / D)` distinct identities, used
//!   round-robin (block `i` has identity `i mod ceil(b / D)`, mixed with the object index), so
//!   about `1/D` of its blocks are unique and no two objects share a block. Objects of fewer
//!   than `D` blocks cannot repeat within themselves; then identities run across the whole
//!   run (global block `g` has identity `g / D`), so runs of `D` consecutive blocks repeat.
//! * **Compress `C`**: each block is random for its first `ceil(len / C)` bytes and zero for
//!   the rest, so zstd (or any compressor) gets about `C:1` on it.
//!
//! Measured per block (zstd of each block, hashes of the blocks), the ratios come out as
//! asked; a compressor with a long window over a whole deduplicated object also finds the
//! repeats, as it would on real dedupable data.

use bytes::{BufMut, Bytes, BytesMut};

/// Size of the blocks that dedup and compression are defined over.
pub const BLOCK_SIZE: usize = 64 * 1024;

/// Default size of the chunks a streaming generator hands out (a multiple of
/// [`BLOCK_SIZE`]).
pub const DEFAULT_CHUNK_SIZE: usize = 4 << 20;

/// Object layouts `put` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The payload bytes as they are.
    Raw,
    /// A NumPy `.npz`: a zip (stored, not deflated) holding `data.npy`, a 1-D `uint8` array of
    /// the payload; `numpy.load(f)["data"]`.
    Npz,
    /// TFRecord framing: one record per 64 KiB block of payload (length, masked CRC32C of
    /// the length, data, masked CRC32C of the data).
    TfRecord,
}

/// The objects of `0..count` that rank `rank` of `ranks` generates: every `ranks`-th one
/// from `rank`. N processes (or torchrun ranks) given the same seed make between them the
/// data set one process would, each object once.
pub fn rank_share(count: u64, rank: u64, ranks: u64) -> impl Iterator<Item = u64> {
    (rank..count).step_by(usize::try_from(ranks.max(1)).unwrap_or(usize::MAX))
}

/// What every object of a run shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSpec {
    pub seed: u64,
    /// Dedup factor, at least 1 (1: every block unique).
    pub dedup: u64,
    /// Compression factor, at least 1 (1: incompressible).
    pub compress: u64,
}

impl DataSpec {
    /// Reject factors of 0.
    pub fn validate(&self) -> Result<(), String> {
        if self.dedup == 0 || self.compress == 0 {
            return Err("dedup and compress factors must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// xoshiro256++ (Blackman and Vigna): a fast generator, plenty for filler data.
#[derive(Debug, Clone)]
struct Xoshiro([u64; 4]);

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Xoshiro {
    fn new(mut seed: u64) -> Self {
        Self([
            splitmix(&mut seed),
            splitmix(&mut seed),
            splitmix(&mut seed),
            splitmix(&mut seed),
        ])
    }

    #[inline(always)]
    fn next(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut words = buf.chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = words.into_remainder();
        if !rest.is_empty() {
            let v = self.next().to_le_bytes();
            rest.copy_from_slice(&v[..rest.len()]);
        }
    }
}

/// The payload of one object: `size` bytes, a pure function of the spec, the object index and
/// the offset.
#[derive(Debug, Clone, Copy)]
pub struct Payload {
    spec: DataSpec,
    object: u64,
    size: u64,
}

impl Payload {
    pub fn new(spec: DataSpec, object: u64, size: u64) -> Self {
        Self { spec, object, size }
    }

    pub fn len(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    fn blocks(&self) -> u64 {
        self.size.div_ceil(BLOCK_SIZE as u64)
    }

    /// The seed of block `i`: equal seeds mean equal bytes.
    fn block_seed(&self, i: u64) -> u64 {
        let d = self.spec.dedup.max(1);
        let b = self.blocks();
        let mut x = self.spec.seed;
        let (scope, id) = if b >= d {
            (self.object, i % b.div_ceil(d))
        } else {
            // Objects too small to repeat within: identities shared across the run.
            (u64::MAX, (self.object * b + i) / d)
        };
        let a = splitmix(&mut x) ^ scope.wrapping_mul(0xd6e8_feb8_6659_fd93);
        let mut y = a ^ id.wrapping_mul(0xa076_1d64_78bd_642f);
        splitmix(&mut y)
    }

    /// Write payload bytes `offset..offset + buf.len()` into `buf`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let bs = BLOCK_SIZE as u64;
        let c = self.spec.compress.max(1);
        let mut pos = 0usize;
        while pos < buf.len() {
            let abs = offset + pos as u64;
            let block = abs / bs;
            let start_in_block = (abs % bs) as usize;
            let block_len = (self.size - block * bs).min(bs) as usize;
            let take = (block_len - start_in_block).min(buf.len() - pos);
            let random_len = block_len.div_ceil(c as usize);
            let out = &mut buf[pos..pos + take];
            // Random part [0, random_len), zeros after it.
            let rand_end = random_len.saturating_sub(start_in_block).min(take);
            if rand_end > 0 {
                let mut rng = Xoshiro::new(self.block_seed(block));
                if start_in_block == 0 {
                    rng.fill(&mut out[..rand_end]);
                } else {
                    // Unaligned start (only for callers not using block-aligned chunks).
                    let mut tmp = vec![0u8; start_in_block + rand_end];
                    rng.fill(&mut tmp);
                    out[..rand_end].copy_from_slice(&tmp[start_in_block..]);
                }
            }
            out[rand_end..].fill(0);
            pos += take;
        }
    }
}

/// Bytes of TFRecord framing around each record.
pub const TFRECORD_OVERHEAD: u64 = s3dlio_tfrecord_index::RECORD_OVERHEAD;
const NPZ_ENTRY: &str = "data.npy";
/// Largest payload an `.npz` can hold here (no zip64: sizes and offsets must fit in 32 bits).
pub const NPZ_MAX_PAYLOAD: u64 = u32::MAX as u64 - 4096;

fn npy_header(n: u64) -> Vec<u8> {
    let mut dict = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({n},), }}");
    // npy 1.0: magic (6) + version (2) + header length (2) + dict, padded with spaces and a
    // newline to a multiple of 64 bytes.
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    while 10 + dict.len() + 1 < total {
        dict.push(' ');
    }
    dict.push('\n');
    let mut h = Vec::with_capacity(total);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h
}

fn zip_local_header() -> Vec<u8> {
    let mut h = Vec::with_capacity(30 + NPZ_ENTRY.len());
    h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    h.extend_from_slice(&20u16.to_le_bytes()); // version needed
    h.extend_from_slice(&0x0008u16.to_le_bytes()); // sizes and CRC follow the data
    h.extend_from_slice(&0u16.to_le_bytes()); // stored
    h.extend_from_slice(&0u16.to_le_bytes()); // time 00:00
    h.extend_from_slice(&0x0021u16.to_le_bytes()); // date 1980-01-01
    h.extend_from_slice(&[0u8; 12]); // crc, sizes: in the data descriptor
    h.extend_from_slice(&(NPZ_ENTRY.len() as u16).to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(NPZ_ENTRY.as_bytes());
    h
}

fn zip_trailer(crc: u32, size: u32) -> Vec<u8> {
    let local_len = (30 + NPZ_ENTRY.len()) as u32;
    let mut t = Vec::with_capacity(16 + 46 + 22 + NPZ_ENTRY.len());
    t.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
    for v in [crc, size, size] {
        t.extend_from_slice(&v.to_le_bytes());
    }
    let cd_offset = local_len + size + 16;
    let cd_start = t.len();
    t.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    t.extend_from_slice(&20u16.to_le_bytes()); // made by
    t.extend_from_slice(&20u16.to_le_bytes()); // needed
    t.extend_from_slice(&0x0008u16.to_le_bytes());
    t.extend_from_slice(&0u16.to_le_bytes());
    t.extend_from_slice(&0u16.to_le_bytes());
    t.extend_from_slice(&0x0021u16.to_le_bytes());
    for v in [crc, size, size] {
        t.extend_from_slice(&v.to_le_bytes());
    }
    t.extend_from_slice(&(NPZ_ENTRY.len() as u16).to_le_bytes());
    t.extend_from_slice(&[0u8; 12]); // extra, comment, disk, internal and external attributes
    t.extend_from_slice(&0u32.to_le_bytes()); // local header at offset 0
    t.extend_from_slice(NPZ_ENTRY.as_bytes());
    let cd_len = (t.len() - cd_start) as u32;
    t.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    t.extend_from_slice(&[0u8; 4]); // disk numbers
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&cd_len.to_le_bytes());
    t.extend_from_slice(&cd_offset.to_le_bytes());
    t.extend_from_slice(&0u16.to_le_bytes());
    t
}

/// The full size of an object of `payload` bytes in `format`.
pub fn object_len(format: Format, payload: u64) -> u64 {
    match format {
        Format::Raw => payload,
        Format::TfRecord => payload + payload.div_ceil(BLOCK_SIZE as u64) * TFRECORD_OVERHEAD,
        Format::Npz => {
            let npy = npy_header(payload).len() as u64;
            (30 + NPZ_ENTRY.len() as u64) + npy + payload + 16 + 46 + NPZ_ENTRY.len() as u64 + 22
        }
    }
}

/// Check that a payload size fits the format.
pub fn check_size(format: Format, payload: u64) -> Result<(), String> {
    if format == Format::Npz && payload > NPZ_MAX_PAYLOAD {
        return Err(format!(
            "npz objects are limited to {NPZ_MAX_PAYLOAD} bytes of payload (no zip64)"
        ));
    }
    Ok(())
}

#[derive(Debug)]
enum Stage {
    Header,
    Body,
    Trailer,
    Done,
}

/// One object's bytes, chunk by chunk: memory is one chunk at a time, whatever the size.
#[derive(Debug)]
pub struct ObjectGen {
    payload: Payload,
    format: Format,
    chunk: usize,
    pos: u64,
    stage: Stage,
    npy_crc: crc32fast::Hasher,
}

impl ObjectGen {
    /// `chunk` is rounded up to a multiple of [`BLOCK_SIZE`].
    pub fn new(payload: Payload, format: Format, chunk: usize) -> Self {
        Self {
            payload,
            format,
            chunk: chunk.max(1).div_ceil(BLOCK_SIZE) * BLOCK_SIZE,
            pos: 0,
            stage: if format == Format::Npz {
                Stage::Header
            } else {
                Stage::Body
            },
            npy_crc: crc32fast::Hasher::new(),
        }
    }

    /// Total bytes this object has.
    pub fn len(&self) -> u64 {
        object_len(self.format, self.payload.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next chunk, or `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            match self.stage {
                Stage::Done => return None,
                Stage::Header => {
                    let npy = npy_header(self.payload.len());
                    self.npy_crc.update(&npy);
                    let mut h = zip_local_header();
                    h.extend_from_slice(&npy);
                    self.stage = Stage::Body;
                    return Some(Bytes::from(h));
                }
                Stage::Trailer => {
                    let npy_len = npy_header(self.payload.len()).len() as u64;
                    let crc = std::mem::take(&mut self.npy_crc).finalize();
                    self.stage = Stage::Done;
                    return Some(Bytes::from(zip_trailer(
                        crc,
                        (npy_len + self.payload.len()) as u32,
                    )));
                }
                Stage::Body => {
                    let remaining = self.payload.len() - self.pos;
                    if remaining == 0 {
                        self.stage = if self.format == Format::Npz {
                            Stage::Trailer
                        } else {
                            Stage::Done
                        };
                        continue;
                    }
                    let n = remaining.min(self.chunk as u64) as usize;
                    let chunk = match self.format {
                        Format::Raw | Format::Npz => {
                            let mut buf = vec![0u8; n];
                            self.payload.fill(self.pos, &mut buf);
                            if self.format == Format::Npz {
                                self.npy_crc.update(&buf);
                            }
                            Bytes::from(buf)
                        }
                        Format::TfRecord => self.tfrecords(n),
                    };
                    self.pos += n as u64;
                    return Some(chunk);
                }
            }
        }
    }

    /// Records for payload bytes `pos..pos + n` (block aligned), one per block.
    fn tfrecords(&self, n: usize) -> Bytes {
        let records = n.div_ceil(BLOCK_SIZE);
        let mut out = BytesMut::with_capacity(n + records * TFRECORD_OVERHEAD as usize);
        let mut done = 0;
        while done < n {
            let len = (n - done).min(BLOCK_SIZE);
            let start = out.len();
            out.put_bytes(0, len + TFRECORD_OVERHEAD as usize);
            let data = start + s3dlio_tfrecord_index::HEADER_LEN;
            self.payload
                .fill(self.pos + done as u64, &mut out[data..data + len]);
            s3dlio_tfrecord_index::frame_in_place(&mut out[start..]);
            done += len;
        }
        out.freeze()
    }

    /// The whole object in one buffer (for `--data-gen-mode single-pass`).
    pub fn into_bytes(mut self) -> Result<Bytes, String> {
        let len =
            usize::try_from(self.len()).map_err(|_| "object does not fit in memory".to_owned())?;
        let mut out = BytesMut::with_capacity(len);
        while let Some(c) = self.next_chunk() {
            out.extend_from_slice(&c);
        }
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_shares_cover_every_object_once() {
        for (count, ranks) in [(10, 3), (2, 4), (7, 1), (0, 2)] {
            let mut all: Vec<u64> = (0..ranks)
                .flat_map(|r| rank_share(count, r, ranks))
                .collect();
            all.sort_unstable();
            assert_eq!(all, (0..count).collect::<Vec<_>>(), "{count} over {ranks}");
        }
        assert_eq!(rank_share(10, 1, 3).collect::<Vec<_>>(), [1, 4, 7]);
    }

    fn spec(dedup: u64, compress: u64) -> DataSpec {
        DataSpec {
            seed: 42,
            dedup,
            compress,
        }
    }

    fn all(format: Format, p: Payload, chunk: usize) -> Vec<u8> {
        let mut g = ObjectGen::new(p, format, chunk);
        let expect = g.len();
        let mut out = Vec::new();
        while let Some(c) = g.next_chunk() {
            out.extend_from_slice(&c);
        }
        assert_eq!(out.len() as u64, expect);
        out
    }

    #[test]
    fn deterministic_and_distinct_per_object() {
        let a = all(Format::Raw, Payload::new(spec(1, 1), 0, 300_000), 1 << 20);
        let b = all(Format::Raw, Payload::new(spec(1, 1), 0, 300_000), 64 << 10);
        let c = all(Format::Raw, Payload::new(spec(1, 1), 1, 300_000), 1 << 20);
        assert_eq!(a, b, "chunking must not change the bytes");
        assert_ne!(a, c);
        let mut other_seed = spec(1, 1);
        other_seed.seed = 43;
        assert_ne!(
            a,
            all(Format::Raw, Payload::new(other_seed, 0, 300_000), 1 << 20)
        );
    }

    #[test]
    fn unaligned_fill_matches_aligned() {
        let p = Payload::new(spec(2, 3), 5, 200_000);
        let mut whole = vec![0u8; 200_000];
        p.fill(0, &mut whole);
        let mut part = vec![0u8; 70_000];
        p.fill(100_001, &mut part);
        assert_eq!(&whole[100_001..170_001], &part[..]);
    }

    #[test]
    fn compress_factor_zeroes_the_right_share() {
        let p = Payload::new(spec(1, 4), 0, BLOCK_SIZE as u64);
        let mut b = vec![1u8; BLOCK_SIZE];
        p.fill(0, &mut b);
        let zeros = b.iter().filter(|&&x| x == 0).count();
        assert!(
            (BLOCK_SIZE * 3 / 4..BLOCK_SIZE * 3 / 4 + 256).contains(&zeros),
            "{zeros}"
        );
    }

    #[test]
    fn tfrecord_framing() {
        let data = all(
            Format::TfRecord,
            Payload::new(spec(1, 1), 0, 150_000),
            1 << 20,
        );
        // Every CRC checks out with the TFRecord crate's own parser.
        let mut ix = s3dlio_tfrecord_index::Indexer::new(true);
        ix.feed(&data).unwrap();
        let entries = ix.finish().unwrap();
        let payload: u64 = entries.iter().map(|e| e.data_len()).sum();
        assert_eq!(payload, 150_000);
        assert_eq!(entries.len(), 3); // 64 KiB records
    }

    #[test]
    fn npy_header_is_aligned() {
        for n in [0u64, 1, 1 << 20, u32::MAX as u64] {
            let h = npy_header(n);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(*h.last().unwrap(), b'\n');
        }
        assert!(check_size(Format::Npz, 5 << 30).is_err());
    }
}
