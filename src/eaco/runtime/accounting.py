"""Energy of the runtime's GPUs and host, integrated tick by tick, and split to jobs.

GPU energy is **measured** when the runtime has a :class:`~eaco.runtime.gpu_meter.GpuMeter` (NVML
on real GPUs): each GPU's energy counter difference over the tick (or its power readings
integrated; see :mod:`eaco.runtime.gpu_meter`). On a machine without NVML (declared GPUs), or for
an interval a GPU could not be read, GPU energy is **modelled**: the calibrated model
(:mod:`eaco.energy`) at the GPU's predicted utilisation (sum of its jobs' exclusive utilisation,
capped at 1). The modelled figure is always kept beside the measured one, so a run on real GPUs
also reports how far the energy model is from the meter. Host power is the host model at the CPU
utilisation measured with psutil when available (else modelled from the catalogue's CPU share per
GPU); nothing here measures wall power. Attribution follows the simulator: a shared GPU's idle
energy (the model at utilisation 0, at most what the GPU used) is split equally among its jobs
and the rest in proportion to each job's share of the GPU's kernel time, **measured** through
NVML's per-process utilisation where the meter reads it and the backend can tell which job a
process belongs to (real GPUs, local or on Ray nodes), else their declared (or catalogue) exclusive utilisation
(the simulator weighs each job's exclusive utilisation times its speed); a job alone gets its GPU's
whole energy. Host energy is
split among (job, GPU) slots.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from eaco.colocation.catalog import JobCatalog
from eaco.energy.attribution import split_gpu_energy
from eaco.energy.node_power import EnergyModel
from eaco.model.job import Job
from eaco.runtime.gpu_meter import GpuInterval, GpuMeter
from eaco.runtime.store import ENERGY_COLUMNS as ENERGY_PARTS
from eaco.state.cluster_state import ClusterState

log = logging.getLogger("eaco.runtime")


# the per-part figures the store keeps per hour (table energy_hours): ENERGY_PARTS
_METHOD_OF_PART = {"counter_gpu_s": "counter", "power_gpu_s": "power", "model_gpu_s": "model"}
# how a shared GPU's energy was split among its jobs, in GPU-seconds
_SPLIT_OF_PART = {"split_measured_gpu_s": "measured", "split_declared_gpu_s": "declared"}


@dataclass(slots=True)
class EnergyTotals:
    gpu_busy_j: float = 0.0
    gpu_idle_j: float = 0.0
    host_j: float = 0.0
    duration_s: float = 0.0
    cpu_util_source: str = "modelled"
    gpu_source: str = "modelled"  # "measured (NVML)" when a meter reads the GPUs
    per_job: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # last increments
    # power (W) over the last step, per part (GPU parts measured where measured)
    gpu_busy_w: float = 0.0
    gpu_idle_w: float = 0.0
    host_w: float = 0.0
    # the energy model's GPU figures over the same intervals (equal to the above without a meter)
    model_gpu_busy_j: float = 0.0
    model_gpu_idle_j: float = 0.0
    # GPU-seconds whose energy was measured by the counter / by power readings / only modelled
    gpu_s_by_method: dict[str, float] = field(default_factory=lambda: {"counter": 0.0, "power": 0.0, "model": 0.0})
    gpu_measured: tuple[GpuInterval | None, ...] = ()  # per GPU, the latest measured interval
    # shared GPU-seconds whose energy was split by the jobs' measured share of the kernel time /
    # by their declared utilisation
    split_s: dict[str, float] = field(default_factory=lambda: {"measured": 0.0, "declared": 0.0})

    @property
    def total_j(self) -> float:
        return self.gpu_busy_j + self.gpu_idle_j + self.host_j

    def parts(self) -> dict[str, float]:
        """The figures the store keeps (:data:`ENERGY_PARTS`)."""
        out = {k: float(getattr(self, k)) for k in ENERGY_PARTS if k not in _METHOD_OF_PART and k not in _SPLIT_OF_PART}
        out.update({k: self.gpu_s_by_method[m] for k, m in _METHOD_OF_PART.items()})
        out.update({k: self.split_s[m] for k, m in _SPLIT_OF_PART.items()})
        return out

    def add_parts(self, parts: dict[str, float]) -> None:
        """Add figures of :data:`ENERGY_PARTS` (a restart adds what the store kept before it)."""
        for k, v in parts.items():
            if k in _METHOD_OF_PART:
                self.gpu_s_by_method[_METHOD_OF_PART[k]] += v
            elif k in _SPLIT_OF_PART:
                self.split_s[_SPLIT_OF_PART[k]] += v
            elif k in ENERGY_PARTS:
                setattr(self, k, getattr(self, k) + v)

    @property
    def measured_share(self) -> float:
        """Share of GPU-seconds whose energy was measured (0 without a meter)."""
        total = sum(self.gpu_s_by_method.values())
        return (total - self.gpu_s_by_method["model"]) / total if total > 0 else 0.0

    @property
    def split_measured_share(self) -> float | None:
        """Share of shared GPU-seconds split by measured kernel time (None: no GPU was shared)."""
        total = sum(self.split_s.values())
        return self.split_s["measured"] / total if total > 0 else None


def measured_cpu_util() -> Callable[[], float] | None:
    try:
        import psutil
    except ImportError:
        return None
    psutil.cpu_percent(None)
    return lambda: psutil.cpu_percent(None) / 100.0


MEASURED = "measured (NVML)"


class EnergyAccountant:
    def __init__(self, energy: EnergyModel, catalog: JobCatalog, cpu_util: Callable[[], float] | None,
                 gpu_meter: GpuMeter | None = None) -> None:
        self.energy = energy
        self.catalog = catalog
        self.cpu_util = cpu_util
        self.gpu_meter = gpu_meter
        # NVML's per-process figures (per GPU, pid -> value) summed per job (per GPU, job -> value),
        # where the backend can tell which job a process belongs to; set by the runtime
        self.per_job: Callable[[dict[int, dict[int, float]]], dict[int, dict[int, float]]] | None = None
        self.totals = EnergyTotals(cpu_util_source="measured (psutil)" if cpu_util else "modelled (catalogue)",
                                   gpu_source=MEASURED if gpu_meter is not None and gpu_meter.measures_any else "modelled")
        self.last_step: dict[str, float] = {}  # the last step's figures (ENERGY_PARTS)

    def start(self) -> None:
        """Take the meter's first reading (the start of the first interval)."""
        self._measure(0, 0.0)

    def _measure(self, n_gpus: int, dt_s: float) -> tuple[GpuInterval | None, ...]:
        if self.gpu_meter is None:
            return (None,) * n_gpus
        try:
            return self.gpu_meter.read(dt_s)
        except Exception as exc:  # a driver error must not stop the scheduler: model this interval
            log.warning("GPU energy read failed (%s); modelling this interval", exc)
            return (None,) * n_gpus

    def _measured_busy_shares(self) -> dict[int, dict[int, float]]:
        """Per GPU, per job found among its processes, the job's share of the kernel time NVML
        sampled there over this interval (the meter's latest read)."""
        per_gpu = getattr(self.gpu_meter, "process_busy_share", None)
        if not per_gpu or self.per_job is None:
            return {}
        return self.per_job(per_gpu)

    def _split_weights(self, g: int, on_gpu: list[int], jobs: dict[int, Job], busy: dict[int, dict[int, float]], dt_s: float) -> list[float]:
        """The weights that split shared GPU ``g``'s energy beyond idle among ``on_gpu``: their
        measured shares of its kernel time when any of them has one (a job with none ran no
        kernel there), else their declared exclusive utilisation."""
        measured = busy.get(g, {})
        if any(j in measured for j in on_gpu):
            self.totals.split_s["measured"] += dt_s
            return [measured.get(j, 0.0) for j in on_gpu]
        self.totals.split_s["declared"] += dt_s
        return [jobs[j].gpu_util for j in on_gpu]

    def step(self, state: ClusterState, jobs: dict[int, Job], dt_s: float) -> dict[int, tuple[float, float, float]]:
        """Advance by ``dt_s`` at the current placement; return per job (+run s, +co-located s, +J)."""
        out: dict[int, tuple[float, float, float]] = {}
        self.last_step = {}
        if dt_s <= 0:
            return out
        t = self.totals
        before = t.parts()
        t.duration_s += dt_s
        busy_before, idle_before = t.gpu_busy_j, t.gpu_idle_j
        slots: list[int] = []
        modelled_cpu = 0.0
        measured = self._measure(len(state.gpu_jobs), dt_s)
        busy = self._measured_busy_shares() if self.gpu_meter is not None else {}
        if self.gpu_meter is not None:
            t.gpu_measured = measured
            if t.gpu_source != MEASURED and any(r is not None for r in measured):
                t.gpu_source = MEASURED  # a meter that read nothing at first (Ray: a node joined)
        for g, on_gpu in enumerate(state.gpu_jobs):
            model = self.energy.gpu(state.gpu_type[g])
            util = min(1.0, sum(jobs[j].gpu_util for j in on_gpu)) if on_gpu else 0.0
            model_j = model.power_w(util) * dt_s
            reading = measured[g] if g < len(measured) else None
            energy_j = model_j if reading is None else reading.energy_j
            t.gpu_s_by_method["model" if reading is None else reading.method] += dt_s
            if not on_gpu:
                t.gpu_idle_j += energy_j
                t.model_gpu_idle_j += model_j
                continue
            t.gpu_busy_j += energy_j
            t.model_gpu_busy_j += model_j
            weights = [1.0] if len(on_gpu) == 1 else self._split_weights(g, on_gpu, jobs, busy, dt_s)
            for j, part_j in zip(on_gpu, split_gpu_energy(energy_j, model.power_w(0.0) * dt_s, weights)):
                run_s, coloc_s, e = out.get(j, (0.0, 0.0, 0.0))
                out[j] = (run_s, coloc_s, e + part_j)
                slots.append(j)
                modelled_cpu += self.catalog.get(jobs[j].job_type).cpu_util_per_gpu
        cpu = self.cpu_util() if self.cpu_util is not None else min(1.0, modelled_cpu)
        host_j = (self.energy.host.power_w(cpu) + self.energy.node_baseline_w) * dt_s
        t.host_j += host_j
        t.gpu_busy_w = (t.gpu_busy_j - busy_before) / dt_s
        t.gpu_idle_w = (t.gpu_idle_j - idle_before) / dt_s
        t.host_w = host_j / dt_s
        for j in slots:
            run_s, coloc_s, e = out[j]
            out[j] = (run_s, coloc_s, e + host_j / len(slots))
        for j, gpus in state.job_gpus.items():
            run_s, coloc_s, e = out.get(j, (0.0, 0.0, 0.0))
            shared = any(len(state.gpu_jobs[g]) > 1 for g in gpus)
            out[j] = (run_s + dt_s, coloc_s + (dt_s if shared else 0.0), e)
        self.last_step = {k: v - before[k] for k, v in t.parts().items()}
        return out
