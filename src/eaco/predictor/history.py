"""History H: what EaCO knows about co-location, and how it estimates combinations never seen.

Seeded with profiled measurements (Gavel's measured pairs on K80/P100/V100, the paper's measured
sets on V100, and any profile store the profiler writes) and grown with every co-location EaCO
observes (one epoch after it allocates). For a set of job types on a GPU type it returns, for
each member, a speed estimate (1.0 = as fast as alone) with an uncertainty:

1. **Seen set** (that exact multiset of job types on that GPU type is in H): the mean of what was
   recorded for that member; uncertainty = the spread of those records, at least
   ``OBSERVATION_STD`` (run-to-run noise).
2. **Unseen set**: a ridge regression fitted on every record in H for that GPU type (all GPU
   types pooled when one has fewer than ``MIN_ROWS_PER_GPU`` records)::

       log(speed_i) = b0 + b1 * U_others + b2 * u_i * U_others + b3 * (n - 1)
                      + s[type_i] + sum over others j of a[type_j]

   where ``u_i`` is member i's exclusive GPU utilisation on that GPU type (job-type catalogue),
   ``U_others`` the summed exclusive utilisation of the other members and ``n`` the set size.
   ``s[t]`` (how sensitive type t is to sharing) and ``a[t]`` (how much type t slows others) are
   per-job-type terms, shrunk towards 0 by a ridge penalty ``RIDGE``: a type seen often gets its
   own behaviour (nearest neighbour by job type), a type never seen falls back to the utilisation
   terms. Uncertainty = the residual standard deviation of the fit (in log space) times the
   estimate. The estimate is clipped to [MIN_SPEED, 1], and capped by the member's estimate in
   every smaller set it belongs to (adding a job never speeds the others up).

The regression is deliberately not the simulator's ground-truth model: EaCO's predictions are
wrong where the real system differs, which is what early-stage observation and undo are for.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from eaco.colocation.catalog import JobCatalog, load_catalog
from eaco.colocation.gavel import load_gavel_throughputs
from eaco.colocation.measured import gavel_pairs, paper_sets
from eaco.colocation.profiles import MeasuredProfiles
from eaco.measurements.paper import PAPER_GPU_TYPE, load_paper_tables

OBSERVATION_STD = 0.02
MIN_ROWS_PER_GPU = 30
MIN_SPEED = 0.05
REFIT_EVERY = 50  # online observations between refits of the regression (seen sets update at once) ...
REFIT_GROWTH = 0.05  # ... or this share of the observations made so far, whichever is more
N_BASE_FEATURES = 4
RIDGE = 1.0


@dataclass(frozen=True, slots=True)
class LearnedSpeed:
    """One speed observed online: ``member`` ran at ``speed`` (1.0 = alone) in the set
    ``job_types`` on ``gpu_type``. What a live scheduler persists so a restart keeps H."""

    job_types: tuple[str, ...]
    gpu_type: str
    member: str
    speed: float


@dataclass(frozen=True, slots=True)
class SpeedEstimate:
    speed: float  # normalised speed (1.0 = alone)
    std: float  # uncertainty (one standard deviation, same unit)
    source: str  # "history" (seen set) or "regression"

    def conservative(self, z: float) -> float:
        """The speed ``z`` standard deviations below the estimate (at least MIN_SPEED)."""
        return max(MIN_SPEED, self.speed - z * self.std)


@dataclass(frozen=True, slots=True)
class ErrorRow:
    gpu_type: str
    combinations: int
    speeds: int
    mape: float  # mean |predicted - measured| / measured
    within_2std: float  # share of measured speeds within 2 standard deviations of the estimate


SetKey = tuple[tuple[str, ...], str]  # (sorted job types, GPU type)


class _Normal:
    """Running sums of a least-squares problem: X'X, X'y, y'y and the row count."""

    __slots__ = ("xtx", "xty", "yty", "n")

    def __init__(self, k: int) -> None:
        self.xtx = np.zeros((k, k))
        self.xty = np.zeros(k)
        self.yty = 0.0
        self.n = 0

    def add(self, x: np.ndarray, y: float, sign: float = 1.0) -> None:
        self.xtx += sign * np.outer(x, x)
        self.xty += sign * y * x
        self.yty += sign * y * y
        self.n += int(sign)

    def minus(self, other: "_Normal") -> "_Normal":
        out = _Normal(len(self.xty))
        out.xtx = self.xtx - other.xtx
        out.xty = self.xty - other.xty
        out.yty = self.yty - other.yty
        out.n = self.n - other.n
        return out


