"""One pass of a peer's data loader over a prefix, timed the way `loader_bench` times ours.

    python loader_peer.py --tool s3dlio --uri file:///data/ -n N -s SIZE [-b BATCH]
    python loader_peer.py --tool s3torchconnector --uri s3://bucket/prefix/ -n N -s SIZE \
        [-b BATCH] --endpoint URL --region R [--workers W]

`s3dlio` is the original s3dlio wheel's `create_async_loader` (in its own virtualenv; it
yields one object per item whatever the batch size, so samples are counted, not batches);
for s3:// it takes the endpoint and keys from the environment (AWS_ENDPOINT_URL, ...).
`s3torchconnector` is its `S3IterableDataset.from_prefix` (given the endpoint, the region and
path-style addressing; keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), each object
read whole by the dataset's transform, in a `torch.utils.data.DataLoader` of W worker
processes (sharded across them by the dataset) or in the main process (W = 0).
Only the iteration is timed: imports and loader creation come first. It prints one JSON
line, {"samples":..,"bytes":..,"wall_s":..,"cpu_s":..,"latency_ns":[[ns, count], ...]}, and
exits non-zero if it did not see exactly N samples of SIZE bytes. The latencies are per
batch: the time from one batch's delivery to the next one's (the first from the start), as
`loader_bench` measures ours; the original's loader yields one sample at a time, so its
batch is BATCH of them (the last one shorter).
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import warnings

# torch warns on import when numpy is absent; the peers venv does without it.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")


def cpu_seconds():
    # This process and its waited-for children (DataLoader workers).
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


class Batches:
    """When each batch arrived: the gaps between deliveries, in nanoseconds."""

    def __init__(self):
        self.last = time.perf_counter_ns()
        self.ns = []

    def arrived(self):
        now = time.perf_counter_ns()
        self.ns.append(now - self.last)
        self.last = now

    def pairs(self):
        counts = {}
        for v in self.ns:
            counts[v] = counts.get(v, 0) + 1
        return sorted([v, c] for v, c in counts.items())


def sizes(item):
    # A batch (list of samples) or one sample (bytes-like).
    if isinstance(item, (list, tuple)):
        return [len(x) for x in item]
    return [len(item)]


def original(uri, batch):
    import s3dlio

    loader = s3dlio.create_async_loader(uri, {"batch_size": batch})
    seen = []
    batches = Batches()

    async def run():
        pending = 0
        async for item in loader:
            got = sizes(item)
            seen.extend(got)
            pending += len(got)
            if pending >= batch:
                batches.arrived()
                pending = 0
        if pending:
            batches.arrived()

    start, cpu0 = time.perf_counter(), cpu_seconds()
    batches.last = time.perf_counter_ns()
    asyncio.run(run())
    return seen, time.perf_counter() - start, cpu_seconds() - cpu0, batches


def read_all(obj):
    # S3IterableDataset yields readers; the sample is the object's bytes.
    return obj.read()


def s3torch(a):
    from s3torchconnector import S3ClientConfig, S3IterableDataset
    from torch.utils.data import DataLoader

    ds = S3IterableDataset.from_prefix(
        a.uri,
        region=a.region,
        endpoint=a.endpoint,
        transform=read_all,
        s3client_config=S3ClientConfig(force_path_style=True),
        enable_sharding=a.workers > 0,
    )
    loader = DataLoader(ds, batch_size=a.b, num_workers=a.workers, collate_fn=list)
    seen = []
    batches = Batches()
    start, cpu0 = time.perf_counter(), cpu_seconds()
    batches.last = time.perf_counter_ns()
    for batch in loader:
        batches.arrived()
        seen.extend(sizes(batch))
    # Worker processes' CPU counts too once they are joined (the iterator ends them).
    return seen, time.perf_counter() - start, cpu_seconds() - cpu0, batches


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tool", required=True, choices=["s3dlio", "s3torchconnector"])
    p.add_argument("--uri", required=True)
    p.add_argument("-n", type=int, required=True)
    p.add_argument("-s", type=int, required=True)
    p.add_argument("-b", type=int, default=32)
    p.add_argument("--endpoint")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--workers", type=int, default=0)
    a = p.parse_args()
    if a.tool == "s3dlio":
        seen, wall, cpu, batches = original(a.uri, a.b)
    else:
        seen, wall, cpu, batches = s3torch(a)
    if len(seen) != a.n or any(s != a.s for s in seen):
        print(f"saw {len(seen)} samples (sizes {sorted(set(seen))}), expected {a.n} of {a.s}", file=sys.stderr)
        sys.exit(1)
    line = {"samples": len(seen), "bytes": sum(seen), "wall_s": wall, "cpu_s": cpu}
    line["latency_ns"] = batches.pairs()
    print(json.dumps(line))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Done and checked: skip the interpreter's teardown, where native runtimes' threads
    # (the CRT's, Tokio's) may outlive it; that is not what is measured.
    os._exit(0)
