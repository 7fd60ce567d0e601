//! One account's HTTP side: the azure_core pipeline (retries with backoff, request ids,
//! the authorization policy) and the Blob REST operations built on it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use azure_core::http::headers::Headers;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::Policy;
use azure_core::http::{
    AsyncResponseBody, ClientOptions, Context, ExponentialRetryOptions, Method, Pipeline,
    PipelineStreamOptions, Request, RetryOptions, Url,
};
use bytes::Bytes;
use s3dlio_store_core::{Error, ObjectMeta, Operation, Result};

use crate::auth::{SasPolicy, SharedKeyPolicy};
use crate::config::{AzureCredential, Resolved};
use crate::error::{parse_error_body, service_error, transport_error, Failure};

/// The service version we speak: new enough for the Cold tier, old enough for Azurite 3.35.
pub const API_VERSION: &str = "2025-01-05";

/// An answer with its body not read yet.
pub(crate) struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: AsyncResponseBody,
}

impl Response {
    pub fn header(&self, name: &'static str) -> Option<&str> {
        self.headers.get_optional_str(&name.into())
    }
}

/// The pipeline and addressing of one storage account.
pub(crate) struct Client {
    pipeline: Pipeline,
    /// Under a retry layer that retries whole operations: the pipeline, with retries, of
    /// the sub-requests it cannot see (staged blocks, the block list of a streamed write);
    /// `pipeline` then makes one attempt.
    part_pipeline: Option<Pipeline>,
    /// `https://ACCOUNT.blob.core.windows.net` or a path-style emulator URL; no trailing `/`.
    pub endpoint: String,
    pub account: String,
    /// Requests are signed with the account key (see `error::kind_of`).
    pub shared_key: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("account", &self.account)
            .finish()
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters (and `/` where asked).
pub(crate) fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Client {
    /// `outer_retries`: a retry layer above retries whole operations (see
    /// `AzureOptions::outer_retries`).
    pub fn new(r: &Resolved, max_retries: u32, outer_retries: bool) -> Result<Self> {
        let policy: Option<Arc<dyn Policy>> = match &r.credential {
            AzureCredential::AccountKey(k) => Some(Arc::new(SharedKeyPolicy::new(&r.account, k))),
            AzureCredential::Sas(s) => Some(Arc::new(SasPolicy::new(s))),
            AzureCredential::Token(t) => Some(Arc::new(BearerTokenAuthorizationPolicy::new(
                Arc::clone(t),
                vec!["https://storage.azure.com/.default"],
            ))),
            AzureCredential::Anonymous => None,
        };
        let build = |max_retries: u32| {
            let mut options = ClientOptions {
                retry: RetryOptions::exponential(ExponentialRetryOptions {
                    max_retries,
                    ..ExponentialRetryOptions::default()
                }),
                ..ClientOptions::default()
            };
            options.per_try_policies.extend(policy.clone());
            Pipeline::new(
                Some(env!("CARGO_PKG_NAME")),
                Some(env!("CARGO_PKG_VERSION")),
                options,
                Vec::new(),
                Vec::new(),
                None,
            )
        };
        let (pipeline, part_pipeline) = if outer_retries {
            (build(0), Some(build(max_retries)))
        } else {
            (build(max_retries), None)
        };
        Ok(Self {
            pipeline,
            part_pipeline,
            endpoint: r.endpoint.trim_end_matches('/').to_owned(),
            account: r.account.clone(),
            shared_key: matches!(r.credential, AzureCredential::AccountKey(_)),
        })
    }

    /// The URL of a container (`key: None`) or a blob, with a query of already-encoded
    /// pairs.
    pub fn url(&self, container: &str, key: Option<&str>, query: &[(&str, String)]) -> Result<Url> {
        let mut s = format!("{}/{}", self.endpoint, encode(container, false));
        if let Some(k) = key {
            s.push('/');
            s.push_str(&encode(k, true));
        }
        if !query.is_empty() {
            s.push('?');
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v, false)))
                .collect();
            s.push_str(&q.join("&"));
        }
        Url::parse(&s).map_err(|e| Error::invalid_input(format!("bad URL {s}: {e}")))
    }

    /// Send a request. Any status is returned; transport failures (after the pipeline's
    /// retries) are errors.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(String, String)],
        body: Option<Bytes>,
        op: Operation,
        uri: &str,
    ) -> Result<Response> {
        let mut req = Request::new(url, method);
        req.insert_header("x-ms-version", API_VERSION);
        for (k, v) in headers {
            req.insert_header(k.to_ascii_lowercase(), v.clone());
        }
        if let Some(b) = body {
            req.insert_header("content-length", b.len().to_string());
            req.set_body(b);
        } else if matches!(method, Method::Put) {
            req.insert_header("content-length", "0");
        }
        let pipeline = match (&self.part_pipeline, op) {
            (Some(p), Operation::Write | Operation::Complete) => p,
            _ => &self.pipeline,
        };
        let resp = pipeline
            .stream(
                &Context::new(),
                &mut req,
                Some(PipelineStreamOptions {
                    skip_checks: true,
                    ..PipelineStreamOptions::default()
                }),
            )
            .await
            .map_err(|e| transport_error(e, op, uri))?;
        let (status, headers, body) = resp.deconstruct();
        Ok(Response {
            status: u16::from(status),
            headers,
            body,
        })
    }

    /// Like [`send`](Self::send), but a status of 300 or more is an error, and the body is
    /// read whole.
    pub async fn call(
        &self,
        method: Method,
        url: Url,
        headers: &[(String, String)],
        body: Option<Bytes>,
        op: Operation,
        uri: &str,
    ) -> Result<(Headers, Bytes)> {
        let r = async {
            let r = self.send(method, url, headers, body, op, uri).await?;
            self.check(r, op, uri).await
        }
        .await;
        // A sub-request the part pipeline already retried: final for the layer above.
        let r = match (&self.part_pipeline, op) {
            (Some(_), Operation::Write | Operation::Complete) => {
                r.map_err(|e| e.set_retryable(false))?
            }
            _ => r?,
        };
        let body = r
            .body
            .collect()
            .await
            .map_err(|e| transport_error(e, op, uri))?;
        Ok((r.headers, body))
    }

    /// The response if it succeeded, else its error (the body is read for the details).
    pub async fn check(&self, r: Response, op: Operation, uri: &str) -> Result<Response> {
        if r.status < 300 {
            return Ok(r);
        }
        Err(self.failure(r, op, uri).await)
    }

    pub async fn failure(&self, r: Response, op: Operation, uri: &str) -> Error {
        let code = r.header("x-ms-error-code").map(str::to_owned);
        let request_id = r.header("x-ms-request-id").map(str::to_owned);
        let status = r.status;
        let body = r.body.collect().await.unwrap_or_default();
        let (body_code, message) = parse_error_body(&body);
        service_error(
            Failure {
                status,
                code: code.or(body_code),
                message,
                request_id,
            },
            op,
            uri,
            self.shared_key,
        )
    }
}

