"""``eaco reproduce``: the paper's simulation study on bundled data, in one run.

What runs (all on the same workload for a given cluster size):

1. **Main comparison**: a generated Gavel-style workload (``StudyConfig``: 1,000 jobs, Poisson
   arrivals at 6 per hour, durations and GPU counts from the bundled Philly distribution, job
   types assigned so that utilisation follows Philly's measured per-GPU utilisation, SLOs by
   :mod:`eaco.workloads.slo`) on 28 and on 64 nodes x 8 V100, with FIFO, FIFO-packed, Gandiva and
   EaCO. Empty nodes sleep only under EaCO, which manages node power; the baselines, as
   published, leave them idle.
2. **Sensitivity**: the 28-node comparison again with every policy allowed to sleep empty nodes,
   and with job types drawn uniformly from the catalogue (Gavel's own rule).
3. **Trade-off**: EaCO at 28 nodes sweeping alpha (energy vs time per epoch) and the utilisation
   threshold: energy vs average JCT.
4. **Philly**: all four policies on the full bundled Philly trace on the Philly machine list.
5. **Other workloads**: the 28-node comparison again on the same generator with other seeds
   (``robustness_seeds``), to show how much the result depends on the one workload.
6. **Fewest nodes** (beyond the paper): per policy, the fewest 8 x V100 nodes on which the main
   workload keeps its deadlines (:mod:`eaco.study.sizing`: at most 1% missed, bisection over
   ``sizing_nodes``): what each policy needs to buy, where the rest compares what a given
   cluster draws.

Targets (issue 3) are checked on the main 28-node run.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Sequence

from eaco.model.cluster import ClusterSpec
from eaco.policies.eaco import EacoSettings
from eaco.setup import build_cluster, load_environment
from eaco.sim.metrics import Metrics
from eaco.sim.result import SimulationResult
from eaco.sim.runner import Environment, simulate
from eaco.study.sizing import NodeShape, SizingOutcome, SizingTarget, search_smallest
from eaco.units import S_PER_H
from eaco.workloads import generate_workload
from eaco.workloads.base import Workload
from eaco.workloads.slo import SloSettings, assign_slos

POLICIES = ("fifo", "fifo-packed", "gandiva", "eaco")


@dataclass(frozen=True, slots=True)
class StudyConfig:
    num_jobs: int = 1000
    arrival_rate_per_h: float = 6.0
    seed: int = 0
    job_type_rule: str = "philly_util"
    node_counts: tuple[int, ...] = (28, 64)
    gpus_per_node: int = 8
    gpu_type: str = "v100"
    slo: SloSettings = SloSettings()
    eaco: EacoSettings = EacoSettings()
    alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    util_thresholds: tuple[float, ...] = (0.5, 0.7, 0.9, 1.0)
    tradeoff_seeds: tuple[int, ...] = (0, 1, 2)  # the sweep is averaged over these workloads
    sensitivity: bool = True
    philly: bool = True
    beyond_paper: bool = True  # EaCO with the paper's rules only vs ours, on this and a heavier load
    heavy_rate_per_h: float = 12.0  # the heavier load: twice the main rate
    robustness_seeds: tuple[int, ...] = (1, 2, 3, 4)  # the 28-node comparison on these workloads too
    sizing_nodes: tuple[int, int] | None = (16, 64)  # fewest nodes per policy searched in this range (None: not)
    sizing_target: SizingTarget = SizingTarget()


def paper_rules(settings: EacoSettings) -> EacoSettings:
    """EaCO as the paper describes it: no best-effort placement of late jobs, no urgency rule, no
    consolidation by migration, no reservations for waiting jobs, no waiting for a faster GPU type
    (the paper's clusters have one type)."""
    return replace(settings, late_jobs_best_effort=False, urgent_slack=0.0, consolidate=False, reserve=False,
                   wait_for_faster_type=False)


PAPER_RULES_LABEL = "paper rules"


@dataclass(frozen=True, slots=True)
class Run:
    group: str  # "main", "sleep-all", "uniform-types", "tradeoff", "philly"
    nodes: int
    policy: str
    label: str  # what varies within the group (e.g. "alpha=0.5")
    metrics: Metrics
    result: SimulationResult


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    value: float
    limit: str
    met: bool


@dataclass(slots=True)
class StudyResult:
    config: StudyConfig
    workload: Workload
    runs: list[Run] = field(default_factory=list)
    wall_s: float = 0.0
    targets: list[Target] = field(default_factory=list)
    sizing: list[SizingOutcome] = field(default_factory=list)  # per policy, the fewest nodes (group "sizing")

    def find(self, group: str, nodes: int, policy: str, label: str = "") -> Run:
        for r in self.runs:
            if r.group == group and r.nodes == nodes and r.policy == policy and r.label == label:
                return r
        raise KeyError((group, nodes, policy, label))

    def group(self, group: str) -> list[Run]:
        return [r for r in self.runs if r.group == group]


def study_workload(config: StudyConfig, env: Environment, job_type_rule: str | None = None) -> Workload:
    wl = generate_workload(
        config.num_jobs,
        config.arrival_rate_per_h,
        catalog=env.catalog,
        seed=config.seed,
        job_type_rule=job_type_rule or config.job_type_rule,  # type: ignore[arg-type]
    )
    return assign_slos(wl, replace(config.slo, seed=config.seed))


@dataclass(frozen=True, slots=True)
class SweepRun:
    """One EaCO run of a sweep, with FIFO's metrics on the same workload."""

    result: SimulationResult
    metrics: Metrics
    fifo: Metrics


def sweep_eaco(
    variants: dict[str, EacoSettings], loads: tuple[tuple[float, tuple[int, ...]], ...], env: Environment,
    num_jobs: int = 1000,
) -> Iterator[tuple[float, str, list[SweepRun]]]:
    """EaCO with each of ``variants`` on the study's 28 x 8 V100 cluster, for each (arrival rate,
    seeds) of ``loads``: yields (rate, variant name, one :class:`SweepRun` per seed), rate by
    rate, variants in order. The study-script sweeps use it."""
    cluster = ClusterSpec.homogeneous(28, 8, "v100")
    for rate, seeds in loads:
        runs = []
        for seed in seeds:
            wl = study_workload(StudyConfig(num_jobs=num_jobs, seed=seed, arrival_rate_per_h=rate), env)
            runs.append((wl, simulate(cluster, wl, "fifo", env)[1]))
        for name, settings in variants.items():
            yield rate, name, [SweepRun(*simulate(cluster, wl, "eaco", env, eaco_settings=settings), fifo) for wl, fifo in runs]


def sweep_command_line(
    argv: Sequence[str] | None, description: str, variants: dict[str, EacoSettings],
    loads: tuple[tuple[float, tuple[int, ...]], ...],
) -> Iterator[tuple[float, str, list[SweepRun]]]:
    """The study scripts' command line (``--jobs``, default 1000): parse ``argv`` and load the
    models now (``--help`` exits before anything is printed), then :func:`sweep_eaco`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args(argv)
    return sweep_eaco(variants, loads, load_environment(), args.jobs)


def planned_runs(config: StudyConfig) -> int:
    n = len(config.node_counts) * len(POLICIES)
    if 28 in config.node_counts:
        n += (len(config.alphas) + len(config.util_thresholds)) * len(config.tradeoff_seeds)
        if config.sensitivity:
            n += 2 * len(POLICIES)
    if config.philly:
        n += len(POLICIES)
    if config.beyond_paper and 28 in config.node_counts:
        n += 1 + 4
    if 28 in config.node_counts:
        n += len(_robustness_seeds(config)) * len(POLICIES)
    if config.sizing_nodes is not None:  # at most: the bisection may end sooner
        lo, hi = config.sizing_nodes
        n += len(POLICIES) * (min(2, hi - lo + 1) + max(0, math.ceil(math.log2(max(1, hi - lo)))))
    return n


def _robustness_seeds(config: StudyConfig) -> tuple[int, ...]:
    return tuple(s for s in config.robustness_seeds if s != config.seed)


def run_study(
    config: StudyConfig,
    env: Environment,
    on_run: Callable[[str], None] | None = None,
) -> StudyResult:
    """Run everything; ``on_run(description)`` is called before each simulation."""
    t0 = time.perf_counter()
    workload = study_workload(config, env)
    out = StudyResult(config, workload)

    def run(group: str, cluster: ClusterSpec, wl: Workload, policy: str, label: str = "",
            settings: EacoSettings | None = None, sleep: str = "policy") -> None:
        if on_run is not None:
            on_run(f"{group} {cluster.num_nodes} nodes {policy} {label}".strip())
        result, metrics = simulate(cluster, wl, policy, env, eaco_settings=settings or config.eaco, sleep=sleep)
        out.runs.append(Run(group, cluster.num_nodes, policy, label, metrics, result))

    for nodes in config.node_counts:
        cluster = ClusterSpec.homogeneous(nodes, config.gpus_per_node, config.gpu_type)
        for policy in POLICIES:
            run("main", cluster, workload, policy)
    if 28 in config.node_counts:
        cluster = ClusterSpec.homogeneous(28, config.gpus_per_node, config.gpu_type)
        for seed in config.tradeoff_seeds:
            wl = workload if seed == config.seed else study_workload(replace(config, seed=seed), env)
            for alpha in config.alphas:
                run("tradeoff", cluster, wl, "eaco", f"alpha={alpha:g} seed={seed}", replace(config.eaco, alpha=alpha))
            for u in config.util_thresholds:
                run("tradeoff", cluster, wl, "eaco", f"util_threshold={u:g} seed={seed}",
                    replace(config.eaco, util_threshold=u))
        if config.sensitivity:
            for policy in POLICIES:
                run("sleep-all", cluster, workload, policy, sleep="all")
            uniform = study_workload(config, env, job_type_rule="uniform")
            for policy in POLICIES:
                run("uniform-types", cluster, uniform, policy)
    if config.beyond_paper and 28 in config.node_counts:
        cluster = ClusterSpec.homogeneous(28, config.gpus_per_node, config.gpu_type)
        run("beyond-paper", cluster, workload, "eaco", PAPER_RULES_LABEL, paper_rules(config.eaco))
        heavy = study_workload(replace(config, arrival_rate_per_h=config.heavy_rate_per_h), env)
        for policy in ("fifo", "gandiva", "eaco"):
            run("heavy", cluster, heavy, policy)
        run("heavy", cluster, heavy, "eaco", PAPER_RULES_LABEL, paper_rules(config.eaco))
    if 28 in config.node_counts:
        cluster = ClusterSpec.homogeneous(28, config.gpus_per_node, config.gpu_type)
        for seed in _robustness_seeds(config):
            wl = study_workload(replace(config, seed=seed), env)
            for policy in POLICIES:
                run("seeds", cluster, wl, policy, f"seed={seed}")
    if config.sizing_nodes is not None:
        shape = NodeShape(config.gpus_per_node, config.gpu_type)
        for policy in POLICIES:
            def evaluate(cluster: ClusterSpec, policy: str = policy) -> Metrics:
                run("sizing", cluster, workload, policy)
                return out.runs[-1].metrics

            out.sizing.append(search_smallest(policy, shape, evaluate, *config.sizing_nodes, config.sizing_target))
    if config.philly:
        from eaco.setup import load_named_workload

        philly = assign_slos(load_named_workload("philly", env.catalog, seed=config.seed), replace(config.slo, seed=config.seed))
        cluster = build_cluster("philly")
        for policy in POLICIES:
            run("philly", cluster, philly, policy)
    out.wall_s = time.perf_counter() - t0
    out.targets = check_targets(out)
    return out


@dataclass(frozen=True, slots=True)
class TradeoffPoint:
    setting: str  # e.g. "alpha=0.5"
    energy_kwh: float  # mean over the sweep's workloads
    jct_h: float
    run_time_h: float
    colocated_jobs: float
    undos: float
    seeds: int


def tradeoff_points(study: StudyResult) -> list[TradeoffPoint]:
    """The sweep, averaged over its workloads (seeds), in sweep order."""
    groups: dict[str, list[Run]] = {}
    for r in study.group("tradeoff"):
        groups.setdefault(r.label.split(" seed=")[0], []).append(r)
    out = []
    for setting, runs in groups.items():
        n = len(runs)
        out.append(TradeoffPoint(
            setting,
            sum(r.metrics.energy_kwh for r in runs) / n,
            sum(r.metrics.jct_s.mean for r in runs) / n / S_PER_H,
            sum(r.metrics.run_time_s.mean for r in runs) / n / S_PER_H,
            sum(r.metrics.colocated_jobs for r in runs) / n,
            sum(r.metrics.undos for r in runs) / n,
            n,
        ))
    return out


@dataclass(frozen=True, slots=True)
class SeedRow:
    seed: int
    energy_vs_fifo: float
    energy_vs_gandiva: float
    runtime_vs_fifo: float
    misses: int
    misses_by_sharing: int
    jobs_with_deadline: int
    targets_met: bool  # every target of :func:`targets_for` on this workload


def seed_rows(study: StudyResult) -> list[SeedRow]:
    """EaCO vs FIFO and Gandiva at 28 nodes on the main workload and on each other seed's."""
    if 28 not in study.config.node_counts:
        return []
    groups = [("main", "", study.config.seed)]
    groups += [("seeds", f"seed={s}", s) for s in _robustness_seeds(study.config)]
    out = []
    for group, label, seed in groups:
        try:
            fifo, gandiva, eaco = (study.find(group, 28, p, label).metrics for p in ("fifo", "gandiva", "eaco"))
        except KeyError:
            continue
        out.append(SeedRow(seed, eaco.energy_kwh / fifo.energy_kwh, eaco.energy_kwh / gandiva.energy_kwh,
                           eaco.run_time_s.mean / fifo.run_time_s.mean, eaco.deadline_misses,
                           eaco.deadline_misses_colocation, eaco.jobs_with_deadline,
                           all(t.met for t in targets_for(fifo, gandiva, eaco))))
    return out


def check_targets(study: StudyResult) -> list[Target]:
    """Issue 3's targets on the main 28-node run."""
    if 28 not in study.config.node_counts:
        return []
    fifo, gandiva, eaco = (study.find("main", 28, p).metrics for p in ("fifo", "gandiva", "eaco"))
    return targets_for(fifo, gandiva, eaco)


def targets_for(fifo: Metrics, gandiva: Metrics, eaco: Metrics) -> list[Target]:
    """Issue 3's targets for EaCO against FIFO and Gandiva on one workload at 28 nodes."""
    energy_ratio = eaco.energy_kwh / fifo.energy_kwh
    runtime_ratio = eaco.run_time_s.mean / fifo.run_time_s.mean
    return [
        Target("EaCO energy / FIFO energy (28 nodes)", energy_ratio, "<= 0.65", energy_ratio <= 0.65),
        Target("EaCO energy / Gandiva energy (28 nodes)", eaco.energy_kwh / gandiva.energy_kwh, "< 1",
               eaco.energy_kwh < gandiva.energy_kwh),
        Target("EaCO average runtime / FIFO (28 nodes)", runtime_ratio, "<= 1.05", runtime_ratio <= 1.05),
        Target("deadline misses caused by co-location (EaCO, 28 nodes)", float(eaco.deadline_misses_colocation),
               "= 0", eaco.deadline_misses_colocation == 0),
    ]
