"""Helpers shared by the packing baselines (FIFO-packed, Gandiva)."""

from __future__ import annotations

from typing import Iterator

from eaco.model.job import Job
from eaco.policies.placement import candidate_gpu_types
from eaco.policies.view import SchedulerView


def solo_partner_types(view: SchedulerView, job: Job) -> Iterator[tuple[str, str]]:
    """(gpu type, job type) groups of running jobs that could share their GPUs with ``job``:
    same GPU count, alone on their GPUs, on a GPU type ``job`` accepts (none for an exclusive job)."""
    if job.exclusive:
        return
    for gpu_type in candidate_gpu_types(view, job):
        for job_type in view.solo_job_types(job.num_gpus, gpu_type):
            yield gpu_type, job_type
