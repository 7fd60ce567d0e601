"""One Azure Blob operation with the Python SDK, timed the way `az_load` times ours.

    python az_peer.py --op put|get|list --container C --prefix P -n N -s SIZE -j J

`cargo xtask bench az` runs it once per measured run, with the account in
AZURE_STORAGE_CONNECTION_STRING. Keys are `{prefix}obj-{i:07}`, as `az_load` names them.
Only the operation phase is timed (imports, client creation and payloads come first). It
prints one JSON line, {"ops":..,"bytes":..,"wall_s":..,"cpu_s":..}: wall time
(perf_counter) and user + system CPU of this process (getrusage), checks counts and sizes,
and exits non-zero on any error.
"""

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from azure.storage.blob import BlobServiceClient


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--op", required=True, choices=["put", "get", "list"])
    p.add_argument("--container", required=True)
    p.add_argument("--prefix", default="")
    p.add_argument("-n", type=int, default=100)
    p.add_argument("-s", type=int, default=4096)
    p.add_argument("-j", type=int, default=16)
    a = p.parse_args()
    svc = BlobServiceClient.from_connection_string(
        os.environ["AZURE_STORAGE_CONNECTION_STRING"], max_single_put_size=16 * 1024 * 1024
    )
    cc = svc.get_container_client(a.container)
    key = lambda i: f"{a.prefix}obj-{i:07d}"
    bodies = [os.urandom(a.s) for _ in range(a.n)] if a.op == "put" else []

    def put(i):
        cc.upload_blob(key(i), bodies[i], overwrite=True)
        return len(bodies[i])

    def get(i):
        n = len(cc.download_blob(key(i), max_concurrency=1).readall())
        if n != a.s:
            raise RuntimeError(f"{key(i)}: {n} bytes, expected {a.s}")
        return n

    t0, c0 = time.perf_counter(), cpu_seconds()
    if a.op == "list":
        sizes = [b.size for b in cc.list_blobs(name_starts_with=a.prefix)]
    else:
        with ThreadPoolExecutor(a.j) as ex:
            sizes = list(ex.map(put if a.op == "put" else get, range(a.n)))
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    print(json.dumps({"ops": len(sizes), "bytes": sum(sizes), "wall_s": wall, "cpu_s": cpu}))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line for the report
        print(f"az_peer: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
        sys.exit(1)
