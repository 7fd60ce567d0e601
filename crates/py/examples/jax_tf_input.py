"""Input pipelines for JAX and TensorFlow fed by s3dlio.

    python crates/py/examples/jax_tf_input.py [PREFIX_URI]

PREFIX_URI (default: a new temporary file:// directory) gets 64 synthetic objects of 128
bytes; JAX sums them batch by batch from numpy arrays (zero-copy views of the loader's
buffers until device_put), and tf.data reads the same objects as uint8 tensors for two
epochs, each pass in its own shuffled order.
"""

import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

import s3dlio
from s3dlio.jax_tf import JaxIterable, make_tf_dataset


def main() -> None:
    root = sys.argv[1] if len(sys.argv) > 1 else f"file://{tempfile.mkdtemp()}/"
    data = root + "samples/"
    s3dlio.put(data, 64, size=128, object_type="random", seed=3)

    # JAX: batches of 16 samples as (16, 128) uint8 arrays.
    total = 0
    for batch in JaxIterable.from_prefix(data, batch_size=16, shuffle=True, seed=1, batched=True):
        total += int(jnp.asarray(batch, dtype=jnp.int32).sum())
    expected = sum(int(np.frombuffer(v, np.uint8).sum()) for _, v in s3dlio.get_many(s3dlio.list(data)))
    assert total == expected
    print(f"jax on {jax.devices()[0].platform}: byte sum {total} over 64 samples")

    # TensorFlow: a tf.data pipeline, two epochs (each pass reads the next epoch).
    ds = make_tf_dataset(data, batch_size=16, shuffle=True, seed=1)
    ds = ds.map(lambda x: tf.reduce_sum(tf.cast(x, tf.int64))).repeat(2)
    sums = [int(s) for s in ds]
    assert len(sums) == 128 and sum(sums) == 2 * expected
    print(f"tf.data: {len(sums)} samples over 2 epochs, element_spec {ds.element_spec}")


if __name__ == "__main__":
    main()
