"""Assigning a catalogue job type to a trace job that has none (seeded, documented rule).

Rule (see docs/workloads.md, "Job-type assignment"):

1. Target utilisation ``u``: drawn from the Philly per-GPU utilisation CDF by inverse-CDF
   sampling (``u = F^-1(p)``, ``p ~ U[0,1)``), unless the caller supplies one (the Alibaba
   loader passes a fractional pod's GPU share).
2. Candidates: the catalogue types allowed for the job's GPU count (all, unless a ``supports``
   filter is given) whose exclusive utilisation on the reference GPU (V100) is nearest to ``u``:
   ``|util_t - u| <= d_min + tolerance``. With the default ``tolerance = 0`` only the nearest
   type(s) qualify (several only when they tie).
3. Pick one candidate uniformly.

Each job consumes exactly two uniforms from the generator (``p`` and the tie-break ``v``, even
when ``u`` is supplied), so ``assign_many`` over a list equals ``assign`` called once per item,
and the result for job k does not depend on whether earlier jobs had a supplied ``u``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from eaco.colocation.catalog import REFERENCE_GPU, JobCatalog, JobTypeSpec
from eaco.workloads.util_cdf import UtilisationCdf

# Utilisations closer than this count as equal (catalogue values carry a few decimals).
_TIE_EPS = 1e-9


@dataclass(frozen=True, slots=True, eq=False)
class TypeDraws:
    """Result of :meth:`JobTypeAssigner.draw`: one entry per job."""

    type_index: np.ndarray  # index into the assigner's ``types``
    target_util: np.ndarray  # the utilisation u the choice aimed at (drawn or supplied)
    drawn: np.ndarray  # True where u came from the CDF (False: supplied by the caller)


class JobTypeAssigner:
    """Seeded job-type assignment by nearest exclusive V100 utilisation.

    ``rng`` is a ``numpy.random.Generator``; the assigner advances it (two doubles per job).
    ``supports(spec, num_gpus)`` can bar types from jobs of some GPU counts (default: all allowed).
    """

    __slots__ = (
        "_allowed_cache",
        "_supports",
        "catalog",
        "rng",
        "tolerance",
        "type_util",
        "types",
        "util_cdf",
    )

    def __init__(
        self,
        catalog: JobCatalog,
        util_cdf: UtilisationCdf,
        rng: np.random.Generator,
        *,
        tolerance: float = 0.0,
        supports: Callable[[JobTypeSpec, int], bool] | None = None,
    ) -> None:
        if not catalog.types:
            raise ValueError("job-type assignment needs a non-empty catalogue")
        if not tolerance >= 0.0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        self.catalog = catalog
        self.util_cdf = util_cdf
        self.rng = rng
        self.tolerance = float(tolerance)
        self.types: tuple[JobTypeSpec, ...] = catalog.types
        self.type_util = np.array([t.util_on(REFERENCE_GPU) for t in self.types], dtype=float)
        self._supports = supports
        self._allowed_cache: dict[int, np.ndarray] = {}

    @classmethod
    def from_seed(
        cls,
        catalog: JobCatalog,
        seed: int,
        util_cdf: UtilisationCdf | None = None,
        **kwargs: object,
    ) -> JobTypeAssigner:
        """Assigner with its own generator ``numpy.random.default_rng(seed)``."""
        from eaco.workloads.util_cdf import load_util_cdf

        cdf = util_cdf if util_cdf is not None else load_util_cdf()
        return cls(catalog, cdf, np.random.default_rng(seed), **kwargs)  # type: ignore[arg-type]

    def _allowed(self, num_gpus: int) -> np.ndarray:
        mask = self._allowed_cache.get(num_gpus)
        if mask is None:
            if self._supports is None:
                mask = np.ones(len(self.types), dtype=bool)
            else:
                mask = np.array([self._supports(t, num_gpus) for t in self.types], dtype=bool)
            if not mask.any():
                raise ValueError(f"no catalogue job type supports jobs of {num_gpus} GPU(s)")
            self._allowed_cache[num_gpus] = mask
        return mask

    def draw(
        self, num_gpus: Sequence[int] | np.ndarray, target_util: Sequence[float] | np.ndarray | None = None
    ) -> TypeDraws:
        """Choose types for a batch of jobs; ``target_util[k]`` NaN (or no array) means draw u."""
        gpus = np.asarray(num_gpus, dtype=np.int64)
        n = gpus.size
        uniforms = self.rng.random((n, 2))
        if target_util is None:
            supplied = np.full(n, np.nan)
        else:
            supplied = np.asarray(target_util, dtype=float)
            if supplied.shape != (n,):
                raise ValueError(f"target_util must have {n} entries, got shape {supplied.shape}")
        drawn = np.isnan(supplied)
        u = np.where(drawn, self.util_cdf.quantile(uniforms[:, 0]), supplied)
        if n == 0:
            return TypeDraws(np.zeros(0, dtype=np.int64), u, drawn)

        dist = np.abs(u[:, None] - self.type_util[None, :])  # (n, T)
        for g in np.unique(gpus):
            allowed = self._allowed(int(g))
            if not allowed.all():
                rows = gpus == g
                dist[np.ix_(rows, ~allowed)] = np.inf
        d_min = dist.min(axis=1, keepdims=True)
        cand = dist <= d_min + self.tolerance + _TIE_EPS
        counts = cand.sum(axis=1)
        pick = np.minimum((uniforms[:, 1] * counts).astype(np.int64), counts - 1)  # 0..k-1
        # index of the (pick+1)-th True in each row
        type_index = np.argmax(np.cumsum(cand, axis=1) > pick[:, None], axis=1)
        return TypeDraws(type_index=type_index, target_util=u, drawn=drawn)

    def assign_many(
        self, num_gpus: Sequence[int] | np.ndarray, target_util: Sequence[float] | np.ndarray | None = None
    ) -> list[JobTypeSpec]:
        draws = self.draw(num_gpus, target_util)
        return [self.types[i] for i in draws.type_index.tolist()]

    def assign(self, num_gpus: int) -> JobTypeSpec:
        """Type for one job: u from the utilisation CDF, then the nearest catalogue type(s)."""
        return self.assign_many([num_gpus])[0]

    def assign_for_util(self, util: float, num_gpus: int) -> JobTypeSpec:
        """Type whose exclusive V100 utilisation is nearest to the given ``util`` (0..1)."""
        if not 0.0 <= util <= 1.0:
            raise ValueError(f"util must be in [0, 1], got {util}")
        return self.assign_many([num_gpus], [util])[0]
