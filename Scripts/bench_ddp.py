"""PyTorch DDP with the Gloo backend on 2 processes, next to `bnkmpi bench`.

The seed network (784 -> 256 -> BatchNorm1d -> ReLU -> 64 -> BatchNorm1d ->
ReLU -> 10), SGD lr 0.1 momentum 0.9, a global batch of --batch synthetic
samples split over the processes, one epoch of --steps steps after 5 warm-up
steps; then --steps all-reduces of the gradient's size alone. Prints one
JSON line per measurement, in bnkmpi's fields.

On CPU torch.nn.SyncBatchNorm refuses to run (it needs a GPU backend), so
the DDP model normalizes with each process's own half of the batch, and its
gradient all-reduce carries Float32 (bnkmpi sums Doubles): both are said in
the "note" field.

    python Scripts/bench_ddp.py [--steps 60] [--batch 128] [--ranks 2]
"""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


def seed_network():
    return nn.Sequential(nn.Linear(784, 256), nn.BatchNorm1d(256), nn.ReLU(),
                         nn.Linear(256, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))


def worker(rank, ranks, steps, batch, port, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(seed_network())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    share = batch // ranks
    generator = torch.Generator().manual_seed(21 + rank)
    x = torch.randn(steps + 5, share, 784, generator=generator)
    y = torch.randint(0, 10, (steps + 5, share), generator=generator)

    def step(i):
        optimizer.zero_grad(set_to_none=True)
        criterion(model(x[i]), y[i]).backward()
        optimizer.step()

    for i in range(5):
        step(i)
    dist.barrier()
    start = time.perf_counter()
    for i in range(5, steps + 5):
        step(i)
    seconds = time.perf_counter() - start
    values = sum(p.numel() for p in model.parameters())
    gradient = torch.full((values,), 1e-3)
    dist.all_reduce(gradient)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        dist.all_reduce(gradient)
    reduce_seconds = (time.perf_counter() - start) / steps
    if rank == 0:
        queue.put({"backend": "torch-ddp-gloo", "ranks": ranks, "batch": batch,
                   "samples_per_second": round(steps * batch / seconds, 1),
                   "step_ms": round(seconds / steps * 1e3, 3),
                   "allreduce_values": values, "allreduce_bytes": values * 4,
                   "allreduce_us": round(reduce_seconds * 1e6, 1),
                   "note": "BatchNorm1d per process (SyncBatchNorm needs a GPU); Float32 gradients",
                   "torch": torch.__version__})
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--ranks", type=int, default=2)
    args = parser.parse_args()
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = 29500 + os.getpid() % 1000
    mp.spawn(worker, args=(args.ranks, args.steps, args.batch, port, queue), nprocs=args.ranks, join=True)
    print(json.dumps(queue.get(timeout=10)), flush=True)


if __name__ == "__main__":
    main()
