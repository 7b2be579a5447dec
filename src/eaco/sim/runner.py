"""Run several policies on the same workload and cluster (what ``eaco simulate`` does)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from eaco.colocation.catalog import JobCatalog
from eaco.colocation.model import ColocationModel
from eaco.energy.node_power import EnergyModel
from eaco.model.cluster import ClusterSpec
from eaco.policies.registry import make_policy
from eaco.sim.engine import ProgressCallback, SimulationOptions, Simulator
from eaco.sim.ground_truth import GroundTruth
from eaco.sim.metrics import Metrics, compute_metrics
from eaco.sim.result import SimulationResult
from eaco.workloads.base import Workload


@dataclass(frozen=True, slots=True)
class Environment:
    """The models a simulation runs on: loaded once, shared by every run."""

    catalog: JobCatalog
    colocation: ColocationModel
    energy: EnergyModel

    @property
    def truth(self) -> GroundTruth:
        return GroundTruth(self.colocation, self.catalog)


def simulate(
    cluster: ClusterSpec,
    workload: Workload,
    policy_name: str,
    env: Environment,
    options: SimulationOptions | None = None,
    on_progress: ProgressCallback | None = None,
) -> tuple[SimulationResult, Metrics]:
    policy = make_policy(policy_name, env.colocation)
    sim = Simulator(cluster, workload, policy, env.truth, env.energy, options, on_progress)
    result = sim.run()
    return result, compute_metrics(result)


def simulate_all(
    cluster: ClusterSpec,
    workload: Workload,
    policy_names: list[str],
    env: Environment,
    options: SimulationOptions | None = None,
    progress_factory: Callable[[str], ProgressCallback] | None = None,
) -> list[tuple[SimulationResult, Metrics]]:
    out = []
    for name in policy_names:
        cb = progress_factory(name) if progress_factory else None
        out.append(simulate(cluster, workload, name, env, options, cb))
    return out
