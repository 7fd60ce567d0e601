//! What every multipart writer shares (in store-core, so every backend uses the same): the
//! bytes written but not yet sent, cut into parts without copying; [`PartedWriter`], the
//! streaming writer over a backend's [`Parts`] (one request for a small write, else parts
//! staged concurrently and committed once); and the background abort of an upload whose
//! writer was dropped.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use tokio::task::JoinSet;

use crate::{Error, ObjectWriter, Operation, PutResult, Result};

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
        contiguous(self.take(n))
    }
}

/// `parts` as one buffer: no copy when there is one.
pub fn contiguous(mut parts: Vec<Bytes>) -> Bytes {
    if parts.len() == 1 {
        return parts.pop().unwrap_or_default();
    }
    let mut buf = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
    for p in parts {
        buf.extend_from_slice(&p);
    }
    buf.freeze()
}

/// A backend's side of a write sent in parts (S3's multipart upload, Azure's staged blocks):
/// the requests; [`PartedWriter`] decides when each is made.
#[async_trait]
pub trait Parts: Send + 'static {
    /// What an uploaded part leaves for the commit (S3: its number and ETag).
    type Done: Send + 'static;
    /// The object's URI, for errors.
    fn uri(&self) -> String;
    /// Writes of up to this many bytes are sent whole, as one request, at `complete`.
    fn single_max(&self) -> usize;
    /// Parts uploaded at once at most (which bounds the memory a writer holds).
    fn concurrency(&self) -> usize;
    /// The size of part `n` (1-based).
    fn part_size(&self, n: u32) -> usize;
    /// The most parts one write may have, and the error past it (naming what to raise).
    fn max_parts(&self) -> (u32, Error);
    /// Past `single_max`, whether `pending` bytes start staging: `Ok(false)` keeps them
    /// buffered for one request (a write this backend can only send whole), an error fails
    /// the write. Default: start.
    fn stage_at(&self, _pending: usize) -> Result<bool> {
        Ok(true)
    }
    /// Whether a staged write with nothing left to send still needs a last (empty) part.
    fn needs_last_part(&self) -> bool;
    /// Send the whole write as one request.
    async fn put_whole(&mut self, body: Vec<Bytes>) -> Result<PutResult>;
    /// Begin staging (S3: CreateMultipartUpload).
    async fn start(&mut self) -> Result<()>;
    /// The upload of part `n`, to run in the background.
    fn part(&mut self, n: u32, body: Vec<Bytes>) -> Result<BoxFuture<'static, Result<Self::Done>>>;
    /// Make the object of the uploaded parts, in order.
    async fn commit(&mut self, parts: Vec<Self::Done>, size: u64) -> Result<PutResult>;
    /// Undo what staging left (S3: abort the upload), logging a failure to: the caller is
    /// already reporting what made it abort.
    async fn abort(&mut self);
    /// The same, from `Drop`, where nothing can be awaited (see [`abort_in_background`]).
    fn abort_detached(&mut self);
}

/// The streaming writer of every multipart backend. Up to [`Parts::single_max`] bytes are
/// buffered and sent whole at `complete`; past it, staging starts and full parts are
/// uploaded concurrently (at most [`Parts::concurrency`] in flight) while the caller keeps
/// writing, and `complete` sends the rest and commits. Any failure, `abort`, or dropping
/// the writer stops the parts in flight and undoes the staging, so neither an object nor a
/// dangling upload is left behind.
pub struct PartedWriter<P: Parts> {
    parts: P,
    /// Bytes not yet sent.
    pending: Pending,
    written: u64,
    staging: bool,
    next: u32,
    in_flight: JoinSet<(u32, Result<P::Done>)>,
    done: Vec<(u32, P::Done)>,
    /// Set once completed or aborted, so Drop leaves it alone.
    finished: bool,
}

impl<P: Parts> fmt::Debug for PartedWriter<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartedWriter")
            .field("uri", &self.parts.uri())
            .field("written", &self.written)
            .field("staging", &self.staging)
            .field("parts", &(self.next - 1))
            .finish()
    }
}

impl<P: Parts> PartedWriter<P> {
    pub fn new(parts: P) -> Self {
        Self {
            parts,
            pending: Pending::default(),
            written: 0,
            staging: false,
            next: 1,
            in_flight: JoinSet::new(),
            done: Vec::new(),
            finished: false,
        }
    }

