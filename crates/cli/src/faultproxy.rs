//! A fault-injecting HTTP/1.1 proxy for tests, on 127.0.0.1 only (feature `fault-proxy`).
//!
//! It sits in front of a real server (SeaweedFS, Azurite), forwards requests as they are,
//! and to the requests a [`Decider`] picks it does what real networks and services do:
//! answers 503 SlowDown / 500 InternalError (with the S3 and Azure error codes) without
//! forwarding, resets the connection, stalls before forwarding, or forwards the request and
//! cuts the response body midway. It records every request (method, target, `Range`,
//! status, fault, body bytes sent to the client), so tests can assert what went over the
//! wire: that a cut body was resumed rather than read again, that a permanent error was not
//! retried.
//!
//! It understands just enough HTTP/1.1 for that: request bodies by `Content-Length` or
//! chunked, responses by `Content-Length`, chunked, or up to the close; keep-alive; `Expect:
//! 100-continue` answered by the proxy itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// Options for the S3 test server `cargo xtask test` starts (SeaweedFS's keys from
/// `S3DLIO_TEST_S3_ACCESS_KEY` / `S3DLIO_TEST_S3_SECRET_KEY`) at `endpoint` (the server or
/// a proxy in front of it), as the facades configure a store under the retry layer.
pub fn test_s3_options(endpoint: String) -> s3dlio_store_s3::S3Options {
    let var = |v: &str| {
        std::env::var(v).unwrap_or_else(|_| {
            panic!("{v} is not set: run `cargo xtask test`, or source the env file of `cargo xtask servers`")
        })
    };
    s3dlio_store_s3::S3Options {
        endpoint_url: Some(endpoint),
        region: Some("us-east-1".into()),
        credentials: Some(s3dlio_store_s3::StaticCredentials {
            access_key_id: var("S3DLIO_TEST_S3_ACCESS_KEY"),
            secret_access_key: var("S3DLIO_TEST_S3_SECRET_KEY"),
            session_token: None,
        }),
        outer_retries: true,
        ..s3dlio_store_s3::S3Options::default()
    }
}

/// Options for Azurite's development account at `endpoint` (Azurite or a proxy in front
/// of it), under the retry layer.
pub fn test_azure_options(endpoint: String) -> s3dlio_store_azure::AzureOptions {
    use s3dlio_store_azure::{AzureCredential, AzureOptions, DEV_ACCOUNT, DEV_ACCOUNT_KEY};
    AzureOptions {
        account: Some(DEV_ACCOUNT.into()),
        endpoint: Some(endpoint),
        credential: Some(AzureCredential::AccountKey(DEV_ACCOUNT_KEY.into())),
        outer_retries: true,
        ..AzureOptions::default()
    }
}

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProxyFault {
    /// Answer with this status (503: `SlowDown`/`ServerBusy`, 500: `InternalError`, 403:
    /// `AccessDenied`/`AuthorizationFailure`, others: `InternalError`) without forwarding.
    Status(u16),
    /// Close the client's connection with a TCP reset, without forwarding.
    Reset,
    /// Wait this long, then forward as usual.
    Stall(Duration),
    /// Forward, then send only this fraction of the response body (of a 2xx response with
    /// a body) and close the connection (gracefully, so the client receives exactly those
    /// bytes).
    CutBody(f64),
    /// Forward, let the server carry the request out and answer, then close the client's
    /// connection with a reset instead of passing the answer on: the client cannot know the
    /// request was done.
    LoseAnswer,
}

impl ProxyFault {
    /// A short stable name, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Status(503) => "503",
            Self::Status(500) => "500",
            Self::Status(403) => "403",
            Self::Status(_) => "status",
            Self::Reset => "reset",
            Self::Stall(_) => "stall",
            Self::CutBody(_) => "cut-body",
            Self::LoseAnswer => "lose-answer",
        }
    }
}

/// A request as the decider sees it.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// 1 for the first request the proxy saw.
    pub seq: u64,
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
}

