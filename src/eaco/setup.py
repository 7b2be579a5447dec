"""Build the pieces of a run from names and defaults (shared by the CLI, benchmarks and tests)."""

from __future__ import annotations

from dataclasses import replace

from pathlib import Path
from typing import Sequence

from eaco.colocation.catalog import JobCatalog
from eaco.colocation.profiles import load_profiles
from eaco.colocation.model import load_colocation_model
from eaco.energy.node_power import default_energy_model
from eaco.errors import InputError
from eaco.model.cluster import ClusterSpec
from eaco.paths import shared_file
from eaco.sim.runner import Environment
from eaco.workloads import generate_workload, load_workload
from eaco.workloads.base import Workload

DEFAULT_CLUSTER = "28x8xv100"
JOB_TYPE_RULES = ("uniform", "philly_util")


def load_environment(
    sleep_empty_nodes: bool = True,
    sleep_power_w: float | None = None,
    profiles: Sequence[str | Path] = (),
) -> Environment:
    """Catalogue, co-location ground truth and calibrated energy model, with the node low-power
    state switched on or off and optionally its power (W) changed. ``profiles``: profile stores
    written by ``eaco profile``; their measurements refine the ground truth and seed EaCO's H."""
    measured = load_profiles(list(profiles)) if profiles else None
    energy = default_energy_model(sleep_empty_nodes=sleep_empty_nodes)
    if sleep_power_w is not None:
        if not sleep_power_w >= 0:
            raise InputError("--sleep-power-w", f"expected a power in W >= 0, got {sleep_power_w}")
        energy = replace(energy, host=replace(energy.host, low_power_w=sleep_power_w))
    colocation = load_colocation_model(profiles=measured)
    return Environment(catalog=colocation.catalog, colocation=colocation, energy=energy, profiles=measured)


def build_cluster(cluster: str, workload: str = "", notes: list[str] | None = None) -> ClusterSpec:
    """``auto``: the trace's own cluster for the Philly and Alibaba traces, else 28 nodes x 8 V100;
    ``sinfo:PATH[:TYPE]``: a Slurm node list (:mod:`eaco.model.slurm_nodes`). What a node list
    left out or assumed is appended to ``notes``."""
    if cluster.strip().lower().startswith("sinfo:"):
        from eaco.model.slurm_nodes import load_sinfo_cluster, split_spec

        path, default_type = split_spec(cluster.strip()[len("sinfo:"):])
        if not path:
            raise InputError("--cluster", "expected sinfo:PATH (a node list from sinfo --Node --format=\"%N|%G\")")
        got = load_sinfo_cluster(path, default_type)
        if notes is not None:
            if got.without_gpus:
                notes.append(f"{got.without_gpus:,} node(s) without GPUs left out")
            if got.defaulted:
                notes.append(f"{len(got.defaulted):,} node(s) given the default GPU type {default_type} "
                             f"(untyped or unknown GPUs; first: {got.defaulted[0]})")
        return got.cluster
    key = cluster.strip().lower()
    if key == "auto":
        wl = workload.strip().lower()
        key = wl if wl in ("philly", "alibaba") else DEFAULT_CLUSTER
    if key == "philly":
        return ClusterSpec.from_philly_machines(shared_file("traces", "philly_machines.csv"))
    if key == "alibaba":
        return ClusterSpec.from_alibaba_nodes(shared_file("traces", "alibaba_gpu_v2023_gpu_nodes.csv"))
    return ClusterSpec.parse(key)


def load_named_workload(
    kind: str,
    catalog: JobCatalog,
    *,
    seed: int = 0,
    jobs: int | None = None,
    rate_per_h: float = 12.0,
    default_jobs: int = 1000,
    skip_bad_rows: bool = False,
    job_type_rule: str = "uniform",
    priority_qos: tuple[str, ...] = (),
    slurm_timezone: str | None = None,
) -> Workload:
    key = kind.strip()
    if priority_qos and not key.startswith("slurm:"):
        raise InputError("--slurm-priority-qos", f"applies to slurm:PATH workloads only, not {key!r}")
    if slurm_timezone and not key.startswith("slurm:"):
        raise InputError("--slurm-timezone", f"applies to slurm:PATH workloads only, not {key!r}")
    if key == "generated":
        n = default_jobs if jobs is None else jobs
        if n < 1:
            raise InputError("--jobs", f"expected a positive number of jobs, got {n}")
        if not rate_per_h > 0:
            raise InputError("--rate", f"expected a positive arrival rate (jobs per hour), got {rate_per_h}")
        if job_type_rule not in JOB_TYPE_RULES:
            raise InputError("--job-types", f"expected one of {', '.join(JOB_TYPE_RULES)}, got {job_type_rule!r}")
        return generate_workload(n, rate_per_h, catalog=catalog, seed=seed, job_type_rule=job_type_rule)  # type: ignore[arg-type]
    options: dict[str, object] = {"skip_bad_rows": skip_bad_rows}
    if priority_qos:
        options["priority_qos"] = priority_qos
    if slurm_timezone:
        options["timezone_name"] = slurm_timezone
    if jobs is not None:
        options["limit"] = jobs
    return load_workload(key, catalog=catalog, seed=seed, **options)
