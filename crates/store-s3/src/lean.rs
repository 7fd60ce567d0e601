//! GETs, HEADs, single-key DELETEs, single-request PUTs and listing pages without the SDK's
//! per-request machinery. They are the hot path of every workload, and on small objects the
//! SDK's orchestrator (interceptors, endpoint resolution, type-erased config bags, a retry
//! strategy per call) costs the client more CPU than the request itself. Here a request is
//! signed with the SDK's own SigV4 signer, using credentials from the SDK's provider chain
//! (cached until shortly before they expire), against the endpoint the SDK's resolver chose
//! for the bucket, and sent on a hyper connection pool of its own (or on the wire path, see
//! `wire`): same requests on the wire, a fraction of the CPU. A PUT's CRC32C travels in a
//! header (`x-amz-checksum-crc32c`) computed before sending, not in an aws-chunked trailer,
//! so the server checks it without decoding a chunked body.
//!
//! Used only where it is known to be equivalent: a store built from options (not from a
//! caller's own SDK client) whose bucket resolves to a plain SigV4 endpoint (not S3 Express,
//! not SigV4a). Everything else, and every other operation, goes through the SDK.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_s3::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::{DateTime, Document};
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use s3dlio_store_core::ranged::{BodyReader, PartBody};
use s3dlio_store_core::{
    ByteStream, ConnectionFailure, Error, ErrorKind, ObjectMeta, Operation, Result, RetryPolicy,
};
use tokio::sync::{Mutex, RwLock};

use crate::error::{connection_failure, xml_field, Failure};
use crate::wire::{Wire, WireBody, WireError};

/// Credentials are refreshed this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The most of an error response's body we read to learn its code.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// PUT bodies up to this size go on the wire path (see `wire`), where a whole request fits
/// in the socket's buffers at once; larger ones (multipart parts, mostly) through hyper.
const WIRE_PUT_MAX: usize = 1 << 20;

/// What the lean path needs from the client's configuration, taken when it is built.
pub(crate) struct LeanConfig {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub force_path_style: bool,
    pub use_fips: bool,
    pub use_dual_stack: bool,
    /// `None`: requests go unsigned (anonymous access to public buckets).
    pub credentials: Option<SharedCredentialsProvider>,
    pub ca_bundle_pem: Option<Vec<u8>>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// GETs, HEADs, DELETEs and small PUTs to plain-http endpoints on the wire path (see
    /// `wire`).
    pub wire_requests: bool,
    /// `x-amz-request-payer: requester` on every request.
    pub requester_pays: bool,
}

/// The connection pool and credentials shared by every bucket of one client.
pub(crate) struct LeanClient {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    cfg: LeanConfig,
    creds: RwLock<Option<Credentials>>,
    refreshing: Mutex<()>,
}

impl std::fmt::Debug for LeanClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanClient")
            .field("region", &self.cfg.region)
            .field("endpoint_url", &self.cfg.endpoint_url)
            .finish_non_exhaustive()
    }
}

