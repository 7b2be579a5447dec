"""Power drawn by one GPU as a function of its utilisation.

``P(util) = idle_power_w + (max_power_w - idle_power_w) * util ** exponent``, with ``util``
clipped to [0, 1]. ``util`` is the fraction of time a kernel runs on the GPU (what NVML and
``nvidia-smi`` report as GPU utilisation). An ``exponent`` below 1 gives a concave curve (a GPU
that is busy a little of the time already draws well above idle), above 1 a convex one.

Calibrated parameters per GPU type live in ``eaco/data/gpu_power.csv``
(see :mod:`eaco.energy.power_table` and ``gpu_power.md`` next to it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuPowerModel:
    """Utilisation-to-power curve of one GPU (one die, as the scheduler sees it)."""

    gpu_type: str
    idle_power_w: float  # awake, no kernel running (P0/P2 with a process attached)
    max_power_w: float  # fully busy (util = 1) training draw
    exponent: float  # shape of the curve between idle and max

    def __post_init__(self) -> None:
        for name in ("idle_power_w", "max_power_w", "exponent"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"GpuPowerModel({self.gpu_type!r}).{name}: expected a finite number, got {value!r}")
        if self.idle_power_w < 0.0:
            raise ValueError(f"GpuPowerModel({self.gpu_type!r}).idle_power_w: expected >= 0, got {self.idle_power_w}")
        if self.max_power_w < self.idle_power_w:
            raise ValueError(
                f"GpuPowerModel({self.gpu_type!r}).max_power_w: expected >= idle_power_w "
                f"({self.idle_power_w}), got {self.max_power_w}"
            )
        if self.exponent <= 0.0:
            raise ValueError(f"GpuPowerModel({self.gpu_type!r}).exponent: expected > 0, got {self.exponent}")

    @property
    def dynamic_range_w(self) -> float:
        return self.max_power_w - self.idle_power_w

    def power_w(self, util: float) -> float:
        """Power (W) at GPU utilisation ``util`` (fraction; clipped to [0, 1]). Hot path: plain floats."""
        if util <= 0.0:
            return self.idle_power_w
        if util >= 1.0:
            return self.max_power_w
        if util != util:  # NaN: a bug upstream, never a power
            raise ValueError(f"GpuPowerModel({self.gpu_type!r}).power_w: util is NaN")
        return self.idle_power_w + (self.max_power_w - self.idle_power_w) * util**self.exponent

    def energy_j(self, util: float, duration_s: float) -> float:
        """Energy (J) drawn at constant ``util`` for ``duration_s`` seconds."""
        return self.power_w(util) * duration_s
