//! Loading: a shard into one buffer with concurrent ranged reads, or as a stream of verified
//! parts; every byte is checked against the manifest's CRC32C before it is handed out.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt, TryStreamExt};

use s3dlio_store_core::pool::prefault_spare;
use s3dlio_store_core::{
    ByteRange, ByteStream, Error, ErrorKind, GetOptions, ObjectStoreExt, Result,
};

use crate::manifest::{Compression, Manifest, PartEntry, ShardEntry};
use crate::store::{permit, CheckpointStore};

/// CRC32C of `data`; large buffers on a blocking thread, off the async workers.
async fn crc_of(data: &Bytes) -> Result<u32> {
    if data.len() < 4 << 20 {
        return Ok(crc32c::crc32c(data));
    }
    let data = data.clone();
    tokio::task::spawn_blocking(move || crc32c::crc32c(&data))
        .await
        .map_err(|e| Error::other(format!("checksum task failed: {e}")))
}

/// Names the shard and part an error is about.
struct Where<'a> {
    step: u64,
    shard: &'a ShardEntry,
}

impl Where<'_> {
    fn shard(&self) -> String {
        format!(
            "checkpoint step {}: shard '{}' of rank {}",
            self.step, self.shard.name, self.shard.rank
        )
    }

    /// `e`, explained as a failure to read `part`.
    fn wrap(&self, part: &PartEntry, e: Error) -> Error {
        let what = match e.kind() {
            ErrorKind::NotFound => "is missing",
            ErrorKind::RangeNotSatisfiable | ErrorKind::Interrupted => "is truncated or cut short",
            _ => "could not be read",
        };
        let retryable = e.is_retryable();
        Error::new(
            e.kind(),
            format!("{}: part {} {what}", self.shard(), part.key),
        )
        .with_source(e)
        .set_retryable(retryable)
    }

    fn corrupt(&self, part: &PartEntry, what: String) -> Error {
        Error::other(format!(
            "{}: part {} is corrupt: {what}",
            self.shard(),
            part.key
        ))
    }

    /// The range `off..off + want` of `part` came back as `got` bytes.
    fn short(&self, part: &PartEntry, off: u64, want: u64, got: u64) -> Error {
        self.corrupt(
            part,
            format!(
                "bytes {off}..{} read as {got}{} bytes (truncated or replaced?)",
                off + want,
                if got > want { " or more" } else { "" }
            ),
        )
    }

    fn check_crc(&self, part: &PartEntry, want: u32, got: u32, which: &str) -> Result<()> {
        if want == got {
            return Ok(());
        }
        Err(self.corrupt(
            part,
            format!("CRC32C of the {which} bytes is {got:#010x}, the manifest says {want:#010x}"),
        ))
    }

    fn check_len(&self, part: &PartEntry, want: u64, got: u64) -> Result<()> {
        if want == got {
            return Ok(());
        }
        Err(self.corrupt(
            part,
            format!("read {got} bytes, the manifest says {want} (truncated or replaced?)"),
        ))
    }
}

/// The reads of a shard, in order: (part, offset in the part, length). Uncompressed parts are
/// cut into ranges of `range_size`; compressed parts are read whole.
fn plan(s: &ShardEntry, range_size: u64) -> Vec<(usize, u64, usize)> {
    let range = range_size.max(1);
    let mut jobs = Vec::new();
    for (i, p) in s.parts.iter().enumerate() {
        if s.compression != Compression::None {
            jobs.push((i, 0, p.raw_size as usize));
            continue;
        }
        let mut off = 0;
        while off < p.raw_size {
            let n = range.min(p.raw_size - off);
            jobs.push((i, off, n as usize));
            off += n;
        }
    }
    jobs
}

