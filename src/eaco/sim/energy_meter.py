"""Exact energy integration between events, split by where the power goes and attributed to jobs.

Power is piecewise constant: it changes only when jobs arrive on or leave GPUs. The meter keeps
the current power of every GPU and node and the cluster totals, updated incrementally for the
nodes that changed, and integrates ``power x elapsed time`` at each event.

Split of cluster energy:

- ``gpu_busy``: GPUs with at least one job.
- ``gpu_idle``: idle GPUs on nodes that are awake (some other GPU of the node is busy, or
  empty nodes are not allowed to sleep).
- ``host``: CPUs, memory and the rest of awake nodes (Fan-Weber-Barroso CPU model + baseline).
- ``sleep``: nodes with no job, in the low-power state (whole node, GPUs included).

Attribution to jobs (the paper's "job power = server power + its GPUs' power"): a busy GPU's
idle power (the model at utilisation 0) is split equally among the jobs on it and the rest, the
power their work adds, in proportion to each job's share of that work (its exclusive utilisation
x its speed there, :meth:`GroundTruth.work_weights`; :mod:`eaco.energy.attribution`), so a light
job sharing with a heavy one is not charged half of the heavy one's power; alone, a job gets its
GPU's whole power. Each awake
node's host power is split among its (job, GPU) slots. Idle GPUs and sleeping nodes are attributed
to no job.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from eaco.energy.attribution import split_gpu_energy
from eaco.model.job import Job

from eaco.sim.ground_truth import GroundTruth
from eaco.state.cluster_state import ClusterState
from eaco.units import J_PER_KWH, S_PER_H

if TYPE_CHECKING:
    from eaco.energy.node_power import EnergyModel


def spread_over_hours(hourly_j: "array | list[float]", power_w: float, start_s: float, end_s: float) -> None:
    """Add ``power_w`` from ``start_s`` to ``end_s`` to the hours it spans (``hourly_j[k]``: from
    k h to k + 1 h of simulated time), growing ``hourly_j`` as needed."""
    hour = int(start_s // S_PER_H)
    while True:
        if hour >= len(hourly_j):
            hourly_j.extend([0.0] * (hour + 1 - len(hourly_j)))
        edge = (hour + 1) * S_PER_H
        if end_s <= edge:
            hourly_j[hour] += power_w * (end_s - start_s)
            return
        hourly_j[hour] += power_w * (edge - start_s)
        start_s = edge
        hour += 1


@dataclass(frozen=True, slots=True)
class EnergyTotals:
    total_j: float
    gpu_busy_j: float
    gpu_idle_j: float
    host_j: float
    sleep_j: float
    attributed_to_jobs_j: float
    gpu_util_time_integral: float  # sum over GPUs of utilisation x seconds
    active_node_time_integral: float  # active nodes x seconds
    busy_gpu_time_integral: float
    duration_s: float
    end_power_w: float = 0.0  # the cluster's power when the last job has finished (every node empty)

    @property
    def total_kwh(self) -> float:
        return self.total_j / J_PER_KWH


@dataclass(frozen=True, slots=True)
class TimeSeries:
    """Cluster state at every instant where it changed (step function, value holds until next)."""

    time_s: array
    active_nodes: array
    busy_gpus: array
    power_w: array
    # the cluster's energy in each hour of simulated time, [k] = from k h to k + 1 h (exact: power
    # is constant between events); what hourly prices and carbon intensities apply to
    energy_per_hour_j: array = field(default_factory=lambda: array("d"))


class EnergyMeter:
    def __init__(
        self, state: ClusterState, energy: "EnergyModel", truth: GroundTruth, jobs: Mapping[int, Job]
    ) -> None:
        self.state = state
        self.jobs = jobs
        self.truth = truth
        self.energy = energy
        n_gpus = state.num_gpus
        n_nodes = len(state.node_gpus)
        self._gpu_models = [energy.gpu(t) for t in state.gpu_type]
        self._host = energy.host
        self._baseline_w = energy.node_baseline_w
        self._sleep = energy.sleep_empty_nodes
        self.gpu_util = [0.0] * n_gpus
        self.gpu_power_w = [m.power_w(0.0) for m in self._gpu_models]
        self._gpu_idle_w = list(self.gpu_power_w)
        self.gpu_job_power_w: list[dict[int, float]] = [{} for _ in range(n_gpus)]  # job -> its part of the GPU's power
        self.node_busy_w = [0.0] * n_nodes
        self.node_idle_w = [0.0] * n_nodes
        self.node_host_w = [0.0] * n_nodes
        self.node_sleep_w = [0.0] * n_nodes
        self.node_util = [0.0] * n_nodes
        self.total_busy_w = 0.0
        self.total_idle_w = 0.0
        self.total_host_w = 0.0
        self.total_sleep_w = 0.0
        self.total_util = 0.0
        self.e_busy = 0.0
        self.e_idle = 0.0
        self.e_host = 0.0
        self.e_sleep = 0.0
        self.util_integral = 0.0
        self.active_integral = 0.0
        self.busy_gpu_integral = 0.0
        self.t0 = 0.0
        self.last_t = 0.0
        self.job_power_w: dict[int, float] = {}
        self.job_last_t: dict[int, float] = {}
        self.job_energy: dict[int, float] = {}
        self._ts_t = array("d")
        self._ts_nodes = array("i")
        self._ts_gpus = array("i")
        self._ts_power = array("d")
        self._hourly_j = array("d")
        for node in range(n_nodes):
            self._recompute_node(node)

    # ------------------------------------------------------------- integration
    def start(self, t: float) -> None:
        self.t0 = self.last_t = t

    def advance(self, t: float) -> None:
        dt = t - self.last_t
        if dt <= 0:
            return
        self.e_busy += self.total_busy_w * dt
        self.e_idle += self.total_idle_w * dt
        self.e_host += self.total_host_w * dt
        self.e_sleep += self.total_sleep_w * dt
        self.util_integral += self.total_util * dt
        self.active_integral += self.state.active_nodes * dt
        self.busy_gpu_integral += self.state.busy_gpus * dt
        spread_over_hours(self._hourly_j, self.power_w, self.last_t, t)
        self.last_t = t

    def finish(self, t: float) -> None:
        self.advance(t)

    @property
    def power_w(self) -> float:
        return self.total_busy_w + self.total_idle_w + self.total_host_w + self.total_sleep_w

    def record(self, t: float) -> None:
        nodes = self.state.active_nodes
        gpus = self.state.busy_gpus
        if self._ts_t and self._ts_nodes[-1] == nodes and self._ts_gpus[-1] == gpus:
            return
        if self._ts_t and self._ts_t[-1] == t:
            self._ts_nodes[-1] = nodes
            self._ts_gpus[-1] = gpus
            self._ts_power[-1] = self.power_w
            return
        self._ts_t.append(t)
        self._ts_nodes.append(nodes)
        self._ts_gpus.append(gpus)
        self._ts_power.append(self.power_w)

    # ----------------------------------------------------------------- changes
    def gpus_changed(self, gpus: tuple[int, ...], t: float) -> None:
        state = self.state
        truth = self.truth
        nodes: dict[int, None] = {}
        for g in gpus:
            members = state.gpu_jobs[g]
            on_gpu = [self.jobs[j] for j in members]
            util = truth.gpu_util(on_gpu, state.gpu_type[g]) if members else 0.0
            self.gpu_util[g] = util
            self.gpu_power_w[g] = power = self._gpu_models[g].power_w(util)
            self.gpu_job_power_w[g] = dict(zip(members, split_gpu_energy(
                power, self._gpu_idle_w[g], truth.work_weights(on_gpu, state.gpu_type[g])))) if members else {}
            nodes[state.gpu_node[g]] = None
        jobs: dict[int, None] = {}
        for node in nodes:
            self._recompute_node(node)
            for g in state.node_gpus[node]:
                for j in state.gpu_jobs[g]:
                    jobs[j] = None
        for j in jobs:
            self.settle_job(j, t)
            self.job_power_w[j] = self._job_power(j)

    def _recompute_node(self, node: int) -> None:
        state = self.state
        busy = idle = host = sleep = util = 0.0
        if state.node_job_count[node] == 0 and self._sleep:
            sleep = self._host.low_power_w
        else:
            cpu = 0.0
            for g in state.node_gpus[node]:
                members = state.gpu_jobs[g]
                util += self.gpu_util[g]
                if members:
                    busy += self.gpu_power_w[g]
                    for j in members:
                        cpu += self._cpu_share(j)
                else:
                    idle += self.gpu_power_w[g]
            host = self._host.power_w(min(1.0, cpu)) + self._baseline_w
        self.total_busy_w += busy - self.node_busy_w[node]
        self.total_idle_w += idle - self.node_idle_w[node]
        self.total_host_w += host - self.node_host_w[node]
        self.total_sleep_w += sleep - self.node_sleep_w[node]
        self.total_util += util - self.node_util[node]
        self.node_busy_w[node] = busy
        self.node_idle_w[node] = idle
        self.node_host_w[node] = host
        self.node_sleep_w[node] = sleep
        self.node_util[node] = util

    def _cpu_share(self, job_id: int) -> float:
        return self.truth.cpu_util_per_gpu(self.jobs[job_id])

    def _job_power(self, job_id: int) -> float:
        state = self.state
        power = 0.0
        slots_on_node: dict[int, int] = {}
        for g in state.job_gpus[job_id]:
            power += self.gpu_job_power_w[g][job_id]
            node = state.gpu_node[g]
            slots_on_node[node] = slots_on_node.get(node, 0) + 1
        for node, slots in slots_on_node.items():
            power += self.node_host_w[node] * slots / state.node_job_count[node]
        return power

    def settle_job(self, job_id: int, t: float) -> None:
        last = self.job_last_t.get(job_id)
        if last is not None and t > last:
            self.job_energy[job_id] = self.job_energy.get(job_id, 0.0) + self.job_power_w[job_id] * (t - last)
        self.job_last_t[job_id] = t

    def forget_job(self, job_id: int) -> None:
        self.job_last_t.pop(job_id, None)
        self.job_power_w.pop(job_id, None)

    # ----------------------------------------------------------------- results
    def job_energy_j(self, job_id: int) -> float:
        return self.job_energy.get(job_id, 0.0)

    def totals(self) -> EnergyTotals:
        total = self.e_busy + self.e_idle + self.e_host + self.e_sleep
        return EnergyTotals(
            total_j=total,
            gpu_busy_j=self.e_busy,
            gpu_idle_j=self.e_idle,
            host_j=self.e_host,
            sleep_j=self.e_sleep,
            attributed_to_jobs_j=sum(self.job_energy.values()),
            gpu_util_time_integral=self.util_integral,
            active_node_time_integral=self.active_integral,
            busy_gpu_time_integral=self.busy_gpu_integral,
            duration_s=self.last_t - self.t0,
            end_power_w=self.power_w,
        )

    def timeseries(self) -> TimeSeries:
        return TimeSeries(self._ts_t, self._ts_nodes, self._ts_gpus, self._ts_power, self._hourly_j)


