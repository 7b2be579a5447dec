"""Turn a validated :class:`JobSpec` into the :class:`~eaco.model.job.Job` a policy sees.

What the policy needs and where each value comes from (docs/runtime.md):

- ``epoch_duration_s`` (exclusive epoch time on the reference GPU): the job's exclusive epoch
  time on this machine's GPUs (``epoch_s``: the runtime's baseline, measured, else declared,
  else a default, :mod:`eaco.runtime.baselines`) x the catalogue's relative speed of the job type
  on this GPU type (:func:`reference_epoch_s`), so that the policy's exclusive rate here is
  1 / that epoch time.
- ``memory_gb``: what the runtime measured the job (or its workload) to use, else the spec's
  estimate, else the catalogue's peak memory of the job type (:mod:`eaco.runtime.memory`).
- ``gpu_util``: the spec's, else the catalogue's exclusive utilisation on this GPU type.
- ``deadline_s``: submit time + the spec's ``deadline_s`` (or ``(1 + slack) x epochs x
  expected_epoch_s``); none: no SLO.
- A job requeued to run exclusively (after a crash while co-located) becomes high priority and
  exclusive (:attr:`~eaco.model.job.Job.exclusive`: it holds its GPUs' whole memory, no policy
  co-locates it or onto it).
"""

from __future__ import annotations

import math

from eaco.colocation.catalog import JobCatalog
from eaco.errors import InputError
from eaco.model.gpu import gpu_type as lookup_gpu_type
from eaco.model.job import Job
from eaco.runtime.gpus import GpuInventory
from eaco.runtime.spec import JobSpec


def largest_node_gpus(inventory: GpuInventory) -> int:
    """The most GPUs one node of the runtime has (one node locally; several on a Ray cluster)."""
    return max(node.num_gpus for node in inventory.cluster().nodes)


def check_runnable(spec: JobSpec, catalog: JobCatalog, inventory: GpuInventory, source: str = "<spec>") -> None:
    """Raise :class:`InputError` naming the field if the job could never run here. A job's GPUs are
    all on one node, so ``num_gpus`` is compared with the largest node, not the cluster's total."""
    if spec.job_type not in catalog:
        known = ", ".join(sorted(catalog.names())[:12])
        raise InputError(source, f"unknown job type {spec.job_type!r} (known include: {known}, ...)", field="job_type")
    if spec.gpu_type is not None and spec.gpu_type != inventory.gpu_type:
        raise InputError(source, f"this runtime has {inventory.describe()} GPUs, not {spec.gpu_type}", field="gpu_type")
    largest = largest_node_gpus(inventory)
    if spec.num_gpus > largest:
        raise InputError(source, f"asks for {spec.num_gpus} GPUs on one node; the largest node has {largest} GPUs "
                                 f"({inventory.describe()})", field="num_gpus")
    memory_gb = spec.memory_gb if spec.memory_gb is not None else catalog.get(spec.job_type).memory_gb
    gpu_memory_gb = lookup_gpu_type(inventory.gpu_type).memory_gb
    if memory_gb > gpu_memory_gb:
        raise InputError(source, f"{memory_gb:g} GB does not fit a {inventory.gpu_type} ({gpu_memory_gb:g} GB)", field="memory_gb")


def reference_epoch_s(epoch_s: float, spec: JobSpec, catalog: JobCatalog, inventory: GpuInventory) -> float:
    """A job's exclusive epoch time on this runtime's GPUs, as the epoch time on the reference GPU
    that policies plan with (x the catalogue's relative speed of its type on this GPU type)."""
    return epoch_s * catalog.get(spec.job_type).speed_on(inventory.gpu_type)


def job_from_spec(
    job_id: int,
    spec: JobSpec,
    submit_time_s: float,
    catalog: JobCatalog,
    inventory: GpuInventory,
    epoch_s: float,
    exclusive_only: bool = False,
    alone_first: bool = False,
    memory_gb: float | None = None,
) -> Job:
    """The job the policy sees. ``exclusive_only``: it asks for whole GPUs and high priority
    (after a crash while co-located). ``alone_first``: it is exclusive, so that it is neither
    placed onto busy GPUs nor joined on its own, until the runtime has measured its exclusive
    epoch time (its priority and queue place are unchanged). ``memory_gb``: the memory
    it holds per GPU when it shares (the runtime's :class:`~eaco.runtime.memory.MemoryEstimate`);
    None: the spec's, else the catalogue's."""
    check_runnable(spec, catalog, inventory)
    kind = catalog.get(spec.job_type)
    gpu = inventory.gpu_type
    if memory_gb is None:
        memory_gb = spec.memory_gb if spec.memory_gb is not None else kind.memory_gb
    memory_gb = min(memory_gb, lookup_gpu_type(gpu).memory_gb)
    priority = spec.priority
    if exclusive_only:
        priority = max(1, priority)
    relative = spec.relative_deadline_s()
    return Job(
        job_id=job_id,
        submit_time_s=submit_time_s,
        num_gpus=spec.num_gpus,
        job_type=spec.job_type,
        num_epochs=spec.epochs,
        epoch_duration_s=reference_epoch_s(epoch_s, spec, catalog, inventory),
        memory_gb=memory_gb,
        gpu_util=spec.gpu_util if spec.gpu_util is not None else kind.util_on(gpu),
        gpu_type=spec.gpu_type,
        deadline_s=submit_time_s + relative if relative is not None else math.inf,
        priority=priority,
        exclusive=exclusive_only or alone_first,
    )

