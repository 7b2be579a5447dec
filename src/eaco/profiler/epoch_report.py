"""Per-epoch progress reports from a training job to whoever launched it (profiler, runtime).

Dependency-light on purpose (standard library only, no torch): any training script can import it.
A job writes one JSON object per line to a report file (``EACO_REPORT_FILE`` or an explicit
path); the parent tails the file. Records:

- ``{"event": "start", ...}``: the process started (pid, model, wall time).
- ``{"event": "epoch", "epoch": 3, "duration_s": ..., "samples": ..., ...}``: one finished epoch.
- ``{"event": "end", ...}``: training finished normally.
- ``{"event": "stopped", ...}``: the job stopped early on request (the runtime's stop file), its
  checkpoint on disk; it is about to exit with code 75. A launcher such as ``torchrun`` turns the
  code 75 of its processes into its own failure code: this record tells the runtime it stopped.

In a distributed job (several processes started by ``torchrun`` or another launcher that sets
``RANK``, or one process per node of the runtime's ``EACO_NODE_RANK``) only the process of
global rank 0 reports: the others' reporters write nothing, so an epoch is counted once however
many processes train it.

Use :class:`EpochReporter` directly, or :func:`timed_epochs` around a plain PyTorch loop::

    reporter = EpochReporter.from_env(job="resnet18")
    for epoch, tick in timed_epochs(reporter, range(start_epoch, epochs)):
        for x, y in loader:
            ...train...
            tick.samples += x.shape[0]
            tick.steps += 1
        save_checkpoint(...)          # the epoch is reported when the loop body ends
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

REPORT_FILE_ENV = "EACO_REPORT_FILE"
REPORT_VERSION = 1
JOB_EVENTS = ("start", "end", "stopped")  # the records besides "epoch"
GLOBAL_RANK_ENV = "RANK"  # set by torchrun (and torch.distributed's other launchers) for each process
NODE_RANK_ENV = "EACO_NODE_RANK"  # set by the runtime for each node of a job (eaco.runtime.distributed)


def is_reporting_process() -> bool:
    """Whether this process reports epochs: it is not part of a distributed job, or it is its
    global rank 0: ``$RANK`` unset, empty or 0, or where no launcher set ``$RANK`` (one process
    per node), the runtime's ``$EACO_NODE_RANK`` unset, empty or 0."""
    rank = os.environ.get(GLOBAL_RANK_ENV, "").strip() or os.environ.get(NODE_RANK_ENV, "").strip()
    return rank in ("", "0")


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """One finished epoch as the job saw it."""

    job: str
    epoch: int  # 0-based epoch index (absolute: a resumed job continues the count)
    duration_s: float  # wall time of the epoch (training steps, input pipeline, checkpoint)
    steps: int
    samples: int
    throughput_samples_per_s: float  # samples / duration_s
    end_time_s: float  # time.time() at the end of the epoch (Unix seconds)
    peak_memory_mib: float | None = None  # the job's own peak memory (CUDA reserved, else host RSS)
    # the most GPU memory the job's process reserved on one of its GPUs (PyTorch's caching
    # allocator, the CUDA context not included); None without a GPU. The runtime sizes the job's
    # share of a GPU from it (eaco.runtime.memory)
    peak_gpu_memory_mib: float | None = None
    loss: float | None = None  # last observed training loss (a sanity check that training happens)
    checkpoint: str | None = None  # path of the checkpoint written at the end of the epoch


@dataclass(frozen=True, slots=True)
class JobEvent:
    """A ``start`` or ``end`` record."""

    job: str
    event: str  # "start", "end" or "stopped"
    time_s: float  # time.time()
    pid: int
    detail: dict[str, Any] = field(default_factory=dict)


class EpochReporter:
    """Appends JSON lines to a report file (or any text stream); flushes each line."""

    def __init__(self, job: str, stream: TextIO | None) -> None:
        self.job = job
        self._stream = stream

    @classmethod
    def to_file(cls, job: str, path: str | Path) -> "EpochReporter":
        return cls(job, open(path, "a", encoding="utf-8", buffering=1))

    @classmethod
    def from_env(cls, job: str, path: str | Path | None = None) -> "EpochReporter":
        """Report to ``path``, else to ``$EACO_REPORT_FILE``, else nowhere (the job still runs).
        A process of a distributed job other than global rank 0 reports nowhere."""
        target = path or os.environ.get(REPORT_FILE_ENV)
        return cls.to_file(job, target) if target and is_reporting_process() else cls(job, None)

    def _write(self, payload: dict[str, Any]) -> None:
        if self._stream is None:
            return
        payload = {"v": REPORT_VERSION, **payload}
        self._stream.write(json.dumps(payload, sort_keys=True) + "\n")
        self._stream.flush()

    def start(self, **detail: Any) -> None:
        self._write({"event": "start", "job": self.job, "time_s": time.time(), "pid": os.getpid(), "detail": detail})

    def epoch(self, record: EpochRecord) -> None:
        self._write({"event": "epoch", **asdict(record)})

    def end(self, **detail: Any) -> None:
        self._write({"event": "end", "job": self.job, "time_s": time.time(), "pid": os.getpid(), "detail": detail})

    def stopped(self, **detail: Any) -> None:
        self._write({"event": "stopped", "job": self.job, "time_s": time.time(), "pid": os.getpid(), "detail": detail})

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