/// Check the CRC32Cs of a shard's reads, (part, offset, length, CRC) in order, against each
/// part's and the whole shard's.
fn check_sums(at: &Where<'_>, done: Vec<(usize, u64, u64, u32)>) -> Result<()> {
    let s = at.shard;
    let mut crcs = vec![0u32; s.parts.len()];
    let mut lens = vec![0u64; s.parts.len()];
    for (i, _, n, crc) in done {
        crcs[i] = crc32c::crc32c_combine(crcs[i], crc, n as usize);
        lens[i] += n;
    }
    let mut whole = 0u32;
    for (i, p) in s.parts.iter().enumerate() {
        at.check_len(p, p.raw_size, lens[i])?;
        at.check_crc(p, p.raw_crc32c, crcs[i], "stored")?;
        whole = crc32c::crc32c_combine(whole, crcs[i], p.raw_size as usize);
    }
    if whole != s.raw_crc32c {
        return Err(Error::other(format!(
            "{}: its parts are intact but together have CRC32C {whole:#010x}, the manifest \
             says {:#010x}",
            at.shard(),
            s.raw_crc32c
        )));
    }
    Ok(())
}

impl CheckpointStore {
    /// The shard `name` of `rank`, verified, in one buffer.
    pub async fn load_shard(&self, m: &Manifest, rank: u32, name: &str) -> Result<Bytes> {
        let s = m.shard(rank, name)?;
        if let [p] = s.parts.as_slice() {
            // One part: the backend's whole-object read (one positional read, or its own
            // concurrent ranged GETs) is already one buffer; no copy.
            let at = Where {
                step: m.step,
                shard: s,
            };
            let data = self.fetch_part(&at, p, s.compression).await?;
            if data.len() as u64 != s.raw_size || p.raw_crc32c != s.raw_crc32c {
                return Err(Error::other(format!(
                    "{}: its part is intact but the manifest's shard entry disagrees with it",
                    at.shard()
                )));
            }
            return Ok(data);
        }
        let len = usize::try_from(s.raw_size).map_err(|_| {
            Error::invalid_input(format!("{} bytes do not fit in memory", s.raw_size))
        })?;
        // Several parts: one buffer cut into owned pieces, each filled (and checksummed) by
        // a task of its own, so copies and CRCs run on every core; the pieces are contiguous
        // and join back without a copy. The buffer is not zeroed first: each piece starts
        // empty with its capacity and is filled once (zeroing would write every byte twice).
        let shard = Arc::new(s.clone());
        let mut rest = BytesMut::with_capacity(len);
        let mut pieces = Vec::new();
        for (i, off, n) in plan(s, self.config.range_size) {
            // `split_off` cuts by capacity: `rest` keeps the first n bytes of room.
            let tail = rest.split_off(n);
            pieces.push((i, off, std::mem::replace(&mut rest, tail)));
        }
        let step = m.step;
        let mut done: Vec<(usize, u64, u64, u32, BytesMut)> = stream::iter(pieces)
            .map(|(i, off, mut piece)| {
                let (ck, shard) = (self.clone(), Arc::clone(&shard));
                tokio::spawn(async move {
                    let at = Where {
                        step,
                        shard: &shard,
                    };
                    let crc = ck
                        .read_piece(&at, &shard.parts[i], shard.compression, off, &mut piece)
                        .await?;
                    Ok::<_, Error>((i, off, piece.len() as u64, crc, piece))
                })
            })
            .buffer_unordered(self.config.read_concurrency.max(1))
            .map(|r| r.map_err(|e| Error::other(format!("read task failed: {e}")))?)
            .try_collect()
            .await?;
        done.sort_unstable_by_key(|d| (d.0, d.1));
        let mut buf = BytesMut::new();
        let mut sums = Vec::with_capacity(done.len());
        for (i, off, n, crc, piece) in done {
            buf.unsplit(piece);
            sums.push((i, off, n, crc));
        }
        check_sums(
            &Where {
                step: m.step,
                shard: s,
            },
            sums,
        )?;
        Ok(buf.freeze())
    }

