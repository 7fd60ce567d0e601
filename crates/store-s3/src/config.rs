//! How an S3 client is configured: explicit options first, then the standard AWS
//! environment and files, then defaults chosen by measurement.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::Client;
use s3dlio_store_core::{BalanceOptions, Error, ErrorKind, Policy, Result};

use crate::lean::{LeanClient, LeanConfig};

const MIB: usize = 1024 * 1024;

/// Static credentials given explicitly (otherwise the standard AWS chain is used:
/// environment, shared config and credentials files with profiles, SSO, web identity,
/// container and instance metadata).
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    // Secrets never reach logs or error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Options of the `s3://` backend. Every field is honoured; `None` means "from the
/// environment, else the default".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// Endpoint of an S3-compatible store, e.g. `http://127.0.0.1:9000`. Else
    /// `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`, or AWS.
    pub endpoint_url: Option<String>,
    /// Several endpoints of one cluster (S3 gateways in front of the same buckets): with
    /// more than one, each bucket's requests are spread over them by a
    /// `s3dlio_store_core::BalancedStore` with `balance` (one client per endpoint, the same
    /// region, credentials and tuning). Else `S3DLIO_ENDPOINTS` (comma-separated). Not
    /// together with `endpoint_url`; one endpoint here is the same as `endpoint_url`.
    pub endpoints: Vec<String>,
    /// How requests are spread over `endpoints`: the policy (else `S3DLIO_LOAD_BALANCE`,
    /// `round-robin` or `least-outstanding`) and how long an endpoint whose connections
    /// fail stays out of rotation (else `S3DLIO_ENDPOINT_COOLDOWN`; default 5 s).
    pub balance: BalanceOptions,
    /// Region. Else `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's region; with a custom
    /// endpoint and none of those, `us-east-1` (most S3-compatible stores ignore it).
    pub region: Option<String>,
    /// Named profile of `~/.aws/config` and `~/.aws/credentials`. Else `AWS_PROFILE`.
    pub profile: Option<String>,
    /// PEM file of extra trusted CA certificates (for self-signed endpoints). Else
    /// `AWS_CA_BUNDLE` (or the original s3dlio's `AWS_CA_BUNDLE_PATH`).
    pub ca_bundle: Option<PathBuf>,
    /// Path-style addressing (`endpoint/bucket/key`). Else `S3DLIO_FORCE_PATH_STYLE`;
    /// default: on for a custom endpoint (what S3-compatible stores expect), off for AWS.
    pub force_path_style: Option<bool>,
    /// Explicit credentials instead of the standard chain.
    pub credentials: Option<StaticCredentials>,
    /// Send requests unsigned, with no credentials at all: anonymous access to public
    /// buckets (open datasets), like `aws s3 --no-sign-request`. Else
    /// `S3DLIO_NO_SIGN_REQUEST`. Not together with `credentials` or `profile`.
    pub no_sign_request: bool,
    /// Accept the charges of a Requester Pays bucket (`x-amz-request-payer: requester` on
    /// every request), as some open datasets require. Else `S3DLIO_REQUEST_PAYER`
    /// (`requester`).
    pub requester_pays: bool,
    /// Reads are split into ranged GETs of this size (default 8 MiB).
    pub get_part_size: usize,
    /// Ranged GETs in flight for one object (default 8).
    pub get_concurrency: usize,
    /// Writes larger than this go multipart (default 16 MiB).
    pub multipart_threshold: usize,
    /// Size of multipart parts (default 8 MiB; at least 5 MiB, the S3 minimum). It doubles
    /// every 1,000 parts so an upload of any size S3 accepts fits in 10,000 parts.
    pub part_size: usize,
    /// Parts uploaded concurrently by one writer (default 8).
    pub upload_concurrency: usize,
    /// Attempts per request for transient failures (503 SlowDown, resets), with
    /// exponential backoff and jitter (default 3).
    pub max_attempts: u32,
    /// Whether a retry layer above this store (`s3dlio_store_core::RetryStore`, which the
    /// CLI and the Python module put over every store) retries whole operations. Then the
    /// SDK makes one attempt per operation, retries only the sub-requests the layer cannot
    /// see (multipart parts, the ranged GETs after a large read's first), up to
    /// `max_attempts`, and returns their last error as final, so attempts never multiply.
    /// Default false: the SDK retries every request up to `max_attempts`.
    pub outer_retries: bool,
    /// Timeout to connect (default 10 s).
    pub connect_timeout: Duration,
    /// Timeout of one request attempt, body included (default none: large parts on slow
    /// links must not be cut off; stalled connections are caught by `read_timeout`).
    pub attempt_timeout: Option<Duration>,
    /// Longest wait for any bytes of a response (default 60 s).
    pub read_timeout: Duration,
    /// How uploads protect their bytes (default: a CRC32C the server verifies).
    pub upload_integrity: UploadIntegrity,
    /// Server-side encryption asked for on every object this store writes (PUTs,
    /// multipart uploads, copies): SSE-S3 or SSE-KMS. Default none: the bucket's default
    /// encryption applies. Else `S3DLIO_SSE` (`AES256` or `aws:kms`), with
    /// `S3DLIO_SSE_KMS_KEY_ID` and `S3DLIO_SSE_BUCKET_KEY`.
    pub server_side_encryption: Option<ServerSideEncryption>,
    /// Storage class of every object this store writes (`STANDARD_IA`,
    /// `INTELLIGENT_TIERING`, `GLACIER_IR`, ...). Default none: the bucket's default
    /// (`STANDARD` on AWS). Else `S3DLIO_STORAGE_CLASS`.
    pub storage_class: Option<String>,
    /// Idle memory kept for reuse by large reads (see `s3dlio_store_core::pool`): buffers
    /// of reads of 512 KiB and more return here when the caller drops them, so the next
    /// read lands in memory that is already faulted in instead of paying a page fault per
    /// 4 KiB. Default 256 MiB; 0 turns pooling off. Else `S3DLIO_BUFFER_POOL_BYTES`.
    pub buffer_pool_bytes: usize,
    /// Send GETs and single-request PUTs on a lean path (signed with the SDK's SigV4
    /// signer, sent on a hyper pool of their own) instead of through the SDK's per-request
    /// machinery, which costs more client CPU than a small request itself. Same requests on
    /// the wire, except that a PUT's CRC32C goes in a header rather than an aws-chunked
    /// trailer; used only for plain SigV4 endpoints. Default on; else
    /// `S3DLIO_LEAN_REQUESTS` (`0` turns it off).
    pub lean_requests: bool,
    /// On the lean path, send GETs, HEADs, DELETEs and PUTs of up to 1 MiB to a plain-http
    /// endpoint without hyper: bodies are read off the socket in large reads, straight into the
    /// object's buffer, waking once per read rather than once per network segment (less
    /// client CPU per GiB), and a request is written and answered in the caller's task
    /// (less CPU per small request). Endpoints behind TLS are unaffected. Default on; else
    /// `S3DLIO_WIRE_REQUESTS` (`0` turns it off).
    pub wire_requests: bool,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            endpoints: Vec::new(),
            balance: BalanceOptions::default(),
            region: None,
            profile: None,
            ca_bundle: None,
            force_path_style: None,
            credentials: None,
            no_sign_request: false,
            requester_pays: false,
            get_part_size: 8 * MIB,
            get_concurrency: 8,
            multipart_threshold: 16 * MIB,
            part_size: 8 * MIB,
            upload_concurrency: 8,
            max_attempts: 3,
            outer_retries: false,
            connect_timeout: Duration::from_secs(10),
            attempt_timeout: None,
            read_timeout: Duration::from_secs(60),
            upload_integrity: UploadIntegrity::Crc32c,
            server_side_encryption: None,
            storage_class: None,
            buffer_pool_bytes: 256 * MIB,
            lean_requests: true,
            wire_requests: true,
        }
    }
}

