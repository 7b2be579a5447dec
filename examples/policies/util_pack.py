"""An example of a policy of your own: pack a job onto a running job's GPUs when their
utilisations fit, else give it free GPUs.

Beside the built-in policies, on the same workload, in the simulator:

    eaco simulate -p fifo,gandiva,eaco,examples/policies/util_pack.py:UtilPack

and as the live runtime's policy:

    eaco serve --gpus 2xv100 --policy examples/policies/util_pack.py:UtilPack

docs/policies.md describes what a policy sees (the view) and what it may decide.
"""

from __future__ import annotations

from eaco.policies.base import Policy
from eaco.policies.decisions import Decision, Place
from eaco.policies.placement import find_free_gpus_any_type
from eaco.policies.view import SchedulerView


class UtilPack(Policy):
    """Queued jobs in arrival order (the first ``window``): each one joins the GPUs of a running
    job that is alone on as many GPUs, when the two jobs' exclusive utilisations (from the job
    catalogue) add up to at most ``max_util`` and the GPUs have memory left for it (the fullest
    such pair first); else it takes free GPUs; else it waits. No deadline check, no undo: a
    simple rule to compare with EaCO."""

    name = "util-pack"
    manages_node_power = True  # nodes with no job sleep under this policy, as under EaCO

    def __init__(self, ctx, max_util: float = 1.0, window: int = 32) -> None:  # ctx: eaco.policies.registry.PolicyContext
        self.catalog = ctx.catalog
        self.max_util = max_util
        self.window = window

    def schedule(self, view: SchedulerView) -> list[Decision]:
        for job in view.queue[: self.window]:
            gpus = self._partner_gpus(view, job) or find_free_gpus_any_type(view, job, self.catalog)
            if gpus is not None:
                return [Place(job.job_id, gpus)]  # one at a time: the view is fresh at the next call
        return []

    def _partner_gpus(self, view: SchedulerView, job) -> tuple[int, ...] | None:  # type: ignore[no-untyped-def]
        if job.exclusive or job.is_high_priority:
            return None
        best: tuple[float, tuple[int, ...]] | None = None
        for other_id in view.running_job_ids():
            gpus = view.job_gpus(other_id)
            other = view.job(other_id)
            if len(gpus) != job.num_gpus or any(view.gpu_job_count(g) != 1 for g in gpus):
                continue
            if other.exclusive or other.is_high_priority:
                continue
            gpu_type = view.gpu_type(gpus[0])
            if job.gpu_type is not None and gpu_type != job.gpu_type:
                continue
            util = self.catalog.get(job.job_type).util_on(gpu_type) + self.catalog.get(other.job_type).util_on(gpu_type)
            if util > self.max_util or any(view.free_memory_gb(g) < job.memory_gb for g in gpus):
                continue
            if best is None or util > best[0]:
                best = (util, gpus)
        return None if best is None else best[1]
