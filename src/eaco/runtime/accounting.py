"""Modelled energy of the runtime's GPUs and host, integrated tick by tick, and split to jobs.

On a machine without NVML nothing about GPU power can be measured: GPU power is the calibrated
model (:mod:`eaco.energy`) at each GPU's predicted utilisation (sum of its jobs' exclusive
utilisation, capped at 1). Host power is the host model at the CPU utilisation measured with
psutil when available (else modelled from the catalogue's CPU share per GPU). Attribution follows
the simulator: a GPU's power split equally among its jobs, host power among (job, GPU) slots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from eaco.colocation.catalog import JobCatalog
from eaco.energy.node_power import EnergyModel
from eaco.model.job import Job
from eaco.state.cluster_state import ClusterState


@dataclass(slots=True)
class EnergyTotals:
    gpu_busy_j: float = 0.0
    gpu_idle_j: float = 0.0
    host_j: float = 0.0
    duration_s: float = 0.0
    cpu_util_source: str = "modelled"
    per_job: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # last increments
    # modelled power (W) over the last step, per part
    gpu_busy_w: float = 0.0
    gpu_idle_w: float = 0.0
    host_w: float = 0.0

    @property
    def total_j(self) -> float:
        return self.gpu_busy_j + self.gpu_idle_j + self.host_j


def measured_cpu_util() -> Callable[[], float] | None:
    try:
        import psutil
    except ImportError:
        return None
    psutil.cpu_percent(None)
    return lambda: psutil.cpu_percent(None) / 100.0


class EnergyAccountant:
    def __init__(self, energy: EnergyModel, catalog: JobCatalog, cpu_util: Callable[[], float] | None) -> None:
        self.energy = energy
        self.catalog = catalog
        self.cpu_util = cpu_util
        self.totals = EnergyTotals(cpu_util_source="measured (psutil)" if cpu_util else "modelled (catalogue)")

    def step(self, state: ClusterState, jobs: dict[int, Job], dt_s: float) -> dict[int, tuple[float, float, float]]:
        """Advance by ``dt_s`` at the current placement; return per job (+run s, +co-located s, +J)."""
        out: dict[int, tuple[float, float, float]] = {}
        if dt_s <= 0:
            return out
        t = self.totals
        t.duration_s += dt_s
        busy_before, idle_before = t.gpu_busy_j, t.gpu_idle_j
        slots: list[int] = []
        modelled_cpu = 0.0
        for g, on_gpu in enumerate(state.gpu_jobs):
            model = self.energy.gpu(state.gpu_type[g])
            if not on_gpu:
                t.gpu_idle_j += model.power_w(0.0) * dt_s
                continue
            util = min(1.0, sum(jobs[j].gpu_util for j in on_gpu))
            energy_j = model.power_w(util) * dt_s
            t.gpu_busy_j += energy_j
            share = energy_j / len(on_gpu)
            for j in on_gpu:
                run_s, coloc_s, e = out.get(j, (0.0, 0.0, 0.0))
                out[j] = (run_s, coloc_s, e + share)
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
        return out
