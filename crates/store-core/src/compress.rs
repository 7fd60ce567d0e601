//! A streaming writer that compresses on the way to any backend (feature `compression`):
//! zstd, lz4 (frame format) or gzip, or none. It also computes the CRC32C of the bytes it
//! was given, and counts them before and after compression.
//!
//! Compression runs on tokio's blocking threads, so a large chunk never stalls the async
//! workers; compressed output is handed to the backend's writer in pieces of
//! `buffer_size`, so memory stays bounded whatever the object's size.
//!
//! ```
//! use bytes::Bytes;
//! use s3dlio_store_core::compress::{Compression, CompressingWriter};
//! use s3dlio_store_core::{MemoryStore, ObjectStore, ObjectStoreExt, PutOptions};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let inner = store.writer("data.zst", PutOptions::default()).await?;
//! let mut w = CompressingWriter::new(inner, Compression::Zstd(3), 1 << 20);
//! w.write_chunk(Bytes::from(vec![7u8; 1 << 20])).await?;
//! let stats = w.finish().await?;
//! assert_eq!(stats.bytes_in, 1 << 20);
//! assert!(stats.bytes_out < 1000);
//! let stored = store.get_bytes("data.zst").await?;
//! assert_eq!(zstd::decode_all(&stored[..]).unwrap(), vec![7u8; 1 << 20]);
//! # Ok::<_, s3dlio_store_core::Error>(())
//! # }).unwrap();
//! ```

use std::fmt;
use std::io::Write;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, ErrorKind, Result};
use crate::store::ObjectWriter;
use crate::types::PutResult;

/// How (and whether) to compress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    /// zstd at a level from 1 (fast) to 22 (small); 3 is zstd's default.
    Zstd(i32),
    /// The lz4 frame format (no levels).
    Lz4,
    /// gzip at a level from 0 to 9; 6 is gzip's default.
    Gzip(u32),
}

impl Compression {
    /// From a name (`none`, `zstd`, `lz4`, `gzip`/`gz`) and an optional level; a level out
    /// of range, or a level for lz4, is an InvalidInput error naming it.
    pub fn parse(name: &str, level: Option<i32>) -> Result<Self> {
        let bad = |m: String| Err(Error::invalid_input(m));
        match name.to_ascii_lowercase().as_str() {
            "" | "none" => match level {
                None | Some(0) => Ok(Self::None),
                Some(l) => bad(format!("compression level {l} given without a compression")),
            },
            "zstd" | "zst" => match level.unwrap_or(3) {
                l @ 1..=22 => Ok(Self::Zstd(l)),
                l => bad(format!("zstd level {l} is outside 1..=22")),
            },
            "lz4" => match level {
                None => Ok(Self::Lz4),
                Some(l) => bad(format!("lz4 takes no level (got {l})")),
            },
            "gzip" | "gz" => match level.unwrap_or(6) {
                l @ 0..=9 => Ok(Self::Gzip(l as u32)),
                l => bad(format!("gzip level {l} is outside 0..=9")),
            },
            other => bad(format!(
                "unknown compression '{other}' (expected none, zstd, lz4 or gzip)"
            )),
        }
    }

    /// The usual file extension (`.zst`, `.lz4`, `.gz`; empty for none).
    pub fn extension(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Zstd(_) => ".zst",
            Self::Lz4 => ".lz4",
            Self::Gzip(_) => ".gz",
        }
    }
}

/// What a finished write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteStats {
    /// Bytes given to the writer.
    pub bytes_in: u64,
    /// Bytes stored (equal to `bytes_in` without compression).
    pub bytes_out: u64,
    /// CRC32C (Castagnoli) of the bytes given, before compression.
    pub crc32c: u32,
    pub put: PutResult,
}

