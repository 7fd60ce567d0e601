"""One phase of a peer's checkpoint save or load, timed the way `checkpoint_bench` times ours.

    python checkpoint_peer.py --tool torch --op save|load --uri /path/ckpt.pt --size BYTES
    python checkpoint_peer.py --tool s3torchconnector --op save|load --uri s3://b/k.pt \
        --size BYTES --endpoint URL --region R

`torch` is `torch.save` / `torch.load` on a local file; `s3torchconnector` is its
`S3Checkpoint` (writer and reader streams, on the AWS CRT) given the endpoint, path-style
addressing and the region; its credentials come from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY.

The checkpoint is a state_dict-like set of float32 tensors totalling SIZE bytes: an
embedding, then transformer layers (four attention projections, two MLP matrices, two
norms), the last tensor cut to fit. Save generates it before the clock starts; load checks
that every tensor came back at its shape (the byte total). Only the phase is timed. It prints
one JSON line, {"op":..,"bytes":..,"wall_s":..,"cpu_s":..}, CPU being user + system of this
process (getrusage), and exits non-zero on any error.
"""

import argparse
import json
import os
import resource
import sys
import time
import warnings

# torch warns on import when numpy is absent; the peers venv does without it.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def layout(size):
    """(name, shape) of float32 tensors whose bytes add up to `size` (rounded down to 4)."""
    h = 2048 if size >= 1 << 30 else 256
    left = size // 4
    out = []

    def add(name, shape):
        nonlocal left
        n = 1
        for d in shape:
            n *= d
        if n > left:
            shape, n = (left,), left
        if n:
            out.append((name, shape))
            left -= n
        return left > 0

    if not add("embed.weight", (8 * h, h)):
        return out
    i = 0
    while True:
        for suffix, shape in [
            ("attn.q.weight", (h, h)),
            ("attn.k.weight", (h, h)),
            ("attn.v.weight", (h, h)),
            ("attn.o.weight", (h, h)),
            ("mlp.up.weight", (4 * h, h)),
            ("mlp.down.weight", (h, 4 * h)),
            ("norm1.weight", (h,)),
            ("norm2.weight", (h,)),
        ]:
            if not add(f"layers.{i}.{suffix}", shape):
                return out
        i += 1


def state_dict(size):
    import torch

    g = torch.Generator().manual_seed(7)
    return {name: torch.rand(shape, generator=g) for name, shape in layout(size)}


def nbytes(sd):
    return sum(t.numel() * t.element_size() for t in sd.values())


def expected(size):
    n = 0
    for _, shape in layout(size):
        k = 4
        for d in shape:
            k *= d
        n += k
    return n


def checkpoint(a):
    from s3torchconnector import S3Checkpoint, S3ClientConfig

    # The CRT addresses buckets virtual-hosted style unless told otherwise; a local server
    # answers only path-style requests.
    return S3Checkpoint(
        region=a.region,
        endpoint=a.endpoint,
        s3client_config=S3ClientConfig(force_path_style=True),
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tool", required=True, choices=["torch", "s3torchconnector"])
    p.add_argument("--op", required=True, choices=["save", "load"])
    p.add_argument("--uri", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--endpoint")
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    a = p.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    ck = checkpoint(a) if a.tool == "s3torchconnector" else None
    want = expected(a.size)
    if a.op == "save":
        sd = state_dict(a.size)
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        if ck is None:
            torch.save(sd, a.uri)
        else:
            with ck.writer(a.uri) as w:
                torch.save(sd, w)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        got = nbytes(sd)
    else:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        if ck is None:
            sd = torch.load(a.uri, weights_only=True)
        else:
            with ck.reader(a.uri) as r:
                sd = torch.load(r, weights_only=True)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        got = nbytes(sd)
        shapes = {k: tuple(v.shape) for k, v in sd.items()}
        if shapes != {k: tuple(s) for k, s in layout(a.size)}:
            print("checkpoint_peer: the loaded tensors differ from the saved", file=sys.stderr)
            sys.exit(1)
    if got != want:
        print(f"checkpoint_peer: {got} bytes of tensors, expected {want}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"op": a.op, "bytes": got, "wall_s": wall, "cpu_s": cpu}), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        import traceback

        traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"checkpoint_peer: {type(e).__name__}: {first}", file=sys.stderr)
        sys.exit(1)
    sys.stderr.flush()
    # Done and checked: skip the teardown of the CRT's threads.
    os._exit(0)