class CoLocationPredictor:
    def __init__(self, catalog: JobCatalog) -> None:
        self.catalog = catalog
        self._type_index = {t: i for i, t in enumerate(catalog.names())}
        self._n_features = N_BASE_FEATURES + 2 * len(self._type_index)
        penalty = np.full(self._n_features, RIDGE)
        penalty[:N_BASE_FEATURES] = 0.0
        self._penalty = np.diag(penalty)
        # (sorted types, gpu) -> job type -> list of observed speeds
        self._records: dict[SetKey, dict[str, list[float]]] = {}
        # regression sums per GPU type, per recorded set (for leave-one-out), and pooled
        self._normal_by_gpu: dict[str, _Normal] = {}
        self._normal_by_set: dict[SetKey, _Normal] = {}
        self._normal_all = _Normal(self._n_features)
        self._coef: dict[str, tuple[np.ndarray, float]] = {}
        self._cache: dict[tuple[tuple[str, ...], str], tuple[SpeedEstimate, ...]] = {}
        self._cache_keys_by_set: dict[SetKey, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
        self._pending_refit = 0
        self.refit_version = 0  # bumped whenever the regression is refitted (all estimates may move)
        self._utils: dict[tuple[str, str], float] = {}
        self._feature_cache: dict[tuple[tuple[str, ...], int, str], np.ndarray] = {}
        self.observations = 0  # records added online (not seeded)
        self.learned: list[LearnedSpeed] = []  # the online records, in order

    # ------------------------------------------------------------------ history
    def record(self, job_types: tuple[str, ...], gpu_type: str, speeds: tuple[float, ...]) -> None:
        """Add one measured co-location (speeds in the order of ``job_types``)."""
        if len(job_types) != len(speeds):
            raise ValueError("one speed per member expected")
        for t, sp in zip(job_types, speeds):
            self._add(job_types, gpu_type, t, sp)

    def record_member(self, job_types: tuple[str, ...], gpu_type: str, member: str, speed: float) -> None:
        """Add an observed speed of one member of a set (what an epoch report gives). A speed
        above 1 (faster than the job's declared exclusive speed: the declaration was too slow,
        sharing did not speed it up) is recorded as 1, so it cannot widen the set's spread."""
        if member not in job_types:
            raise ValueError(f"{member!r} is not in the set {job_types}")
        if speed > 1.0:
            speed = 1.0
        self._add(job_types, gpu_type, member, speed, online=True)
        self.observations += 1
        self.learned.append(LearnedSpeed(tuple(job_types), gpu_type, member, float(speed)))

    def restore(self, items: Iterable[LearnedSpeed]) -> int:
        """Record again speeds learnt by an earlier instance (a restarted daemon), then refit.
        Items naming a job type the catalogue lacks, or a speed <= 0, are skipped; returns how
        many were taken."""
        taken = 0
        for item in items:
            if item.member not in self._type_index or any(t not in self._type_index for t in item.job_types):
                continue
            try:
                self.record_member(item.job_types, item.gpu_type, item.member, item.speed)
            except ValueError:
                continue
            taken += 1
        self._invalidate_all()
        return taken

    def _add(self, job_types: tuple[str, ...], gpu_type: str, member: str, speed: float, online: bool = False) -> None:
        if not speed > 0:
            raise ValueError(f"speed of {member} must be > 0, got {speed}")
        types = tuple(sorted(job_types))
        key = (types, gpu_type)
        self._records.setdefault(key, {}).setdefault(member, []).append(float(speed))
        if len(types) >= 2:
            x = self._features(types, types.index(member), gpu_type)
            y = math.log(max(MIN_SPEED, speed))
            k = self._n_features
            self._normal_by_gpu.setdefault(gpu_type, _Normal(k)).add(x, y)
            self._normal_by_set.setdefault(key, _Normal(k)).add(x, y)
            self._normal_all.add(x, y)
        if not online:
            self._invalidate_all()
            return
        # an observation changes that set's own estimate at once; the regression (every other
        # unseen set) is refitted after REFIT_EVERY observations, or REFIT_GROWTH x the
        # observations so far if more (one record moves the fit of a long history little, and a
        # refit clears every cached estimate)
        for ck in self._cache_keys_by_set.pop(key, ()):
            self._cache.pop(ck, None)
        self._pending_refit += 1
        if self._pending_refit >= max(REFIT_EVERY, REFIT_GROWTH * self.observations):
            self._invalidate_all()

    def _invalidate_all(self) -> None:
        self._coef.clear()
        self._cache.clear()
        self._cache_keys_by_set.clear()
        self._pending_refit = 0
        self.refit_version += 1

    def has_seen(self, job_types: tuple[str, ...], gpu_type: str) -> bool:
        return (tuple(sorted(job_types)), gpu_type) in self._records

    def combinations(self) -> list[SetKey]:
        return list(self._records)

    # --------------------------------------------------------------- estimates
    def estimate(self, job_types: tuple[str, ...], gpu_type: str) -> tuple[SpeedEstimate, ...]:
        """Speed estimate of each member (input order) when the set shares one GPU."""
        ck = (job_types, gpu_type)
        got = self._cache.get(ck)
        if got is not None:
            return got
        if len(job_types) == 1:
            out: tuple[SpeedEstimate, ...] = (SpeedEstimate(1.0, 0.0, "history"),)
        else:
            key = (tuple(sorted(job_types)), gpu_type)
            seen = self._records.get(key)
            out = tuple(self._one(job_types, i, gpu_type, seen) for i in range(len(job_types)))
            self._cache_keys_by_set[key].append(ck)
        self._cache[ck] = out
        return out

    def _one(self, types: tuple[str, ...], i: int, gpu: str, seen: dict[str, list[float]] | None) -> SpeedEstimate:
        t = types[i]
        if seen is not None and t in seen:
            vals = seen[t]
            mean = sum(vals) / len(vals)
            spread = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
            return SpeedEstimate(min(1.0, mean), max(OBSERVATION_STD, spread), "history")
        coef, sigma = self._fit_for(gpu)
        fk = (types, i, gpu)
        x = self._feature_cache.get(fk)
        if x is None:  # features depend on the catalogue only: kept across refits
            x = self._feature_cache[fk] = self._features(types, i, gpu)
        speed = _clip(float(np.exp(x @ coef)))
        # one more job on the GPU never makes a member faster: cap by every subset that drops
        # one other member (recursively, so by every smaller set containing it)
        for j in range(len(types)):
            if j != i and len(types) > 2:
                sub = types[:j] + types[j + 1 :]
                speed = min(speed, self.estimate(sub, gpu)[i if i < j else i - 1].speed)
        return SpeedEstimate(speed, max(OBSERVATION_STD, sigma * speed), "regression")

    def _util(self, job_type: str, gpu: str) -> float:
        key = (job_type, gpu)
        got = self._utils.get(key)
        if got is None:
            got = self.catalog.get(job_type).util_on(gpu)
            self._utils[key] = got
        return got

    def _features(self, types: tuple[str, ...], i: int, gpu: str) -> np.ndarray:
        utils = [self._util(t, gpu) for t in types]
        u_i = utils[i]
        others = sum(utils) - u_i
        x = np.zeros(self._n_features)
        x[:N_BASE_FEATURES] = (1.0, others, u_i * others, len(types) - 1.0)
        n_types = len(self._type_index)
        x[N_BASE_FEATURES + self._type_index[types[i]]] = 1.0
        for j, t in enumerate(types):
            if j != i:
                x[N_BASE_FEATURES + n_types + self._type_index[t]] += 1.0
        return x

    # -------------------------------------------------------------- regression
    def _solve(self, normal: _Normal) -> tuple[np.ndarray, float]:
        if normal.n < N_BASE_FEATURES:
            return np.zeros(self._n_features), 0.3  # nothing known: speed 1, wide uncertainty
        a = normal.xtx + self._penalty
        coef = np.linalg.lstsq(a, normal.xty, rcond=None)[0]
        rss = normal.yty - 2.0 * coef @ normal.xty + coef @ normal.xtx @ coef
        return coef, math.sqrt(max(0.0, rss) / normal.n)

    def _normal_for(self, gpu: str, exclude: SetKey | None = None) -> _Normal:
        normal = self._normal_by_gpu.get(gpu)
        excl = self._normal_by_set.get(exclude) if exclude is not None else None
        if normal is not None and excl is not None and exclude is not None and exclude[1] == gpu:
            normal = normal.minus(excl)
        if normal is None or normal.n < MIN_ROWS_PER_GPU:
            normal = self._normal_all if excl is None else self._normal_all.minus(excl)
        return normal

    def _fit_for(self, gpu: str) -> tuple[np.ndarray, float]:
        got = self._coef.get(gpu)
        if got is None:
            got = self._solve(self._normal_for(gpu))
            self._coef[gpu] = got
        return got

    # -------------------------------------------------------------- evaluation
    def leave_one_out(self) -> list[ErrorRow]:
        """For each recorded combination: fit without it, predict it, compare. Per GPU type."""
        per_gpu: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        combos: dict[str, int] = defaultdict(int)
        for key, by_type in self._records.items():
            types, gpu = key
            if len(types) < 2:
                continue
            coef, sigma = self._solve(self._normal_for(gpu, exclude=key))
            combos[gpu] += 1
            for t, vals in by_type.items():
                pred = _clip(float(np.exp(self._features(types, types.index(t), gpu) @ coef)))
                std = max(OBSERVATION_STD, sigma * pred)
                for v in vals:
                    per_gpu[gpu].append((pred, v, std))
        rows = []
        for gpu in sorted(per_gpu):
            vals = per_gpu[gpu]
            mape = sum(abs(p - v) / v for p, v, _ in vals) / len(vals)
            within = sum(1 for p, v, sd in vals if abs(p - v) <= 2 * sd) / len(vals)
            rows.append(ErrorRow(gpu, combos[gpu], len(vals), mape, within))
        return rows


def _clip(speed: float) -> float:
    return min(1.0, max(MIN_SPEED, speed))


def load_predictor(
    catalog: JobCatalog | None = None, data_dir: Path | None = None, profiles: MeasuredProfiles | None = None
) -> CoLocationPredictor:
    """A predictor seeded with every measured co-location in the bundled data, and with the sets
    of any profile stores the profiler wrote (``profiles``)."""
    cat = catalog or load_catalog(data_dir)
    pred = CoLocationPredictor(cat)
    pairs, _ = gavel_pairs(load_gavel_throughputs(data_dir))
    for p in pairs:
        if p.a in cat and p.b in cat:
            pred.record((p.a, p.b), p.gpu_type, (p.speed_a, p.speed_b))
    for s in paper_sets(load_paper_tables(data_dir)):
        pred.record(s.members, PAPER_GPU_TYPE, tuple(s.ratio for _ in s.members))
    if profiles is not None:
        for (gpu, members), m in profiles.sets.items():
            if all(t in cat for t in members):
                pred.record(members, gpu, tuple(m.speed_by_type[t] for t in members))
    return pred
