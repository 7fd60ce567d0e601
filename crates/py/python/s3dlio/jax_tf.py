"""JAX and TensorFlow helpers over any s3dlio URI, fed by the Rust loader.

* ``JaxIterable(uri, loader_opts)``: iterates numpy arrays, each a zero-copy view of a
  sample's bytes (``np.frombuffer``: read-only; ``writable=True`` copies); with
  ``batched=True``, one array per loader batch (``(batch, length)`` when the samples have
  one length, which is one copy into a contiguous block; else a list of views). Hand them
  to ``jax.numpy.asarray`` / ``jax.device_put``. numpy is all it needs: JAX itself is not
  imported.
* ``make_tf_dataset(uri, ...)``: a ``tf.data.Dataset`` (``from_generator`` with an
  ``output_signature``) of ``uint8`` vectors, or ``(batch, length)`` matrices with
  ``batched=True``; each pass over it (``repeat``) reads the next epoch.

Sharding: ``rank``/``world_size`` in the options if given, else the JAX process
(``jax.process_index()`` of ``jax.process_count()`` when JAX is imported and runs several
processes), else ``RANK``/``WORLD_SIZE``; each shard reads its own disjoint share. With
``shuffle``, the order comes from ``(seed, epoch)``: ``set_epoch(n)`` picks the epoch.
"""

from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np

from . import _frameworks

__all__ = ["JaxIterable", "S3JaxIterable", "make_tf_dataset"]

Batch = Union[np.ndarray, List[np.ndarray]]


def _array(view: Any, dtype: Any, writable: bool) -> np.ndarray:
    return np.frombuffer(bytearray(view) if writable else view, dtype=dtype)


def _stack(arrays: List[np.ndarray]) -> Batch:
    """One ``(batch, length)`` array when every sample has one length, else the list."""
    if arrays and all(a.shape == arrays[0].shape for a in arrays):
        return np.stack(arrays)
    return arrays


class JaxIterable:
    """Numpy arrays of the samples under ``uri`` (see the module's docs). ``transform`` is
    applied to each array (or batch) before it is yielded."""

    def __init__(
        self,
        uri: str,
        loader_opts: Optional[Mapping[str, Any]] = None,
        *,
        transform: Optional[Callable[[Any], Any]] = None,
        writable: bool = False,
        dtype: Any = np.uint8,
        batched: bool = False,
    ) -> None:
        self.uri = uri
        self.loader_opts: Dict[str, Any] = dict(loader_opts or {})
        self.epoch = int(self.loader_opts.get("epoch", 0))
        self.transform, self.writable, self.dtype = transform, writable, dtype
        self.batched = batched

    @classmethod
    def from_prefix(
        cls,
        uri: str,
        *,
        transform: Optional[Callable[[Any], Any]] = None,
        writable: bool = False,
        dtype: Any = np.uint8,
        batched: bool = False,
        **options: Any,
    ) -> "JaxIterable":
        """The original's keyword form: ``batch_size`` (default 1), ``drop_last``,
        ``shuffle``, ``seed``, ``prefetch``, ``num_workers`` (I/O concurrency there: it sets
        ``max_in_flight``) and any other loader option by name."""
        opts = _frameworks.prefix_options(**options)
        return cls(uri, opts, transform=transform, writable=writable, dtype=dtype, batched=batched)

    def set_epoch(self, epoch: int) -> None:
        """Read epoch ``epoch`` next (its own shuffled order)."""
        self.epoch = int(epoch)

    def _options(self, epoch: int) -> Dict[str, Any]:
        opts = self.loader_opts
        rank: Optional[Tuple[int, int]] = None
        if "rank" in opts or "world_size" in opts:
            rank = (int(opts.get("rank", 0)), int(opts.get("world_size", 1)))
        else:
            rank = _frameworks.jax_rank()
        return _frameworks.placed(opts, epoch=epoch, rank=rank)

    def epoch_batches(self, epoch: int) -> Iterator[Batch]:
        """The arrays of epoch ``epoch``, as ``__iter__`` yields them."""
        dtype, writable, xfm = self.dtype, self.writable, self.transform
        for views in _frameworks.batches(self.uri, self._options(epoch)):
            arrays = [_array(v, dtype, writable) for v in views]
            if self.batched:
                out = _stack(arrays)
                yield xfm(out) if xfm is not None else out
            else:
                for a in arrays:
                    yield xfm(a) if xfm is not None else a

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch_batches(self.epoch)


class S3JaxIterable(JaxIterable):
    """The original's name for :class:`JaxIterable` (any URI, not only S3)."""


def make_tf_dataset(
    uri: str,
    *,
    map_fn: Optional[Callable[..., Any]] = None,
    writable: bool = False,
    batched: bool = False,
    epoch: int = 0,
    **options: Any,
) -> Any:
    """A ``tf.data.Dataset`` of the objects under ``uri``: ``uint8`` vectors (shape
    ``(None,)``), or with ``batched=True`` the loader's batches as ``(None, None)`` matrices
    (samples of one length per batch). The first pass reads epoch ``epoch``, each further
    pass (``ds.repeat()``) the next. ``map_fn`` is applied with ``Dataset.map``. Loader
    options as ``JaxIterable.from_prefix`` takes them (``batch_size``, ``shuffle``, ``seed``,
    ``prefetch``, ``num_workers``, ...)."""
    import tensorflow as tf

    source = JaxIterable.from_prefix(uri, writable=writable, batched=batched, **options)
    passes = [epoch]

    def generate() -> Iterator[Batch]:
        current = passes[0]
        passes[0] += 1
        yield from source.epoch_batches(current)

    shape = (None, None) if batched else (None,)
    ds = tf.data.Dataset.from_generator(
        generate, output_signature=tf.TensorSpec(shape=shape, dtype=tf.uint8)
    )
    if map_fn is not None:
        ds = ds.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE)
    return ds
