//! SDK errors into the one s3dlio error: a kind from the HTTP status and S3 error code, and
//! a message with both plus the request id, so users can act on it (and quote it to their
//! storage team).

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use s3dlio_store_core::{ConnectionFailure, Error, ErrorKind, Operation};

/// What we could learn from a failed request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Failure {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
    /// Where the bucket lives, when the answer says (`x-amz-bucket-region`, or the
    /// `<Region>` of an error document).
    pub bucket_region: Option<String>,
}

impl Failure {
    /// The bucket's region, when the request failed because it was sent to or signed for
    /// another one: a redirect to the bucket's regional endpoint (301 `PermanentRedirect`,
    /// which a HEAD gets without a document) or a signature scoped to the wrong region
    /// (400 `AuthorizationHeaderMalformed`).
    fn elsewhere(&self) -> Option<&str> {
        let region = self.bucket_region.as_deref().filter(|r| !r.is_empty())?;
        let misdirected = self.status == Some(301)
            || matches!(
                self.code.as_deref(),
                Some(
                    "PermanentRedirect"
                        | "AuthorizationHeaderMalformed"
                        | "IllegalLocationConstraintException"
                )
            );
        misdirected.then_some(region)
    }

    /// The kind, whether a retry may help, and the message of a service's error answer.
    pub(crate) fn classify(&self) -> (ErrorKind, bool, String) {
        if let Some(region) = self.elsewhere() {
            // Not transient and not a credentials problem: every request will fail the
            // same way until the region is set.
            return (
                ErrorKind::InvalidInput,
                false,
                format!(
                    "{}; the bucket is in region {region}: set the region to it \
                     (AWS_REGION, the region option or s3-cli --region)",
                    describe(self)
                ),
            );
        }
        let kind = kind_of(self.status, self.code.as_deref());
        let retryable = kind.default_retryable()
            || matches!(self.status, Some(500 | 502 | 504))
            || self.code.as_deref() == Some("InternalError");
        (kind, retryable, describe(self))
    }
}

