"""Run training jobs as separate processes, alone or several at once, while sampling telemetry.

Each run launches one process per member (:mod:`eaco.profiler.members`: a zoo model's
``python -m eaco.profiler.train``, or your own job's command) at the same moment (a co-located set
shares the GPU(s) by plain time-slicing, as in the paper), releases them together through a start
barrier, waits for all of them, and returns their epoch reports plus the telemetry of the run
window (first launch to last exit).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from eaco.energy.host_power import HostPowerModel
from eaco.profiler.epoch_report import GO_FILE, EpochRecord, read_report, ready_file
from eaco.profiler.members import ZOO, Member, run_environment
from eaco.profiler.summary import TelemetrySummary, summarize
from eaco.profiler.telemetry import GpuSample, GpuSource, HostSample, TelemetrySampler

POLL_S = 0.1
LOG_TAIL_CHARS = 2000
_BARRIER_HINT = (" (a job must report its epochs through eaco.profiler.epoch_report.timed_epochs or"
                 " eaco.runtime.control.RuntimeEpochs, which wait there; docs/profiler.md)")


class ProfilerError(RuntimeError):
    """A training process failed or ran past its time limit."""


@dataclass(frozen=True, slots=True)
class JobSettings:
    """What every training process of an experiment gets (see ``python -m eaco.profiler.train --help``)."""

    batch_size: int = 8
    epochs: int = 2
    steps_per_epoch: int = 4
    image_size: int = 64
    num_classes: int = 100
    seq_len: int = 32
    vocab_size: int = 2000
    num_users: int = 1000
    num_items: int = 1000
    width_mult: float = 0.25
    amp: bool = False
    device: str = "auto"
    workers: int = 1
    threads: int = 0  # torch threads per process (0 = default)
    data_parallel: bool = True

    def argv(self, model: str, job_name: str) -> list[str]:
        """The zoo trainer's command line; the report file, checkpoint folder and start barrier
        come through the environment (:func:`eaco.profiler.members.run_environment`)."""
        args = [
            sys.executable, "-m", "eaco.profiler.train", "--model", model, "--job-name", job_name,
            "--batch-size", str(self.batch_size), "--epochs", str(self.epochs),
            "--steps-per-epoch", str(self.steps_per_epoch), "--image-size", str(self.image_size),
            "--num-classes", str(self.num_classes), "--seq-len", str(self.seq_len),
            "--vocab-size", str(self.vocab_size), "--num-users", str(self.num_users),
            "--num-items", str(self.num_items), "--width-mult", str(self.width_mult), "--device", self.device,
            "--workers", str(self.workers), "--threads", str(self.threads), "--no-resume",
        ]
        if self.amp:
            args.append("--amp")
        if not self.data_parallel:
            args.append("--no-data-parallel")
        return args


@dataclass(frozen=True, slots=True)
class JobOutcome:
    job_name: str
    model: str  # the job's type: a zoo model's name, or an own job's name
    pid: int
    launch_s: float  # since the run started (wall clock, time.time)
    exit_s: float
    return_code: int
    epochs: tuple[EpochRecord, ...]
    log_path: Path

    @property
    def jct_s(self) -> float:
        return self.exit_s - self.launch_s


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_id: str  # "alone-resnet18", "set-alexnet+resnet18"
    models: tuple[str, ...]  # the members' names
    jobs: tuple[JobOutcome, ...]
    start_time_s: float  # time.time() at the start
    duration_s: float
    telemetry: TelemetrySummary
    gpu_samples: tuple[GpuSample, ...]
    host_samples: tuple[HostSample, ...]
    sampler_errors: tuple[str, ...]


def parse_models(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not names:
        raise ValueError("models: expected at least one model name")
    from eaco.profiler.zoo import zoo_entry  # imports torch: only when models are named

    for n in names:
        zoo_entry(n)  # KeyError lists the known names
    return names


SET_WORDS = {"none": 0, "pairs": 2, "triples": 3, "quads": 4}


def parse_sets(text: str, models: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """``"pairs,triples,all"`` (or sizes ``"2,3"``) -> every combination of ``models`` (the jobs'
    names) of those sizes."""
    sizes: list[int] = []
    for word in (w.strip().lower() for w in text.split(",") if w.strip()):
        if word == "all":
            if len(models) >= 2:  # one job: nothing to run it with
                sizes.append(len(models))
        elif word in SET_WORDS:
            sizes.append(SET_WORDS[word])
        elif word.isdigit():
            sizes.append(int(word))
        else:
            raise ValueError(f"sets: expected pairs, triples, quads, all, none or a set size, got {word!r}")
    out: list[tuple[str, ...]] = []
    for k in dict.fromkeys(sizes):
        if k == 0:
            continue
        if not 2 <= k <= len(models):
            raise ValueError(f"sets: a set of {k} needs 2..{len(models)} jobs (chosen: {', '.join(models)})")
        out.extend(itertools.combinations(models, k))
    return tuple(dict.fromkeys(out))


def _tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return ""


def run_together(
    run_id: str,
    members: Sequence[Member],
    run_dir: Path,
    gpu_source: GpuSource | None,
    sample_hz: float = 10.0,
    host_model: HostPowerModel | None = None,
    cuda_visible_devices: str | None = None,
    timeout_s: float = 3600.0,
    on_poll: Callable[[int, int], None] | None = None,
    cpu_util: Callable[[], float] | None = None,
) -> RunOutcome:
    """Launch one process per member at once; release them together through a start barrier once
    all are set up; wait for all; return reports and telemetry.

    ``on_poll(epochs_done, epochs_total)`` is called while waiting (progress display).
    """
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ValueError(f"{run_id}: every member needs its own name, got {', '.join(names)}")
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a fresh run: no stale checkpoints or reports
    run_dir.mkdir(parents=True)
    barrier = run_dir / "barrier"
    barrier.mkdir()
    base_env = dict(os.environ, PYTHONUNBUFFERED="1", CUDA_DEVICE_ORDER="PCI_BUS_ID")
    if cuda_visible_devices is not None:
        base_env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
    sampler = TelemetrySampler(gpu_source, sample_hz, cpu_util=cpu_util, host_model=host_model)
    procs: list[tuple[Member, subprocess.Popen[bytes], float, Path, Path]] = []
    exits: dict[str, tuple[float, int]] = {}
    total_epochs = sum(m.epochs for m in members)
    start_wall = time.time()
    sampler.start()
    try:
        for member in members:
            report, log = run_dir / f"{member.name}.jsonl", run_dir / f"{member.name}.log"
            env = run_environment(base_env, member, report, run_dir / "checkpoints" / member.name, barrier)
            with open(log, "wb") as log_fh:
                try:
                    p = subprocess.Popen(list(member.command), cwd=member.working_dir, env=env,
                                         stdout=log_fh, stderr=subprocess.STDOUT)
                except OSError as exc:
                    raise ProfilerError(f"{run_id}: cannot start job {member.name} ({member.source}):"
                                        f" {' '.join(member.command)}: {exc}") from None
            procs.append((member, p, time.time() - start_wall, report, log))
        # Start barrier: every member builds its model and data loader, then all start training at once.
        while not all(ready_file(barrier, name).exists() for name in names):
            time.sleep(POLL_S / 10)
            for member, p, _, _, log in procs:
                if p.poll() is not None and not ready_file(barrier, member.name).exists():
                    raise ProfilerError(
                        f"{run_id}: job {member.name} exited (code {p.returncode}) before it was ready at the start"
                        f" barrier{_BARRIER_HINT if member.source != ZOO else ''}; log {log}:\n{_tail(log)}")
            if time.time() - start_wall > timeout_s:
                late = [n for n in names if not ready_file(barrier, n).exists()]
                raise ProfilerError(f"{run_id}: {', '.join(late)} not ready after {timeout_s:.0f} s (limit);"
                                    f" stopped{_BARRIER_HINT}")
        (barrier / GO_FILE).touch()
        while len(exits) < len(procs):
            time.sleep(POLL_S)
            now = time.time() - start_wall
            for member, p, _, _, log in procs:
                if member.name in exits:
                    continue
                rc = p.poll()
                if rc is not None:
                    exits[member.name] = (now, rc)
                    if rc != 0:
                        raise ProfilerError(f"{run_id}: job {member.name} exited with code {rc}; log {log}:\n{_tail(log)}")
            if now > timeout_s:
                raise ProfilerError(f"{run_id}: still running after {timeout_s:.0f} s (limit); stopped")
            if on_poll is not None:
                done = sum(len(read_report(r).epochs) for *_, r, _ in procs)
                on_poll(done, total_epochs)
    finally:
        for _, p, _, _, _ in procs:
            if p.poll() is None:
                p.kill()  # only the processes this run started
                p.wait()
        sampler.stop()
    duration_s = time.time() - start_wall
    jobs = []
    for member, p, launch_s, report, log in procs:
        rep = read_report(report, member.name)
        if len(rep.epochs) != member.epochs:
            raise ProfilerError(
                f"{run_id}: job {member.name} reported {len(rep.epochs)} of {member.epochs} epochs"
                f" (ended: {rep.ended}); report {report}; log {log}:\n{_tail(log)}"
            )
        exit_s, rc = exits[member.name]  # seen by polling: up to POLL_S late
        jobs.append(JobOutcome(member.name, member.name, p.pid, launch_s, exit_s, rc, rep.epochs, log))
    devices = gpu_source.devices if gpu_source is not None else ()
    gpu_s, host_s = sampler.gpu_samples(), sampler.host_samples()
    return RunOutcome(
        run_id=run_id,
        models=tuple(names),
        jobs=tuple(jobs),
        start_time_s=start_wall,
        duration_s=duration_s,
        telemetry=summarize(gpu_s, host_s, duration_s, devices),
        gpu_samples=gpu_s,
        host_samples=host_s,
        sampler_errors=tuple(sampler.errors),
    )
