"""FIFO with exclusive GPUs (Gavel's default ``fifo`` policy).

Follows Gavel: jobs are served strictly in arrival order; each gets whole GPUs for its whole
life; when the head of the queue cannot get enough free GPUs, every job behind it waits
(head-of-line blocking). Differs from Gavel: high-priority jobs go to the front of the queue
(Gavel has no priorities), GPUs are chosen best-fit on as few nodes as possible
(Gavel's simulator assigns worker ids in order), and on a mixed cluster a job that takes any GPU
type goes to the free type where it runs fastest (with a ``catalog``; Gavel's heterogeneity-
agnostic FIFO does not rank types).
"""

from __future__ import annotations

from eaco.colocation.catalog import JobCatalog
from eaco.policies.base import Policy
from eaco.policies.decisions import Decision, Place
from eaco.policies.placement import find_free_gpus_any_type
from eaco.policies.view import SchedulerView


class FifoPolicy(Policy):
    name = "fifo"

    def __init__(self, catalog: JobCatalog | None = None) -> None:
        self.catalog = catalog
        self._blocked_head: int | None = None

    def schedule(self, view: SchedulerView) -> list[Decision]:
        if self.capacity_changed(view) or view.finished:  # GPUs joined or came back, or a job ended
            self._blocked_head = None
        if not view.queue:
            return []
        head = view.queue[0]
        if head.job_id == self._blocked_head:
            return []  # nothing freed since the head last failed
        gpus = find_free_gpus_any_type(view, head, self.catalog)
        if gpus is None:
            self._blocked_head = head.job_id
            return []
        self._blocked_head = None
        return [Place(head.job_id, gpus)]
