"""s3dlio.jax_tf with real JAX (CPU) and TensorFlow (CPU), on file:// and S3."""

import numpy as np
import pytest
import s3dlio
from conftest import need, numbered, numbers_of

from s3dlio.jax_tf import JaxIterable, make_tf_dataset

# Imported when the first test here runs (these run last: see conftest), not at collection.


@pytest.fixture(scope="module")
def jnp():
    return need("jax.numpy")


@pytest.fixture(scope="module")
def tf():
    return need("tensorflow")

N, SIZE = 30, 32


@pytest.fixture
def objects(base):
    s3dlio.put_many([(f"{base}jt/{i:03}", numbered(i, SIZE)) for i in range(N)])
    return base + "jt/"


def test_jax_iterable_yields_zero_copy_arrays(objects, jnp):
    arrays = list(JaxIterable(objects))
    assert numbers_of(arrays) == list(range(N))
    a = arrays[0]
    assert a.dtype == np.uint8 and not a.flags.writeable
    # The array's memory is the loader's buffer itself (a BytesView), not a copy.
    assert isinstance(a.base, memoryview) and isinstance(a.base.obj, s3dlio.BytesView)
    assert np.shares_memory(a, np.frombuffer(a.base.obj, dtype=np.uint8))
    assert JaxIterable(objects, writable=True).__iter__().__next__().flags.writeable
    total = sum(int(jnp.asarray(x).astype(jnp.int32).sum()) for x in arrays)
    assert total == sum(sum(numbered(i, SIZE)) for i in range(N))


def test_jax_batches_shards_and_epochs(objects, jnp):
    it = JaxIterable.from_prefix(objects, batch_size=8, shuffle=True, seed=4, batched=True)
    batches = list(it)
    assert [b.shape for b in batches] == [(8, SIZE)] * 3 + [(6, SIZE)]
    e0 = numbers_of(row for b in batches for row in b)
    it.set_epoch(1)
    e1 = numbers_of(row for b in it for row in b)
    assert sorted(e0) == sorted(e1) == list(range(N)) and e0 != e1
    x = jnp.asarray(batches[0])
    assert x.shape == (8, SIZE) and bool((x == batches[0]).all())
    shares = [numbers_of(JaxIterable(objects, {"rank": r, "world_size": 3})) for r in range(3)]
    assert sorted(sum(shares, [])) == list(range(N)) and all(len(s) == 10 for s in shares)
    as_u32 = next(iter(JaxIterable(objects, dtype=np.uint32, transform=lambda a: a.shape)))
    assert as_u32 == (SIZE // 4,)


def test_tf_dataset_has_a_signature_and_reads_each_epoch(objects, tf):
    ds = make_tf_dataset(objects, shuffle=True, seed=3)
    assert ds.element_spec == tf.TensorSpec(shape=(None,), dtype=tf.uint8)
    passes = list(ds.repeat(2).as_numpy_iterator())
    first, second = numbers_of(passes[:N]), numbers_of(passes[N:])
    assert sorted(first) == sorted(second) == list(range(N))
    assert first != second, "each pass reads the next epoch"
    batched = make_tf_dataset(objects, batch_size=10, batched=True, map_fn=lambda x: x[:, :8])
    shapes = [b.shape for b in batched.as_numpy_iterator()]
    assert shapes == [(10, 8)] * 3
    model_input = next(iter(batched))
    assert model_input.dtype == tf.uint8
    assert numbers_of(tf.tile(model_input, [1, SIZE // 8]).numpy()) == list(range(10))
