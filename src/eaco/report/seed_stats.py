"""Statistics over several workloads (seeds): what ``eaco simulate --seeds`` reports.

One generated workload is one draw: a policy that wins on it may lose on the next. With several
seeds every run (policy, sweep variant, cluster) is repeated on each seed's workload and summed
up per run as a mean with a 95% confidence interval (Student's t over the seeds, the seeds
taken as independent draws of the workload; cut at 0, since no metric here can be negative), and, paired seed by seed, as a ratio to a
reference run (the first of ``--policies``): the ratio's interval is the one to read, since the
runs of one seed share a workload and much of the seed-to-seed spread cancels in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy import stats as _stats

from eaco.errors import InputError
from eaco.report.files import metrics_row
from eaco.sim.metrics import Metrics

MAX_SEEDS = 1000
CONFIDENCE = 0.95

# (key in metrics_row, label): the metrics summarised per run ...
SUMMARY_METRICS: tuple[tuple[str, str], ...] = (
    ("energy_kwh", "energy (kWh)"),
    ("jct_s_mean", "JCT mean (s)"),
    ("run_time_s_mean", "runtime mean (s)"),
    ("waiting_s_mean", "waiting mean (s)"),
    ("total_time_s_mean", "total time mean (s)"),
    ("makespan_s", "makespan (s)"),
    ("avg_active_nodes", "average active nodes"),
    ("deadline_misses", "deadline misses"),
    ("deadline_misses_colocation", "misses caused by sharing"),
    ("colocated_jobs", "co-located jobs"),
    ("electricity_cost", "electricity cost"),
    ("carbon_kg", "carbon (kg CO2e)"),
    ("ownership_cost", "cost of ownership"),
)
# ... and those also compared with the reference run, seed by seed (ratios)
RATIO_METRICS: tuple[str, ...] = ("energy_kwh", "jct_s_mean", "run_time_s_mean", "total_time_s_mean",
                                  "electricity_cost", "carbon_kg", "ownership_cost")


def parse_seeds(text: str, option: str = "--seeds") -> tuple[int, ...]:
    """``"0-4"`` -> (0, 1, 2, 3, 4); ``"0,3,7"``; ``"1-3,9"``. Errors name ``option``."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo_text, sep, hi_text = part.partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if sep else lo
        except ValueError:
            raise InputError(option, f"expected seeds such as '0-4' or '0,3,7', got {part!r}") from None
        if lo < 0 or hi < lo:
            raise InputError(option, f"expected a range FIRST-LAST of seeds >= 0 with FIRST <= LAST, got {part!r}")
        seeds.extend(s for s in range(lo, hi + 1) if s not in seeds)
        if len(seeds) > MAX_SEEDS:
            raise InputError(option, f"at most {MAX_SEEDS} seeds, got more from {text!r}")
    if not seeds:
        raise InputError(option, f"expected at least one seed, got {text!r}")
    return tuple(seeds)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A quantity over seeds: mean, sample standard deviation, the 95% confidence interval of
    the mean (Student's t; NaN with one seed), and the range."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    min: float
    max: float

    @property
    def half_width(self) -> float:
        """Half the interval's width before any cut at a floor (NaN with one seed)."""
        return self.ci_high - self.mean

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in (("n", self.n), ("mean", self.mean), ("std", self.std), ("ci95_low", self.ci_low),
                             ("ci95_high", self.ci_high), ("min", self.min), ("max", self.max))}


def estimate(values: Sequence[float], floor: float | None = 0.0) -> Estimate:
    """Mean and 95% t-interval of ``values`` (one per seed). The interval of a quantity that
    cannot go below ``floor`` (every metric here: energy, times, counts, ratios) is cut there
    (None: not cut)."""
    n = len(values)
    if n == 0:
        raise ValueError("estimate: no values")
    mean = math.fsum(values) / n
    if n == 1:
        return Estimate(1, mean, math.nan, math.nan, math.nan, mean, mean)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(_stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    low = mean - half if floor is None else max(floor, mean - half)
    return Estimate(n, mean, std, low, mean + half, min(values), max(values))


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run (policy, variant or cluster) over the seeds it ran on."""

    run: str
    seeds: tuple[int, ...]
    values: dict[str, Estimate]  # metric -> estimate (metrics with a value on every seed)
    ratios: dict[str, Estimate]  # metric -> this run / the reference, paired by seed
    lower_energy_seeds: int  # seeds on which this run used less energy than the reference

    def to_dict(self) -> dict[str, object]:
        return {
            "run": self.run,
            "seeds": list(self.seeds),
            "values": {k: e.to_dict() for k, e in self.values.items()},
            "ratios_to_reference": {k: e.to_dict() for k, e in self.ratios.items()},
            "lower_energy_than_reference_seeds": self.lower_energy_seeds,
        }


def _value(row: dict[str, object], key: str) -> float | None:
    v = row.get(key)
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def summarise(per_seed: Sequence[tuple[int, Sequence[Metrics]]], reference: str) -> list[RunSummary]:
    """Per run label (``Metrics.policy``, in the order of the first seed), the estimates of
    :data:`SUMMARY_METRICS` over the seeds and the paired ratios of :data:`RATIO_METRICS` to
    the run ``reference``. A metric missing on some seed (no cost without grid settings) is
    left out; a ratio is taken only over seeds where the reference's value is not zero."""
    if not per_seed:
        raise ValueError("summarise: no seeds")
    rows = {seed: {m.policy: metrics_row(m) for m in metrics} for seed, metrics in per_seed}
    labels = [m.policy for m in per_seed[0][1]]
    if reference not in labels:
        raise ValueError(f"summarise: reference run {reference!r} not among {labels}")
    out = []
    for label in labels:
        seeds = tuple(seed for seed, by_run in rows.items() if label in by_run)
        values: dict[str, Estimate] = {}
        for key, _ in SUMMARY_METRICS:
            got = [_value(rows[s][label], key) for s in seeds]
            if got and all(v is not None for v in got):
                values[key] = estimate([v for v in got if v is not None])
        ratios: dict[str, Estimate] = {}
        lower = 0
        for s in seeds:
            ref = rows[s].get(reference)
            if ref is not None:
                mine, theirs = _value(rows[s][label], "energy_kwh"), _value(ref, "energy_kwh")
                lower += int(mine is not None and theirs is not None and mine < theirs)
        for key in RATIO_METRICS:
            pairs = [(_value(rows[s][label], key), _value(rows[s].get(reference, {}), key)) for s in seeds]
            got = [a / b for a, b in pairs if a is not None and b is not None and b != 0]
            if got:
                ratios[key] = estimate(got)
        out.append(RunSummary(label, seeds, values, ratios, lower))
    return out
