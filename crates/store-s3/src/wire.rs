//! GETs, HEADs, DELETEs and small PUTs on plain-http endpoints, without hyper in between. A large
//! GET's client CPU goes mostly to wakeups (one per 64 KiB segment that lands on a busy
//! socket), to hyper copying its read buffer into chunks and to our copy of those chunks
//! into the object's buffer. Here a response's body is read in large reads, straight into
//! the caller's buffer when it has one (`WireBody::read`), and the socket's receive
//! low-water mark (`SO_RCVLOWAT`) is raised to the size of the read, so the task wakes
//! once per read instead of once per segment (lowered to what is left near the end, so
//! it never waits for bytes that are not coming). A small request costs the client less
//! here too: it is written and answered in the caller's task, where hyper's client hands
//! each request to a connection task and its answer back (two more wakeups, often on the
//! other worker thread).
//!
//! Only what S3 needs: HTTP/1.1 keep-alive, a response with `Content-Length` (interim
//! `1xx` answers are skipped). A GET, HEAD or DELETE answered in another form (chunked, no
//! length, HTTP/1.0) is reported as [`WireError::Unsupported`] and the caller sends it
//! through hyper instead; a PUT, which may have been performed by then, keeps the answer's
//! status and headers (its body is not read and the connection is closed). Either way the
//! endpoint's requests go through hyper from then on. TLS endpoints never come here.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use s3dlio_store_core::{ConnectionFailure, Error, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest read of a body chunk when the body is streamed (read into fresh buffers).
const CHUNK: usize = 1 << 20;
/// Highest receive low-water mark: a wakeup per this many bytes at most. Chosen by
/// measurement (32 x 16 MiB GETs from SeaweedFS, 8 to 10 alternating runs, median client
/// CPU per GiB): 256 KiB to 4 MiB beat the kernel's default of 1 byte in two sessions
/// (0.51-0.52 against 0.56 s; 0.40-0.43 against 0.68 with warm huge pages), 2 MiB best.
/// Higher (4 to 8 MiB) lowers the client's CPU by up to a tenth on loopback without saving
/// any: the kernel clamps the receive window to the mark, and with a wider window the
/// server's sends deliver into our socket in its own system calls rather than in the
/// softirq of our window updates (the server's CPU rose by as much: PERFORMANCE.md).
const LOWAT: usize = 2 << 20;
/// A response head larger than this is refused.
const MAX_HEAD: usize = 64 << 10;
/// Idle connections older than this are closed rather than reused (servers close theirs
/// after 60 s or more; SeaweedFS and MinIO keep them longer).
const IDLE_LIMIT: Duration = Duration::from_secs(50);
/// Idle connections kept per endpoint.
const MAX_IDLE: usize = 256;
/// Request bodies up to this size are written together with the head.
const INLINE_BODY: usize = 64 << 10;

/// The connections to one plain-http endpoint.
#[derive(Debug)]
pub(crate) struct Wire {
    /// `host:port` as in the URL: the `Host` header (and what was signed).
    authority: String,
    /// Where to connect.
    addr: String,
    idle: Mutex<Vec<(TcpStream, Instant)>>,
    connect_timeout: Duration,
    read_timeout: Duration,
    /// Set once the endpoint answered in a form this path does not read.
    off: AtomicBool,
}

/// Why a request on the wire path failed.
#[derive(Debug)]
pub(crate) enum WireError {
    /// Send it through hyper instead (only for requests a repeat cannot harm: GET, HEAD,
    /// DELETE).
    Unsupported(String),
    /// A failure to report, with how far the request got.
    Failed(Error),
}

/// A response whose head has been read.
#[derive(Debug)]
pub(crate) struct WireResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: WireBody,
}

/// The body of a response: `Content-Length` bytes, read on demand.
#[derive(Debug)]
pub(crate) struct WireBody {
    wire: Arc<Wire>,
    conn: Option<TcpStream>,
    /// Body bytes read with the head.
    early: Bytes,
    /// Bytes still on the socket.
    remaining: u64,
    keep_alive: bool,
    /// The low-water mark set on the socket (1 is the kernel's default).
    lowat: usize,
}

