"""The job side of the runtime: epoch reports plus a stop request seen at each epoch end.

Standard library only (any training script can import it). Builds on
:mod:`eaco.profiler.epoch_report` without changing it: a job that only uses ``timed_epochs``
still reports epochs; one that uses :class:`RuntimeEpochs` can also be stopped at an epoch end
(for an undo) and then exits with :data:`EXIT_STOPPED` after its checkpoint::

    epochs = RuntimeEpochs.from_env(job="mlp", start=resume_epoch, stop=total_epochs)
    for epoch, tick in epochs:
        ...train one epoch, tick.samples += ...; save the checkpoint...
    epochs.exit_if_stopped()          # exits with EXIT_STOPPED when the runtime asked to stop

Protocol: the runtime sets ``EACO_CONTROL_DIR``; it asks the job to stop by creating the file
``stop`` there. The job checks after every reported epoch (so its checkpoint is on disk).

A distributed job (``torch.distributed`` initialised, more than one process) must stop all its
processes after the same epoch, or the ones that go on wait forever in their next collective:
:class:`RuntimeEpochs` then takes the stop decision together (an all-reduce of each process's
view of the stop file, the most wins), so every process stops when any of them saw the request.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

from eaco.profiler.epoch_report import EpochReporter, EpochTick, timed_epochs

CONTROL_DIR_ENV = "EACO_CONTROL_DIR"
CHECKPOINT_DIR_ENV = "EACO_CHECKPOINT_DIR"
JOB_ID_ENV = "EACO_JOB_ID"
ATTEMPT_ENV = "EACO_ATTEMPT"
STOP_FILE = "stop"
EXIT_STOPPED = 75  # EX_TEMPFAIL: stopped at an epoch end on request; resume from the checkpoint


def stop_file(control_dir: str | Path) -> Path:
    return Path(control_dir) / STOP_FILE


def request_stop(control_dir: str | Path) -> None:
    """The runtime's side: ask the job to stop at its next epoch end."""
    Path(control_dir).mkdir(parents=True, exist_ok=True)
    stop_file(control_dir).touch()


def clear_stop(control_dir: str | Path) -> None:
    stop_file(control_dir).unlink(missing_ok=True)


def stop_requested(control_dir: str | Path | None = None) -> bool:
    """Whether the runtime asked this job to stop (``$EACO_CONTROL_DIR`` when no folder given)."""
    target = control_dir or os.environ.get(CONTROL_DIR_ENV)
    return bool(target) and stop_file(target).exists()  # type: ignore[arg-type]


def agreed_stop(requested: bool) -> bool:
    """``requested`` as all processes of this job see it: in a distributed job (torch.distributed
    initialised with more than one process) true when any process saw a stop request, the same
    answer in every process; else ``requested`` itself. Imports nothing: torch is used only when
    the job has loaded torch.distributed already."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() <= 1:
        return requested
    torch = sys.modules["torch"]
    device = "cpu"
    if dist.get_backend() == "nccl":  # NCCL reduces CUDA tensors only
        device = f"cuda:{torch.cuda.current_device()}"
    flag = torch.tensor([1 if requested else 0], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(int(flag.item()))


class RuntimeEpochs:
    """Like ``timed_epochs`` (same records), but ends early, after a reported epoch, when a stop was requested."""

    def __init__(self, reporter: EpochReporter, start: int, stop: int, control_dir: str | Path | None = None) -> None:
        self.reporter = reporter
        self.start = start
        self.stop = stop
        self.control_dir = control_dir if control_dir is not None else os.environ.get(CONTROL_DIR_ENV)
        self.stopped = False

    @classmethod
    def from_env(cls, job: str, start: int, stop: int) -> "RuntimeEpochs":
        return cls(EpochReporter.from_env(job), start, stop)

    def __iter__(self) -> Iterator[tuple[int, EpochTick]]:
        for epoch, tick in timed_epochs(self.reporter, range(self.start, self.stop)):
            # the previous epoch has been reported (and checkpointed): honour a stop request
            if epoch > self.start and agreed_stop(bool(self.control_dir) and stop_requested(self.control_dir)):
                self.stopped = True
                self.reporter.stopped(next_epoch=epoch)
                return
            yield epoch, tick

    def exit_if_stopped(self) -> None:
        if self.stopped:
            self.reporter.close()
            sys.exit(EXIT_STOPPED)
