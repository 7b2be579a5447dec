"""Fit the node power model to measured whole-node power.

Node power while awake, for ``n_gpus`` GPUs of one type at average utilisation ``u_gpu`` and host
CPU utilisation ``u_cpu``:

    P_node = node_baseline_w + host.power_w(u_cpu) + n_gpus * gpu.power_w(u_gpu)

Given the GPU's idle and max power and the host curve, the two unknowns ``node_baseline_w`` and the
GPU curve's ``exponent`` are fitted by bounded least squares on *relative* residuals
(``(modelled - measured) / measured``), so each row counts by its percentage error, which is what
the calibration report shows. GPU idle power is not fitted: with every row at a similar CPU load it
is collinear with the baseline (both are constants).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.optimize import least_squares

from eaco.energy.gpu_power import GpuPowerModel
from eaco.energy.host_power import HostPowerModel

EXPONENT_BOUNDS = (0.05, 5.0)
EXPONENT_STARTS = (0.3, 0.6, 1.0, 1.6, 2.5)  # several starts: the problem is small but not convex


@dataclass(frozen=True, slots=True)
class NodeObservation:
    """One measured run: average per-GPU utilisation, assumed CPU utilisation, measured node power."""

    label: str
    gpu_util: float
    cpu_util: float
    measured_power_w: float


@dataclass(frozen=True, slots=True)
class NodeFit:
    node_baseline_w: float
    gpu_exponent: float
    rms_rel_error: float  # root mean square of relative residuals at the optimum
    baseline_at_bound: bool  # True when the fit wanted a negative baseline and was held at 0


def predict_node_power_w(
    gpu: GpuPowerModel, host: HostPowerModel, node_baseline_w: float, n_gpus: int, gpu_util: float, cpu_util: float
) -> float:
    """Awake node power (W) with every GPU at ``gpu_util``."""
    return node_baseline_w + host.power_w(cpu_util) + n_gpus * gpu.power_w(gpu_util)


def fit_node_power(
    observations: list[NodeObservation],
    *,
    gpu_type: str,
    gpu_idle_power_w: float,
    gpu_max_power_w: float,
    host: HostPowerModel,
    n_gpus: int,
) -> NodeFit:
    """Fit ``node_baseline_w`` (>= 0) and the GPU exponent to ``observations``."""
    if len(observations) < 2:
        raise ValueError(f"fit_node_power: need at least 2 observations for 2 parameters, got {len(observations)}")
    if n_gpus <= 0:
        raise ValueError(f"fit_node_power: n_gpus must be positive, got {n_gpus}")

    def residuals(params: "list[float]") -> list[float]:
        baseline, exponent = float(params[0]), float(params[1])
        gpu = GpuPowerModel(gpu_type, gpu_idle_power_w, gpu_max_power_w, exponent)
        return [
            (predict_node_power_w(gpu, host, baseline, n_gpus, o.gpu_util, o.cpu_util) - o.measured_power_w)
            / o.measured_power_w
            for o in observations
        ]

    best = None
    for start in EXPONENT_STARTS:
        result = least_squares(
            residuals,
            x0=[100.0, start],
            bounds=([0.0, EXPONENT_BOUNDS[0]], [math.inf, EXPONENT_BOUNDS[1]]),
            method="trf",
        )
        if best is None or result.cost < best.cost:
            best = result
    assert best is not None
    baseline, exponent = float(best.x[0]), float(best.x[1])
    rms = math.sqrt(2.0 * best.cost / len(observations))
    return NodeFit(baseline, exponent, rms, baseline_at_bound=baseline <= 1e-6)