/// Metadata from the headers of Get Blob or Get Blob Properties.
pub(crate) fn meta_from_headers(key: &str, size: u64, h: &Headers) -> ObjectMeta {
    let get = |n: &'static str| h.get_optional_str(&n.into()).map(str::to_owned);
    let mut metadata = BTreeMap::new();
    for (k, v) in h.iter() {
        if let Some(name) = k.as_str().strip_prefix("x-ms-meta-") {
            metadata.insert(name.to_owned(), v.as_str().to_owned());
        }
    }
    let mut meta = ObjectMeta::new(key, size);
    meta.last_modified = get("last-modified").and_then(|t| http_date(&t));
    meta.etag = get("etag");
    meta.content_type = get("content-type");
    meta.metadata = metadata;
    meta.storage_class = get("x-ms-access-tier");
    meta
}

/// An RFC 7231 date (`Fri, 27 Nov 2026 10:00:00 GMT`).
pub(crate) fn http_date(s: &str) -> Option<SystemTime> {
    azure_core::time::parse_rfc7231(s)
        .ok()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
    use s3dlio_store_core::{ErrorKind, ObjectStoreExt};

    use super::*;
    use crate::{AzureOptions, AzureStore};

    /// An Entra ID credential that cannot get a token (as when no identity is configured),
    /// counting how often it is asked.
    #[derive(Debug, Default)]
    struct NoToken(AtomicUsize);

    #[async_trait::async_trait]
    impl TokenCredential for NoToken {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            assert_eq!(scopes, ["https://storage.azure.com/.default"]);
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "no identity here",
            ))
        }
    }

    /// The token is asked for before any connection: this test sends nothing anywhere (the
    /// endpoint is a closed loopback port in any case).
    #[tokio::test]
    async fn a_failing_entra_id_credential_is_unauthenticated_and_not_retried() {
        let cred = Arc::new(NoToken::default());
        let store = AzureStore::new(
            Some("acct"),
            "cont",
            AzureOptions {
                endpoint: Some("https://127.0.0.1:9/acct".into()),
                credential: Some(AzureCredential::Token(cred.clone())),
                ..AzureOptions::default()
            },
        )
        .unwrap();
        let e = store.get_bytes("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        assert!(!e.is_retryable(), "{e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("GET az://acct/cont/k: unauthenticated"),
            "{msg}"
        );
        assert!(msg.contains("no identity here"), "{msg}");
        assert_eq!(cred.0.load(Ordering::SeqCst), 1, "asked once, not retried");
    }
}