/// One request as it went.
#[derive(Debug, Clone)]
pub struct Record {
    pub request: RequestInfo,
    pub fault: Option<ProxyFault>,
    /// The status the client got (None: reset before any answer).
    pub status: Option<u16>,
    /// Response body bytes sent to the client.
    pub body_bytes: u64,
}

/// Chooses the fault for each request (None: forward it untouched).
pub type Decider = Box<dyn Fn(&RequestInfo) -> Option<ProxyFault> + Send + Sync>;

struct Shared {
    upstream: SocketAddr,
    decider: Mutex<Decider>,
    records: Mutex<Vec<Record>>,
    seq: AtomicU64,
    /// Exchanges answered (or being answered) but not yet recorded: a client can have
    /// every byte of a response before the proxy has pushed its record.
    unrecorded: AtomicU64,
}

/// The proxy; dropping it stops accepting connections.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// `http://127.0.0.1:PORT[/path]` as the socket address; anything not on loopback is
/// refused (this proxy is for tests on this machine only).
pub fn loopback_addr(url: &str) -> std::io::Result<SocketAddr> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr: SocketAddr = hostport.parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{url}: not host:port ({e})"),
        )
    })?;
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{url}: the fault proxy only forwards to loopback addresses"),
        ));
    }
    Ok(addr)
}

