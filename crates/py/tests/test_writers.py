"""Streaming writers, with and without compression, on file:// and S3."""

import gzip
import os

import pytest
import s3dlio
from conftest import need


def crc32c(data: bytes) -> int:
    # Bitwise CRC32C (Castagnoli), independent of the implementation under test.
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_readme_form_attributes_and_zstd(base):
    zstd = need("zstandard")
    options = s3dlio.PyWriterOptions()
    options.compression = "zstd"
    options.compression_level = 3
    writer = s3dlio.create_s3_writer(base + "data.zst", options)
    chunks = [b"training record %d\n" % i * 50 for i in range(200)]
    for c in chunks:
        writer.write_chunk(c)
    assert not s3dlio.exists(base + "data.zst"), "nothing is visible before finalize"
    written, stored = writer.finalize()
    raw = b"".join(chunks)
    assert written == len(raw) and stored < written / 5
    blob = bytes(s3dlio.get(base + "data.zst"))
    assert len(blob) == stored
    assert zstd.ZstdDecompressor().stream_reader(blob).read() == raw
    assert writer.checksum == crc32c(raw)
    with pytest.raises(ValueError):
        writer.write_chunk(b"more")


def test_builder_form_gzip_and_checksum(base):
    opts = s3dlio.PyWriterOptions().with_compression("gzip", 6).with_buffer_size(1024)
    data = os.urandom(3000) + b"z" * 50_000
    w = s3dlio.create_filesystem_writer(base + "g.gz", opts) if base.startswith("file") else s3dlio.create_s3_writer(base + "g.gz", opts)
    w.write_owned_bytes(data[:10_000])
    w.write_chunk(memoryview(data)[10_000:])
    assert w.bytes_written == len(data)
    assert w.finalize()[0] == len(data)
    assert gzip.decompress(bytes(s3dlio.get(base + "g.gz"))) == data
    assert w.checksum == crc32c(data)


def test_plain_lz4_and_context_manager(base):
    with s3dlio.create_s3_writer(base + "plain.bin") as w:
        w.write_chunk(b"abc")
        w.write_chunk(b"def")
    assert s3dlio.get(base + "plain.bin") == b"abcdef"
    lz4 = s3dlio.PyWriterOptions(compression="lz4")
    with s3dlio.create_s3_writer(base + "x.lz4", lz4) as w:
        w.write_chunk(b"q" * 100_000)
    assert len(s3dlio.get(base + "x.lz4")) < 2000


def test_abort_and_failed_block_leave_nothing(base):
    w = s3dlio.create_s3_writer(base + "aborted", s3dlio.PyWriterOptions(compression="zstd"))
    w.write_chunk(os.urandom(100_000))
    w.abort()
    assert not s3dlio.exists(base + "aborted")
    with pytest.raises(RuntimeError):
        with s3dlio.create_s3_writer(base + "raised") as w:
            w.write_chunk(b"partial")
            raise RuntimeError("the caller failed midway")
    assert not s3dlio.exists(base + "raised")


def test_bad_options_are_value_errors(base):
    with pytest.raises(ValueError, match="brotli"):
        s3dlio.create_s3_writer(base + "x", s3dlio.PyWriterOptions(compression="brotli"))
    with pytest.raises(ValueError, match="outside"):
        s3dlio.create_s3_writer(base + "x", s3dlio.PyWriterOptions("zstd", 99))
