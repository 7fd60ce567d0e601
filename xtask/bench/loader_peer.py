"""One pass of a peer's data loader over a prefix, timed the way `loader_bench` times ours.

    python loader_peer.py --tool s3dlio --uri file:///data/ -n N -s SIZE [-b BATCH]

`s3dlio` is the original s3dlio wheel's `create_async_loader` (in its own virtualenv; it
yields one object per item whatever the batch size, so samples are counted, not batches).
Only the iteration is timed: imports and loader creation come first. It prints one JSON
line, {"samples":..,"bytes":..,"wall_s":..,"cpu_s":..}, and exits non-zero if it did not
see exactly N samples of SIZE bytes.
"""

import argparse
import asyncio
import json
import resource
import sys
import time


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sizes(item):
    # A batch (list of samples) or one sample (bytes-like).
    if isinstance(item, (list, tuple)):
        return [len(x) for x in item]
    return [len(item)]


def original(uri, batch):
    import s3dlio

    loader = s3dlio.create_async_loader(uri, {"batch_size": batch})
    seen = []

    async def run():
        async for item in loader:
            seen.extend(sizes(item))

    start, cpu0 = time.perf_counter(), cpu_seconds()
    asyncio.run(run())
    return seen, time.perf_counter() - start, cpu_seconds() - cpu0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tool", required=True, choices=["s3dlio"])
    p.add_argument("--uri", required=True)
    p.add_argument("-n", type=int, required=True)
    p.add_argument("-s", type=int, required=True)
    p.add_argument("-b", type=int, default=32)
    a = p.parse_args()
    seen, wall, cpu = original(a.uri, a.b)
    if len(seen) != a.n or any(s != a.s for s in seen):
        print(f"saw {len(seen)} samples (sizes {sorted(set(seen))}), expected {a.n} of {a.s}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"samples": len(seen), "bytes": sum(seen), "wall_s": wall, "cpu_s": cpu}))


if __name__ == "__main__":
    main()
