"""Numbers quoted in docs/workloads.md, recomputed from code + data.

``python -m eaco.workloads.stats`` prints them (uses the default catalogue,
:func:`eaco.colocation.catalog.load_catalog`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eaco.colocation.catalog import REFERENCE_GPU, JobCatalog
from eaco.workloads.job_types import JobTypeAssigner
from eaco.workloads.util_cdf import UtilisationCdf, load_util_cdf


@dataclass(frozen=True, slots=True)
class UtilShift:
    """What nearest-type assignment does to the utilisation distribution."""

    num_draws: int
    drawn_mean_util: float  # mean of the u drawn from the CDF
    assigned_mean_util: float  # mean exclusive V100 utilisation of the assigned types
    mean_abs_gap: float  # mean |assigned util - drawn u|
    type_shares: tuple[tuple[str, float], ...]  # share of draws per type, largest first


def assignment_util_shift(
    catalog: JobCatalog,
    util_cdf: UtilisationCdf | None = None,
    *,
    seed: int = 0,
    num_draws: int = 100_000,
    tolerance: float = 0.0,
) -> UtilShift:
    """Draw ``num_draws`` 1-GPU assignments and compare drawn vs assigned utilisation."""
    cdf = util_cdf if util_cdf is not None else load_util_cdf()
    assigner = JobTypeAssigner(catalog, cdf, np.random.default_rng(seed), tolerance=tolerance)
    draws = assigner.draw(np.ones(num_draws, dtype=np.int64))
    assigned = assigner.type_util[draws.type_index]
    counts = np.bincount(draws.type_index, minlength=len(assigner.types))
    order = np.argsort(-counts, kind="stable")
    shares = tuple(
        (assigner.types[i].name, float(counts[i]) / num_draws) for i in order if counts[i]
    )
    return UtilShift(
        num_draws=num_draws,
        drawn_mean_util=float(draws.target_util.mean()),
        assigned_mean_util=float(assigned.mean()),
        mean_abs_gap=float(np.abs(assigned - draws.target_util).mean()),
        type_shares=shares,
    )


def main() -> None:
    from eaco.workloads._defaults import resolve_catalog
    from eaco.workloads.alibaba import load_alibaba
    from eaco.workloads.philly import load_philly

    catalog = resolve_catalog(None)
    cdf = load_util_cdf()
    print(f"Philly utilisation CDF mean: {cdf.mean():.4f}")
    shift = assignment_util_shift(catalog, cdf)
    print(f"assignment ({shift.num_draws} draws, seed 0): drawn mean u = {shift.drawn_mean_util:.4f}, "
          f"assigned mean util = {shift.assigned_mean_util:.4f}, mean |gap| = {shift.mean_abs_gap:.4f}")
    for name, share in shift.type_shares:
        print(f"  {share:7.2%}  {name} (util {catalog.get(name).util_on(REFERENCE_GPU):.3f})")
    for w in (load_philly(catalog=catalog), load_alibaba(catalog=catalog)):
        s = w.summary()
        print(f"{w.name}: {s['num_jobs']} jobs, skipped {s['skipped_rows']}, excluded {s['excluded']}, "
              f"span {w.span_s / 86400:.2f} d, {w.total_gpu_hours():.1f} GPU-h, "
              f"GPU-weighted mean util {w.mean_gpu_util():.4f}, GPUs {s['gpu_count_histogram']}")


if __name__ == "__main__":
    main()
