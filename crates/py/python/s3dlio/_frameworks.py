"""What the framework helpers (``s3dlio.torch``, ``s3dlio.jax_tf``) share: loader options
from the original's keyword arguments, and an epoch of one shard's batches from the native
loader. The sharding, shuffling and reading all happen in Rust (``create_async_loader``);
this only decides which shard a process asks for.
"""

import os
import sys
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from . import _s3dlio as _core

# Options the helpers set themselves from the framework's view of the process (DataLoader
# worker, distributed rank, epoch); a caller's value for them is replaced.
PLACEMENT = ("rank", "world_size", "num_workers", "worker_id")


def prefix_options(num_workers: Optional[int] = None, **options: Any) -> Dict[str, Any]:
    """Loader options from the original's ``from_prefix`` keywords (``batch_size=1``,
    ``drop_last=False``, ``shuffle=False``, ``seed=0``, ``prefetch=8`` by default there, and
    any other loader option by name: an unknown one is a ValueError from the loader). Its
    ``num_workers`` meant I/O concurrency inside the loader: it becomes ``max_in_flight``
    (DataLoader workers are found by the helpers themselves)."""
    opts: Dict[str, Any] = {"batch_size": 1, "prefetch": 8}
    if num_workers:
        opts["max_in_flight"] = max(int(num_workers), 1)
    opts.update(options)
    return opts


def env_rank() -> Optional[Tuple[int, int]]:
    """(rank, world_size) from ``RANK``/``WORLD_SIZE``, or None when they are not set."""
    if "RANK" in os.environ or "WORLD_SIZE" in os.environ:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    return None


def jax_rank() -> Optional[Tuple[int, int]]:
    """(process_index, process_count) of a multi-process JAX job, if JAX is in use."""
    jax = sys.modules.get("jax")
    if jax is None:
        return None
    count = jax.process_count()
    return (jax.process_index(), count) if count > 1 else None


def placed(
    loader_opts: Mapping[str, Any],
    *,
    epoch: int,
    rank: Optional[Tuple[int, int]],
    worker: Tuple[int, int] = (0, 1),
) -> Dict[str, Any]:
    """The loader options for one shard: ``rank`` is (rank, world_size), or None to let the
    loader read ``RANK``/``WORLD_SIZE``; ``worker`` is (worker_id, num_workers)."""
    opts = {k: v for k, v in loader_opts.items() if k not in PLACEMENT}
    opts["epoch"] = epoch
    if rank is not None:
        opts["rank"], opts["world_size"] = rank
    opts["worker_id"], opts["num_workers"] = worker
    return opts


def batches(uri: str, opts: Dict[str, Any]) -> Iterator[List[Any]]:
    """One epoch of the shard ``opts`` names, as lists of ``BytesView`` (zero copy)."""
    yield from _core.create_async_loader(uri, opts)
