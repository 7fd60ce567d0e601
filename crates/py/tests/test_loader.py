"""create_dataset and create_async_loader over file:// and S3 prefixes."""

import asyncio

import pytest
import s3dlio


@pytest.fixture
def objects(base):
    items = [(f"{base}ds/obj-{i:03}", f"sample {i}".encode() * 10) for i in range(50)]
    s3dlio.put_many(items)
    return base + "ds/", dict(items)


def test_readme_loader_yields_batches_of_every_object(objects):
    prefix, items = objects
    loader = s3dlio.create_async_loader(prefix, {"batch_size": 8})
    batches = list(loader)
    assert [len(b) for b in batches] == [8] * 6 + [2]
    got = sorted(bytes(x) for b in batches for x in b)
    assert got == sorted(items.values())


def test_async_for_and_out_of_order(objects):
    prefix, items = objects
    loader = s3dlio.create_async_loader(
        prefix, {"batch_size": 16, "ordered": False, "max_in_flight": 8, "prefetch": 2}
    )

    async def run():
        seen = []
        async for batch in loader:
            seen.extend(bytes(x) for x in batch)
        return seen

    assert sorted(asyncio.run(run())) == sorted(items.values())


def test_sharding_and_shuffle_cover_each_sample_once(objects):
    prefix, items = objects
    def run(remainder):
        seen, batches = [], []
        for rank in range(3):
            opts = {"batch_size": 4, "shuffle": True, "seed": 7, "rank": rank, "world_size": 3}
            opts["remainder"] = remainder
            got = list(s3dlio.create_async_loader(prefix, opts))
            batches.append(len(got))
            seen += [bytes(x) for b in got for x in b]
        return seen, batches

    seen, _ = run("uneven")
    assert sorted(seen) == sorted(items.values()), "exactly once across ranks"
    seen, batches = run("pad")
    assert set(seen) == set(items.values()) and len(seen) == 51
    assert batches == [5, 5, 5], "equal batch counts per rank (DDP never hangs)"
    one = s3dlio.create_async_loader(prefix, {"batch_size": 50, "shuffle": True, "seed": 7})
    e0 = [bytes(x) for x in next(iter(one.epoch(0)))]
    e1 = [bytes(x) for x in next(iter(one.epoch(1)))]
    assert sorted(e0) == sorted(e1) and e0 != e1, "each epoch has its own order"
    assert e0 == [bytes(x) for x in next(iter(one.epoch(0)))], "the same seed and epoch repeat"


def test_dataset_is_map_style_and_iterable(objects):
    prefix, items = objects
    ds = s3dlio.create_dataset(prefix)
    assert len(ds) == 50
    keys = sorted(items)
    assert ds[0] == items[keys[0]] and ds[-1] == items[keys[-1]]
    with pytest.raises(IndexError):
        ds[50]
    assert sorted(bytes(x) for x in ds) == sorted(items.values())


def test_unknown_options_and_missing_objects_are_errors(base, objects):
    prefix, _ = objects
    with pytest.raises(ValueError, match="unknown loader option 'pin_memory'"):
        s3dlio.create_async_loader(prefix, {"pin_memory": True})
    with pytest.raises(ValueError):
        s3dlio.create_async_loader(prefix, {"batch_size": 0})
