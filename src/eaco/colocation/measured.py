"""Measured co-locations as speeds: Gavel's pairs and the EaCO paper's sets (used by the model and the fit)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from eaco.colocation.gavel import GAVEL_GPU_TYPES, GavelThroughputs
from eaco.colocation.interference import model_speeds
from eaco.measurements.paper import PaperTables


@dataclass(frozen=True, slots=True)
class MeasuredPair:
    """Two job types sharing one GPU in Gavel's file (scale factor 1); ``a <= b`` by name."""

    gpu_type: str
    a: str
    b: str
    speed_a: float  # co-located steps/s / exclusive steps/s on the same GPU type
    speed_b: float


@dataclass(frozen=True, slots=True)
class MeasuredSet:
    """A set of the paper's jobs time-sliced on one 8x V100 node (Tables 3-4)."""

    members: tuple[str, ...]  # paper model names, sorted
    utils: tuple[float, ...]  # Table 1 exclusive GPU utilisation of each member (same order)
    exclusive_time_h: tuple[float, ...]  # each member's epoch time alone (JCT for the 4-job set)
    ratio: float  # mean exclusive time / measured co-located time: every member's speed
    utilisation: float  # measured average GPU utilisation of the set
    basis: str  # "epoch" or "jct"


def gavel_pairs(gavel: GavelThroughputs) -> tuple[tuple[MeasuredPair, ...], frozenset[tuple[str, str, str]]]:
    """Runnable pairs as speeds, and the ``(gpu, a, b)`` (a <= b) that Gavel gives as ``[0, 0]``."""
    pairs: list[MeasuredPair] = []
    unrunnable: set[tuple[str, str, str]] = set()
    for p in gavel.pairs:
        if p.scale_factor != 1 or p.gpu_type not in GAVEL_GPU_TYPES or p.job_type > p.other_type:
            continue  # the file holds both orders, mirrored (checked); keep a <= b
        if not p.runnable:
            unrunnable.add((p.gpu_type, p.job_type, p.other_type))
            continue
        ex_a = gavel.exclusive_steps_per_s(p.gpu_type, p.job_type)
        ex_b = gavel.exclusive_steps_per_s(p.gpu_type, p.other_type)
        if not ex_a or not ex_b:
            raise ValueError(
                f"{gavel.source}: pair {p.job_type!r} + {p.other_type!r} on {p.gpu_type} lacks an exclusive throughput"
            )
        pairs.append(
            MeasuredPair(p.gpu_type, p.job_type, p.other_type, p.self_steps_per_s / ex_a, p.other_steps_per_s / ex_b)
        )
    return tuple(pairs), frozenset(unrunnable)


def paper_sets(paper: PaperTables) -> tuple[MeasuredSet, ...]:
    """Every co-located set of Tables 3-4 with its speed ratio (epoch basis; JCT where no epoch time)."""
    by_job = paper.by_job()
    out: list[MeasuredSet] = []
    for row in paper.colocated:
        members = sorted((by_job[j] for j in row.job_set), key=lambda m: m.model)
        if math.isnan(row.avg_epoch_h):
            excl = tuple(m.jct_h for m in members)
            colo, basis = row.avg_jct_h, "jct"
        else:
            excl = tuple(m.epoch_h for m in members)
            colo, basis = row.avg_epoch_h, "epoch"
        out.append(
            MeasuredSet(
                members=tuple(m.model for m in members),
                utils=tuple(m.gpu_util_avg for m in members),
                exclusive_time_h=excl,
                ratio=(sum(excl) / len(excl)) / colo,
                utilisation=row.gpu_util_avg,
                basis=basis,
            )
        )
    return tuple(out)


def predicted_set_ratio(speeds: tuple[float, ...], obs: MeasuredSet) -> float:
    """Mean exclusive time / mean co-located time if the members ran at ``speeds`` (obs order)."""
    colo = sum(t / s for t, s in zip(obs.exclusive_time_h, speeds)) / len(speeds)
    return (sum(obs.exclusive_time_h) / len(speeds)) / colo


def model_set_ratio(obs: MeasuredSet, k: float, capacity: float) -> float:
    return predicted_set_ratio(model_speeds(obs.utils, k, capacity), obs)
