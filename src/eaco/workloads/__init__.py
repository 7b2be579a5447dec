"""Workloads: trace loaders and the seeded generator, all returning a :class:`Workload`.

``load_workload(kind, ...)`` picks a loader by name:

- ``"philly"``: :func:`load_philly` (Microsoft Philly, 82,247 jobs);
- ``"alibaba"``: :func:`load_alibaba` (Alibaba GPU-sharing pods, GPU pods only);
- ``"csv:<path>"``: :func:`load_csv_trace` on ``<path>``;
- ``"slurm:<path>"``: :func:`load_slurm` on ``<path>`` (a ``sacct`` export);
- ``"generated"``: :func:`generate_workload` (needs ``num_jobs`` and ``arrival_rate_per_h``).

See docs/workloads.md for the rules each loader applies.
"""

from __future__ import annotations

from typing import Any

from eaco.colocation.catalog import JobCatalog
from eaco.workloads.alibaba import load_alibaba
from eaco.workloads.base import JobDraft, Workload, build_workload
from eaco.workloads.csv_trace import load_csv_trace, save_csv_trace
from eaco.workloads.generator import DurationGpuPairs, generate_workload, load_duration_gpu_pairs
from eaco.workloads.job_types import JobTypeAssigner, TypeDraws
from eaco.workloads.philly import load_philly
from eaco.workloads.slurm import load_slurm
from eaco.workloads.util_cdf import UtilisationCdf, load_util_cdf

WORKLOAD_KINDS = ("philly", "alibaba", "csv:<path>", "slurm:<path>", "generated")


def load_workload(
    kind: str, *, catalog: JobCatalog | None = None, seed: int = 0, **options: Any
) -> Workload:
    """Load or generate a workload by kind name (see module docs); ``options`` go to the loader."""
    key = kind.strip()
    if key == "philly":
        return load_philly(catalog=catalog, seed=seed, **options)
    if key == "alibaba":
        return load_alibaba(catalog=catalog, seed=seed, **options)
    if key == "generated":
        return generate_workload(catalog=catalog, seed=seed, **options)
    for prefix, loader in (("csv:", load_csv_trace), ("slurm:", load_slurm)):
        if key.startswith(prefix):
            path = key[len(prefix):].strip()
            if not path:
                raise ValueError(f"workload kind '{prefix}<path>' needs a path after '{prefix}'")
            return loader(path, catalog=catalog, seed=seed, **options)  # type: ignore[operator]
    raise ValueError(f"unknown workload kind {kind!r}; expected one of: {', '.join(WORKLOAD_KINDS)}")


__all__ = [
    "WORKLOAD_KINDS",
    "DurationGpuPairs",
    "JobDraft",
    "JobTypeAssigner",
    "TypeDraws",
    "UtilisationCdf",
    "Workload",
    "build_workload",
    "generate_workload",
    "load_alibaba",
    "load_csv_trace",
    "load_duration_gpu_pairs",
    "load_philly",
    "load_slurm",
    "load_util_cdf",
    "load_workload",
    "save_csv_trace",
]
