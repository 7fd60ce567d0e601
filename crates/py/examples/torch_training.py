"""A PyTorch training loop fed by s3dlio, checkpointed through s3dlio.

Runs as one process or under torchrun (DDP, gloo on CPU):

    python crates/py/examples/torch_training.py [PREFIX_URI]
    torchrun --standalone --nproc_per_node=2 crates/py/examples/torch_training.py s3://bucket/run/

PREFIX_URI (default: a new temporary file:// directory) gets a synthetic dataset under
train/ and checkpoints under ckpt/. Each DataLoader worker of each rank reads its own share
of the samples; set_epoch reshuffles; the model state is saved each epoch (each rank its
shard, rank 0 commits) and read back at the end.
"""

import os
import sys
import tempfile

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

import s3dlio
from s3dlio.torch import S3IterableDataset, load_state_dict, save_state_dict

SAMPLES, FEATURES = 256, 16


def main() -> None:
    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    root = sys.argv[1] if len(sys.argv) > 1 else f"file://{tempfile.mkdtemp()}/"
    train, ckpt = root + "train/", root + "ckpt/"
    if rank == 0:
        # 256 objects of 16 random bytes each, the features of one sample.
        s3dlio.put(train, SAMPLES, size=FEATURES, object_type="random", seed=1)
    if distributed:
        dist.barrier()

    # Each sample arrives as a uint8 tensor over the loader's buffer (no copy).
    dataset = S3IterableDataset(train, loader_opts={"batch_size": 8, "shuffle": True, "seed": 7})
    loader = DataLoader(dataset, batch_size=8, num_workers=2)
    model = torch.nn.Linear(FEATURES, 1)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    for epoch in range(2):
        dataset.set_epoch(epoch)
        seen = 0
        for x in loader:
            x = x.float() / 255
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(x)
        state = {"model": model.state_dict(), "optim": opt.state_dict(), "epoch": epoch}
        save_state_dict(ckpt, epoch, state, epoch=epoch)
        print(f"rank {rank} epoch {epoch}: {seen} samples, checkpoint {epoch} saved")

    restored = load_state_dict(ckpt)
    for k, v in model.state_dict().items():
        assert torch.equal(restored["model"][k], v), k
    print(f"rank {rank}: the latest checkpoint (epoch {restored['epoch']}) matches the model")
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
