"""s3dlio: fast object storage I/O for AI/ML from Python.

One API over S3 (and S3-compatible stores), local files (``file://`` or plain paths) and the
other backends the build includes. Every call releases the GIL; results of ``get`` are
zero-copy ``BytesView`` buffers (``memoryview``, ``numpy.frombuffer`` and
``torch.frombuffer`` share their memory). Each function has an ``_async`` twin for asyncio.
"""

import asyncio as _asyncio
import functools as _functools

from ._s3dlio import (  # noqa: F401  (re-exported API)
    AlreadyExistsError,
    BytesView,
    InterruptedError,
    PyAsyncLoader,
    PyBatches,
    PyCheckpointStore,
    PyDataset,
    PyObjectWriter,
    PyWriterOptions,
    NotSupportedError,
    PreconditionFailedError,
    RateLimitedError,
    S3dlioError,
    TimeoutError,
    __version__,
    create_async_loader,
    create_azure_writer,
    create_bucket,
    create_dataset,
    create_direct_filesystem_writer,
    create_filesystem_writer,
    create_s3_writer,
    create_tfrecord_index,
    delete,
    delete_bucket,
    download,
    exists,
    finalize_op_log,
    get,
    get_many,
    get_range,
    index_tfrecord,
    init_op_log,
    is_op_log_active,
    list,
    put,
    put_bytes,
    put_many,
    read_tfrecord_index,
    stat,
    upload,
)


def _async_twin(fn):
    # The native call releases the GIL, so a worker thread runs it truly concurrently with
    # the event loop and with other calls.
    @_functools.wraps(fn)
    async def twin(*args, **kwargs):
        return await _asyncio.to_thread(fn, *args, **kwargs)

    twin.__name__ = twin.__qualname__ = fn.__name__ + "_async"
    twin.__doc__ = f"Awaitable form of :func:`{fn.__name__}`."
    return twin


get_async = _async_twin(get)
get_range_async = _async_twin(get_range)
get_many_async = _async_twin(get_many)
put_bytes_async = _async_twin(put_bytes)
put_many_async = _async_twin(put_many)
list_async = _async_twin(list)
stat_async = _async_twin(stat)
exists_async = _async_twin(exists)
delete_async = _async_twin(delete)
upload_async = _async_twin(upload)
download_async = _async_twin(download)
create_bucket_async = _async_twin(create_bucket)
delete_bucket_async = _async_twin(delete_bucket)
put_async = _async_twin(put)