    /// Upload one part in the background, first waiting for a slot if all are busy.
    async fn send_part(&mut self, body: Vec<Bytes>) -> Result<()> {
        while self.in_flight.len() >= self.parts.concurrency() {
            self.reap_one().await?;
        }
        let n = self.next;
        let (max, too_many) = self.parts.max_parts();
        if n > max {
            return Err(too_many);
        }
        self.next += 1;
        let upload = self.parts.part(n, body)?;
        self.in_flight.spawn(async move { (n, upload.await) });
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<()> {
        if let Some(joined) = self.in_flight.join_next().await {
            let (n, done) =
                joined.map_err(|e| Error::other(format!("part upload task failed: {e}")))?;
            self.done.push((n, done?));
        }
        Ok(())
    }

    /// Send every full part that is pending.
    async fn flush_full_parts(&mut self) -> Result<()> {
        loop {
            let size = self.parts.part_size(self.next);
            if self.pending.len() < size {
                return Ok(());
            }
            let body = self.pending.take(size);
            self.send_part(body).await?;
        }
    }

    async fn fail(&mut self, e: Error) -> Error {
        self.abort_now().await;
        e.context(Operation::Write, self.parts.uri())
    }

    async fn abort_now(&mut self) {
        // Buffered bytes are released at once, not when the writer is finally dropped.
        self.pending.clear();
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if self.staging {
            self.parts.abort().await;
        }
        self.finished = true;
    }

    async fn commit(&mut self) -> Result<PutResult> {
        let rest = self.pending.len();
        if rest > 0 || (self.next == 1 && self.parts.needs_last_part()) {
            let body = self.pending.take(rest);
            self.send_part(body).await?;
        }
        while !self.in_flight.is_empty() {
            self.reap_one().await?;
        }
        let mut done = std::mem::take(&mut self.done);
        done.sort_by_key(|(n, _)| *n);
        let parts = done.into_iter().map(|(_, d)| d).collect();
        self.parts.commit(parts, self.written).await
    }
}

#[async_trait]
impl<P: Parts> ObjectWriter for PartedWriter<P> {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        if self.finished {
            return Err(Error::invalid_input("write after the writer failed")
                .context(Operation::Write, self.parts.uri()));
        }
        if data.is_empty() {
            return Ok(());
        }
        self.written += data.len() as u64;
        self.pending.push(data);
        if !self.staging {
            if self.pending.len() <= self.parts.single_max() {
                return Ok(());
            }
            match self.parts.stage_at(self.pending.len()) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => return Err(self.fail(e).await),
            }
            if let Err(e) = self.parts.start().await {
                return Err(self.fail(e).await);
            }
            self.staging = true;
        }
        if let Err(e) = self.flush_full_parts().await {
            return Err(self.fail(e).await);
        }
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<PutResult> {
        if self.finished {
            return Err(Error::invalid_input("complete after the writer failed")
                .context(Operation::Complete, self.parts.uri()));
        }
        if !self.staging {
            // Small (or only sendable whole): one request.
            let n = self.pending.len();
            let body = self.pending.take(n);
            self.finished = true;
            return self.parts.put_whole(body).await;
        }
        match self.commit().await {
            Ok(r) => {
                self.finished = true;
                Ok(r)
            }
            Err(e) => {
                self.abort_now().await;
                Err(e
                    .with_operation(Operation::Complete)
                    .with_uri(self.parts.uri()))
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.abort_now().await;
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.written
    }
}

impl<P: Parts> Drop for PartedWriter<P> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.in_flight.abort_all();
        if self.staging {
            self.parts.abort_detached();
        }
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
    use std::sync::{Arc, Mutex};

    /// What a scripted backend was asked to do.
    #[derive(Debug, Default)]
    struct Log {
        whole: Option<Vec<u8>>,
        started: bool,
        /// (part number, size) as uploads began.
        parts: Vec<(u32, usize)>,
        in_flight: usize,
        most_in_flight: usize,
        committed: Option<Vec<u32>>,
        aborted: usize,
        detached: usize,
    }

    /// Parts of 4 bytes, one request up to 6, two in flight, at most 5 parts; part `fail`
    /// fails; `whole_only` keeps writes of up to 20 bytes whole.
    struct Script {
        log: Arc<Mutex<Log>>,
        fail: u32,
        whole_only: bool,
    }

    #[async_trait]
    impl Parts for Script {
        type Done = u32;
        fn uri(&self) -> String {
            "mem://k".into()
        }
        fn single_max(&self) -> usize {
            6
        }
        fn concurrency(&self) -> usize {
            2
        }
        fn part_size(&self, _: u32) -> usize {
            4
        }
        fn max_parts(&self) -> (u32, Error) {
            (5, Error::invalid_input("more than 5 parts"))
        }
        fn stage_at(&self, pending: usize) -> Result<bool> {
            if !self.whole_only {
                Ok(true)
            } else if pending <= 20 {
                Ok(false)
            } else {
                Err(Error::invalid_input("too large to send whole"))
            }
        }
        fn needs_last_part(&self) -> bool {
            true
        }
        async fn put_whole(&mut self, body: Vec<Bytes>) -> Result<PutResult> {
            self.log.lock().unwrap().whole = Some(body.concat());
            Ok(PutResult::default())
        }
        async fn start(&mut self) -> Result<()> {
            self.log.lock().unwrap().started = true;
            Ok(())
        }
        fn part(&mut self, n: u32, body: Vec<Bytes>) -> Result<BoxFuture<'static, Result<u32>>> {
            let log = Arc::clone(&self.log);
            let fail = self.fail == n;
            {
                let mut l = log.lock().unwrap();
                l.parts.push((n, body.iter().map(Bytes::len).sum()));
                l.in_flight += 1;
                l.most_in_flight = l.most_in_flight.max(l.in_flight);
            }
            Ok(Box::pin(async move {
                // Later parts finish first: the commit must still get them in order.
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(10 - n))).await;
                log.lock().unwrap().in_flight -= 1;
                if fail {
                    Err(Error::other(format!("part {n} failed")))
                } else {
                    Ok(n)
                }
            }))
        }
        async fn commit(&mut self, parts: Vec<u32>, size: u64) -> Result<PutResult> {
            self.log.lock().unwrap().committed = Some(parts);
            Ok(PutResult { etag: None, size })
        }
        async fn abort(&mut self) {
            self.log.lock().unwrap().aborted += 1;
        }
        fn abort_detached(&mut self) {
            self.log.lock().unwrap().detached += 1;
        }
    }

    fn writer(fail: u32, whole_only: bool) -> (Box<PartedWriter<Script>>, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        let parts = Script {
            log: Arc::clone(&log),
            fail,
            whole_only,
        };
        (Box::new(PartedWriter::new(parts)), log)
    }

    #[tokio::test]
    async fn a_small_write_is_one_request_and_a_large_one_parts_committed_in_order() {
        let (mut w, log) = writer(0, false);
        w.write(Bytes::from_static(b"abc")).await.unwrap();
        w.write(Bytes::from_static(b"def")).await.unwrap();
        w.complete().await.unwrap();
        {
            let l = log.lock().unwrap();
            assert_eq!(l.whole.as_deref(), Some(&b"abcdef"[..]));
            assert!(!l.started && l.parts.is_empty());
        }

        let (mut w, log) = writer(0, false);
        for _ in 0..6 {
            w.write(Bytes::from_static(b"xyz")).await.unwrap();
        }
        let r = w.complete().await.unwrap();
        assert_eq!(r.size, 18);
        let l = log.lock().unwrap();
        assert!(l.started && l.whole.is_none());
        assert_eq!(l.parts, vec![(1, 4), (2, 4), (3, 4), (4, 4), (5, 2)]);
        assert_eq!(l.committed.as_deref(), Some(&[1, 2, 3, 4, 5][..]));
        assert!(l.most_in_flight <= 2, "{} in flight", l.most_in_flight);
        assert_eq!((l.aborted, l.detached), (0, 0));
    }

    #[tokio::test]
    async fn a_failed_part_aborts_and_the_writer_stays_failed() {
        let (mut w, log) = writer(2, false);
        let mut err = None;
        for _ in 0..6 {
            if let Err(e) = w.write(Bytes::from_static(b"xyz")).await {
                err = Some(e);
                break;
            }
        }
        let e = match err {
            Some(e) => e,
            None => w.complete().await.unwrap_err(),
        };
        assert!(e.to_string().contains("part 2 failed"), "{e}");
        assert!(e.to_string().contains("mem://k"), "{e}");
        let l = log.lock().unwrap();
        assert_eq!(l.aborted, 1);
        assert!(l.committed.is_none());
    }

    #[tokio::test]
    async fn too_many_parts_and_writes_only_sendable_whole_fail_clearly() {
        let (mut w, log) = writer(0, false);
        let e = w.write(Bytes::from(vec![0u8; 30])).await.unwrap_err();
        assert!(e.to_string().contains("more than 5 parts"), "{e}");
        assert_eq!(log.lock().unwrap().aborted, 1);
        let e = w.write(Bytes::from_static(b"more")).await.unwrap_err();
        assert!(e.to_string().contains("after the writer failed"), "{e}");

        let (mut w, log) = writer(0, true);
        w.write(Bytes::from(vec![1u8; 20])).await.unwrap();
        w.complete().await.unwrap();
        assert_eq!(log.lock().unwrap().whole.as_ref().map(Vec::len), Some(20));
        let (mut w, log) = writer(0, true);
        let e = w.write(Bytes::from(vec![1u8; 21])).await.unwrap_err();
        assert!(e.to_string().contains("too large to send whole"), "{e}");
        assert!(!log.lock().unwrap().started);
    }

    #[tokio::test]
    async fn dropping_or_aborting_a_staged_writer_undoes_it() {
        let (mut w, log) = writer(0, false);
        w.write(Bytes::from(vec![0u8; 10])).await.unwrap();
        drop(w);
        assert_eq!(log.lock().unwrap().detached, 1);
        let (mut w, log) = writer(0, false);
        w.write(Bytes::from(vec![0u8; 10])).await.unwrap();
        w.abort().await.unwrap();
        {
            let l = log.lock().unwrap();
            assert_eq!((l.aborted, l.detached), (1, 0));
        }
        // Nothing staged: nothing to undo.
        let (mut w, log) = writer(0, false);
        w.write(Bytes::from_static(b"ab")).await.unwrap();
        drop(w);
        assert_eq!(log.lock().unwrap().detached, 0);
    }

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
