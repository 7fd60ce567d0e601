"""PyTorch datasets over any s3dlio URI (``file://``, ``s3://``, ``az://``, ``direct://``),
and ``state_dict`` checkpoints through the checkpoint store.

* ``S3IterableDataset(uri, loader_opts={})`` (the original's name) and
  ``ObjectStoreIterableDataset``: an ``IterableDataset`` of the objects under a prefix,
  read by the Rust loader. Each DataLoader worker of each distributed rank reads its own
  disjoint share, so every sample is seen once per epoch across ranks x workers; with
  ``shuffle`` the order comes from ``(seed, epoch)``: call ``set_epoch(n)`` each epoch.
* ``ObjectStoreMapDataset``: a map-style ``Dataset`` (``len``, ``ds[i]``); a DataLoader
  batch is read concurrently in one call (``__getitems__``). Shard it with a sampler
  (``DistributedSampler``), as any map-style dataset.
* ``save_state_dict`` / ``load_state_dict``: a ``state_dict`` (any object ``torch.save``
  takes) as a step checkpoint, one shard per rank; rank 0 commits once every rank has saved.

Samples are returned as 1-D tensors sharing the loader's buffer (``return_type="tensor"``,
read-only memory: ``writable=True`` copies), or as ``bytes``, ``BytesView`` (``"view"``) or a
file-like ``io.BytesIO`` (``"reader"``).
"""

import io
import os
import uuid
import warnings
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as _dist
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from . import _frameworks
from . import _s3dlio as _core

__all__ = [
    "ObjectStoreIterableDataset",
    "S3IterableDataset",
    "ObjectStoreMapDataset",
    "S3MapDataset",
    "save_state_dict",
    "load_state_dict",
]

RETURN_TYPES = ("tensor", "bytes", "view", "reader")

# Native datasets made by a parent process and inherited through fork: their clients
# belong to the parent's runtime, so a child never uses them, and never frees them either
# (as the native module does with its own state).
_inherited: List[Any] = []


def _dist_rank() -> Optional[Tuple[int, int]]:
    """(rank, world_size) of an initialised torch.distributed process group, else None."""
    if _dist.is_available() and _dist.is_initialized():
        return _dist.get_rank(), _dist.get_world_size()
    return None


def _process_rank() -> Tuple[int, int]:
    """This process's (rank, world_size): torch.distributed, else RANK/WORLD_SIZE, else (0, 1)."""
    return _dist_rank() or _frameworks.env_rank() or (0, 1)


class _Converter:
    """Turns a ``BytesView`` into what the dataset returns."""

    def __init__(self, return_type: str, dtype: torch.dtype, writable: bool) -> None:
        rt = str(return_type).lower()
        if rt not in RETURN_TYPES:
            raise ValueError(f"return_type {return_type!r}: expected one of {RETURN_TYPES}")
        self.return_type, self.dtype, self.writable = rt, dtype, writable

    def __call__(self, view: Any) -> Any:
        rt = self.return_type
        if rt == "view":
            return view
        if rt == "bytes":
            return bytes(view)
        if rt == "reader":
            return io.BytesIO(view)
        if len(view) == 0:
            return torch.empty(0, dtype=self.dtype)
        if self.writable:
            return torch.frombuffer(bytearray(view), dtype=self.dtype)
        with warnings.catch_warnings():
            # The memory is read-only and shared; torch warns that it cannot mark the
            # tensor so. Writing to it is the caller's error either way.
            warnings.filterwarnings("ignore", message="The given buffer is not writable")
            return torch.frombuffer(view, dtype=self.dtype)


