"""Ground truth of co-location: how fast each job runs, and how busy the GPU is, when jobs share a GPU.

Priority for a set of job types on a GPU type (see docs/colocation.md):

0. ``"profile"``: measured by ``eaco profile`` on that GPU type (only when the model was loaded with
   ``profiles=``; see :mod:`eaco.colocation.profiles` and docs/profiler.md).
1. ``"gavel"``: a pair Gavel measured on that GPU type (k80, p100, v100; scale factor 1):
   speed = co-located steps/s / exclusive steps/s of each member.
2. ``"paper"``: a set the EaCO paper measured (V100 only): every member gets the set's ratio,
   mean exclusive epoch time / co-located epoch time (four-job set: the same with JCT); the set's
   GPU utilisation is the measured one.
3. ``"model"``: :func:`eaco.colocation.interference.model_speeds` on the members' exclusive
   utilisations with the fitted ``k`` and ``C`` (:mod:`eaco.colocation.fitted`).

A single job has speed 1.0; its source is ``"gavel"``/``"paper"`` where its exclusive run was
measured on that GPU type, else ``"model"``. Results are cached per (sorted types, GPU type) and
per exact input, so repeated queries are one dict lookup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from eaco.colocation import fitted
from eaco.colocation.catalog import JobCatalog, build_catalog
from eaco.colocation.gavel import GAVEL_GPU_TYPES, load_gavel_throughputs
from eaco.colocation.interference import model_speeds
from eaco.colocation.job_types import read_job_type_rows
from eaco.colocation.measured import MeasuredPair, MeasuredSet, gavel_pairs, paper_sets, predicted_set_ratio
from eaco.colocation.profiles import MeasuredProfiles, extend_catalog, load_profiles
from eaco.measurements.paper import PAPER_GPU_TYPE, load_paper_tables
from eaco.model.gpu import GPU_TYPES

SOURCES = ("profile", "gavel", "paper", "model")


@dataclass(frozen=True, slots=True)
class _Entry:
    speed_by_type: Mapping[str, float]
    throughput: float  # sum of members' speeds (with multiplicity)
    utilisation: float
    feasible: bool
    source: str


@dataclass(frozen=True, slots=True)
class GpuFitError:
    gpu_type: str
    mape: float  # mean |model - measured| / measured over speeds
    mae: float  # mean |model - measured|
    n_speeds: int


@dataclass(frozen=True, slots=True)
class FitReport:
    k_interference: float
    capacity: float
    in_sample: tuple[GpuFitError, ...]  # model vs Gavel pairs, per GPU type (catalogue's utilisations)
    paper_sets_mape: float  # model vs the paper's set ratios
    cross_validated: tuple[GpuFitError, ...]  # k-fold CV from the last fit run (fitted.py)
    cv_folds: int

    def table(self) -> str:
        lines = [f"k = {self.k_interference:.4f}, C = {self.capacity:.4f}"]
        cv = {e.gpu_type: e for e in self.cross_validated}
        for e in self.in_sample:
            c = cv.get(e.gpu_type)
            extra = f"; {self.cv_folds}-fold CV MAPE {c.mape:.3f}" if c else ""
            lines.append(f"{e.gpu_type}: MAPE {e.mape:.3f}, MAE {e.mae:.3f} over {e.n_speeds} speeds{extra}")
        lines.append(f"paper sets (v100): MAPE {self.paper_sets_mape:.4f}")
        return "\n".join(lines)


def _sorted_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class ColocationModel:
    """What happens when jobs share one GPU. Construct with :func:`load_colocation_model`."""

    def __init__(
        self,
        catalog: JobCatalog,
        pairs: tuple[MeasuredPair, ...],
        unrunnable: frozenset[tuple[str, str, str]],
        paper_sets: tuple[MeasuredSet, ...],
        k_interference: float = fitted.K_INTERFERENCE,
        capacity: float = fitted.CAPACITY,
        profiles: MeasuredProfiles | None = None,
    ) -> None:
        if not 0.0 <= k_interference < 1.0 or not capacity > 0.0:
            raise ValueError(f"bad model constants k={k_interference}, C={capacity}")
        self.catalog = catalog
        self.k_interference = k_interference
        self.capacity = capacity
        self._pairs = {(p.gpu_type, p.a, p.b): p for p in pairs}
        self._unrunnable = unrunnable  # (gpu, a, b) with a <= b
        self._sets = {s.members: s for s in paper_sets}
        self._measured_alone = {
            (gpu, name) for (gpu, a, b) in self._pairs for name in (a, b)
        } | {(gpu, n) for (gpu, a, b) in unrunnable for n in (a, b)}
        self._paper_models = {m for s in paper_sets for m in s.members}
        self._entries: dict[tuple[tuple[str, ...], str], _Entry] = {}
        self.profiles = profiles  # profiler hook: measurements that take priority (source "profile")
        self._ordered: dict[tuple[tuple[str, ...], str], tuple[float, ...]] = {}

    # --- public queries -----------------------------------------------------------------------

    def speeds(self, job_types: tuple[str, ...], gpu_type: str) -> tuple[float, ...]:
        """Normalised speed of each member (1.0 = as fast as alone on ``gpu_type``), input order."""
        try:
            got = self._ordered.get((job_types, gpu_type))
        except TypeError:  # a list: not hashable
            job_types = tuple(job_types)
            got = self._ordered.get((job_types, gpu_type))
        if got is not None:
            return got
        entry = self._entry(job_types, gpu_type)
        out = tuple(entry.speed_by_type[t] for t in job_types)
        self._ordered[(job_types, gpu_type)] = out
        return out

    def utilisation(self, job_types: tuple[str, ...], gpu_type: str) -> float:
        """GPU utilisation (0..1) while the set shares the GPU."""
        return self._entry(tuple(job_types), gpu_type).utilisation

    def normalised_throughput(self, job_types: tuple[str, ...], gpu_type: str) -> float:
        """Sum of the members' normalised speeds (> 1: sharing beats running them one after another)."""
        return self._entry(tuple(job_types), gpu_type).throughput

    def feasible(self, job_types: tuple[str, ...], gpu_type: str) -> bool:
        """False if the summed peak memory exceeds the GPU's, or Gavel could not run a pair of the set there."""
        return self._entry(tuple(job_types), gpu_type).feasible

    def is_measured(self, job_types: tuple[str, ...], gpu_type: str) -> bool:
        return self._entry(tuple(job_types), gpu_type).source != "model"

    def source(self, job_types: tuple[str, ...], gpu_type: str) -> str:
        """``"profile"``, ``"gavel"``, ``"paper"`` or ``"model"`` (see the module docstring)."""
        return self._entry(tuple(job_types), gpu_type).source

    def model_only_speeds(self, job_types: tuple[str, ...], gpu_type: str) -> tuple[float, ...]:
        """The analytic model's speeds, ignoring measurements (for checking the model; not cached)."""
        if gpu_type not in GPU_TYPES:
            raise KeyError(f"unknown GPU type {gpu_type!r}; expected one of: {', '.join(sorted(GPU_TYPES))}")
        utils = [self.catalog.get(t).util_on(gpu_type) for t in job_types]
        return model_speeds(utils, self.k_interference, self.capacity)

    def fit_report(self) -> FitReport:
        """Model error against every measured combination (and the stored cross-validation)."""
        in_sample = []
        for gpu in GAVEL_GPU_TYPES:
            ape: list[float] = []
            ae: list[float] = []
            for (g, a, b), p in self._pairs.items():
                if g != gpu:
                    continue
                pred = self.model_only_speeds((a, b), gpu)
                for got, want in zip(pred, (p.speed_a, p.speed_b)):
                    ae.append(abs(got - want))
                    ape.append(abs(got - want) / want)
            if ae:
                in_sample.append(GpuFitError(gpu, sum(ape) / len(ape), sum(ae) / len(ae), len(ae)))
        set_ape = []
        for s in self._sets.values():
            ratio = predicted_set_ratio(self.model_only_speeds(s.members, PAPER_GPU_TYPE), s)
            set_ape.append(abs(ratio - s.ratio) / s.ratio)
        cv = tuple(GpuFitError(g, m, a, n) for g, (m, a, n) in fitted.CV_ERRORS.items())
        return FitReport(
            self.k_interference,
            self.capacity,
            tuple(in_sample),
            sum(set_ape) / len(set_ape) if set_ape else math.nan,
            cv,
            fitted.CV_FOLDS,
        )

    # --- internals ----------------------------------------------------------------------------

    def _entry(self, job_types: tuple[str, ...], gpu_type: str) -> _Entry:
        key = (tuple(sorted(job_types)), gpu_type)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._compute(key[0], gpu_type)
            self._entries[key] = entry
        return entry

    def _compute(self, types: tuple[str, ...], gpu: str) -> _Entry:
        if not types:
            raise ValueError("a co-located set needs at least one job type")
        if gpu not in GPU_TYPES:
            raise KeyError(f"unknown GPU type {gpu!r}; expected one of: {', '.join(sorted(GPU_TYPES))}")
        specs = [self.catalog.get(t) for t in types]  # KeyError names unknown types
        utils = [s.util_on(gpu) for s in specs]
        memory_ok = sum(s.memory_gb for s in specs) <= GPU_TYPES[gpu].memory_gb
        pairs_ok = all(
            (gpu, types[i], types[j]) not in self._unrunnable
            for i in range(len(types))
            for j in range(i + 1, len(types))
        )
        feasible = memory_ok and pairs_ok

        # --- profiler hook: measurements from eaco.colocation.profiles come first -------------
        if self.profiles is not None:
            profiled = self._profiled(types, gpu, utils, feasible)
            if profiled is not None:
                return profiled
        # --- end of profiler hook ------------------------------------------------------------

        if len(types) == 1:
            t = types[0]
            measured = (gpu, t) in self._measured_alone or (gpu == PAPER_GPU_TYPE and t in self._paper_models)
            src = ("paper" if t in self._paper_models else "gavel") if measured else "model"
            return _Entry({t: 1.0}, 1.0, utils[0], feasible, src)

        speed_by_type: dict[str, float]
        if len(types) == 2 and (gpu, types[0], types[1]) in self._pairs:
            p = self._pairs[(gpu, types[0], types[1])]
            if p.a == p.b:
                speed_by_type = {p.a: 0.5 * (p.speed_a + p.speed_b)}
            else:
                speed_by_type = {p.a: p.speed_a, p.b: p.speed_b}
            speeds = [speed_by_type[t] for t in types]
            util = min(1.0, sum(u * s for u, s in zip(utils, speeds)))
            return _Entry(speed_by_type, sum(speeds), util, feasible, "gavel")

        measured_set = self._sets.get(types) if gpu == PAPER_GPU_TYPE else None
        if measured_set is not None:
            r = measured_set.ratio
            return _Entry({t: r for t in types}, r * len(types), measured_set.utilisation, feasible, "paper")

        speeds = model_speeds(utils, self.k_interference, self.capacity)
        speed_by_type = dict(zip(types, speeds))  # equal demands get equal speeds, so duplicates agree
        util = min(1.0, sum(u * s for u, s in zip(utils, speeds)))
        return _Entry(speed_by_type, sum(speeds), util, feasible, "model")


    def _profiled(self, types: tuple[str, ...], gpu: str, utils: list[float], feasible: bool) -> _Entry | None:
        """Profiler hook: the entry measured by ``eaco profile``, or None (then the usual priority)."""
        assert self.profiles is not None
        if len(types) == 1:
            alone = self.profiles.exclusive.get((gpu, types[0]))
            if alone is None:
                return None
            util = alone.gpu_util_mean if alone.gpu_util_mean is not None else utils[0]
            return _Entry({types[0]: 1.0}, 1.0, util, feasible, "profile")
        measured = self.profiles.sets.get((gpu, types))
        if measured is None:
            return None
        speeds = [measured.speed_by_type[t] for t in types]
        util = measured.utilisation
        if util is None:
            util = min(1.0, sum(u * s for u, s in zip(utils, speeds)))
        # The set ran together on this GPU type, so it fits there.
        return _Entry(dict(measured.speed_by_type), sum(speeds), util, True, "profile")


ProfilesArg = MeasuredProfiles | str | Path | tuple[str | Path, ...] | list[str | Path] | None


def load_colocation_model(
    data_dir: Path | None = None, catalog: JobCatalog | None = None, profiles: ProfilesArg = None
) -> ColocationModel:
    """Load Gavel's pairs, the paper's sets and the catalogue (default: :func:`load_catalog`).

    ``profiles``: profile store file(s) written by ``eaco profile``, or :class:`MeasuredProfiles`;
    their measurements take priority (source ``"profile"``), and job types the catalogue lacks are
    added to it (:func:`eaco.colocation.profiles.extend_catalog`).
    """
    gavel = load_gavel_throughputs(data_dir)
    paper = load_paper_tables(data_dir)
    if catalog is None:
        catalog = build_catalog(read_job_type_rows(), gavel, paper)
    pairs, unrunnable = gavel_pairs(gavel)
    measured: MeasuredProfiles | None = None
    if profiles is not None:  # profiler hook
        measured = profiles if isinstance(profiles, MeasuredProfiles) else load_profiles(profiles)
        catalog = extend_catalog(catalog, measured)
    return ColocationModel(catalog, pairs, unrunnable, paper_sets(paper), profiles=measured)
