"""Measured energy of the runtime's GPUs between two accounting steps, from NVML.

The runtime reads every GPU once per tick through a :class:`~eaco.profiler.telemetry.GpuSource`
(NVML on a real machine; an injected source in tests). A GPU's energy over the interval is

1. the difference of its total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, exact,
   Volta and newer), when both readings have one and it did not go backwards;
2. else the trapezoid of the two power readings times the interval (boards without the counter);
3. else nothing is measured for that GPU in that interval (``None``): the accountant falls back to
   the model for it and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from eaco.profiler.telemetry import MIB, GpuReading, GpuSource

if TYPE_CHECKING:
    from eaco.runtime.gpus import GpuInventory


@dataclass(frozen=True, slots=True)
class GpuInterval:
    """One GPU over one accounting interval, as measured."""

    energy_j: float
    method: str  # "counter" or "power"
    power_w: float  # the latest power reading (or the interval's mean when no reading has one)
    util: float | None  # 0..1, the latest utilisation reading
    memory_used_bytes: float | None


class GpuMeter:
    """Maps the policy's GPU ``g`` to the device ``device_indices[g]`` of ``source`` and measures
    each GPU's energy between consecutive :meth:`read` calls."""

    def __init__(self, source: GpuSource, device_indices: Sequence[int], require_all: bool = True) -> None:
        by_index = {d.index: k for k, d in enumerate(source.devices)}
        missing = [i for i in device_indices if i not in by_index]
        if missing and require_all:
            raise ValueError(f"gpus: the GPU source has no device {missing} (it has {sorted(by_index)})")
        self.source = source
        # a device the source lacks (require_all=False: e.g. a Ray node without NVML) is measured
        # only if the source gains it later (a Ray node's meter that answers late), else never
        self.device_indices = tuple(device_indices)
        self._previous: dict[int, GpuReading] = {}
        # per policy GPU read at the latest read(): pid -> MiB it holds there (NVML's compute processes)
        self.process_memory_mib: dict[int, dict[int, float]] = {}
        # per policy GPU read at the latest read(): pid -> its share of the GPU's kernel time since
        # the read before (NVML's per-process utilisation; absent: no sample)
        self.process_busy_share: dict[int, dict[int, float]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """Each policy GPU's device name ("" where the source has no such device)."""
        by_index = {d.index: d.name for d in self.source.devices}
        return tuple(by_index.get(i, "") for i in self.device_indices)

    @property
    def measures_any(self) -> bool:
        """Whether the source has a device for at least one policy GPU now."""
        have = {d.index for d in self.source.devices}
        return any(i in have for i in self.device_indices)

    def add_devices(self, device_indices: Sequence[int]) -> None:
        """Policy GPUs that joined (a Ray node), read from ``source`` from now on, where it has them."""
        self.device_indices += tuple(device_indices)

    def read(self, dt_s: float) -> tuple[GpuInterval | None, ...]:
        """Read every GPU now; per policy GPU, what it used since the previous read (``None`` for
        the first read or when nothing could be measured)."""
        readings = {r.index: r for r in self.source.read()}
        out: list[GpuInterval | None] = []
        self.process_memory_mib = {}
        self.process_busy_share = {}
        for g, index in enumerate(self.device_indices):
            now = readings.get(index)
            before = self._previous.get(index)
            if now is not None:
                self._previous[index] = now
                if now.process_memory_mib:
                    self.process_memory_mib[g] = dict(now.process_memory_mib)
                if now.process_busy_share:
                    self.process_busy_share[g] = dict(now.process_busy_share)
            else:  # not read this time: the next interval starts at the next reading (never spans a gap)
                self._previous.pop(index, None)
            out.append(None if now is None or before is None else _interval(before, now, dt_s))
        return tuple(out)

    def close(self) -> None:
        self.source.close()


def _interval(before: GpuReading, now: GpuReading, dt_s: float) -> GpuInterval | None:
    util = None if now.util_pct is None else min(1.0, max(0.0, now.util_pct / 100.0))
    memory = None if now.memory_used_mib is None else now.memory_used_mib * MIB
    if before.energy_counter_j is not None and now.energy_counter_j is not None and now.energy_counter_j >= before.energy_counter_j:
        energy_j = now.energy_counter_j - before.energy_counter_j
        power_w = now.power_w if now.power_w is not None else (energy_j / dt_s if dt_s > 0 else 0.0)
        return GpuInterval(energy_j, "counter", power_w, util, memory)
    powers = [p for p in (before.power_w, now.power_w) if p is not None]
    if not powers or dt_s <= 0:
        return None
    mean_w = sum(powers) / len(powers)
    return GpuInterval(mean_w * dt_s, "power", now.power_w if now.power_w is not None else mean_w, util, memory)


def open_gpu_meter(inventory: "GpuInventory") -> tuple[GpuMeter | None, str]:
    """A meter over the inventory's GPUs through NVML, or ``(None, why not)``: declared GPUs have
    no device behind them, and without NVML nothing can be read (energy is then modelled)."""
    if inventory.declared:
        return None, "the GPUs are declared, not found"
    from eaco.profiler.telemetry import open_nvml

    source, why = open_nvml(inventory.device_indices)
    if source is None:
        return None, why
    return GpuMeter(source, inventory.device_indices), ""