impl LeanClient {
    pub fn new(cfg: LeanConfig) -> Result<Arc<Self>> {
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates are skipped, as the SDK's client does.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(pem) = &cfg.ca_bundle_pem {
            use rustls::pki_types::{pem::PemObject, CertificateDer};
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| Error::invalid_input(format!("CA bundle: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::invalid_input(format!("CA bundle: {e}")))?;
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::other(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(cfg.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(Arc::new(Self {
            http,
            cfg,
            creds: RwLock::new(None),
            refreshing: Mutex::new(()),
        }))
    }

    /// The lean path for `bucket`, if its endpoint is one the lean path signs for.
    pub async fn bucket(self: &Arc<Self>, bucket: &str) -> Option<LeanBucket> {
        let params = Params::builder()
            .bucket(bucket)
            .region(self.cfg.region.clone())
            .use_fips(self.cfg.use_fips)
            .use_dual_stack(self.cfg.use_dual_stack)
            .force_path_style(self.cfg.force_path_style)
            .set_endpoint(self.cfg.endpoint_url.clone())
            .build()
            .ok()?;
        let ep = DefaultResolver::new()
            .resolve_endpoint(&params)
            .await
            .ok()?;
        // The auth scheme the endpoint asks for: only plain SigV4 is signed here.
        let (name, region) = match ep.properties().get("authSchemes") {
            None => ("s3".to_owned(), self.cfg.region.clone()),
            Some(Document::Array(schemes)) => {
                let Some(Document::Object(s)) = schemes.first() else {
                    return None;
                };
                let field = |k: &str| match s.get(k) {
                    Some(Document::String(v)) => Some(v.clone()),
                    _ => None,
                };
                if field("name").as_deref() != Some("sigv4") {
                    return None;
                }
                if s.get("disableDoubleEncoding") == Some(&Document::Bool(false)) {
                    return None;
                }
                (
                    field("signingName").unwrap_or_else(|| "s3".into()),
                    field("signingRegion").unwrap_or_else(|| self.cfg.region.clone()),
                )
            }
            Some(_) => return None,
        };
        let mut base = ep.url().to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        let wire = if self.cfg.wire_requests {
            Wire::for_base(&base, self.cfg.connect_timeout, self.cfg.read_timeout)
        } else {
            None
        };
        Some(LeanBucket {
            client: Arc::clone(self),
            wire,
            base,
            signing_name: name,
            signing_region: region,
        })
    }

    async fn credentials(&self) -> Result<Credentials> {
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|t| t > SystemTime::now() + REFRESH_MARGIN)
        };
        if let Some(c) = self.creds.read().await.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        // One refresh at a time; the others wait for it and take its result.
        let _guard = self.refreshing.lock().await;
        if let Some(c) = self.creds.read().await.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let Some(provider) = &self.cfg.credentials else {
            return Err(Error::other("no credentials provider"));
        };
        let c = provider.provide_credentials().await.map_err(|e| {
            Error::new(
                ErrorKind::Unauthenticated,
                format!(
                    "no AWS credentials: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                ),
            )
        })?;
        *self.creds.write().await = Some(c.clone());
        Ok(c)
    }
}

/// The lean path to one bucket.
#[derive(Debug)]
pub(crate) struct LeanBucket {
    client: Arc<LeanClient>,
    /// GETs read straight off the socket, for a plain-http endpoint.
    wire: Option<Arc<Wire>>,
    /// URL of the bucket's root, ending in `/`: a key is appended percent-encoded.
    base: String,
    signing_name: String,
    signing_region: String,
}

/// How a request's payload is covered by its signature.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Payload {
    /// `UNSIGNED-PAYLOAD` (GETs; PUTs that carry a CRC32C header or nothing).
    Unsigned,
    /// The SHA-256 of the body in the signature.
    Signed,
}

/// A successful request's answer.
pub(crate) struct LeanResponse {
    pub headers: HeaderMap,
    pub body: LeanBody,
}

/// The body of an answer, from hyper or from the wire path.
pub(crate) enum LeanBody {
    Hyper(Incoming),
    Wire(WireBody),
}

impl LeanResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `None` for a body of unannounced length (chunked).
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    pub fn content_range(&self) -> Option<&str> {
        self.header("content-range")
    }

    pub fn meta(&self, key: &str, size: u64) -> ObjectMeta {
        let metadata = self
            .headers
            .iter()
            .filter_map(|(k, v)| {
                let name = k.as_str().strip_prefix("x-amz-meta-")?;
                Some((name.to_owned(), v.to_str().ok()?.to_owned()))
            })
            .collect();
        ObjectMeta {
            key: key.to_owned(),
            size,
            last_modified: self
                .header("last-modified")
                .and_then(|v| DateTime::from_str(v, Format::HttpDate).ok())
                .and_then(|d| SystemTime::try_from(d).ok()),
            etag: self.header("etag").map(str::to_owned),
            content_type: self.header("content-type").map(str::to_owned),
            metadata,
            storage_class: None,
        }
    }

    /// The body: a wire body as a reader into the caller's memory, hyper's as our stream
    /// of chunks. Either fails (retryable) when no bytes come within `read_timeout`, so a
    /// stalled server cannot hang a reader.
    pub fn into_body(self, uri: String, read_timeout: Duration) -> PartBody {
        match self.body {
            LeanBody::Hyper(body) => PartBody::Stream(hyper_stream(body, uri, read_timeout)),
            LeanBody::Wire(body) => PartBody::Reader(Box::new(WireReader { body, uri })),
        }
    }
}

/// A wire body with its errors in context.
struct WireReader {
    body: WireBody,
    uri: String,
}

#[async_trait::async_trait]
impl BodyReader for WireReader {
    async fn read(&mut self, dst: &mut [u8]) -> Result<usize> {
        self.body
            .read(dst)
            .await
            .map_err(|e| e.context(Operation::Get, self.uri.clone()))
    }

