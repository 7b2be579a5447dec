"""FIFO with packing (Gavel's ``fifo_packed``).

Follows Gavel: strict arrival order; a job gets free GPUs when there are enough; only when the
head of the queue cannot get free GPUs is it packed onto the GPUs of a running job with the
same GPU count, and only if the pair's combined normalised throughput (from the throughput
profile the policy is given, Gavel's measured pair throughputs) exceeds 1.5. Among qualifying
partners the highest combined throughput wins. At most two jobs share a GPU.

Differs from Gavel: Gavel re-solves packing every round and may re-pair jobs; we pack once at
placement and never migrate. Priorities, best-fit placement and the fastest free GPU type as in
:mod:`eaco.policies.fifo`.
"""

from __future__ import annotations

from eaco.colocation.catalog import JobCatalog
from eaco.policies.base import Policy, ThroughputKnowledge
from eaco.policies.decisions import Decision, Place
from eaco.policies.packing import solo_partner_types
from eaco.policies.placement import find_free_gpus_any_type
from eaco.policies.view import SchedulerView

GAVEL_PACKING_THRESHOLD = 1.5


class FifoPackedPolicy(Policy):
    name = "fifo-packed"

    def __init__(self, knowledge: ThroughputKnowledge, threshold: float = GAVEL_PACKING_THRESHOLD,
                 catalog: JobCatalog | None = None) -> None:
        self.knowledge = knowledge
        self.catalog = catalog
        self.threshold = threshold
        self._blocked_head: int | None = None

    def schedule(self, view: SchedulerView) -> list[Decision]:
        if self.capacity_changed(view) or view.finished:  # GPUs joined or came back, or a job ended
            self._blocked_head = None
        if not view.queue:
            return []
        head = view.queue[0]
        if head.job_id == self._blocked_head:
            return []
        gpus = find_free_gpus_any_type(view, head, self.catalog)
        if gpus is not None:
            self._blocked_head = None
            return [Place(head.job_id, gpus)]
        best: tuple[float, int] | None = None
        for gpu_type, job_type in solo_partner_types(view, head, self.catalog):
            types = (head.job_type, job_type)
            if not self.knowledge.feasible(types, gpu_type):
                continue
            tput = self.knowledge.normalised_throughput(types, gpu_type)
            if tput <= self.threshold or (best is not None and tput <= best[0]):
                continue
            other = view.first_solo_job(head.num_gpus, gpu_type, job_type, head.memory_gb)
            if other is not None:
                best = (tput, other)
        if best is None:
            self._blocked_head = head.job_id
            return []
        self._blocked_head = None
        return [Place(head.job_id, view.job_gpus(best[1]))]
