"""The analytic co-location model: how fast each job runs when several share one GPU by time-slicing.

Each job i has an exclusive GPU demand ``u_i`` (its GPU utilisation, 0..1, when alone). The GPU
offers a usable capacity ``C`` of busy time when several processes time-slice on it (C < 1: the
context switches between CUDA processes waste part of the time). The capacity is shared
max-min fairly ("water-filling"): a job that asks for less than an equal share gets all it asks
for, and what is left is split equally among the others. On top of that, every extra job adds a
fixed interference ``k`` (caches, memory bandwidth, host contention) that slows all members::

    a = water_fill(u, C)                       # GPU time each job gets (a_i <= u_i)
    speed_i = max(MIN_SPEED, 1 - k (n - 1)) * a_i / u_i

When all demands are equal this is exactly ``(1 - k (n - 1)) * min(1, C / sum(u))``; with unequal
demands a light job keeps its full speed while the heavy one absorbs the contention, which is
what Gavel's measured pairs show. ``k`` and ``C`` are fitted by :mod:`eaco.colocation.fit`.
"""

from __future__ import annotations

from typing import Sequence

# Floor on the interference factor so that very large sets keep a positive speed.
MIN_SPEED = 0.05


def water_fill(demands: Sequence[float], capacity: float) -> list[float]:
    """Max-min fair split of ``capacity`` among ``demands`` (same order as ``demands``)."""
    n = len(demands)
    alloc = [0.0] * n
    remaining = capacity
    left = n
    for i in sorted(range(n), key=demands.__getitem__):
        share = remaining / left
        got = demands[i] if demands[i] <= share else share
        alloc[i] = got
        remaining -= got
        left -= 1
    return alloc


def model_speeds(utils: Sequence[float], k: float, capacity: float) -> tuple[float, ...]:
    """Normalised speed (1.0 = as fast as alone) of each job; same order as ``utils``."""
    n = len(utils)
    if n == 0:
        raise ValueError("a co-located set needs at least one job")
    if n == 1:
        return (1.0,)
    for u in utils:
        if not 0.0 < u <= 1.0:
            raise ValueError(f"exclusive utilisation must be in (0, 1], got {u!r}")
    slow = max(MIN_SPEED, 1.0 - k * (n - 1))
    alloc = water_fill(utils, capacity)
    return tuple(slow * a / u for a, u in zip(alloc, utils))


def pair_speeds_vec(ua, ub, k: float, capacity: float):  # type: ignore[no-untyped-def]
    """Vectorised :func:`model_speeds` for many pairs at once (numpy arrays in, two arrays out)."""
    import numpy as np

    lo = np.minimum(ua, ub)
    half = capacity / 2.0
    under = ua + ub <= capacity
    # allocation of the lighter job, then the heavier one gets the rest (capped at its demand)
    a_lo = np.where(under, lo, np.minimum(lo, half))
    a_hi_cap = capacity - a_lo
    a_a = np.where(ua <= ub, a_lo, np.minimum(ua, a_hi_cap))
    a_b = np.where(ua <= ub, np.minimum(ub, a_hi_cap), a_lo)
    slow = max(MIN_SPEED, 1.0 - k)
    return slow * a_a / ua, slow * a_b / ub