    /// Read the shard `name` of `rank` into `buf`, which must be exactly its size
    /// ([`ShardEntry::raw_size`]): uncompressed parts by concurrent ranged reads straight into
    /// their place, compressed parts whole and decompressed in parallel. Every part's CRC32C
    /// is checked; on error `buf` holds unverified bytes.
    pub async fn load_shard_into(
        &self,
        m: &Manifest,
        rank: u32,
        name: &str,
        buf: &mut [u8],
    ) -> Result<()> {
        let s = m.shard(rank, name)?;
        let at = Where {
            step: m.step,
            shard: s,
        };
        if buf.len() as u64 != s.raw_size {
            return Err(Error::invalid_input(format!(
                "{}: is {} bytes but the buffer is {}",
                at.shard(),
                s.raw_size,
                buf.len()
            )));
        }
        let mut jobs = Vec::new();
        let mut rest = buf;
        for (i, off, n) in plan(s, self.config.range_size) {
            let (head, tail) = rest.split_at_mut(n);
            jobs.push((i, off, head));
            rest = tail;
        }
        let at = &at;
        // The futures are built first: a closure borrowing the slices inside the stream
        // would make the whole future unspawnable.
        let reads: Vec<_> = jobs
            .into_iter()
            .map(|(i, off, slot)| async move {
                let n = slot.len() as u64;
                let mut pos = 0;
                let crc = self
                    .read_job(
                        at,
                        &s.parts[i],
                        s.compression,
                        off,
                        slot.len(),
                        &mut |chunk| {
                            // read_job never passes more than the slot's length in all.
                            slot[pos..pos + chunk.len()].copy_from_slice(chunk);
                            pos += chunk.len();
                        },
                    )
                    .await?;
                Ok::<_, Error>((i, off, n, crc))
            })
            .collect();
        let mut done: Vec<(usize, u64, u64, u32)> = stream::iter(reads)
            .buffer_unordered(self.config.read_concurrency.max(1))
            .try_collect()
            .await?;
        done.sort_unstable_by_key(|d| (d.0, d.1));
        check_sums(at, done)
    }

    /// Fill `piece` (empty, with room for exactly the range) with the bytes of part `p`
    /// from `off`, and return their CRC32C. Uncompressed ranges are read straight into it
    /// where the backend can (a local file: one positional read), its pages faulted in first
    /// with one call rather than one fault per page.
    async fn read_piece(
        &self,
        at: &Where<'_>,
        p: &PartEntry,
        c: Compression,
        off: u64,
        piece: &mut BytesMut,
    ) -> Result<u32> {
        let len = piece.capacity();
        if c != Compression::None {
            return self
                .read_job(at, p, c, off, len, &mut |chunk| {
                    piece.extend_from_slice(chunk)
                })
                .await;
        }
        let want = len as u64;
        let _permit = permit(&self.limits.reads).await?;
        let res = self
            .store
            .get(
                &self.key(&p.key),
                GetOptions::range(ByteRange::from(off..off + want)),
            )
            .await
            .map_err(|e| at.wrap(p, e))?;
        if res.len() != want {
            return Err(at.short(p, off, want, res.len()));
        }
        prefault_spare(piece);
        res.read_into(piece).await.map_err(|e| at.wrap(p, e))?;
        Ok(crc32c::crc32c(piece))
    }

