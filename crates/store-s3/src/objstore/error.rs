//! `object_store` errors into the one s3dlio error, and keys into `object_store` paths.
//!
//! `object_store` types the outcomes it knows (not found, precondition, already exists,
//! permission, authentication); every other HTTP failure arrives as a `Generic` error whose
//! text carries the status and the S3 error code. Those are read back from the text so that
//! throttling, bad ranges and bad requests get the same kinds as in the native backend.

use std::fmt;

use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use s3dlio_store_core::{validate_key, Error, ErrorKind, Operation, Result};

/// An `object_store` error kept as the source of an s3dlio error.
///
/// `object_store` writes every nested cause into its own message, so this wrapper shows that
/// message once and reports no further source (walking the chain would print each cause two
/// or three times). The original error is available through [`inner`](Self::inner) after
/// downcasting the s3dlio error's source to this type.
pub struct ObjectStoreError(object_store::Error);

impl ObjectStoreError {
    pub fn inner(&self) -> &object_store::Error {
        &self.0
    }
}

impl fmt::Debug for ObjectStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ObjectStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ObjectStoreError {}

impl From<object_store::Error> for ObjectStoreError {
    fn from(e: object_store::Error) -> Self {
        Self(e)
    }
}

/// The HTTP status in an `object_store` error text ("... status code: 416 Range Not ...").
pub(crate) fn status_in(text: &str) -> Option<u16> {
    let rest = text.split("status code: ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (digits.len() == 3).then(|| digits.parse().ok()).flatten()
}

/// The S3 error code in an `object_store` error text: the `<Code>` of an XML error body, or
/// the `(code: X)` of a failed key in a batch delete.
pub(crate) fn code_in(text: &str) -> Option<&str> {
    let (open, close) = if text.contains("<Code>") {
        ("<Code>", "</Code>")
    } else {
        ("(code: ", ")")
    };
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len]).filter(|c| !c.is_empty())
}

/// The transport failure under an error, if any (timeouts, resets, refused connections).
fn http_kind(err: &(dyn std::error::Error + 'static)) -> Option<HttpErrorKind> {
    let mut cause = Some(err);
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<HttpError>() {
            return Some(h.kind());
        }
        cause = c.source();
    }
    None
}

/// The s3dlio kind of an `object_store` error.
pub(crate) fn kind_of(err: &object_store::Error) -> ErrorKind {
    use object_store::Error as E;
    match err {
        E::NotFound { .. } => ErrorKind::NotFound,
        E::AlreadyExists { .. } => ErrorKind::AlreadyExists,
        E::Precondition { .. } | E::NotModified { .. } => ErrorKind::PreconditionFailed,
        // object_store takes every 403 for a permission problem; S3's code tells a bad
        // signature or key (unauthenticated) from a refusal.
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            match crate::error::kind_of(None, code_in(&err.to_string())) {
                k @ (ErrorKind::Unauthenticated | ErrorKind::PermissionDenied) => k,
                _ if matches!(err, E::Unauthenticated { .. }) => ErrorKind::Unauthenticated,
                _ => ErrorKind::PermissionDenied,
            }
        }
        E::NotSupported { .. } | E::NotImplemented { .. } => ErrorKind::NotSupported,
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => ErrorKind::InvalidInput,
        _ => {
            let text = err.to_string();
            let (status, code) = (status_in(&text), code_in(&text));
            if status.is_some() || code.is_some() {
                return crate::error::kind_of(status, code);
            }
            match http_kind(err) {
                Some(HttpErrorKind::Timeout) => ErrorKind::Timeout,
                Some(
                    HttpErrorKind::Connect | HttpErrorKind::Request | HttpErrorKind::Interrupted,
                ) => ErrorKind::Interrupted,
                _ => ErrorKind::Other,
            }
        }
    }
}

