"""Gandiva-style packing (Xiao et al., OSDI 2018), as compared against in the paper.

Follows Gandiva: jobs get free GPUs when there are enough; when GPUs are over-subscribed (no
free GPUs for a job), the job is packed onto the GPUs of a running job with the same GPU count,
preferring the partner with the lowest GPU utilisation; after packing, the pair is watched
(introspection) and, if its measured normalised throughput (sum of both jobs' observed speeds)
is below 1, the pair is dropped: the newer job is taken off and requeued and that pair is never
tried again. At most two jobs share a GPU.

Differs from Gandiva: no suspend/resume time-slicing of more jobs than GPUs, no migration for
defragmentation, no grow-shrink; the watch window is one epoch (Gandiva uses a few minutes of
mini-batches); queue order is arrival order with backfill over the first ``window`` jobs; free
GPUs of the type where the job runs fastest first, as in :mod:`eaco.policies.fifo`.
"""

from __future__ import annotations

from eaco.colocation.catalog import JobCatalog
from eaco.model.job import Job
from eaco.policies.base import Policy
from eaco.policies.decisions import Decision, Place, Undo, Watch
from eaco.policies.packing import solo_partner_types
from eaco.policies.placement import find_free_gpus_any_type
from eaco.policies.view import SchedulerView


class GandivaPolicy(Policy):
    name = "gandiva"

    def __init__(self, window: int = 32, unpack_below: float = 1.0, catalog: JobCatalog | None = None) -> None:
        self.catalog = catalog
        self.window = window
        self.unpack_below = unpack_below
        self._bad_partners: dict[int, set[int]] = {}
        # newer job -> older partner, for pairs under observation
        self._watching: dict[int, int] = {}
        self._speeds: dict[int, float] = {}
        self._blocked: set[int] = set()

    def schedule(self, view: SchedulerView) -> list[Decision]:
        decisions: list[Decision] = []
        if self.capacity_changed(view):  # GPUs joined or came back
            self._blocked.clear()
        if view.finished:
            self._blocked.clear()
            for job_id in view.finished:
                self._forget(job_id)
        for report in view.reports:
            self._speeds[report.job_id] = report.observed_speed
        for newer, older in list(self._watching.items()):
            if newer in self._speeds and older in self._speeds:
                total = self._speeds.pop(newer) + self._speeds.pop(older)
                del self._watching[newer]
                if total < self.unpack_below and view.is_running(newer):
                    self._bad_partners.setdefault(newer, set()).add(older)
                    self._bad_partners.setdefault(older, set()).add(newer)
                    decisions.append(Undo(newer))
                    self._blocked.clear()
        if decisions:
            return decisions
        for job in view.queue[: self.window]:
            if job.job_id in self._blocked:
                continue
            gpus = find_free_gpus_any_type(view, job, self.catalog)
            if gpus is not None:
                return [Place(job.job_id, gpus)]
            partner = self._lowest_util_partner(view, job)
            if partner is not None:
                self._watching[job.job_id] = partner
                return [
                    Place(job.job_id, view.job_gpus(partner)),
                    Watch(job.job_id, 1),
                    Watch(partner, 1),
                ]
            self._blocked.add(job.job_id)
        return []

    def _lowest_util_partner(self, view: SchedulerView, job: Job) -> int | None:
        skip = set(self._watching) | set(self._watching.values()) | self._bad_partners.get(job.job_id, set())
        best: tuple[float, int] | None = None
        for gpu_type, job_type in solo_partner_types(view, job, self.catalog):
            other = view.first_solo_job(job.num_gpus, gpu_type, job_type, job.memory_gb, skip)
            if other is None:
                continue
            util = view.job(other).gpu_util
            if best is None or (util, other) < best:
                best = (util, other)
        return None if best is None else best[1]

    def _forget(self, job_id: int) -> None:
        self._speeds.pop(job_id, None)
        for other in self._bad_partners.pop(job_id, ()):
            self._bad_partners.get(other, set()).discard(job_id)
        if job_id in self._watching:
            older = self._watching.pop(job_id)
            self._speeds.pop(older, None)
        for newer, older in list(self._watching.items()):
            if older == job_id:
                del self._watching[newer]
                self._speeds.pop(newer, None)
