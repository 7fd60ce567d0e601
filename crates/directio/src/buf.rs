//! Aligned buffers for `O_DIRECT`, and a bounded pool of them.
//!
//! `O_DIRECT` needs the buffer's address, the file offset and the length aligned to what
//! the device and file system ask (see `align.rs`). Buffers here are allocated with that
//! alignment (at least a page), handed to the caller as `Bytes` that own them (sliced to
//! the bytes asked for, without a copy) and return them to the pool when the last
//! reference is dropped. Idle memory is bounded by the pool's limit; buffers in use are
//! bounded by the callers (requests in flight times their size).
//!
//! All of the crate's `unsafe` is in this module.

use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Every buffer is aligned to at least this (a page), so one buffer suits any device with
/// an alignment up to a page.
pub(crate) const MIN_ALIGN: usize = 4096;

/// Memory allocated with an alignment, zeroed when new. Owned by one thread at a time,
/// except while [`Shared`] hands disjoint parts of it to I/O jobs.
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the buffer is plain memory that the struct owns; moving it between threads is
// as safe as moving a Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only read it (`as_slice`); writes need `&mut` or go through
// `Shared`, whose contract keeps them disjoint and unobserved.
unsafe impl Sync for AlignedBuf {}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AlignedBuf({} bytes, align {})",
            self.len(),
            self.align()
        )
    }
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes (at least one alignment unit) aligned to `align` (a
    /// power of two, raised to at least [`MIN_ALIGN`]).
    pub(crate) fn new(len: usize, align: usize) -> Self {
        let align = align.max(MIN_ALIGN);
        let len = len.max(align).next_multiple_of(align);
        let layout = Layout::from_size_align(len, align).expect("valid buffer layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            alloc::handle_alloc_error(layout)
        };
        Self { ptr, layout }
    }

    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    pub(crate) fn align(&self) -> usize {
        self.layout.align()
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `len` initialised bytes (zeroed at allocation) owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len()) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, and freed only here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A buffer that several I/O jobs fill at once, each its own disjoint range. Each job holds
/// a clone; the owner takes the buffer back with [`Shared::into_inner`] once every job has
/// finished (dropped its clone). If the owner gives up early (a cancelled read), the jobs
/// still running keep the memory alive, and the last one frees it.
#[derive(Clone, Debug)]
pub(crate) struct Shared(Arc<AlignedBuf>);

impl Shared {
    pub(crate) fn new(buf: AlignedBuf) -> Self {
        Self(Arc::new(buf))
    }

    /// The bytes `start..end` of the buffer, for one job to fill.
    ///
    /// # Safety
    /// No other live slice of the buffer may overlap `start..end`, and nothing may read
    /// the buffer until every job is done with its slice.
    #[allow(clippy::mut_from_ref)] // the contract above is what makes this sound
    pub(crate) unsafe fn slice_mut(&self, start: usize, end: usize) -> &mut [u8] {
        assert!(
            start <= end && end <= self.0.len(),
            "slice within the buffer"
        );
        // SAFETY: in bounds (asserted); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.ptr.as_ptr().add(start), end - start) }
    }

    /// The buffer, once no job holds it any more.
    pub(crate) fn into_inner(self) -> Option<AlignedBuf> {
        Arc::into_inner(self.0)
    }
}

/// Idle aligned buffers kept for reuse, at most `limit` bytes of them. New buffers come
/// from the allocator (zeroed lazily by the kernel for large sizes), so reuse saves the
/// page faults of fresh memory.
#[derive(Debug)]
pub(crate) struct AlignedPool {
    limit: usize,
    idle: Mutex<(Vec<AlignedBuf>, usize)>,
}

impl AlignedPool {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            idle: Mutex::new((Vec::new(), 0)),
        })
    }

    /// A buffer of at least `len` bytes aligned to `align`: an idle one that fits without
    /// wasting more than half of it, else a new one (sized in steps of an eighth of a power
    /// of two, so similar sizes share buffers).
    pub(crate) fn take(&self, len: usize, align: usize) -> AlignedBuf {
        {
            let mut guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let (idle, bytes) = &mut *guard;
            let best = idle
                .iter()
                .enumerate()
                .filter(|(_, b)| b.len() >= len && b.len() / 2 <= len.max(1) && b.align() >= align)
                .min_by_key(|(_, b)| b.len())
                .map(|(i, _)| i);
            if let Some(i) = best {
                let buf = idle.swap_remove(i);
                *bytes -= buf.len();
                return buf;
            }
        }
        AlignedBuf::new(size_class(len), align)
    }

    /// Keep `buf` for reuse if the pool has room, else free it.
    pub(crate) fn give(&self, buf: AlignedBuf) {
        let mut guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let (idle, bytes) = &mut *guard;
        if *bytes + buf.len() <= self.limit {
            *bytes += buf.len();
            idle.push(buf);
        }
    }

    /// Bytes `start..start + len` of `buf` as `Bytes` that own `buf` (no copy) and give it
    /// back to this pool when the last reference is dropped.
    pub(crate) fn wrap(self: &Arc<Self>, buf: AlignedBuf, start: usize, len: usize) -> Bytes {
        assert!(start + len <= buf.len(), "slice within the buffer");
        if len == 0 {
            self.give(buf);
            return Bytes::new();
        }
        Bytes::from_owner(Pooled {
            buf: Some(buf),
            start,
            len,
            pool: Arc::clone(self),
        })
    }

    /// Idle bytes held (for tests).
    #[cfg(test)]
    pub(crate) fn idle_bytes(&self) -> usize {
        self.idle.lock().unwrap().1
    }
}

