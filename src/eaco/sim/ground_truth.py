"""What really happens to jobs in the simulated cluster (never shown to policies directly).

Speeds and utilisations come from the co-location model (measured data first, a fitted model
for combinations never measured); exclusive speed on each GPU type and CPU share from the job
type catalogue.
"""

from __future__ import annotations

from eaco.colocation.catalog import JobCatalog
from eaco.colocation.model import ColocationModel
from eaco.model.job import Job


class GroundTruth:
    def __init__(self, colocation: ColocationModel, catalog: JobCatalog) -> None:
        self.colocation = colocation
        self.catalog = catalog

    def exclusive_rate(self, job: Job, gpu_type: str) -> float:
        """Epochs per second when alone on GPUs of ``gpu_type``."""
        return self.catalog.get(job.job_type).speed_on(gpu_type) / job.epoch_duration_s

    def cpu_util_per_gpu(self, job: Job) -> float:
        return self.catalog.get(job.job_type).cpu_util_per_gpu

    def speeds(self, jobs: list[Job], gpu_type: str) -> tuple[float, ...]:
        """Normalised speed (1.0 = alone) of each job sharing one GPU, in the given order."""
        if len(jobs) == 1:
            return (1.0,)
        return self.colocation.speeds(tuple(j.job_type for j in jobs), gpu_type)

    def work_weights(self, jobs: list[Job], gpu_type: str) -> list[float]:
        """Each job's work on a GPU it shares with ``jobs``: its exclusive utilisation times its
        speed there (what its energy share is weighed by, :mod:`eaco.energy.attribution`)."""
        return [j.gpu_util * s for j, s in zip(jobs, self.speeds(jobs, gpu_type))]

    def gpu_util(self, jobs: list[Job], gpu_type: str) -> float:
        """Utilisation (0..1) of a GPU running these jobs."""
        if not jobs:
            return 0.0
        if len(jobs) == 1:
            return jobs[0].gpu_util
        return self.colocation.utilisation(tuple(j.job_type for j in jobs), gpu_type)
