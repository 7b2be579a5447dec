"""Turn a validated :class:`JobSpec` into the :class:`~eaco.model.job.Job` a policy sees.

What the policy needs and where each value comes from (docs/runtime.md):

- ``epoch_duration_s`` (exclusive epoch time on the reference GPU): the job's exclusive epoch
  time on the runtime's GPUs (its baseline: measured, else declared, else a default, on the GPU
  type it rests on, :mod:`eaco.runtime.baselines`) x the catalogue's relative speed of the job
  type on that GPU type (:func:`reference_epoch_s`), so that the policy's exclusive rate there
  is 1 / that epoch time.
- ``memory_gb``: what the runtime measured the job (or its workload) to use, else the spec's
  estimate, else the catalogue's peak memory of the job type (:mod:`eaco.runtime.memory`), at
  most the memory of the largest GPU it can run on.
- ``gpu_util``: the spec's, else the catalogue's exclusive utilisation on the GPU type it asks
  for (else the runtime's main type).
- ``gpu_type``: the spec's; none: any type of the runtime whose nodes and GPUs are big enough
  (:func:`runnable_types`).
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
from eaco.runtime.baselines import EpochBaseline
from eaco.runtime.gpus import GpuInventory
from eaco.runtime.spec import JobSpec


def _types_with_room(spec: JobSpec, inventory: GpuInventory) -> tuple[str, ...]:
    """The runtime's GPU types the job asks for (else any) that can give it ``num_gpus`` GPUs (on
    one node, or across nodes where jobs may span them)."""
    return tuple(t for t in inventory.gpu_types()
                 if (spec.gpu_type is None or t == spec.gpu_type) and inventory.most_gpus_per_job(t) >= spec.num_gpus)


def _spec_memory_gb(spec: JobSpec, catalog: JobCatalog) -> float:
    return spec.memory_gb if spec.memory_gb is not None else catalog.get(spec.job_type).memory_gb


def runnable_types(spec: JobSpec, catalog: JobCatalog, inventory: GpuInventory) -> tuple[str, ...]:
    """The runtime's GPU types the job can run on: the type it asks for (else any) that can give
    it ``num_gpus`` GPUs and where a GPU has its memory (the spec's, else its job type's). Empty: it
    can run nowhere (:func:`check_runnable` says why)."""
    need_gb = _spec_memory_gb(spec, catalog)
    return tuple(t for t in _types_with_room(spec, inventory) if lookup_gpu_type(t).memory_gb >= need_gb)


def largest_gpu_memory_gb(spec: JobSpec, inventory: GpuInventory) -> float:
    """The memory of the largest GPU the job could run on (the most it can hold per GPU); inf if none."""
    return max((lookup_gpu_type(t).memory_gb for t in _types_with_room(spec, inventory)), default=math.inf)


def check_runnable(spec: JobSpec, catalog: JobCatalog, inventory: GpuInventory, source: str = "<spec>") -> tuple[str, ...]:
    """Raise :class:`InputError` naming the field if the job could never run here; else return
    the GPU types it can run on (:func:`runnable_types`). On one machine (and wherever a job's
    GPUs must be on one node) ``num_gpus`` is compared with the largest node (of the type it asks
    for); where jobs may span nodes (Ray), with all GPUs of one type."""
    if spec.job_type not in catalog:
        known = ", ".join(sorted(catalog.names())[:12])
        raise InputError(source, f"unknown job type {spec.job_type!r} (known include: {known}, ...)", field="job_type")
    if spec.gpu_type is not None and spec.gpu_type not in inventory.gpu_types():
        raise InputError(source, f"this runtime has {inventory.describe()} GPUs, not {spec.gpu_type}", field="gpu_type")
    most = inventory.most_gpus_per_job(spec.gpu_type)
    if spec.num_gpus > most:
        of_type = f" of {spec.gpu_type}" if spec.gpu_type is not None and len(inventory.gpu_types()) > 1 else ""
        if inventory.spans_nodes():
            where = f"the cluster has at most {most} GPUs{of_type if of_type else ' of one type'}"
        else:
            where = f"the largest node{of_type} has {most} GPUs (a job's GPUs are on one node here)"
        raise InputError(source, f"asks for {spec.num_gpus} GPUs; {where} ({inventory.describe()})", field="num_gpus")
    types = runnable_types(spec, catalog, inventory)
    if not types:
        room = ", ".join(f"{t} {lookup_gpu_type(t).memory_gb:g} GB" for t in _types_with_room(spec, inventory))
        raise InputError(source, f"{_spec_memory_gb(spec, catalog):g} GB does not fit a GPU it could run on ({room})", field="memory_gb")
    return types


def declared_gpu_type(spec: JobSpec, inventory: GpuInventory) -> str:
    """The GPU type a spec's ``expected_epoch_s`` is on: the one it asks for, else the runtime's main type."""
    return spec.gpu_type if spec.gpu_type is not None else inventory.gpu_type


def reference_epoch_s(baseline: EpochBaseline, spec: JobSpec, catalog: JobCatalog) -> float:
    """A job's exclusive epoch time (its baseline, on the GPU type it rests on) as the epoch time
    on the reference GPU that policies plan with (x the catalogue's relative speed of its type there)."""
    return baseline.reference_s(catalog.get(spec.job_type))


def job_from_spec(
    job_id: int,
    spec: JobSpec,
    submit_time_s: float,
    catalog: JobCatalog,
    inventory: GpuInventory,
    baseline: EpochBaseline,
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
    if memory_gb is None:
        memory_gb = _spec_memory_gb(spec, catalog)
    memory_gb = min(memory_gb, largest_gpu_memory_gb(spec, inventory))
    priority = spec.priority
    if exclusive_only:
        priority = max(1, priority)
    deadline_s = spec.deadline_after(submit_time_s)
    return Job(
        job_id=job_id,
        submit_time_s=submit_time_s,
        num_gpus=spec.num_gpus,
        job_type=spec.job_type,
        num_epochs=spec.epochs,
        epoch_duration_s=reference_epoch_s(baseline, spec, catalog),
        memory_gb=memory_gb,
        gpu_util=spec.gpu_util if spec.gpu_util is not None else kind.util_on(declared_gpu_type(spec, inventory)),
        gpu_type=spec.gpu_type,
        deadline_s=math.inf if deadline_s is None else deadline_s,
        priority=priority,
        exclusive=exclusive_only or alone_first,
    )

