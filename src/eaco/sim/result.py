"""What a simulation run produces: one record per job plus cluster-wide energy and time series."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from eaco.sim.energy_meter import EnergyTotals, TimeSeries


@dataclass(frozen=True, slots=True)
class JobRecord:
    job_id: int
    job_type: str
    num_gpus: int
    submit_s: float
    first_start_s: float
    finish_s: float
    run_time_s: float  # time holding GPUs (sum over placements)
    colocated_time_s: float  # part of run_time_s spent sharing a GPU
    exclusive_duration_s: float  # run time alone on reference GPUs
    deadline_s: float
    priority: int
    energy_j: float  # attributed energy (its GPUs' share + its share of host power)
    undos: int
    placements: int
    lost_epochs: float  # work thrown away by undo (past the last checkpoint)
    colocation_delay_s: float  # run time lost to sharing: run time - restarts - time the same progress takes alone
    restart_s: float = 0.0  # time holding GPUs while restarting from a checkpoint after an undo
    migrations: int = 0  # times moved to other GPUs (consolidation), not counted in undos
    gpu_types: str = ""  # the GPU types it ran on, in order, joined by "+" ("k80+a100": moved once)

    @property
    def missed_because_of_colocation(self) -> bool:
        """Missed its deadline, and would have met it without the slowdown of sharing."""
        return self.missed_deadline and self.finish_s - self.colocation_delay_s <= self.deadline_s + 1e-6

    @property
    def total_time_s(self) -> float:
        """Submit to finish: waiting plus running (the paper's "job total time")."""
        return self.finish_s - self.submit_s

    @property
    def jct_s(self) -> float:
        """First start to finish (the paper's measured JCT: execution time of the job)."""
        return self.finish_s - self.first_start_s

    @property
    def waiting_s(self) -> float:
        return self.total_time_s - self.run_time_s

    @property
    def missed_deadline(self) -> bool:
        return math.isfinite(self.deadline_s) and self.finish_s > self.deadline_s + 1e-6


@dataclass(frozen=True, slots=True)
class SimulationResult:
    policy: str
    workload: str
    cluster: str
    num_nodes: int
    num_gpus: int
    jobs: tuple[JobRecord, ...]
    energy: EnergyTotals
    timeseries: TimeSeries
    makespan_s: float
    events: int
    policy_calls: int
    undos: int
    max_work_residual: float  # largest |work done - work needed| / work needed at a completion
    wall_s: float
    migrations: int = 0  # jobs moved to other GPUs (consolidation)
    policy_stats: dict[str, int] = field(default_factory=dict)  # Policy.decision_counts() at the end
    # per GPU type, the GPU-hours jobs held (num_gpus x run time; a GPU two jobs share counts twice)
    job_gpu_hours_by_type: dict[str, float] = field(default_factory=dict)
