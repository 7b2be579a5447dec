"""Build the pieces of a run from names and defaults (shared by the CLI, benchmarks and tests)."""

from __future__ import annotations

from eaco.colocation.catalog import load_catalog
from eaco.colocation.model import load_colocation_model
from eaco.colocation.catalog import JobCatalog
from eaco.energy.node_power import default_energy_model
from eaco.errors import InputError
from eaco.model.cluster import ClusterSpec
from eaco.paths import shared_file
from eaco.sim.runner import Environment
from eaco.workloads import generate_workload, load_workload
from eaco.workloads.base import Workload

DEFAULT_CLUSTER = "28x8xv100"


def load_environment(sleep_empty_nodes: bool = True) -> Environment:
    catalog = load_catalog()
    return Environment(
        catalog=catalog,
        colocation=load_colocation_model(catalog=catalog),
        energy=default_energy_model(sleep_empty_nodes=sleep_empty_nodes),
    )


def build_cluster(cluster: str, workload: str = "") -> ClusterSpec:
    """``auto``: the trace's own cluster for the Philly and Alibaba traces, else 28 nodes x 8 V100."""
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
) -> Workload:
    key = kind.strip()
    if key == "generated":
        n = default_jobs if jobs is None else jobs
        if n < 1:
            raise InputError("--jobs", f"expected a positive number of jobs, got {n}")
        if not rate_per_h > 0:
            raise InputError("--rate", f"expected a positive arrival rate (jobs per hour), got {rate_per_h}")
        return generate_workload(n, rate_per_h, catalog=catalog, seed=seed)
    options: dict[str, object] = {"skip_bad_rows": skip_bad_rows}
    if jobs is not None:
        options["limit"] = jobs
    return load_workload(key, catalog=catalog, seed=seed, **options)