impl Wire {
    /// The wire path for a bucket whose root is `base`, if it is a plain-http URL.
    pub fn for_base(
        base: &str,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Option<Arc<Self>> {
        let uri: http::Uri = base.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let auth = uri.authority()?;
        let addr = format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80));
        Some(Arc::new(Self {
            authority: auth.as_str().to_owned(),
            addr,
            idle: Mutex::new(Vec::new()),
            connect_timeout,
            read_timeout,
            off: AtomicBool::new(false),
        }))
    }

    pub fn is_off(&self) -> bool {
        self.off.load(Ordering::Relaxed)
    }

    /// A live idle connection, or a new one.
    async fn connection(&self) -> Result<TcpStream, Error> {
        loop {
            let popped = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((conn, since)) = popped else { break };
            // Closed by the server while idle: readable with EOF (or stray bytes).
            if since.elapsed() < IDLE_LIMIT && is_quiet(&conn) {
                return Ok(conn);
            }
        }
        let conn = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
        {
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timeout after {:?}", self.connect_timeout),
            )),
            Ok(r) => r,
        }
        .map_err(|e| {
            Error::new(
                if e.kind() == io::ErrorKind::TimedOut {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Interrupted
                },
                format!(
                    "could not send the request: could not connect to {}: {e}",
                    self.addr
                ),
            )
            .set_retryable(true)
            .with_connection_failure(ConnectionFailure::NotConnected)
        })?;
        conn.set_nodelay(true).ok();
        Ok(conn)
    }

    fn put_back(&self, conn: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }

    /// Send a signed request with `body` (empty for a GET; its `Content-Length` is among
    /// the request's headers) and read the answer's head.
    pub async fn send(
        self: &Arc<Self>,
        req: &http::Request<()>,
        body: &[u8],
    ) -> Result<WireResponse, WireError> {
        let mut head = Vec::with_capacity(
            1024 + if body.len() <= INLINE_BODY {
                body.len()
            } else {
                0
            },
        );
        let target = req
            .uri()
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        head.extend_from_slice(req.method().as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(target.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        head.extend_from_slice(self.authority.as_bytes());
        head.extend_from_slice(b"\r\n");
        for (k, v) in req.headers() {
            if k == http::header::HOST {
                continue;
            }
            head.extend_from_slice(k.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(v.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        // A small body goes out with the head, in one write (and one segment).
        let rest = if body.len() <= INLINE_BODY {
            head.extend_from_slice(body);
            &[][..]
        } else {
            body
        };

        let mut conn = self.connection().await.map_err(WireError::Failed)?;
        let mut sent = Ok(());
        for bytes in [&head[..], rest] {
            match tokio::time::timeout(self.read_timeout, conn.write_all(bytes)).await {
                Err(_) => {
                    return Err(no_answer(
                        ErrorKind::Timeout,
                        format!("could not send the request within {:?}", self.read_timeout),
                    ))
                }
                Ok(Err(e)) => {
                    sent = Err(e);
                    break;
                }
                Ok(Ok(())) => {}
            }
        }
        // A server that refuses a request on its head (bad credentials, no such bucket) may
        // answer and close before taking the whole body, which cuts our sending short: its
        // answer is read all the same, and only without one is the failed send reported.
        let mut buf = BytesMut::with_capacity(16 << 10);
        let (status, headers, version) = loop {
            let (status, headers, version, head_len) =
                match self.read_head(&mut conn, &mut buf).await {
                    Ok(head) => head,
                    Err(e) => {
                        return Err(match sent {
                            Err(w) => cut(format!("could not send the request: {w}")),
                            Ok(()) => e,
                        })
                    }
                };
            buf.advance(head_len);
            // Interim answers (100 Continue, 103 Early Hints) precede the real one.
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            break (status, headers, version);
        };
        let length = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let length = match length {
            _ if status == 204 || status == 304 || req.method() == http::Method::HEAD => Some(0),
            Some(_) if headers.contains_key(http::header::TRANSFER_ENCODING) => None,
            n => n,
        };
        let why = if version != 1 {
            Some("an HTTP/1.0 answer")
        } else if status == 101 {
            Some("a protocol switch")
        } else if length.is_none() {
            Some("an answer without Content-Length (chunked or read to the end)")
        } else {
            None
        };
        if let Some(why) = why {
            let e = self.unsupported(why);
            if matches!(
                *req.method(),
                http::Method::GET | http::Method::HEAD | http::Method::DELETE
            ) {
                return Err(e);
            }
            // A PUT (even of no bytes) may have been performed, so it is not sent again:
            // the answer's status and headers stand, and the connection is not reused.
            return Ok(WireResponse {
                status,
                headers,
                body: WireBody::empty(Arc::clone(self)),
            });
        }
        let length = length.unwrap_or(0);
        let keep_alive = !headers
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let early = buf.split_to(buf.len().min(usize::try_from(length).unwrap_or(usize::MAX)));
        let remaining = length - early.len() as u64;
        let mut body = WireBody {
            wire: Arc::clone(self),
            conn: Some(conn),
            early: early.freeze(),
            remaining,
            keep_alive: keep_alive && buf.is_empty() && sent.is_ok(),
            lowat: 1,
        };
        if body.remaining() == 0 {
            // Nothing to read (a PUT's answer): the connection is free now.
            body.finish();
        }
        Ok(WireResponse {
            status,
            headers,
            body,
        })
    }

    /// Read one answer head into `buf`: status, headers, HTTP minor version, and the head's
    /// length in `buf`.
    async fn read_head(
        &self,
        conn: &mut TcpStream,
        buf: &mut BytesMut,
    ) -> Result<(u16, HeaderMap, u8, usize), WireError> {
        loop {
            if !buf.is_empty() {
                let mut slots = [httparse::EMPTY_HEADER; 96];
                let mut resp = httparse::Response::new(&mut slots);
                match resp.parse(buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = resp.code.unwrap_or(0);
                        let mut map = HeaderMap::with_capacity(resp.headers.len());
                        for h in resp.headers.iter() {
                            let (Ok(k), Ok(v)) = (
                                HeaderName::from_bytes(h.name.as_bytes()),
                                HeaderValue::from_bytes(h.value),
                            ) else {
                                return Err(cut("malformed answer: a bad header".to_owned()));
                            };
                            map.append(k, v);
                        }
                        return Ok((status, map, resp.version.unwrap_or(1), n));
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                    Ok(httparse::Status::Partial) => {
                        return Err(WireError::Failed(Error::other(format!(
                            "answer head longer than {MAX_HEAD} bytes"
                        ))))
                    }
                    Err(e) => return Err(cut(format!("malformed answer: {e}"))),
                }
            }
            match tokio::time::timeout(self.read_timeout, conn.read_buf(buf)).await {
                Err(_) => {
                    return Err(no_answer(
                        ErrorKind::Timeout,
                        format!("no answer within {:?}", self.read_timeout),
                    ))
                }
                Ok(Err(e)) => return Err(cut(format!("connection failed: {e}"))),
                Ok(Ok(0)) => {
                    return Err(cut("connection closed before a complete answer".to_owned()))
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Turn the path off for this endpoint and say why.
    fn unsupported(&self, what: &str) -> WireError {
        self.off.store(true, Ordering::Relaxed);
        tracing::debug!(
            endpoint = %self.authority,
            "the endpoint sent {what}: its requests go through hyper from now on"
        );
        WireError::Unsupported(what.to_owned())
    }
}

/// A request sent (or maybe sent) and not answered: the server may have performed it.
fn no_answer(kind: ErrorKind, what: String) -> WireError {
    WireError::Failed(
        Error::new(kind, what)
            .set_retryable(true)
            .with_connection_failure(ConnectionFailure::NoAnswer),
    )
}

/// [`no_answer`] for a connection that failed or closed.
fn cut(what: String) -> WireError {
    no_answer(ErrorKind::Interrupted, what)
}

/// Whether an idle connection has nothing to read (no EOF, no stray bytes): safe to reuse.
fn is_quiet(conn: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(conn.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

impl WireBody {
    /// A body with nothing to read, on no connection.
    fn empty(wire: Arc<Wire>) -> Self {
        Self {
            wire,
            conn: None,
            early: Bytes::new(),
            remaining: 0,
            keep_alive: false,
            lowat: 1,
        }
    }

    /// Body bytes not yet delivered.
    pub fn remaining(&self) -> u64 {
        self.early.len() as u64 + self.remaining
    }

    /// Read the next body bytes into `dst`; `Ok(0)` once the body is complete (or `dst` is
    /// empty). A connection that ends early, fails or stalls for `read_timeout` is an error
    /// (retryable: the caller resumes from what it has).
    pub async fn read(&mut self, dst: &mut [u8]) -> Result<usize, Error> {
        if dst.is_empty() {
            return Ok(0);
        }
        if !self.early.is_empty() {
            let n = dst.len().min(self.early.len());
            dst[..n].copy_from_slice(&self.early[..n]);
            self.early.advance(n);
            if self.early.is_empty() && self.remaining == 0 {
                self.finish();
            }
            return Ok(n);
        }
        if self.remaining == 0 {
            self.finish();
            return Ok(0);
        }
        let want = dst
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let Some(conn) = self.conn.as_mut() else {
            return Err(Error::other("body read after a failure"));
        };
        // Wake once `lowat` bytes are waiting, or all that is left of the body.
        let lowat = want.min(LOWAT);
        if lowat != self.lowat {
            set_rcvlowat(conn, lowat);
            self.lowat = lowat;
        }
        let res = tokio::time::timeout(self.wire.read_timeout, conn.read(&mut dst[..want])).await;
        match res {
            Ok(Ok(n)) if n > 0 => {
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    self.finish();
                }
                Ok(n)
            }
            Ok(Ok(_)) => Err(self.broken(format!(
                "connection closed with {} body bytes still to come",
                self.remaining
            ))),
            Ok(Err(e)) => Err(self.broken(format!("reading the body: {e}"))),
            Err(_) => {
                self.conn = None;
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!("no body bytes for {:?}", self.wire.read_timeout),
                )
                .set_retryable(true))
            }
        }
    }

    /// The next chunk of the body in a buffer of its own, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if !self.early.is_empty() {
            return Ok(Some(std::mem::take(&mut self.early)));
        }
        if self.remaining == 0 {
            self.finish();
            return Ok(None);
        }
        let len = usize::try_from(self.remaining).map_or(CHUNK, |r| r.min(CHUNK));
        let mut buf = BytesMut::zeroed(len);
        let n = self.read(&mut buf).await?;
        buf.truncate(n);
        Ok(Some(buf.freeze()))
    }

    /// Read what is left (for an error answer's document), at most `limit` bytes.
    pub async fn text(mut self, limit: usize) -> String {
        let mut out = Vec::new();
        while self.remaining() > 0 && out.len() < limit {
            let mut b = vec![0u8; (limit - out.len()).min(16 << 10)];
            match self.read(&mut b).await {
                Ok(n) if n > 0 => out.extend_from_slice(&b[..n]),
                _ => break,
            }
        }
        if self.remaining() == 0 {
            self.finish();
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn broken(&mut self, what: String) -> Error {
        self.conn = None;
        Error::new(ErrorKind::Interrupted, what).set_retryable(true)
    }

    /// The body is complete: the connection goes back to the pool.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive {
                if self.lowat != 1 {
                    set_rcvlowat(&conn, 1);
                }
                self.wire.put_back(conn);
            }
        }
    }
}

/// Set `SO_RCVLOWAT` (Linux: readiness and wakeups wait for that many bytes). Failure only
/// costs wakeups, so it is ignored.
#[cfg(target_os = "linux")]
fn set_rcvlowat(conn: &TcpStream, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket descriptor, and a pointer to a c_int of the size passed.
    let _ = unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

#[cfg(not(target_os = "linux"))]
fn set_rcvlowat(_: &TcpStream, _: usize) {}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers 403 to the first request's head and closes with the body
    /// unread: a body larger than every socket buffer cannot all be sent, yet the refusal
    /// is what the caller gets.
    #[tokio::test]
    async fn an_answer_before_the_body_was_taken_is_read_after_the_send_fails() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut b = [0u8; 1024];
                let n = conn.read(&mut b).await.unwrap();
                head.extend_from_slice(&b[..n]);
            }
            conn.write_all(
                b"HTTP/1.1 403 Forbidden\r\ncontent-length: 6\r\nconnection: close\r\n\r\ndenied",
            )
            .await
            .unwrap();
            // Closed with unread bytes: the client's sending is reset.
        });
        let wire = Wire::for_base(
            &format!("http://{addr}/b/"),
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .unwrap();
        let body = vec![1u8; 64 << 20];
        let req = http::Request::builder()
            .method(http::Method::PUT)
            .uri(format!("http://{addr}/b/k"))
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(())
            .unwrap();
        let resp = match wire.send(&req, &body).await {
            Ok(r) => r,
            Err(WireError::Failed(e)) => panic!("{e}"),
            Err(WireError::Unsupported(w)) => panic!("{w}"),
        };
        assert_eq!(resp.status, 403);
        assert_eq!(resp.body.text(1024).await, "denied");
    }
}
