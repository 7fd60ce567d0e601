"""TFRecord index functions, against the `tfrecord` PyPI package as the reference."""

import importlib.util
import os
import subprocess
import sys

import pytest
import s3dlio
from conftest import need


def _frame(data):
    import struct

    import crc32c

    def masked(b):
        c = crc32c.crc32c(b)
        return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

    n = struct.pack("<Q", len(data))
    return n + struct.pack("<I", masked(n)) + data + struct.pack("<I", masked(data))


def create_index(tfrecord, index):
    """The `tfrecord` package's tfrecord2idx, in a fresh interpreter: its protobuf module
    and TensorFlow's (imported by test_jax_tf.py) cannot share a process."""
    if importlib.util.find_spec("tfrecord") is None:
        need("tfrecord")  # skips by hand, fails under xtask
    code = "import sys; from tfrecord.tools.tfrecord2idx import create_index as c; c(*sys.argv[1:])"
    subprocess.run([sys.executable, "-c", code, tfrecord, index], check=True, timeout=120)


def test_readme_example_matches_tfrecord2idx(tmp_path):
    path = tmp_path / "train.tfrecord"
    records = [os.urandom(n) for n in [0, 1, 1000, 70_000] + [50] * 50]
    with open(path, "wb") as f:
        for r in records:
            f.write(_frame(r))
    # As the original's README writes it:
    s3dlio.create_tfrecord_index(str(path))
    index = s3dlio.read_tfrecord_index(str(path) + ".idx")
    offset, size = index[42]
    assert len(index) == len(records) and size == len(records[42]) + 16
    reference = tmp_path / "ref.idx"
    create_index(str(path), str(reference))
    assert (tmp_path / "train.tfrecord.idx").read_bytes() == reference.read_bytes()
    assert s3dlio.index_tfrecord(f"file://{path}", verify=True) == index


def test_corrupt_files_name_the_offset(tmp_path):
    path = tmp_path / "bad.tfrecord"
    data = bytearray(_frame(b"a" * 100) + _frame(b"b" * 100))
    data[116 + 12 + 5] ^= 0x01  # inside the second record's data
    path.write_bytes(bytes(data))
    assert len(s3dlio.index_tfrecord(str(path))) == 2, "without verify, only lengths are checked"
    with pytest.raises(ValueError, match="offset 116"):
        s3dlio.create_tfrecord_index(str(path), verify=True)
    with pytest.raises(FileNotFoundError):
        s3dlio.read_tfrecord_index(str(tmp_path / "missing.idx"))
