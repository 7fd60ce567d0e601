//! A bounded pool of read buffers, shared by backends.
//!
//! Filling freshly allocated memory costs a page fault (and a page of zeroing) for every
//! 4 KiB besides the copy itself: several times the cost of the copy. Backends therefore
//! read large objects into pooled buffers, handed out as `Bytes` that return their memory
//! here when the last reference is dropped, so the next read of a similar size reuses memory
//! that is already faulted in. Idle memory is bounded by the limit the pool is made with
//! (each backend's `buffer_pool_bytes` option).
//!
//! (Asking for transparent huge pages for fresh buffers was measured and rejected: on a
//! virtual machine, zeroing fresh 2 MiB pages cost more CPU than the 4 KiB faults it saved.)
//!
//! Buffers are always initialised (fresh ones come zeroed), so reads fill them through
//! ordinary slices, and reuse needs no zeroing.

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

/// Reads smaller than this use ordinary allocations: the allocator reuses small blocks
/// well, and pooling them would only add locking.
pub const MIN_POOLED: usize = 512 * 1024;

#[derive(Debug)]
pub struct BufferPool {
    limit: usize,
    /// Idle buffers and their total size.
    idle: Mutex<(Vec<Vec<u8>>, usize)>,
}

impl BufferPool {
    /// A pool keeping at most `limit` bytes of idle buffers (0 turns pooling off).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            idle: Mutex::new((Vec::new(), 0)),
        })
    }

    /// Whether reads of `len` bytes use this pool.
    pub fn pools(&self, len: usize) -> bool {
        self.limit > 0 && len >= MIN_POOLED
    }

    /// An initialised buffer of at least `len` bytes (contents unspecified): an idle one
    /// if a similar size is pooled, else a new one. Sizes this pool does not keep get a
    /// plain buffer of exactly `len` bytes.
    pub fn take(&self, len: usize) -> Vec<u8> {
        if !self.pools(len) {
            return vec![0u8; len];
        }
        {
            let mut guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let (idle, bytes) = &mut *guard;
            // The smallest idle buffer that fits without wasting more than half of it.
            let best = idle
                .iter()
                .enumerate()
                .filter(|(_, b)| b.len() >= len && b.len() / 2 <= len)
                .min_by_key(|(_, b)| b.len())
                .map(|(i, _)| i);
            if let Some(i) = best {
                let buf = idle.swap_remove(i);
                *bytes -= buf.len();
                return buf;
            }
        }
        // Zeroed memory of this size comes straight from the OS, zeroed lazily on first touch.
        let buf = vec![0u8; size_class(len)];
        populate(&buf);
        buf
    }

    /// Keep `buf` for reuse if the pool has room.
    fn give(&self, buf: Vec<u8>) {
        let mut guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let (idle, bytes) = &mut *guard;
        if *bytes + buf.len() <= self.limit {
            *bytes += buf.len();
            idle.push(buf);
        }
    }

    /// The first `len` bytes of `buf` (from [`take`](Self::take)) as `Bytes` that return
    /// `buf` to this pool when the last reference is dropped.
    pub fn wrap(self: &Arc<Self>, mut buf: Vec<u8>, len: usize) -> Bytes {
        debug_assert!(len <= buf.len());
        if !self.pools(len) {
            buf.truncate(len);
            return Bytes::from(buf);
        }
        Bytes::from_owner(Pooled {
            buf,
            len,
            pool: Arc::clone(self),
        })
    }

    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        self.idle.lock().unwrap().1
    }
}

/// Fault a fresh buffer's pages in with one call rather than one page fault per 4 KiB as
/// the read fills it.
fn populate(buf: &[u8]) {
    populate_range(buf.as_ptr(), buf.len());
}

/// Fault in the spare capacity of `buf` (memory a read is about to fill) with one call
/// rather than a page fault per 4 KiB; for large destination buffers, such as a
/// checkpoint shard's. Contents and length are unchanged.
pub fn prefault_spare(buf: &mut BytesMut) {
    let spare = buf.spare_capacity_mut();
    populate_range(spare.as_ptr().cast(), spare.len());
}

