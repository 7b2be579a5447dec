"""Loader for a user-supplied CSV trace (plain or ``.gz``).

Required columns: ``submit_time_s``, ``duration_s`` (exclusive run time on the reference V100,
> 0), ``num_gpus`` (integer >= 1).

Optional columns (an empty cell means "not given"):

- ``job_type``: a catalogue type name; not given -> assigned by
  :class:`eaco.workloads.job_types.JobTypeAssigner` (seeded by ``seed``);
- ``gpu_type``: a known GPU type name (case-insensitive), or empty for any;
- ``deadline_s``: absolute deadline on the same clock as ``submit_time_s``, > submit time;
  empty -> no deadline;
- ``priority``: integer (> 0 = high priority); empty -> 0;
- ``memory_gb``: per-GPU memory >= 0, overriding the type's; empty -> from the type;
- ``gpu_util``: exclusive utilisation 0..1, overriding the type's; empty -> from the type;
- ``epochs``: integer >= 1; the duration is split into that many equal epochs; empty ->
  :func:`eaco.model.job.epochs_for_duration`;
- ``exclusive``: ``true``/``false`` (also ``1``/``0``, ``yes``/``no``): the job never shares a
  GPU (:attr:`eaco.model.job.Job.exclusive`); empty -> false.

Other columns (names, ids, notes) are ignored. Times are rebased so the first job submits at 0.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from eaco.colocation.catalog import JobCatalog
from eaco.errors import InputError
from eaco.model.gpu import GPU_TYPES
from eaco.workloads._csvio import CsvTable, parse_float, parse_int
from eaco.workloads._defaults import resolve_catalog, workload_from_rows
from eaco.workloads.base import JobDraft, Workload
from eaco.workloads.util_cdf import UtilisationCdf

REQUIRED_COLUMNS = ("submit_time_s", "duration_s", "num_gpus")
OPTIONAL_COLUMNS = ("job_type", "gpu_type", "deadline_s", "priority", "memory_gb", "gpu_util",
                    "epochs", "exclusive")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no", "")


def load_csv_trace(
    path: str | Path,
    *,
    catalog: JobCatalog | None = None,
    seed: int = 0,
    skip_bad_rows: bool = False,
    name: str | None = None,
    limit: int | None = None,
    util_cdf: UtilisationCdf | None = None,
) -> Workload:
    """Load a CSV trace (see module docs for columns); ``name`` defaults to the file's stem."""
    p = Path(path)
    cat = resolve_catalog(catalog)
    table = CsvTable(p, required=REQUIRED_COLUMNS)
    src = table.source
    ix = table.index
    optional = {c: ix.get(c) for c in OPTIONAL_COLUMNS}

    def cell(row: list[str], column: str) -> str:
        i = optional[column]
        return "" if i is None else row[i].strip()

    def parse(line: int, row: list[str]) -> JobDraft:
        submit = parse_float(src, line, "submit_time_s", row[ix["submit_time_s"]].strip(),
                             what="a submit time in s")
        duration = parse_float(src, line, "duration_s", row[ix["duration_s"]].strip(), low=0.0,
                               low_inclusive=False, what="a duration in s")
        num_gpus = parse_int(src, line, "num_gpus", row[ix["num_gpus"]].strip(), low=1,
                             what="an integer number of GPUs")
        job_type = cell(row, "job_type") or None
        if job_type is not None and job_type not in cat:
            known = ", ".join(cat.names())
            raise InputError(src, f"expected a catalogue job type (one of: {known}), "
                             f"got {job_type!r}", line=line, field="job_type")
        gpu = cell(row, "gpu_type").lower() or None
        if gpu is not None and gpu not in GPU_TYPES:
            raise InputError(src, f"expected a GPU type among {', '.join(sorted(GPU_TYPES))} "
                             f"or empty, got {gpu!r}", line=line, field="gpu_type")
        text = cell(row, "deadline_s")
        deadline = math.inf
        if text:
            deadline = parse_float(src, line, "deadline_s", text, low=submit, low_inclusive=False,
                                   what="an absolute deadline in s after submit_time_s")
        text = cell(row, "priority")
        priority = parse_int(src, line, "priority", text, what="an integer priority") if text else 0
        text = cell(row, "memory_gb")
        memory = (parse_float(src, line, "memory_gb", text, low=0.0, what="memory in GB per GPU")
                  if text else None)
        text = cell(row, "gpu_util")
        util = (parse_float(src, line, "gpu_util", text, low=0.0, high=1.0,
                            what="a utilisation fraction") if text else None)
        text = cell(row, "epochs")
        epochs = parse_int(src, line, "epochs", text, low=1, what="an integer number of epochs") \
            if text else None
        text = cell(row, "exclusive").lower()
        if text not in _TRUE + _FALSE:
            raise InputError(src, f"expected true or false (or 1/0, yes/no, empty), got {text!r}", line=line,
                             field="exclusive")
        return JobDraft(
            submit_time_s=submit,
            duration_s=duration,
            num_gpus=num_gpus,
            job_type=job_type,
            memory_gb=memory,
            gpu_util=util,
            gpu_type=gpu,
            deadline_s=deadline,
            priority=priority,
            num_epochs=epochs,
            exclusive=text in _TRUE,
        )

    return workload_from_rows(
        name if name is not None else p.name.split(".")[0], table, parse, skip_bad_rows=skip_bad_rows,
        catalog=cat, seed=seed, util_cdf=util_cdf, limit=limit,
    )


def save_csv_trace(workload: Workload, path: str | Path) -> Path:
    """Write ``workload`` in the format :func:`load_csv_trace` reads (all optional columns).

    Floats are written with ``repr`` (exact). ``duration_s`` is ``num_epochs x epoch_duration_s``;
    reading it back divides by ``epochs`` again, which can differ from the original epoch length
    in the last bit.
    """
    p = Path(path)
    columns = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    with p.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for j in workload.jobs:
            writer.writerow([
                repr(j.submit_time_s),
                repr(j.exclusive_duration_s),
                j.num_gpus,
                j.job_type,
                j.gpu_type or "",
                repr(j.deadline_s) if j.has_deadline else "",
                j.priority,
                repr(j.memory_gb),
                repr(j.gpu_util),
                j.num_epochs,
                "true" if j.exclusive else "false",
            ])
    return p
