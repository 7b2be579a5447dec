"""Turn telemetry samples of one run into the numbers a profile row needs.

Definitions (every one traceable to the samples):

- GPU energy (J): the sum over the run's GPUs of (last - first) total-energy counter when every GPU
  has a counter in the first and last sample (``gpu_energy_source = "counter"``); otherwise the
  trapezoidal integral of the summed board power over time (``"power_integral"``); ``None`` without
  GPU readings.
- Host energy (J): trapezoidal integral of the Fan-Weber-Barroso host power at the sampled CPU
  utilisation over the window; host power before the first / after the last sample is held.
- Energy (J) = GPU energy + host energy (host only where no GPU was read); average power (W) =
  energy / window duration.
- GPU utilisation: per sample, the mean over the run's GPUs (0..1); ``mean`` and ``max`` over samples.
- GPU memory: per sample, used memory summed over the run's GPUs (MiB); peak over samples;
  ``memory_util`` = used / total.
- Per-process GPU utilisation (0..1): on each GPU, over the readings that carry NVML's
  per-process shares of the kernel time, the mean of the process's share times the GPU's
  utilisation; then the mean over the run's GPUs. A set's members' figures add up to the GPU
  utilisation over those readings: how the set's utilisation divides among its members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from eaco.profiler.telemetry import GpuDevice, GpuSample, HostSample


@dataclass(frozen=True, slots=True)
class TelemetrySummary:
    duration_s: float
    gpu_energy_j: float | None
    gpu_energy_source: str | None  # "counter" | "power_integral" | None
    gpu_power_w_mean: float | None
    host_energy_j: float
    host_power_w_mean: float
    host_cpu_util_mean: float
    host_cpu_util_max: float
    energy_j: float
    avg_power_w: float
    gpu_util_mean: float | None  # 0..1
    gpu_util_max: float | None
    gpu_memory_mib_peak: float | None
    memory_util_mean: float | None  # used / total, 0..1
    memory_util_max: float | None
    process_memory_mib_peak: dict[int, float]  # pid -> peak MiB summed over the GPUs
    gpu_samples: int
    host_samples: int
    # pid -> its mean GPU utilisation (0..1, see above); empty without per-process shares
    process_util_mean: dict[int, float] = field(default_factory=dict)


def _trapezoid(t: Sequence[float], y: Sequence[float], duration_s: float) -> float:
    """Integral of y over [0, duration_s]; values held constant outside the sampled span."""
    if not t:
        return 0.0
    total = y[0] * max(0.0, t[0]) + y[-1] * max(0.0, duration_s - t[-1])
    for i in range(1, len(t)):
        total += 0.5 * (y[i] + y[i - 1]) * (t[i] - t[i - 1])
    return total


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def summarize(
    gpu: Sequence[GpuSample],
    host: Sequence[HostSample],
    duration_s: float,
    devices: Sequence[GpuDevice] = (),
) -> TelemetrySummary:
    if not duration_s > 0:
        raise ValueError(f"duration_s: expected > 0, got {duration_s}")
    ht = [s.time_s for s in host]
    host_energy_j = _trapezoid(ht, [s.host_power_w for s in host], duration_s)
    cpu = [s.cpu_util for s in host]

    gpu_energy_j: float | None = None
    energy_source: str | None = None
    power_mean: float | None = None
    util_mean = util_max = mem_peak = mu_mean = mu_max = None
    proc_peak: dict[int, float] = {}
    proc_util: dict[int, float] = {}
    if gpu:
        first, last = gpu[0].readings, gpu[-1].readings
        if first and all(r.energy_counter_j is not None for r in (*first, *last)) and len(first) == len(last):
            gpu_energy_j = sum(b.energy_counter_j - a.energy_counter_j for a, b in zip(first, last))  # type: ignore[operator]
            energy_source = "counter"
        pt = [s.time_s for s in gpu if s.readings and all(r.power_w is not None for r in s.readings)]
        pw = [sum(r.power_w for r in s.readings) for s in gpu if s.readings and all(r.power_w is not None for r in s.readings)]  # type: ignore[misc]
        if pw:
            integral = _trapezoid(pt, pw, duration_s)
            power_mean = integral / duration_s
            if gpu_energy_j is None:
                gpu_energy_j, energy_source = integral, "power_integral"
        utils = [
            sum(r.util_pct for r in s.readings) / len(s.readings) / 100.0  # type: ignore[misc]
            for s in gpu
            if s.readings and all(r.util_pct is not None for r in s.readings)
        ]
        util_mean, util_max = _mean(utils), (max(utils) if utils else None)
        mems = [sum(r.memory_used_mib for r in s.readings) for s in gpu
                if s.readings and all(r.memory_used_mib is not None for r in s.readings)]  # type: ignore[misc]
        if mems:
            mem_peak = max(mems)
            total = sum(d.memory_total_mib for d in devices)
            if total > 0:
                mu = [m / total for m in mems]
                mu_mean, mu_max = _mean(mu), max(mu)
        for s in gpu:
            per_pid: dict[int, float] = {}
            for r in s.readings:
                for pid, mib in r.process_memory_mib.items():
                    per_pid[pid] = per_pid.get(pid, 0.0) + mib
            for pid, mib in per_pid.items():
                proc_peak[pid] = max(proc_peak.get(pid, 0.0), mib)
        proc_util = _process_util_mean(gpu)
        if gpu_energy_j is not None and power_mean is None:
            power_mean = gpu_energy_j / duration_s
    energy_j = host_energy_j + (gpu_energy_j or 0.0)
    return TelemetrySummary(
        duration_s=duration_s,
        gpu_energy_j=gpu_energy_j,
        gpu_energy_source=energy_source,
        gpu_power_w_mean=power_mean,
        host_energy_j=host_energy_j,
        host_power_w_mean=host_energy_j / duration_s,
        host_cpu_util_mean=_mean(cpu) or 0.0,
        host_cpu_util_max=max(cpu) if cpu else 0.0,
        energy_j=energy_j,
        avg_power_w=energy_j / duration_s,
        gpu_util_mean=util_mean,
        gpu_util_max=util_max,
        gpu_memory_mib_peak=mem_peak,
        memory_util_mean=mu_mean,
        memory_util_max=mu_max,
        process_memory_mib_peak=proc_peak,
        gpu_samples=len(gpu),
        host_samples=len(host),
        process_util_mean=proc_util,
    )


def _process_util_mean(gpu: Sequence[GpuSample]) -> dict[int, float]:
    """Per pid, its mean GPU utilisation over the run's GPUs (module docstring)."""
    sums: dict[int, dict[int, float]] = {}  # GPU index -> pid -> sum of share x utilisation
    counts: dict[int, int] = {}  # GPU index -> readings with shares and a utilisation
    indices: set[int] = set()
    for s in gpu:
        for r in s.readings:
            indices.add(r.index)
            if not r.process_busy_share or r.util_pct is None:
                continue
            counts[r.index] = counts.get(r.index, 0) + 1
            on_gpu = sums.setdefault(r.index, {})
            for pid, share in r.process_busy_share.items():
                on_gpu[pid] = on_gpu.get(pid, 0.0) + share * r.util_pct / 100.0
    out: dict[int, float] = {}
    for index, per_pid in sums.items():
        for pid, total in per_pid.items():
            out[pid] = out.get(pid, 0.0) + total / counts[index] / len(indices)
    return out
