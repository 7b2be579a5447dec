"""How small can the cluster be? The fewest nodes of one shape on which a policy meets a
deadline target for a workload (``eaco simulate --smallest LO-HI``).

A size meets the target when at most ``max_miss_share`` of the jobs that have a deadline miss it
and, if a limit is given, the jobs wait at most ``max_avg_wait_s`` on average (jobs without a
deadline count there too: a cluster too small for them shows in their wait, not in the misses).
The search is a bisection over the node count: it evaluates the largest size first (if even that
misses the target, there is no answer in the range), then the smallest, then halves the gap
between the largest size known to miss and the smallest known to meet it. It assumes that more
nodes never make a policy miss more deadlines; that holds closely but not exactly (a different
size changes which jobs meet which), so every size evaluated is reported with its result, and
the answer is the fewest nodes *seen* to meet the target: ``lo`` itself, or a size with one node
fewer seen to miss it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from eaco.errors import InputError
from eaco.model.cluster import ClusterSpec
from eaco.sim.metrics import Metrics
from eaco.units import S_PER_H

OPTION = "--smallest"
DEFAULT_MAX_MISS_SHARE = 0.01  # at most 1% of the deadlines missed: an assumption, set your own


@dataclass(frozen=True, slots=True)
class SizingTarget:
    """At most ``max_miss_share`` of the jobs with a deadline may miss it, and (unless None) the
    mean wait of all jobs is at most ``max_avg_wait_s``."""

    max_miss_share: float = DEFAULT_MAX_MISS_SHARE
    max_avg_wait_s: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_miss_share) and 0.0 <= self.max_miss_share <= 1.0):
            raise InputError("--max-miss-share", f"expected a share in [0, 1], got {self.max_miss_share}")
        if self.max_avg_wait_s is not None and not (math.isfinite(self.max_avg_wait_s) and self.max_avg_wait_s >= 0):
            raise InputError("--max-avg-wait-h", f"expected hours >= 0, got {self.max_avg_wait_s / S_PER_H}")

    def met(self, m: Metrics) -> bool:
        if self.max_avg_wait_s is not None and not m.waiting_s.mean <= self.max_avg_wait_s:
            return False
        return miss_share(m) <= self.max_miss_share

    def describe(self) -> str:
        wait = "" if self.max_avg_wait_s is None else f" and jobs waiting at most {self.max_avg_wait_s / S_PER_H:g} h on average"
        return f"at most {self.max_miss_share:.1%} of deadlines missed{wait}"


def miss_share(m: Metrics) -> float:
    """Deadline misses over the jobs that have a deadline (0 when none has one)."""
    return m.deadline_misses / m.jobs_with_deadline if m.jobs_with_deadline else 0.0


@dataclass(frozen=True, slots=True)
class NodeShape:
    """The node every size is made of: ``gpus_per_node`` GPUs of ``gpu_type``."""

    gpus_per_node: int
    gpu_type: str

    def cluster(self, num_nodes: int) -> ClusterSpec:
        return ClusterSpec.homogeneous(num_nodes, self.gpus_per_node, self.gpu_type)

    def describe(self) -> str:
        return f"{self.gpus_per_node}x{self.gpu_type}"

    @classmethod
    def of(cls, cluster: ClusterSpec) -> "NodeShape":
        shapes = {(n.num_gpus, n.gpu_type) for n in cluster.nodes}
        if len(shapes) != 1:
            raise InputError(OPTION, f"needs a cluster of one node shape (NODESxGPUSxTYPE such as 28x8xv100) to size; "
                                     f"{cluster.name} has {len(shapes)}: {cluster.describe()}")
        (gpus, gpu_type), = shapes
        return cls(gpus, gpu_type)


def parse_node_range(text: str) -> tuple[int, int]:
    """``"8-40"`` -> (8, 40): the node counts to search between, both included."""
    lo_text, sep, hi_text = text.strip().partition("-")
    try:
        lo, hi = int(lo_text), int(hi_text)
    except ValueError:
        raise InputError(OPTION, f"expected a node range LO-HI such as 8-40, got {text!r}") from None
    if not sep or lo < 1 or hi < lo:
        raise InputError(OPTION, f"expected a node range LO-HI with 1 <= LO <= HI, got {text!r}")
    return lo, hi


@dataclass(frozen=True, slots=True)
class SizePoint:
    num_nodes: int
    metrics: Metrics
    met: bool


@dataclass(slots=True)
class SizingOutcome:
    """One policy's search: every size evaluated (in order) and the answer."""

    label: str
    shape: NodeShape
    lo: int
    hi: int
    points: list[SizePoint] = field(default_factory=list)

    @property
    def smallest(self) -> int | None:
        """The fewest nodes seen to meet the target (None: not even ``hi``)."""
        return min((p.num_nodes for p in self.points if p.met), default=None)

    @property
    def chosen(self) -> SizePoint:
        """The point reported for the policy: at its smallest size, or at ``hi`` when none met."""
        n = self.smallest
        return next(p for p in self.points if p.num_nodes == (self.hi if n is None else n))


def search_smallest(label: str, shape: NodeShape, evaluate: Callable[[ClusterSpec], Metrics], lo: int, hi: int,
                    target: SizingTarget) -> SizingOutcome:
    """Bisect ``[lo, hi]`` for the fewest nodes of ``shape`` that meet ``target`` (see the
    module's docs); ``evaluate(cluster)`` runs the workload on ``cluster``."""
    outcome = SizingOutcome(label, shape, lo, hi)

    def met(n: int) -> bool:
        m = evaluate(shape.cluster(n))
        ok = target.met(m)
        outcome.points.append(SizePoint(n, m, ok))
        return ok

    if not met(hi) or lo == hi:
        return outcome
    if met(lo):
        return outcome
    missed, meets = lo, hi  # the largest size known to miss, the smallest known to meet
    while meets - missed > 1:
        mid = (missed + meets) // 2
        if met(mid):
            meets = mid
        else:
            missed = mid
    return outcome
