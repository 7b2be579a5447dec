"""Fit the co-location model (:mod:`eaco.colocation.interference`) to every measured co-location.

Run ``python -m eaco.colocation.fit`` to print the fit, ``--write`` to store it: the effective
utilisations of Gavel's job types go into ``src/eaco/data/job_types.csv`` (``util_<gpu>``) and
``k``, ``C`` and the errors into ``src/eaco/colocation/fitted.py``. The fit takes ~1 s and the
5-fold cross-validation ~25 s on 2 cores.

Data (see docs/colocation.md):

- Gavel pairs (k80, p100, v100; scale factor 1; runnable): each gives two measured speeds,
  co-located steps/s / exclusive steps/s on that GPU type.
- The paper's sets (V100, Tables 3-4): the set's ratio mean(exclusive epoch) / co-located epoch
  (four-job set: mean exclusive JCT / co-located JCT); members' utilisations are Table 1's.

Free parameters: ``k``, ``C`` (global) and one effective utilisation per (Gavel job type, GPU
type) in [U_MIN, 1]. The paper's utilisations are measured and stay fixed; they pin the scale of C.
Loss: squared speed error, each of the four groups (gavel-k80, gavel-p100, gavel-v100, paper)
weighted 1 / its number of observations, so each source counts equally.
Method: cyclic coordinate descent with a grid line search per coordinate (numpy only).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eaco.colocation.gavel import GAVEL_GPU_TYPES, GavelThroughputs, load_gavel_throughputs
from eaco.colocation.interference import MIN_SPEED, model_speeds, pair_speeds_vec
from eaco.colocation.job_types import read_job_type_rows, write_fitted_utils
from eaco.colocation.measured import (
    MeasuredPair,
    MeasuredSet,
    gavel_pairs,
    model_set_ratio,
    paper_sets,
    predicted_set_ratio,
)
from eaco.measurements.paper import PaperTables, load_paper_tables

U_MIN = 0.02
FITTED_PY = Path(__file__).resolve().parent / "fitted.py"
_U_GRID = np.linspace(U_MIN, 1.0, 197)  # step 0.005
_K_GRID = np.linspace(0.0, 0.3, 301)
_C_GRID = np.linspace(0.3, 1.5, 481)


def observations(gavel: GavelThroughputs, paper: PaperTables) -> tuple[tuple[MeasuredPair, ...], tuple[MeasuredSet, ...]]:
    return gavel_pairs(gavel)[0], paper_sets(paper)


def equal_share_speeds(utils: tuple[float, ...], k: float, capacity: float) -> tuple[float, ...]:
    """Baseline for comparison only: every member gets ``(1 - k (n-1)) * min(1, C / sum u)``."""
    n = len(utils)
    s = max(MIN_SPEED, 1.0 - k * (n - 1)) * min(1.0, capacity / sum(utils))
    return (s,) * n


def equal_share_pair_vec(ua, ub, k: float, capacity: float):  # type: ignore[no-untyped-def]
    s = max(MIN_SPEED, 1.0 - k) * np.minimum(1.0, capacity / (ua + ub))
    return s, s


def set_ratio(obs: MeasuredSet, k: float, capacity: float, equal_share: bool = False) -> float:
    """Model's mean exclusive time / mean co-located time for a paper set."""
    if not equal_share:
        return model_set_ratio(obs, k, capacity)
    return predicted_set_ratio(equal_share_speeds(obs.utils, k, capacity), obs)


@dataclass(frozen=True, slots=True)
class FitResult:
    k: float
    capacity: float
    utils: dict[str, dict[str, float]]  # job type -> gpu type -> effective utilisation
    loss: float


