"""Power of the host (CPUs and what their load drives) as a function of CPU utilisation.

Fan, Weber & Barroso, "Power Provisioning for a Warehouse-sized Computer", ISCA 2007, model the
power of a server at CPU utilisation ``u`` as

    P(u) = P_idle + (P_max - P_idle) * (2u - u**r)

with ``r`` a calibration exponent (1.4 in their fit). The EaCO paper uses this model for the
"server" part of node power (GPU power is sampled from the driver). ``2u - u**r`` is 0 at u=0,
1 at u=1, and rises steeply at low load (idle servers are not energy-proportional).

Defaults describe the paper's node: 2x Intel Xeon Gold 6240 (18 cores / 36 threads and a 150 W
TDP each, Intel ARK), 768 GB RAM, 8x V100. The EaCO paper does not publish its host parameters,
so ``max_power_w`` (2 x 150 W TDP) is a datasheet bound and ``idle_power_w`` and ``low_power_w``
are stated assumptions; see docs/energy.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

XEON_GOLD_6240_TDP_W = 150.0  # Intel ARK, Xeon Gold 6240 (Cascade Lake), 18 cores
PAPER_NODE_SOCKETS = 2
PAPER_NODE_HW_THREADS = 72  # 2 sockets x 18 cores x 2 hyper-threads

FWB_EXPONENT_R = 1.4  # Fan, Weber & Barroso (2007), calibrated exponent
PAPER_HOST_MAX_POWER_W = PAPER_NODE_SOCKETS * XEON_GOLD_6240_TDP_W  # 300 W: datasheet bound
# Assumption (not measured here): an idle Cascade Lake package with C-states enabled draws ~20% of
# its TDP, i.e. 30 W per socket.
PAPER_HOST_IDLE_POWER_W = PAPER_NODE_SOCKETS * 0.2 * XEON_GOLD_6240_TDP_W  # 60 W
# Assumption: a node in its low-power state (soft-off / suspend; BMC and standby rail only) draws
# 25 W in total, GPUs included. No measurement in our data; set it from your own PDU readings.
PAPER_NODE_LOW_POWER_W = 25.0


@dataclass(frozen=True, slots=True)
class HostPowerModel:
    """Fan-Weber-Barroso host power curve plus the node's low-power (sleep) draw."""

    idle_power_w: float = PAPER_HOST_IDLE_POWER_W
    max_power_w: float = PAPER_HOST_MAX_POWER_W
    exponent_r: float = FWB_EXPONENT_R
    low_power_w: float = PAPER_NODE_LOW_POWER_W  # whole node asleep (no job), GPUs included

    def __post_init__(self) -> None:
        for name in ("idle_power_w", "max_power_w", "exponent_r", "low_power_w"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f"HostPowerModel.{name}: expected a finite number >= 0, got {value!r}")
        if self.max_power_w < self.idle_power_w:
            raise ValueError(
                f"HostPowerModel.max_power_w: expected >= idle_power_w ({self.idle_power_w}), got {self.max_power_w}"
            )
        if not 1.0 <= self.exponent_r <= 2.0:
            # 2u - u**r stays within [0, 1] and increasing on [0, 1] only for 1 <= r <= 2.
            raise ValueError(f"HostPowerModel.exponent_r: expected 1 <= r <= 2, got {self.exponent_r}")

    def power_w(self, cpu_util: float) -> float:
        """Host power (W) at CPU utilisation ``cpu_util`` (fraction; clipped to [0, 1])."""
        if cpu_util <= 0.0:
            return self.idle_power_w
        if cpu_util >= 1.0:
            return self.max_power_w
        if cpu_util != cpu_util:
            raise ValueError("HostPowerModel.power_w: cpu_util is NaN")
        u = cpu_util
        return self.idle_power_w + (self.max_power_w - self.idle_power_w) * (2.0 * u - u**self.exponent_r)
