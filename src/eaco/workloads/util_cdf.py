"""The empirical CDF of per-GPU utilisation in Philly, and inverse-CDF sampling from it.

File format (``traces/philly_gpu_util_cdf.csv``): columns ``gpu_util_pct`` (0..100) and
``cdf_pct`` (0..100), both non-decreasing, ``cdf_pct`` running from 0 to 100. The shared file
holds 1000 quantile points (AcmeTrace's Philly utilisation data); about 32 % of GPU samples sit
at 0 % utilisation and 7 % at 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eaco.errors import InputError
from eaco.paths import shared_file
from eaco.workloads._csvio import CsvTable, parse_float

PHILLY_UTIL_CDF = ("traces", "philly_gpu_util_cdf.csv")


@dataclass(frozen=True, slots=True, eq=False)
class UtilisationCdf:
    """A piecewise-linear CDF of GPU utilisation.

    ``util`` (fraction 0..1) and ``cdf`` (probability 0..1) are non-decreasing, with
    ``cdf[0] == 0`` and ``cdf[-1] == 1``. Sampling inverts it by linear interpolation:
    ``u = interp(p, cdf, util)`` for ``p ~ U[0, 1)``.
    """

    util: np.ndarray
    cdf: np.ndarray
    source: str

    def __post_init__(self) -> None:
        if self.util.shape != self.cdf.shape or self.util.ndim != 1 or self.util.size < 2:
            raise ValueError(f"{self.source}: util and cdf must be 1-D arrays of equal length >= 2")
        if np.any(np.diff(self.util) < 0) or np.any(np.diff(self.cdf) < 0):
            raise ValueError(f"{self.source}: util and cdf must be non-decreasing")
        if self.cdf[0] != 0.0 or self.cdf[-1] != 1.0:
            raise ValueError(f"{self.source}: cdf must run from 0 to 1")
        if self.util[0] < 0.0 or self.util[-1] > 1.0:
            raise ValueError(f"{self.source}: util must lie in [0, 1]")

    def quantile(self, p: np.ndarray | float) -> np.ndarray:
        """Utilisation (0..1) at probability ``p`` (0..1), by linear interpolation."""
        return np.asarray(np.interp(p, self.cdf, self.util), dtype=float)

    def mean(self) -> float:
        """Mean of the piecewise-linear distribution (trapezoid rule over the quantile function)."""
        return float(np.sum(np.diff(self.cdf) * (self.util[1:] + self.util[:-1]) / 2.0))


def load_util_cdf(path: str | Path | None = None) -> UtilisationCdf:
    """Read a utilisation CDF file (default: the shared Philly one)."""
    p = Path(path) if path is not None else shared_file(*PHILLY_UTIL_CDF)
    table = CsvTable(p, required=("gpu_util_pct", "cdf_pct"))
    src = table.source
    iu, ic = table.index["gpu_util_pct"], table.index["cdf_pct"]
    utils: list[float] = []
    cdfs: list[float] = []
    for line, row in table.rows():
        err = table.width_error(line, row)
        if err is not None:
            raise err
        u = parse_float(src, line, "gpu_util_pct", row[iu], low=0.0, high=100.0,
                        what="a utilisation in percent")
        c = parse_float(src, line, "cdf_pct", row[ic], low=0.0, high=100.0,
                        what="a cumulative probability in percent")
        if utils and u < utils[-1]:
            raise InputError(src, f"expected a value >= {utils[-1]:g} (non-decreasing), got {u:g}",
                             line=line, field="gpu_util_pct")
        if cdfs and c < cdfs[-1]:
            raise InputError(src, f"expected a value >= {cdfs[-1]:g} (non-decreasing), got {c:g}",
                             line=line, field="cdf_pct")
        utils.append(u)
        cdfs.append(c)
    if len(utils) < 2:
        raise InputError(src, f"expected at least 2 CDF points, got {len(utils)}")
    if cdfs[0] != 0.0 or abs(cdfs[-1] - 100.0) > 1e-9:
        raise InputError(src, f"expected cdf_pct to run from 0 to 100, got {cdfs[0]:g}..{cdfs[-1]:g}",
                         field="cdf_pct")
    cdf = np.asarray(cdfs) / 100.0
    cdf[-1] = 1.0
    return UtilisationCdf(util=np.asarray(utils) / 100.0, cdf=cdf, source=src)
