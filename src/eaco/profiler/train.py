"""One training job of the zoo, as its own process: ``python -m eaco.profiler.train --model resnet18 ...``.

Trains on synthetic data (:mod:`eaco.profiler.data`) with DataLoader workers, reports every epoch
through :mod:`eaco.profiler.epoch_report`, writes a checkpoint at each epoch end and resumes from it
when started again with the same ``--checkpoint-dir`` and ``--job-name``. Under the live runtime
(``eaco submit`` with ``command: python -m eaco.profiler.train ...``) it uses the runtime's job
client (:class:`eaco.runtime.control.RuntimeEpochs`): the checkpoint folder defaults to
``$EACO_CHECKPOINT_DIR``, and when the runtime asks it to stop (an undo) it ends after the epoch it
is in, checkpointed, and exits with code 75; the next attempt resumes. With several visible CUDA
GPUs the model is wrapped in ``nn.DataParallel`` (what PyTorch ``examples/imagenet`` does by
default, as in the paper's runs).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from eaco.profiler.data import MOVIELENS_20M_ITEMS, MOVIELENS_20M_USERS, DataShape, build_dataset
from eaco.profiler.epoch_report import START_BARRIER_ENV, EpochReporter, wait_for_start
from eaco.profiler.zoo import MODEL_NAMES, build_model, count_parameters, zoo_entry
from eaco.runtime.control import CHECKPOINT_DIR_ENV, RuntimeEpochs

CHECKPOINT_VERSION = 1


@dataclass(frozen=True, slots=True)
class TrainConfig:
    model: str
    job_name: str
    batch_size: int
    epochs: int
    steps_per_epoch: int
    shape: DataShape
    width_mult: float = 1.0
    amp: bool = False
    device: str = "auto"  # auto | cpu | cuda
    workers: int = 2
    checkpoint_dir: Path | None = None
    report_file: Path | None = None
    resume: bool = True
    data_parallel: bool = True
    seed: int = 0
    threads: int = 0  # torch intra-op threads (0 = torch's default)
    start_barrier: Path | None = None  # wait here until the launcher says go (co-located runs)

    def __post_init__(self) -> None:
        entry = zoo_entry(self.model)
        if entry.kind == "image" and self.shape.image_size < entry.min_image_size:
            raise ValueError(
                f"image_size: {self.model} needs images of at least {entry.min_image_size} px, got {self.shape.image_size}"
            )
        for name in ("batch_size", "epochs", "steps_per_epoch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers: expected >= 0, got {self.workers}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device: expected auto, cpu or cuda, got {self.device!r}")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(device)


def _loss(kind: str, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> torch.Tensor:
    x, y = (t.to(device, non_blocking=True) for t in batch)
    if kind == "image":
        return nn.functional.cross_entropy(model(x), y)
    if kind == "tokens":
        logits = model(x)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    return nn.functional.binary_cross_entropy_with_logits(model(x[:, 0], x[:, 1]), y)


def _optimizer(kind: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    if kind == "image":  # examples/imagenet: SGD, momentum 0.9, weight decay 1e-4
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    return torch.optim.Adam(model.parameters(), lr=lr)


def peak_memory_mib(device: torch.device) -> float:
    """Peak CUDA memory reserved by this process over all visible GPUs, else peak host RSS (MiB)."""
    if device.type == "cuda":
        return sum(torch.cuda.max_memory_reserved(i) for i in range(torch.cuda.device_count())) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def checkpoint_path(cfg: TrainConfig) -> Path | None:
    """``<checkpoint dir>/<job>.pt``; the folder is ``--checkpoint-dir``, else the runtime's
    ``$EACO_CHECKPOINT_DIR``; no folder: no checkpoints."""
    folder = cfg.checkpoint_dir
    if folder is None and os.environ.get(CHECKPOINT_DIR_ENV):
        folder = Path(os.environ[CHECKPOINT_DIR_ENV])
    return None if folder is None else folder / f"{cfg.job_name}.pt"


def _save(path: Path, model: nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
          next_epoch: int, cfg: TrainConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    inner = model.module if isinstance(model, nn.DataParallel) else model
    torch.save(
        {
            "version": CHECKPOINT_VERSION,
            "model_name": cfg.model,
            "next_epoch": next_epoch,
            "model": inner.state_dict(),
            "optimizer": opt.state_dict(),
            "scaler": None if scaler is None else scaler.state_dict(),
        },
        tmp,
    )
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint


def _load(path: Path, model: nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
          cfg: TrainConfig) -> int:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("version") != CHECKPOINT_VERSION or state.get("model_name") != cfg.model:
        raise ValueError(
            f"{path}: field 'model_name'/'version': checkpoint is for {state.get('model_name')!r}"
            f" v{state.get('version')}, not {cfg.model!r} v{CHECKPOINT_VERSION}"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    return int(state["next_epoch"])


def train(cfg: TrainConfig) -> int:
    """Run the job; return the number of epochs trained by this call."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    entry = zoo_entry(cfg.model)
    s = cfg.shape
    model = build_model(cfg.model, num_classes=s.num_classes, vocab_size=s.vocab_size, seq_len=s.seq_len,
                        num_users=s.num_users, num_items=s.num_items, width_mult=cfg.width_mult).to(device)
    opt = _optimizer(entry.kind, model, entry.base_lr)
    use_amp = cfg.amp
    scaler = torch.amp.GradScaler("cuda") if (use_amp and device.type == "cuda") else None
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    ckpt = checkpoint_path(cfg)
    start_epoch = _load(ckpt, model, opt, scaler, cfg) if (cfg.resume and ckpt is not None and ckpt.exists()) else 0
    train_model: nn.Module = model
    if device.type == "cuda" and cfg.data_parallel and torch.cuda.device_count() > 1:
        train_model = nn.DataParallel(model)

    dataset = build_dataset(cfg.model, cfg.batch_size * cfg.steps_per_epoch, s, cfg.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True, num_workers=cfg.workers,
                        pin_memory=device.type == "cuda", persistent_workers=cfg.workers > 0)
    reporter = EpochReporter.from_env(cfg.job_name, cfg.report_file)
    reporter.start(model=cfg.model, device=str(device), parameters=count_parameters(model), start_epoch=start_epoch,
                   batch_size=cfg.batch_size, amp=use_amp, gpus=torch.cuda.device_count() if device.type == "cuda" else 0)
    barrier = cfg.start_barrier or os.environ.get(START_BARRIER_ENV)
    waited_s = wait_for_start(barrier, cfg.job_name)
    if barrier:
        print(f"[{cfg.job_name}] start barrier passed after {waited_s:.2f} s", file=sys.stderr, flush=True)
    trained = 0
    train_model.train()
    epochs = RuntimeEpochs(reporter, start_epoch, cfg.epochs)  # outside the runtime: plain timed epochs
    for epoch, tick in epochs:
        for batch in loader:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = _loss(entry.kind, train_model, batch, device)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            tick.steps += 1
            tick.samples += int(batch[0].shape[0])
        if device.type == "cuda":
            torch.cuda.synchronize()
        tick.loss = float(loss.detach())
        if ckpt is not None:
            _save(ckpt, model, opt, scaler, epoch + 1, cfg)
            tick.checkpoint = str(ckpt)
        tick.peak_memory_mib = peak_memory_mib(device)
        trained += 1
        print(f"[{cfg.job_name}] epoch {epoch} done: {tick.steps} steps, loss {tick.loss:.4f}", file=sys.stderr,
              flush=True)
    if epochs.stopped:
        print(f"[{cfg.job_name}] stopped by the runtime after {trained} epoch(s); resumes from {ckpt}", file=sys.stderr, flush=True)
    epochs.exit_if_stopped()  # exit code 75 when the runtime asked it to stop
    reporter.end(epochs_trained=trained, final_epoch=cfg.epochs)
    reporter.close()
    return trained


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eaco.profiler.train", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    p.add_argument("--job-name", default="", help="name in reports and of the checkpoint file (default: the model)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps-per-epoch", type=int, default=100)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--vocab-size", type=int, default=32000)
    p.add_argument("--num-users", type=int, default=MOVIELENS_20M_USERS)
    p.add_argument("--num-items", type=int, default=MOVIELENS_20M_ITEMS)
    p.add_argument("--width-mult", type=float, default=1.0, help="scale every channel/hidden size (1 = published model)")
    p.add_argument("--amp", action="store_true", help="mixed precision (fp16 + GradScaler on CUDA, bf16 on CPU)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--checkpoint-dir", type=Path, default=None)
    p.add_argument("--report-file", type=Path, default=None, help="JSON-lines epoch reports (default $EACO_REPORT_FILE)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--no-data-parallel", action="store_true", help="use one GPU even if several are visible")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = default)")
    p.add_argument("--start-barrier", type=Path, default=None,
                   help="folder of the launcher's start barrier (default $EACO_START_BARRIER; none: start at once)")
    return p


def config_from_args(argv: Sequence[str] | None = None) -> TrainConfig:
    a = build_parser().parse_args(argv)
    return TrainConfig(
        model=a.model, job_name=a.job_name or a.model, batch_size=a.batch_size, epochs=a.epochs,
        steps_per_epoch=a.steps_per_epoch,
        shape=DataShape(a.image_size, a.num_classes, a.seq_len, a.vocab_size, a.num_users, a.num_items),
        width_mult=a.width_mult, amp=a.amp, device=a.device, workers=a.workers, checkpoint_dir=a.checkpoint_dir,
        report_file=a.report_file, resume=not a.no_resume, data_parallel=not a.no_data_parallel, seed=a.seed,
        threads=a.threads, start_barrier=a.start_barrier,
    )


def main(argv: Sequence[str] | None = None) -> int:
    t0 = time.perf_counter()
    cfg = config_from_args(argv)
    n = train(cfg)
    print(f"[{cfg.job_name}] trained {n} epoch(s) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