/// How an upload proves to the server that its bytes arrived intact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UploadIntegrity {
    /// A CRC32C of each request's payload, which the server checks, and `UNSIGNED-PAYLOAD`
    /// in the signature: every byte verified for a fraction of the CPU of hashing the payload
    /// with SHA-256 (CRC32C runs at several GB/s per core with hardware support).
    #[default]
    Crc32c,
    /// SigV4's signed payload: a SHA-256 of every request body, computed before sending.
    /// What most SDKs do by default; costs a SHA-256 pass over every byte.
    SignedPayload,
    /// Neither: only TCP's own checksums guard the bytes. For trusted links and benchmarks.
    None,
}

impl UploadIntegrity {
    /// `crc32c`, `signed` or `none` (any case).
    pub fn parse(v: &str) -> Result<Self> {
        match v.trim().to_ascii_lowercase().as_str() {
            "crc32c" => Ok(Self::Crc32c),
            "signed" | "signed-payload" => Ok(Self::SignedPayload),
            "none" => Ok(Self::None),
            _ => Err(Error::invalid_input(format!(
                "'{v}' is not an upload integrity (crc32c, signed or none)"
            ))),
        }
    }
}

/// Adds `x-amz-request-payer: requester` to every SDK request, before it is signed (S3
/// refuses unsigned `x-amz-*` headers).
#[derive(Debug)]
struct RequesterPays;