class _Problem:
    """Observations as index arrays, so that the loss is a few numpy operations."""

    def __init__(self, pairs: tuple[MeasuredPair, ...], sets: tuple[MeasuredSet, ...], equal_share: bool = False) -> None:
        self.equal_share = equal_share
        self.pair_fn = equal_share_pair_vec if equal_share else pair_speeds_vec
        self.keys = sorted({(p.gpu_type, n) for p in pairs for n in (p.a, p.b)})
        index = {key: i for i, key in enumerate(self.keys)}
        self.ia = np.array([index[(p.gpu_type, p.a)] for p in pairs], dtype=np.int64)
        self.ib = np.array([index[(p.gpu_type, p.b)] for p in pairs], dtype=np.int64)
        self.sa = np.array([p.speed_a for p in pairs])
        self.sb = np.array([p.speed_b for p in pairs])
        counts = {g: sum(1 for p in pairs if p.gpu_type == g) for g in GAVEL_GPU_TYPES}
        self.w = np.array([1.0 / (2 * counts[p.gpu_type]) for p in pairs])  # 2 speeds per pair
        self.sets = sets
        self.w_set = 1.0 / len(sets) if sets else 0.0
        self.touching = [np.flatnonzero((self.ia == i) | (self.ib == i)) for i in range(len(self.keys))]

    def pair_loss(self, u: np.ndarray, k: float, c: float, rows: np.ndarray | None = None) -> float:
        ia, ib, sa, sb, w = (self.ia, self.ib, self.sa, self.sb, self.w) if rows is None else (
            self.ia[rows], self.ib[rows], self.sa[rows], self.sb[rows], self.w[rows])
        pa, pb = self.pair_fn(u[ia], u[ib], k, c)
        return float(np.sum(w * ((pa - sa) ** 2 + (pb - sb) ** 2)))

    def set_loss(self, k: float, c: float) -> float:
        return self.w_set * sum((set_ratio(s, k, c, self.equal_share) - s.ratio) ** 2 for s in self.sets)

    def loss(self, u: np.ndarray, k: float, c: float) -> float:
        return self.pair_loss(u, k, c) + self.set_loss(k, c)

    def best_u(self, u: np.ndarray, i: int, k: float, c: float) -> float:
        rows = self.touching[i]
        ia, ib = self.ia[rows], self.ib[rows]
        grid = _U_GRID[:, None]
        ua = np.where(ia == i, grid, u[ia][None, :])
        ub = np.where(ib == i, grid, u[ib][None, :])
        pa, pb = self.pair_fn(ua, ub, k, c)
        err = np.sum(self.w[rows] * ((pa - self.sa[rows]) ** 2 + (pb - self.sb[rows]) ** 2), axis=1)
        return float(_U_GRID[int(np.argmin(err))])


# Starting points of the multi-start search (coordinate descent on a non-smooth loss has local minima).
STARTS = ((0.03, 0.9), (0.0, 1.2), (0.1, 0.6), (0.05, 1.0))


def fit(pairs: tuple[MeasuredPair, ...], sets: tuple[MeasuredSet, ...], sweeps: int = 30, equal_share: bool = False) -> FitResult:
    """Best of :data:`STARTS` by loss. ``equal_share`` fits the baseline model instead (comparison only)."""
    prob = _Problem(pairs, sets, equal_share)
    return min((_descend(prob, sweeps, k0, c0) for k0, c0 in STARTS), key=lambda r: r.loss)


def _descend(prob: "_Problem", sweeps: int, k0: float, c0: float) -> FitResult:
    u = np.full(len(prob.keys), 0.5)
    k, c = k0, c0
    last = math.inf
    for _ in range(sweeps):
        for i in range(len(u)):
            u[i] = prob.best_u(u, i, k, c)
        k = float(min(_K_GRID, key=lambda kk: prob.loss(u, float(kk), c)))
        c = float(min(_C_GRID, key=lambda cc: prob.loss(u, k, float(cc))))
        cur = prob.loss(u, k, c)
        if last - cur < 1e-9:
            break
        last = cur
    utils: dict[str, dict[str, float]] = {}
    for (gpu, name), value in zip(prob.keys, u):
        utils.setdefault(name, {})[gpu] = float(value)
    return FitResult(k, c, utils, prob.loss(u, k, c))


def fill_unfitted(utils: dict[str, dict[str, float]]) -> list[str]:
    """Give (job type, GPU) combos with no runnable pair the value of the same family's nearest batch size.

    Only ResNet-50 (batch size 128) on k80 needs it: every pair with it is ``[0, 0]`` there, so the
    value only sets its exclusive utilisation. Returns what was filled, for the record.
    """
    rows = [r for r in read_job_type_rows() if r.origin == "gavel"]
    filled: list[str] = []
    for row in rows:
        for gpu in GAVEL_GPU_TYPES:
            if gpu in utils.get(row.name, {}):
                continue
            donors = [d for d in rows if d.family == row.family and gpu in utils.get(d.name, {})]
            if not donors:
                raise ValueError(f"no fitted utilisation for {row.name!r} on {gpu} nor for its family")
            donor = min(donors, key=lambda d: abs(math.log(d.batch_size_per_gpu / row.batch_size_per_gpu)))
            utils.setdefault(row.name, {})[gpu] = utils[donor.name][gpu]
            filled.append(f"{row.name} on {gpu} <- {donor.name}")
    return filled


def _errors(pairs: tuple[MeasuredPair, ...], res: FitResult, equal_share: bool = False) -> dict[str, tuple[float, float, int]]:
    """gpu type -> (MAPE, MAE, number of speeds) of the model on ``pairs``."""
    out: dict[str, tuple[float, float, int]] = {}
    for gpu in GAVEL_GPU_TYPES:
        ape: list[float] = []
        ae: list[float] = []
        for p in pairs:
            if p.gpu_type != gpu:
                continue
            fn = equal_share_speeds if equal_share else model_speeds
            pred = fn((res.utils[p.a][gpu], res.utils[p.b][gpu]), res.k, res.capacity)
            for got, want in zip(pred, (p.speed_a, p.speed_b)):
                ae.append(abs(got - want))
                ape.append(abs(got - want) / want)
        if ae:
            out[gpu] = (float(np.mean(ape)), float(np.mean(ae)), len(ae))
    return out


