"""GPU and host telemetry sampled in the background.

GPU readings come from NVML (``nvidia-ml-py``): board power (W), the GPU's total-energy counter
(``nvmlDeviceGetTotalEnergyConsumption``, mJ since the driver loaded; Volta and newer), utilisation
(% of time a kernel ran in the last sample period), memory used, and per process the memory it holds
and its share of the GPU's kernel time (from ``nvmlDeviceGetProcessUtilization``: how time-sliced
jobs share a GPU; boards without it leave it empty). Host CPU utilisation comes from ``psutil``;
host power from the Fan-Weber-Barroso model (:class:`eaco.energy.host_power.HostPowerModel`), as
in the paper.

Without NVML (no GPU, no driver) :func:`open_nvml` returns ``None`` with the reason; the sampler then
records host readings only. Any object with ``read() -> tuple[GpuReading, ...]`` can stand in for
NVML (:class:`GpuSource`), which is how the tests inject readings.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

from eaco.energy.host_power import HostPowerModel

MIB = 2**20


@dataclass(frozen=True, slots=True)
class GpuDevice:
    index: int  # NVML index
    name: str  # as NVML reports it
    memory_total_mib: float
    uuid: str = ""


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU at one instant. ``None``: the driver does not report that quantity."""

    index: int
    power_w: float | None
    energy_counter_j: float | None  # total energy since driver load
    util_pct: float | None
    memory_used_mib: float | None
    process_memory_mib: Mapping[int, float] = field(default_factory=dict)  # pid -> MiB on this GPU
    # pid -> its share (0..1, summing to 1) of the kernel time NVML sampled on this GPU since the
    # previous read, from each process's SM utilisation; empty: no sample (or not on this board)
    process_busy_share: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GpuSample:
    time_s: float  # seconds since the sampler started
    readings: tuple[GpuReading, ...]


@dataclass(frozen=True, slots=True)
class HostSample:
    time_s: float
    cpu_util: float  # 0..1, whole host, since the previous sample
    host_power_w: float  # HostPowerModel at cpu_util


class GpuSource(Protocol):
    devices: tuple[GpuDevice, ...]

    def read(self) -> tuple[GpuReading, ...]: ...

    def close(self) -> None: ...


class NvmlSource:
    """Reads the chosen GPUs through NVML. Construct with :func:`open_nvml`."""

    def __init__(self, nvml: object, indices: Sequence[int]) -> None:
        self._nvml = nvml
        n = nvml.nvmlDeviceGetCount()
        chosen = list(indices) if indices else list(range(n))
        bad = [i for i in chosen if not 0 <= i < n]
        if bad:
            raise ValueError(f"gpus: NVML sees {n} GPU(s); no index {bad}")
        self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in chosen]
        devices = []
        for i, h in zip(chosen, self._handles):
            name = nvml.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else str(name)
            uuid = nvml.nvmlDeviceGetUUID(h)
            uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
            devices.append(GpuDevice(i, name, nvml.nvmlDeviceGetMemoryInfo(h).total / MIB, uuid))
        self.devices = tuple(devices)
        drv = nvml.nvmlSystemGetDriverVersion()
        self.driver_version = drv.decode() if isinstance(drv, bytes) else str(drv)
        self._energy_ok = [True] * len(self._handles)
        self._process_util_ok = [True] * len(self._handles)
        # NVML's per-process samples carry CPU timestamps (µs): start after now, then after the last seen
        self._util_seen_us = [int(time.time() * 1e6)] * len(self._handles)

    def _try(self, fn: Callable[[], float]) -> float | None:
        try:
            return fn()
        except self._nvml.NVMLError:  # NotSupported on this board, or a transient error
            return None

    def read(self) -> tuple[GpuReading, ...]:
        nv = self._nvml
        out = []
        for k, (dev, h) in enumerate(zip(self.devices, self._handles)):
            energy = None
            if self._energy_ok[k]:
                energy = self._try(lambda: nv.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0)
                self._energy_ok[k] = energy is not None  # older boards: stop asking
            procs: dict[int, float] = {}
            try:
                for p in nv.nvmlDeviceGetComputeRunningProcesses(h):
                    used = getattr(p, "usedGpuMemory", None)
                    if used is not None:
                        procs[int(p.pid)] = procs.get(int(p.pid), 0.0) + used / MIB
            except nv.NVMLError:
                pass
            out.append(
                GpuReading(
                    index=dev.index,
                    power_w=self._try(lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0),
                    energy_counter_j=energy,
                    util_pct=self._try(lambda: float(nv.nvmlDeviceGetUtilizationRates(h).gpu)),
                    memory_used_mib=self._try(lambda: nv.nvmlDeviceGetMemoryInfo(h).used / MIB),
                    process_memory_mib=procs,
                    process_busy_share=self._process_shares(k, h),
                )
            )
        return tuple(out)

    def _process_shares(self, k: int, handle: object) -> dict[int, float]:
        """Per process on GPU ``k``, its share of the kernel time since the last read
        (:func:`process_busy_shares`)."""
        if not self._process_util_ok[k]:
            return {}
        nv = self._nvml
        try:
            samples = nv.nvmlDeviceGetProcessUtilization(handle, self._util_seen_us[k])
        except nv.NVMLError as exc:  # no sample since then (NOT_FOUND), or not on this board
            if getattr(exc, "value", None) == getattr(nv, "NVML_ERROR_NOT_SUPPORTED", object()):
                self._process_util_ok[k] = False  # stop asking
            return {}
        return process_busy_shares(samples, self._util_seen_us, k)

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass


def process_busy_shares(samples: Sequence[object], seen_us: list[int], k: int) -> dict[int, float]:
    """NVML process-utilisation samples (``pid``, ``timeStamp`` µs, ``smUtil`` %) newer than
    ``seen_us[k]``, as pid -> its share of the SM utilisation they add up to (the shares sum to
    1; nothing when no sample is newer or all are 0); ``seen_us[k]`` moves to the newest
    timestamp. Shares need no assumption on how the periods of different processes line up."""
    since = seen_us[k]
    sums: dict[int, float] = {}
    newest = since
    for s in samples:
        ts = int(getattr(s, "timeStamp"))
        if ts <= since:
            continue
        newest = max(newest, ts)
        pid = int(getattr(s, "pid"))
        sums[pid] = sums.get(pid, 0.0) + max(0.0, min(100.0, float(getattr(s, "smUtil"))))
    seen_us[k] = newest
    total = sum(sums.values())
    return {pid: v / total for pid, v in sums.items() if v > 0} if total > 0 else {}


def open_nvml(indices: Sequence[int] = ()) -> tuple[NvmlSource | None, str]:
    """``(source, "")`` when NVML works, else ``(None, reason)``."""
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py is not installed (pip install 'eaco[profiler]')"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return None, f"NVML unavailable ({exc}); no GPU or no NVIDIA driver"
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            pynvml.nvmlShutdown()
            return None, "NVML found no GPU"
        return NvmlSource(pynvml, indices), ""
    except pynvml.NVMLError as exc:
        pynvml.nvmlShutdown()
        return None, f"NVML error while opening the GPUs: {exc}"


def psutil_cpu_util() -> Callable[[], float]:
    """A reader of whole-host CPU utilisation (0..1) since its previous call."""
    import psutil

    psutil.cpu_percent(interval=None)  # the first call only sets the reference point
    return lambda: psutil.cpu_percent(interval=None) / 100.0


class TelemetrySampler:
    """Samples GPUs (if a source is given) and the host CPU at ``sample_hz`` in a background thread.

    Use as a context manager; :meth:`gpu_samples` / :meth:`host_samples` return what was recorded.
    """

    def __init__(self, gpu_source: GpuSource | None, sample_hz: float = 10.0,
                 cpu_util: Callable[[], float] | None = None, host_model: HostPowerModel | None = None) -> None:
        if not sample_hz > 0:
            raise ValueError(f"sample_hz: expected > 0, got {sample_hz}")
        self.gpu_source = gpu_source
        self.period_s = 1.0 / sample_hz
        self.host_model = host_model or HostPowerModel()
        self._cpu_util = cpu_util
        self._gpu: list[GpuSample] = []
        self._host: list[HostSample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self.errors: list[str] = []

    def start(self) -> "TelemetrySampler":
        if self._cpu_util is None:
            self._cpu_util = psutil_cpu_util()
        self._t0 = time.monotonic()
        self._sample(host=False)  # GPU reading at t = 0 (the energy counter's start); CPU needs an interval
        self._thread = threading.Thread(target=self._loop, name="eaco-telemetry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._sample()  # a final reading at the end of the window

    def __enter__(self) -> "TelemetrySampler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def elapsed_s(self) -> float:
        return time.monotonic() - self._t0

    def _sample(self, host: bool = True) -> None:
        t = time.monotonic() - self._t0
        if self.gpu_source is not None:
            try:
                self._gpu.append(GpuSample(t, self.gpu_source.read()))
            except Exception as exc:  # keep sampling the host; report the first few errors
                if len(self.errors) < 5:
                    self.errors.append(f"GPU read failed at t={t:.2f}s: {exc}")
        if not host:
            return
        assert self._cpu_util is not None
        u = min(1.0, max(0.0, self._cpu_util()))
        self._host.append(HostSample(t, u, self.host_model.power_w(u)))

    def _loop(self) -> None:
        next_t = time.monotonic() + self.period_s
        while not self._stop.wait(max(0.0, next_t - time.monotonic())):
            self._sample()
            next_t += self.period_s
            now = time.monotonic()
            if next_t < now:  # fell behind (slow driver call): skip missed ticks, do not burst
                next_t = now + self.period_s

    def gpu_samples(self) -> tuple[GpuSample, ...]:
        return tuple(self._gpu)

    def host_samples(self) -> tuple[HostSample, ...]:
        return tuple(self._host)
