"""The object API on file:// and on a real S3 server, against the installed wheel."""

import asyncio
import os
import subprocess
import sys

import numpy as np
import pytest
import s3dlio
from conftest import PEAK_RSS, need


def test_put_and_get_round_trip(base):
    uri = base + "a/b.bin"
    data = os.urandom(100_000)
    s3dlio.put_bytes(uri, data)
    got = s3dlio.get(uri)
    assert isinstance(got, s3dlio.BytesView)
    assert len(got) == len(data)
    assert got == data
    assert bytes(got) == data
    assert got.to_bytes() == data


def test_put_bytes_takes_any_buffer(base):
    s3dlio.put_bytes(base + "ba", bytearray(b"abc"))
    s3dlio.put_bytes(base + "mv", memoryview(b"xabcx")[1:4])
    s3dlio.put_bytes(base + "np", np.arange(3, dtype=np.uint8))
    assert s3dlio.get(base + "ba") == b"abc"
    assert s3dlio.get(base + "mv") == b"abc"
    assert s3dlio.get(base + "np") == bytes([0, 1, 2])
    with pytest.raises(ValueError):
        s3dlio.put_bytes(base + "bad", 12345)


def test_bytes_payloads_are_sent_without_a_copy(tmp_path):
    # A fresh interpreter measuring each call's peak RSS: a 256 MiB `bytes` payload (and a
    # BytesView read back) written by put_bytes and put_many; a copy of either would raise
    # the peak by 256 MiB or more. The references taken are all given back once the calls
    # return.
    code = PEAK_RSS + """
import sys, s3dlio
base = sys.argv[1]
s3dlio.put_bytes(base + "warm-up", b"x")
data = b"\\x5a" * (256 << 20)
refs = sys.getrefcount(data)
r0 = start_peak()
s3dlio.put_bytes(base + "one", data)
s3dlio.put_many([(base + "m0", data), (base + "m1", data)], max_in_flight=2)
puts = peak() - r0
view = s3dlio.get(base + "one")
r1 = start_peak()
s3dlio.put_bytes(base + "again", view)
s3dlio.put_many([(base + "v0", view), (base + "v1", view)])
print(puts, peak() - r1, sys.getrefcount(data) - refs)
"""
    base = (tmp_path / "out").as_uri() + "/"
    out = subprocess.run(
        [sys.executable, "-c", code, base], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    put_growth, view_growth, leaked = (int(x) for x in out.stdout.split())
    assert put_growth < 64, f"peak RSS rose {put_growth} MiB writing bytes"
    assert view_growth < 64, f"peak RSS rose {view_growth} MiB writing a view"
    assert leaked == 0, f"{leaked} references to the payload kept after the calls"
    for name in ["one", "m0", "m1", "again", "v0", "v1"]:
        p = tmp_path / "out" / name
        assert p.stat().st_size == 256 << 20
    assert (tmp_path / "out" / "v1").read_bytes()[-3:] == b"ZZZ"


def test_results_are_shared_with_numpy_without_a_copy(base):
    uri = base + "z.bin"
    s3dlio.put_bytes(uri, bytes(range(256)) * 16)
    view = s3dlio.get(uri)
    a = np.frombuffer(view, dtype=np.uint8)
    b = np.frombuffer(view, dtype=np.uint8)
    # Both arrays point at the view's own memory: no copy was made.
    assert a.ctypes.data == b.ctypes.data
    assert a.base is not None
    assert not a.flags.writeable
    assert memoryview(view).readonly
    assert a[:4].tolist() == [0, 1, 2, 3]
    with pytest.raises(TypeError):
        # The memory is read-only (it may be shared with other views of the object).
        memoryview(view)[0] = 1


def test_get_range(base):
    uri = base + "r.bin"
    s3dlio.put_bytes(uri, b"0123456789")
    assert s3dlio.get_range(uri, 3, 4) == b"3456"
    assert s3dlio.get_range(uri, 7) == b"789"
    assert s3dlio.get_range(uri, 0, 0) == b""
    with pytest.raises(ValueError):
        s3dlio.get_range(uri, 20, 5)


def test_get_many_and_put_many_keep_order(base):
    items = [(f"{base}many/{i:03}", f"object {i}".encode()) for i in range(40)]
    s3dlio.put_many(items, max_in_flight=8)
    got = s3dlio.get_many([u for u, _ in reversed(items)], max_in_flight=8)
    assert [u for u, _ in got] == [u for u, _ in reversed(items)]
    assert all(d == want for (_, d), (_, want) in zip(got, reversed(items)))


def test_list_stat_exists_delete(base):
    for k in ["x/1", "x/2", "x/deep/3", "y"]:
        s3dlio.put_bytes(base + k, b"data")
    assert s3dlio.list(base + "x/", recursive=True) == [
        base + "x/1",
        base + "x/2",
        base + "x/deep/3",
    ]
    assert s3dlio.list(base + "x/") == [base + "x/1", base + "x/2", base + "x/deep/"]
    assert s3dlio.list(base, recursive=True, pattern=r"/\d$") == [
        base + "x/1",
        base + "x/2",
        base + "x/deep/3",
    ]
    with pytest.raises(ValueError):
        s3dlio.list(base, pattern="(")
    st = s3dlio.stat(base + "y")
    assert st["size"] == 4 and st["uri"] == base + "y"
    assert st["e_tag"] and st["last_modified"] > 0
    assert s3dlio.exists(base + "y") and not s3dlio.exists(base + "nope")
    s3dlio.delete(base + "y")
    assert not s3dlio.exists(base + "y")
    assert s3dlio.delete(base + "x/", recursive=True) == 3
    assert s3dlio.list(base, recursive=True) == []


def test_errors_map_to_python_exceptions(base):
    with pytest.raises(FileNotFoundError) as e:
        s3dlio.get(base + "missing")
    assert "missing" in str(e.value)
    with pytest.raises(FileNotFoundError):
        s3dlio.stat(base + "missing")
    with pytest.raises(ValueError, match="unknown scheme"):
        s3dlio.get("s4://bucket/key")
    assert issubclass(s3dlio.PreconditionFailedError, s3dlio.S3dlioError)


def test_synthetic_put_makes_distinct_objects(base):
    s3dlio.put(base + "gen/", 6, template="obj_{}_of_{}.bin", size=10_000, max_in_flight=3)
    names = s3dlio.list(base + "gen/", recursive=True)
    assert names == [f"{base}gen/obj_{i}_of_6.bin" for i in range(6)]
    blobs = [bytes(d) for _, d in s3dlio.get_many(names)]
    assert all(len(b) == 10_000 for b in blobs)
    assert len(set(blobs)) == 6, "each object has its own content"
    with pytest.raises(ValueError):
        s3dlio.put(base + "gen/", 1, object_type="hdf6")
    # chunk_size is the generation step: the bytes do not change with it.
    s3dlio.put(base + "c1/", 2, size=300_000, seed=5, chunk_size=65536)
    s3dlio.put(base + "c2/", 2, size=300_000, seed=5)
    one = [bytes(d) for _, d in s3dlio.get_many(s3dlio.list(base + "c1/"))]
    two = [bytes(d) for _, d in s3dlio.get_many(s3dlio.list(base + "c2/"))]
    assert one == two and len(one) == 2
    with pytest.raises(ValueError, match="chunk_size"):
        s3dlio.put(base + "c3/", 1, chunk_size=0)
    # The original README's form: the template in the prefix.
    s3dlio.put(base + "tpl/test-data-{}.bin", num=3, size=4096, data_gen_mode="streaming")
    assert s3dlio.list(base + "tpl/") == [f"{base}tpl/test-data-{i}.bin" for i in range(3)]


def test_upload_and_download_trees(base, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"A" * 1000)
    (src / "sub" / "b.txt").write_bytes(b"B" * 2000)
    (src / "c.log").write_bytes(b"C")
    s3dlio.upload([str(src / "a.txt"), str(src / "sub")], base + "up/")
    s3dlio.upload(str(src / "*.log"), base + "logs/")
    assert s3dlio.list(base + "up/", recursive=True) == [base + "up/a.txt", base + "up/sub/b.txt"]
    assert s3dlio.list(base + "logs/", recursive=True) == [base + "logs/c.log"]
    dest = tmp_path / "dest"
    s3dlio.download(base + "up/", str(dest))
    assert (dest / "a.txt").read_bytes() == b"A" * 1000
    assert (dest / "sub" / "b.txt").read_bytes() == b"B" * 2000
    # A glob source, as s3-cli takes it: names below the glob's directory.
    globbed = tmp_path / "globbed"
    s3dlio.download(base + "up/**/*.txt", str(globbed))
    assert sorted(str(p.relative_to(globbed)) for p in globbed.rglob("*") if p.is_file()) == [
        "a.txt",
        "sub/b.txt",
    ]


def test_async_twins_run_concurrently(base):
    uris = [f"{base}async/{i}" for i in range(10)]

    async def main():
        await asyncio.gather(*(s3dlio.put_bytes_async(u, u.encode()) for u in uris))
        got = await asyncio.gather(*(s3dlio.get_async(u) for u in uris))
        listed = await s3dlio.list_async(base + "async/", recursive=True)
        return got, listed

    got, listed = asyncio.run(main())
    assert [bytes(g) for g in got] == [u.encode() for u in uris]
    assert sorted(listed) == sorted(uris)
    assert s3dlio.get_async.__name__ == "get_async"


def test_op_log_records_operations(base, tmp_path):
    zstd = need("zstandard")
    log = tmp_path / "ops.tsv.zst"
    assert not s3dlio.is_op_log_active()
    s3dlio.init_op_log(str(log))
    assert s3dlio.is_op_log_active()
    s3dlio.put_bytes(base + "logged", b"12345")
    s3dlio.get(base + "logged")
    s3dlio.finalize_op_log()
    assert not s3dlio.is_op_log_active()
    text = zstd.ZstdDecompressor().stream_reader(open(log, "rb")).read().decode()
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    header, rows = rows[0], rows[1:]
    assert header[:3] == ["idx", "thread", "op"]
    ops = [(r[header.index("op")], r[header.index("bytes")]) for r in rows]
    assert ("PUT", "5") in ops and ("GET", "5") in ops


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_works_in_child_processes(base, method, tmp_path):
    # The parent has used the module (its runtime exists) before the children start.
    s3dlio.put_bytes(base + "parent", b"from the parent")
    script = (
        "import multiprocessing as mp, s3dlio, sys\n"
        "def child(uri):\n"
        "    s3dlio.put_bytes(uri + '-child', bytes(s3dlio.get(uri)) + b' and child')\n"
        "if __name__ == '__main__':\n"
        "    s3dlio.get(sys.argv[1])\n"
        f"    ctx = mp.get_context('{method}')\n"
        "    p = ctx.Process(target=child, args=(sys.argv[1],))\n"
        "    p.start(); p.join(60)\n"
        "    sys.exit(p.exitcode)\n"
    )
    # A file, not -c: spawn and forkserver children import the parent's main module.
    main = tmp_path / "parent_main.py"
    main.write_text(script)
    r = subprocess.run([sys.executable, str(main), base + "parent"], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert s3dlio.get(base + "parent-child") == b"from the parent and child"


def test_wrong_credentials_raise_permission_error(s3_bucket):
    script = (
        "import s3dlio, sys\n"
        "try:\n"
        f"    s3dlio.get('{s3_bucket}/any')\n"
        "except PermissionError as e:\n"
        "    print('PermissionError', e)\n"
    )
    env = dict(os.environ, AWS_SECRET_ACCESS_KEY="wrong-secret-for-this-test")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env, timeout=120)
    out = r.stdout.decode()
    assert r.returncode == 0 and out.startswith("PermissionError"), r.stderr.decode() + out
    assert "wrong-secret-for-this-test" not in out + r.stderr.decode()
