"""Speed and utilisation on GPU types without co-location measurements (t4, a10, a100, h100).

ASSUMPTION (documented in docs/colocation.md): a GPU generation's *compute* speed relative to the
V100 is the geometric mean of two datasheet ratios, FP32 throughput and memory bandwidth::

    f_gpu = sqrt((tflops_fp32 / 15.7) * (mem_bw_gbs / 900))

(V100 SXM2: 15.7 TFLOPS FP32, 900 GB/s). Training kernels are a mix of compute-bound
(convolutions, GEMMs) and bandwidth-bound (normalisation, element-wise) work, hence the mean.
The jobs in the catalogue train in FP32 (Gavel's workloads and PyTorch's ``examples/imagenet``
defaults), so FP32 rather than tensor-core peaks. Checked against Gavel's measurements: the rule
gives 0.27 for one K80 die and 0.69 for the P100 PCIe, where the median measured exclusive
speed over Gavel's 26 job types is 0.25 and 0.81 (see ``measured_generation_factor``).

Only the GPU-busy part of an iteration speeds up (Amdahl). With exclusive V100 utilisation u::

    relative_speed = 1 / (u / f + (1 - u))          # iteration time: GPU part / f + host part
    util_on_gpu    = (u / f) / (u / f + (1 - u))    # busy fraction of the new iteration
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from eaco.colocation.gavel import GavelThroughputs

V100_TFLOPS_FP32 = 15.7
V100_MEM_BW_GBS = 900.0


@dataclass(frozen=True, slots=True)
class GpuGeneration:
    gpu_type: str
    tflops_fp32: float  # datasheet peak FP32 (non-tensor) TFLOPS, boost clock
    mem_bw_gbs: float  # datasheet memory bandwidth, GB/s
    datasheet: str

    @property
    def factor(self) -> float:
        """Compute speed relative to V100 (the assumption stated in the module docstring)."""
        return math.sqrt((self.tflops_fp32 / V100_TFLOPS_FP32) * (self.mem_bw_gbs / V100_MEM_BW_GBS))


GENERATIONS: dict[str, GpuGeneration] = {
    g.gpu_type: g
    for g in (
        GpuGeneration("k80", 4.37, 240.0, "Tesla K80 datasheet: 8.73 TFLOPS, 480 GB/s per board of two GK210 dies"),
        GpuGeneration("p100", 9.3, 732.0, "Tesla P100 PCIe 16 GB datasheet"),
        GpuGeneration("t4", 8.1, 320.0, "Tesla T4 datasheet"),
        GpuGeneration("v100", 15.7, 900.0, "Tesla V100 SXM2 datasheet"),
        GpuGeneration("a10", 31.2, 600.0, "NVIDIA A10 datasheet"),
        GpuGeneration("a100", 19.5, 2039.0, "A100 SXM4 80 GB datasheet"),
        GpuGeneration("h100", 67.0, 3350.0, "H100 SXM5 datasheet"),
    )
}


def generation_factor(gpu_type: str) -> float:
    try:
        return GENERATIONS[gpu_type].factor
    except KeyError:
        raise KeyError(f"no generation data for GPU type {gpu_type!r}; known: {', '.join(GENERATIONS)}") from None


def amdahl_speed(util_v100: float, factor: float) -> float:
    """Exclusive speed relative to V100 when only the GPU-busy share ``util_v100`` scales by ``factor``."""
    return 1.0 / (util_v100 / factor + (1.0 - util_v100))


def amdahl_util(util_v100: float, factor: float) -> float:
    """Exclusive GPU utilisation on a GPU ``factor`` times as fast as the V100."""
    busy = util_v100 / factor
    return min(1.0, busy / (busy + (1.0 - util_v100)))


def measured_generation_factor(gavel: GavelThroughputs, gpu_type: str) -> float:
    """Median over Gavel's job types of exclusive steps/s on ``gpu_type`` / on V100 (scale factor 1)."""
    ratios = []
    for name in gavel.job_types("v100"):
        ref = gavel.exclusive_steps_per_s("v100", name)
        got = gavel.exclusive_steps_per_s(gpu_type, name)
        if ref and got:
            ratios.append(got / ref)
    if not ratios:
        raise ValueError(f"Gavel has no exclusive throughputs on {gpu_type!r}")
    return statistics.median(ratios)
