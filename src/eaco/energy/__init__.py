"""Energy models: per-GPU power curves, host (CPU) power, whole-node power, and their calibration.

- :class:`GpuPowerModel` (``gpu_power``): P(util) = idle + (max - idle) * util**exponent.
- :class:`HostPowerModel` (``host_power``): Fan-Weber-Barroso server curve and the sleep draw.
- :class:`EnergyModel` (``node_power``): GPUs + host + baseline; :func:`default_energy_model`.
- ``power_table``: the packaged per-GPU table ``eaco/data/gpu_power.csv``.
- ``fit``: regenerates that table from the shared measurements (``python -m eaco.energy.fit``).
- ``calibration``: fits the node model on the paper's exclusive runs, checks the co-located ones.
"""

from eaco.energy.gpu_power import GpuPowerModel
from eaco.energy.host_power import HostPowerModel
from eaco.energy.node_power import EnergyModel, NodePowerParams, default_energy_model
from eaco.energy.power_table import GpuPowerEntry, load_gpu_power_models, read_gpu_power_csv

__all__ = [
    "EnergyModel",
    "GpuPowerEntry",
    "GpuPowerModel",
    "HostPowerModel",
    "NodePowerParams",
    "default_energy_model",
    "load_gpu_power_models",
    "read_gpu_power_csv",
]
