"""How a shared GPU's energy (or power) is attributed to the jobs on it, in the simulator and the
live runtime alike: the idle part (the power curve at utilisation 0, at most what the GPU drew)
split equally, the rest, what the jobs' work adds, in proportion to each job's weight (its share
of the work); a job alone gets it all."""

from __future__ import annotations

from typing import Sequence


def split_gpu_energy(total: float, idle: float, weights: Sequence[float]) -> list[float]:
    """``total`` (J, or W) split among the jobs whose work weights are ``weights``: ``idle`` (at
    most ``total``) equally, the rest in proportion to the weights (equally when all are 0)."""
    n = len(weights)
    if n == 1:
        return [total]
    idle = min(idle, total)
    weight_sum = sum(weights)
    shares = [w / weight_sum for w in weights] if weight_sum > 0 else [1.0 / n] * n
    return [idle / n + (total - idle) * s for s in shares]
