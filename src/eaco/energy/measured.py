"""Readers for the shared GPU power measurements used to calibrate :class:`GpuPowerModel`.

- ``power/zeus_power_<gpu>.csv`` (ml-energy/zeus, NSDI'23 traces): average GPU power (W) of a
  training run per (workload, batch size, optimizer, power limit).
- ``power/acme_a100_gpu_power_cdf.csv`` (InternLM/AcmeTrace, Seren cluster): CDF of per-GPU power
  draw (W) across a production A100 training cluster, ``cdf_pct`` in percent.
"""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass
from pathlib import Path

from eaco.csv_fields import csv_float
from eaco.errors import InputError

ZEUS_GPUS = ("v100", "p100", "a40", "rtx6000")


@dataclass(frozen=True, slots=True)
class ZeusRun:
    network: str
    batch_size: int
    optimizer: str
    power_limit_w: float
    average_power_w: float


@dataclass(frozen=True, slots=True)
class PowerCdf:
    """Empirical CDF of power draw: ``power_w`` ascending, ``cdf`` the fraction (0..1) at or below."""

    power_w: tuple[float, ...]
    cdf: tuple[float, ...]

    def quantile_w(self, q: float) -> float:
        """Power (W) at cumulative fraction ``q`` (linear between points)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile: expected 0 <= q <= 1, got {q}")
        i = bisect.bisect_left(self.cdf, q)
        if i == 0:
            return self.power_w[0]
        if i >= len(self.cdf):
            return self.power_w[-1]
        c0, c1 = self.cdf[i - 1], self.cdf[i]
        p0, p1 = self.power_w[i - 1], self.power_w[i]
        return p1 if c1 == c0 else p0 + (p1 - p0) * (q - c0) / (c1 - c0)




def zeus_csv_path(data_dir: Path, gpu: str) -> Path:
    return data_dir / "power" / f"zeus_power_{gpu}.csv"


def load_zeus_runs(data_dir: Path, gpu: str) -> list[ZeusRun]:
    path = zeus_csv_path(data_dir, gpu)
    runs: list[ZeusRun] = []
    with open(path, newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            power = csv_float(path, line, row, "average_power")
            if power <= 0.0:
                raise InputError(str(path), f"expected a positive power, got {power}", line, "average_power")
            runs.append(
                ZeusRun(
                    network=row["network"].strip(),
                    batch_size=int(csv_float(path, line, row, "batch_size")),
                    optimizer=row["optimizer"].strip(),
                    power_limit_w=csv_float(path, line, row, "power_limit"),
                    average_power_w=power,
                )
            )
    if not runs:
        raise InputError(str(path), "no rows")
    return runs


def runs_at_max_power_limit(runs: list[ZeusRun]) -> tuple[float, list[ZeusRun]]:
    """The highest power limit in ``runs`` (the GPU's default limit) and the runs made at it."""
    limit = max(r.power_limit_w for r in runs)
    return limit, [r for r in runs if r.power_limit_w == limit]


def load_acme_a100_power_cdf(data_dir: Path) -> PowerCdf:
    path = data_dir / "power" / "acme_a100_gpu_power_cdf.csv"
    power: list[float] = []
    cdf: list[float] = []
    with open(path, newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            p = csv_float(path, line, row, "gpu_power_w")
            c = csv_float(path, line, row, "cdf_pct") / 100.0
            if power and (p < power[-1] or c < cdf[-1]):
                raise InputError(str(path), "expected rows sorted by power and CDF ascending", line)
            if not 0.0 <= c <= 1.0:
                raise InputError(str(path), f"expected 0..100, got {c * 100}", line, "cdf_pct")
            power.append(p)
            cdf.append(c)
    if len(power) < 2:
        raise InputError(str(path), "expected at least two CDF points")
    return PowerCdf(tuple(power), tuple(cdf))