impl aws_sdk_s3::config::Intercept for RequesterPays {
    fn name(&self) -> &'static str {
        "RequesterPays"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> std::result::Result<(), aws_sdk_s3::error::BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-amz-request-payer", "requester");
        Ok(())
    }
}

/// Server-side encryption of the objects a store writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSideEncryption {
    /// SSE-S3 (`AES256`): keys managed by the service.
    S3,
    /// SSE-KMS (`aws:kms`): with this KMS key (id, ARN or alias; `None`: the account's
    /// AWS-managed `aws/s3` key), and whether to use an S3 Bucket Key (fewer KMS calls).
    Kms {
        key_id: Option<String>,
        bucket_key: Option<bool>,
    },
}

impl ServerSideEncryption {
    /// The header value: `AES256` or `aws:kms`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::S3 => "AES256",
            Self::Kms { .. } => "aws:kms",
        }
    }

    /// `AES256` (or `sse-s3`) or `aws:kms` (or `sse-kms`), any case; for SSE-KMS, the key and
    /// the bucket-key switch.
    pub fn parse(v: &str, key_id: Option<String>, bucket_key: Option<bool>) -> Result<Self> {
        let kms = match v.trim().to_ascii_lowercase().as_str() {
            "aes256" | "sse-s3" => false,
            "aws:kms" | "sse-kms" => true,
            _ => {
                return Err(Error::invalid_input(format!(
                    "'{v}' is not a server-side encryption (AES256 or aws:kms)"
                )))
            }
        };
        if kms {
            Ok(Self::Kms { key_id, bucket_key })
        } else if key_id.is_some() || bucket_key.is_some() {
            Err(Error::invalid_input(
                "a KMS key id or bucket key goes with aws:kms encryption, not AES256",
            ))
        } else {
            Ok(Self::S3)
        }
    }

    pub(crate) fn kms_key_id(&self) -> Option<&str> {
        match self {
            Self::Kms { key_id, .. } => key_id.as_deref(),
            Self::S3 => None,
        }
    }

    pub(crate) fn bucket_key(&self) -> Option<bool> {
        match self {
            Self::Kms { bucket_key, .. } => *bucket_key,
            Self::S3 => None,
        }
    }
}

