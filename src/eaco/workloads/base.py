"""A workload: an ordered, immutable list of jobs, and how loaders turn parsed rows into one.

Invariants of :class:`Workload` (checked on construction):

- jobs are sorted by ``submit_time_s`` (ties keep the order of the source);
- ``job_id`` runs 0..n-1 in that order;
- times are rebased so the first submission is at 0 (deadlines are shifted by the same amount).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from eaco.colocation.catalog import REFERENCE_GPU, JobCatalog, JobTypeSpec
from eaco.model.job import Job, epochs_for_duration
from eaco.units import S_PER_H
from eaco.workloads.job_types import JobTypeAssigner


@dataclass(frozen=True, slots=True)
class Workload:
    """Jobs of one trace or generator run.

    ``skipped_rows``: bad input rows skipped under ``skip_bad_rows=True``.
    ``excluded``: rows left out on purpose, by reason (e.g. ``("cpu_only", 1088)``); not bad rows.
    """

    name: str
    jobs: tuple[Job, ...]
    source: str
    skipped_rows: int = 0
    excluded: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        prev = -math.inf
        for k, job in enumerate(self.jobs):
            if job.job_id != k:
                raise ValueError(f"{self.name}: job at position {k} has job_id {job.job_id}")
            if job.submit_time_s < prev:
                raise ValueError(f"{self.name}: job {k} submitted before job {k - 1}")
            prev = job.submit_time_s
        if self.jobs and self.jobs[0].submit_time_s != 0.0:
            raise ValueError(f"{self.name}: first job must be submitted at 0 (rebased times)")
        if self.skipped_rows < 0:
            raise ValueError(f"{self.name}: skipped_rows must be >= 0")

    # --- summaries -----------------------------------------------------------------------

    @property
    def num_jobs(self) -> int:
        return len(self.jobs)

    @property
    def num_excluded(self) -> int:
        return sum(n for _, n in self.excluded)

    def excluded_count(self, reason: str) -> int:
        return dict(self.excluded).get(reason, 0)

    @property
    def span_s(self) -> float:
        """Time from the first to the last submission."""
        return self.jobs[-1].submit_time_s if self.jobs else 0.0

    def total_gpu_hours(self) -> float:
        """Sum over jobs of num_gpus x exclusive duration on the reference GPU, in hours."""
        return math.fsum(j.num_gpus * j.exclusive_duration_s for j in self.jobs) / S_PER_H

    def gpu_count_histogram(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for j in self.jobs:
            out[j.num_gpus] = out.get(j.num_gpus, 0) + 1
        return dict(sorted(out.items()))

    def job_type_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for j in self.jobs:
            out[j.job_type] = out.get(j.job_type, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def mean_gpu_util(self) -> float:
        """GPU-weighted mean exclusive utilisation of the jobs (0 for an empty workload)."""
        gpus = sum(j.num_gpus for j in self.jobs)
        return sum(j.gpu_util * j.num_gpus for j in self.jobs) / gpus if gpus else 0.0

    def summary(self) -> dict[str, object]:
        """Plain-data summary for reports and logs."""
        return {
            "name": self.name,
            "source": self.source,
            "num_jobs": self.num_jobs,
            "skipped_rows": self.skipped_rows,
            "excluded": dict(self.excluded),
            "span_s": self.span_s,
            "total_gpu_hours": self.total_gpu_hours(),
            "gpu_count_histogram": self.gpu_count_histogram(),
        }


class JobDraft(NamedTuple):
    """One parsed trace row before ids, rebasing and job-type assignment.

    ``None`` fields are filled when the workload is built: ``job_type`` by the assigner (aiming at
    ``target_util`` when given, else at a utilisation drawn from the CDF), ``memory_gb`` and
    ``gpu_util`` from the job type, ``num_epochs`` by :func:`eaco.model.job.epochs_for_duration`.

    ``duration_s`` is the exclusive run time on the reference GPU (V100) unless
    ``duration_gpu_type`` names the GPU type it was measured on; then it is converted with the
    job type's relative speed: time on V100 = time on that type x ``speed_on(type)``.
    """

    submit_time_s: float
    duration_s: float
    num_gpus: int
    job_type: str | None = None
    target_util: float | None = None
    memory_gb: float | None = None
    gpu_util: float | None = None
    gpu_type: str | None = None
    deadline_s: float = math.inf
    priority: int = 0
    num_epochs: int | None = None
    duration_gpu_type: str | None = None
    exclusive: bool = False


def build_workload(
    name: str,
    source: str,
    drafts: Iterable[JobDraft],
    *,
    catalog: JobCatalog,
    assigner: JobTypeAssigner | Callable[[], JobTypeAssigner] | None,
    skipped_rows: int = 0,
    excluded: Mapping[str, int] | Sequence[tuple[str, int]] = (),
    limit: int | None = None,
) -> Workload:
    """Sort drafts by submit time (stable), keep the first ``limit``, assign types, make jobs.

    ``assigner`` may be a factory, called only if some draft has no job type.
    Types are assigned in submit order *after* the cut, so ``limit=N`` gives exactly the first N
    jobs of the full load (same types too, for the same seed).
    """
    ordered = sorted(drafts, key=lambda d: d.submit_time_s)
    if limit is not None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        ordered = ordered[:limit]

    type_names: list[str | None] = [d.job_type for d in ordered]
    need = [k for k, t in enumerate(type_names) if t is None]
    if need:
        if assigner is None:
            raise ValueError(f"{name}: jobs without a job type need a JobTypeAssigner")
        if not isinstance(assigner, JobTypeAssigner):
            assigner = assigner()  # built only when needed (it reads the utilisation CDF)
        targets = np.array(
            [math.nan if ordered[k].target_util is None else ordered[k].target_util for k in need]
        )
        specs = assigner.assign_many([ordered[k].num_gpus for k in need], targets)
        for k, spec in zip(need, specs):
            type_names[k] = spec.name

    t0 = ordered[0].submit_time_s if ordered else 0.0
    jobs: list[Job] = []
    spec_cache: dict[str, JobTypeSpec] = {}
    for k, (d, tname) in enumerate(zip(ordered, type_names)):
        if tname is None:  # unreachable: every missing type was assigned above
            raise RuntimeError(f"{name}: job {k} has no job type")
        jt = spec_cache.get(tname)
        if jt is None:
            jt = catalog.get(tname)
            spec_cache[tname] = jt
        duration_s = d.duration_s
        if d.duration_gpu_type is not None and d.duration_gpu_type != REFERENCE_GPU:
            duration_s *= jt.speed_on(d.duration_gpu_type)
        if d.num_epochs is None:
            num_epochs, epoch_s = epochs_for_duration(duration_s)
        else:
            num_epochs, epoch_s = d.num_epochs, duration_s / d.num_epochs
        gpu_util = d.gpu_util
        if gpu_util is None:
            gpu_util = jt.util_on(d.gpu_type or REFERENCE_GPU)
        memory_gb = d.memory_gb if d.memory_gb is not None else jt.memory_gb
        jobs.append(
            Job(
                job_id=k,
                submit_time_s=d.submit_time_s - t0,
                num_gpus=d.num_gpus,
                job_type=tname,
                num_epochs=num_epochs,
                epoch_duration_s=epoch_s,
                memory_gb=memory_gb,
                gpu_util=gpu_util,
                gpu_type=d.gpu_type,
                deadline_s=d.deadline_s - t0,
                priority=d.priority,
                exclusive=d.exclusive,
            )
        )
    excl = tuple(excluded.items()) if isinstance(excluded, Mapping) else tuple(excluded)
    return Workload(
        name=name,
        jobs=tuple(jobs),
        source=source,
        skipped_rows=skipped_rows,
        excluded=excl,
    )