    /// The bytes that came with the head as they are (all of a small object's, usually),
    /// then reads of up to 1 MiB.
    fn into_stream(self: Box<Self>, _len: u64) -> ByteStream {
        stream::try_unfold(*self, |mut r| async move {
            match r.body.chunk().await {
                Ok(Some(c)) => Ok(Some((c, r))),
                Ok(None) => Ok(None),
                Err(e) => Err(e.context(Operation::Get, r.uri.clone())),
            }
        })
        .boxed()
    }
}

fn hyper_stream(body: Incoming, uri: String, read_timeout: Duration) -> ByteStream {
    stream::try_unfold(body, move |mut body| {
        let uri = uri.clone();
        async move {
            loop {
                let frame = match tokio::time::timeout(read_timeout, body.frame()).await {
                    Err(_) => {
                        return Err(Error::new(
                            ErrorKind::Timeout,
                            format!("no body bytes for {read_timeout:?}"),
                        )
                        .set_retryable(true)
                        .context(Operation::Get, uri))
                    }
                    Ok(None) => return Ok(None),
                    Ok(Some(Err(e))) => {
                        return Err(Error::new(
                            ErrorKind::Interrupted,
                            format!("reading the body: {e}"),
                        )
                        .set_retryable(true)
                        .context(Operation::Get, uri))
                    }
                    Ok(Some(Ok(f))) => f,
                };
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() {
                        return Ok(Some((data, body)));
                    }
                }
            }
        }
    })
    .boxed()
}

impl LeanBucket {
    pub fn read_timeout(&self) -> Duration {
        self.client.cfg.read_timeout
    }

    /// GET `key`, with optional `Range` and `If-Match`, making up to `attempts` attempts
    /// for transient failures. On failure, also the HTTP status if there was one.
    pub async fn get(
        &self,
        key: &str,
        range: Option<&str>,
        if_match: Option<&str>,
        attempts: u32,
        uri: &str,
    ) -> std::result::Result<LeanResponse, (Error, Option<u16>)> {
        let mut headers = Vec::new();
        if let Some(r) = range {
            headers.push((http::header::RANGE, r.to_owned()));
        }
        if let Some(m) = if_match {
            headers.push((http::header::IF_MATCH, m.to_owned()));
        }
        self.send(
            Operation::Get,
            http::Method::GET,
            key,
            &headers,
            Bytes::new(),
            Payload::Unsigned,
            attempts,
            uri,
        )
        .await
    }

