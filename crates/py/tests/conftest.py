"""Fixtures for the s3dlio pytest suite.

`cargo xtask test` builds the wheel with maturin, installs it into its test virtualenv and runs
this suite with the S3 test server's address in S3DLIO_TEST_S3_SEAWEEDFS (and its keys). Run by
hand without that, the S3 cases skip with a note; under xtask (S3DLIO_TEST_SERVERS=1) a missing
server, or a missing package (torch, jax, tensorflow, ...), is an error.
"""

import importlib
import os
import uuid

import pytest

SEAWEEDFS = os.environ.get("S3DLIO_TEST_S3_SEAWEEDFS")
UNDER_XTASK = os.environ.get("S3DLIO_TEST_SERVERS") == "1"

if SEAWEEDFS:
    # The module reads the standard AWS variables when it first opens an s3:// store.
    os.environ["AWS_ENDPOINT_URL"] = SEAWEEDFS
    os.environ["AWS_ACCESS_KEY_ID"] = os.environ["S3DLIO_TEST_S3_ACCESS_KEY"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = os.environ["S3DLIO_TEST_S3_SECRET_KEY"]
    os.environ["AWS_REGION"] = "us-east-1"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

AZURITE = os.environ.get("S3DLIO_TEST_AZURITE")
if AZURITE:
    # Read when the module first opens an az:// store.
    os.environ["AZURE_STORAGE_ACCOUNT"] = os.environ["S3DLIO_TEST_AZURITE_ACCOUNT"]
    os.environ["AZURE_STORAGE_KEY"] = os.environ["S3DLIO_TEST_AZURITE_KEY"]
    os.environ["AZURE_STORAGE_ENDPOINT"] = AZURITE

BUCKET = "s3dlio-pytest"


def azure_container(name):
    """Create container `name` on Azurite (if it is not there); skips by hand without it."""
    if not AZURITE:
        if UNDER_XTASK:
            pytest.fail("S3DLIO_TEST_AZURITE is not set under cargo xtask test")
        pytest.skip("no Azure test server (run with `cargo xtask test`)")
    blob = need("azure.storage.blob")
    credential = {
        "account_name": os.environ["AZURE_STORAGE_ACCOUNT"],
        "account_key": os.environ["AZURE_STORAGE_KEY"],
    }
    try:
        blob.BlobServiceClient(AZURITE, credential=credential).create_container(name)
    except Exception as e:  # ResourceExistsError
        if "exist" not in str(e).lower():
            raise


def numbered(i, size):
    """Sample `i` of the framework tests: its number in 8 digits, repeated to `size` bytes."""
    return (b"%08d" % i) * (size // 8)


def numbers_of(rows):
    """The numbers of `numbered` samples (bytes-like, tensors or arrays), each row's bytes
    checked whole."""
    import numpy as np

    out = []
    for row in rows:
        raw = bytes(row) if isinstance(row, (bytes, memoryview)) else np.asarray(row).tobytes()
        i = int(raw[:8])
        assert raw == numbered(i, len(raw)), raw[:40]
        out.append(i)
    return out


# Code for a fresh interpreter that measures one call's peak memory: start_peak() resets
# the peak RSS (VmHWM) to the current RSS and returns it, peak() reads it, both in MiB.
PEAK_RSS = """
def _status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) >> 10
def start_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mib("VmRSS:")
def peak():
    return _status_mib("VmHWM:")
"""


def need(module):
    """Import `module`; without it, skip when run by hand, fail under xtask (which installs it)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if UNDER_XTASK:
            raise
        pytest.skip(f"{module} is not installed ({e})", allow_module_level=True)


@pytest.fixture(scope="session")
def s3_bucket():
    if not SEAWEEDFS:
        if UNDER_XTASK:
            pytest.fail("S3DLIO_TEST_S3_SEAWEEDFS is not set under cargo xtask test")
        pytest.skip("no S3 test server (run with `cargo xtask test`)")
    import s3dlio

    try:
        s3dlio.create_bucket(BUCKET)
    except s3dlio.S3dlioError as e:
        if "exist" not in str(e).lower() and "owned" not in str(e).lower():
            raise
    return f"s3://{BUCKET}"


@pytest.fixture
def az_base():
    """A fresh az:// URI prefix ending in `/` on Azurite."""
    azure_container("s3dlio-pytest")
    return f"az://s3dlio-pytest/pytest-{uuid.uuid4().hex}/"


@pytest.fixture
def s3_base(s3_bucket):
    """A fresh S3 URI prefix ending in `/`."""
    return f"{s3_bucket}/pytest-{uuid.uuid4().hex}/"


@pytest.fixture(params=["file", "s3"])
def base(request, tmp_path):
    """A fresh URI prefix ending in `/` on each backend."""
    if request.param == "file":
        return f"file://{tmp_path}/"
    return request.getfixturevalue("s3_base")


def pytest_collection_modifyitems(items):
    # JAX and TensorFlow start threads once used, and fork (DataLoader workers) is unsafe
    # in a process with threads: their tests run last, after every fork-based test.
    items.sort(key=lambda item: item.path.name == "test_jax_tf.py")