pub(crate) fn kind_of(status: Option<u16>, code: Option<&str>) -> ErrorKind {
    match (status, code) {
        (_, Some("NoSuchKey" | "NoSuchBucket" | "NoSuchUpload" | "NotFound")) => {
            ErrorKind::NotFound
        }
        (
            _,
            Some(
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken"
                | "TokenRefreshRequired"
                | "MissingSecurityHeader"
                | "AuthorizationHeaderMalformed",
            ),
        ) => ErrorKind::Unauthenticated,
        (_, Some("AccessDenied" | "AllAccessDisabled" | "AccountProblem")) => {
            ErrorKind::PermissionDenied
        }
        (_, Some("PreconditionFailed" | "ConditionalRequestConflict")) => {
            ErrorKind::PreconditionFailed
        }
        (_, Some("InvalidRange")) => ErrorKind::RangeNotSatisfiable,
        (
            _,
            Some(
                "SlowDown"
                | "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TooManyRequests",
            ),
        ) => ErrorKind::RateLimited,
        (_, Some("RequestTimeout" | "RequestTimeTooSkewed")) => ErrorKind::Timeout,
        (_, Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => ErrorKind::AlreadyExists,
        (
            _,
            Some(
                "InvalidBucketName" | "KeyTooLongError" | "InvalidArgument" | "EntityTooSmall"
                | "EntityTooLarge" | "InvalidPart" | "InvalidPartOrder" | "MalformedXML"
                | "InvalidRequest" | "BucketNotEmpty",
            ),
        ) => ErrorKind::InvalidInput,
        (_, Some("NotImplemented")) => ErrorKind::NotSupported,
        (Some(404), _) => ErrorKind::NotFound,
        (Some(401), _) => ErrorKind::Unauthenticated,
        (Some(403), _) => ErrorKind::PermissionDenied,
        (Some(409), _) => ErrorKind::PreconditionFailed,
        (Some(412), _) => ErrorKind::PreconditionFailed,
        (Some(416), _) => ErrorKind::RangeNotSatisfiable,
        (Some(429 | 503), _) => ErrorKind::RateLimited,
        (Some(400), _) => ErrorKind::InvalidInput,
        (Some(501), _) => ErrorKind::NotSupported,
        _ => ErrorKind::Other,
    }
}

/// Map a failed SDK call on `uri`.
pub(crate) fn sdk_error<E>(
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    op: Operation,
    uri: &str,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let failure = Failure {
        status: err.raw_response().map(|r| r.status().as_u16()),
        code: err.code().map(str::to_owned),
        message: err.message().map(str::to_owned),
        request_id: err
            .raw_response()
            .and_then(|r| r.headers().get("x-amz-request-id").map(str::to_owned)),
        bucket_region: err.raw_response().and_then(|r| {
            r.headers()
                .get("x-amz-bucket-region")
                .map(str::to_owned)
                .or_else(|| {
                    let body = std::str::from_utf8(r.body().bytes()?).ok()?;
                    xml_field(body, "Region")
                })
        }),
    };
    let mut connection = None;
    let (kind, retryable, what) = match &err {
        SdkError::TimeoutError(_) => (ErrorKind::Timeout, true, "request timed out".to_owned()),
        SdkError::DispatchFailure(d) => {
            let context = DisplayErrorContext(&err).to_string();
            if is_certificate_failure(&context) {
                // Not transient: the endpoint's certificate is not trusted by this client.
                (
                    ErrorKind::InvalidInput,
                    false,
                    format!(
                        "the endpoint's TLS certificate is not trusted (for a private CA, \
                         set the CA bundle: option ca_bundle, AWS_CA_BUNDLE or --ca-bundle): \
                         {context}"
                    ),
                )
            } else {
                // The connector calls a connection closed before the answer came (hyper's
                // IncompleteMessage) a transient "other" failure: a reset, like an I/O one.
                let transient =
                    d.as_other() == Some(aws_smithy_types::retry::ErrorKind::TransientError);
                let kind = if d.is_timeout() {
                    ErrorKind::Timeout
                } else if d.is_io() || transient {
                    ErrorKind::Interrupted
                } else {
                    ErrorKind::Other
                };
                connection = connection_failure(&err, &context, d.is_io() || transient);
                // The context names the endpoint and the OS error (e.g. connection refused).
                (
                    kind,
                    d.is_timeout() || d.is_io() || transient,
                    format!("could not send the request: {context}"),
                )
            }
        }
        SdkError::ResponseError(_) => (
            ErrorKind::Interrupted,
            true,
            format!(
                "the response was cut off or malformed: {}",
                DisplayErrorContext(&err)
            ),
        ),
        SdkError::ConstructionFailure(_) => (
            ErrorKind::InvalidInput,
            false,
            format!("could not build the request: {}", DisplayErrorContext(&err)),
        ),
        _ => failure.classify(),
    };
    let mut e = Error::new(kind, what)
        .set_retryable(retryable)
        .context(op, uri);
    if let Some(id) = failure.request_id {
        e = e.with_request_id(id);
    }
    if let Some(how) = connection {
        e = e.with_connection_failure(how);
    }
    e
}

/// How far a request that could not be sent got: not connected (refused, connect timeout,
/// name not resolved: it never left), or lost before any answer (a reset or a connection
/// closed after it may have been sent). A read timeout is neither: the server is there,
/// only slow.
pub(crate) fn connection_failure(
    err: &(dyn std::error::Error + 'static),
    context: &str,
    io_or_transient: bool,
) -> Option<ConnectionFailure> {
    let mut refused = false;
    let mut cause = Some(err);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        cause = c.source();
    }
    // hyper-util's connect errors and the SDK's connect timeout name themselves.
    let connecting = [
        "client error (Connect)",
        "HTTP connect timeout",
        "dns error",
    ]
    .iter()
    .any(|m| context.contains(m));
    if refused || connecting {
        Some(ConnectionFailure::NotConnected)
    } else if io_or_transient {
        Some(ConnectionFailure::NoAnswer)
    } else {
        None
    }
}

/// `HTTP 404 NoSuchKey: The specified key does not exist.`
pub(crate) fn describe(f: &Failure) -> String {
    let mut s = String::new();
    if let Some(st) = f.status {
        s.push_str(&format!("HTTP {st}"));
    }
    if let Some(c) = &f.code {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(c);
    }
    if let Some(m) = f.message.as_deref().filter(|m| !m.is_empty()) {
        s.push_str(": ");
        s.push_str(m);
    }
    if s.is_empty() {
        s.push_str("the service returned an error without details");
    }
    s
}

/// The text of `<name>...</name>` in an S3 error document, unescaped.
pub(crate) fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// The status of a failed call, for callers that treat some statuses specially.
pub(crate) fn status_of<E>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Whether a connection failed because the server's certificate was refused (rustls names
/// the reason: unknown issuer, expired, wrong name, ...).
fn is_certificate_failure(context: &str) -> bool {
    context.contains("invalid peer certificate") || context.contains("InvalidCertificate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_codes_and_statuses() {
        assert_eq!(
            kind_of(Some(404), Some("NoSuchBucket")),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind_of(Some(403), Some("SignatureDoesNotMatch")),
            ErrorKind::Unauthenticated
        );
        assert_eq!(
            kind_of(Some(403), Some("InvalidAccessKeyId")),
            ErrorKind::Unauthenticated
        );
        assert_eq!(
            kind_of(Some(403), Some("AccessDenied")),
            ErrorKind::PermissionDenied
        );
        assert_eq!(kind_of(Some(503), Some("SlowDown")), ErrorKind::RateLimited);
        assert_eq!(kind_of(Some(412), None), ErrorKind::PreconditionFailed);
        assert_eq!(
            kind_of(Some(416), Some("InvalidRange")),
            ErrorKind::RangeNotSatisfiable
        );
        assert_eq!(kind_of(Some(500), Some("InternalError")), ErrorKind::Other);
        assert_eq!(kind_of(Some(404), None), ErrorKind::NotFound);
    }

    #[test]
    fn a_bucket_elsewhere_is_a_configuration_error_only_when_misdirected() {
        let redirect = Failure {
            status: Some(301),
            bucket_region: Some("eu-west-1".into()),
            ..Failure::default()
        };
        let (kind, retryable, message) = redirect.classify();
        assert_eq!((kind, retryable), (ErrorKind::InvalidInput, false));
        assert!(
            message.starts_with("HTTP 301; the bucket is in region eu-west-1"),
            "{message}"
        );
        let signed_elsewhere = Failure {
            status: Some(400),
            code: Some("AuthorizationHeaderMalformed".into()),
            bucket_region: Some("ap-south-1".into()),
            ..Failure::default()
        };
        assert!(signed_elsewhere.classify().2.contains("ap-south-1"));
        // S3 names the region on other answers too: they keep their own kind.
        let denied = Failure {
            status: Some(403),
            code: Some("AccessDenied".into()),
            bucket_region: Some("eu-west-1".into()),
            ..Failure::default()
        };
        assert_eq!(denied.classify().0, ErrorKind::PermissionDenied);
        let no_region = Failure {
            status: Some(400),
            code: Some("AuthorizationHeaderMalformed".into()),
            ..Failure::default()
        };
        assert_eq!(no_region.classify().0, ErrorKind::Unauthenticated);
    }

    #[test]
    fn descriptions_carry_status_code_and_message() {
        let f = Failure {
            status: Some(404),
            code: Some("NoSuchKey".into()),
            message: Some("The specified key does not exist.".into()),
            ..Failure::default()
        };
        assert_eq!(
            describe(&f),
            "HTTP 404 NoSuchKey: The specified key does not exist."
        );
        assert_eq!(
            describe(&Failure::default()),
            "the service returned an error without details"
        );
    }
}
