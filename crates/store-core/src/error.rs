//! The one error type every s3dlio crate maps into.
//!
//! Callers match on [`ErrorKind`]; the retry layer reads [`Error::is_retryable`]; people read
//! the message, which names the operation, the URI and the root cause.

use std::fmt;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object, bucket or container does not exist.
    NotFound,
    /// A create-only write found an object already there.
    AlreadyExists,
    /// The credentials are valid but may not do this.
    PermissionDenied,
    /// No credentials, or credentials the service rejected.
    Unauthenticated,
    /// A condition (If-Match on an ETag) did not hold.
    PreconditionFailed,
    /// The requested byte range lies outside the object.
    RangeNotSatisfiable,
    /// The caller's input is malformed: a bad URI, key, range or option.
    InvalidInput,
    /// This backend cannot do this operation (see [`crate::Capabilities`]).
    NotSupported,
    /// The service asked us to slow down (503 SlowDown, 429).
    RateLimited,
    /// The operation did not finish in time.
    Timeout,
    /// The operation was interrupted: a reset connection, a body cut short.
    Interrupted,
    /// Anything else; the message and source say what.
    Other,
}

impl ErrorKind {
    /// Whether an error of this kind is, by default, worth retrying.
    pub fn default_retryable(self) -> bool {
        matches!(self, Self::RateLimited | Self::Timeout | Self::Interrupted)
    }

    /// A short stable name, used in messages and op-logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not found",
            Self::AlreadyExists => "already exists",
            Self::PermissionDenied => "permission denied",
            Self::Unauthenticated => "unauthenticated",
            Self::PreconditionFailed => "precondition failed",
            Self::RangeNotSatisfiable => "range not satisfiable",
            Self::InvalidInput => "invalid input",
            Self::NotSupported => "not supported",
            Self::RateLimited => "rate limited",
            Self::Timeout => "timed out",
            Self::Interrupted => "interrupted",
            Self::Other => "error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    Get,
    Put,
    Head,
    List,
    Delete,
    DeleteMany,
    Copy,
    Write,
    Complete,
    Abort,
    Open,
    Parse,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
            Self::Head => "HEAD",
            Self::List => "LIST",
            Self::Delete => "DELETE",
            Self::DeleteMany => "DELETE-MANY",
            Self::Copy => "COPY",
            Self::Write => "WRITE",
            Self::Complete => "COMPLETE",
            Self::Abort => "ABORT",
            Self::Open => "OPEN",
            Self::Parse => "PARSE",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How far a request got when its connection failed, as the backend knows it. The
/// multi-endpoint layer ([`crate::balance`]) reads it to take an endpoint out of rotation
/// and to decide whether the request may go to another endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionFailure {
    /// No connection was made (refused, connect timeout, name not resolved): the request
    /// never reached the service, so sending it elsewhere is always safe.
    NotConnected,
    /// The connection failed after the request may have been sent and before any answer
    /// (reset, closed): the service may have performed it.
    NoAnswer,
}

/// The error of every s3dlio operation.
///
/// Displayed as `GET s3://bucket/key: not found: <message>: <source>: <source's source>…`,
/// so that the root cause is never hidden behind a generic word.
pub struct Error {
    kind: ErrorKind,
    retryable: bool,
    message: String,
    operation: Option<Operation>,
    uri: Option<String>,
    request_id: Option<String>,
    connection: Option<ConnectionFailure>,
    source: Option<Source>,
}