/// Append up to `max` bytes to `buf` by letting `fill` write into its spare capacity (a
/// positional read straight into the destination, with no zeroing first): `fill` gets the
/// uninitialised room and returns the prefix of it that it initialised (what
/// `rustix::io::pread` returns), which becomes part of `buf`. Returns how many bytes that was.
pub fn append_with<E>(
    buf: &mut BytesMut,
    max: usize,
    fill: impl for<'a> FnOnce(&'a mut [MaybeUninit<u8>]) -> Result<&'a mut [u8], E>,
) -> Result<usize, E> {
    buf.reserve(max);
    let spare = &mut buf.spare_capacity_mut()[..max];
    let start = spare.as_ptr() as usize;
    let init = fill(spare)?;
    let n = init.len();
    // Only a prefix of the room given can extend the buffer (a slice from elsewhere would
    // say nothing about these bytes).
    assert!(
        init.as_ptr() as usize == start && n <= max,
        "append_with: fill must return a prefix of the room it was given"
    );
    // SAFETY: `init` is a `&mut [u8]` over the first n bytes of the spare capacity (checked
    // above), so those bytes are initialised.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

#[cfg(target_os = "linux")]
fn populate_range(ptr: *const u8, len: usize) {
    const PAGE: usize = 4096;
    let start = (ptr as usize).next_multiple_of(PAGE);
    let end = (ptr as usize + len) / PAGE * PAGE;
    if end > start {
        // No MADV_HUGEPAGE: measured on a VM whose free memory goes back to the host, a
        // process's first huge pages cost three times the CPU of 4 KiB ones (fresh host
        // memory behind each), which outweighs the gain once they are warm.
        // SAFETY: the whole pages in the range lie inside one allocation the caller holds
        // mutably; MADV_POPULATE_WRITE only faults pages in and leaves their contents (kernels
        // before 5.14 refuse it, which is harmless).
        unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                end - start,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn populate_range(_: *const u8, _: usize) {}

/// Round sizes up to one of eight steps per power of two (at most 12.5% slack), so objects
/// of slightly different sizes can share buffers.
fn size_class(len: usize) -> usize {
    let step = (len.next_power_of_two() / 8).max(4096);
    len.div_ceil(step) * step
}

struct Pooled {
    buf: Vec<u8>,
    len: usize,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_the_last_reference_drops_and_are_reused() {
        let pool = BufferPool::new(64 << 20);
        let len = 3 << 20;
        let mut buf = pool.take(len);
        let cap = buf.len();
        assert!(
            cap >= len && cap <= len + len / 8,
            "size class {cap} for {len}"
        );
        buf[..len].fill(7);
        let ptr = buf.as_ptr();
        let bytes = pool.wrap(buf, len);
        assert_eq!(bytes.len(), len);
        assert!(bytes.iter().all(|b| *b == 7));
        let clone = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.idle_bytes(), 0, "returned while a slice is alive");
        drop(clone);
        assert_eq!(pool.idle_bytes(), cap);
        let again = pool.take(len - 100);
        assert_eq!(again.as_ptr(), ptr, "a similar size reuses the buffer");
        assert_eq!(pool.idle_bytes(), 0);
    }

    #[test]
    fn sizes_below_the_pooled_minimum_are_plain_exact_buffers() {
        let pool = BufferPool::new(64 << 20);
        let mut buf = pool.take(100);
        assert_eq!(buf.len(), 100);
        buf.fill(3);
        let bytes = pool.wrap(buf, 60);
        assert_eq!(&bytes[..], &[3u8; 60][..]);
        drop(bytes);
        assert_eq!(pool.idle_bytes(), 0, "small buffers are not kept");
    }

    #[test]
    fn idle_memory_is_bounded_and_sizes_are_matched() {
        let pool = BufferPool::new(5 << 20);
        let a = pool.wrap(pool.take(4 << 20), 4 << 20);
        let b = pool.wrap(pool.take(4 << 20), 4 << 20);
        drop(a);
        drop(b);
        assert_eq!(
            pool.idle_bytes(),
            4 << 20,
            "only one 4 MiB buffer fits in 5 MiB"
        );
        // A much smaller read does not take the much larger buffer.
        assert!(pool.take(MIN_POOLED).len() < 4 << 20);
        assert!(pool.pools(MIN_POOLED) && !pool.pools(MIN_POOLED - 1));
        assert!(
            !BufferPool::new(0).pools(64 << 20),
            "a zero limit turns pooling off"
        );
    }
}
