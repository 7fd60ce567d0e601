//! Store errors as Python exceptions. The kinds users catch map to the built-in exceptions
//! they already catch for files (NotFound -> `FileNotFoundError`, PermissionDenied and
//! Unauthenticated -> `PermissionError`, InvalidInput -> `ValueError`); every other kind
//! raises a subclass of `s3dlio.S3dlioError`. The message keeps the Rust error's context
//! (operation, URI, status, request id).

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyPermissionError, PyValueError};
use pyo3::prelude::*;
use s3dlio_store_core::{Error, ErrorKind};

create_exception!(
    s3dlio,
    S3dlioError,
    PyException,
    "Any s3dlio failure without a built-in exception of its own."
);
create_exception!(
    s3dlio,
    AlreadyExistsError,
    S3dlioError,
    "The object exists and the write asked it not to."
);
create_exception!(
    s3dlio,
    PreconditionFailedError,
    S3dlioError,
    "A condition (If-Match, create-only) did not hold."
);
create_exception!(
    s3dlio,
    NotSupportedError,
    S3dlioError,
    "The backend cannot do this."
);
create_exception!(
    s3dlio,
    RateLimitedError,
    S3dlioError,
    "The service throttled the request (after retries)."
);
create_exception!(
    s3dlio,
    TimeoutError,
    S3dlioError,
    "The request timed out (after retries)."
);
create_exception!(
    s3dlio,
    InterruptedError,
    S3dlioError,
    "The transfer was cut off (after retries)."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("S3dlioError", py.get_type::<S3dlioError>())?;
    m.add("AlreadyExistsError", py.get_type::<AlreadyExistsError>())?;
    m.add(
        "PreconditionFailedError",
        py.get_type::<PreconditionFailedError>(),
    )?;
    m.add("NotSupportedError", py.get_type::<NotSupportedError>())?;
    m.add("RateLimitedError", py.get_type::<RateLimitedError>())?;
    m.add("TimeoutError", py.get_type::<TimeoutError>())?;
    m.add("InterruptedError", py.get_type::<InterruptedError>())?;
    Ok(())
}

/// The Python exception for a store error.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
        ErrorKind::PermissionDenied | ErrorKind::Unauthenticated => PyPermissionError::new_err(msg),
        ErrorKind::InvalidInput | ErrorKind::RangeNotSatisfiable => PyValueError::new_err(msg),
        ErrorKind::AlreadyExists => AlreadyExistsError::new_err(msg),
        ErrorKind::PreconditionFailed => PreconditionFailedError::new_err(msg),
        ErrorKind::NotSupported => NotSupportedError::new_err(msg),
        ErrorKind::RateLimited => RateLimitedError::new_err(msg),
        ErrorKind::Timeout => TimeoutError::new_err(msg),
        ErrorKind::Interrupted => InterruptedError::new_err(msg),
        _ => S3dlioError::new_err(msg),
    }
}

/// A failure of the module itself (its runtime could not start, ...).
pub fn runtime_error(msg: String) -> PyErr {
    S3dlioError::new_err(msg)
}

/// A failure reported by one of the CLI's commands (upload, download, put, buckets), which
/// carry their cause as text.
pub fn command_error(e: s3dlio_cli::commands::CliError) -> PyErr {
    S3dlioError::new_err(e.0)
}
