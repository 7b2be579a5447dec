"""Summary metrics of a simulation run (what ``eaco simulate`` prints and saves)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from eaco.sim.result import SimulationResult
from eaco.units import J_PER_KWH


@dataclass(frozen=True, slots=True)
class Distribution:
    mean: float
    p50: float
    p95: float
    p99: float
    max: float = math.nan

    @classmethod
    def of(cls, values: np.ndarray) -> "Distribution":
        if values.size == 0:
            return cls(math.nan, math.nan, math.nan, math.nan, math.nan)
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return cls(float(values.mean()), float(p50), float(p95), float(p99), float(values.max()))


@dataclass(frozen=True, slots=True)
class Metrics:
    policy: str
    workload: str
    cluster: str
    num_jobs: int
    energy_kwh: float
    gpu_busy_kwh: float
    gpu_idle_kwh: float
    host_kwh: float
    sleep_kwh: float
    attributed_to_jobs_kwh: float
    jct_s: Distribution
    run_time_s: Distribution
    waiting_s: Distribution
    total_time_s: Distribution
    makespan_s: float
    avg_active_nodes: float
    avg_gpu_util: float  # mean over all GPUs of the cluster, time-averaged over the makespan
    avg_busy_gpu_util: float  # mean over busy GPUs only
    jobs_with_deadline: int
    deadline_misses: int
    deadline_misses_colocation: int  # misses that the slowdown of sharing a GPU caused
    colocated_jobs: int  # jobs that shared a GPU at some point
    undos: int
    events: int
    policy_calls: int
    wall_s: float
    # the cluster's power once every job is done (nodes asleep, or awake and idle)
    empty_cluster_power_w: float = 0.0
    migrations: int = 0  # jobs moved to other GPUs to empty a node (consolidation)
    # energy until the latest makespan of the policies compared in the same run (see
    # :func:`with_common_end`); None for a run compared with nothing
    energy_common_end_kwh: float | None = None
    # with grid settings (eaco.energy.grid, eaco.sim.cost): energy x PUE, its electricity cost in
    # the settings' currency and its carbon (kg CO2e), over the run and until the common end
    facility_energy_kwh: float | None = None
    electricity_cost: float | None = None
    carbon_kg: float | None = None
    electricity_cost_common_end: float | None = None
    carbon_kg_common_end: float | None = None
    # with a hardware cost (eaco.model.ownership, eaco.sim.cost.with_ownership): the cluster's
    # hardware written off over the run and until the common end, in the same currency, and the
    # cost of ownership, hardware + electricity (None where the electricity has no price)
    hardware_cost: float | None = None
    hardware_cost_common_end: float | None = None
    ownership_cost: float | None = None
    ownership_cost_common_end: float | None = None
    # what the policy did, counted by kind (Policy.decision_counts: EaCO's co-locations,
    # observations, waits for a faster GPU type, reservations, drains); empty for the baselines
    policy_stats: dict[str, int] = field(default_factory=dict)
    # per GPU type, the GPU-hours jobs held (num_gpus x run time; a GPU two jobs share counts
    # twice): where the work ran on a mixed cluster
    job_gpu_hours_by_type: dict[str, float] = field(default_factory=dict)

    def energy_until_kwh(self, end_s: float) -> float:
        """Energy until ``end_s`` (simulated time, at or after the makespan): the run's energy plus
        the empty cluster's power from the makespan to ``end_s``."""
        return self.energy_kwh + max(0.0, end_s - self.makespan_s) * self.empty_cluster_power_w / J_PER_KWH

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else math.inf

    def to_dict(self) -> dict:
        d = asdict(self)
        d["events_per_s"] = self.events_per_s
        return d


def compute_metrics(result: SimulationResult) -> Metrics:
    jobs = result.jobs
    finish = np.fromiter((j.finish_s for j in jobs), float, len(jobs))
    submit = np.fromiter((j.submit_s for j in jobs), float, len(jobs))
    start = np.fromiter((j.first_start_s for j in jobs), float, len(jobs))
    run = np.fromiter((j.run_time_s for j in jobs), float, len(jobs))
    total = finish - submit
    e = result.energy
    duration = e.duration_s
    with_deadline = [j for j in jobs if math.isfinite(j.deadline_s)]
    return Metrics(
        policy=result.policy,
        workload=result.workload,
        cluster=result.cluster,
        num_jobs=len(jobs),
        energy_kwh=e.total_j / J_PER_KWH,
        gpu_busy_kwh=e.gpu_busy_j / J_PER_KWH,
        gpu_idle_kwh=e.gpu_idle_j / J_PER_KWH,
        host_kwh=e.host_j / J_PER_KWH,
        sleep_kwh=e.sleep_j / J_PER_KWH,
        attributed_to_jobs_kwh=e.attributed_to_jobs_j / J_PER_KWH,
        jct_s=Distribution.of(finish - start),
        run_time_s=Distribution.of(run),
        waiting_s=Distribution.of(total - run),
        total_time_s=Distribution.of(total),
        makespan_s=result.makespan_s,
        avg_active_nodes=e.active_node_time_integral / duration if duration > 0 else 0.0,
        avg_gpu_util=e.gpu_util_time_integral / (duration * result.num_gpus) if duration > 0 else 0.0,
        avg_busy_gpu_util=(
            e.gpu_util_time_integral / e.busy_gpu_time_integral if e.busy_gpu_time_integral > 0 else 0.0
        ),
        jobs_with_deadline=len(with_deadline),
        deadline_misses=sum(1 for j in with_deadline if j.missed_deadline),
        deadline_misses_colocation=sum(1 for j in with_deadline if j.missed_because_of_colocation),
        colocated_jobs=sum(1 for j in jobs if j.colocated_time_s > 0),
        undos=result.undos,
        migrations=result.migrations,
        events=result.events,
        policy_calls=result.policy_calls,
        wall_s=result.wall_s,
        empty_cluster_power_w=e.end_power_w,
        policy_stats=dict(result.policy_stats),
        job_gpu_hours_by_type=dict(result.job_gpu_hours_by_type),
    )


def with_common_end(rows: list[Metrics]) -> list[Metrics]:
    """Policies that finish the same workload at different times are compared over the same
    period: each run's energy until the latest makespan among ``rows`` (the cluster does not stop
    existing when one policy is done; it draws its empty power for the rest)."""
    if len(rows) < 2:
        return list(rows)
    end_s = max(m.makespan_s for m in rows)
    return [replace(m, energy_common_end_kwh=m.energy_until_kwh(end_s)) for m in rows]