/// Result alias used across s3dlio.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind`; retryable by the kind's default.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            retryable: kind.default_retryable(),
            message: message.into(),
            operation: None,
            uri: None,
            request_id: None,
            connection: None,
            source: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotSupported, message)
    }

    pub fn other(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Other, message)
    }

    /// Attach the operation that failed (kept if already set).
    pub fn with_operation(mut self, op: Operation) -> Self {
        self.operation.get_or_insert(op);
        self
    }

    /// Attach the URI or key the operation was on (kept if already set).
    pub fn with_uri(mut self, uri: impl Into<String>) -> Self {
        if self.uri.is_none() {
            self.uri = Some(uri.into());
        }
        self
    }

    /// Attach a service request id, for support tickets.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Override whether this error is worth retrying.
    pub fn set_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Mark this error as a failed connection to the service (see [`ConnectionFailure`]).
    pub fn with_connection_failure(mut self, how: ConnectionFailure) -> Self {
        self.connection = Some(how);
        self
    }

    /// Whether the connection to the service failed, and how far the request got.
    pub fn connection_failure(&self) -> Option<ConnectionFailure> {
        self.connection
    }

    /// Attach operation and URI in one call; the usual way backends add context.
    pub fn context(self, op: Operation, uri: impl Into<String>) -> Self {
        self.with_operation(op).with_uri(uri)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the request surely was not carried out: the service refused it without
    /// doing it (throttled), or it never reached the service. Only then may a conditional
    /// write be repeated: after a reset or a timeout the first attempt may have succeeded,
    /// and a repeat would report `AlreadyExists` or `PreconditionFailed` for our own write.
    pub fn surely_unperformed(&self) -> bool {
        self.kind == ErrorKind::RateLimited
            || self.connection == Some(ConnectionFailure::NotConnected)
    }

    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn operation(&self) -> Option<Operation> {
        self.operation
    }

    pub fn uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }

    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Map an I/O error, choosing the kind from its [`std::io::ErrorKind`].
    pub fn from_io(err: std::io::Error, message: impl Into<String>) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match err.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::PermissionDenied | Io::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
            Io::AlreadyExists => ErrorKind::AlreadyExists,
            Io::InvalidInput | Io::InvalidFilename | Io::NotADirectory | Io::IsADirectory => {
                ErrorKind::InvalidInput
            }
            Io::TimedOut => ErrorKind::Timeout,
            Io::Interrupted
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::BrokenPipe
            | Io::UnexpectedEof => ErrorKind::Interrupted,
            Io::Unsupported => ErrorKind::NotSupported,
            _ => ErrorKind::Other,
        };
        Self::new(kind, message).with_source(err)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.operation, &self.uri) {
            (Some(op), Some(uri)) => write!(f, "{op} {uri}: ")?,
            (Some(op), None) => write!(f, "{op}: ")?,
            (None, Some(uri)) => write!(f, "{uri}: ")?,
            (None, None) => {}
        }
        write!(f, "{}", self.kind)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        // Walk the whole chain so the root cause is always visible.
        let mut cause = self
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static));
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("retryable", &self.retryable)
            .field("operation", &self.operation)
            .field("uri", &self.uri)
            .field("request_id", &self.request_id)
            .field("connection", &self.connection)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The Display impl prints the chain itself; exposing it here too lets callers walk it.
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self::from_io(err, "")
    }
}

impl From<Error> for std::io::Error {
    fn from(err: Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match err.kind {
            ErrorKind::NotFound => Io::NotFound,
            ErrorKind::AlreadyExists => Io::AlreadyExists,
            ErrorKind::PermissionDenied | ErrorKind::Unauthenticated => Io::PermissionDenied,
            ErrorKind::InvalidInput | ErrorKind::RangeNotSatisfiable => Io::InvalidInput,
            ErrorKind::NotSupported => Io::Unsupported,
            ErrorKind::Timeout => Io::TimedOut,
            ErrorKind::Interrupted => Io::Interrupted,
            _ => Io::Other,
        };
        std::io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_operation_uri_kind_and_root_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer reset");
        let err = Error::from_io(io, "reading body")
            .context(Operation::Get, "s3://b/k")
            .with_request_id("R1");
        assert_eq!(err.kind(), ErrorKind::Interrupted);
        assert!(err.is_retryable());
        assert_eq!(
            err.to_string(),
            "GET s3://b/k: interrupted: reading body (request id R1): peer reset"
        );
    }

    #[test]
    fn first_context_wins() {
        let err = Error::not_found("no such key")
            .context(Operation::Head, "file:///a")
            .context(Operation::Get, "file:///b");
        assert_eq!(err.operation(), Some(Operation::Head));
        assert_eq!(err.uri(), Some("file:///a"));
        assert!(!err.is_retryable());
    }

    #[test]
    fn io_round_trip_keeps_kind() {
        let err = Error::not_found("x");
        let io: std::io::Error = err.into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }
}
