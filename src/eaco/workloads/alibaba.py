"""Loader for the Alibaba GPU-sharing cluster trace (cluster-trace-gpu-v2023, ATC'23 FGD).

File: ``traces/alibaba_gpu_v2023_pods.csv.gz`` (8,152 pods); columns used:
``num_gpu``, ``gpu_milli`` (share of each GPU requested, x1000), ``gpu_spec`` (GPU models the
pod accepts, ``|``-separated; empty = any), ``qos``, ``pod_phase``, ``creation_time``,
``deletion_time``, ``scheduled_time`` (seconds from the trace start; ``scheduled_time`` empty for
pods that were never scheduled).

Rules (docs/workloads.md, "Alibaba"):

- pods with ``num_gpu == 0`` are CPU-only: excluded, counted under ``"cpu_only"`` (not bad rows);
- pods never scheduled (empty ``scheduled_time``, phase Pending) never ran: excluded and counted
  under ``"never_scheduled"``, unless ``include_pending=True``, which keeps them with duration
  ``deletion - creation``;
- submit time = ``creation_time``; duration = ``deletion_time - scheduled_time`` (must be > 0).
  Pods still running at the trace end have ``deletion_time`` = end of trace (censored durations);
- ``gpu_milli`` must be in 1..1000, and 1000 for multi-GPU pods (they take whole GPUs);
  a fractional pod (``gpu_milli < 1000``) becomes a 1-GPU job whose job type is the catalogue
  type with exclusive V100 utilisation nearest to ``gpu_milli / 1000``; whole-GPU pods get a type
  by the usual assignment (utilisation drawn from the Philly CDF);
- ``gpu_spec`` naming exactly one known GPU type (``V100M16``/``V100M32`` -> ``v100``, ``T4``,
  ``P100``, ``A10``, ...) pins the job to it; anything else leaves ``gpu_type`` None (any);
- priority from ``qos``: ``qos_priority`` (default LS and Guaranteed -> 1, BE and Burstable -> 0);
  an unknown class is a bad row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from eaco.colocation.catalog import JobCatalog
from eaco.errors import InputError
from eaco.model.gpu import GPU_TYPES
from eaco.paths import shared_file
from eaco.workloads._csvio import CsvTable, parse_int
from eaco.workloads._defaults import resolve_catalog, workload_from_rows
from eaco.workloads.base import JobDraft, Workload
from eaco.workloads.util_cdf import UtilisationCdf

ALIBABA_PODS = ("traces", "alibaba_gpu_v2023_pods.csv.gz")
ALIBABA_COLUMNS = (
    "num_gpu", "gpu_milli", "gpu_spec", "qos",
    "creation_time", "deletion_time", "scheduled_time",
)
DEFAULT_QOS_PRIORITY: Mapping[str, int] = {"LS": 1, "Guaranteed": 1, "Burstable": 0, "BE": 0}
MILLI_PER_GPU = 1000


def gpu_type_from_spec(spec: str) -> str | None:
    """Map an Alibaba ``gpu_spec`` to one of our GPU type names, or None (any / unknown / several).

    The spec's model names (``V100M16``, ``V100M32``, ``T4``, ``P100``, ``A10``, ...) lose any
    memory-size suffix ``M<digits>`` and are lower-cased; if all names map to the same known
    type that type is returned.
    """
    names = {re.sub(r"M\d+$", "", part.strip()).lower() for part in spec.split("|") if part.strip()}
    if len(names) == 1:
        (name,) = names
        if name in GPU_TYPES:
            return name
    return None


def load_alibaba(
    path: str | Path | None = None,
    *,
    catalog: JobCatalog | None = None,
    seed: int = 0,
    skip_bad_rows: bool = False,
    include_pending: bool = False,
    qos_priority: Mapping[str, int] | None = None,
    limit: int | None = None,
    util_cdf: UtilisationCdf | None = None,
) -> Workload:
    """Load the Alibaba GPU pods as a :class:`Workload` (GPU pods only; see module docs).

    ``excluded`` in the result counts ``"cpu_only"`` and ``"never_scheduled"`` pods.
    """
    p = Path(path) if path is not None else shared_file(*ALIBABA_PODS)
    cat = resolve_catalog(catalog)
    prio = dict(DEFAULT_QOS_PRIORITY if qos_priority is None else qos_priority)
    table = CsvTable(p, required=ALIBABA_COLUMNS)
    src = table.source
    ix = table.index
    excluded = {"cpu_only": 0, "never_scheduled": 0}

    def parse(line: int, row: list[str]) -> JobDraft | None:
        def integer(field: str, low: int | None = 0) -> int:
            return parse_int(src, line, field, row[ix[field]], low=low,
                             what="an integer" if field.startswith("num") else "a time in s")

        num_gpu = integer("num_gpu")
        if num_gpu == 0:
            excluded["cpu_only"] += 1
            return None
        milli = integer("gpu_milli", low=1)
        if milli > MILLI_PER_GPU:
            raise InputError(src, f"expected 1..{MILLI_PER_GPU} thousandths of a GPU, got {milli}",
                             line=line, field="gpu_milli")
        if num_gpu > 1 and milli != MILLI_PER_GPU:
            raise InputError(src, f"expected {MILLI_PER_GPU} for a pod with {num_gpu} GPUs "
                             f"(multi-GPU pods take whole GPUs), got {milli}",
                             line=line, field="gpu_milli")
        created = integer("creation_time")
        deleted = integer("deletion_time")
        if row[ix["scheduled_time"]].strip():
            started = integer("scheduled_time")
            if started < created:
                raise InputError(src, f"expected a time >= creation_time {created}, got {started}",
                                 line=line, field="scheduled_time")
            start_field = "scheduled_time"
        elif include_pending:
            started, start_field = created, "creation_time"
        else:
            excluded["never_scheduled"] += 1
            return None
        if deleted <= started:
            raise InputError(src, f"expected a time > {start_field} {started} (duration > 0), "
                             f"got {deleted}", line=line, field="deletion_time")
        qos = row[ix["qos"]].strip()
        if qos not in prio:
            raise InputError(src, f"expected a QoS class among {', '.join(sorted(prio))}, "
                             f"got {qos!r}", line=line, field="qos")
        return JobDraft(
            submit_time_s=float(created),
            duration_s=float(deleted - started),
            num_gpus=num_gpu,
            target_util=milli / MILLI_PER_GPU if milli < MILLI_PER_GPU else None,
            gpu_type=gpu_type_from_spec(row[ix["gpu_spec"]]),
            priority=prio[qos],
        )

    return workload_from_rows("alibaba", table, parse, skip_bad_rows=skip_bad_rows, catalog=cat, seed=seed,
                              util_cdf=util_cdf, limit=limit, excluded=lambda: excluded)