/// Map a failed `object_store` call on `uri`.
pub(crate) fn map_err(err: object_store::Error, op: Operation, uri: &str) -> Error {
    let kind = kind_of(&err);
    Error::new(kind, "")
        .with_source(ObjectStoreError(err))
        .context(op, uri)
}

/// The same error with another kind, keeping everything else.
pub(crate) fn rekind(e: Error, kind: ErrorKind, message: impl Into<String>) -> Error {
    let mut out = Error::new(kind, message);
    if let Some(op) = e.operation() {
        out = out.with_operation(op);
    }
    if let Some(uri) = e.uri() {
        out = out.with_uri(uri);
    }
    if let Some(id) = e.request_id() {
        out = out.with_request_id(id);
    }
    out.with_source(e)
}

/// The `object_store` path of a key, exactly: `Path::parse` keeps every character as it is
/// (the S3 client percent-encodes the URL itself), but it refuses empty segments (`a//b`),
/// `.` and `..` segments and ASCII control characters, and drops a leading or trailing `/`.
/// Such keys are refused here, naming the key, rather than silently stored under another.
pub(crate) fn path_of(key: &str) -> Result<Path> {
    validate_key(key)?;
    let path = Path::parse(key).map_err(|e| {
        Error::invalid_input(format!(
            "the object_store backend cannot represent the key {key:?}: {e}"
        ))
    })?;
    if path.as_ref() != key {
        return Err(Error::invalid_input(format!(
            "the object_store backend cannot represent the key {key:?}: a leading or trailing \
             '/' would be dropped"
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_are_read_from_error_text() {
        let t = "Generic S3 error: Error performing GET http://h/b/k in 2ms - Server returned \
                 non-2xx status code: 416 Range Not Satisfiable: <?xml version=\"1.0\"?>\
                 <Error><Code>InvalidRange</Code></Error>";
        assert_eq!(status_in(t), Some(416));
        assert_eq!(code_in(t), Some("InvalidRange"));
        let d = "DeleteObjects request failed for key a/b: Access Denied (code: AccessDenied)";
        assert_eq!(code_in(d), Some("AccessDenied"));
        assert_eq!(status_in(d), None);
        assert_eq!(status_in("status code: 5"), None);
    }

    #[test]
    fn generic_errors_get_kinds_from_status_and_code() {
        let generic = |text: &str| object_store::Error::Generic {
            store: "S3",
            source: text.to_owned().into(),
        };
        assert_eq!(
            kind_of(&generic("Server returned non-2xx status code: 503 Service Unavailable: <Error><Code>SlowDown</Code></Error>")),
            ErrorKind::RateLimited
        );
        assert_eq!(
            kind_of(&generic(
                "Server returned non-2xx status code: 416 Range Not Satisfiable: "
            )),
            ErrorKind::RangeNotSatisfiable
        );
        assert_eq!(kind_of(&generic("no status here")), ErrorKind::Other);
        let nf = object_store::Error::NotFound {
            path: "k".into(),
            source: "gone".into(),
        };
        assert_eq!(kind_of(&nf), ErrorKind::NotFound);
        let e = map_err(nf, Operation::Head, "s3://b/k");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().starts_with("HEAD s3://b/k: not found"), "{e}");
        assert!(e.to_string().contains("gone"), "{e}");
    }

    #[test]
    fn keys_round_trip_or_are_refused() {
        for k in [
            "with space.txt",
            "plus+sign",
            "percent%20and%2Fslash",
            "ünïcödé/日本語/файл",
            "quote'and\"double",
            "semi;colon=eq&amp?q#hash",
            "tilde~star*paren(x)",
        ] {
            assert_eq!(path_of(k).unwrap().as_ref(), k);
        }
        for k in ["a//b", "a/./b", "../x", "/lead", "trail/", "ctl\u{1}"] {
            let e = path_of(k).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{k}");
            assert!(e.to_string().contains(&format!("{k:?}")), "{e}");
        }
    }
}