@dataclass(slots=True)
class EpochTick:
    """Mutable counters the loop body fills in for the current epoch."""

    epoch: int
    steps: int = 0
    samples: int = 0
    loss: float | None = None
    peak_memory_mib: float | None = None
    peak_gpu_memory_mib: float | None = None  # left None: filled from PyTorch when it uses CUDA
    checkpoint: str | None = None


def torch_peak_gpu_memory_mib() -> float | None:
    """The most memory PyTorch's allocator has reserved on one visible GPU in this process (MiB),
    or None when the process has not imported torch or not used CUDA. Never imports torch."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_initialized():
            return None
        return max(torch.cuda.max_memory_reserved(i) for i in range(torch.cuda.device_count())) / 2**20
    except (RuntimeError, ValueError):
        return None


def timed_epochs(reporter: EpochReporter, epochs: Iterable[int]) -> Iterator[tuple[int, EpochTick]]:
    """Yield ``(epoch, tick)``; when the loop body for an epoch returns, report it with its wall time.

    Under the profiler (``$EACO_START_BARRIER`` set) the first epoch waits at the start barrier, so
    that any training script that reports through this function starts together with the others
    of its set (:func:`wait_for_start`)."""
    first = True
    for epoch in epochs:
        if first:
            first = False
            barrier = os.environ.get(START_BARRIER_ENV)
            if barrier:
                wait_for_start(barrier, os.environ.get(JOB_NAME_ENV) or reporter.job)
        tick = EpochTick(epoch)
        t0 = time.perf_counter()
        yield epoch, tick
        duration_s = time.perf_counter() - t0
        gpu_mib = tick.peak_gpu_memory_mib if tick.peak_gpu_memory_mib is not None else torch_peak_gpu_memory_mib()
        reporter.epoch(
            EpochRecord(
                job=reporter.job,
                epoch=epoch,
                duration_s=duration_s,
                steps=tick.steps,
                samples=tick.samples,
                throughput_samples_per_s=tick.samples / duration_s if duration_s > 0 else 0.0,
                end_time_s=time.time(),
                peak_memory_mib=tick.peak_memory_mib,
                peak_gpu_memory_mib=gpu_mib,
                loss=tick.loss,
                checkpoint=tick.checkpoint,
            )
        )


# --- start barrier: co-located jobs begin training at the same moment ---------------------------

START_BARRIER_ENV = "EACO_START_BARRIER"
JOB_NAME_ENV = "EACO_JOB_NAME"  # the launcher's name for the job: its ready file at the barrier
GO_FILE = "go"
_passed: set[tuple[str, str]] = set()  # (barrier folder, job) this process has already passed


def ready_file(barrier_dir: str | Path, job: str) -> Path:
    return Path(barrier_dir) / f"{job}.ready"


def wait_for_start(barrier_dir: str | Path | None, job: str, timeout_s: float = 600.0, poll_s: float = 0.01) -> float:
    """Say this job is ready (model built, data loader made) and wait for the launcher's go.

    Protocol (files in ``barrier_dir``): the job creates ``<job>.ready``; the launcher, once every
    member is ready, creates ``go``. Returns the seconds waited. ``barrier_dir=None``: no barrier.
    A process passes a barrier once: calling again (the zoo's trainer waits, then its
    ``timed_epochs`` would) returns 0 at once.
    """
    if barrier_dir is None:
        return 0.0
    key = (str(barrier_dir), job)
    if key in _passed:
        return 0.0
    t0 = time.monotonic()
    ready_file(barrier_dir, job).touch()
    go = Path(barrier_dir) / GO_FILE
    while not go.exists():
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"{go}: no start signal after {timeout_s:.0f} s")
        time.sleep(poll_s)
    _passed.add(key)
    return time.monotonic() - t0


# --- the reading side --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportLog:
    """Everything one job reported, parsed."""

    job: str
    starts: tuple[JobEvent, ...]
    epochs: tuple[EpochRecord, ...]
    ended: bool


class ReportError(ValueError):
    pass


def parse_report_line(line: str, source: str = "<report>", line_no: int | None = None) -> EpochRecord | JobEvent:
    where = f"{source}:{line_no}" if line_no is not None else source
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{where}: not a JSON object ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ReportError(f"{where}: expected a JSON object")
    event = obj.get("event")
    try:
        if event == "epoch":
            names = EpochRecord.__dataclass_fields__
            return EpochRecord(**{k: obj[k] for k in names if k in obj})
        if event in JOB_EVENTS:
            return JobEvent(obj["job"], event, float(obj["time_s"]), int(obj["pid"]), dict(obj.get("detail") or {}))
    except (KeyError, TypeError) as exc:
        raise ReportError(f"{where}: field {exc}: missing or of the wrong type in a {event!r} record") from None
    raise ReportError(f"{where}: field 'event': expected 'start', 'epoch', 'end' or 'stopped', got {event!r}")


def read_report(path: str | Path, job: str = "") -> ReportLog:
    """Parse a whole report file (a partly written last line is ignored: the job may still run)."""
    p = Path(path)
    starts: list[JobEvent] = []
    epochs: list[EpochRecord] = []
    ended = False
    if p.exists():
        text = p.read_text(encoding="utf-8")
        lines = text.split("\n")
        complete = lines[:-1]  # the part after the last newline is incomplete (or empty)
        for i, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            rec = parse_report_line(line, str(p), i)
            if isinstance(rec, EpochRecord):
                epochs.append(rec)
                job = job or rec.job
            elif rec.event == "start":
                starts.append(rec)
                job = job or rec.job
            elif rec.event == "end":
                ended = True
    return ReportLog(job, tuple(starts), tuple(epochs), ended)
