"""Service-level objectives for traces that carry none.

Rule (seeded, documented defaults; every knob is a field of :class:`SloSettings`):

- a share ``high_priority_share`` of jobs is high-priority (priority 1; EaCO gives them
  exclusive GPUs at once);
- a share ``no_slo_share`` of the others has no deadline (infinite);
- every other job gets ``deadline = submit + (1 + slack) x exclusive runtime``, with ``slack``
  drawn uniformly from ``[slack_min, slack_max]``. The exclusive runtime is the job's epochs x
  exclusive epoch time on the reference GPU (V100).

Jobs that already have a deadline or a priority (from their trace) keep them unless
``overwrite`` is set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from eaco.workloads.base import Workload


@dataclass(frozen=True, slots=True)
class SloSettings:
    slack_min: float = 0.5
    slack_max: float = 2.0
    no_slo_share: float = 0.1
    high_priority_share: float = 0.05
    seed: int = 0
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.slack_min <= self.slack_max:
            raise ValueError(f"SloSettings: need 0 <= slack_min <= slack_max, got {self.slack_min}, {self.slack_max}")
        for name in ("no_slo_share", "high_priority_share"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"SloSettings.{name}: expected a share in [0, 1], got {v}")
        if self.no_slo_share + self.high_priority_share > 1.0:
            raise ValueError("SloSettings: no_slo_share + high_priority_share must be <= 1")

    def describe(self) -> str:
        return (
            f"deadline = submit + (1 + U[{self.slack_min:g}, {self.slack_max:g}]) x exclusive runtime; "
            f"{self.high_priority_share:.0%} high-priority, {self.no_slo_share:.0%} without SLO (seed {self.seed})"
        )


def assign_slos(workload: Workload, settings: SloSettings = SloSettings()) -> Workload:
    """Return the workload with deadlines and priorities assigned by the rule above."""
    rng = np.random.default_rng(settings.seed)
    n = len(workload.jobs)
    kind = rng.random(n)
    slack = rng.uniform(settings.slack_min, settings.slack_max, n)
    jobs = []
    for i, job in enumerate(workload.jobs):
        has_own = job.priority != 0 or math.isfinite(job.deadline_s)
        if has_own and not settings.overwrite:
            jobs.append(job)
            continue
        if kind[i] < settings.high_priority_share:
            jobs.append(replace(job, priority=1, deadline_s=math.inf))
        elif kind[i] < settings.high_priority_share + settings.no_slo_share:
            jobs.append(replace(job, priority=0, deadline_s=math.inf))
        else:
            deadline = job.submit_time_s + (1.0 + float(slack[i])) * job.exclusive_duration_s
            jobs.append(replace(job, priority=0, deadline_s=deadline))
    return replace(workload, jobs=tuple(jobs), name=f"{workload.name}+slo")