    /// Pass the `len` bytes of part `p` from `off` (a whole part, decompressed and verified,
    /// when compressed) to `sink` in order as they arrive, and return their CRC32C; fails
    /// unless exactly `len` bytes came. The range is streamed: no buffer of all of it is
    /// made (and faulted in) on the way to the caller's.
    async fn read_job(
        &self,
        at: &Where<'_>,
        p: &PartEntry,
        c: Compression,
        off: u64,
        len: usize,
        sink: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<u32> {
        if c != Compression::None {
            let data = self.fetch_part(at, p, c).await?;
            at.check_len(p, len as u64, data.len() as u64)?;
            sink(&data);
            return Ok(p.raw_crc32c);
        }
        let want = len as u64;
        let short = |got: u64| at.short(p, off, want, got);
        let _permit = permit(&self.limits.reads).await?;
        let mut body = self
            .store
            .get(
                &self.key(&p.key),
                GetOptions::range(ByteRange::from(off..off + want)),
            )
            .await
            .map_err(|e| at.wrap(p, e))?
            .into_stream();
        let (mut got, mut crc) = (0u64, 0u32);
        while let Some(chunk) = body.try_next().await.map_err(|e| at.wrap(p, e))? {
            got += chunk.len() as u64;
            if got > want {
                return Err(short(got));
            }
            crc = crc32c::crc32c_append(crc, &chunk);
            sink(&chunk);
        }
        if got != want {
            return Err(short(got));
        }
        Ok(crc)
    }

    /// One part, whole, verified (and decompressed).
    async fn fetch_part(&self, at: &Where<'_>, p: &PartEntry, c: Compression) -> Result<Bytes> {
        let data = if p.size == 0 {
            Bytes::new()
        } else {
            let _permit = permit(&self.limits.reads).await?;
            self.store
                .get_bytes(&self.key(&p.key))
                .await
                .map_err(|e| at.wrap(p, e))?
        };
        at.check_len(p, p.size, data.len() as u64)?;
        at.check_crc(p, p.crc32c, crc_of(&data).await?, "stored")?;
        if c == Compression::None {
            return Ok(data);
        }
        let raw_size = p.raw_size as usize;
        let raw = tokio::task::spawn_blocking(move || zstd::bulk::decompress(&data, raw_size))
            .await
            .map_err(|e| Error::other(format!("decompression task failed: {e}")))?
            .map_err(|e| at.corrupt(p, format!("zstd: {e}")))?;
        at.check_len(p, p.raw_size, raw.len() as u64)?;
        at.check_crc(p, p.raw_crc32c, crc32c::crc32c(&raw), "decompressed")?;
        Ok(Bytes::from(raw))
    }

    /// The shard `name` of `rank` as a stream of its parts, each verified before it is
    /// yielded; a few parts are read ahead, so memory stays near that many parts.
    pub fn load_shard_stream(&self, m: &Manifest, rank: u32, name: &str) -> Result<ByteStream> {
        let s = m.shard(rank, name)?.clone();
        let (ck, step) = (self.clone(), m.step);
        let ahead = self.config.read_concurrency.clamp(1, 4);
        let parts = s.parts.clone();
        Ok(stream::iter(parts)
            .map(move |p| {
                let (ck, s) = (ck.clone(), s.clone());
                async move {
                    let at = Where { step, shard: &s };
                    ck.fetch_part(&at, &p, s.compression).await
                }
            })
            .buffered(ahead)
            .boxed())
    }

    /// Every shard of `rank`, verified, as (name, bytes).
    pub async fn load_rank(&self, m: &Manifest, rank: u32) -> Result<Vec<(String, Bytes)>> {
        let mut out = Vec::new();
        for s in m.rank_shards(rank) {
            out.push((s.name.clone(), self.load_shard(m, rank, &s.name).await?));
        }
        if out.is_empty() && rank >= m.world_size {
            return Err(Error::invalid_input(format!(
                "checkpoint step {} has ranks 0..{}, not {rank}",
                m.step, m.world_size
            )));
        }
        Ok(out)
    }

    /// Read every part of every shard and check it against the manifest, holding a few parts
    /// in memory at a time.
    pub async fn verify(&self, m: &Manifest) -> Result<()> {
        for s in &m.shards {
            let mut parts = self.load_shard_stream(m, s.rank, &s.name)?;
            while parts.try_next().await?.is_some() {}
        }
        Ok(())
    }
}