    /// Send one request, making up to `attempts` attempts for transient failures (the
    /// caller decides when a repeat is safe). On failure, also the HTTP status if any.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        op: Operation,
        method: http::Method,
        key: &str,
        headers: &[(HeaderName, String)],
        body: Bytes,
        payload: Payload,
        attempts: u32,
        uri: &str,
    ) -> std::result::Result<LeanResponse, (Error, Option<u16>)> {
        let backoff = RetryPolicy::default();
        let mut attempt = 1;
        loop {
            let url = format!("{}{}", self.base, encode_key(key));
            match self
                .send_once(method.clone(), url, true, headers, body.clone(), &payload)
                .await
            {
                Ok(r) => return Ok(r),
                Err((e, _)) if e.is_retryable() && attempt < attempts => {
                    tracing::debug!(attempt, error = %e, "retrying {method} {uri}");
                    tokio::time::sleep(backoff.backoff(attempt)).await;
                    attempt += 1;
                }
                Err((e, status)) => return Err((e.context(op, uri), status)),
            }
        }
    }

    /// One request to `url`; a GET, HEAD, DELETE or small PUT of an object (`wire_ok`) on
    /// the wire path if there is one.
    async fn send_once(
        &self,
        method: http::Method,
        url: String,
        wire_ok: bool,
        headers: &[(HeaderName, String)],
        body: Bytes,
        payload: &Payload,
    ) -> std::result::Result<LeanResponse, (Error, Option<u16>)> {
        // Built and signed once, for whichever path sends it.
        let mut req = http::Request::builder()
            .method(method)
            .uri(&url)
            .body(())
            .map_err(|e| (Error::invalid_input(format!("bad request URL: {e}")), None))?;
        let h = req.headers_mut();
        for (name, value) in headers {
            h.insert(name.clone(), header_value(value).map_err(|e| (e, None))?);
        }
        if self.client.cfg.requester_pays {
            h.insert(
                HeaderName::from_static("x-amz-request-payer"),
                HeaderValue::from_static("requester"),
            );
        }
        let signed = matches!(payload, Payload::Signed).then_some(&body[..]);
        self.sign(&mut req, signed).await.map_err(|e| (e, None))?;

        let wire_fits = match *req.method() {
            http::Method::GET | http::Method::HEAD | http::Method::DELETE => body.is_empty(),
            http::Method::PUT => body.len() <= WIRE_PUT_MAX,
            _ => false,
        };
        if wire_ok && wire_fits {
            if let Some(wire) = self.wire.as_ref().filter(|w| !w.is_off()) {
                match self.send_wire(wire, &req, &body).await {
                    Err(WireError::Unsupported(what)) => {
                        tracing::debug!("{what}: sent again through hyper");
                    }
                    Err(WireError::Failed(e)) => return Err((e, None)),
                    Ok(r) => return r,
                }
            }
        }
        let req = req.map(|()| Full::new(body));

        let cfg = &self.client.cfg;
        let resp = match tokio::time::timeout(cfg.read_timeout, self.client.http.request(req)).await
        {
            Err(_) => {
                return Err((
                    Error::new(
                        ErrorKind::Timeout,
                        format!("no answer within {:?}", cfg.read_timeout),
                    )
                    .set_retryable(true),
                    None,
                ))
            }
            Ok(Err(e)) => return Err((send_error(&e), None)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        if (200..300).contains(&status) {
            return Ok(LeanResponse {
                headers: parts.headers,
                body: LeanBody::Hyper(body),
            });
        }
        let limited = http_body_util::Limited::new(body, ERROR_BODY_LIMIT);
        let text = match tokio::time::timeout(cfg.read_timeout, limited.collect()).await {
            Ok(Ok(b)) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            _ => String::new(),
        };
        Err((service_error(status, &parts.headers, &text), Some(status)))
    }

    /// One page of a ListObjectsV2 listing, making up to `attempts` attempts for transient
    /// failures (of the request or of reading its answer). Sent through hyper: a listing is
    /// small, and an endpoint answering it chunked must not turn the wire path off.
    pub async fn list_page(
        &self,
        query: &crate::list::ListQuery<'_>,
        attempts: u32,
        uri: &str,
    ) -> Result<crate::list::Page> {
        let url = format!("{}?{}", self.bucket_root(), query.to_query());
        let backoff = RetryPolicy::default();
        let mut attempt = 1;
        loop {
            let answer = match self
                .send_once(
                    http::Method::GET,
                    url.clone(),
                    false,
                    &[],
                    Bytes::new(),
                    &Payload::Unsigned,
                )
                .await
            {
                Ok(r) => self.read_all(r).await,
                Err((e, _)) => Err(e),
            };
            match answer.and_then(|xml| crate::list::parse(&xml)) {
                Ok(page) => return Ok(page),
                Err(e) if e.is_retryable() && attempt < attempts => {
                    tracing::debug!(attempt, error = %e, "retrying the listing of {uri}");
                    tokio::time::sleep(backoff.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.context(Operation::List, uri)),
            }
        }
    }

    /// The bucket's URL without the key separator: `http://host/bucket` (path style) or
    /// `https://bucket.host/` (virtual host), as the SDK addresses bucket operations.
    fn bucket_root(&self) -> &str {
        let after_scheme = self.base.find("://").map_or(0, |i| i + 3);
        let path_at = self.base[after_scheme..]
            .find('/')
            .map_or(self.base.len(), |i| after_scheme + i);
        if self.base.len() - path_at > 1 {
            self.base.trim_end_matches('/')
        } else {
            &self.base
        }
    }

    /// A whole answer's body as text, within `read_timeout` per chunk.
    async fn read_all(&self, r: LeanResponse) -> Result<String> {
        let timeout = self.client.cfg.read_timeout;
        let chunks: Vec<Bytes> = r
            .into_body(String::new(), timeout)
            .into_stream(u64::MAX)
            .try_collect()
            .await?;
        String::from_utf8(chunks.concat())
            .map_err(|_| Error::other("the listing is not UTF-8 text"))
    }

    /// A request on the wire path; the outer result is the transport's, the inner the
    /// answer's.
    async fn send_wire(
        &self,
        wire: &Arc<Wire>,
        req: &http::Request<()>,
        body: &[u8],
    ) -> std::result::Result<std::result::Result<LeanResponse, (Error, Option<u16>)>, WireError>
    {
        let resp = wire.send(req, body).await?;
        if (200..300).contains(&resp.status) {
            return Ok(Ok(LeanResponse {
                headers: resp.headers,
                body: LeanBody::Wire(resp.body),
            }));
        }
        let text = resp.body.text(ERROR_BODY_LIMIT).await;
        Ok(Err((
            service_error(resp.status, &resp.headers, &text),
            Some(resp.status),
        )))
    }

    async fn sign<B>(&self, req: &mut http::Request<B>, body: Option<&[u8]>) -> Result<()> {
        if self.client.cfg.credentials.is_none() {
            // Anonymous (`no_sign_request`): sent as they are.
            return Ok(());
        }
        let creds = self.client.credentials().await?;
        let identity = creds.into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.signing_region)
            .name(&self.signing_name)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| Error::other(format!("signing: {e}")))?
            .into();
        let uri = req.uri().to_string();
        let signable = SignableRequest::new(
            req.method().as_str(),
            uri,
            req.headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
            match body {
                Some(b) => SignableBody::Bytes(b),
                None => SignableBody::UnsignedPayload,
            },
        )
        .map_err(|e| Error::other(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Error::other(format!("signing: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(req);
        Ok(())
    }
}

/// A CRC32C as S3's `x-amz-checksum-crc32c` header wants it: base64 of its 4 big-endian bytes.
pub(crate) fn crc32c_header(data: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = crc32c::crc32c(data).to_be_bytes();
    let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
    let mut out = String::with_capacity(8);
    for shift in [18, 12, 6, 0] {
        out.push(B64[((n >> shift) & 63) as usize] as char);
    }
    out.push(B64[usize::from(b[3] >> 2)] as char);
    out.push(B64[usize::from((b[3] & 3) << 4)] as char);
    out.push_str("==");
    out
}

fn header_value(v: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(v).map_err(|_| Error::invalid_input(format!("bad header value '{v}'")))
}

/// A key as S3 wants it in the path: every byte but unreserved characters and `/`
/// percent-encoded (what the SDK sends, and what is signed).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out
}

/// A request that got no answer: refused, reset, timed out, or a refused certificate.
fn send_error(e: &hyper_util::client::legacy::Error) -> Error {
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    if chain.contains("invalid peer certificate") || chain.contains("InvalidCertificate") {
        return Error::new(
            ErrorKind::InvalidInput,
            format!(
                "the endpoint's TLS certificate is not trusted (for a private CA, set the CA \
                 bundle: option ca_bundle, AWS_CA_BUNDLE or --ca-bundle): {chain}"
            ),
        );
    }
    let kind = if chain.contains("timed out") || chain.contains("timeout") {
        ErrorKind::Timeout
    } else {
        ErrorKind::Interrupted
    };
    let mut out =
        Error::new(kind, format!("could not send the request: {chain}")).set_retryable(true);
    // How far it got, for a balancer choosing whether another endpoint may take it.
    let how = if e.is_connect() {
        Some(ConnectionFailure::NotConnected)
    } else {
        connection_failure(e, &chain, true)
    };
    if let Some(how) = how {
        out = out.with_connection_failure(how);
    }
    out
}

/// An error answer (its document in `text`) as our error: kind from the status and S3
/// code, the request id kept.
fn service_error(status: u16, headers: &HeaderMap, text: &str) -> Error {
    let request_id = xml_field(text, "RequestId").or_else(|| {
        headers
            .get("x-amz-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let failure = Failure {
        status: Some(status),
        code: xml_field(text, "Code"),
        message: xml_field(text, "Message"),
        request_id,
        bucket_region: headers
            .get("x-amz-bucket-region")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| xml_field(text, "Region")),
    };
    let (kind, retryable, message) = failure.classify();
    let mut e = Error::new(kind, message).set_retryable(retryable);
    if let Some(id) = failure.request_id {
        e = e.with_request_id(id);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_like_the_sdk() {
        assert_eq!(encode_key("a/b c+d%e"), "a/b%20c%2Bd%25e");
        assert_eq!(encode_key("é"), "%C3%A9");
        assert_eq!(encode_key("A-z_0.9~/"), "A-z_0.9~/");
    }

    #[test]
    fn crc32c_headers_are_base64_of_the_big_endian_crc() {
        // CRC32C("123456789") = 0xE3069283: bytes E3 06 92 83.
        assert_eq!(crc32c_header(b"123456789"), "4waSgw==");
        // Of nothing: 0x00000000.
        assert_eq!(crc32c_header(b""), "AAAAAA==");
    }

    #[test]
    fn error_documents_are_read() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>\
                   <Message>The key &amp; more</Message><RequestId>R1</RequestId></Error>";
        assert_eq!(xml_field(xml, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(xml_field(xml, "Message").as_deref(), Some("The key & more"));
        assert_eq!(xml_field(xml, "RequestId").as_deref(), Some("R1"));
        assert_eq!(xml_field(xml, "Resource"), None);
    }
}
