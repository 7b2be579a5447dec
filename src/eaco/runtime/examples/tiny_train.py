"""A tiny real training job for the runtime: an MLP on synthetic data, checkpointed every epoch.

``python -m eaco.runtime.examples.tiny_train --epochs 4 --steps-per-epoch 20``

It reports epochs through :class:`eaco.runtime.control.RuntimeEpochs`, resumes from
``$EACO_CHECKPOINT_DIR/<job>.pt``, stops at an epoch end when the runtime asks (exit 75), and can
fail on purpose (``--fail-at-epoch`` or ``--fail-at-exit``, on ``--fail-on-attempt``) to exercise failure handling.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from eaco.runtime.control import ATTEMPT_ENV, CHECKPOINT_DIR_ENV, RuntimeEpochs

OOM_MESSAGE = "RuntimeError: CUDA out of memory (simulated by tiny_train --fail-kind oom)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--job-name", default="tiny")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps-per-epoch", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--checkpoint-dir", type=Path, default=None, help="default: $EACO_CHECKPOINT_DIR")
    p.add_argument("--fail-at-epoch", type=int, default=-1, help="exit 1 at the start of this epoch")
    p.add_argument("--fail-on-attempt", type=int, default=1, help="... only on this runtime attempt")
    p.add_argument("--fail-kind", choices=("crash", "oom"), default="crash")
    p.add_argument("--fail-at-exit", action="store_true",
                   help="exit 1 after training finished and was reported (a teardown crash), on --fail-on-attempt")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ckpt_dir = args.checkpoint_dir or (Path(os.environ[CHECKPOINT_DIR_ENV]) if os.environ.get(CHECKPOINT_DIR_ENV) else None)
    model = nn.Sequential(nn.Linear(32, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    start = 0
    ckpt = ckpt_dir / f"{args.job_name}.pt" if ckpt_dir else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["next_epoch"])
        print(f"resumed from {ckpt} at epoch {start}", flush=True)
    attempt = int(os.environ.get(ATTEMPT_ENV, "1"))
    epochs = RuntimeEpochs.from_env(args.job_name, start, args.epochs)
    epochs.reporter.start(model="tiny_mlp", resumed_at_epoch=start, attempt=attempt)
    gen = torch.Generator().manual_seed(1)
    for epoch, tick in epochs:
        if epoch == args.fail_at_epoch and attempt == args.fail_on_attempt:
            print(OOM_MESSAGE if args.fail_kind == "oom" else f"failing on purpose at epoch {epoch}", file=sys.stderr, flush=True)
            return 1
        for _ in range(args.steps_per_epoch):
            x = torch.randn(args.batch_size, 32, generator=gen)
            y = (x[:, :10].argmax(dim=1))
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tick.steps += 1
            tick.samples += args.batch_size
        tick.loss = float(loss.item())
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "next_epoch": epoch + 1}, tmp)
            os.replace(tmp, ckpt)
            tick.checkpoint = str(ckpt)
        print(f"epoch {epoch} loss {tick.loss:.4f}", flush=True)
    epochs.exit_if_stopped()
    epochs.reporter.end(epochs=args.epochs)
    if args.fail_at_exit and attempt == args.fail_on_attempt:
        print("failing on purpose on the way out, training done", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
