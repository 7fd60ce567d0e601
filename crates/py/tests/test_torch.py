"""s3dlio.torch: datasets in real DataLoaders (workers under fork, spawn and forkserver;
DDP ranks under torchrun with gloo) and state_dict checkpoints, on file:// and S3."""

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections import Counter

import numpy as np
import pytest
import s3dlio
from conftest import PEAK_RSS, need, numbered, numbers_of

torch = need("torch")
import s3dlio.torch as st  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

N, SIZE = 48, 64


def sample(i):
    return numbered(i, SIZE)


def put_samples(base):
    s3dlio.put_many([(f"{base}ds/obj-{i:03}", sample(i)) for i in range(N)])
    return base + "ds/"


@pytest.fixture
def objects(base):
    return put_samples(base)


def ids(rows):
    return numbers_of(rows)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_dataloader_workers_see_every_sample_once(s3_base, method):
    objects = put_samples(s3_base)
    # The parent has used the module (its runtime and clients exist) before the workers start.
    s3dlio.list(objects)
    ds = st.S3IterableDataset(objects, loader_opts={"batch_size": 4, "shuffle": True, "seed": 5})
    dl = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context=method)
    batches = list(dl)
    assert all(b.shape == (4, SIZE) and b.dtype == torch.uint8 for b in batches)
    seen = ids(row for b in batches for row in b)
    assert sorted(seen) == list(range(N)), "each sample exactly once across the workers"
    assert seen != list(range(N)), "shuffled"


