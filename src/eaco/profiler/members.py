"""The jobs of a profiling experiment: zoo models, or your own training scripts.

A :class:`Member` says what to launch and what the job is called; its name is the job type of
the profile store (the key under which the simulator and EaCO's predictor find it). Two kinds:

- **zoo models** (:func:`zoo_members`): ``python -m eaco.profiler.train --model NAME`` with the
  experiment's :class:`~eaco.profiler.experiment.JobSettings`;
- **your own jobs** (:func:`spec_members`): the runtime's job specs (YAML,
  :mod:`eaco.runtime.spec`): ``command``, ``working_dir``, ``env`` and ``epochs`` are used; the
  job is profiled under its ``name``. The script must report its epochs through
  :func:`eaco.profiler.epoch_report.timed_epochs` (or :class:`eaco.runtime.control.RuntimeEpochs`),
  as it must for the runtime: that is also where it waits at the start barrier.

Per-run paths reach every job through its environment (:func:`run_environment`): the report
file, its own checkpoint folder, the start barrier and its name there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from eaco.errors import InputError
from eaco.profiler.epoch_report import JOB_NAME_ENV, REPORT_FILE_ENV, START_BARRIER_ENV
from eaco.runtime.control import CHECKPOINT_DIR_ENV

ZOO = "zoo"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True, slots=True)
class Member:
    """One job of the experiment."""

    name: str  # unique in the experiment; the profile's job type; no '+' (set ids join names with it)
    command: tuple[str, ...]  # argv; per-run paths come through the environment
    epochs: int  # the job must report this many epochs
    working_dir: str | None = None  # None: the profiler's own
    env: tuple[tuple[str, str], ...] = ()  # extra environment, sorted by name
    source: str = ZOO  # "zoo", or the spec file it came from
    batch_size: int | None = None  # known for zoo models; None for own jobs

    def fingerprint(self) -> dict[str, Any]:
        """What a run of this job depends on (the profiler's resume compares it)."""
        return {"name": self.name, "command": list(self.command), "epochs": self.epochs,
                "working_dir": self.working_dir, "env": [list(kv) for kv in self.env]}

    def record(self) -> dict[str, Any]:
        """For the provenance: everything but the environment's values (they may hold secrets)."""
        return {"name": self.name, "source": self.source, "command": list(self.command), "epochs": self.epochs,
                "working_dir": self.working_dir, "env_names": [k for k, _ in self.env]}


def zoo_members(models: Sequence[str], settings: Any) -> tuple[Member, ...]:
    """One member per zoo model; ``settings`` is the experiment's ``JobSettings``."""
    return tuple(Member(m, tuple(settings.argv(m, m)), settings.epochs, batch_size=settings.batch_size) for m in models)


def spec_members(paths: Sequence[str | Path]) -> tuple[Member, ...]:
    """One member per runtime job spec file; an error names the file and field."""
    from eaco.runtime.spec import load_spec  # pydantic + yaml: only when specs are given

    out = []
    for path in paths:
        spec = load_spec(path)
        out.append(Member(
            name=spec.name, command=tuple(spec.command), epochs=spec.epochs, working_dir=spec.working_dir,
            env=tuple(sorted(spec.env.items())), source=str(path),
        ))
    return tuple(out)


def parse_job_files(text: str) -> tuple[Path, ...]:
    """``--jobs a.yaml,b.yaml`` -> paths (each must exist)."""
    paths = tuple(Path(p.strip()) for p in text.split(",") if p.strip())
    if not paths:
        raise InputError("--jobs", "expected comma-separated job spec files (YAML)")
    for p in paths:
        if not p.is_file():
            raise InputError("--jobs", f"no such job spec file: {p}")
    return paths


def check_members(members: Sequence[Member]) -> tuple[Member, ...]:
    """Names unique, usable as set ids and file names; an error names the clash."""
    if not members:
        raise InputError("--models/--jobs", "expected at least one job to profile")
    seen: dict[str, str] = {}
    for m in members:
        if not _NAME.match(m.name):
            raise InputError(m.source, f"job name {m.name!r}: expected letters, digits, '_', '.' or '-'", field="name")
        if m.name in seen:
            raise InputError(m.source, f"job name {m.name!r} is also the name of {seen[m.name]}: every profiled job"
                                       " needs its own name (it becomes the job type of the profile)", field="name")
        seen[m.name] = "a zoo model" if m.source == ZOO else m.source
    return tuple(members)


def run_environment(base: Mapping[str, str], member: Member, report_file: Path, checkpoint_dir: Path,
                    barrier: Path | None) -> dict[str, str]:
    """The job's environment in one run: ``base``, then its own ``env``, then the run's paths."""
    env = dict(base)
    env.update(dict(member.env))
    env.update({REPORT_FILE_ENV: str(report_file), CHECKPOINT_DIR_ENV: str(checkpoint_dir), JOB_NAME_ENV: member.name})
    if barrier is not None:
        env[START_BARRIER_ENV] = str(barrier)
    else:
        env.pop(START_BARRIER_ENV, None)
    return env
