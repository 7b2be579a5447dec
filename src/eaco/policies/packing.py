"""Helpers shared by the packing baselines (FIFO-packed, Gandiva)."""

from __future__ import annotations

from typing import Iterator

from eaco.colocation.catalog import JobCatalog
from eaco.model.job import Job
from eaco.policies.placement import types_fastest_first
from eaco.policies.view import SchedulerView


def solo_partner_types(view: SchedulerView, job: Job, catalog: JobCatalog | None = None) -> Iterator[tuple[str, str]]:
    """(gpu type, job type) groups of running jobs that could share their GPUs with ``job``:
    same GPU count, alone on their GPUs, on a GPU type ``job`` accepts (none for an exclusive
    job); the types where ``job`` runs fastest first (:func:`types_fastest_first`)."""
    if job.exclusive:
        return
    for gpu_type in types_fastest_first(view, job, catalog):
        for job_type in view.solo_job_types(job.num_gpus, gpu_type):
            yield gpu_type, job_type
