"""Seeded Gavel-style workload generator.

A job is made of three independent draws, each from its own random stream (spawned from
``numpy.random.SeedSequence(seed)``, so e.g. changing the job-type rule leaves arrival times and
durations unchanged):

1. arrival: a Poisson process of ``arrival_rate_per_h`` jobs per hour (exponential gaps of mean
   ``3600 / rate`` s); the first job is at 0. ``arrival_rate_per_h=None`` submits all jobs at 0
   (a static workload);
2. ``(duration_s, num_gpus)``: one pair drawn uniformly, with replacement, from the 33,192 Philly
   pairs Gavel's generator uses (``traces/philly_duration_gpu_distribution.csv.gz``), so duration
   and GPU count keep their joint distribution. ``max_duration_s`` restricts the draw to pairs no
   longer than that (conditioning, not clipping); ``multi_gpu=False`` restricts it to the 1-GPU
   pairs (the duration distribution of Philly's single-GPU jobs);
3. job type: ``job_type_rule="uniform"`` (default, as Gavel does) picks uniformly among the
   catalogue's types; ``"philly_util"`` uses :class:`eaco.workloads.job_types.JobTypeAssigner`
   (utilisation drawn from the Philly CDF, nearest catalogue type).

Memory and utilisation come from the job type; epochs from
:func:`eaco.model.job.epochs_for_duration`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from eaco.colocation.catalog import JobCatalog
from eaco.errors import InputError
from eaco.paths import shared_file
from eaco.workloads._csvio import CsvTable, parse_float, parse_int
from eaco.workloads._defaults import resolve_catalog
from eaco.workloads.base import JobDraft, Workload, build_workload
from eaco.workloads.job_types import JobTypeAssigner
from eaco.workloads.util_cdf import UtilisationCdf, load_util_cdf

PHILLY_DURATION_GPU = ("traces", "philly_duration_gpu_distribution.csv.gz")
JobTypeRule = Literal["uniform", "philly_util"]


@dataclass(frozen=True, slots=True, eq=False)
class DurationGpuPairs:
    """Empirical joint distribution of (duration_s, num_gpus): one entry per observed job."""

    duration_s: np.ndarray  # float, > 0
    num_gpus: np.ndarray  # int, >= 1
    source: str

    def __len__(self) -> int:
        return int(self.duration_s.size)


def load_duration_gpu_pairs(path: str | Path | None = None) -> DurationGpuPairs:
    """Read a ``duration_s,num_gpus`` CSV (default: the shared Philly/Gavel one)."""
    p = Path(path) if path is not None else shared_file(*PHILLY_DURATION_GPU)
    table = CsvTable(p, required=("duration_s", "num_gpus"))
    src = table.source
    i_d, i_g = table.index["duration_s"], table.index["num_gpus"]
    durations: list[float] = []
    gpus: list[int] = []
    for line, row in table.rows():
        err = table.width_error(line, row)
        if err is not None:
            raise err
        durations.append(parse_float(src, line, "duration_s", row[i_d], low=0.0,
                                     low_inclusive=False, what="a duration in s"))
        gpus.append(parse_int(src, line, "num_gpus", row[i_g], low=1,
                              what="an integer number of GPUs"))
    if not durations:
        raise InputError(src, "expected at least one (duration_s, num_gpus) row")
    return DurationGpuPairs(np.asarray(durations), np.asarray(gpus, dtype=np.int64), src)


def generate_workload(
    num_jobs: int,
    arrival_rate_per_h: float | None,
    *,
    catalog: JobCatalog | None = None,
    seed: int = 0,
    duration_gpu_dist_path: str | Path | None = None,
    max_duration_s: float | None = None,
    multi_gpu: bool = True,
    job_type_rule: JobTypeRule = "uniform",
    util_cdf: UtilisationCdf | None = None,
    name: str = "generated",
) -> Workload:
    """Generate ``num_jobs`` jobs (see module docs for the three draws)."""
    if num_jobs < 0:
        raise ValueError(f"num_jobs must be >= 0, got {num_jobs}")
    if arrival_rate_per_h is not None and not (
        arrival_rate_per_h > 0 and math.isfinite(arrival_rate_per_h)
    ):
        raise ValueError(f"arrival_rate_per_h must be > 0 and finite (or None), got {arrival_rate_per_h}")
    if job_type_rule not in ("uniform", "philly_util"):
        raise ValueError(f"job_type_rule must be 'uniform' or 'philly_util', got {job_type_rule!r}")
    cat = resolve_catalog(catalog)
    if not cat.types:
        raise ValueError("the catalogue has no job types")

    pairs = load_duration_gpu_pairs(duration_gpu_dist_path)
    keep = np.ones(len(pairs), dtype=bool)
    if max_duration_s is not None:
        keep &= pairs.duration_s <= max_duration_s
    if not multi_gpu:
        keep &= pairs.num_gpus == 1
    durations, gpus = pairs.duration_s[keep], pairs.num_gpus[keep]
    if durations.size == 0:
        raise ValueError(
            f"{pairs.source}: no (duration, num_gpus) pair satisfies "
            f"max_duration_s={max_duration_s}, multi_gpu={multi_gpu}"
        )

    arrival_ss, pair_ss, type_ss = np.random.SeedSequence(seed).spawn(3)
    if arrival_rate_per_h is None:
        submit = np.zeros(num_jobs)
    else:
        gaps = np.random.default_rng(arrival_ss).exponential(3600.0 / arrival_rate_per_h, num_jobs)
        gaps[:1] = 0.0  # first job at 0
        submit = np.cumsum(gaps)
    picks = np.random.default_rng(pair_ss).integers(0, durations.size, num_jobs)
    job_durations, job_gpus = durations[picks], gpus[picks]

    type_rng = np.random.default_rng(type_ss)
    if job_type_rule == "uniform":
        type_idx = type_rng.integers(0, len(cat.types), num_jobs)
        names = [cat.types[i].name for i in type_idx.tolist()]
    else:
        cdf = util_cdf if util_cdf is not None else load_util_cdf()
        names = [s.name for s in JobTypeAssigner(cat, cdf, type_rng).assign_many(job_gpus)]

    drafts = [
        JobDraft(submit_time_s=s, duration_s=d, num_gpus=g, job_type=t)
        for s, d, g, t in zip(submit.tolist(), job_durations.tolist(), job_gpus.tolist(), names)
    ]
    rate = "static" if arrival_rate_per_h is None else f"{arrival_rate_per_h:g}/h"
    source = (
        f"generated(seed={seed}, jobs={num_jobs}, rate={rate}, types={job_type_rule}, "
        f"multi_gpu={multi_gpu}, max_duration_s={max_duration_s}, pairs={pairs.source})"
    )
    return build_workload(name, source, drafts, catalog=cat, assigner=None)
