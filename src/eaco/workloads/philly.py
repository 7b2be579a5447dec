"""Loader for the Microsoft Philly trace (as processed by the Pollux artifact).

File: ``traces/philly.csv.gz``; columns ``timestamp`` (submit, local wall-clock time
``YYYY-mm-dd HH:MM:SS``), ``duration`` (s), ``num_gpus``, ``gpu_time`` (GPU-seconds),
``cluster`` (virtual-cluster id). 82,247 jobs, 2017-09-04 .. 2017-12-22.

Per row:

- submit time: the timestamp read as naive wall-clock time (the trace does not name its time
  zone, so no daylight-saving correction is made); the workload is rebased to its first job;
- ``duration`` must be > 0 and ``num_gpus`` an integer >= 1; otherwise the row is bad;
- ``gpu_time`` must equal ``duration * num_gpus`` (relative tolerance 1e-6), else the row is bad;
- epochs: :func:`eaco.model.job.epochs_for_duration` of the duration;
- job type: :class:`eaco.workloads.job_types.JobTypeAssigner` (the trace has none), assigned in
  submit order after sorting; memory and utilisation come from the chosen type;
- ``cluster`` is checked to be non-empty but not used (jobs may run anywhere).
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

from eaco.colocation.catalog import JobCatalog
from eaco.errors import InputError
from eaco.model.gpu import gpu_type as lookup_gpu_type
from eaco.paths import shared_file
from eaco.workloads._csvio import CsvTable, parse_int
from eaco.workloads._defaults import resolve_catalog, workload_from_rows
from eaco.workloads.base import JobDraft, Workload
from eaco.workloads.util_cdf import UtilisationCdf

PHILLY_TRACE = ("traces", "philly.csv.gz")
PHILLY_COLUMNS = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")
_EPOCH = datetime(1970, 1, 1)
_GPU_TIME_RTOL = 1e-6


def load_philly(
    path: str | Path | None = None,
    *,
    catalog: JobCatalog | None = None,
    seed: int = 0,
    limit: int | None = None,
    skip_bad_rows: bool = False,
    gpu_type: str | None = None,
    util_cdf: UtilisationCdf | None = None,
) -> Workload:
    """Load the Philly trace as a :class:`Workload`.

    ``limit`` keeps the ``limit`` earliest-submitted jobs (a prefix of the full load).
    ``gpu_type`` pins every job to one GPU type (default: any). ``seed`` drives job-type
    assignment. Bad rows raise :class:`eaco.errors.InputError` unless ``skip_bad_rows``.
    """
    p = Path(path) if path is not None else shared_file(*PHILLY_TRACE)
    cat = resolve_catalog(catalog)
    pinned = lookup_gpu_type(gpu_type).name if gpu_type is not None else None
    table = CsvTable(p, required=PHILLY_COLUMNS)
    src = table.source
    i_ts, i_dur, i_gpu, i_gt, i_cl = (table.index[c] for c in PHILLY_COLUMNS)

    def parse(line: int, row: list[str]) -> JobDraft:
        text = row[i_ts]
        try:
            submit_s = (datetime.fromisoformat(text.strip()) - _EPOCH).total_seconds()
        except ValueError:
            raise InputError(src, f"expected a time 'YYYY-mm-dd HH:MM:SS', got {text!r}",
                             line=line, field="timestamp") from None
        try:
            duration_s = float(row[i_dur])
        except ValueError:
            duration_s = math.nan
        if not (duration_s > 0 and math.isfinite(duration_s)):
            raise InputError(src, f"expected a duration in seconds > 0, got {row[i_dur]!r}",
                             line=line, field="duration")
        try:
            num_gpus = int(row[i_gpu])
        except ValueError:
            num_gpus = parse_int(src, line, "num_gpus", row[i_gpu], low=1,
                                 what="an integer number of GPUs")
        if num_gpus < 1:
            raise InputError(src, f"expected an integer number of GPUs >= 1, got {row[i_gpu]!r}",
                             line=line, field="num_gpus")
        try:
            gpu_time = float(row[i_gt])
        except ValueError:
            gpu_time = math.nan
        expected = duration_s * num_gpus
        if not abs(gpu_time - expected) <= _GPU_TIME_RTOL * expected:
            raise InputError(src, f"expected duration x num_gpus = {expected:g} GPU-seconds, "
                             f"got {row[i_gt]!r}", line=line, field="gpu_time")
        if not row[i_cl].strip():
            raise InputError(src, "expected a virtual-cluster id, got an empty field",
                             line=line, field="cluster")
        return JobDraft(submit_s, duration_s, num_gpus, gpu_type=pinned)

    return workload_from_rows("philly", table, parse, skip_bad_rows=skip_bad_rows, catalog=cat, seed=seed,
                              util_cdf=util_cdf, limit=limit)