fn size_class(len: usize) -> usize {
    let step = (len.max(1).next_power_of_two() / 8).max(MIN_ALIGN);
    len.max(1).div_ceil(step) * step
}

struct Pooled {
    buf: Option<AlignedBuf>,
    start: usize,
    len: usize,
    pool: Arc<AlignedPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        let buf = self.buf.as_ref().expect("present until dropped");
        &buf.as_slice()[self.start..self.start + self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.pool.give(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_zeroed_and_come_back() {
        let pool = AlignedPool::new(8 << 20);
        let mut b = pool.take(5000, 512);
        assert_eq!(b.as_slice().as_ptr() as usize % MIN_ALIGN, 0);
        assert!(b.len() >= 5000 && b.len() % MIN_ALIGN == 0);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice()[..6].copy_from_slice(b"abcdef");
        let cap = b.len();
        let bytes = pool.wrap(b, 2, 3);
        assert_eq!(&bytes[..], b"cde");
        let tail = bytes.slice(1..);
        drop(bytes);
        assert_eq!(pool.idle_bytes(), 0, "a slice still holds it");
        drop(tail);
        assert_eq!(pool.idle_bytes(), cap);
        let again = pool.take(4096, 4096);
        assert_eq!(again.len(), cap, "reused");
        assert_eq!(pool.idle_bytes(), 0);
        let big = AlignedBuf::new(100, 64 << 10);
        assert_eq!(big.as_slice().as_ptr() as usize % (64 << 10), 0);
    }

    #[test]
    fn idle_memory_is_bounded() {
        let pool = AlignedPool::new(3 << 20);
        let a = pool.wrap(pool.take(2 << 20, 4096), 0, 1);
        let b = pool.wrap(pool.take(2 << 20, 4096), 0, 1);
        drop(a);
        drop(b);
        assert_eq!(pool.idle_bytes(), 2 << 20, "only one fits under the limit");
        // A much smaller request does not take the large buffer.
        assert!(pool.take(4096, 4096).len() < 2 << 20);
        let none = AlignedPool::new(0);
        none.give(AlignedBuf::new(4096, 4096));
        assert_eq!(none.idle_bytes(), 0);
    }

    #[test]
    fn shared_buffers_come_back_after_the_jobs() {
        let s = Shared::new(AlignedBuf::new(8192, 4096));
        let jobs: Vec<_> = (0..2)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    // SAFETY: each thread its own half; nobody reads until joined.
                    let part = unsafe { s.slice_mut(i * 4096, (i + 1) * 4096) };
                    part.fill(i as u8 + 1);
                })
            })
            .collect();
        for j in jobs {
            j.join().unwrap();
        }
        let buf = s.into_inner().expect("every job is done");
        assert!(buf.as_slice()[..4096].iter().all(|&x| x == 1));
        assert!(buf.as_slice()[4096..].iter().all(|&x| x == 2));
    }
}