impl FaultProxy {
    /// Listen on 127.0.0.1 (a free port) and forward to `upstream` (a loopback URL or
    /// address, e.g. `http://127.0.0.1:8333`); no faults until [`set_decider`].
    ///
    /// [`set_decider`]: Self::set_decider
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let upstream = loopback_addr(upstream)?;
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            decider: Mutex::new(Box::new(|_| None)),
            records: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            unrecorded: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let _ = conn.set_nodelay(true);
                tokio::spawn(serve(conn, Arc::clone(&s)));
            }
        });
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// `http://127.0.0.1:PORT`, to use as the endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxy's URL with the upstream URL's path (for Azurite's
    /// `http://127.0.0.1:PORT/devstoreaccount1`).
    pub fn url_for(&self, upstream_url: &str) -> String {
        let rest = upstream_url.strip_prefix("http://").unwrap_or(upstream_url);
        match rest.find('/') {
            Some(i) => format!("{}{}", self.url(), &rest[i..]),
            None => self.url(),
        }
    }

    pub fn set_decider(
        &self,
        d: impl Fn(&RequestInfo) -> Option<ProxyFault> + Send + Sync + 'static,
    ) {
        *self
            .shared
            .decider
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Box::new(d);
    }

    /// Wait (up to 10 s) until every exchange under way is recorded. Call it before
    /// [`records`] when the client has just finished reading: the proxy pushes a record
    /// after the last byte went out, which can be after the client saw it.
    ///
    /// [`records`]: Self::records
    pub async fn settled(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.shared.unrecorded.load(Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Every request so far, in the order they finished.
    pub fn records(&self) -> Vec<Record> {
        self.shared
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forget the records (request numbers go on).
    pub fn clear_records(&self) {
        self.shared
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// A seeded decider: each request fails with probability `rate`, with one of `faults`
/// chosen evenly (`CutBody` only applies to GETs; another GET-less choice is made for the
/// rest). Same seed, same sequence of choices.
pub fn random_faults(
    rate: f64,
    seed: u64,
    faults: Vec<ProxyFault>,
) -> impl Fn(&RequestInfo) -> Option<ProxyFault> + Send + Sync + 'static {
    let state = Mutex::new(seed | 1);
    move |req| {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = || {
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            *s
        };
        if (next() % 1_000_000) as f64 >= rate * 1_000_000.0 {
            return None;
        }
        let usable: Vec<ProxyFault> = faults
            .iter()
            .copied()
            .filter(|f| req.method == "GET" || !matches!(f, ProxyFault::CutBody(_)))
            .collect();
        if usable.is_empty() {
            return None;
        }
        Some(usable[(next() % usable.len() as u64) as usize])
    }
}

struct Head {
    /// The start line and headers, as received, without the final blank line.
    lines: Vec<String>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.lines[1..].iter().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    /// The head to send on, without the headers named in `drop`.
    fn render(&self, drop: &[&str]) -> Vec<u8> {
        let mut out = String::new();
        for (i, l) in self.lines.iter().enumerate() {
            let skip = i > 0
                && l.split_once(':')
                    .is_some_and(|(k, _)| drop.iter().any(|d| k.trim().eq_ignore_ascii_case(d)));
            if !skip {
                out.push_str(l);
                out.push_str("\r\n");
            }
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Read a head; None at a clean end of the connection.
async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line).await?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        total += n;
        if total > 256 * 1024 {
            return Err(std::io::Error::other("head too large"));
        }
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_owned();
        if text.is_empty() {
            if lines.is_empty() {
                continue; // stray CRLF between messages
            }
            return Ok(Some(Head { lines }));
        }
        lines.push(text);
    }
}

/// Read a body in its wire form (chunk framing kept) into `out`.
async fn read_body<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    head: &Head,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    if head.chunked() {
        loop {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line).await?;
            out.extend_from_slice(&line);
            let size_text = String::from_utf8_lossy(&line);
            let size_text = size_text.trim().split(';').next().unwrap_or("");
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailers, up to the blank line.
                loop {
                    let mut t = Vec::new();
                    if r.read_until(b'\n', &mut t).await? == 0 {
                        return Ok(());
                    }
                    out.extend_from_slice(&t);
                    if t == b"\r\n" || t == b"\n" {
                        return Ok(());
                    }
                }
            }
            let start = out.len();
            out.resize(start + size as usize + 2, 0);
            r.read_exact(&mut out[start..]).await?;
        }
    } else if let Some(n) = head.length() {
        let start = out.len();
        out.resize(start + n as usize, 0);
        r.read_exact(&mut out[start..]).await?;
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        403 => "Forbidden",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// An error answer in both S3's and Azure's terms.
fn error_response(status: u16, head_request: bool) -> Vec<u8> {
    let (s3, azure) = match status {
        503 => ("SlowDown", "ServerBusy"),
        403 => ("AccessDenied", "AuthorizationFailure"),
        _ => ("InternalError", "InternalError"),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{s3}</Code>\
         <Message>injected by the fault proxy</Message><RequestId>fault-proxy</RequestId></Error>"
    );
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         x-amz-request-id: fault-proxy\r\nx-ms-error-code: {azure}\r\n\
         x-ms-request-id: fault-proxy\r\n\r\n",
        reason(status),
        if head_request { 0 } else { body.len() }
    )
    .into_bytes();
    if !head_request {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn reset(conn: &OwnedWriteHalf) {
    // SO_LINGER 0: closing sends RST instead of FIN.
    let _ = conn.as_ref().set_zero_linger();
}

struct Upstream {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

/// Serve one client connection, request by request.
async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let (cr, mut cw) = client.into_split();
    let mut cr = BufReader::new(cr);
    let mut upstream: Option<Upstream> = None;
    loop {
        let head = match read_head(&mut cr).await {
            Ok(Some(h)) => h,
            _ => return,
        };
        let mut body = Vec::new();
        if head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            && cw
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        if read_body(&mut cr, &head, &mut body).await.is_err() {
            return;
        }
        let mut parts = head.lines[0].split(' ');
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        shared.unrecorded.fetch_add(1, Ordering::SeqCst);
        let info = RequestInfo {
            seq: shared.seq.fetch_add(1, Ordering::SeqCst) + 1,
            method,
            target,
            range: head.header("range").map(str::to_owned),
        };
        let fault = (shared.decider.lock().unwrap_or_else(|p| p.into_inner()))(&info);
        let mut record = Record {
            request: info,
            fault,
            status: None,
            body_bytes: 0,
        };
        let keep_going = exchange(&shared, &head, &body, &mut cw, &mut upstream, &mut record).await;
        shared
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
        shared.unrecorded.fetch_sub(1, Ordering::SeqCst);
        if !keep_going {
            return;
        }
    }
}

/// One request and its answer; false when the client connection is done.
async fn exchange(
    shared: &Shared,
    head: &Head,
    body: &[u8],
    cw: &mut OwnedWriteHalf,
    upstream: &mut Option<Upstream>,
    record: &mut Record,
) -> bool {
    let is_head = record.request.method == "HEAD";
    let mut cut = None;
    match record.fault {
        Some(ProxyFault::Status(code)) => {
            record.status = Some(code);
            return cw.write_all(&error_response(code, is_head)).await.is_ok();
        }
        Some(ProxyFault::Reset) => {
            reset(cw);
            return false;
        }
        Some(ProxyFault::Stall(d)) => tokio::time::sleep(d).await,
        Some(ProxyFault::CutBody(f)) => cut = Some(f),
        Some(ProxyFault::LoseAnswer) | None => {}
    }
    // Forward, on a kept-alive upstream connection when there is one.
    let mut req = head.render(&["expect"]);
    req.extend_from_slice(body);
    let mut sent = false;
    for _ in 0..2 {
        if upstream.is_none() {
            match TcpStream::connect(shared.upstream).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let (r, w) = s.into_split();
                    *upstream = Some(Upstream {
                        r: BufReader::new(r),
                        w,
                    });
                }
                Err(_) => break,
            }
        }
        let Some(up) = upstream.as_mut() else { break };
        if up.w.write_all(&req).await.is_ok() {
            sent = true;
            break;
        }
        *upstream = None; // stale keep-alive connection: once more on a new one
    }
    let Some(up) = upstream.as_mut().filter(|_| sent) else {
        reset(cw);
        return false;
    };
    let resp = match read_head(&mut up.r).await {
        Ok(Some(h)) => h,
        _ => {
            *upstream = None;
            reset(cw);
            return false;
        }
    };
    let status: u16 = resp.lines[0]
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    record.status = Some(status);
    if record.fault == Some(ProxyFault::LoseAnswer) {
        let mut discard = Vec::new();
        if !is_head {
            let _ = read_body(&mut up.r, &resp, &mut discard).await;
        }
        *upstream = None;
        reset(cw);
        return false;
    }
    if cw.write_all(&resp.render(&[])).await.is_err() {
        *upstream = None;
        return false;
    }
    let no_body = is_head || status == 204 || status == 304 || (100..200).contains(&status);
    if no_body {
        return true;
    }
    let close = resp
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let limit = cut
        .filter(|_| (200..300).contains(&status))
        .map(|f| (resp.length().unwrap_or(0) as f64 * f.clamp(0.0, 1.0)) as u64);
    // The body, streamed through.
    let mut left = if resp.chunked() { None } else { resp.length() };
    if resp.chunked() {
        let mut framed = Vec::new();
        if read_body(&mut up.r, &resp, &mut framed).await.is_err() {
            *upstream = None;
            reset(cw);
            return false;
        }
        if let Some(l) = limit.or(cut.map(|_| framed.len() as u64 / 2)) {
            framed.truncate(l as usize);
            record.body_bytes = framed.len() as u64;
            let _ = cw.write_all(&framed).await;
            *upstream = None;
            let _ = cw.shutdown().await;
            return false;
        }
        record.body_bytes = framed.len() as u64;
        return cw.write_all(&framed).await.is_ok() && !close;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(l) = limit {
            if record.body_bytes >= l {
                // Cut: the client gets every byte sent so far, then the connection ends
                // (a FIN, so none of them is lost) before the body does.
                *upstream = None;
                let _ = cw.shutdown().await;
                return false;
            }
        }
        let want = match (left, limit) {
            (Some(0), _) => break,
            (Some(n), Some(l)) => n.min(l - record.body_bytes).min(buf.len() as u64),
            (Some(n), None) => n.min(buf.len() as u64),
            (None, _) => buf.len() as u64,
        } as usize;
        let n = match up.r.read(&mut buf[..want]).await {
            Ok(0) if left.is_none() => break, // body up to the close
            Ok(0) | Err(_) => {
                *upstream = None;
                reset(cw);
                return false;
            }
            Ok(n) => n,
        };
        if cw.write_all(&buf[..n]).await.is_err() {
            *upstream = None;
            return false;
        }
        record.body_bytes += n as u64;
        left = left.map(|l| l - n as u64);
    }
    if close || left.is_none() {
        *upstream = None;
        return false;
    }
    true
}
