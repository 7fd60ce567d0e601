"""PyCheckpointStore in both of the original's forms, on file:// and S3."""

import os

import pytest
import s3dlio


def test_readme_named_form(base):
    store = s3dlio.PyCheckpointStore(base + "checkpoints/")
    data = os.urandom(300_000)
    store.save("model_state", data)
    assert store.load("model_state") == data
    store.save("model_state", b"v2")
    assert store.load("model_state") == b"v2", "a new save is a new version"
    with pytest.raises(FileNotFoundError):
        store.load("never_saved")


def test_step_form_latest_list_delete(base):
    store = s3dlio.PyCheckpointStore(base + "ck", compression_level=3, multipart_threshold=64 << 10)
    assert store.load_latest() is None
    weights = bytes(range(256)) * 2000  # compressible, several parts
    m = store.save(10, 1, "pytorch", weights, user_meta={"lr": "0.1"})
    assert m["step"] == 10 and m["epoch"] == 1 and m["framework"] == "pytorch"
    assert m["metadata"]["lr"] == "0.1" and m["size"] == len(weights)
    store.save(20, 2, "pytorch", b"later")
    assert store.load_latest() == b"later"
    assert store.load_step(10) == weights
    assert [c["step"] for c in store.list_checkpoints()] == [10, 20]
    with pytest.raises(ValueError, match="latest"):
        store.delete_checkpoint(20)  # latest points at it
    store.delete_checkpoint(10)
    assert [c["step"] for c in store.list_checkpoints()] == [20]


def test_corruption_is_detected(tmp_path):
    root = tmp_path / "ck"
    store = s3dlio.PyCheckpointStore(f"file://{root}/")
    store.save(1, 0, None, b"A" * 100_000)
    parts = [p for p in root.rglob("*") if p.is_file() and "part" in p.name]
    assert parts, list(root.rglob("*"))
    raw = bytearray(parts[0].read_bytes())
    raw[len(raw) // 2] ^= 0x01
    parts[0].write_bytes(bytes(raw))
    with pytest.raises(s3dlio.S3dlioError, match="(?i)crc|checksum|corrupt"):
        store.load_latest()


def test_bad_arguments(base):
    with pytest.raises(ValueError):
        s3dlio.PyCheckpointStore(base + "x", compression_level=99)
    store = s3dlio.PyCheckpointStore(base + "x")
    with pytest.raises(ValueError):
        store.save(1.5, b"data")