/// `http://a:9000, http://b:9000,` as a list of endpoints (empty items dropped).
pub(crate) fn parse_endpoints(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// S3's smallest part (except the last).
pub const MIN_PART_SIZE: usize = 5 * MIB;
/// S3's largest part.
pub const MAX_PART_SIZE: usize = 5 * 1024 * MIB;
/// S3's most parts per upload.
pub const MAX_PARTS: u32 = 10_000;

fn parse_bool(v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::invalid_input(format!("'{v}' is not a boolean"))),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl S3Options {
    /// Reject values S3 cannot work with, naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid_input(m));
        if self.part_size < MIN_PART_SIZE || self.part_size > MAX_PART_SIZE {
            return bad(format!(
                "part_size {} is outside S3's limits ({MIN_PART_SIZE}..={MAX_PART_SIZE})",
                self.part_size
            ));
        }
        if self.multipart_threshold == 0 || self.get_part_size == 0 {
            return bad("multipart_threshold and get_part_size must be positive".into());
        }
        if self.get_concurrency == 0 || self.upload_concurrency == 0 || self.max_attempts == 0 {
            return bad("concurrency and max_attempts must be at least 1".into());
        }
        for ep in self.endpoint_url.iter().chain(&self.endpoints) {
            if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                return bad(format!(
                    "endpoint URL '{ep}' must start with http:// or https://"
                ));
            }
        }
        if self.endpoint_url.is_some() && !self.endpoints.is_empty() {
            return bad("set endpoint_url or endpoints, not both".into());
        }
        if self.no_sign_request && (self.credentials.is_some() || self.profile.is_some()) {
            return bad(
                "no_sign_request sends no credentials: not together with credentials \
                 or profile"
                    .into(),
            );
        }
        if let Some(c) = &self.storage_class {
            let ok = !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return bad(format!(
                    "storage class '{c}' is not one (upper case, such as STANDARD_IA)"
                ));
            }
        }
        if let Some(ServerSideEncryption::Kms {
            key_id: Some(k), ..
        }) = &self.server_side_encryption
        {
            if k.trim().is_empty() || k.contains(char::is_whitespace) {
                return bad(format!("KMS key id '{k}' is not one"));
            }
        }
        Ok(())
    }

    /// Headers that say how a new object is stored (encryption, storage class), for PUTs,
    /// CreateMultipartUpload and CopyObject.
    pub(crate) fn stored_as_headers(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(sse) = &self.server_side_encryption {
            out.push(("x-amz-server-side-encryption", sse.as_str().to_owned()));
            if let Some(k) = sse.kms_key_id() {
                out.push(("x-amz-server-side-encryption-aws-kms-key-id", k.to_owned()));
            }
            if let Some(b) = sse.bucket_key() {
                out.push((
                    "x-amz-server-side-encryption-bucket-key-enabled",
                    b.to_string(),
                ));
            }
        }
        if let Some(c) = &self.storage_class {
            out.push(("x-amz-storage-class", c.clone()));
        }
        out
    }

    /// Whether a single PUT's ETag is the MD5 of its bytes: not under SSE-KMS.
    pub(crate) fn etag_is_md5(&self) -> bool {
        !matches!(
            self.server_side_encryption,
            Some(ServerSideEncryption::Kms { .. })
        )
    }

    /// These options with tuning from `S3DLIO_*` environment variables applied (the
    /// original s3dlio's names where it had them): `S3DLIO_GET_PART_SIZE`,
    /// `S3DLIO_RANGE_CONCURRENCY`, `S3DLIO_MULTIPART_THRESHOLD`, `S3DLIO_PART_SIZE`,
    /// `S3DLIO_UPLOAD_CONCURRENCY`, `S3DLIO_MAX_ATTEMPTS`, `S3DLIO_BUFFER_POOL_BYTES`,
    /// `S3DLIO_LEAN_REQUESTS`, `S3DLIO_WIRE_REQUESTS`, `S3DLIO_UPLOAD_INTEGRITY`,
    /// `S3DLIO_SSE` (with `S3DLIO_SSE_KMS_KEY_ID`, `S3DLIO_SSE_BUCKET_KEY`),
    /// `S3DLIO_STORAGE_CLASS`, `S3DLIO_NO_SIGN_REQUEST`, `S3DLIO_REQUEST_PAYER`, and the
    /// endpoint list and balancing. Sizes take units (`8MiB`). A value
    /// that does not parse is an error naming the variable.
    pub fn with_env_overrides(mut self) -> Result<Self> {
        fn get<T>(name: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Option<T>> {
            env(name)
                .map(|v| {
                    parse(&v).map_err(|e| Error::invalid_input(format!("{name}: {}", e.message())))
                })
                .transpose()
        }
        let size = |v: &str| {
            s3dlio_store_core::parse_size(v).and_then(|n| {
                usize::try_from(n).map_err(|_| Error::invalid_input(format!("'{v}' is too large")))
            })
        };
        let count = |v: &str| {
            s3dlio_store_core::parse_count(v).and_then(|n| {
                usize::try_from(n).map_err(|_| Error::invalid_input(format!("'{v}' is too large")))
            })
        };
        if let Some(v) = get("S3DLIO_GET_PART_SIZE", size)? {
            self.get_part_size = v;
        }
        if let Some(v) = get("S3DLIO_RANGE_CONCURRENCY", count)? {
            self.get_concurrency = v;
        }
        if let Some(v) = get("S3DLIO_MULTIPART_THRESHOLD", size)? {
            self.multipart_threshold = v;
        }
        if let Some(v) = get("S3DLIO_PART_SIZE", size)? {
            self.part_size = v;
        }
        if let Some(v) = get("S3DLIO_UPLOAD_CONCURRENCY", count)? {
            self.upload_concurrency = v;
        }
        if let Some(v) = get("S3DLIO_BUFFER_POOL_BYTES", size)? {
            self.buffer_pool_bytes = v;
        }
        if let Some(v) = get("S3DLIO_LEAN_REQUESTS", parse_bool)? {
            self.lean_requests = v;
        }
        if let Some(v) = get("S3DLIO_NO_SIGN_REQUEST", parse_bool)? {
            self.no_sign_request = v;
        }
        if let Some(v) = get("S3DLIO_REQUEST_PAYER", |v| match v.trim() {
            v if v.eq_ignore_ascii_case("requester") => Ok(true),
            _ => Err(Error::invalid_input(format!(
                "'{v}' is not a request payer (requester)"
            ))),
        })? {
            self.requester_pays = v;
        }
        if let Some(v) = get("S3DLIO_WIRE_REQUESTS", parse_bool)? {
            self.wire_requests = v;
        }
        if let Some(v) = get("S3DLIO_UPLOAD_INTEGRITY", UploadIntegrity::parse)? {
            self.upload_integrity = v;
        }
        let kms_key = env("S3DLIO_SSE_KMS_KEY_ID");
        let bucket_key = get("S3DLIO_SSE_BUCKET_KEY", parse_bool)?;
        match get("S3DLIO_SSE", |v| {
            ServerSideEncryption::parse(v, kms_key.clone(), bucket_key)
        })? {
            Some(v) => self.server_side_encryption = Some(v),
            None if kms_key.is_some() || bucket_key.is_some() => {
                return Err(Error::invalid_input(
                    "S3DLIO_SSE_KMS_KEY_ID and S3DLIO_SSE_BUCKET_KEY need S3DLIO_SSE=aws:kms",
                ))
            }
            None => {}
        }
        if let Some(v) = env("S3DLIO_STORAGE_CLASS") {
            self.storage_class = Some(v.trim().to_owned());
        }
        if self.endpoints.is_empty() && self.endpoint_url.is_none() {
            if let Some(v) = env("S3DLIO_ENDPOINTS") {
                self.endpoints = parse_endpoints(&v);
            }
        }
        if let Some(v) = get("S3DLIO_LOAD_BALANCE", Policy::parse)? {
            self.balance.policy = v;
        }
        if let Some(v) = get(
            "S3DLIO_ENDPOINT_COOLDOWN",
            s3dlio_store_core::retry::parse_duration,
        )? {
            self.balance.cooldown = v;
        }
        if let Some(v) = get("S3DLIO_MAX_ATTEMPTS", count)? {
            self.max_attempts = u32::try_from(v)
                .map_err(|_| Error::invalid_input("S3DLIO_MAX_ATTEMPTS is too large"))?;
        }
        self.validate()?;
        Ok(self)
    }

    /// The endpoint from the options or the environment (with several `endpoints`, the
    /// first).
    pub fn effective_endpoint(&self) -> Option<String> {
        self.endpoint_url
            .clone()
            .or_else(|| self.endpoints.first().cloned())
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
    }

    fn effective_ca_bundle(&self) -> Option<PathBuf> {
        self.ca_bundle
            .clone()
            .or_else(|| env("AWS_CA_BUNDLE").map(PathBuf::from))
            .or_else(|| env("AWS_CA_BUNDLE_PATH").map(PathBuf::from))
    }

    fn effective_path_style(&self, custom_endpoint: bool) -> Result<bool> {
        if let Some(v) = self.force_path_style {
            return Ok(v);
        }
        match env("S3DLIO_FORCE_PATH_STYLE") {
            None => Ok(custom_endpoint),
            Some(v) => parse_bool(&v).map_err(|_| {
                Error::invalid_input(format!("S3DLIO_FORCE_PATH_STYLE='{v}' is not a boolean"))
            }),
        }
    }

    /// Build an SDK client.
    pub async fn build_client(&self) -> Result<Client> {
        Ok(self.build().await?.client)
    }

    /// Build for `bucket`: when no region is configured anywhere (options, environment,
    /// profile), ask the server where the bucket is and, if it names another region than
    /// the assumed us-east-1, build for that region instead, as boto3 and s5cmd find a
    /// bucket's region themselves. Returns what was built and the options it was built
    /// with (the found region set).
    pub(crate) async fn build_for_bucket(&self, bucket: &str) -> Result<(Built, S3Options)> {
        let built = self.build().await?;
        if !built.region_assumed {
            return Ok((built, self.clone()));
        }
        match self.located_at(&built.client, bucket).await {
            Ok(Some(opts)) => Ok((opts.build().await?, opts)),
            _ => Ok((built, self.clone())),
        }
    }

    /// These options for `bucket`'s own region, when the server names one other than the
    /// region `client` signs for (`Ok(None)`: `client` serves it); `Err` when no answer came.
    pub(crate) async fn located_at(
        &self,
        client: &Client,
        bucket: &str,
    ) -> Result<Option<S3Options>, ()> {
        let home = client.config().region().map(|r| r.as_ref().to_owned());
        Ok(bucket_region(client, bucket)
            .await?
            .filter(|region| Some(region) != home.as_ref())
            .map(|region| {
                tracing::info!("bucket {bucket} is in region {region}: using it");
                S3Options {
                    region: Some(region),
                    ..self.clone()
                }
            }))
    }

    /// Build an SDK client, and beside it the lean request path when `lean_requests` is on.
    pub(crate) async fn build(&self) -> Result<Built> {
        self.validate()?;
        let endpoint = self.effective_endpoint();
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(p) = &self.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(ep) = &endpoint {
            loader = loader.endpoint_url(ep);
        }
        if self.no_sign_request {
            loader = loader.no_credentials();
        }
        if let Some(c) = &self.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                c.session_token.clone(),
                None,
                "s3dlio-explicit",
            ));
        }
        let ca_bundle = self.effective_ca_bundle();
        if let Some(path) = &ca_bundle {
            loader = loader.http_client(https_client_trusting(path)?);
        }
        loader = loader
            // A stalled body is caught by `read_timeout`; the SDK's own throughput monitor
            // would add timers and bookkeeping to every body on the hot path.
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .retry_config(
                RetryConfig::standard().with_max_attempts(if self.outer_retries {
                    1
                } else {
                    self.max_attempts
                }),
            )
            .timeout_config({
                let mut t = TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .read_timeout(self.read_timeout);
                if let Some(a) = self.attempt_timeout {
                    t = t.operation_attempt_timeout(a);
                }
                t.build()
            });
        let shared = loader.load().await;

        // The endpoint may also come from the profile (`endpoint_url`): any custom endpoint
        // means an S3-compatible store, which wants path-style addressing.
        let custom_endpoint = endpoint.is_some() || shared.endpoint_url().is_some();
        let path_style = self.effective_path_style(custom_endpoint)?;
        let mut conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(path_style)
            // Checksums are added per request where we want them (see `upload_checksums`);
            // CRC32 on every request by default would double work on the hot path.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if self.requester_pays {
            conf = conf.interceptor(RequesterPays);
        }
        let region = match shared.region() {
            Some(r) => r.to_string(),
            None => {
                if !custom_endpoint {
                    tracing::info!("no AWS region configured; using {ASSUMED_REGION}");
                }
                conf = conf.region(Region::new(ASSUMED_REGION));
                ASSUMED_REGION.to_owned()
            }
        };
        let region_assumed = shared.region().is_none();
        let credentials = shared.credentials_provider();
        let lean = match (
            self.lean_requests,
            credentials.is_some() || self.no_sign_request,
        ) {
            (true, true) => Some(LeanClient::new(LeanConfig {
                region,
                endpoint_url: shared.endpoint_url().map(str::to_owned),
                force_path_style: path_style,
                use_fips: shared.use_fips().unwrap_or(false),
                use_dual_stack: shared.use_dual_stack().unwrap_or(false),
                credentials,
                ca_bundle_pem: match &ca_bundle {
                    Some(p) => Some(std::fs::read(p).map_err(|e| {
                        Error::from_io(e, format!("reading CA bundle {}", p.display()))
                    })?),
                    None => None,
                },
                connect_timeout: self.connect_timeout,
                read_timeout: self.read_timeout,
                wire_requests: self.wire_requests,
                requester_pays: self.requester_pays,
            })?),
            _ => None,
        };
        Ok(Built {
            client: Client::from_conf(conf.build()),
            lean,
            region_assumed,
        })
    }
}

