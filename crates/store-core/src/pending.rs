//! What every multipart writer shares (in store-core, so the Azure backend uses the same):
//! the bytes written but not yet sent, cut into parts without copying, and the background
//! abort of an upload whose writer was dropped.

use std::collections::VecDeque;
use std::future::Future;

use bytes::{Bytes, BytesMut};

/// Bytes handed to a writer and not yet sent, kept as the caller's own buffers.
#[derive(Debug, Default)]
pub struct Pending {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Pending {
    pub fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.len += data.len();
            self.chunks.push_back(data);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// The first `n` bytes (or all, if fewer), as slices of the caller's buffers.
    pub fn take(&mut self, n: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut need = n;
        while need > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() <= need {
                need -= front.len();
                out.extend(self.chunks.pop_front());
            } else {
                out.push(front.split_to(need));
                need = 0;
            }
        }
        self.len -= n - need;
        out
    }

    /// The first `n` bytes as one buffer: no copy when one chunk holds them.
    pub fn take_contiguous(&mut self, n: usize) -> Bytes {
        let mut parts = self.take(n);
        if parts.len() == 1 {
            return parts.pop().unwrap_or_default();
        }
        let mut buf = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
        for p in parts {
            buf.extend_from_slice(&p);
        }
        buf.freeze()
    }
}

/// Run `abort` in the background if a runtime is there to run it: a dropped writer must not
/// leave an upload behind (storage keeps billing for its parts). Outside a runtime, say so.
pub fn abort_in_background(uri: String, abort: impl Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(abort);
        }
        Err(_) => tracing::warn!(
            %uri,
            "writer dropped outside a runtime; its unfinished upload is left for the store's \
             lifecycle rules (S3) or expiry of uncommitted blocks (Azure, 7 days)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_cut_from_the_callers_buffers() {
        let mut p = Pending::default();
        let a = Bytes::from_static(b"hello ");
        p.push(a.clone());
        p.push(Bytes::new());
        p.push(Bytes::from_static(b"world"));
        assert_eq!(p.len(), 11);
        let first = p.take_contiguous(3);
        assert_eq!(first, "hel");
        assert_eq!(
            first.as_ptr(),
            a.as_ptr(),
            "a part inside one chunk is not copied"
        );
        assert_eq!(p.take_contiguous(5), "lo wo");
        assert_eq!(p.take(100).concat(), b"rld");
        assert_eq!(p.len(), 0);
        assert!(p.take(4).is_empty());
    }
}
