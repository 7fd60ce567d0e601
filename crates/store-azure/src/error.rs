//! Service answers and transport failures into the one s3dlio error: a kind from the HTTP
//! status and the Azure error code (`x-ms-error-code`), a message with both, and the
//! request id (`x-ms-request-id`). Signatures never appear in messages.

use s3dlio_store_core::{Error, ErrorKind, Operation};

/// What a failed request told us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Failure {
    pub status: u16,
    pub code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
}

/// The kind of a failure. `shared_key`: the request was signed with the account key, which
/// may do anything in its account, so a 403 can only mean the signature was wrong (Azurite
/// answers a bad Shared Key signature with `AuthorizationFailure`, Azure with
/// `AuthenticationFailed`).
pub(crate) fn kind_of(status: u16, code: Option<&str>, shared_key: bool) -> ErrorKind {
    match code {
        Some(
            "BlobNotFound" | "ContainerNotFound" | "ResourceNotFound" | "CannotVerifyCopySource",
        ) => return ErrorKind::NotFound,
        Some("BlobAlreadyExists" | "ContainerAlreadyExists") => return ErrorKind::AlreadyExists,
        Some(
            "AuthenticationFailed"
            | "InvalidAuthenticationInfo"
            | "NoAuthenticationInformation"
            | "InvalidAuthenticationInformation",
        ) => return ErrorKind::Unauthenticated,
        Some("ConditionNotMet" | "TargetConditionNotMet" | "SourceConditionNotMet") => {
            return ErrorKind::PreconditionFailed
        }
        Some("InvalidRange") => return ErrorKind::RangeNotSatisfiable,
        Some("ServerBusy") => return ErrorKind::RateLimited,
        Some("OperationTimedOut") => return ErrorKind::Timeout,
        _ => {}
    }
    match status {
        404 => ErrorKind::NotFound,
        401 => ErrorKind::Unauthenticated,
        403 if shared_key => ErrorKind::Unauthenticated,
        403 => ErrorKind::PermissionDenied,
        409 => ErrorKind::PreconditionFailed,
        412 => ErrorKind::PreconditionFailed,
        416 => ErrorKind::RangeNotSatisfiable,
        429 | 503 => ErrorKind::RateLimited,
        400 => ErrorKind::InvalidInput,
        501 => ErrorKind::NotSupported,
        _ => ErrorKind::Other,
    }
}

/// `HTTP 404 BlobNotFound: The specified blob does not exist.`
pub(crate) fn describe(f: &Failure) -> String {
    let mut s = format!("HTTP {}", f.status);
    if let Some(c) = &f.code {
        s.push(' ');
        s.push_str(c);
    }
    if let Some(m) = f.message.as_deref().filter(|m| !m.is_empty()) {
        // The service's message ends with its request id and a time: we print the id apart.
        let m = m.lines().next().unwrap_or(m).trim();
        s.push_str(": ");
        s.push_str(m);
    }
    s
}

/// The error of a request the service answered with `failure`.
pub(crate) fn service_error(f: Failure, op: Operation, uri: &str, shared_key: bool) -> Error {
    let kind = kind_of(f.status, f.code.as_deref(), shared_key);
    let retryable = kind.default_retryable() || matches!(f.status, 500 | 502 | 504);
    let mut e = Error::new(kind, redact(&describe(&f)))
        .set_retryable(retryable)
        .context(op, uri);
    if let Some(id) = f.request_id {
        e = e.with_request_id(id);
    }
    e
}

/// A request that got no answer (connection refused or reset, timeout, a body cut off).
pub(crate) fn transport_error(err: azure_core::Error, op: Operation, uri: &str) -> Error {
    use azure_core::error::ErrorKind as Az;
    let text = redact(&error_chain(&err));
    let (kind, retryable) = match err.kind() {
        Az::Io => (ErrorKind::Interrupted, true),
        Az::Credential => (ErrorKind::Unauthenticated, false),
        Az::DataConversion => (ErrorKind::Other, false),
        _ => (ErrorKind::Other, false),
    };
    Error::new(kind, text)
        .set_retryable(retryable)
        .context(op, uri)
}

/// The message of an error and all its causes (azure_core's Display shows only the first).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cause = c.source();
    }
    s
}

/// Remove signatures from text that may quote a URL (`sig=...`) or a header.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("sig=") {
        out.push_str(&rest[..i + 4]);
        out.push_str("REDACTED");
        let tail = &rest[i + 4..];
        let end = tail.find(['&', ')', ' ', '"', '\'']).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `<Code>` and `<Message>` of an error body.
pub(crate) fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(body);
    let field = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&close)? + start;
        Some(crate::list::unescape(&text[start..end]))
    };
    (field("Code"), field("Message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_codes_and_statuses() {
        assert_eq!(
            kind_of(404, Some("BlobNotFound"), false),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind_of(404, Some("ContainerNotFound"), true),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind_of(403, Some("AuthenticationFailed"), false),
            ErrorKind::Unauthenticated
        );
        assert_eq!(
            kind_of(403, Some("AuthorizationFailure"), true),
            ErrorKind::Unauthenticated,
            "a key may do anything: a 403 means a bad signature"
        );
        assert_eq!(
            kind_of(403, Some("AuthorizationPermissionMismatch"), false),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            kind_of(409, Some("BlobAlreadyExists"), false),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind_of(412, Some("ConditionNotMet"), false),
            ErrorKind::PreconditionFailed
        );
        assert_eq!(
            kind_of(416, Some("InvalidRange"), false),
            ErrorKind::RangeNotSatisfiable
        );
        assert_eq!(
            kind_of(503, Some("ServerBusy"), false),
            ErrorKind::RateLimited
        );
        assert_eq!(kind_of(500, None, false), ErrorKind::Other);
    }

    #[test]
    fn messages_carry_status_code_request_id_and_no_signature() {
        let f = Failure {
            status: 404,
            code: Some("BlobNotFound".into()),
            message: Some("The specified blob does not exist.\nRequestId:abc\nTime:x".into()),
            request_id: Some("abc".into()),
        };
        let e = service_error(f, Operation::Get, "az://a/c/k", false);
        assert_eq!(
            e.to_string(),
            "GET az://a/c/k: not found: HTTP 404 BlobNotFound: The specified blob does not \
             exist. (request id abc)"
        );
        assert_eq!(
            redact("url (http://h/c?sv=1&sig=abc%2Bdef&se=2) failed"),
            "url (http://h/c?sv=1&sig=REDACTED&se=2) failed"
        );
        let (code, msg) = parse_error_body(
            b"<?xml version=\"1.0\"?><Error><Code>InvalidRange</Code><Message>a &amp; b</Message></Error>",
        );
        assert_eq!(code.as_deref(), Some("InvalidRange"));
        assert_eq!(msg.as_deref(), Some("a & b"));
    }
}