enum Encoder {
    Plain,
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Lz4(lz4_flex::frame::FrameEncoder<Vec<u8>>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
}

impl Encoder {
    fn new(c: Compression) -> Result<Self> {
        Ok(match c {
            Compression::None => Self::Plain,
            Compression::Zstd(l) => Self::Zstd(
                zstd::stream::write::Encoder::new(Vec::new(), l)
                    .map_err(|e| Error::invalid_input(format!("zstd level {l}: {e}")))?,
            ),
            Compression::Lz4 => Self::Lz4(lz4_flex::frame::FrameEncoder::new(Vec::new())),
            Compression::Gzip(l) => Self::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(l),
            )),
        })
    }

    /// Compress `data` into the output buffer.
    fn push(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain => Ok(()),
            Self::Zstd(e) => e.write_all(data),
            Self::Lz4(e) => e.write_all(data),
            Self::Gzip(e) => e.write_all(data),
        }
    }

    /// Compressed bytes ready so far (taken out of the encoder's buffer).
    fn take_output(&mut self) -> Vec<u8> {
        match self {
            Self::Plain => Vec::new(),
            Self::Zstd(e) => std::mem::take(e.get_mut()),
            Self::Lz4(e) => std::mem::take(e.get_mut()),
            Self::Gzip(e) => std::mem::take(e.get_mut()),
        }
    }

    fn pending(&mut self) -> usize {
        match self {
            Self::Plain => 0,
            Self::Zstd(e) => e.get_mut().len(),
            Self::Lz4(e) => e.get_mut().len(),
            Self::Gzip(e) => e.get_mut().len(),
        }
    }

    /// End the stream; the rest of the output.
    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Plain => Ok(Vec::new()),
            Self::Zstd(e) => e.finish(),
            Self::Lz4(e) => e.finish().map_err(std::io::Error::other),
            Self::Gzip(e) => e.finish(),
        }
    }
}

/// Compresses what it is given and writes the result through another writer; see the
/// module documentation.
pub struct CompressingWriter {
    inner: Box<dyn ObjectWriter>,
    /// `None` only while a chunk is being compressed on a blocking thread (or after a
    /// failure there).
    encoder: Option<Encoder>,
    compression: Compression,
    buffer_size: usize,
    bytes_in: u64,
    bytes_out: u64,
    crc: u32,
}

impl fmt::Debug for CompressingWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompressingWriter")
            .field("compression", &self.compression)
            .field("bytes_in", &self.bytes_in)
            .field("bytes_out", &self.bytes_out)
            .finish()
    }
}

fn compress_error(e: impl fmt::Display) -> Error {
    Error::new(ErrorKind::Other, format!("compressing: {e}"))
}

impl CompressingWriter {
    /// Compressed output goes to `inner` in pieces of about `buffer_size` bytes.
    pub fn new(inner: Box<dyn ObjectWriter>, compression: Compression, buffer_size: usize) -> Self {
        Self::try_new(inner, compression, buffer_size).expect("levels are checked by parse")
    }

    /// As [`new`](Self::new), failing on a level the compressor refuses.
    pub fn try_new(
        inner: Box<dyn ObjectWriter>,
        compression: Compression,
        buffer_size: usize,
    ) -> Result<Self> {
        Ok(Self {
            inner,
            encoder: Some(Encoder::new(compression)?),
            compression,
            buffer_size: buffer_size.max(1),
            bytes_in: 0,
            bytes_out: 0,
            crc: 0,
        })
    }