def test_azure_and_direct_io_prefixes(az_base):
    objects = put_samples(az_base)
    dl = DataLoader(st.S3IterableDataset(objects, {"batch_size": 4}), batch_size=4, num_workers=2)
    assert sorted(ids(row for b in dl for row in b)) == list(range(N))
    assert ids(st.ObjectStoreMapDataset(objects).__getitems__([3, 1])) == [3, 1]
    # direct:// (O_DIRECT) on a disk file system: S3DLIO_TEST_DIRECT_DIR, else the build's
    # target directory (/tmp may be a tmpfs, which refuses O_DIRECT).
    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "target")
    root = os.environ.get("S3DLIO_TEST_DIRECT_DIR") or os.path.join(target, "tmp")
    os.makedirs(root, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as d:
        direct = put_samples(f"direct://{os.path.abspath(d)}/")
        assert ids(st.S3IterableDataset(direct, {"shuffle": True})) != list(range(N))
        assert sorted(ids(st.ObjectStoreMapDataset(direct))) == list(range(N))


def test_epochs_reshuffle_deterministically_and_ranks_split(objects, monkeypatch):
    ds = st.ObjectStoreIterableDataset.from_prefix(objects, shuffle=True, seed=11, batch_size=5)
    e0 = ids(ds)
    ds.set_epoch(1)
    e1 = ids(ds)
    ds.set_epoch(0)
    assert ids(ds) == e0, "the same seed and epoch give the same order"
    assert sorted(e0) == sorted(e1) == list(range(N)) and e0 != e1
    # Ranks from RANK/WORLD_SIZE (no process group here): disjoint shares of equal size.
    shares = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        shares.append(ids(st.S3IterableDataset(objects, {"shuffle": True, "seed": 2})))
    assert [len(s) for s in shares] == [N // 3] * 3
    assert sorted(sum(shares, [])) == list(range(N))
    everything = ids(st.S3IterableDataset(objects, enable_sharding=False))
    assert everything == list(range(N)), "enable_sharding=False: every rank reads all"


def test_return_types_and_dtypes(base):
    floats = np.arange(16, dtype=np.float32)
    s3dlio.put_bytes(base + "f/a", floats.tobytes())
    s3dlio.put_bytes(base + "f/b", b"")
    got = list(st.S3IterableDataset(base + "f/", dtype=torch.float32))
    assert torch.equal(got[0], torch.from_numpy(floats)) and got[1].numel() == 0
    assert [type(x) for x in st.S3IterableDataset(base + "f/", return_type="bytes")] == [bytes] * 2
    views = list(st.S3IterableDataset(base + "f/", return_type="view"))
    assert isinstance(views[0], s3dlio.BytesView) and views[0] == floats.tobytes()
    reader = next(iter(st.S3IterableDataset(base + "f/", return_type="reader")))
    assert reader.read(8) == floats.tobytes()[:8]
    writable = next(iter(st.S3IterableDataset(base + "f/", writable=True)))
    writable[0] = 7  # its own copy
    with pytest.raises(ValueError, match="return_type"):
        st.S3IterableDataset(base, return_type="numpy")
    with pytest.raises(ValueError, match="unknown loader option"):
        list(st.S3IterableDataset(base + "f/", {"pin_memory": True}))


def test_tensors_share_the_loaders_memory(base):
    s3dlio.put_bytes(base + "z", bytes(range(256)) * 64)
    view = s3dlio.get(base + "z")
    as_numpy = np.frombuffer(view, dtype=np.uint8)
    t = st._Converter("tensor", torch.uint8, False)(view)
    assert t.data_ptr() == as_numpy.ctypes.data, "torch.frombuffer: no copy"
    copy = st._Converter("tensor", torch.uint8, True)(view)
    assert copy.data_ptr() != as_numpy.ctypes.data and torch.equal(copy, t)
    del view, as_numpy
    assert bytes(t[:4].numpy()) == b"\x00\x01\x02\x03", "the tensor keeps the buffer alive"


def test_map_dataset_in_a_dataloader(objects):
    ds = st.ObjectStoreMapDataset(objects)
    assert len(ds) == N
    assert ids([ds[0], ds[-1]]) == [0, N - 1]
    assert ids(ds.__getitems__([5, 2, -1])) == [5, 2, N - 1]
    with pytest.raises(IndexError):
        ds[N]
    dl = DataLoader(ds, batch_size=5, shuffle=True, num_workers=2)
    seen = ids(row for b in dl for row in b)
    assert sorted(seen) == list(range(N)) and seen != list(range(N))
    if not objects.startswith("s3://"):
        return  # spawned workers take seconds to start: once is enough, on S3
    spawned = DataLoader(
        st.ObjectStoreMapDataset.from_prefix(objects, return_type="bytes"),
        batch_size=8,
        num_workers=2,
        multiprocessing_context="spawn",
    )
    assert sorted(ids(x for b in spawned for x in b)) == list(range(N))


def state(seed):
    g = torch.Generator().manual_seed(seed)
    return {
        "layer.weight": torch.randn(33, 17, generator=g),
        "layer.bias": torch.randn(17, generator=g).to(torch.bfloat16),
        "steps": torch.arange(seed, seed + 5, dtype=torch.int64),
        "mask": torch.rand(9, generator=g) > 0.5,
        "nested": {"lr": 0.1 * seed, "momentum": [torch.full((3,), float(seed))]},
    }


def same(a, b):
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_state_dict_round_trips_exactly(base):
    uri = base + "ck/"
    m = st.save_state_dict(uri, 10, state(1), epoch=2, user_meta={"lr": "0.1"})
    assert m["step"] == 10 and m["world_size"] == 1 and m["framework"] == "pytorch"
    st.save_state_dict(uri, 20, state(2), compression_level=3)
    assert same(st.load_state_dict(uri), state(2)), "the latest"
    assert same(st.load_state_dict(uri, 10), state(1))
    store = s3dlio.PyCheckpointStore(uri)
    assert [c["step"] for c in store.list_checkpoints()] == [10, 20]
    assert same(st.load_state_dict(store, 10), state(1)), "a store works as well as a URI"
    with pytest.raises(FileNotFoundError):
        st.load_state_dict(base + "empty/")


def test_state_dicts_copy_nothing_but_the_serialized_bytes(tmp_path):
    # Fresh interpreters, each measuring one call's peak RSS: a 128 MiB tensor costs its
    # serialized bytes once more while saved (torch.save into memory), not twice; loaded,
    # the checkpoint's bytes and the tensor, not a third copy for torch.load to read.
    save = PEAK_RSS + """
import sys, torch, s3dlio.torch as st
state = {"w": torch.arange(32 << 20, dtype=torch.float32)}
st.save_state_dict(sys.argv[1], 1, {"w": torch.ones(4)})
r0 = start_peak()
st.save_state_dict(sys.argv[1], 2, state)
print(peak() - r0)
"""
    load = PEAK_RSS + """
import sys, torch, s3dlio.torch as st
st.load_state_dict(sys.argv[1], 1)
r0 = start_peak()
w = st.load_state_dict(sys.argv[1], 2)["w"]
grown = peak() - r0
assert torch.equal(w, torch.arange(32 << 20, dtype=torch.float32))
print(grown)
"""
    uri = (tmp_path / "ck").as_uri() + "/"
    for code, what, most in [(save, "saving", 200), (load, "loading", 320)]:
        out = subprocess.run(
            [sys.executable, "-c", code, uri], capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr
        growth = int(out.stdout.split()[-1])
        assert 100 < growth < most, f"{what} a 128 MiB state raised the peak RSS by {growth} MiB"


def test_checkpoint_writer_and_reader_across_ranks(base):
    store = s3dlio.PyCheckpointStore(base + "dist/")
    results = {}

    def rank(r):
        w = store.writer(2, r, save_id="job-1-step-5")
        results[r] = w.save_shards(5, {"model": b"model %d" % r, "optim": b"o" * (r + 1)}, epoch=1)

    t = threading.Thread(target=rank, args=(0,))
    t.start()  # rank 0 waits for rank 1's shards before it commits
    rank(1)
    t.join(60)
    assert results[1] is None and results[0]["world_size"] == 2
    assert sorted((s["rank"], s["name"]) for s in results[0]["shard_info"]) == [
        (0, "model"), (0, "optim"), (1, "model"), (1, "optim")
    ]
    reader = store.reader()
    assert reader.load_latest_manifest()["global_step"] == 5
    assert reader.load_shard(1, "model") == b"model 1"
    assert reader.load_rank(1) == {"model": b"model 1", "optim": b"oo"}
    with pytest.raises(s3dlio.AlreadyExistsError, match="already committed"):
        store.writer(1, 0).save_shards(5, [("model", b"again")])
    # The original's form, one shard "data" per rank; a missing rank times out, naming it.
    with pytest.raises(s3dlio.TimeoutError, match=r"\[1\]"):
        store.writer(2, 0, timeout=0.5).save_distributed_shard(6, 1, "pytorch", b"only rank 0")
    with pytest.raises(ValueError):
        store.writer(2, 2)


GLOO = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")


def torchrun(tmp_path, script, *args):
    """Run `script` on 2 ranks (CPU, gloo) and return each rank's JSON result."""
    path = tmp_path / "job.py"
    path.write_text(script)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    r = subprocess.run(
        cmd + [str(path), str(tmp_path), *args], env=GLOO, capture_output=True, timeout=300
    )
    assert r.returncode == 0, r.stdout.decode()[-3000:] + r.stderr.decode()[-6000:]
    return [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]


DDP_LOADER = """
import json, sys
import torch, torch.distributed as dist
from torch.utils.data import DataLoader
from s3dlio.torch import S3IterableDataset

dist.init_process_group("gloo")
out, prefix = sys.argv[1], sys.argv[2]
ds = S3IterableDataset(prefix, loader_opts={"batch_size": 4, "shuffle": True, "seed": 9})
result = {}
for epoch in range(2):
    ds.set_epoch(epoch)
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    rows = [bytes(r.numpy()) for b in batches for r in b]
    result[epoch] = {"batches": len(batches), "samples": [r.decode() for r in rows]}
json.dump({"rank": dist.get_rank(), "result": result}, open(f"{out}/rank{dist.get_rank()}.json", "w"))
dist.barrier()
dist.destroy_process_group()
"""


def test_ddp_ranks_under_torchrun_share_each_epoch(s3_base, tmp_path):
    # On S3; file:// under torchrun is test_examples.py's training loop.
    ranks = torchrun(tmp_path, DDP_LOADER, put_samples(s3_base))
    for epoch in ("0", "1"):
        per_rank = [r["result"][epoch] for r in ranks]
        assert per_rank[0]["batches"] == per_rank[1]["batches"] == N // 2 // 4
        seen = Counter(s.encode() for r in per_rank for s in r["samples"])
        assert sorted(seen) == sorted(sample(i) for i in range(N))
        assert set(seen.values()) == {1}, "every sample exactly once across ranks x workers"
    orders = [r["result"][e]["samples"] for r in ranks for e in ("0", "1")]
    assert orders[0] != orders[1], "set_epoch reshuffles"


DDP_CHECKPOINT = """
import json, sys
import torch, torch.distributed as dist
import s3dlio
import s3dlio.torch as st
sys.path.insert(0, sys.argv[3])
from test_torch import state, same

dist.init_process_group("gloo")
out, uri, rank = sys.argv[1], sys.argv[2], dist.get_rank()
m = st.save_state_dict(uri, 100, state(rank), epoch=3)
# Returned on every rank only once rank 0 has committed.
store = s3dlio.PyCheckpointStore(uri)
manifest = store.reader().manifest()
checks = {
    "rank0_manifest": m is not None and m["world_size"] == 2 if rank == 0 else m is None,
    "committed": manifest["step"] == 100 and manifest["world_size"] == 2,
    "own": same(st.load_state_dict(uri), state(rank)),
    "other": same(st.load_state_dict(uri, rank=1 - rank), state(1 - rank)),
}
# The original's form: PyCheckpointStore.writer(world_size, rank) and reader().
w = store.writer(2, rank, save_id="step-200-original-form")
w.save_distributed_shard(200, 4, "pytorch", b"shard of rank %d" % rank)
dist.barrier()
r = store.reader()
checks["original_form"] = (
    r.load_latest_manifest()["global_step"] == 200
    and r.load_shard(1 - rank) == b"shard of rank %d" % (1 - rank)
)
json.dump(checks, open(f"{out}/rank{rank}.json", "w"))
dist.barrier()
dist.destroy_process_group()
"""


def test_distributed_checkpoint_under_torchrun(s3_base, tmp_path):
    tests = os.path.dirname(__file__)
    ranks = torchrun(tmp_path, DDP_CHECKPOINT, s3_base + "ddp-ck/", tests)
    assert ranks == [dict.fromkeys(ranks[0], True)] * 2, ranks
