//! `BytesView`: an object's bytes as the Rust side holds them, lent to Python through the
//! buffer protocol. `memoryview(v)`, `numpy.frombuffer(v, ...)` and `torch.frombuffer(v, ...)`
//! see the same memory without a copy; `bytes(v)` copies. Read-only: the memory may be
//! shared with other views of the same object.

use std::os::raw::c_int;

use bytes::Bytes;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The memory of a `bytes` object, kept alive by a reference to it. CPython never changes a
/// `bytes` object once it is made, so a payload can be sent straight from it.
struct PyBytesOwner {
    _obj: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the memory is immutable and lives as long as `_obj`, which is `Send + Sync`
// (dropped on a thread not attached to the interpreter, its reference is released later
// by PyO3's reference pool).
unsafe impl Send for PyBytesOwner {}
unsafe impl Sync for PyBytesOwner {}

impl AsRef<[u8]> for PyBytesOwner {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` and `len` describe the buffer of `_obj`, alive and unchanged while
        // this owner holds it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The bytes of an immutable object, shared rather than copied: a `bytes` (or a subclass),
/// or a `BytesView` returned by a read. `None` for anything else (which may change while
/// the Rust side holds it, so it must be copied).
pub fn shared_bytes(data: &Bound<'_, PyAny>) -> Option<Bytes> {
    if let Ok(v) = data.cast::<BytesView>() {
        return Some(v.get().data.clone());
    }
    let b = data.cast::<PyBytes>().ok()?;
    let s = b.as_bytes();
    Some(Bytes::from_owner(PyBytesOwner {
        ptr: s.as_ptr(),
        len: s.len(),
        _obj: b.clone().unbind(),
    }))
}

#[derive(Debug)]
#[pyclass(frozen, module = "s3dlio", name = "BytesView")]
pub struct BytesView {
    data: Bytes,
}

impl BytesView {
    pub fn new(data: Bytes) -> Self {
        Self { data }
    }
}

#[pymethods]
impl BytesView {
    /// # Safety
    /// Called by CPython with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("no buffer to fill"));
        }
        let data = &slf.get().data;
        let len = ffi::Py_ssize_t::try_from(data.len())
            .map_err(|_| PyBufferError::new_err("object too large for a buffer"))?;
        // Read-only (1): a request for a writable buffer fails with BufferError. The view
        // holds a reference to `slf`, which owns the bytes, so they outlive it.
        // SAFETY: `view` is valid per the protocol; the pointer and length describe memory
        // owned by `slf` and never mutated.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                data.as_ptr() as *mut std::ffi::c_void,
                len,
                1,
                flags,
            )
        };
        if rc == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    /// # Safety
    /// Called by CPython when a view is released; nothing to free (the view's reference to
    /// this object keeps the bytes alive until then).
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}

    fn __len__(&self) -> usize {
        self.data.len()
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.data)
    }

    /// Equal to any bytes-like object with the same bytes.
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        if let Ok(v) = other.cast::<BytesView>() {
            return v.get().data == self.data;
        }
        match PyBuffer::<u8>::get(other) {
            Ok(b) => b.to_vec(other.py()).is_ok_and(|v| v == self.data),
            Err(_) => false,
        }
    }

    fn __repr__(&self) -> String {
        format!("<s3dlio.BytesView of {} bytes>", self.data.len())
    }

    /// The bytes as a `bytes` object (a copy).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.data)
    }
}
