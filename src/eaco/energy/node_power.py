"""Whole-node power: GPUs + host + a constant baseline, and the low-power state of empty nodes.

Awake node (at least one job, or empty with ``sleep_empty_nodes=False``):

    P_node = node_baseline_w + host.power_w(cpu_util) + sum(gpu.power_w(u) for u in gpu_utils)

Empty node with ``sleep_empty_nodes=True``: ``host.low_power_w`` (the whole node, GPUs included).

``default_energy_model()`` reads the packaged GPU table (``eaco/data/gpu_power.csv``) and uses the
paper node's host defaults and the baseline fitted by :func:`eaco.energy.calibration.run_calibration`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

from eaco.energy.gpu_power import GpuPowerModel
from eaco.energy.host_power import HostPowerModel
from eaco.energy.power_table import load_gpu_power_models

# Fitted by run_calibration() with the default host and CPU assumption (docs/energy.md);
# tests/test_energy.py checks that a fresh calibration reproduces it within 0.5 W.
PAPER_NODE_BASELINE_W = 28.3


@dataclass(frozen=True, slots=True)
class EnergyModel:
    """Everything the simulator needs to turn utilisation into node power."""

    gpus: Mapping[str, GpuPowerModel]  # by GPU type name ("v100")
    host: HostPowerModel
    node_baseline_w: float  # fans, PSU losses, NICs, ...: drawn whenever the node is awake
    sleep_empty_nodes: bool = True

    def __post_init__(self) -> None:
        if not math.isfinite(self.node_baseline_w) or self.node_baseline_w < 0.0:
            raise ValueError(f"EnergyModel.node_baseline_w: expected a finite number >= 0, got {self.node_baseline_w!r}")
        for name, model in self.gpus.items():
            if name != model.gpu_type:
                raise ValueError(f"EnergyModel.gpus[{name!r}] holds the model of {model.gpu_type!r}")
        object.__setattr__(self, "gpus", MappingProxyType(dict(self.gpus)))

    def gpu(self, gpu_type: str) -> GpuPowerModel:
        try:
            return self.gpus[gpu_type]
        except KeyError:
            raise KeyError(f"no power model for GPU type {gpu_type!r}; have: {', '.join(sorted(self.gpus))}") from None

    def node_power_w(self, gpu_type: str, gpu_utils: Sequence[float], cpu_util: float) -> float:
        """Power (W) of an awake node whose GPUs run at ``gpu_utils`` (one entry per GPU)."""
        gpu = self.gpus.get(gpu_type) or self.gpu(gpu_type)
        total = self.node_baseline_w + self.host.power_w(cpu_util)
        for util in gpu_utils:
            total += gpu.power_w(util)
        return total

    def awake_idle_node_power_w(self, gpu_type: str, num_gpus: int) -> float:
        """Power (W) of an awake node with no work: baseline + idle host + idle GPUs."""
        return self.node_baseline_w + self.host.idle_power_w + num_gpus * self.gpu(gpu_type).idle_power_w

    def empty_node_power_w(self, gpu_type: str, num_gpus: int) -> float:
        """Power (W) of a node with no job: its low-power state, or awake idle if nodes do not sleep."""
        if self.sleep_empty_nodes:
            return self.host.low_power_w
        return self.awake_idle_node_power_w(gpu_type, num_gpus)


# The name used in the design brief.
NodePowerParams = EnergyModel


def default_energy_model(gpu_power_csv: Path | None = None, *, sleep_empty_nodes: bool = True) -> EnergyModel:
    """The calibrated model: packaged GPU table, paper-node host defaults, fitted baseline."""
    return EnergyModel(
        gpus=load_gpu_power_models(gpu_power_csv),
        host=HostPowerModel(),
        node_baseline_w=PAPER_NODE_BASELINE_W,
        sleep_empty_nodes=sleep_empty_nodes,
    )
