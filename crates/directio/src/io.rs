//! The blocking I/O itself: aligned positional reads and writes, run on the store's I/O
//! threads, several at a time for one request.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io;
use std::ops::Range;

use rustix::io::Errno;
use s3dlio_store_core::Result;
use s3dlio_store_fs::local::IoPool;

/// How one open file is read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// With `O_DIRECT`; offsets, lengths and buffers aligned to `align`.
    Direct { align: usize },
    /// Buffered (the opt-in fallback); the same aligned I/O, then `POSIX_FADV_DONTNEED`.
    Buffered,
}

impl Mode {
    pub(crate) fn align(self) -> usize {
        match self {
            Self::Direct { align } => align,
            Self::Buffered => crate::buf::MIN_ALIGN,
        }
    }

    /// After buffered I/O of `range` (written data synced first), drop its pages from the
    /// page cache: a hint; file systems that ignore it lose nothing but the saving.
    pub(crate) fn drop_cache(self, file: &File, range: Range<u64>) {
        if self == Self::Buffered && !range.is_empty() {
            let _ = rustix::fs::fadvise(
                file,
                range.start,
                std::num::NonZeroU64::new(range.end - range.start),
                rustix::fs::Advice::DontNeed,
            );
        }
    }
}

/// The aligned span covering `range`, with `align` a power of two.
pub(crate) fn covering(range: &Range<u64>, align: usize) -> Range<u64> {
    let a = align as u64;
    (range.start / a * a)..range.end.div_ceil(a) * a
}

/// Fill `buf` (aligned, an aligned length) from the aligned `offset`, in as few reads as
/// the kernel allows; at least `need` bytes must come back, else the file ended early
/// (truncated while being read). Returns the bytes read.
pub(crate) fn read_at(
    file: &File,
    buf: &mut [u8],
    offset: u64,
    need: usize,
    align: usize,
) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(file, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                // The end of the file: a further O_DIRECT read would start unaligned.
                if done % align != 0 {
                    break;
                }
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if done < need {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "file ended at byte {}, {} bytes short (truncated while reading?)",
                offset + done as u64,
                need - done
            ),
        ));
    }
    Ok(done)
}

/// Write all of `buf` at `offset`.
pub(crate) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pwrite(file, &buf[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Run jobs on the I/O threads with at most `depth` of them in flight, in order; stops at
/// the first error (jobs already queued finish on their own).
pub(crate) async fn windowed<T, J>(
    io: &IoPool,
    jobs: impl IntoIterator<Item = J>,
    depth: usize,
) -> Result<Vec<T>>
where
    J: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let mut pending: VecDeque<std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send>>> =
        VecDeque::new();
    let mut out = Vec::new();
    for job in jobs {
        if pending.len() >= depth.max(1) {
            out.push(pending.pop_front().expect("non-empty").await?);
        }
        pending.push_back(Box::pin(io.submit(job)));
    }
    while let Some(p) = pending.pop_front() {
        out.push(p.await?);
    }
    Ok(out)
}