/// The region requests are signed for when none is configured.
const ASSUMED_REGION: &str = "us-east-1";

/// What [`S3Options::build`] made.
pub(crate) struct Built {
    pub client: Client,
    /// The lean request path, when `lean_requests` is on and it applies.
    pub lean: Option<Arc<LeanClient>>,
    /// No region was configured anywhere: us-east-1 was assumed.
    pub region_assumed: bool,
}

/// Where `bucket` lives, as the server says: HeadBucket's `x-amz-bucket-region`, which S3
/// sends on its redirects and refusals too. One attempt, at most 10 s: `Ok(None)` when the
/// server answered without saying (SeaweedFS does), `Err` when no answer came (the first
/// real request reports why).
pub(crate) async fn bucket_region(client: &Client, bucket: &str) -> Result<Option<String>, ()> {
    let probe = client
        .head_bucket()
        .bucket(bucket)
        .customize()
        .config_override(
            aws_sdk_s3::config::Builder::default().retry_config(RetryConfig::disabled()),
        )
        .send();
    let region = match tokio::time::timeout(Duration::from_secs(10), probe).await {
        Ok(Ok(out)) => out.bucket_region().map(str::to_owned),
        Ok(Err(e)) => {
            let answer = e.raw_response().ok_or(())?;
            answer
                .headers()
                .get("x-amz-bucket-region")
                .map(str::to_owned)
        }
        Err(_) => return Err(()),
    };
    Ok(region.filter(|r| !r.is_empty()))
}