def cross_validate(pairs: tuple[MeasuredPair, ...], sets: tuple[MeasuredSet, ...], folds: int = 5, seed: int = 0) -> dict[str, tuple[float, float, int]]:
    """k-fold CV over Gavel pairs (each fold refits everything without its pairs)."""
    rng = np.random.default_rng(seed)
    fold_of = rng.integers(0, folds, size=len(pairs))
    ape: dict[str, list[float]] = {g: [] for g in GAVEL_GPU_TYPES}
    ae: dict[str, list[float]] = {g: [] for g in GAVEL_GPU_TYPES}
    for f in range(folds):
        train = tuple(p for p, fo in zip(pairs, fold_of) if fo != f)
        test = tuple(p for p, fo in zip(pairs, fold_of) if fo == f)
        res = fit(train, sets)
        for p in test:
            ua, ub = res.utils.get(p.a, {}).get(p.gpu_type), res.utils.get(p.b, {}).get(p.gpu_type)
            if ua is None or ub is None:
                continue
            for got, want in zip(model_speeds((ua, ub), res.k, res.capacity), (p.speed_a, p.speed_b)):
                ae[p.gpu_type].append(abs(got - want))
                ape[p.gpu_type].append(abs(got - want) / want)
    return {g: (float(np.mean(ape[g])), float(np.mean(ae[g])), len(ae[g])) for g in GAVEL_GPU_TYPES}


def _fmt_errors(errs: dict[str, tuple[float, float, int]]) -> str:
    return "{" + ", ".join(f"{g!r}: ({m:.4f}, {a:.4f}, {n})" for g, (m, a, n) in errs.items()) + "}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="store utilisations in job_types.csv and k, C in fitted.py")
    ap.add_argument("--folds", type=int, default=5, help="folds for cross-validation (0 to skip)")
    args = ap.parse_args(argv)

    gavel = load_gavel_throughputs()
    paper = load_paper_tables()
    pairs, sets = observations(gavel, paper)
    catalogue = {r.name for r in read_job_type_rows() if r.origin == "gavel"}
    unknown = sorted({n for p in pairs for n in (p.a, p.b)} - catalogue)
    if unknown:
        raise SystemExit(f"Gavel job types missing from job_types.csv: {unknown}")
    res = fit(pairs, sets)
    errs = _errors(pairs, res)
    set_rows = [(s.members, s.ratio, set_ratio(s, res.k, res.capacity)) for s in sets]
    paper_mape = float(np.mean([abs(p - m) / m for _, m, p in set_rows]))
    print(f"pairs: {len(pairs)}  paper sets: {len(sets)}  k = {res.k:.4f}  C = {res.capacity:.4f}  loss = {res.loss:.5f}")
    for g, (m, a, n) in errs.items():
        print(f"  in-sample {g}: MAPE {m:.3f}  MAE {a:.3f}  ({n} speeds)")
    for members, measured, pred in set_rows:
        print(f"  paper {'+'.join(members)}: measured {measured:.4f} model {pred:.4f}")
    print(f"  paper sets MAPE {paper_mape:.4f}")
    base = fit(pairs, sets, equal_share=True)
    for g, (m, a, n) in _errors(pairs, base, equal_share=True).items():
        print(f"  baseline equal-share (k={base.k:.4f}, C={base.capacity:.4f}) in-sample {g}: MAPE {m:.3f}  MAE {a:.3f}")
    cv = cross_validate(pairs, sets, args.folds) if args.folds > 1 else {}
    for g, (m, a, n) in cv.items():
        print(f"  {args.folds}-fold CV {g}: MAPE {m:.3f}  MAE {a:.3f}  ({n} speeds)")
    if args.write:
        for line in fill_unfitted(res.utils):
            print(f"  no runnable pair, filled: {line}")
        write_fitted_utils(res.utils)
        FITTED_PY.write_text(
            '"""GENERATED by ``python -m eaco.colocation.fit --write``; do not edit by hand.\n\n'
            "Constants of the co-location model fitted to Gavel's pairs and the paper's sets\n"
            '(see docs/colocation.md). Errors: gpu type -> (MAPE, MAE, number of speeds)."""\n\n'
            f"K_INTERFERENCE = {res.k:.4f}  # speed lost per extra job sharing the GPU\n"
            f"CAPACITY = {res.capacity:.4f}  # usable GPU busy time when time-slicing (fraction)\n"
            f"MIN_SPEED_FLOOR = {MIN_SPEED}\n"
            f"FIT_LOSS = {res.loss:.6f}\n"
            f"IN_SAMPLE_ERRORS = {_fmt_errors(errs)}\n"
            f"PAPER_SETS_MAPE = {paper_mape:.4f}\n"
            f"CV_FOLDS = {args.folds}\n"
            f"CV_ERRORS = {_fmt_errors(cv)}\n"
        )
        print(f"wrote {FITTED_PY} and the util columns of job_types.csv")


if __name__ == "__main__":
    main()