class ObjectStoreIterableDataset(IterableDataset):
    """The objects under ``uri`` as an ``IterableDataset``, read by the Rust loader.

    ``loader_opts``: loader options by name (``batch_size`` is the loader's read batch,
    ``shuffle``, ``seed``, ``prefetch``, ``max_in_flight``, ``remainder``, ...; see
    ``create_async_loader``). ``rank``/``world_size``/``num_workers``/``worker_id`` are set
    from the process: the DataLoader worker (``get_worker_info()``) and the distributed rank
    (torch.distributed if initialised, else ``RANK``/``WORLD_SIZE``). ``enable_sharding=False``
    makes every rank read the whole dataset (still split among its workers).

    With the default ``remainder="pad"`` every rank gets the same number of samples (and so
    of batches): when the sample count does not divide by the world size, a few samples are
    repeated on the last ranks, as ``DistributedSampler`` does; ``"uneven"`` reads every
    sample exactly once instead.
    """

    def __init__(
        self,
        uri: str,
        loader_opts: Optional[Mapping[str, Any]] = None,
        *,
        return_type: str = "tensor",
        dtype: torch.dtype = torch.uint8,
        writable: bool = False,
        enable_sharding: Optional[bool] = None,
    ) -> None:
        super().__init__()
        self.uri = uri
        self.loader_opts: Dict[str, Any] = dict(loader_opts or {})
        self.epoch = int(self.loader_opts.get("epoch", 0))
        self._convert = _Converter(return_type, dtype, writable)
        self._shard_ranks = enable_sharding is not False
        # The rank as seen where the dataset was made; a spawned worker (where the process
        # group is not initialised) uses it. Refreshed when pickled for a worker.
        self._rank = _dist_rank()

    @classmethod
    def from_prefix(
        cls,
        uri: str,
        *,
        return_type: str = "tensor",
        dtype: torch.dtype = torch.uint8,
        writable: bool = False,
        enable_sharding: Optional[bool] = None,
        **options: Any,
    ) -> "ObjectStoreIterableDataset":
        """The original's keyword form: ``batch_size`` (default 1), ``drop_last``,
        ``shuffle``, ``seed``, ``prefetch``, ``num_workers`` (I/O concurrency there: it sets
        ``max_in_flight``) and any other loader option by name."""
        return cls(
            uri,
            _frameworks.prefix_options(**options),
            return_type=return_type,
            dtype=dtype,
            writable=writable,
            enable_sharding=enable_sharding,
        )

    def set_epoch(self, epoch: int) -> None:
        """Read epoch ``epoch`` next (its own shuffled order); call it before each epoch, on
        every rank, as with ``DistributedSampler``."""
        self.epoch = int(epoch)

    def _placement(self) -> Dict[str, Any]:
        info = get_worker_info()
        worker = (info.id, info.num_workers) if info is not None else (0, 1)
        if not self._shard_ranks:
            rank: Optional[Tuple[int, int]] = (0, 1)
        else:
            # None: the loader reads RANK/WORLD_SIZE itself.
            rank = _dist_rank() or self._rank
        return _frameworks.placed(self.loader_opts, epoch=self.epoch, rank=rank, worker=worker)

    def __iter__(self) -> Iterator[Any]:
        convert = self._convert
        for batch in _frameworks.batches(self.uri, self._placement()):
            for view in batch:
                yield convert(view)

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_rank"] = _dist_rank() or self._rank
        return state


class S3IterableDataset(ObjectStoreIterableDataset):
    """The original's name for :class:`ObjectStoreIterableDataset` (any URI, not only S3)."""


class ObjectStoreMapDataset(Dataset):
    """The objects under ``uri`` as a map-style ``Dataset``: ``len(ds)``, ``ds[i]`` (listing
    order), and ``__getitems__`` (a DataLoader batch read concurrently, at most the loader's
    ``max_in_flight`` at once). ``loader_opts``: ``max_in_flight``, ``request_timeout``,
    ``retries``, ``range_threshold``, ... Each process (DataLoader worker) opens its own
    native dataset on first use.
    """

    def __init__(
        self,
        uri: str,
        loader_opts: Optional[Mapping[str, Any]] = None,
        *,
        return_type: str = "tensor",
        dtype: torch.dtype = torch.uint8,
        writable: bool = False,
    ) -> None:
        super().__init__()
        self.uri = uri
        self.loader_opts: Dict[str, Any] = dict(loader_opts or {})
        self._convert = _Converter(return_type, dtype, writable)
        self._native: Any = None
        self._pid = -1
        self._len = len(self._dataset())

    @classmethod
    def from_prefix(cls, uri: str, **kwargs: Any) -> "ObjectStoreMapDataset":
        return cls(uri, **kwargs)

    def _dataset(self) -> Any:
        if self._pid != os.getpid():
            if self._native is not None:
                _inherited.append(self._native)
            self._native = _core.create_dataset(self.uri, self.loader_opts)
            self._pid = os.getpid()
        return self._native

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> Any:
        return self._convert(self._dataset()[index])

    def __getitems__(self, indices: Sequence[int]) -> List[Any]:
        return [self._convert(v) for v in self._dataset().get_many(list(indices))]

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_native"], state["_pid"] = None, -1
        return state


