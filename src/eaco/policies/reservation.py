"""Reservations: keep a waiting job from starving behind smaller ones (EASY-style backfill).

EaCO places the first job of the queue that fits and lets the others pass a job that does not
(backfill). On a busy cluster that starves big jobs: every GPU that frees is taken at once by a
small job that fits there, so a job that needs a whole node may miss its deadline while smaller
jobs pass it (on the default ``eaco simulate`` workload 8-GPU jobs waited 21 h on average against
0.2 h for 1-GPU jobs, and missed 35 of the 58 deadlines).

By default only urgent jobs get reservations (``wait_s`` infinite): holding GPUs free costs
capacity, and on an overloaded cluster a reservation for every long-waiting job raised misses
(docs/eaco.md, ``python -m eaco.study.reservation_sweep``). A finite ``wait_s`` adds a guard
against starvation for jobs without a deadline.

A :class:`Reserver` holds, for one waiting job at a time (the *holder*: the first job of the
queue that could not be placed and whose deadline is urgent, or that has been in the system for
``wait_s``), the node(s) of its GPU type that are predicted to have room for it first. Until the
holder is placed, another job may take free GPUs on a reserved node only if it is predicted to
finish, running alone, before the reservation starts (backfill), and may never join the jobs
running there (sharing would slow them and push the start back). The holder is placed like any job (on the
reserved node or anywhere else that has room first); the reservation then ends.

The prediction of when a node has room comes from the policy (its estimate of when each GPU's
jobs end), so the reserver works in the simulator and the live runtime alike; it never reads a
clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from eaco.model.job import Job
from eaco.policies.view import SchedulerView

DEFAULT_RESERVE_WAIT_S = math.inf  # urgent jobs only


@dataclass(frozen=True, slots=True)
class ReservationSettings:
    enabled: bool = True
    wait_s: float = DEFAULT_RESERVE_WAIT_S  # a job in the system this long gets one (inf: urgent jobs only)

    def __post_init__(self) -> None:
        if not self.wait_s >= 0:
            raise ValueError("ReservationSettings.wait_s must be >= 0")


@dataclass(slots=True)
class Reservation:
    job_id: int
    gpu_type: str
    nodes: frozenset[int]
    start_s: float  # predicted time the nodes have room for the job


@dataclass(slots=True)
class ReservationStats:
    made: int = 0
    honoured: int = 0  # the holder was placed
    dropped: int = 0  # the holder left the queue otherwise (cancelled)
    backfilled: int = 0  # jobs placed on a reserved node that finish before the reservation starts
    moved: int = 0  # a high-priority job took a reserved node: the reservation is made anew


# (view, node, GPUs needed) -> predicted time that many GPUs of the node are free
RoomAtFn = Callable[[SchedulerView, int, int], float]
# (view, job, GPU type) -> seconds the job still needs alone on that type
RemainingFn = Callable[[SchedulerView, Job, str], float]


class Reserver:
    """Holds nodes for one starving job at a time (see module docs)."""

    def __init__(self, settings: ReservationSettings, room_at_s: RoomAtFn, remaining_s: RemainingFn) -> None:
        self.settings = settings
        self.stats = ReservationStats()
        self._room_at_s = room_at_s
        self._remaining_s = remaining_s
        self.current: Reservation | None = None
        self._type_nodes: dict[str, list[int]] = {}
        self._type_nodes_count = -1

    # ------------------------------------------------------------------ queries
    def reserved_nodes(self) -> frozenset[int]:
        return frozenset() if self.current is None else self.current.nodes

    def avoid_for(self, view: SchedulerView, job: Job, gpu_type: str, sharing: bool) -> frozenset[int]:
        """The reserved nodes ``job`` may not use on ``gpu_type``: none for the holder; for
        another job all of them when ``sharing`` (joining jobs there), else those it cannot
        finish on, alone, before the reservation starts."""
        r = self.current
        if r is None or r.job_id == job.job_id or r.gpu_type != gpu_type:
            return frozenset()
        if sharing or not self._backfills(view, job, gpu_type, r):
            return r.nodes
        return frozenset()

    # ------------------------------------------------------------------- events
    def placed(self, view: SchedulerView, job: Job, gpus: Sequence[int]) -> bool:
        """A job is being placed on ``gpus``; return True when that ends the reservation: the
        holder is placed, or a job that does not finish before the reservation starts (a
        high-priority one, which takes free GPUs wherever they are) lands on a reserved node, whose
        room then comes later (the next pass reserves anew, possibly elsewhere)."""
        r = self.current
        if r is None:
            return False
        if r.job_id == job.job_id:
            self.current = None
            self.stats.honoured += 1
            return True
        if not any(view.gpu_node(g) in r.nodes for g in gpus):
            return False
        gpu_type = view.gpu_type(gpus[0])
        if gpu_type == r.gpu_type and self._backfills(view, job, gpu_type, r):
            self.stats.backfilled += 1
            return False
        self.current = None
        self.stats.moved += 1
        return True

    def check_holder(self, view: SchedulerView) -> bool:
        """End the reservation if its holder left the queue without being placed (finished or
        cancelled); return True when it ended."""
        r = self.current
        if r is None or view.is_running(r.job_id) or r.job_id not in view.finished and any(
                j.job_id == r.job_id for j in view.queue):
            return False
        self.current = None
        self.stats.dropped += 1
        return True

    def consider(self, view: SchedulerView, jobs: Sequence[Job], urgent: Callable[[Job], bool],
                 gpu_types: Callable[[Job], Sequence[str]]) -> Reservation | None:
        """With no reservation held, reserve for the first of ``jobs`` (waiting jobs that could
        not be placed, in queue order) that waited ``wait_s`` or is ``urgent``."""
        if not self.settings.enabled or self.current is not None:
            return None
        for job in jobs:
            if view.now_s - job.submit_time_s < self.settings.wait_s and not urgent(job):
                continue
            best: Reservation | None = None
            for gpu_type in gpu_types(job):
                r = self._reserve_on(view, job, gpu_type)
                if r is not None and (best is None or r.start_s < best.start_s):
                    best = r
            if best is not None:
                self.current = best
                self.stats.made += 1
                return best
        return None

    def next_wait_end_s(self, job: Job) -> float:
        """When ``job`` will have waited ``wait_s`` (the policy looks at it again then)."""
        return job.submit_time_s + self.settings.wait_s if self.settings.enabled else math.inf

    # ------------------------------------------------------------------ helpers
    def earliest_room(self, view: SchedulerView, job: Job, gpu_type: str, avoid: frozenset[int] = frozenset(),
                      claimed: Mapping[int, tuple[int, float]] | None = None) -> tuple[float, frozenset[int]] | None:
        """When, and on which node(s) of ``gpu_type`` outside ``avoid``, ``job`` is predicted to
        find room first (None: the type cannot hold it). ``claimed``: per node, GPUs promised to
        jobs waiting for them and when the last of those jobs is predicted to end; the job fits
        beside them if the node has GPUs enough, else after them. The policy weighs waiting for
        a faster GPU type against starting now on a slower one with it."""
        r = self._reserve_on(view, job, gpu_type, avoid, claimed)
        return None if r is None else (r.start_s, r.nodes)

    def _reserve_on(self, view: SchedulerView, job: Job, gpu_type: str, avoid: frozenset[int] = frozenset(),
                    claimed: Mapping[int, tuple[int, float]] | None = None) -> Reservation | None:
        per_node = view.max_gpus_per_node(gpu_type)
        if per_node == 0:
            return None
        of_type = self._nodes_of_type(view, gpu_type)
        nodes = [n for n in of_type if n not in avoid] if avoid else of_type
        single = job.num_gpus <= per_node

        def room_s(node: int) -> float:
            return self._node_room_s(view, node, job.num_gpus, claimed)

        if single:
            fitting = [n for n in nodes if len(view.node_gpus(n)) >= job.num_gpus]
            chosen = [min(fitting, key=lambda n: (room_s(n), n))] if fitting else []
        else:
            chosen, gpus = [], 0
            for node in sorted(nodes, key=lambda n: (room_s(n), n)):
                chosen.append(node)
                gpus += len(view.node_gpus(node))
                if gpus >= job.num_gpus:
                    break
            else:
                chosen = []
        if not chosen:
            return None
        return Reservation(job.job_id, gpu_type, frozenset(chosen), max(room_s(n) for n in chosen))

    def _nodes_of_type(self, view: SchedulerView, gpu_type: str) -> list[int]:
        """The nodes of ``gpu_type`` (kept until nodes join: a node's type never changes)."""
        if self._type_nodes_count != view.num_nodes:
            self._type_nodes = {}
            self._type_nodes_count = view.num_nodes
        got = self._type_nodes.get(gpu_type)
        if got is None:
            got = self._type_nodes[gpu_type] = [n for n in range(view.num_nodes) if view.node_gpu_type(n) == gpu_type]
        return got

    def _room_s(self, view: SchedulerView, nodes: Sequence[int] | frozenset[int], num_gpus: int) -> float:
        """When ``nodes`` are predicted to have room for a job of ``num_gpus`` GPUs: that many GPUs
        of a single node free, or every GPU of each of several nodes."""
        return max(self._node_room_s(view, node, num_gpus) for node in nodes)

    def _node_room_s(self, view: SchedulerView, node: int, num_gpus: int,
                     claimed: Mapping[int, tuple[int, float]] | None = None) -> float:
        """When ``node`` is predicted to have room for its part of a job of ``num_gpus`` GPUs
        (that many GPUs, or all of them for a job larger than the node), beside the GPUs
        ``claimed`` there if the node has enough, else after their claimers end."""
        size = len(view.node_gpus(node))
        need = min(num_gpus, size)
        claim = claimed.get(node) if claimed else None
        if claim is None:
            return self._room_at_s(view, node, need)
        gpus, end_s = claim
        if gpus + need <= size:
            return self._room_at_s(view, node, gpus + need)
        return max(self._room_at_s(view, node, need), end_s)

    def _backfills(self, view: SchedulerView, job: Job, gpu_type: str, r: Reservation) -> bool:
        """Whether ``job``, running alone on ``gpu_type`` from now, is predicted to finish before
        the reservation starts (its start as predicted now: the jobs on its nodes progress, or
        not)."""
        r.start_s = self._room_s(view, r.nodes, view.job(r.job_id).num_gpus)
        return view.now_s + self._remaining_s(view, job, gpu_type) <= r.start_s
