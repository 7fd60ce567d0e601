"""The runnable examples of crates/py/examples (the ones docs/PYTHON.md shows), as a user
runs them: alone on S3 (file:// is their default; the datasets' own tests cover both), and
the training loop under torchrun on 2 ranks on file://."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import need

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(args, env=None):
    r = subprocess.run(args, capture_output=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout.decode()[-3000:] + r.stderr.decode()[-5000:]
    return r.stdout.decode()


def test_torch_training_alone(s3_base):
    base = s3_base
    need("torch")
    out = run([sys.executable, str(EXAMPLES / "torch_training.py"), base])
    assert "matches the model" in out


def test_torch_training_under_torchrun(tmp_path):
    need("torch")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    out = run(cmd + [str(EXAMPLES / "torch_training.py"), f"file://{tmp_path}/"], env)
    assert out.count("matches the model") == 2 and "rank 1 epoch 1: 128 samples" in out


def test_jax_tf_input(s3_base):
    base = s3_base
    need("jax")
    need("tensorflow")
    out = run([sys.executable, str(EXAMPLES / "jax_tf_input.py"), base])
    assert "tf.data: 128 samples" in out
