"""Choosing GPUs: shared helpers for policies."""

from __future__ import annotations

from collections.abc import Collection

from eaco.colocation.catalog import JobCatalog
from eaco.model.gpu import gpu_type as lookup_gpu_type
from eaco.model.job import Job
from eaco.policies.view import SchedulerView
from eaco.state.cluster_state import MEMORY_EPS_GB


def candidate_gpu_types(view: SchedulerView, job: Job) -> tuple[str, ...]:
    """The GPU types of the cluster ``job`` may run on: the one it asks for, else any, leaving
    out types whose GPUs have less memory than the job needs (on a mixed cluster a 40 GB job
    can run on an A100, never on a K80)."""
    types = view.gpu_types() if job.gpu_type is None else tuple(t for t in view.gpu_types() if t == job.gpu_type)
    return tuple(t for t in types if lookup_gpu_type(t).memory_gb + MEMORY_EPS_GB >= job.memory_gb)


def types_fastest_first(view: SchedulerView, job: Job, catalog: JobCatalog | None) -> tuple[str, ...]:
    """:func:`candidate_gpu_types`, the type where ``job``'s job type runs fastest alone first
    (from the catalogue; ties and no catalogue: the cluster's order). On a mixed cluster a job
    that takes any type then goes to the fastest type with room, whatever order the cluster was
    written in."""
    types = candidate_gpu_types(view, job)
    if catalog is None or len(types) < 2:
        return types
    spec = catalog.get(job.job_type)
    return tuple(sorted(types, key=lambda t: -spec.speed_on(t)))


def find_free_gpus(
    view: SchedulerView, num_gpus: int, gpu_type: str, avoid: Collection[int] = frozenset()
) -> tuple[int, ...] | None:
    """Pick ``num_gpus`` idle GPUs of one type, consolidated on as few nodes as possible.

    A job that fits on one node goes to the node with the fewest idle GPUs that still has
    enough (best fit, lowest node id on ties), keeping whole nodes free for big jobs and letting
    idle nodes sleep. A larger job takes the nodes with the most idle GPUs first. Nodes in
    ``avoid`` are not used. Returns None when fewer than ``num_gpus`` GPUs of that type are idle
    (outside ``avoid``).
    """
    per_node = view.max_gpus_per_node(gpu_type)
    if per_node == 0:
        return None
    node = best_fit_node(view, num_gpus, gpu_type, avoid)
    if node is not None:
        return view.free_gpus_on(node)[:num_gpus]
    if view.free_gpu_count(gpu_type) < num_gpus:
        return None
    chosen: list[int] = []
    for k in range(per_node, 0, -1):
        for node in view.nodes_with_free(gpu_type, k):
            if node in avoid:
                continue
            need = num_gpus - len(chosen)
            chosen.extend(view.free_gpus_on(node)[:need])
            if len(chosen) == num_gpus:
                return tuple(chosen)
    return None


def best_fit_node(
    view: SchedulerView, num_gpus: int, gpu_type: str, avoid: Collection[int] = frozenset(),
    awake_only: bool = False,
) -> int | None:
    """The node of ``gpu_type`` with the fewest idle GPUs that still has ``num_gpus`` (lowest id on
    ties), outside ``avoid``; with ``awake_only``, only nodes that run a job already."""
    for k in range(num_gpus, view.max_gpus_per_node(gpu_type) + 1):
        if not avoid and not awake_only:
            node = view.first_node_with_free(gpu_type, k)
        else:
            node = next((n for n in view.nodes_with_free(gpu_type, k)
                         if n not in avoid and not (awake_only and len(view.node_gpus(n)) == k)), None)
        if node is not None:
            return node
    return None


def find_free_gpus_any_type(
    view: SchedulerView, job: Job, catalog: JobCatalog | None = None
) -> tuple[int, ...] | None:
    """Idle GPUs for ``job`` on the first type of :func:`types_fastest_first` that has enough."""
    for t in types_fastest_first(view, job, catalog):
        gpus = find_free_gpus(view, job.num_gpus, t)
        if gpus is not None:
            return gpus
    return None