impl S3Options {
    /// For a sub-request of one operation (a multipart part, a ranged part GET): the SDK's
    /// retries when a layer above retries whole operations (see `outer_retries`), else
    /// nothing to change.
    pub(crate) fn part_retries(&self) -> Option<aws_sdk_s3::config::Builder> {
        self.outer_retries.then(|| {
            aws_sdk_s3::config::Builder::default()
                .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts))
        })
    }

    /// Attempts a lean request makes, as the SDK would: all of `max_attempts` unless a layer
    /// above retries whole operations (`outer_retries`); a sub-request (`part`) that layer
    /// cannot repeat always gets them.
    pub(crate) fn lean_attempts(&self, part: bool) -> u32 {
        if part || !self.outer_retries {
            self.max_attempts
        } else {
            1
        }
    }

    /// A sub-request's error: final when the SDK already retried it for a layer above.
    pub(crate) fn part_error(&self, e: Error) -> Error {
        if self.outer_retries && self.max_attempts > 1 {
            e.set_retryable(false)
        } else {
            e
        }
    }
}

/// An HTTPS client that trusts the system roots plus the certificates in `path`.
fn https_client_trusting(path: &std::path::Path) -> Result<aws_sdk_s3::config::SharedHttpClient> {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let pem = std::fs::read(path)
        .map_err(|e| Error::from_io(e, format!("reading CA bundle {}", path.display())))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("CA bundle {} holds no PEM certificate", path.display()),
        ));
    }
    let ctx = TlsContext::builder()
        .with_trust_store(TrustStore::default().with_pem_certificate(pem))
        .build()
        .map_err(|e| Error::invalid_input(format!("CA bundle {}: {e}", path.display())))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(ctx)
        .build_https())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let o = S3Options {
            part_size: MIB,
            ..S3Options::default()
        };
        assert!(o.validate().unwrap_err().to_string().contains("part_size"));
        let o = S3Options {
            endpoint_url: Some("127.0.0.1:9000".into()),
            ..S3Options::default()
        };
        assert!(o.validate().unwrap_err().to_string().contains("http://"));
        assert!(S3Options::default().validate().is_ok());
    }

    #[test]
    fn endpoint_lists_are_checked() {
        assert_eq!(
            parse_endpoints(" http://a:1, ,http://b:2,"),
            ["http://a:1", "http://b:2"]
        );
        let o = S3Options {
            endpoints: vec!["http://a:1".into(), "b:2".into()],
            ..S3Options::default()
        };
        assert!(o.validate().unwrap_err().to_string().contains("'b:2'"));
        let o = S3Options {
            endpoint_url: Some("http://a:1".into()),
            endpoints: vec!["http://b:2".into()],
            ..S3Options::default()
        };
        assert!(o.validate().unwrap_err().to_string().contains("not both"));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = StaticCredentials {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("tok-secret".into()),
        };
        let o = S3Options {
            credentials: Some(c),
            ..S3Options::default()
        };
        let s = format!("{o:?}");
        assert!(
            s.contains("AKIAEXAMPLE") && !s.contains("very-secret") && !s.contains("tok-secret")
        );
    }

    #[test]
    fn a_bad_ca_bundle_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("s3dlio-ca-{}", std::process::id()));
        std::fs::write(&dir, b"not a certificate").unwrap();
        let e = https_client_trusting(&dir).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let _ = std::fs::remove_file(&dir);
        let e = https_client_trusting(std::path::Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}