    /// Bytes given so far, and bytes produced for the backend so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.bytes_in, self.bytes_out)
    }

    /// CRC32C of the bytes given so far.
    pub fn crc32c(&self) -> u32 {
        self.crc
    }

    async fn forward(&mut self, data: Vec<u8>) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.bytes_out += data.len() as u64;
        self.inner.write(Bytes::from(data)).await
    }

    /// Append `data`.
    pub async fn write_chunk(&mut self, data: Bytes) -> Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &data);
        self.bytes_in += data.len() as u64;
        if self.compression == Compression::None {
            self.bytes_out += data.len() as u64;
            return self.inner.write(data).await;
        }
        let mut enc = self
            .encoder
            .take()
            .ok_or_else(|| compress_error("an earlier chunk failed"))?;
        let (enc, res) = tokio::task::spawn_blocking(move || {
            let r = enc.push(&data);
            (enc, r)
        })
        .await
        .map_err(compress_error)?;
        res.map_err(compress_error)?;
        let mut enc = enc;
        let out = (enc.pending() >= self.buffer_size).then(|| enc.take_output());
        self.encoder = Some(enc);
        if let Some(out) = out {
            self.forward(out).await?;
        }
        Ok(())
    }

    /// End the stream and complete the object; what was written, and its CRC.
    pub async fn finish(mut self) -> Result<WriteStats> {
        let enc = self
            .encoder
            .take()
            .ok_or_else(|| compress_error("an earlier chunk failed"))?;
        let rest = tokio::task::spawn_blocking(move || enc.finish())
            .await
            .map_err(compress_error)?
            .map_err(compress_error)?;
        self.forward(rest).await?;
        let put = self.inner.complete().await?;
        Ok(WriteStats {
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            crc32c: self.crc,
            put,
        })
    }

    /// Discard everything; nothing is left under the key.
    pub async fn abort(self) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectWriter for CompressingWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.write_chunk(data).await
    }

    async fn complete(self: Box<Self>) -> Result<PutResult> {
        Ok(self.finish().await?.put)
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        CompressingWriter::abort(*self).await
    }

    fn bytes_written(&self) -> u64 {
        self.bytes_in
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::{MemoryStore, ObjectStore, ObjectStoreExt, PutOptions};

    fn sample() -> Vec<u8> {
        // Compressible but not trivial: a repeating text with a counter.
        (0..200_000u32)
            .flat_map(|i| format!("record {i} of the sample\n").into_bytes())
            .collect()
    }

    async fn round_trip(c: Compression) -> (Vec<u8>, WriteStats) {
        let store = MemoryStore::new();
        let inner = store.writer("obj", PutOptions::default()).await.unwrap();
        // A small buffer, so output goes to the backend in many pieces.
        let mut w = CompressingWriter::try_new(inner, c, 64 * 1024).unwrap();
        let data = sample();
        for chunk in data.chunks(100_003) {
            w.write_chunk(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        let stats = w.finish().await.unwrap();
        let stored = store.get_bytes("obj").await.unwrap();
        assert_eq!(stored.len() as u64, stats.bytes_out);
        assert_eq!(stats.bytes_in, data.len() as u64);
        assert_eq!(stats.crc32c, crc32c::crc32c(&data));
        let mut plain = Vec::new();
        match c {
            Compression::None => plain = stored.to_vec(),
            Compression::Zstd(_) => plain = zstd::decode_all(&stored[..]).unwrap(),
            Compression::Lz4 => {
                lz4_flex::frame::FrameDecoder::new(&stored[..])
                    .read_to_end(&mut plain)
                    .unwrap();
            }
            Compression::Gzip(_) => {
                flate2::read::GzDecoder::new(&stored[..])
                    .read_to_end(&mut plain)
                    .unwrap();
            }
        }
        assert_eq!(plain, data, "{c:?} round trip");
        (data, stats)
    }

    #[tokio::test]
    async fn every_codec_round_trips_and_compresses() {
        for c in [
            Compression::None,
            Compression::Zstd(3),
            Compression::Lz4,
            Compression::Gzip(6),
        ] {
            let (data, stats) = round_trip(c).await;
            if c == Compression::None {
                assert_eq!(stats.bytes_out, data.len() as u64);
            } else {
                assert!(
                    stats.bytes_out * 3 < data.len() as u64,
                    "{c:?}: {} of {}",
                    stats.bytes_out,
                    data.len()
                );
            }
        }
    }

    #[tokio::test]
    async fn an_aborted_compressed_write_leaves_nothing() {
        let store = MemoryStore::new();
        let inner = store.writer("gone", PutOptions::default()).await.unwrap();
        let mut w = CompressingWriter::new(inner, Compression::Zstd(1), 1024);
        w.write_chunk(Bytes::from(sample())).await.unwrap();
        assert!(w.counts().1 > 0, "some output went to the backend already");
        w.abort().await.unwrap();
        assert!(!store.exists("gone").await.unwrap());
    }

    #[test]
    fn names_and_levels_are_checked() {
        assert_eq!(
            Compression::parse("ZSTD", None).unwrap(),
            Compression::Zstd(3)
        );
        assert_eq!(
            Compression::parse("gz", Some(9)).unwrap(),
            Compression::Gzip(9)
        );
        assert_eq!(Compression::parse("none", None).unwrap(), Compression::None);
        for (name, level) in [
            ("zstd", Some(23)),
            ("gzip", Some(10)),
            ("lz4", Some(1)),
            ("brotli", None),
            ("none", Some(3)),
        ] {
            let e = Compression::parse(name, level).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name} {level:?}");
        }
        assert_eq!(Compression::Zstd(1).extension(), ".zst");
    }
}