class S3MapDataset(ObjectStoreMapDataset):
    """The original's name for :class:`ObjectStoreMapDataset`."""


StoreOrUri = Union[str, "_core.PyCheckpointStore"]


class _ViewReader(io.RawIOBase):
    """A read-only, seekable file over a buffer, for ``torch.load``: ``io.BytesIO(view)``
    would copy the whole checkpoint first; this reads it where it lies."""

    def __init__(self, data: Any) -> None:
        super().__init__()
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        n = max(0, min(len(out), len(self._view) - self._pos))
        out[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n


def _store(store_or_uri: StoreOrUri, compression_level: Optional[int]) -> Any:
    if isinstance(store_or_uri, str):
        return _core.PyCheckpointStore(store_or_uri, compression_level=compression_level)
    if compression_level is not None:
        raise ValueError("compression_level is set on the PyCheckpointStore itself")
    return store_or_uri


def save_state_dict(
    store_or_uri: StoreOrUri,
    step: int,
    state_dict: Any,
    *,
    epoch: Optional[int] = None,
    rank: Optional[int] = None,
    world_size: Optional[int] = None,
    save_id: Optional[str] = None,
    user_meta: Optional[Dict[str, str]] = None,
    compression_level: Optional[int] = None,
    timeout: float = 600.0,
) -> Optional[Dict[str, Any]]:
    """Save ``state_dict`` (serialised with ``torch.save``) as this rank's shard of the
    checkpoint of ``step``.

    ``rank``/``world_size`` default to torch.distributed's (else ``RANK``/``WORLD_SIZE``, else
    a single process). With several ranks, every rank calls this with its own state (for
    example its FSDP shard, or only rank 0 something different): each stores its shard,
    rank 0 waits for all of them and commits the checkpoint atomically, and with an
    initialised process group every rank returns only once it is committed (a barrier).
    The save id all ranks share is broadcast from rank 0 (or made from the step and the
    launcher's run id without a process group; pass ``save_id`` to choose it).

    Returns the committed manifest (a dict) on rank 0, None on the others.
    """
    own_rank, own_world = _process_rank()
    rank = own_rank if rank is None else rank
    world_size = own_world if world_size is None else world_size
    group = _dist_rank() is not None and world_size > 1
    if save_id is None and group:
        ids = [f"step-{step}-{uuid.uuid4().hex[:16]}" if rank == 0 else None]
        _dist.broadcast_object_list(ids, src=0)
        save_id = ids[0]
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    writer = _store(store_or_uri, compression_level).writer(
        world_size, rank, save_id=save_id, timeout=timeout
    )
    # getvalue() hands over the BytesIO's own bytes object (CPython shares it rather than
    # copying it when nothing else views the buffer), and a bytes payload is sent from its
    # own memory: the serialized state is never copied.
    manifest = writer.save_shards(
        step, {"data": buf.getvalue()}, epoch=epoch, framework="pytorch", user_meta=user_meta
    )
    if group:
        _dist.barrier()
    return manifest


def load_state_dict(
    store_or_uri: StoreOrUri,
    step: Optional[int] = None,
    *,
    rank: Optional[int] = None,
    map_location: Any = "cpu",
    weights_only: bool = True,
) -> Any:
    """Load a state saved by :func:`save_state_dict` (or by ``PyCheckpointStore.save`` with
    ``torch.save`` bytes): checkpoint ``step``, by default the latest.

    ``rank`` defaults to this process's rank when the checkpoint has a shard per rank of
    this job, else 0 (a single-rank checkpoint is loaded by every rank). Every byte is
    verified against the checkpoint's CRC32C before ``torch.load`` sees it.
    """
    reader = _store(store_or_uri, None).reader()
    manifest = reader.manifest(step)
    if rank is None:
        own_rank, own_world = _process_rank()
        rank = own_rank if manifest["world_size"] == own_world else 0
    data = reader.load_shard(rank, "data", manifest["step"])
    return torch.load(_ViewReader(data), map_location=map_location, weights_only=weights_only)
