"""Run several policies on the same workload and cluster (what ``eaco simulate`` does)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from eaco.colocation.catalog import JobCatalog
from eaco.colocation.model import ColocationModel
from eaco.colocation.profiles import MeasuredProfiles
from eaco.energy.node_power import EnergyModel
from eaco.model.cluster import ClusterSpec
from eaco.policies.eaco import EacoSettings
from eaco.policies.registry import PolicyContext, make_policy, policy_manages_node_power
from eaco.predictor.history import CoLocationPredictor, load_predictor
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
    profiles: MeasuredProfiles | None = None  # profile stores from ``eaco profile``, if any

    @property
    def truth(self) -> GroundTruth:
        return GroundTruth(self.colocation, self.catalog)

    def new_predictor(self) -> CoLocationPredictor:
        return load_predictor(self.catalog, profiles=self.profiles)

    def policy_context(self, eaco_settings: EacoSettings | None = None) -> PolicyContext:
        return PolicyContext(
            throughput=self.colocation,
            catalog=self.catalog,
            energy=self.energy,
            new_predictor=self.new_predictor,
            eaco_settings=eaco_settings or EacoSettings(),
        )


SLEEP_MODES = ("policy", "all", "none")


def sleeps(mode: str, policy_manages_power: bool) -> bool:
    if mode not in SLEEP_MODES:
        raise ValueError(f"sleep mode must be one of {', '.join(SLEEP_MODES)}, got {mode!r}")
    return mode == "all" or (mode == "policy" and policy_manages_power)


def simulate(
    cluster: ClusterSpec,
    workload: Workload,
    policy_name: str,
    env: Environment,
    options: SimulationOptions | None = None,
    on_progress: ProgressCallback | None = None,
    eaco_settings: EacoSettings | None = None,
    sleep: str = "policy",
) -> tuple[SimulationResult, Metrics]:
    """Run one policy. ``sleep``: "policy" (empty nodes sleep only under a policy that manages
    node power), "all" (empty nodes always sleep) or "none" (they never do)."""
    energy = replace(env.energy, sleep_empty_nodes=sleeps(sleep, policy_manages_node_power(policy_name)))
    policy = make_policy(policy_name, replace(env.policy_context(eaco_settings), energy=energy))
    sim = Simulator(cluster, workload, policy, env.truth, energy, options, on_progress)
    result = sim.run()
    return result, compute_metrics(result)


def simulate_all(
    cluster: ClusterSpec,
    workload: Workload,
    policy_names: list[str],
    env: Environment,
    options: SimulationOptions | None = None,
    progress_factory: Callable[[str], ProgressCallback] | None = None,
    eaco_settings: EacoSettings | None = None,
    sleep: str = "policy",
) -> list[tuple[SimulationResult, Metrics]]:
    out = []
    for name in policy_names:
        cb = progress_factory(name) if progress_factory else None
        out.append(simulate(cluster, workload, name, env, options, cb, eaco_settings, sleep))
    return out
