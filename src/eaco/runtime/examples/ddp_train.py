"""A tiny distributed (data-parallel) training job for the runtime: the MLP of
:mod:`eaco.runtime.examples.tiny_train` wrapped in ``DistributedDataParallel``, one process per
GPU, on one node or across several (Ray backend).

Started by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``; on Ray the runtime
gives torchrun its node count, node rank and meeting point through ``PET_*``)::

    command: python -m torch.distributed.run -m eaco.runtime.examples.ddp_train --epochs 4

or directly, one process per node (then the rank and world size come from the runtime's
``EACO_NODE_RANK`` / ``EACO_NUM_NODES``, the meeting point from ``MASTER_ADDR`` / ``MASTER_PORT``).
Uses NCCL on GPUs, gloo on CPUs. Every process trains its share of each batch; rank 0 reports the
epochs (:class:`eaco.runtime.control.RuntimeEpochs` reports from global rank 0 only) and writes
the checkpoint; all resume from it; all stop after the same epoch when the runtime asks (exit 75).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from eaco.runtime.control import CHECKPOINT_DIR_ENV, RuntimeEpochs
from eaco.runtime.distributed import LOOPBACK, free_port

JOIN_TIMEOUT_S = 300.0  # how long the processes wait for each other at the start


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--job-name", default="ddp")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps-per-epoch", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64, help="global batch, split over the processes")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--checkpoint-dir", type=Path, default=None, help="default: $EACO_CHECKPOINT_DIR")
    return p


def _rank_and_world() -> tuple[int, int]:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun (or another launcher)
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    rank, world = int(os.environ.get("EACO_NODE_RANK", "0")), int(os.environ.get("EACO_NUM_NODES", "1"))
    if world == 1 and "MASTER_PORT" not in os.environ:  # alone: any free port of this host
        os.environ["MASTER_PORT"] = str(free_port())
        os.environ.setdefault("MASTER_ADDR", LOOPBACK)
    return rank, world


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    rank, world = _rank_and_world()
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=JOIN_TIMEOUT_S))
    try:
        return _train(args, rank, world, torch.device("cuda") if use_cuda else torch.device("cpu"))
    finally:
        dist.destroy_process_group()


def _train(args: argparse.Namespace, rank: int, world: int, device: torch.device) -> int:
    torch.manual_seed(0)
    ckpt_dir = args.checkpoint_dir or (Path(os.environ[CHECKPOINT_DIR_ENV]) if os.environ.get(CHECKPOINT_DIR_ENV) else None)
    ckpt = ckpt_dir / f"{args.job_name}.pt" if ckpt_dir else None
    model = nn.Sequential(nn.Linear(32, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    # rank 0 reads the checkpoint and hands it to the others (their nodes may not see its file)
    found = [torch.load(ckpt, map_location="cpu", weights_only=True) if rank == 0 and ckpt is not None and ckpt.exists() else None]
    dist.broadcast_object_list(found, src=0)
    start = 0
    if found[0] is not None:
        model.load_state_dict(found[0]["model"])
        opt.load_state_dict(found[0]["optimizer"])
        start = int(found[0]["next_epoch"])
        print(f"rank {rank}: resumed at epoch {start}", flush=True)
    ddp = DistributedDataParallel(model)
    epochs = RuntimeEpochs.from_env(args.job_name, start, args.epochs)
    epochs.reporter.start(model="tiny_mlp_ddp", resumed_at_epoch=start, world_size=world)
    local_batch = max(1, args.batch_size // world)
    gen = torch.Generator().manual_seed(1 + rank)
    for epoch, tick in epochs:
        for _ in range(args.steps_per_epoch):
            x = torch.randn(local_batch, 32, generator=gen).to(device)
            y = x[:, :10].argmax(dim=1)
            loss = nn.functional.cross_entropy(ddp(x), y)
            opt.zero_grad()
            loss.backward()  # gradients averaged over every process
            opt.step()
            tick.steps += 1
            tick.samples += local_batch * world
        tick.loss = float(loss.item())
        if ckpt is not None and rank == 0:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "next_epoch": epoch + 1}, tmp)
            os.replace(tmp, ckpt)
            tick.checkpoint = str(ckpt)
        dist.barrier()  # the checkpoint is on disk before any process may stop after this epoch
        print(f"rank {rank}/{world} epoch {epoch} loss {tick.loss:.4f}", flush=True)
    dist.barrier()  # every process is done with its last collective before any tears the group down
    epochs.exit_if_stopped()
    epochs.reporter.end(epochs=args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
